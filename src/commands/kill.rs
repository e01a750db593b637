//! `portctl kill SPEC`: free a port or a unix socket by signalling the
//! processes holding it (for a unix listener: the server, not its clients) —
//! asking first, refusing pid 1 and our own ancestry, and through pidfds so a
//! recycled pid is never hit.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::domain::kill::{self, KillReport};
use crate::domain::unix::FileState;
use crate::error::UserError;
use crate::filter::UnixSpec;
use crate::inventory::{self, Owners, Scope};
use crate::model::{Proto, Socket, State, StateSet, UnixName};
use crate::netns::Netns;
use crate::procs::Chosen;
use crate::procs::pidfd::{self, Delivery, PidFd};
use crate::render::{self, json};
use crate::report::{EXIT_NO_MATCH, Report};
use crate::request::{self, KillRequest, Subject};
use crate::text::plural;

pub fn run(req: &KillRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let source = Chosen::new(req.owners_from);
    let (sockets, mut inv_procs, mut out, label, stale_file) = match &req.target {
        Subject::Port(t) => {
            let query = request::port_query(t, StateSet::all(), true);
            // The NAT rules, read while the kernel is dumped and the owners
            // read: a port a container or a Kubernetes service publishes is
            // stopped there.
            let protos: Vec<&str> = t.protos().iter().map(|p| p.as_str()).collect();
            let (inv, scan) = std::thread::scope(|s| {
                let reader = s.spawn(|| inventory::scan_nat(None, Some((&protos, t.port)), None));
                let inv = inventory::collect(&query, Owners::Resolve(&source), report);
                (inv, reader.join().unwrap_or_else(|_| inventory::NatScan::skipped()))
            });
            let mut inv = inv?;
            inventory::report_nat(std::slice::from_ref(&scan), report);
            let nat = scan.answer(t, &mut inv.procs);
            let sockets: Vec<Socket> =
                inv.sockets.into_iter().filter(|s| t.served_by(s) && s.port() == t.port).collect();
            let mut out = new_report(req, Some(t.port), t.protos(), None);
            out.hints = kill::nat_hints(&nat);
            out.nat = nat;
            (sockets, inv.procs, out, t.label(), false)
        }
        Subject::Unix(spec) => {
            let lookup = inventory::lookup_unix(spec)?;
            if let Some(FileState::NotSocket(what)) = lookup.file {
                return Err(UserError::new(format!("{} is not a socket: it is {what}", spec.label())).into());
            }
            let scope = unix_scope(spec)?;
            let query = request::unix_query(StateSet::all());
            // Every unix socket, to find those with the name; owners only
            // for those (the others' hidden owners are none of our business).
            let mut inv = inventory::collect_in(&scope, &query, Owners::Skip, None, report)?;
            let mut sockets: Vec<Socket> = lookup.sockets(&inv.sockets).into_iter().cloned().collect();
            if sockets.is_empty() {
                // The file is gone (or replaced) but a server still has the name.
                sockets = lookup.orphans(&inv.sockets).into_iter().cloned().collect();
            }
            inventory::resolve_owners(&mut sockets, &source, &mut inv.procs, &scope, report)
                .map_err(|e| anyhow::anyhow!("could not walk /proc: {e}"))?;
            let stale = matches!(lookup.file, Some(FileState::Socket(_)));
            let name = match spec {
                UnixSpec::Path(p) => UnixName::path(p.as_str()),
                UnixSpec::Abstract(n) => UnixName::abstract_name(n.as_str()),
            };
            (sockets, inv.procs, new_report(req, None, vec![Proto::Unix], Some(name)), spec.label(), stale)
        }
    };
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
        return finish(w, req, &out, EXIT_NO_MATCH);
    }
    let protected = kill::protected_pids(&mut inv_procs);
    let cmdlines: Vec<(u32, &str)> =
        sockets.iter().flat_map(|s| s.owners.iter().map(|o| (o.pid, &*o.cmdline))).collect();
    let mut proxies = crate::domain::who::Proxy::of(cmdlines, &mut inv_procs);
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
    let (targets, to_signal) = kill::plan(&holders, &protected, &proxies, req.force, req.dry_run);
    out.targets = targets;
    if !to_signal.is_empty() && !req.yes && !confirm(req, &out, &to_signal, &label)? {
        out.message = "nothing signalled: not confirmed".into();
        return finish(w, req, &out, EXIT_NO_MATCH);
    }
    let mut pidfds: Vec<(usize, PidFd)> = Vec::new();
    for i in to_signal {
        let h = &holders[&out.targets[i].pid];
        let (result, reason) = match pidfd::signal_holder(Path::new("/proc"), h.pid, &h.links, req.signal.number) {
            Delivery::Signalled(p) => {
                pidfds.push((i, p));
                ("signalled", None)
            }
            Delivery::Gone(why) => ("gone", Some(why.to_string())),
            Delivery::NotPermitted(why) => ("not_permitted", Some(why)),
        };
        out.targets[i].result = result.into();
        out.targets[i].reason = reason;
    }
    if let Some(limit) = req.wait {
        wait_for_free(req, &mut out, &pidfds, limit)?;
    }
    out.message = kill::summary(&out, &label);
    if let Subject::Unix(UnixSpec::Path(p)) = &req.target
        && out.freed == Some(true)
        && matches!(inventory::lookup_unix(&UnixSpec::Path(p.clone()))?.file, Some(FileState::Socket(_)))
    {
        out.message.push_str(&format!(
            "; {p} remains, now stale: a new bind() fails until it is removed (rm {p}), unless the server unlinks it first"
        ));
    }
    let code = kill::status(&out);
    finish(w, req, &out, code)
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

/// `--wait`: until the listeners are gone; with `--then-kill`, SIGKILL what
/// is left and wait a little more. Records the outcome in `out`.
fn wait_for_free(req: &KillRequest, out: &mut KillReport, pidfds: &[(usize, PidFd)], limit: Duration) -> Result<()> {
    let gone = |timeout| -> Result<bool> {
        match &req.target {
            Subject::Port(t) => {
                let listeners = request::port_query(t, StateSet::of(&[State::Listen, State::Unconn]), false);
                inventory::poll_listeners(&listeners, |s| t.served_by(s), false, timeout, Duration::from_millis(100))
            }
            Subject::Unix(spec) => inventory::poll_unix(spec, false, timeout, Duration::from_millis(100)),
        }
    };
    let started = Instant::now();
    let mut freed = gone(limit)?;
    if !freed && req.then_kill {
        for (i, p) in pidfds {
            if !p.exited() && p.signal(libc::SIGKILL).is_ok() {
                out.targets[*i].result = "killed".into();
                out.targets[*i].reason = Some(format!("still there after {}; sent SIGKILL", kill::secs(limit)));
            }
        }
        freed = gone(Duration::from_secs(5))?;
    }
    out.freed = Some(freed);
    out.waited_ms = Some(started.elapsed().as_millis() as u64);
    if let Subject::Port(t) = &req.target {
        // Only TCP has TIME_WAIT: the UDP part of the query asks for nothing.
        let time_wait = request::port_query(t, StateSet::of(&[State::TimeWait]), false);
        out.time_wait_left = Some(crate::sock_diag::dump(&time_wait)?.sockets.len());
    }
    Ok(())
}

/// Asks on the terminal; refuses (as an error) when there is none.
fn confirm(req: &KillRequest, out: &KillReport, which: &[usize], label: &str) -> Result<bool> {
    let processes = if which.len() == 1 { "process" } else { "processes" };
    if !std::io::stdin().is_terminal() {
        return Err(UserError::new(format!(
            "refusing to signal {} {processes} holding {label} without confirmation: stdin is not a terminal",
            which.len()
        ))
        .hint("pass --yes, or --dry-run to see what would be signalled")
        .into());
    }
    let question = format!("send {} to {} {processes} holding {label}? [y/N]", out.signal, which.len());
    render::kill::prompt(&mut std::io::stderr().lock(), out, which, &question, req.out.style())?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn finish(w: &mut impl Write, req: &KillRequest, out: &KillReport, code: i32) -> Result<i32> {
    if req.out.is_json() {
        json::object(w, out)?;
    } else {
        render::kill::write(w, out, req.out.style())?;
    }
    Ok(code)
}
