//! `portctl who SPEC`: who holds a port or a unix socket, what a new bind()
//! would get, and what to do about it.

use std::io::Write;

use anyhow::Result;

use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::domain::unix::{self, FileState};
use crate::domain::who::OverflowCounters;
use crate::domain::{order, who};
use crate::error::UserError;
use crate::filter::UnixSpec;
use crate::inventory::{self, NatScan, Owners, Scope};
use crate::model::{Proto, Socket, State, StateSet};
use crate::netns::{self, Netns};
use crate::procs::Chosen;
use crate::render::{self, json};
use crate::report::{self, Report};
use crate::request::{self, Subject, WhoRequest};
use crate::sysctl::Sysctls;

/// The shortest time over which `who` measures the rise of the overflow
/// counters when a listener's accept queue is full or nearly.
pub const OVERFLOW_SAMPLE: Duration = Duration::from_millis(250);

/// TcpExt ListenOverflows and ListenDrops of the calling thread's namespace.
fn overflow_counters() -> (Option<i64>, Option<i64>) {
    let (c, _) = Counters::read();
    (c.get("TcpExt", "ListenOverflows"), c.get("TcpExt", "ListenDrops"))
}

pub fn run(req: &WhoRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    // The namespace asked about decides the verdict; every other namespace
    // we can enter is looked at too, for "it is free here, but ...".
    let main = match &req.netns {
        Some(spec) => Netns::open(spec)?,
        None => Netns::current().map_err(|e| anyhow::anyhow!("cannot open /proc/thread-self/ns/net: {e}"))?,
    };
    let others: Vec<Netns> = netns::discover().0.into_iter().filter(|n| n.id.inode != main.id.inode).collect();
    let main_inode = main.id.inode;
    let source = Chosen::new(req.owners_from);
    let answer = match &req.target {
        Subject::Port(target) => {
            // Per-namespace sysctls (bindv6only, port ranges) and the listen
            // overflow counters are read from inside it.
            let (sys, before) = main.run(|| (Sysctls::read(), overflow_counters()))?;
            let started = Instant::now();
            let scope = Scope::WithOthers(main, others);
            // Clients of the port's listeners too (their remote port is it),
            // in the same walk of the kernel's tables, for who is connected.
            let plan = inventory::peer_plan(request::port_query(target, StateSet::all(), true));
            // The NAT rules of the namespace asked about, read while the
            // kernel is dumped and the owners read.
            let protos: Vec<&str> = target.protos().iter().map(|p| p.as_str()).collect();
            let (inv, scan) = std::thread::scope(|s| {
                let reader = req.nat.then(|| {
                    s.spawn(|| match &scope {
                        Scope::WithOthers(main, _) => {
                            inventory::scan_nat(Some(main), Some((&protos, target.port)), None)
                        }
                        _ => NatScan::skipped(),
                    })
                });
                let inv =
                    inventory::collect_with_peers(&scope, &plan, Owners::Resolve(&source), Some(order::listen), report);
                let scan = reader.map_or_else(NatScan::skipped, |r| r.join().unwrap_or_else(|_| NatScan::skipped()));
                (inv, scan)
            });
            let mut inv = inv?;
            inventory::report_nat(std::slice::from_ref(&scan), report);
            let nat = scan.answer(target, &mut inv.procs);
            let (mut sockets, other_netns): (Vec<Socket>, Vec<Socket>) =
                inv.sockets.into_iter().partition(|s| s.netns.as_ref().is_none_or(|n| n.inode == main_inode));
            let listener = |s: &Socket| s.proto == Proto::Tcp && s.state == State::Listen;
            let mut counters = OverflowCounters { overflows: before.0, drops: before.1, rise: None };
            if sockets.iter().any(listener) {
                // A full queue: how fast do the overflows rise? Read again, at
                // least OVERFLOW_SAMPLE after the first read.
                let alarming = sockets.iter().any(|s| s.accept_queue().is_some_and(|q| q.is_alarming()));
                if alarming {
                    std::thread::sleep(OVERFLOW_SAMPLE.saturating_sub(started.elapsed()));
                }
                let after = match scope.main() {
                    Some(ns) => ns.run(overflow_counters)?,
                    None => overflow_counters(),
                };
                let elapsed = started.elapsed();
                counters.overflows = after.0.or(before.0);
                counters.drops = after.1.or(before.1);
                if alarming {
                    let rise = |a: Option<i64>, b: Option<i64>| Some(a?.wrapping_sub(b?));
                    counters.rise = Some((rise(after.0, before.0), rise(after.1, before.1), elapsed));
                }
            }
            // The options of the sockets no descriptor shows (TIME_WAIT), from the
            // kernel's socket tables, for definite bind verdicts.
            if let Scope::WithOthers(main, _) = &scope {
                inventory::kernel_flags(&mut sockets, &source, target.port, Some(main));
            }
            let found = who::Found { sockets, other_netns, unreadable_netns: inv.unreadable_netns, counters, nat };
            who::answer(target, found, &mut inv.procs, &sys, who::Viewer::me())
        }
        Subject::Unix(spec) => {
            let lookup = inventory::lookup_unix(spec)?;
            if let Some(FileState::NotSocket(what)) = lookup.file {
                return Err(UserError::new(format!("{} is not a socket: it is {what}", spec.label())).into());
            }
            let scope = Scope::WithOthers(main, others);
            let query = request::unix_query(StateSet::all());
            // Every unix socket, to find those with the name; owners only
            // for those (warnings about the others' would be noise).
            let mut inv = inventory::collect_in(&scope, &query, Owners::Skip, Some(order::listen), report)?;
            let mut mine: Vec<Socket> =
                inv.sockets.into_iter().filter(|s| lookup.names(s) || lookup.bound_to_file(s)).collect();
            if let Err(e) = inventory::resolve_owners(&mut mine, &source, &mut inv.procs, &scope, report) {
                report.warn(format!("could not walk /proc: {e}: owners are unknown"));
            }
            // A path belongs to the filesystem: a socket bound to it counts
            // from whichever namespace. An abstract name belongs to one.
            let (sockets, other_netns): (Vec<Socket>, Vec<Socket>) = match spec {
                UnixSpec::Path(_) => (mine, Vec::new()),
                UnixSpec::Abstract(_) => {
                    mine.into_iter().partition(|s| s.netns.as_ref().is_none_or(|n| n.inode == main_inode))
                }
            };
            let found = who::Found {
                sockets,
                other_netns,
                unreadable_netns: inv.unreadable_netns,
                counters: OverflowCounters::default(),
                nat: crate::domain::nat::NatAnswer::none(),
            };
            unix::answer(&lookup, found, &mut inv.procs, who::Viewer::me())
        }
    };
    if req.out.is_json() {
        json::object(w, &answer)?;
    } else {
        render::who::write(w, &answer, req.out.style())?;
    }
    Ok(report::status(answer.verdict.in_use || answer.verdict.published))
}
