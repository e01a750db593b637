//! The floor the benchmark compares `conns` against (issue 5): the kernel
//! work every "all sockets with owners" tool must do, done once, on one
//! thread, printing nothing — a full TCP sock_diag dump (both families, every
//! state) and a readlink of every /proc/*/fd/* into an inode map.
//!
//! `floor --phases` prints each phase's time instead (for profiling), and
//! the walk on 1, 2 and 4 threads.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use portctl::model::{Family, Proto, StateSet};
use portctl::procs::OwnerMap;
use portctl::sock_diag::{self, Query, Source};

fn main() {
    let phases = std::env::args().any(|a| a == "--phases");
    let query = Query {
        protos: vec![Proto::Tcp],
        families: vec![Family::Ipv4, Family::Ipv6],
        states: StateSet::all(),
        filter: None,
        tcp_info: false,
        skmem: Vec::new(),
        bound_inactive: false,
        any_state_raw: false,
        source: Source::Auto,
    };
    let t = Instant::now();
    let dump = sock_diag::dump(&query).expect("sock_diag dump");
    let dump_time = t.elapsed();
    let t = Instant::now();
    let map = OwnerMap::build(Path::new("/proc"), 1).expect("/proc walk");
    let walk_time = t.elapsed();
    if phases {
        // Write errors (a closed pipe: `floor --phases | head -1`) end it quietly.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "dump: {dump_time:?} for {} sockets", dump.sockets.len());
        let _ = writeln!(
            out,
            "walk, 1 thread: {walk_time:?} for {} links in {} processes",
            map.links().len(),
            map.processes
        );
        for threads in [2, 4] {
            let t = Instant::now();
            let m = OwnerMap::build(Path::new("/proc"), threads).expect("/proc walk");
            if writeln!(out, "walk, {threads} threads: {:?} ({} links)", t.elapsed(), m.links().len()).is_err() {
                return;
            }
        }
    }
}
