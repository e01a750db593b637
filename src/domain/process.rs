//! Sockets seen from the processes holding them: each process's ancestry
//! (the "why is this running" line: `systemd (1) → nginx.service → nginx
//! (8260) → nginx (8271)`) and the `--by-process` grouping of `listen` and
//! `conns`. The `--by-process --json` object is documented in docs/json.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Socket;
use crate::procs::ProcTable;

/// One process on the way from the top of the process tree down to a
/// holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ancestor {
    pub pid: u32,
    /// `comm`; `?` when it could not be read.
    pub name: String,
    /// Its systemd unit (`nginx.service`, `init.scope`), from its cgroup.
    pub unit: Option<String>,
}

/// Longest chain followed (a loop in ppids cannot happen, but /proc is
/// read one process at a time).
const MAX_DEPTH: usize = 64;

/// The chain from the topmost process reachable (pid 1, or the first whose
/// parent is 0 or unreadable) down to `pid` itself.
pub fn ancestry(pid: u32, procs: &mut ProcTable) -> Vec<Ancestor> {
    let mut chain = Vec::new();
    let mut at = pid;
    for _ in 0..MAX_DEPTH {
        let info = procs.info(at);
        let unit = procs.context(at).and_then(|c| c.unit);
        chain.push(Ancestor { pid: at, name: info.name.to_string(), unit });
        match info.ppid {
            Some(pp) if pp != 0 && pp != at && !chain.iter().any(|a| a.pid == pp) => at = pp,
            _ => break,
        }
    }
    chain.reverse();
    chain
}

/// `systemd (1) → nginx.service → nginx (8260) → nginx (8271)`: each
/// process with its pid, and a unit's name where the chain enters it.
pub fn ancestry_line(chain: &[Ancestor]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut unit: Option<&str> = None;
    for (i, a) in chain.iter().enumerate() {
        let u = a.unit.as_deref();
        if i > 0 && u.is_some() && u != unit {
            parts.push(u.unwrap_or_default().to_string());
        }
        unit = u;
        parts.push(format!("{} ({})", a.name, a.pid));
    }
    parts.join(" → ")
}

/// One holder and the sockets it holds (`--by-process`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessGroup {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub cmdline: String,
    /// From the top of the tree down to this process (the last entry).
    pub ancestry: Vec<Ancestor>,
    pub sockets: Vec<Socket>,
}

/// `--by-process --json`: processes by pid, then the sockets no visible
/// process holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByProcess {
    pub processes: Vec<ProcessGroup>,
    /// Sockets without a holder: no descriptor refers to them (TIME_WAIT),
    /// or the holder is hidden (`owners_hidden`).
    pub unowned: Vec<Socket>,
}

/// Groups sockets by holder (a socket several processes hold appears under
/// each), in pid order; the sockets keep their order.
pub fn by_process(sockets: Vec<Socket>, procs: &mut ProcTable) -> ByProcess {
    let mut groups: BTreeMap<u32, ProcessGroup> = BTreeMap::new();
    let mut unowned = Vec::new();
    for s in sockets {
        if s.owners.is_empty() {
            unowned.push(s);
            continue;
        }
        let mut pids: Vec<u32> = s.owners.iter().map(|o| o.pid).collect();
        pids.dedup();
        for o in s.owners.iter() {
            if !pids.contains(&o.pid) {
                continue;
            }
            pids.retain(|&p| p != o.pid);
            let g = groups.entry(o.pid).or_insert_with(|| ProcessGroup {
                pid: o.pid,
                name: o.name.to_string(),
                user: o.user.to_string(),
                cmdline: o.cmdline.to_string(),
                ancestry: Vec::new(),
                sockets: Vec::new(),
            });
            g.sockets.push(s.clone());
        }
    }
    let mut processes: Vec<ProcessGroup> = groups.into_values().collect();
    for g in &mut processes {
        g.ancestry = ancestry(g.pid, procs);
    }
    ByProcess { processes, unowned }
}

/// The holders' pids, each once, in order (`--pids`).
pub fn pids<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> Vec<u32> {
    let mut v: Vec<u32> = sockets.into_iter().flat_map(|s| s.owners.iter().map(|o| o.pid)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Owner, Proto, State};
    use std::sync::Arc;

    /// A fake /proc: (pid, ppid, comm, cgroup path).
    pub(crate) fn fake_tree(name: &str, tree: &[(u32, u32, &str, &str)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("portctl-{name}-{}", std::process::id()));
        for (pid, ppid, comm, cgroup) in tree {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0\n"),
            )
            .unwrap();
            std::fs::write(d.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        }
        root
    }

    fn held(port: u16, owners: &[(u32, &str)]) -> Socket {
        let mut s = Socket::sample(Proto::Tcp, State::Listen, &format!("0.0.0.0:{port}"), None, u64::from(port));
        s.owners = owners
            .iter()
            .map(|&(pid, name)| Owner {
                pid,
                name: Arc::from(name),
                user: Arc::from("root"),
                fd: 3,
                tid: None,
                cmdline: Arc::from(name),
                context: None,
            })
            .collect();
        s
    }

    #[test]
    fn ancestry_lines_name_units_where_they_start() {
        let root = fake_tree(
            "anc",
            &[
                (1, 0, "systemd", "/init.scope"),
                (8260, 1, "nginx", "/system.slice/nginx.service"),
                (8271, 8260, "nginx", "/system.slice/nginx.service"),
                (900, 1, "sshd", "/system.slice/ssh.service"),
                (901, 900, "sshd", "/user.slice/user-0.slice/session-1.scope"),
                (902, 901, "bash", "/user.slice/user-0.slice/session-1.scope"),
            ],
        );
        let mut procs = ProcTable::new(&root);
        let chain = ancestry(8271, &mut procs);
        assert_eq!(chain.iter().map(|a| a.pid).collect::<Vec<_>>(), [1, 8260, 8271]);
        assert_eq!(ancestry_line(&chain), "systemd (1) → nginx.service → nginx (8260) → nginx (8271)");
        let chain = ancestry(902, &mut procs);
        assert_eq!(
            ancestry_line(&chain),
            "systemd (1) → ssh.service → sshd (900) → session-1.scope → sshd (901) → bash (902)"
        );
        // A process whose parent cannot be read ends the chain.
        assert_eq!(ancestry_line(&ancestry(77, &mut procs)), "? (77)");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn grouping_by_holder() {
        let root = fake_tree("grp", &[(1, 0, "systemd", "/init.scope"), (10, 1, "web", "/"), (11, 10, "web", "/")]);
        let mut procs = ProcTable::new(&root);
        let mut tw = held(80, &[]);
        tw.state = State::TimeWait;
        let sockets = vec![held(80, &[(10, "web"), (11, "web"), (10, "web")]), held(81, &[(11, "web")]), tw];
        assert_eq!(pids(&sockets), [10, 11]);
        let g = by_process(sockets, &mut procs);
        let got: Vec<(u32, Vec<u16>)> =
            g.processes.iter().map(|p| (p.pid, p.sockets.iter().map(Socket::port).collect())).collect();
        assert_eq!(got, [(10, vec![80]), (11, vec![80, 81])], "a socket under each holder, once");
        assert_eq!(g.processes[1].ancestry.iter().map(|a| a.pid).collect::<Vec<_>>(), [1, 10, 11]);
        assert_eq!(g.unowned.len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
