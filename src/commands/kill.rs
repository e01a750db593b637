//! `portctl kill SPEC...`: free ports by signalling the processes holding
//! them — asking first, refusing pid 1 and our own ancestry, and through
//! pidfds so a recycled pid is never hit. A process holding several of the
//! ports is asked about and signalled once.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::domain::kill::{self, Holder, KillReport};
use crate::domain::who::Target;
use crate::error::UserError;
use crate::inventory::{self, Owners};
use crate::model::{Socket, State, StateSet};
use crate::procs::Chosen;
use crate::procs::pidfd::{self, Delivery, PidFd};
use crate::render::{self, json};
use crate::report::{EXIT_ERROR, EXIT_MATCHED, EXIT_NO_MATCH, Report};
use crate::request::{self, KillRequest};
use crate::text::plural;

/// One port's part: its report and its holders.
struct Part {
    target: Target,
    out: KillReport,
    holders: BTreeMap<u32, Holder>,
    /// Indexes into `out.targets` still to signal.
    to_signal: Vec<usize>,
}

pub fn run(req: &KillRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let source = Chosen::new(req.owners_from);
    let query = request::ports_query(&req.targets, StateSet::all(), true);
    let mut inv = inventory::collect(&query, Owners::Resolve(&source), report)?;
    let protected = kill::protected_pids(&mut inv.procs);
    let mut parts: Vec<Part> = Vec::new();
    for t in &req.targets {
        let sockets: Vec<Socket> = inv.sockets.iter().filter(|s| t.covers(s) && t.served_by(s)).cloned().collect();
        let label = t.label();
        let holders = kill::holders(&sockets, t.port);
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
        let mut out = KillReport {
            port: t.port,
            protos: t.protos(),
            signal: format!("SIG{}", req.signal.name),
            dry_run: req.dry_run,
            targets: Vec::new(),
            freed: None,
            waited_ms: None,
            time_wait_left: None,
            message: String::new(),
        };
        let mut to_signal = Vec::new();
        if holders.is_empty() {
            out.message = if hidden > 0 {
                format!("nothing portctl may signal: the holders of {label} could not be read")
            } else {
                kill::nothing_to_kill(&label, &sockets)
            };
        } else {
            let (targets, todo) = kill::plan(&holders, &protected, req.force, req.dry_run);
            out.targets = targets;
            to_signal = todo;
        }
        parts.push(Part { target: t.clone(), out, holders, to_signal });
    }
    // Every process to signal, once, with every socket it holds on the ports.
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
        if !p.out.targets.is_empty() {
            p.out.message = kill::summary(&p.out, &p.target.label());
            codes.push(kill::status(&p.out));
        } else {
            codes.push(EXIT_NO_MATCH);
        }
    }
    // One port failing fails the run; else any port signalled is success.
    let code = if codes.contains(&EXIT_ERROR) {
        EXIT_ERROR
    } else if codes.contains(&EXIT_MATCHED) {
        EXIT_MATCHED
    } else {
        EXIT_NO_MATCH
    };
    finish(w, req, &parts, code)
}

/// `--wait`: until the port's listeners are gone (by `deadline`); with
/// `--then-kill`, SIGKILL what is left and wait a little more. Records the
/// outcome in the part's report.
fn wait_for_free(
    req: &KillRequest,
    p: &mut Part,
    pidfds: &[(u32, PidFd)],
    deadline: Instant,
    limit: Duration,
) -> Result<()> {
    let t = &p.target;
    let listeners = request::port_query(t, StateSet::of(&[State::Listen, State::Unconn]), false);
    let gone =
        |timeout| inventory::poll_listeners(&listeners, |s| t.served_by(s), false, timeout, Duration::from_millis(100));
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
    // Only TCP has TIME_WAIT: the UDP part of the query asks for nothing.
    let time_wait = request::port_query(t, StateSet::of(&[State::TimeWait]), false);
    p.out.time_wait_left = Some(crate::sock_diag::dump(&time_wait)?.sockets.len());
    Ok(())
}

/// Asks on the terminal; refuses (as an error) when there is none.
fn confirm(req: &KillRequest, parts: &[Part], union: &BTreeMap<u32, Holder>) -> Result<bool> {
    let processes = if union.len() == 1 { "process" } else { "processes" };
    let labels: Vec<String> = parts.iter().filter(|p| !p.to_signal.is_empty()).map(|p| p.target.label()).collect();
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
