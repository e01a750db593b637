//! `kill`: who would be signalled for a port, who is refused and why, and
//! the summary of what happened. The `kill --json` object (documented in
//! docs/json.md) and the decisions; signalling itself is the command's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Proto, Socket, State, longest_timer_ms};
use crate::procs::ProcTable;
use crate::procs::pidfd::Held;
use crate::report::{EXIT_ERROR, EXIT_MATCHED, EXIT_NO_MATCH};
use crate::text::{duration_ms, plural};

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

/// One process holding sockets on the port: the descriptors it holds them
/// by, checked again through its pidfd before it is signalled.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub links: Vec<Held>,
}

/// The holders of the sockets on `port`, by pid.
pub fn holders(sockets: &[Socket], port: u16) -> BTreeMap<u32, Holder> {
    let mut holders: BTreeMap<u32, Holder> = BTreeMap::new();
    for s in sockets.iter().filter(|s| s.port() == port) {
        for o in &s.owners {
            let h = holders.entry(o.pid).or_insert_with(|| Holder {
                pid: o.pid,
                name: o.name.to_string(),
                user: o.user.to_string(),
                links: Vec::new(),
            });
            h.links.push(Held { tid: o.tid, fd: o.fd, inode: s.inode });
        }
    }
    holders
}

/// A target for every holder: refused when protected (without `force`),
/// `would_signal` on a dry run, and otherwise left for the caller to signal
/// (result empty). Returns the targets and the indexes left to signal.
pub fn plan(
    holders: &BTreeMap<u32, Holder>,
    protected: &[u32],
    force: bool,
    dry_run: bool,
) -> (Vec<Target>, Vec<usize>) {
    let mut targets = Vec::new();
    let mut to_signal = Vec::new();
    for h in holders.values() {
        let mut t = Target {
            pid: h.pid,
            name: h.name.clone(),
            user: h.user.clone(),
            result: String::new(),
            reason: None,
            sockets: h.links.iter().map(|l| l.inode).collect(),
        };
        if !force && protected.contains(&h.pid) {
            t.result = "refused".into();
            t.reason = Some(if h.pid == 1 {
                "pid 1 (init): use --force to signal it".into()
            } else {
                "portctl itself or one of its ancestors (your shell): use --force".into()
            });
        } else if dry_run {
            t.result = "would_signal".into();
        } else {
            to_signal.push(targets.len());
        }
        targets.push(t);
    }
    (targets, to_signal)
}

/// pid 1, this process and its ancestors (the shell that runs us).
pub fn protected_pids(procs: &mut ProcTable) -> Vec<u32> {
    let me = std::process::id();
    let mut v = vec![1, me];
    let mut pid = me;
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

/// Why there is nothing to signal on `label`.
pub fn nothing_to_kill(label: &str, sockets: &[Socket]) -> String {
    let tw: Vec<&Socket> = sockets.iter().filter(|s| s.state == State::TimeWait).collect();
    if tw.is_empty() {
        return format!("nothing to kill: no process holds {label}");
    }
    let longest = longest_timer_ms(tw.iter().copied());
    format!(
        "nothing to kill: only {} TIME_WAIT socket{} remain{} on {label}, held by no process; the port frees within {}",
        tw.len(),
        plural(tw.len()),
        if tw.len() == 1 { "s" } else { "" },
        duration_ms(longest)
    )
}

/// The summary line of a run that had targets.
pub fn summary(out: &KillReport, label: &str) -> String {
    let processes = |n: usize| if n == 1 { "process" } else { "processes" };
    if out.dry_run {
        let n = out.targets.iter().filter(|t| t.result == "would_signal").count();
        return format!("dry run: would send {} to {n} {} holding {label}", out.signal, processes(n));
    }
    let signalled = signalled(out);
    let mut s = format!("sent {} to {signalled} {} holding {label}", out.signal, processes(signalled));
    let failed = failed(out);
    if failed > 0 {
        s.push_str(&format!("; {failed} could not be signalled"));
    }
    match (out.freed, out.waited_ms) {
        (Some(true), Some(ms)) => {
            s.push_str(&format!("; free after {}", secs(Duration::from_millis(ms))));
            if let Some(tw) = out.time_wait_left.filter(|&n| n > 0) {
                s.push_str(&format!(
                    " ({tw} TIME_WAIT socket{} left: a bind without SO_REUSEADDR still fails until they expire)",
                    plural(tw)
                ));
            }
        }
        (Some(false), Some(ms)) => s.push_str(&format!("; still held after {}", secs(Duration::from_millis(ms)))),
        _ => {}
    }
    s
}

/// The exit status of a run that had targets: 0 everything signalled (and
/// freed, with --wait), 1 nothing signalled, 2 a target failed or the port
/// stayed held.
pub fn status(out: &KillReport) -> i32 {
    if out.dry_run {
        EXIT_MATCHED
    } else if failed(out) > 0 || out.freed == Some(false) {
        EXIT_ERROR
    } else if signalled(out) == 0 {
        EXIT_NO_MATCH
    } else {
        EXIT_MATCHED
    }
}

fn signalled(out: &KillReport) -> usize {
    out.targets.iter().filter(|t| matches!(t.result.as_str(), "signalled" | "killed")).count()
}

fn failed(out: &KillReport) -> usize {
    out.targets.iter().filter(|t| matches!(t.result.as_str(), "not_permitted" | "refused")).count()
}

/// `2.5s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Owner;
    use std::sync::Arc;

    fn held(port: u16, inode: u64, owners: &[(u32, u32)]) -> Socket {
        let mut s = Socket::sample(Proto::Tcp, State::Listen, &format!("0.0.0.0:{port}"), None, inode);
        s.owners = owners
            .iter()
            .map(|&(pid, fd)| Owner {
                pid,
                name: Arc::from("srv"),
                user: Arc::from("root"),
                fd,
                tid: None,
                cmdline: Arc::from("srv"),
                context: None,
            })
            .collect();
        s
    }

    #[test]
    fn holders_are_planned_refused_or_left_to_signal() {
        let sockets = [held(80, 11, &[(1, 3), (500, 4)]), held(80, 12, &[(500, 5)]), held(81, 13, &[(600, 3)])];
        let h = holders(&sockets, 80);
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), [1, 500]);
        let links: Vec<(u32, u64)> = h[&500].links.iter().map(|l| (l.fd, l.inode)).collect();
        assert_eq!(links, [(4, 11), (5, 12)]);
        let (targets, todo) = plan(&h, &[1], false, false);
        assert_eq!(targets[0].result, "refused");
        assert!(targets[0].reason.as_deref().unwrap().contains("pid 1"));
        assert_eq!(todo, [1]);
        let (targets, todo) = plan(&h, &[1], true, true);
        assert!(todo.is_empty());
        assert!(targets.iter().all(|t| t.result == "would_signal"));
    }

    #[test]
    fn summary_and_status() {
        let mut r = KillReport {
            port: 80,
            protos: vec![Proto::Tcp],
            signal: "SIGTERM".into(),
            dry_run: false,
            targets: vec![Target {
                pid: 9,
                name: "srv".into(),
                user: "root".into(),
                result: "signalled".into(),
                reason: None,
                sockets: vec![1],
            }],
            freed: Some(true),
            waited_ms: Some(1500),
            time_wait_left: Some(2),
            message: String::new(),
        };
        assert_eq!(
            summary(&r, "port 80"),
            "sent SIGTERM to 1 process holding port 80; free after 1.5s (2 TIME_WAIT sockets left: a bind without SO_REUSEADDR still fails until they expire)"
        );
        assert_eq!(status(&r), EXIT_MATCHED);
        r.freed = Some(false);
        assert_eq!(status(&r), EXIT_ERROR);
        r.targets[0].result = "gone".into();
        r.freed = None;
        assert_eq!(status(&r), EXIT_NO_MATCH);
    }

    #[test]
    fn nothing_to_kill_names_time_wait() {
        let mut tw = Socket::sample(Proto::Tcp, State::TimeWait, "127.0.0.1:80", Some("127.0.0.1:5000"), 0);
        tw.timer =
            Some(crate::model::Timer { kind: crate::model::TimerKind::TimeWait, expires_ms: 30_000, retrans: 0 });
        assert_eq!(nothing_to_kill("port 80", &[]), "nothing to kill: no process holds port 80");
        assert!(nothing_to_kill("port 80", &[tw]).contains("only 1 TIME_WAIT socket remains on port 80"));
    }
}
