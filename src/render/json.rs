//! JSON output: `--json` is one array, `--jsonl` one record per line. The
//! records are the types in `model.rs`, documented in docs/json.md; socket
//! lists, the large outputs, have an encoder of their own (`json/socket.rs`).

use std::io::{self, Write};

use serde::Serialize;

use super::Format;

pub(crate) mod socket;

/// Records per chunk when encoding on several threads.
const CHUNK: usize = 1024;
/// Below this many records one thread is as fast: starting threads and
/// handing chunks over costs about what they save (3k sockets: 1.1 ms on
/// one thread, 1.2 to 1.7 ms on two).
const PARALLEL_FROM: usize = 4 * CHUNK;

/// Turns records into compact JSON. Each encoding thread has its own, so an
/// encoder may keep a cache.
pub trait Encoder<T>: Default {
    fn encode(&mut self, out: &mut Vec<u8>, item: &T);
}

/// Any `Serialize` type, through serde_json.
#[derive(Default)]
pub struct Serde;

impl<T: Serialize> Encoder<T> for Serde {
    fn encode(&mut self, out: &mut Vec<u8>, item: &T) {
        // Writing to a Vec cannot fail; serialising our types cannot either.
        let _ = serde_json::to_writer(out, item);
    }
}

pub use socket::SocketEncoder;

/// Writes sockets as a JSON array (one record per line inside it, so the
/// output is both valid JSON and greppable) or as JSON lines.
///
/// Large outputs are encoded on every core, in chunks written in order as
/// they complete; at most a few chunks wait in memory, so a 130k-socket
/// output costs no more memory than a small one.
pub fn sockets(w: &mut impl Write, items: &[crate::model::Socket], format: Format) -> io::Result<()> {
    records::<_, SocketEncoder>(w, items, format)
}

/// `listen`'s records: the sockets, then the NAT records (`"kind": "nat"`,
/// docs/json.md), in one array or as lines.
pub fn listing(
    w: &mut impl Write,
    sockets: &[crate::model::Socket],
    nat: &[crate::nat::NatRule],
    format: Format,
) -> io::Result<()> {
    let array = format != Format::Jsonl;
    if array {
        w.write_all(b"[")?;
    }
    body::<_, SocketEncoder>(w, sockets, array, 0)?;
    body::<_, Serde>(w, nat, array, sockets.len())?;
    if array {
        w.write_all(b"\n]\n")?;
    }
    Ok(())
}

/// [`sockets`] for any records, with the encoder `E`.
pub fn records<T: Sync, E: Encoder<T>>(w: &mut impl Write, items: &[T], format: Format) -> io::Result<()> {
    let array = format != Format::Jsonl;
    if array {
        w.write_all(b"[")?;
    }
    body::<T, E>(w, items, array, 0)?;
    if array {
        w.write_all(b"\n]\n")?;
    }
    Ok(())
}

/// The records of an array (or lines) whose first `before` records were
/// written already.
fn body<T: Sync, E: Encoder<T>>(w: &mut impl Write, items: &[T], array: bool, before: usize) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < PARALLEL_FROM || threads == 1 {
        let mut enc = E::default();
        let mut buf = Vec::new();
        for (i, chunk) in items.chunks(CHUNK).enumerate() {
            buf.clear();
            encode(&mut enc, &mut buf, chunk, before + i * CHUNK, array);
            w.write_all(&buf)?;
        }
        Ok(())
    } else {
        encode_parallel::<T, E>(w, items, array, threads, before)
    }
}

/// Encodes `items`, the first of which is record number `first`.
fn encode<T, E: Encoder<T>>(enc: &mut E, out: &mut Vec<u8>, items: &[T], first: usize, array: bool) {
    for (i, it) in items.iter().enumerate() {
        if array {
            out.extend_from_slice(if first + i == 0 { b"\n" } else { b",\n" });
        }
        enc.encode(out, it);
        if !array {
            out.push(b'\n');
        }
    }
}

fn encode_parallel<T: Sync, E: Encoder<T>>(
    w: &mut impl Write,
    items: &[T],
    array: bool,
    threads: usize,
    before: usize,
) -> io::Result<()> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc;

    let chunks: Vec<&[T]> = items.chunks(CHUNK).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // How far the encoders may run ahead of the writer: a descheduled
    // encoder (a busy machine) must not let the others fill memory with
    // chunks that wait for its own.
    let lookahead = 2 * threads;
    let written = (std::sync::Mutex::new(0usize), std::sync::Condvar::new());
    // Buffers come back once written: a few are filled over and over, not
    // one fresh (page-faulted) megabyte per chunk. Sized by the largest
    // chunk so far, so that one grows rarely.
    let spare: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let largest = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads);
        for _ in 0..threads {
            let tx = tx.clone();
            let (chunks, next, stop, written, spare, largest) = (&chunks, &next, &stop, &written, &spare, &largest);
            s.spawn(move || {
                let mut enc = E::default();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    {
                        let (lock, cv) = written;
                        let mut done = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while i >= *done + lookahead && !stop.load(Ordering::Relaxed) {
                            done = cv.wait(done).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    let mut buf = spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
                    // About 400 bytes a record, twice that with a peer's owners.
                    let want = largest.load(Ordering::Relaxed).max(chunk.len() * 800) + 64 * 1024;
                    buf.reserve(want);
                    encode(&mut enc, &mut buf, chunk, before + i * CHUNK, array);
                    largest.fetch_max(buf.len(), Ordering::Relaxed);
                    if tx.send((i, buf)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Write chunks in order; hold the few that arrive early.
        let mut waiting = BTreeMap::new();
        let mut want = 0;
        let result = (|| {
            for (i, buf) in rx.iter() {
                waiting.insert(i, buf);
                while let Some(mut buf) = waiting.remove(&want) {
                    w.write_all(&buf)?;
                    buf.clear();
                    spare.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
                    want += 1;
                    let (lock, cv) = &written;
                    *lock.lock().unwrap_or_else(|e| e.into_inner()) = want;
                    cv.notify_all();
                }
            }
            Ok(())
        })();
        // On a write error (a closed pipe), stop the encoders.
        stop.store(true, Ordering::Relaxed);
        written.1.notify_all();
        drop(rx);
        result
    })
}

/// One object, pretty-printed (`who --json`, `stats --json`).
pub fn object<T: Serialize>(w: &mut impl Write, item: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, item)?;
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_output_equals_sequential() {
        let items: Vec<(usize, String)> = (0..3 * PARALLEL_FROM + 17).map(|i| (i, format!("r\"{i}"))).collect();
        for format in [Format::Json, Format::Jsonl] {
            let mut seq = Vec::new();
            if format == Format::Json {
                seq.extend_from_slice(b"[");
            }
            encode(&mut Serde, &mut seq, &items, 0, format == Format::Json);
            if format == Format::Json {
                seq.extend_from_slice(b"\n]\n");
            }
            let mut par = Vec::new();
            records::<_, Serde>(&mut par, &items, format).unwrap();
            assert_eq!(par, seq, "{format:?}");
        }
        let back: Vec<(usize, String)> = {
            let mut v = Vec::new();
            records::<_, Serde>(&mut v, &items, Format::Json).unwrap();
            serde_json::from_slice(&v).unwrap()
        };
        assert_eq!(back, items);
    }

    #[test]
    fn empty_array() {
        let mut v = Vec::new();
        records::<u8, Serde>(&mut v, &[], Format::Json).unwrap();
        assert_eq!(v, b"[\n]\n");
    }

    #[test]
    fn write_errors_stop_the_encoders() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let items: Vec<usize> = (0..10 * PARALLEL_FROM).collect();
        let e = records::<_, Serde>(&mut Closed, &items, Format::Jsonl).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
        /// Through the parallel path (more records than PARALLEL_FROM, on
        /// every core), `--json` and `--jsonl` are what serde makes of the
        /// records, in order.
        #[test]
        fn socket_lists_equal_serde_through_the_parallel_path(
            pool in proptest::collection::vec(socket::tests::arb::socket(), 16..48),
            seed in proptest::num::usize::ANY,
        ) {
            let n = 2 * PARALLEL_FROM + seed % CHUNK;
            let items: Vec<crate::model::Socket> = (0..n).map(|i| pool[(i ^ seed) % pool.len()].clone()).collect();
            let lines: Vec<String> = items.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
            let mut json = Vec::new();
            sockets(&mut json, &items, Format::Json).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(json).unwrap(), format!("[\n{}\n]\n", lines.join(",\n")));
            let mut jsonl = Vec::new();
            sockets(&mut jsonl, &items, Format::Jsonl).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(jsonl).unwrap(), lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        }
    }
}
