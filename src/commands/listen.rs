//! `portctl listen`: what is bound where, by whom, and how exposed; and the
//! ports NAT rules publish without a socket.

use std::io::Write;

use anyhow::Result;

use crate::domain::{order, process};
use crate::inventory;
use crate::model::{Proto, State};
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
    let inventory::Listing { mut sockets, mut nat, nat_read } = inventory::listen_with_nat(req, report)?;
    order::by_keys(&mut sockets, &req.view.sort, req.view.reverse);
    // Records of rules that reach no address of this host (ClusterIPs)
    // are not published ports; `who` shows them.
    nat.retain(|r| r.on_this_host());
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
        Format::Table if !req.view.columns.is_empty() => {
            render::columns::write(w, &sockets, &req.view.columns, &req.out)?
        }
        Format::Table => render::listen::write_with_nat(w, &sockets, &nat, &req.out, req.context)?,
    }
    // A unix listener whose accept queue is half full or more: its server
    // is not accepting (clients block, or get EAGAIN once it is full).
    for s in sockets.iter().filter(|s| s.proto == Proto::Unix && s.state == State::Listen) {
        if s.recv_q > 0 && u64::from(s.recv_q) * 2 >= u64::from(s.send_q) {
            report.warn(format!(
                "{} connection{} wait{} in the accept queue of {} (backlog {}): its server is not accepting",
                s.recv_q,
                crate::text::plural(s.recv_q as usize),
                if s.recv_q == 1 { "s" } else { "" },
                s.local,
                s.send_q
            ));
        }
    }
    Ok(report::status(!sockets.is_empty() || !nat.is_empty()))
}
