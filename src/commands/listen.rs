//! `portctl listen`: what is bound where, by whom, and how exposed; and the
//! ports NAT rules publish without a socket.

use std::io::Write;

use anyhow::Result;

use crate::inventory;
use crate::render::{self, Format, json, prometheus};
use crate::report::{self, Report};
use crate::request::ListenRequest;

pub fn run(req: &ListenRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let inventory::Listing { mut sockets, mut nat, nat_read } = inventory::listen_with_nat(req, report)?;
    // Records of rules that reach no address of this host (ClusterIPs)
    // are not published ports; `who` shows them.
    nat.retain(|r| r.on_this_host());
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
            for r in &mut nat {
                if r.netns.as_ref().is_some_and(|n| Some(n.inode) == own) {
                    r.netns = None;
                }
            }
            let read: Vec<(String, bool)> = nat_read
                .into_iter()
                .map(|(n, ok)| (n.filter(|n| Some(n.inode) != own).map(|n| n.to_string()).unwrap_or_default(), ok))
                .collect();
            // A complete snapshot even when empty: exit 0, so that a textfile
            // writer (`... > f.tmp && mv f.tmp f`) replaces the previous one.
            prometheus::listen(w, &sockets)?;
            if req.nat {
                prometheus::nat(w, &nat, &read)?;
            }
            return Ok(report::EXIT_MATCHED);
        }
        Format::Json | Format::Jsonl => json::listing(w, &sockets, &nat, req.out.format)?,
        Format::Table => render::listen::write_with_nat(w, &sockets, &nat, &req.out, req.context)?,
    }
    Ok(report::status(!sockets.is_empty() || !nat.is_empty()))
}
