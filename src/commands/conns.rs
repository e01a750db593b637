//! `portctl conns`: every TCP and UDP socket with its owners, established by
//! default (the `ss -tuanp` / `lsof -i` / `netstat -tanp` question).
//!
//! States and port/address filters go to the kernel (state mask and sock_diag
//! bytecode); only the owner filters (pid, process, user) run here, after the
//! owner source, because the kernel does not know processes.

use std::io::Write;

use anyhow::Result;

use crate::inventory;
use crate::render::{self, Format, json};
use crate::report::{self, Report};
use crate::request::ConnsRequest;

pub fn run(req: &ConnsRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let sockets = inventory::conns(req, report)?;
    match req.out.format {
        Format::Json | Format::Jsonl => json::sockets(w, &sockets, req.out.format)?,
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
