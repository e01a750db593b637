//! `portctl wait SPEC`: block until a listener appears (or, with `--free`,
//! until none remains). Polls the state- and port-filtered sock_diag query
//! only: no /proc walk, so each poll costs microseconds even on busy hosts.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::WaitArgs;
use crate::model::{Proto, State, StateSet};
use crate::query;
use crate::report::{EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::sock_diag;

pub fn run(args: &WaitArgs, w: &mut impl Write, _report: &mut Report) -> Result<i32> {
    let spec = &args.spec;
    let port = query::resolve_port(spec)?;
    let protos = query::spec_protos(spec);
    let started = Instant::now();
    let met = until(port, &protos, spec.addr, !args.free, args.timeout.0, args.interval.0)?;
    let what = match spec.addr {
        Some(a) => crate::model::Endpoint { addr: a, port }.to_string(),
        None => format!("port {port}"),
    };
    let took = started.elapsed().as_secs_f64();
    let line = match (met, args.free) {
        (true, false) => format!("{what}: listening after {took:.2}s"),
        (true, true) => format!("{what}: free after {took:.2}s"),
        (false, false) => format!("{what}: nothing listening after {took:.2}s (timeout)"),
        (false, true) => format!("{what}: still held after {took:.2}s (timeout)"),
    };
    writeln!(w, "{line}")?;
    Ok(if met { EXIT_MATCHED } else { EXIT_NO_MATCH })
}

/// Polls until a listener on the port (serving `addr`, when given) is
/// present (`want_present`) or absent; false on timeout.
pub fn until(
    port: u16,
    protos: &[Proto],
    addr: Option<IpAddr>,
    want_present: bool,
    timeout: Duration,
    interval: Duration,
) -> Result<bool> {
    let q = query::port_query(port, protos, StateSet::of(&[State::Listen, State::Unconn]), false);
    let deadline = Instant::now() + timeout;
    loop {
        let present = sock_diag::dump(&q)?
            .sockets
            .iter()
            .any(|s| addr.is_none_or(|a| crate::diagnose::addresses_overlap(a, false, s)));
        if present == want_present {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}
