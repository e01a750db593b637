//! `portctl wait SPEC...`: block until a listener is on every port (or,
//! with `--free`, until none remains on any). Polls the state- and
//! port-filtered sock_diag query only: no owner source, so each poll costs
//! microseconds even on busy hosts.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::model::{State, StateSet};
use crate::report::{EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::request::{self, WaitRequest};

pub fn run(req: &WaitRequest, w: &mut impl Write, _report: &mut Report) -> Result<i32> {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let query = request::ports_query(&req.targets, StateSet::of(&[State::Listen, State::Unconn]), false);
    // When each target first met the condition; all must meet it in the
    // same poll for the wait to end.
    let mut first_met: Vec<Option<Duration>> = vec![None; req.targets.len()];
    let met_all = loop {
        let sockets = crate::sock_diag::dump(&query)?.sockets;
        let mut all = true;
        for (i, t) in req.targets.iter().enumerate() {
            let listening = sockets.iter().any(|s| t.covers(s) && t.served_by(s));
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
        std::thread::sleep(req.interval.min(deadline - now));
    };
    let took = started.elapsed().as_secs_f64();
    for (t, met) in req.targets.iter().zip(&first_met) {
        let what = t.place();
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
