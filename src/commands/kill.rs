//! `portctl kill SPEC`: free a port by signalling the processes holding it —
//! asking first, refusing pid 1 and our own ancestry, and through pidfds so a
//! recycled pid is never hit.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::KillArgs;
use crate::commands::wait;
use crate::error::UserError;
use crate::inventory::{self, Owners, plural};
use crate::model::{Proto, Socket, State, StateSet};
use crate::procs::pidfd::{PidFd, still_holds};
use crate::query;
use crate::render::{self, sanitize::escape};
use crate::report::{EXIT_ERROR, EXIT_MATCHED, EXIT_NO_MATCH, Report};

/// `kill --json`, documented in docs/json.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillReport {
    pub port: u16,
    pub protos: Vec<Proto>,
    pub signal: String,
    pub dry_run: bool,
    pub targets: Vec<Target>,
    /// With `--wait`: whether the listeners were gone in time; else null.
    pub freed: Option<bool>,
    pub waited_ms: Option<u64>,
    /// TIME_WAIT sockets left on the port after waiting.
    pub time_wait_left: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub pid: u32,
    pub name: String,
    pub user: String,
    /// `signalled`, `would_signal` (dry run), `gone` (exited or no longer
    /// holds the socket), `not_permitted`, `refused` (pid 1 or our own
    /// ancestry, without --force), `killed` (--then-kill escalation).
    pub result: String,
    pub reason: Option<String>,
    /// Inodes of the sockets on the port it holds.
    pub sockets: Vec<u64>,
}

/// One holder: (fd, inode) pairs on the port.
struct Holder {
    pid: u32,
    name: String,
    user: String,
    links: Vec<(u32, u64)>,
}

pub fn run(args: &KillArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let spec = &args.spec;
    let port = query::resolve_port(spec)?;
    let protos = query::spec_protos(spec);
    let mut inv =
        inventory::collect(&query::port_query(port, &protos, StateSet::all(), true), Owners::Resolve, report)?;
    let sockets = match spec.addr {
        None => inv.sockets,
        Some(a) => inv.sockets.into_iter().filter(|s| crate::diagnose::addresses_overlap(a, false, s)).collect(),
    };
    let label = match spec.proto {
        Some(p) => format!("{port}/{p}"),
        None => format!("port {port}"),
    };

    let mut holders: BTreeMap<u32, Holder> = BTreeMap::new();
    for s in sockets.iter().filter(|s| s.local.port == port) {
        for o in &s.owners {
            let h = holders.entry(o.pid).or_insert_with(|| Holder {
                pid: o.pid,
                name: o.name.to_string(),
                user: o.user.to_string(),
                links: Vec::new(),
            });
            h.links.push((o.fd, s.inode));
        }
    }
    let hidden = sockets.iter().filter(|s| s.owners_hidden).count();
    if hidden > 0 {
        report.warn(format!(
            "{hidden} socket{} on {label} belong{} to processes you may not see: run as root to signal them",
            plural(hidden),
            if hidden == 1 { "s" } else { "" }
        ));
    }
    let mut out = KillReport {
        port,
        protos: protos.clone(),
        signal: format!("SIG{}", args.signal.name),
        dry_run: args.dry_run,
        targets: Vec::new(),
        freed: None,
        waited_ms: None,
        time_wait_left: None,
        message: String::new(),
    };
    if holders.is_empty() {
        out.message = if hidden > 0 {
            format!("nothing portctl may signal: the holders of {label} are hidden from you (run as root)")
        } else {
            nothing_to_kill(&label, &sockets)
        };
        return finish(w, args, &out, EXIT_NO_MATCH);
    }

    let protected = protected_pids(&mut inv.procs);
    let mut to_signal = Vec::new();
    for h in holders.values() {
        let mut t = Target {
            pid: h.pid,
            name: h.name.clone(),
            user: h.user.clone(),
            result: String::new(),
            reason: None,
            sockets: h.links.iter().map(|l| l.1).collect(),
        };
        if !args.force && protected.contains(&h.pid) {
            t.result = "refused".into();
            t.reason = Some(if h.pid == 1 {
                "pid 1 (init): use --force to signal it".into()
            } else {
                "portctl itself or one of its ancestors (your shell): use --force".into()
            });
        } else if args.dry_run {
            t.result = "would_signal".into();
        } else {
            to_signal.push(out.targets.len());
        }
        out.targets.push(t);
    }

    if !to_signal.is_empty() && !args.yes && !confirm(&out, &to_signal, &label)? {
        out.message = "nothing signalled: not confirmed".into();
        return finish(w, args, &out, EXIT_NO_MATCH);
    }

    let proc_root = Path::new("/proc");
    let mut pidfds: Vec<(usize, PidFd)> = Vec::new();
    for &i in &to_signal {
        let h = &holders[&out.targets[i].pid];
        let (result, reason, pidfd) = deliver(proc_root, h.pid, &h.links, args.signal.number);
        out.targets[i].result = result.into();
        out.targets[i].reason = reason;
        if let Some(p) = pidfd {
            pidfds.push((i, p));
        }
    }

    if let Some(limit) = args.wait_limit() {
        let started = Instant::now();
        let mut freed = wait::until(port, &protos, spec.addr, false, limit, Duration::from_millis(100))?;
        if !freed && args.then_kill {
            for (i, p) in &pidfds {
                if !p.exited() && p.signal(libc::SIGKILL).is_ok() {
                    out.targets[*i].result = "killed".into();
                    out.targets[*i].reason = Some(format!("still there after {}; sent SIGKILL", fmt_secs(limit)));
                }
            }
            freed = wait::until(port, &protos, spec.addr, false, Duration::from_secs(5), Duration::from_millis(50))?;
        }
        out.freed = Some(freed);
        out.waited_ms = Some(started.elapsed().as_millis() as u64);
        out.time_wait_left = Some(time_wait_left(port, &protos)?);
    }

    let signalled = out.targets.iter().filter(|t| matches!(t.result.as_str(), "signalled" | "killed")).count();
    let failed = out.targets.iter().filter(|t| matches!(t.result.as_str(), "not_permitted" | "refused")).count();
    out.message = summary(&out, &label, signalled, failed);
    let code = if args.dry_run {
        EXIT_MATCHED
    } else if failed > 0 || out.freed == Some(false) {
        EXIT_ERROR
    } else if signalled == 0 {
        EXIT_NO_MATCH
    } else {
        EXIT_MATCHED
    };
    finish(w, args, &out, code)
}

/// Signals one holder, race-free: pin the process with a pidfd, then check
/// that it still holds one of the sockets (`links`: fd, inode), and only then
/// signal through the pidfd. Returns the result name, a reason, and the pidfd
/// of a signalled process (for waiting and escalation).
pub(crate) fn deliver(
    proc_root: &Path,
    pid: u32,
    links: &[(u32, u64)],
    sig: i32,
) -> (&'static str, Option<String>, Option<PidFd>) {
    let gone = |why: &str| ("gone", Some(why.to_string()), None);
    let pidfd = match PidFd::open(pid) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return gone("exited before it could be signalled"),
        Err(e) => return ("not_permitted", Some(format!("pidfd_open: {e}")), None),
    };
    if !links.iter().any(|&(fd, inode)| still_holds(proc_root, pid, fd, inode)) {
        return gone("no longer holds the socket");
    }
    match pidfd.signal(sig) {
        Ok(()) => ("signalled", None, Some(pidfd)),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => gone("exited before it could be signalled"),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            ("not_permitted", Some("not permitted: run as its user or as root".into()), None)
        }
        Err(e) => ("not_permitted", Some(e.to_string()), None),
    }
}

fn nothing_to_kill(label: &str, sockets: &[Socket]) -> String {
    let tw: Vec<&Socket> = sockets.iter().filter(|s| s.state == State::TimeWait).collect();
    if tw.is_empty() {
        return format!("nothing to kill: no process holds {label}");
    }
    let longest = crate::model::longest_timer_ms(tw.iter().copied());
    format!(
        "nothing to kill: only {} TIME_WAIT socket{} remain{} on {label}, held by no process; the port frees within {}",
        tw.len(),
        plural(tw.len()),
        if tw.len() == 1 { "s" } else { "" },
        render::duration_ms(longest)
    )
}

/// pid 1, this process and its ancestors (the shell that runs us).
fn protected_pids(procs: &mut crate::procs::ProcTable) -> Vec<u32> {
    let mut v = vec![1, std::process::id()];
    let mut pid = std::process::id();
    for _ in 0..64 {
        match procs.info(pid).ppid {
            Some(pp) if pp > 1 && !v.contains(&pp) => {
                v.push(pp);
                pid = pp;
            }
            _ => break,
        }
    }
    v
}

/// Asks on the terminal; refuses (as an error) when there is none.
fn confirm(out: &KillReport, idx: &[usize], label: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UserError::new(format!(
            "refusing to signal {} process{} holding {label} without confirmation: stdin is not a terminal",
            idx.len(),
            if idx.len() == 1 { "" } else { "es" }
        ))
        .hint("pass --yes, or --dry-run to see what would be signalled")
        .into());
    }
    let mut err = std::io::stderr().lock();
    for &i in idx {
        let t = &out.targets[i];
        writeln!(err, "  {} (pid {}, user {})", escape(&t.name), t.pid, escape(&t.user))?;
    }
    write!(
        err,
        "send {} to {} process{} holding {label}? [y/N] ",
        out.signal,
        idx.len(),
        if idx.len() == 1 { "" } else { "es" }
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn time_wait_left(port: u16, protos: &[Proto]) -> Result<usize> {
    if !protos.contains(&Proto::Tcp) {
        return Ok(0);
    }
    let q = query::port_query(port, &[Proto::Tcp], StateSet::of(&[State::TimeWait]), false);
    Ok(crate::sock_diag::dump(&q)?.sockets.len())
}

fn summary(out: &KillReport, label: &str, signalled: usize, failed: usize) -> String {
    if out.dry_run {
        let n = out.targets.iter().filter(|t| t.result == "would_signal").count();
        return format!(
            "dry run: would send {} to {n} process{} holding {label}",
            out.signal,
            if n == 1 { "" } else { "es" }
        );
    }
    let mut s =
        format!("sent {} to {signalled} process{} holding {label}", out.signal, if signalled == 1 { "" } else { "es" });
    if failed > 0 {
        s.push_str(&format!("; {failed} could not be signalled"));
    }
    match (out.freed, out.waited_ms) {
        (Some(true), Some(ms)) => {
            s.push_str(&format!("; free after {}", fmt_secs(Duration::from_millis(ms))));
            if let Some(tw) = out.time_wait_left.filter(|&n| n > 0) {
                s.push_str(&format!(
                    " ({tw} TIME_WAIT socket{} left: a bind without SO_REUSEADDR still fails until they expire)",
                    plural(tw)
                ));
            }
        }
        (Some(false), Some(ms)) => s.push_str(&format!("; still held after {}", fmt_secs(Duration::from_millis(ms)))),
        _ => {}
    }
    s
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn finish(w: &mut impl Write, args: &KillArgs, out: &KillReport, code: i32) -> Result<i32> {
    if args.json {
        render::json::object(w, out)?;
        return Ok(code);
    }
    for t in &out.targets {
        let reason = t.reason.as_deref().map(|r| format!(": {}", escape(r))).unwrap_or_default();
        writeln!(
            w,
            "{:<13} {} (pid {}, user {}){reason}",
            t.result.replace('_', " "),
            escape(&t.name),
            t.pid,
            escape(&t.user)
        )?;
    }
    writeln!(w, "{}", out.message)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    #[test]
    fn exited_process_is_reported_gone_not_crashed_on() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let (result, reason, pidfd) = deliver(Path::new("/proc"), pid, &[(3, 12345)], libc::SIGTERM);
        assert_eq!(result, "gone");
        assert!(reason.unwrap().contains("exited"));
        assert!(pidfd.is_none());
    }

    #[test]
    fn process_no_longer_holding_the_socket_is_not_signalled() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        // sleep holds no socket: as if the pid had been recycled.
        let (result, reason, _) = deliver(Path::new("/proc"), child.id(), &[(3, 999_999_999)], libc::SIGKILL);
        assert_eq!(result, "gone");
        assert!(reason.unwrap().contains("no longer holds"));
        assert!(child.try_wait().unwrap().is_none(), "the unrelated process was not signalled");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn holder_is_signalled() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd() as u32;
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        // Signal 0: every check, no effect.
        let (result, _, pidfd) = deliver(Path::new("/proc"), std::process::id(), &[(fd, inode)], 0);
        assert_eq!(result, "signalled");
        assert!(pidfd.is_some());
    }
}
