//! `portctl wait SPEC...`: block until a listener is on every port or unix
//! socket named (or, with `--free`, until none remains on any). Polls the
//! state- and port-filtered sock_diag query only: no owner source, so each
//! poll costs microseconds even on busy hosts.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::inventory::UnixProbe;
use crate::model::{State, StateSet};
use crate::report::{EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::request::{self, Subject, WaitRequest};

pub fn run(req: &WaitRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let ports = request::ports_of(&req.targets);
    let query =
        (!ports.is_empty()).then(|| request::ports_query(&ports, StateSet::of(&[State::Listen, State::Unconn]), false));
    let probes: Vec<Option<UnixProbe>> = req
        .targets
        .iter()
        .map(|s| match s {
            Subject::Unix(spec) => Some(UnixProbe::new(spec)),
            Subject::Port(_) => None,
        })
        .collect();
    // When each target first met the condition; all must meet it in the
    // same poll for the wait to end.
    let mut first_met: Vec<Option<Duration>> = vec![None; req.targets.len()];
    let mut said = false;
    let met_all = loop {
        let sockets = match &query {
            Some(q) => crate::sock_diag::dump(q)?.sockets,
            None => Vec::new(),
        };
        let mut all = true;
        for (i, s) in req.targets.iter().enumerate() {
            let listening = match (s, &probes[i]) {
                (Subject::Port(t), _) => sockets.iter().any(|s| t.covers(s) && t.served_by(s)),
                (Subject::Unix(spec), Some(p)) => p.present(spec)?,
                (Subject::Unix(_), None) => false,
            };
            if listening != req.free {
                first_met[i].get_or_insert_with(|| started.elapsed());
            } else {
                first_met[i] = None;
                all = false;
            }
        }
        if all {
            break true;
        }
        let now = Instant::now();
        if now >= deadline {
            break false;
        }
        if report.verbose && !said {
            // Now, not at the end: a script (or a test) knows the wait began
            // with the condition unmet.
            said = true;
            let waiting: Vec<String> =
                req.targets.iter().zip(&first_met).filter(|(_, m)| m.is_none()).map(|(s, _)| place(s)).collect();
            eprintln!(
                "portctl: {}: {}; polling every {} ms",
                waiting.join(", "),
                if req.free { "still held" } else { "nothing listening yet" },
                req.interval.as_millis()
            );
        }
        std::thread::sleep(req.interval.min(deadline - now));
    };
    let took = started.elapsed().as_secs_f64();
    for (s, met) in req.targets.iter().zip(&first_met) {
        let what = place(s);
        let line = match (met, req.free) {
            (Some(d), false) => format!("{what}: listening after {:.2}s", d.as_secs_f64()),
            (Some(d), true) => format!("{what}: free after {:.2}s", d.as_secs_f64()),
            (None, false) => format!("{what}: nothing listening after {took:.2}s (timeout)"),
            (None, true) => format!("{what}: still held after {took:.2}s (timeout)"),
        };
        writeln!(w, "{line}")?;
    }
    Ok(if met_all { EXIT_MATCHED } else { EXIT_NO_MATCH })
}

/// `8080/tcp`, `/run/app.sock`, `@name`: for the lines.
fn place(s: &Subject) -> String {
    match s {
        Subject::Port(t) => t.place(),
        Subject::Unix(spec) => spec.label(),
    }
}
