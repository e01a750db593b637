//! `portctl stats`: counts per protocol, family and state; ephemeral port
//! usage; TIME_WAIT and CLOSE_WAIT by who causes them; accept queues that
//! overflow and backlogs somaxconn capped; UDP sockets that drop; the
//! kernel's counters and socket memory.
//!
//! The socket table comes from one kernel dump of every state (and one of
//! the unix sockets, counted per type and state). Owners are
//! looked up only for the sockets a section names (CLOSE_WAIT, listeners
//! with full queues or capped backlogs, UDP sockets that dropped), only when
//! there is one, and never with `--no-owners`. The kernel's counters are
//! read inside the namespace asked about (portctl's own with `--all-netns`);
//! with `--interval` twice, that far apart, the first read before the dump.
//!
//! Exit status: 0, or 2 on error. A summary always "matches", even of an
//! empty socket table.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use crate::counters::{Counters, Sockstat};
use crate::domain::stats;
use crate::inventory::{self, Owners, Scope};
use crate::model::{Proto, Socket, State, StateSet};
use crate::netns::Netns;
use crate::procs::Chosen;
use crate::render::{self, Format, json, prometheus};
use crate::report::{self, Report};
use crate::request::{self, StatsRequest};
use crate::sysctl::{self, Sysctls};

pub fn run(req: &StatsRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let scope = Scope::open(&req.namespaces, report)?;
    // These files belong to the network namespace: read them in the one
    // asked about (with --all-netns, in this one; see docs/stats.md).
    let one = scope.main();
    let first = req.interval.map(|_| (in_namespace(one, || Counters::read().0), Instant::now()));
    let mut inv = inventory::collect_in(&scope, &req.query(), Owners::Skip, None, report)?;
    if let (Some(interval), Some((_, started))) = (req.interval, &first) {
        // The second read: `interval` after the first, however long the dump took.
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
    let read = || (Sysctls::read(), Counters::read(), Sockstat::read(), Instant::now());
    let (mut sys, (counters, errors), sockstat, read_at) = match one {
        Some(ns) => ns.run(read).unwrap_or_else(|e| {
            let why = e.to_string();
            (Sysctls::unknown(why.clone()), (Counters::default(), vec![why]), Sockstat::default(), Instant::now())
        }),
        None => read(),
    };
    sys.fill_host_wide();
    for e in &errors {
        report.warn(format!("kernel counters left out: {e}"));
    }
    let mut summary = stats::summarise(&inv.sockets, &sys, req.top);
    if let Scope::All(all) = &scope {
        // Each listener against its own namespace's somaxconn.
        let somaxconn = somaxconn_by_namespace(all);
        summary.listeners = stats::listen_queues(&inv.sockets, &sys, |ns| {
            somaxconn.get(&ns).copied().flatten().or(if ns.is_none() { sys.somaxconn } else { None })
        });
    }
    if !counters.is_empty() {
        let first = first.map(|(c, at)| (c, read_at.duration_since(at)));
        summary.kernel = Some(stats::kernel(counters, first, sockstat, &sys));
    }
    // Unix sockets: one more dump (their own table per namespace), counted only.
    match inventory::collect_in(&scope, &request::unix_query(StateSet::all()), Owners::Skip, None, report) {
        Ok(u) => summary.unix = Some(stats::unix_counts(&u.sockets)),
        Err(e) => report.warn(format!("unix sockets left out: {e:#}")),
    }
    match (&summary.ephemeral, &sys.local_port_range) {
        (Some(e), _) => stats::exhaustion_warnings(e).into_iter().for_each(|m| report.warn(m)),
        (None, Err(e)) => report.warn(format!("ephemeral port usage left out: {e}")),
        (None, Ok(_)) => {}
    }
    if req.owners {
        // One walk for every socket a section names.
        let named = |s: &Socket| {
            s.state == State::CloseWait
                || (s.proto == Proto::Tcp
                    && s.state == State::Listen
                    && summary.listeners.full.iter().chain(&summary.listeners.clamped).any(|l| l.inode == s.inode))
                || (s.proto == Proto::Udp && s.drops() > 0)
        };
        let mut wanted: Vec<Socket> = inv.sockets.iter().filter(|s| named(s)).cloned().collect();
        let resolved = if wanted.is_empty() {
            Ok(())
        } else {
            inventory::resolve_owners(&mut wanted, &Chosen::new(req.owners_from), &mut inv.procs, &scope, report)
        };
        match resolved {
            Ok(()) => {
                summary.close_wait = Some(stats::close_wait_by_process(&wanted));
                stats::attach_processes(&mut summary, &wanted);
            }
            Err(e) => report.warn(format!("CLOSE_WAIT by process left out: could not walk /proc: {e}")),
        }
    }
    stats::kernel_warnings(&summary).into_iter().for_each(|m| report.warn(m));
    match req.out.format {
        Format::Prometheus => prometheus::stats(w, &summary)?,
        Format::Table => render::stats::write(w, &summary, &req.out)?,
        Format::Json | Format::Jsonl => json::object(w, &summary)?,
    }
    Ok(report::EXIT_MATCHED)
}

/// Runs `f` in the namespace, or here; a namespace that cannot be entered
/// gives `f`'s default.
fn in_namespace<T: Send + Default>(ns: Option<&Netns>, f: impl FnOnce() -> T + Send) -> T {
    match ns {
        Some(ns) => ns.run(f).unwrap_or_default(),
        None => f(),
    }
}

/// `net.core.somaxconn` of every namespace (by inode), for `--all-netns`.
fn somaxconn_by_namespace(all: &[Netns]) -> HashMap<Option<u64>, Option<u32>> {
    all.iter().map(|n| (Some(n.id.inode), n.run(sysctl::somaxconn).ok().flatten())).collect()
}
