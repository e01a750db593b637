//! `portctl conns`: every TCP and UDP socket with its owners, established by
//! default (the `ss -tuanp` / `lsof -i` / `netstat -tanp` question).
//!
//! States and the endpoint filter (flags and the ss expression) go to the
//! kernel (state mask and sock_diag bytecode); only the owner filters (pid,
//! process, user, unit, container) run here, after the owner source,
//! because the kernel does not know processes.

use std::io::Write;

use anyhow::Result;

use crate::domain::{order, process};
use crate::inventory;
use crate::render::{self, Format, json};
use crate::report::{self, Report};
use crate::request::ConnsRequest;

pub fn run(req: &ConnsRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    if req.view.by_process {
        let (mut sockets, mut procs) = inventory::conns_with_procs(req, report)?;
        order::by_keys(&mut sockets, &req.view.sort, req.view.reverse);
        let matched = !sockets.is_empty();
        let grouped = process::by_process(sockets, &mut procs);
        if req.out.is_json() {
            json::object(w, &grouped)?;
        } else {
            render::by_process::write(w, &grouped, req.out.style())?;
        }
        return Ok(report::status(matched));
    }
    let mut sockets = inventory::conns(req, report)?;
    order::by_keys(&mut sockets, &req.view.sort, req.view.reverse);
    if req.view.pids {
        let pids = process::pids(&sockets);
        render::pids(w, &pids)?;
        return Ok(report::status(!pids.is_empty()));
    }
    match req.out.format {
        Format::Json | Format::Jsonl => json::sockets(w, &sockets, req.out.format)?,
        Format::Table | Format::Prometheus if !req.view.columns.is_empty() => {
            render::columns::write(w, &sockets, &req.view.columns, &req.out)?
        }
        // conns has no Prometheus output: clap offers no such --format.
        Format::Table | Format::Prometheus => {
            render::conns::write(w, &sockets, &req.out, req.extended, req.peers, req.context)?
        }
    }
    crate::timings::mark("rendered");
    let status = report::status(!sockets.is_empty());
    // The process ends right after: freeing 130k records one by one would
    // cost ~10 ms for nothing; the kernel reclaims the memory at once.
    std::mem::forget(sockets);
    Ok(status)
}
