//! `portctl kill SPEC...`: free ports and unix sockets by signalling the
//! processes holding them (for a unix listener: the server, not its clients)
//! — asking first, refusing pid 1 and our own ancestry, and through pidfds so
//! a recycled pid is never hit. A process holding several of them is asked
//! about and signalled once.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::domain::kill::{self, Holder, KillReport};
use crate::domain::unix::FileState;
use crate::domain::who::{Proxy, Target};
use crate::error::UserError;
use crate::filter::UnixSpec;
use crate::inventory::{self, Owners, Scope};
use crate::model::{Proto, Socket, State, StateSet, UnixName};
use crate::netns::Netns;
use crate::procs::pidfd::{self, Delivery, PidFd};
use crate::procs::{Chosen, ProcTable};
use crate::render::{self, json};
use crate::report::{EXIT_ERROR, EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::request::{self, KillRequest, Subject};
use crate::text::plural;

/// One spec's part: its report and its holders.
struct Part {
    subject: Subject,
    out: KillReport,
    holders: BTreeMap<u32, Holder>,
    /// Indexes into `out.targets` still to signal.
    to_signal: Vec<usize>,
}

/// What was found for one spec, before the plan.
struct Found {
    subject: Subject,
    sockets: Vec<Socket>,
    out: KillReport,
    /// A unix path whose socket file nobody is bound to.
    stale_file: bool,
}

pub fn run(req: &KillRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let source = Chosen::new(req.owners_from);
    let ports = request::ports_of(&req.targets);
    // Process details for the plan (ancestry, docker-proxy), read lazily.
    let mut procs = ProcTable::new(Path::new("/proc"));
    let mut found: Vec<Found> = Vec::new();
    let mut by_port = if ports.is_empty() { Vec::new() } else { port_parts(req, &ports, &source, report)? }.into_iter();
    for s in &req.targets {
        found.push(match s {
            Subject::Port(_) => by_port.next().expect("one part per port"),
            Subject::Unix(spec) => unix_part(req, spec, &source, report)?,
        });
    }
    let protected = kill::protected_pids(&mut procs);
    let mut parts: Vec<Part> = Vec::new();
    for f in found {
        let Found { subject, sockets, mut out, stale_file } = f;
        let label = subject.label();
        let holders = kill::holders(&sockets);
        let hidden = sockets.iter().filter(|s| s.owners_hidden).count();
        if hidden > 0 {
            report.warn(format!(
                "{hidden} socket{} on {label} belong{} to processes portctl could not read{}",
                plural(hidden),
                if hidden == 1 { "s" } else { "" },
                if crate::sys::is_root() {
                    " (even as root: a sandbox or LSM hides them)"
                } else {
                    ": run as root to signal them"
                }
            ));
        }
        let mut to_signal = Vec::new();
        if holders.is_empty() {
            out.message = if hidden > 0 {
                format!("nothing portctl may signal: the holders of {label} could not be read")
            } else if stale_file {
                format!(
                    "nothing to kill: no process holds {label}; it is a stale socket file (a new bind() fails until it is removed: rm {label})"
                )
            } else {
                kill::nothing_to_kill(&label, &sockets, &out.nat)
            };
        } else {
            let cmdlines: Vec<(u32, &str)> =
                sockets.iter().flat_map(|s| s.owners.iter().map(|o| (o.pid, &*o.cmdline))).collect();
            let mut proxies = Proxy::of(cmdlines, &mut procs);
            proxies.sort_by_key(|p| p.pid);
            proxies.dedup_by_key(|p| p.pid);
            // The NAT hints name the container already when its rule was read.
            if out.hints.is_empty() {
                for p in &proxies {
                    out.hints.push(format!(
                        "the container at {} serves {label} through docker-proxy: stop it with {}",
                        p.target,
                        p.stop()
                    ));
                }
            }
            let (targets, todo) = kill::plan(&holders, &protected, &proxies, req.force, req.dry_run);
            out.targets = targets;
            to_signal = todo;
        }
        parts.push(Part { subject, out, holders, to_signal });
    }
    // Every process to signal, once, with every socket it holds on the specs.
    let mut union: BTreeMap<u32, Holder> = BTreeMap::new();
    for p in &parts {
        for &i in &p.to_signal {
            let h = &p.holders[&p.out.targets[i].pid];
            let u = union.entry(h.pid).or_insert_with(|| Holder { links: Vec::new(), ..h.clone() });
            u.links.extend(h.links.iter().copied().filter(|l| !u.links.contains(l)).collect::<Vec<_>>());
        }
    }
    if !union.is_empty() && !req.yes && !confirm(req, &parts, &union)? {
        for p in &mut parts {
            if p.out.message.is_empty() {
                p.out.message = "nothing signalled: not confirmed".into();
            }
        }
        return finish(w, req, &parts, EXIT_NO_MATCH);
    }
    let mut results: BTreeMap<u32, (String, Option<String>)> = BTreeMap::new();
    let mut pidfds: Vec<(u32, PidFd)> = Vec::new();
    for h in union.values() {
        let (result, reason) = match pidfd::signal_holder(Path::new("/proc"), h.pid, &h.links, req.signal.number) {
            Delivery::Signalled(p) => {
                pidfds.push((h.pid, p));
                ("signalled", None)
            }
            Delivery::Gone(why) => ("gone", Some(why.to_string())),
            Delivery::NotPermitted(why) => ("not_permitted", Some(why)),
        };
        results.insert(h.pid, (result.to_string(), reason));
    }
    for p in &mut parts {
        for &i in &p.to_signal {
            let t = &mut p.out.targets[i];
            if let Some((result, reason)) = results.get(&t.pid) {
                t.result = result.clone();
                t.reason = reason.clone();
            }
        }
    }
    if let Some(limit) = req.wait {
        let deadline = Instant::now() + limit;
        for p in &mut parts {
            if !p.out.targets.is_empty() {
                wait_for_free(req, p, &pidfds, deadline, limit)?;
            }
        }
    }
    let mut codes = Vec::new();
    for p in &mut parts {
        if p.out.targets.is_empty() {
            codes.push(EXIT_NO_MATCH);
            continue;
        }
        p.out.message = kill::summary(&p.out, &p.subject.label());
        if let Subject::Unix(UnixSpec::Path(path)) = &p.subject
            && p.out.freed == Some(true)
            && matches!(inventory::lookup_unix(&UnixSpec::Path(path.clone()))?.file, Some(FileState::Socket(_)))
        {
            p.out.message.push_str(&format!(
                "; {path} remains, now stale: a new bind() fails until it is removed (rm {path}), unless the server unlinks it first"
            ));
        }
        codes.push(kill::status(&p.out));
    }
    // One spec failing fails the run; else any spec signalled is success.
    let code = if codes.contains(&EXIT_ERROR) {
        EXIT_ERROR
    } else if codes.contains(&EXIT_MATCHED) {
        EXIT_MATCHED
    } else {
        EXIT_NO_MATCH
    };
    finish(w, req, &parts, code)
}

/// The port specs' parts, in their order: one dump for all of them, the
/// NAT rules read meanwhile (a port a container or a Kubernetes service
/// publishes is stopped there).
fn port_parts(req: &KillRequest, targets: &[Target], source: &Chosen, report: &mut Report) -> Result<Vec<Found>> {
    let query = request::ports_query(targets, StateSet::all(), true);
    let protos: Vec<&str> = targets[0].protos().iter().map(|p| p.as_str()).collect();
    let only = (targets.len() == 1).then(|| (protos.as_slice(), targets[0].port));
    let (inv, scan) = std::thread::scope(|s| {
        let reader = s.spawn(|| inventory::scan_nat(None, only, None));
        let inv = inventory::collect(&query, Owners::Resolve(source), report);
        (inv, reader.join().unwrap_or_else(|_| inventory::NatScan::skipped()))
    });
    let mut inv = inv?;
    inventory::report_nat(std::slice::from_ref(&scan), report);
    let mut out = Vec::new();
    for t in targets {
        let sockets: Vec<Socket> =
            inv.sockets.iter().filter(|s| t.covers(s) && t.served_by(s) && s.port() == t.port).cloned().collect();
        let nat = scan.answer(t, &mut inv.procs);
        let mut report = new_report(req, Some(t.port), t.protos(), None);
        report.hints = kill::nat_hints(&nat);
        report.nat = nat;
        out.push(Found { subject: Subject::Port(t.clone()), sockets, out: report, stale_file: false });
    }
    Ok(out)
}

/// A unix name's part: the sockets bound to it (or, when its file is gone
/// or replaced, still holding its name) and their owners.
fn unix_part(req: &KillRequest, spec: &UnixSpec, source: &Chosen, report: &mut Report) -> Result<Found> {
    let lookup = inventory::lookup_unix_socket(spec)?;
    let scope = unix_scope(spec)?;
    let query = request::unix_query(StateSet::all());
    // Every unix socket, to find those with the name; owners only for those
    // (the others' hidden owners are none of our business).
    let mut inv = inventory::collect_in(&scope, &query, Owners::Skip, None, report)?;
    let mut sockets: Vec<Socket> = lookup.sockets(&inv.sockets).into_iter().cloned().collect();
    if sockets.is_empty() {
        // The file is gone (or replaced) but a server still has the name.
        sockets = lookup.orphans(&inv.sockets).into_iter().cloned().collect();
    }
    inventory::resolve_owners(&mut sockets, source, &mut inv.procs, &scope, report)
        .map_err(|e| anyhow::anyhow!("could not read the owners: {e}"))?;
    let stale_file = matches!(lookup.file, Some(FileState::Socket(_)));
    let name = match spec {
        UnixSpec::Path(p) => UnixName::path(p.as_str()),
        UnixSpec::Abstract(n) => UnixName::abstract_name(n.as_str()),
    };
    let out = new_report(req, None, vec![Proto::Unix], Some(name));
    Ok(Found { subject: Subject::Unix(spec.clone()), sockets, out, stale_file })
}

fn new_report(req: &KillRequest, port: Option<u16>, protos: Vec<Proto>, unix: Option<UnixName>) -> KillReport {
    KillReport {
        port,
        protos,
        unix,
        signal: format!("SIG{}", req.signal.name),
        dry_run: req.dry_run,
        targets: Vec::new(),
        freed: None,
        waited_ms: None,
        time_wait_left: None,
        message: String::new(),
        nat: crate::domain::nat::NatAnswer::none(),
        hints: Vec::new(),
    }
}

/// Where a unix name's sockets may be: a path's in any namespace (it
/// belongs to the filesystem), an abstract name's in this one.
fn unix_scope(spec: &UnixSpec) -> Result<Scope> {
    Ok(match spec {
        UnixSpec::Abstract(_) => Scope::Current,
        UnixSpec::Path(_) => {
            let main = Netns::current().map_err(|e| anyhow::anyhow!("cannot open /proc/thread-self/ns/net: {e}"))?;
            let others = crate::netns::discover().0.into_iter().filter(|n| n.id.inode != main.id.inode).collect();
            Scope::WithOthers(main, others)
        }
    })
}

/// `--wait`: until the spec's listeners are gone (by `deadline`); with
/// `--then-kill`, SIGKILL what is left and wait a little more. Records the
/// outcome in the part's report.
fn wait_for_free(
    req: &KillRequest,
    p: &mut Part,
    pidfds: &[(u32, PidFd)],
    deadline: Instant,
    limit: Duration,
) -> Result<()> {
    let subject = p.subject.clone();
    let gone = |timeout| -> Result<bool> {
        match &subject {
            Subject::Port(t) => {
                let listeners = request::port_query(t, StateSet::of(&[State::Listen, State::Unconn]), false);
                inventory::poll_listeners(&listeners, |s| t.served_by(s), false, timeout, Duration::from_millis(100))
            }
            Subject::Unix(spec) => inventory::poll_unix(spec, false, timeout, Duration::from_millis(100)),
        }
    };
    let started = Instant::now();
    let mut freed = gone(deadline.saturating_duration_since(Instant::now()))?;
    if !freed && req.then_kill {
        for (pid, fd) in pidfds {
            if let Some(target) = p.out.targets.iter_mut().find(|x| x.pid == *pid)
                && !fd.exited()
                && fd.signal(libc::SIGKILL).is_ok()
            {
                target.result = "killed".into();
                target.reason = Some(format!("still there after {}; sent SIGKILL", kill::secs(limit)));
            }
        }
        freed = gone(Duration::from_secs(5))?;
    }
    p.out.freed = Some(freed);
    p.out.waited_ms = Some(started.elapsed().as_millis() as u64);
    if let Subject::Port(t) = &subject {
        // Only TCP has TIME_WAIT: the UDP part of the query asks for nothing.
        let time_wait = request::port_query(t, StateSet::of(&[State::TimeWait]), false);
        p.out.time_wait_left = Some(crate::sock_diag::dump(&time_wait)?.sockets.len());
    }
    Ok(())
}

/// Asks on the terminal; refuses (as an error) when there is none.
fn confirm(req: &KillRequest, parts: &[Part], union: &BTreeMap<u32, Holder>) -> Result<bool> {
    let processes = if union.len() == 1 { "process" } else { "processes" };
    let labels: Vec<String> = parts.iter().filter(|p| !p.to_signal.is_empty()).map(|p| p.subject.label()).collect();
    let label = labels.join(", ");
    if !std::io::stdin().is_terminal() {
        return Err(UserError::new(format!(
            "refusing to signal {} {processes} holding {label} without confirmation: stdin is not a terminal",
            union.len()
        ))
        .hint("pass --yes, or --dry-run to see what would be signalled")
        .into());
    }
    let signal = format!("SIG{}", req.signal.name);
    let question = format!("send {signal} to {} {processes} holding {label}? [y/N]", union.len());
    let holders: Vec<&Holder> = union.values().collect();
    render::kill::prompt(&mut std::io::stderr().lock(), &holders, &question, req.out.style())?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn finish(w: &mut impl Write, req: &KillRequest, parts: &[Part], code: i32) -> Result<i32> {
    match (req.out.is_json(), parts) {
        (true, [one]) => json::object(w, &one.out)?,
        (true, many) => json::object(w, &many.iter().map(|p| &p.out).collect::<Vec<_>>())?,
        (false, many) => {
            for (i, p) in many.iter().enumerate() {
                if i > 0 && many.len() > 1 {
                    writeln!(w)?;
                }
                render::kill::write(w, &p.out, req.out.style())?;
            }
        }
    }
    Ok(code)
}
