//! `portctl watch [listen|conns ...]`: the request again every interval; on a
//! terminal the table is redrawn in place with new sockets marked `+` and
//! vanished ones `-` for one refresh; `--events` prints one JSON line per
//! change instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::inventory;
use crate::model::{Addr, Proto, Socket, State};
use crate::render::watch::{self, Mark};
use crate::report::{EXIT_MATCHED, Report};
use crate::request::{WatchRequest, Watched};
use crate::text::plural;

/// What identifies one socket across refreshes. The state is not part of
/// it, so a connection moving from ESTABLISHED to CLOSE_WAIT is a "state"
/// event, not a removal and an addition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    netns: u64,
    proto: Proto,
    local: Addr,
    remote: Option<Addr>,
    inode: u64,
}

fn key(s: &Socket) -> Key {
    Key {
        netns: s.netns_inode().unwrap_or(0),
        proto: s.proto,
        local: s.local.clone(),
        remote: s.remote.clone(),
        inode: s.inode,
    }
}

/// One `--events` line.
#[derive(Debug, Serialize)]
struct Event<'a> {
    event: &'static str,
    /// For "state": the state before.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<State>,
    socket: &'a Socket,
}

pub fn run(req: &WatchRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let (name, view) = match &req.what {
        Watched::Listen(r) => ("listen", &r.view),
        Watched::Conns(r) => ("conns", &r.view),
    };
    let table = match &req.what {
        _ if !view.columns.is_empty() => watch::Table::Columns(&view.columns),
        Watched::Listen(r) => watch::Table::Listen { context: r.context },
        Watched::Conns(r) => watch::Table::Conns { extended: r.extended, peers: r.peers, context: r.context },
    };
    let mut prev: Option<BTreeMap<Key, Socket>> = None;
    let mut refreshes = 0u64;
    loop {
        let started = Instant::now();
        let sockets = match &req.what {
            Watched::Listen(r) => inventory::listen(r, report)?,
            Watched::Conns(r) => inventory::conns(r, report)?,
        };
        // Warnings (hidden owners) once, on stderr, not every refresh.
        report.flush();
        let now: BTreeMap<Key, Socket> = sockets.into_iter().map(|s| (key(&s), s)).collect();
        match (&prev, req.events) {
            (None, true) => {}
            (Some(before), true) => events(w, before, &now)?,
            (before, false) => {
                let empty = BTreeMap::new();
                let first = before.is_none();
                let before = before.as_ref().unwrap_or(&empty);
                let mut rows: Vec<Socket> = now.values().cloned().collect();
                let mut marks: Vec<Mark> = now
                    .iter()
                    .map(|(k, s)| match before.get(k) {
                        None if !first => Mark::Added,
                        Some(old) if old.state != s.state => Mark::Changed,
                        _ => Mark::Same,
                    })
                    .collect();
                let gone: Vec<&Socket> = before.iter().filter(|(k, _)| !now.contains_key(k)).map(|(_, s)| s).collect();
                rows.extend(gone.iter().map(|s| (*s).clone()));
                marks.extend(gone.iter().map(|_| Mark::Gone));
                if !view.sort.is_empty() {
                    // --sort: the rows in that order, each with its mark.
                    let mut both: Vec<(Socket, Mark)> = rows.into_iter().zip(marks).collect();
                    both.sort_by(|a, b| crate::domain::order::compare_keys(&a.0, &b.0, &view.sort, view.reverse));
                    (rows, marks) = both.into_iter().unzip();
                }
                let added = marks.iter().filter(|m| **m == Mark::Added).count();
                let heading = format!(
                    "every {:.1}s: portctl {name}: {} socket{} (+{added} -{})",
                    req.interval.as_secs_f64(),
                    now.len(),
                    plural(now.len()),
                    gone.len()
                );
                watch::frame(w, table, &rows, &marks, &heading, req.what.out())?;
            }
        }
        w.flush()?;
        prev = Some(now);
        refreshes += 1;
        if req.count.is_some_and(|c| refreshes >= c) {
            break;
        }
        std::thread::sleep(req.interval.saturating_sub(started.elapsed()));
    }
    Ok(EXIT_MATCHED)
}

fn events(w: &mut impl Write, before: &BTreeMap<Key, Socket>, now: &BTreeMap<Key, Socket>) -> std::io::Result<()> {
    let mut line = |e: &Event| -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, e)?;
        w.write_all(b"\n")
    };
    for (k, s) in before {
        if !now.contains_key(k) {
            line(&Event { event: "removed", from: None, socket: s })?;
        }
    }
    for (k, s) in now {
        match before.get(k) {
            None => line(&Event { event: "added", from: None, socket: s })?,
            Some(old) if old.state != s.state => line(&Event { event: "state", from: Some(old.state), socket: s })?,
            _ => {}
        }
    }
    Ok(())
}
