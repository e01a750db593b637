//! `portctl listen`: what is bound where, by whom, and how exposed.

use std::io::Write;

use anyhow::Result;

use crate::inventory;
use crate::render::{self, Format, json, prometheus};
use crate::report::{self, Report};
use crate::request::ListenRequest;

pub fn run(req: &ListenRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let mut sockets = inventory::listen(req, report)?;
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
        Format::Table => render::listen::write(w, &sockets, &req.out, req.context)?,
    }
    Ok(report::status(!sockets.is_empty()))
}
