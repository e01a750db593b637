//! `portctl who SPEC...`: who holds a port or a unix socket, what a new
//! bind() would get, and what to do about it (one answer per spec); `who
//! --pid PID`: what one process holds.

use std::io::Write;

use anyhow::Result;

use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::domain::unix;
use crate::domain::who::{OverflowCounters, Target};
use crate::domain::{order, who};
use crate::error::UserError;
use crate::filter::UnixSpec;
use crate::inventory::{self, NatScan, Owners, Scope};
use crate::model::{Proto, Socket, State, StateSet};
use crate::netns::{self, Netns};
use crate::procs::Chosen;
use crate::render::{self, json};
use crate::report::{self, Report};
use crate::request::{self, Subject, WhoRequest, WhoWhat};
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
    let subjects = match &req.what {
        WhoWhat::Pid(pid) => return run_pid(req, *pid, w, report),
        WhoWhat::Subjects(s) => s,
    };
    // The namespace asked about decides the verdict; every other namespace
    // we can enter is looked at too, for "it is free here, but ...".
    let main = match &req.netns {
        Some(spec) => Netns::open(spec)?,
        None => Netns::current().map_err(|e| anyhow::anyhow!("cannot open /proc/thread-self/ns/net: {e}"))?,
    };
    let others: Vec<Netns> = netns::discover().0.into_iter().filter(|n| n.id.inode != main.id.inode).collect();
    let main_inode = main.id.inode;
    // Per-namespace sysctls (bindv6only, port ranges) and the listen
    // overflow counters are read from inside it.
    let (sys, before) = main.run(|| (Sysctls::read(), overflow_counters()))?;
    let scope = Scope::WithOthers(main, others);
    let source = Chosen::new(req.owners_from);
    let ports = request::ports_of(subjects);
    let mut port_answers = if ports.is_empty() {
        Vec::new()
    } else {
        ports_answers(req, &ports, &scope, main_inode, &sys, before, &source, report)?
    }
    .into_iter();
    let mut answers = Vec::with_capacity(subjects.len());
    for s in subjects {
        answers.push(match s {
            Subject::Port(_) => port_answers.next().expect("one answer per port"),
            Subject::Unix(spec) => unix_answer(spec, &scope, main_inode, &source, report)?,
        });
    }
    if req.pids {
        let mut pids: Vec<u32> = answers.iter().flat_map(|a| a.holders.iter().map(|h| h.pid)).collect();
        pids.sort_unstable();
        pids.dedup();
        render::pids(w, &pids)?;
        return Ok(report::status(!pids.is_empty()));
    }
    match (req.out.is_json(), answers.as_slice()) {
        (true, [one]) => json::object(w, one)?,
        (true, many) => json::object(w, &many)?,
        (false, many) => {
            for (i, a) in many.iter().enumerate() {
                if i > 0 {
                    writeln!(w)?;
                }
                render::who::write(w, a, req.out.style())?;
            }
        }
    }
    // 0 only when every spec asked about is in use (or published by NAT).
    Ok(report::status(answers.iter().all(|a| a.verdict.in_use || a.verdict.published)))
}

/// The answers for the port targets, in their order: one dump of the
/// kernel's tables for all of them (with their listeners' clients, for who
/// is connected), the NAT rules read meanwhile.
#[allow(clippy::too_many_arguments)]
fn ports_answers(
    req: &WhoRequest,
    targets: &[Target],
    scope: &Scope,
    main_inode: u64,
    sys: &Sysctls,
    before: (Option<i64>, Option<i64>),
    source: &Chosen,
    report: &mut Report,
) -> Result<Vec<who::WhoReport>> {
    let started = Instant::now();
    // Clients of the ports' listeners too (their remote port is it), in the
    // same walk of the kernel's tables, for who is connected.
    let plan = inventory::peer_plan(request::ports_query(targets, StateSet::all(), true));
    // The NAT rules of the namespace asked about, read while the kernel is
    // dumped and the owners read (only this port's when there is one).
    let protos: Vec<&str> = targets[0].protos().iter().map(|p| p.as_str()).collect();
    let only = (targets.len() == 1).then(|| (protos.as_slice(), targets[0].port));
    let (inv, scan) = std::thread::scope(|s| {
        let reader = req.nat.then(|| {
            s.spawn(|| match scope {
                Scope::WithOthers(main, _) => inventory::scan_nat(Some(main), only, None),
                _ => NatScan::skipped(),
            })
        });
        let inv = inventory::collect_with_peers(scope, &plan, Owners::Resolve(source), Some(order::listen), report);
        let scan = reader.map_or_else(NatScan::skipped, |r| r.join().unwrap_or_else(|_| NatScan::skipped()));
        (inv, scan)
    });
    let mut inv = inv?;
    inventory::report_nat(std::slice::from_ref(&scan), report);
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
    // kernel's socket tables, for definite bind verdicts: once per port.
    if let Scope::WithOthers(main, _) = scope {
        let mut ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            inventory::kernel_flags(&mut sockets, source, port, Some(main));
        }
    }
    Ok(targets
        .iter()
        .map(|t| {
            let found = who::Found {
                sockets: sockets.iter().filter(|s| t.covers(s)).cloned().collect(),
                other_netns: other_netns.iter().filter(|s| t.covers(s)).cloned().collect(),
                unreadable_netns: inv.unreadable_netns.clone(),
                counters,
                nat: scan.answer(t, &mut inv.procs),
            };
            who::answer(t, found, &mut inv.procs, sys, who::Viewer::me())
        })
        .collect())
}

/// The answer for a unix path or abstract name.
fn unix_answer(
    spec: &UnixSpec,
    scope: &Scope,
    main_inode: u64,
    source: &Chosen,
    report: &mut Report,
) -> Result<who::WhoReport> {
    let lookup = inventory::lookup_unix_socket(spec)?;
    let query = request::unix_query(StateSet::all());
    // Every unix socket, to find those with the name; owners only for those
    // (warnings about the others' would be noise).
    let mut inv = inventory::collect_in(scope, &query, Owners::Skip, Some(order::listen), report)?;
    let mut mine: Vec<Socket> =
        inv.sockets.into_iter().filter(|s| lookup.names(s) || lookup.bound_to_file(s)).collect();
    if let Err(e) = inventory::resolve_owners(&mut mine, source, &mut inv.procs, scope, report) {
        report.warn(format!("could not walk /proc: {e}: owners are unknown"));
    }
    // A path belongs to the filesystem: a socket bound to it counts from
    // whichever namespace. An abstract name belongs to one.
    let (sockets, other_netns): (Vec<Socket>, Vec<Socket>) = match spec {
        UnixSpec::Path(_) => (mine, Vec::new()),
        UnixSpec::Abstract(_) => mine.into_iter().partition(|s| s.netns.as_ref().is_none_or(|n| n.inode == main_inode)),
    };
    let found = who::Found {
        sockets,
        other_netns,
        unreadable_netns: inv.unreadable_netns,
        counters: OverflowCounters::default(),
        nat: crate::domain::nat::NatAnswer::none(),
    };
    Ok(unix::answer(&lookup, found, &mut inv.procs, who::Viewer::me()))
}

/// `who --pid PID`: its sockets, in its own network namespace (or the one
/// `--netns` names).
fn run_pid(req: &WhoRequest, pid: u32, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(UserError::new(format!("no process {pid}")).into());
    }
    let ns = match &req.netns {
        Some(spec) => Some(Netns::open(spec)?),
        // Its own namespace; ours when we cannot open it (not root).
        None => Netns::open(&format!("pid:{pid}")).ok().filter(|n| !n.current),
    };
    let scope = ns.map_or(Scope::Current, Scope::One);
    // Every TCP and UDP socket, as stats asks for them.
    let query = request::stats_query();
    let source = Chosen::new(req.owners_from);
    let mut inv = inventory::collect_in(&scope, &query, Owners::Resolve(&source), Some(order::listen), report)?;
    if inv.map.as_ref().is_some_and(|m| m.denied.contains(&pid)) {
        report.warn(format!(
            "could not read the descriptors of process {pid}{}: its sockets are not listed",
            if crate::sys::is_root() { " (even as root: a sandbox or LSM hides them)" } else { "; run as root" }
        ));
    }
    let r = who::process_report(pid, inv.sockets, &mut inv.procs);
    let held = !r.sockets.is_empty();
    if req.pids {
        let pids: Vec<u32> = if held { vec![pid] } else { Vec::new() };
        render::pids(w, &pids)?;
    } else if req.out.is_json() {
        json::object(w, &r)?;
    } else {
        render::who::write_process(w, &r, req.out.style())?;
    }
    Ok(report::status(held))
}
