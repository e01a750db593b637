//! `portctl stats`: counts per protocol, family and state; ephemeral port
//! usage; TIME_WAIT and CLOSE_WAIT by who causes them.
//!
//! The socket table comes from one kernel dump of every state. Owners are
//! looked up only for the CLOSE_WAIT section, only when there is a CLOSE_WAIT
//! socket, and never with `--no-owners`.
//!
//! Exit status: 0, or 2 on error. A summary always "matches", even of an
//! empty socket table.

use std::io::Write;

use anyhow::Result;

use crate::domain::stats;
use crate::inventory::{self, Owners, Scope};
use crate::model::{Socket, State};
use crate::procs::ProcWalk;
use crate::render::{self, Format, json, prometheus};
use crate::report::{self, Report};
use crate::request::{self, StatsRequest};
use crate::sysctl::Sysctls;

pub fn run(req: &StatsRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let scope = Scope::open(&req.namespaces, report)?;
    let mut inv = inventory::collect_in(&scope, &request::stats_query(), Owners::Skip, None, report)?;
    // These sysctls belong to the network namespace: read them in the one
    // asked about (with --all-netns, in this one; see docs/stats.md).
    let sys = match &scope {
        Scope::One(ns) => ns.run(Sysctls::read).unwrap_or_else(|e| Sysctls::unknown(e.to_string())),
        _ => Sysctls::read(),
    };
    let mut summary = stats::summarise(&inv.sockets, &sys, req.top);
    match (&summary.ephemeral, &sys.local_port_range) {
        (Some(e), _) => stats::exhaustion_warnings(e).into_iter().for_each(|m| report.warn(m)),
        (None, Err(e)) => report.warn(format!("ephemeral port usage left out: {e}")),
        (None, Ok(_)) => {}
    }
    if req.owners {
        let mut close_wait: Vec<Socket> = inv.sockets.iter().filter(|s| s.state == State::CloseWait).cloned().collect();
        let resolved = if close_wait.is_empty() {
            Ok(())
        } else {
            inventory::resolve_owners(&mut close_wait, &ProcWalk::host(), &mut inv.procs, report)
        };
        match resolved {
            Ok(()) => summary.close_wait = Some(stats::close_wait_by_process(&close_wait)),
            Err(e) => report.warn(format!("CLOSE_WAIT by process left out: could not walk /proc: {e}")),
        }
    }
    match req.out.format {
        Format::Prometheus => prometheus::stats(w, &summary)?,
        Format::Table => render::stats::write(w, &summary, &req.out)?,
        Format::Json | Format::Jsonl => json::object(w, &summary)?,
    }
    Ok(report::EXIT_MATCHED)
}
