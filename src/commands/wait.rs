//! `portctl wait SPEC`: block until a listener appears on a port or a unix
//! socket (or, with `--free`, until none remains). Polls the state- and port-filtered sock_diag query
//! only: no owner source, so each poll costs microseconds even on busy hosts.

use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use crate::inventory;
use crate::model::{State, StateSet};
use crate::report::{EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::request::{self, Subject, WaitRequest};

pub fn run(req: &WaitRequest, w: &mut impl Write, _report: &mut Report) -> Result<i32> {
    let started = Instant::now();
    let (met, what) = match &req.target {
        Subject::Port(t) => {
            let query = request::port_query(t, StateSet::of(&[State::Listen, State::Unconn]), false);
            let met = inventory::poll_listeners(&query, |s| t.served_by(s), !req.free, req.timeout, req.interval)?;
            (met, t.place())
        }
        Subject::Unix(spec) => (inventory::poll_unix(spec, !req.free, req.timeout, req.interval)?, spec.label()),
    };
    let took = started.elapsed().as_secs_f64();
    let line = match (met, req.free) {
        (true, false) => format!("{what}: listening after {took:.2}s"),
        (true, true) => format!("{what}: free after {took:.2}s"),
        (false, false) => format!("{what}: nothing listening after {took:.2}s (timeout)"),
        (false, true) => format!("{what}: still held after {took:.2}s (timeout)"),
    };
    writeln!(w, "{line}")?;
    Ok(if met { EXIT_MATCHED } else { EXIT_NO_MATCH })
}
