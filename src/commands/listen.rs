//! `portctl listen`: what is bound where, by whom, and how exposed.

use std::io::Write;

use anyhow::Result;

use crate::domain::{order, process};
use crate::inventory;
use crate::render::{self, Format, json, prometheus};
use crate::report::{self, Report};
use crate::request::ListenRequest;

pub fn run(req: &ListenRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    if req.view.by_process {
        let (mut sockets, mut procs) = inventory::listen_with_procs(req, report)?;
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
    let mut sockets = inventory::listen(req, report)?;
    order::by_keys(&mut sockets, &req.view.sort, req.view.reverse);
    if req.view.pids {
        let pids = process::pids(&sockets);
        render::pids(w, &pids)?;
        return Ok(report::status(!pids.is_empty()));
    }
    match req.out.format {
        Format::Prometheus => {
            // The namespace portctl runs in is `netns=""` with --all-netns
            // too: its series keep their labels when the flag is added, and
            // across reboots (its inode is not stable).
            let own = crate::netns::current_inode();
            for s in &mut sockets {
                if s.netns_inode().is_some_and(|n| Some(n) == own) {
                    s.netns = None;
                }
            }
            // A complete snapshot even when empty: exit 0, so that a textfile
            // writer (`... > f.tmp && mv f.tmp f`) replaces the previous one.
            prometheus::listen(w, &sockets)?;
            return Ok(report::EXIT_MATCHED);
        }
        Format::Json | Format::Jsonl => json::sockets(w, &sockets, req.out.format)?,
        Format::Table if !req.view.columns.is_empty() => {
            render::columns::write(w, &sockets, &req.view.columns, &req.out)?
        }
        Format::Table => render::listen::write(w, &sockets, &req.out, req.context)?,
    }
    Ok(report::status(!sockets.is_empty()))
}
