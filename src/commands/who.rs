//! `portctl who SPEC`: who holds a port, what a new bind() would get, and
//! what to do about it.

use std::io::Write;

use anyhow::Result;

use crate::domain::{order, who};
use crate::inventory::{self, Owners, Scope};
use crate::model::{Socket, StateSet};
use crate::netns::{self, Netns};
use crate::procs::ProcWalk;
use crate::render::{self, json};
use crate::report::{self, Report};
use crate::request::{self, WhoRequest};
use crate::sysctl::Sysctls;

pub fn run(req: &WhoRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    // The namespace asked about decides the verdict; every other namespace
    // we can enter is looked at too, for "it is free here, but ...".
    let main = match &req.netns {
        Some(spec) => Netns::open(spec)?,
        None => Netns::current().map_err(|e| anyhow::anyhow!("cannot open /proc/thread-self/ns/net: {e}"))?,
    };
    let others: Vec<Netns> = netns::discover().0.into_iter().filter(|n| n.id.inode != main.id.inode).collect();
    let main_inode = main.id.inode;
    // Per-namespace sysctls (bindv6only, port ranges) are read from inside it.
    let sys = main.run(Sysctls::read)?;
    let scope = Scope::WithOthers(main, others);
    let query = request::port_query(&req.target, StateSet::all(), true);
    let source = ProcWalk::host();
    let mut inv = inventory::collect_in(&scope, &query, Owners::Resolve(&source), Some(order::listen), report)?;
    let (sockets, other_netns): (Vec<Socket>, Vec<Socket>) =
        inv.sockets.into_iter().partition(|s| s.netns.as_ref().is_none_or(|n| n.inode == main_inode));
    let found = who::Found { sockets, other_netns, unreadable_netns: inv.unreadable_netns };
    let answer = who::answer(&req.target, found, &mut inv.procs, &sys, who::Viewer::me());
    if req.out.is_json() {
        json::object(w, &answer)?;
    } else {
        render::who::write(w, &answer, req.out.style())?;
    }
    Ok(report::status(answer.verdict.in_use))
}
