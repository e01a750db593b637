//! Unix sockets by name: which sockets a path or an abstract name refers
//! to, and `who`'s answer for them — who listens, who is connected, and
//! what a new bind() would get.
//!
//! bind() rules (`net/unix/af_unix.c`):
//! - a path: bind() creates the file (mknod); it fails with EADDRINUSE
//!   whenever something exists at the path, even a socket file nobody is
//!   bound to any more (a stale file: its server exited without unlinking
//!   it, or crashed). Servers usually unlink the path before bind();
//! - an abstract name lives in the network namespace and vanishes with the
//!   last socket bound to it: bind() fails while any socket holds it.
//!
//! A socket bound to a path is matched by the file (device and inode, which
//! sock_diag reports for it and for the connections its listener accepted),
//! so a name given relative to another directory, or the same file seen at
//! another path, still matches; by name only when the kernel did not say
//! (the /proc/net/unix fallback), or to find sockets whose file was removed
//! or replaced since they were bound.

use std::collections::BTreeSet;

use crate::domain::bind::Outcome;
use crate::domain::who::{
    self, Bind, FileOut, Found, Holder, SpecOut, UnixBind, UnixSpecOut, Verdict, Viewer, WhoReport,
};
use crate::filter::UnixSpec;
use crate::model::{Proto, Socket, State, Vfs};
use crate::procs::ProcTable;
use crate::text::plural;

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// A socket file: device and inode, as sockets bound to it report them.
    Socket(Vfs),
    /// Nothing; and whether its directory exists.
    Missing { dir_exists: bool },
    /// Something that is not a socket: "a regular file", "a directory", ...
    NotSocket(&'static str),
}

/// A unix target as looked up: the spec, and for a path what is there now
/// and the path with its directory resolved (a bound socket's name is the
/// path its server gave, which may be that one).
#[derive(Debug, Clone)]
pub struct Lookup {
    pub spec: UnixSpec,
    pub file: Option<FileState>,
    pub canonical: Option<String>,
}

impl Lookup {
    pub fn abstract_name(name: &str) -> Lookup {
        Lookup { spec: UnixSpec::Abstract(name.to_string()), file: None, canonical: None }
    }

    fn vfs(&self) -> Option<Vfs> {
        match self.file {
            Some(FileState::Socket(v)) => Some(v),
            _ => None,
        }
    }

    /// Whether `s` has this name (the path as given or resolved, or the
    /// abstract name; an abstract name's NULs may be typed as `@`, as `ss`
    /// shows them).
    pub fn names(&self, s: &Socket) -> bool {
        let Some(n) = s.unix_name() else { return false };
        let Some(name) = n.name.as_deref() else { return false };
        match &self.spec {
            UnixSpec::Abstract(want) => n.is_abstract && (name == want || name.replace('\0', "@") == *want),
            UnixSpec::Path(p) => !n.is_abstract && (name == p || self.canonical.as_deref() == Some(name)),
        }
    }

    /// Whether `s` is bound to the file now at the path.
    pub fn bound_to_file(&self, s: &Socket) -> bool {
        let vfs = self.vfs();
        vfs.is_some() && s.unix().and_then(|u| u.vfs) == vfs
    }

    /// The sockets that are this target: for a path, those bound to the
    /// file there (or, when the kernel did not report bound files, those
    /// with its name); for an abstract name, those with it. Listeners,
    /// bound sockets and the connections a listener accepted (which carry
    /// its name).
    pub fn sockets<'a>(&self, sockets: &'a [Socket]) -> Vec<&'a Socket> {
        let unix = || sockets.iter().filter(|s| s.proto == Proto::Unix);
        match &self.spec {
            UnixSpec::Abstract(_) => unix().filter(|s| self.names(s)).collect(),
            UnixSpec::Path(_) => {
                let by_file: Vec<&Socket> = unix().filter(|s| self.bound_to_file(s)).collect();
                let kernel_reports_files = unix().any(|s| s.unix().is_some_and(|u| u.vfs.is_some()));
                if by_file.is_empty() && !kernel_reports_files {
                    unix().filter(|s| self.names(s)).collect()
                } else {
                    by_file
                }
            }
        }
    }

    /// Sockets with the path's name that are not bound to the file there:
    /// their file was removed, or replaced by another.
    pub fn orphans<'a>(&self, sockets: &'a [Socket]) -> Vec<&'a Socket> {
        match &self.spec {
            UnixSpec::Abstract(_) => Vec::new(),
            UnixSpec::Path(_) => sockets
                .iter()
                .filter(|s| {
                    s.proto == Proto::Unix
                        && self.names(s)
                        && !self.bound_to_file(s)
                        && s.unix().is_some_and(|u| u.vfs.is_some())
                })
                .collect(),
        }
    }

    fn label(&self) -> String {
        self.spec.label()
    }
}

/// Whether `s` holds the name itself (a listener, or a bound socket that is
/// not a listener's accepted connection: a dgram server is "established"
/// once a client connected to it, with no peer of its own).
pub fn binds_name(s: &Socket) -> bool {
    matches!(s.state, State::Listen | State::Unconn | State::Close) || (s.peer.is_none() && s.remote.is_none())
}

fn kind(s: &Socket) -> &'static str {
    s.unix().map_or("unix", |u| u.kind.as_str())
}

/// `python3 (pid 12, user root)`, `python3 (pid 12, user root) and 2 more processes`.
fn who_holds(s: &Socket, viewer: Viewer) -> String {
    match s.owners.first() {
        Some(o) => {
            let n = s.owners.iter().map(|o| o.pid).collect::<BTreeSet<_>>().len();
            let more = if n > 1 {
                format!(" and {} more process{}", n - 1, if n == 2 { "" } else { "es" })
            } else {
                String::new()
            };
            format!("{} (pid {}, user {}){more}", o.name, o.pid, o.user)
        }
        None if s.owners_hidden && viewer.root => {
            "a process whose descriptors could not be read (even as root: a sandbox or LSM restricts /proc)".to_string()
        }
        None if s.owners_hidden => "a process you may not inspect (run as root to see it)".to_string(),
        None => "no visible process (another PID namespace, or the socket is in flight in a message)".to_string(),
    }
}

/// The pids holding any of `sockets`, as `kill` would take them.
fn pids<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> Vec<u32> {
    sockets.into_iter().flat_map(|s| s.owners.iter().map(|o| o.pid)).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The whole answer for a unix target. `found.sockets` are every unix
/// socket of the namespaces looked at (all of them for a path, which
/// belongs to the filesystem; for an abstract name, sockets outside the
/// namespace asked about are in `found.other_netns`).
pub fn answer(target: &Lookup, found: Found, procs: &mut ProcTable, viewer: Viewer) -> WhoReport {
    let Found { sockets: all, other_netns: others, unreadable_netns, .. } = found;
    let mine: Vec<Socket> = target.sockets(&all).into_iter().cloned().collect();
    let orphans: Vec<Socket> = target.orphans(&all).into_iter().cloned().collect();
    let elsewhere: Vec<Socket> = target.sockets(&others).into_iter().cloned().collect();
    let binders: Vec<&Socket> = mine.iter().filter(|s| binds_name(s)).collect();
    let holders: Vec<Holder> = who::holders(&mine, procs);
    let label = target.label();
    let in_use = mine.iter().chain(&orphans).any(|s| !s.owners.is_empty() || s.owners_hidden || s.inode != 0);

    let summary = summary(target, &label, &mine, &binders, &orphans, viewer);
    let bind = bind_verdict(target, &binders, &mine);
    let connected = who::connected(mine.iter());
    let hints = hints(target, &label, &mine, &binders, &orphans, &elsewhere, &holders, &unreadable_netns, viewer);
    let (name, is_abstract) = match &target.spec {
        UnixSpec::Path(p) => (p.clone(), false),
        UnixSpec::Abstract(n) => (n.clone(), true),
    };
    let file = target.file.map(|f| match f {
        FileState::Socket(v) => FileOut { exists: true, dev: Some(v.dev), ino: Some(v.ino) },
        FileState::Missing { .. } => FileOut { exists: false, dev: None, ino: None },
        FileState::NotSocket(_) => FileOut { exists: true, dev: None, ino: None },
    });
    let mut sockets = mine;
    sockets.extend(orphans);
    WhoReport {
        spec: SpecOut {
            port: None,
            protos: vec![Proto::Unix],
            addr: None,
            service: None,
            unix: Some(UnixSpecOut { name, is_abstract, file }),
        },
        verdict: Verdict { in_use, published: false, summary: vec![summary], binds: vec![Bind::Unix(bind)] },
        holders,
        connected,
        sockets,
        other_netns: elsewhere,
        nat: crate::domain::nat::NatAnswer::none(),
        hints,
        listen_backlog: None,
    }
}

fn summary(
    target: &Lookup,
    label: &str,
    mine: &[Socket],
    binders: &[&Socket],
    orphans: &[Socket],
    viewer: Viewer,
) -> String {
    let listener = binders.iter().find(|s| s.state == State::Listen).or(binders.first());
    if let Some(s) = listener {
        let what = if s.state == State::Listen { "listens on it" } else { "is bound to it" };
        let conns = mine.iter().filter(|c| !binds_name(c)).count();
        let more = if conns > 0 { format!(", {conns} connection{}", plural(conns)) } else { String::new() };
        return format!("{label} is in use: {} {what} ({}{more})", who_holds(s, viewer), kind(s));
    }
    if let Some(c) = mine.first() {
        // Connections with the name, and no listener left: it exited (or
        // closed the listener) with connections still open.
        return format!(
            "{label} is in use: {} holds {} connection{} accepted on it, but nothing listens there any more",
            who_holds(c, viewer),
            mine.len(),
            plural(mine.len())
        );
    }
    match (target.file, orphans.first()) {
        (Some(FileState::Socket(_)), None) => format!(
            "{label} is not in use, but it is a stale socket file: no socket is bound to it (its server exited without removing it, or crashed)"
        ),
        (Some(FileState::Socket(_)), Some(o)) => format!(
            "{label} is not in use: no socket is bound to the file there now; {} holds a socket bound to this path earlier, whose file was removed or replaced",
            who_holds(o, viewer)
        ),
        (Some(FileState::Missing { .. }), Some(o)) => format!(
            "{label} is in use by name only: {} has a socket bound to it, but its file was removed: clients get ENOENT",
            who_holds(o, viewer)
        ),
        (Some(FileState::Missing { .. }), None) => {
            format!("{label} is free: no such file, and no socket is bound to that name")
        }
        (Some(FileState::NotSocket(what)), _) => format!("{label} is not a socket but {what}"),
        (None, _) => format!("{label} is free in this network namespace: no socket holds the abstract name"),
    }
}

fn bind_verdict(target: &Lookup, binders: &[&Socket], mine: &[Socket]) -> UnixBind {
    let first = binders.first().copied().or(mine.first());
    let holder =
        first.and_then(|s| s.owners.first()).map(|o| format!(" ({} pid {})", o.name, o.pid)).unwrap_or_default();
    let (plain, reason) = match (&target.spec, target.file) {
        (UnixSpec::Path(_), Some(FileState::Socket(_))) if first.is_some() => {
            (Outcome::Fails, format!("EADDRINUSE: the file exists and a socket is bound to it{holder}"))
        }
        (UnixSpec::Path(_), Some(FileState::Socket(_))) => (
            Outcome::Fails,
            "EADDRINUSE: the file exists, stale (no socket is bound to it): bind() never replaces a file".to_string(),
        ),
        (UnixSpec::Path(_), Some(FileState::NotSocket(what))) => {
            (Outcome::Fails, format!("EADDRINUSE: {what} is at that path"))
        }
        (UnixSpec::Path(_), Some(FileState::Missing { dir_exists: false })) => {
            (Outcome::Fails, "ENOENT: its directory does not exist".to_string())
        }
        (UnixSpec::Path(_), _) => (Outcome::Ok, "no file there: bind() creates it".to_string()),
        (UnixSpec::Abstract(_), _) if first.is_some() => {
            (Outcome::Fails, format!("EADDRINUSE: a socket holds the name{holder}"))
        }
        (UnixSpec::Abstract(_), _) => (Outcome::Ok, "no socket holds the name in this network namespace".to_string()),
    };
    let (name, is_abstract) = match &target.spec {
        UnixSpec::Path(p) => (p.clone(), false),
        UnixSpec::Abstract(n) => (n.clone(), true),
    };
    let blocked_by = if plain == Outcome::Fails { binders.iter().map(|s| s.inode).collect() } else { Vec::new() };
    UnixBind { proto: Proto::Unix, name, is_abstract, plain, reuseaddr: plain, blocked_by, reason }
}

#[allow(clippy::too_many_arguments)]
fn hints(
    target: &Lookup,
    label: &str,
    mine: &[Socket],
    binders: &[&Socket],
    orphans: &[Socket],
    elsewhere: &[Socket],
    holders: &[Holder],
    unreadable: &[String],
    viewer: Viewer,
) -> Vec<String> {
    let mut h = Vec::new();
    let stale = matches!(target.file, Some(FileState::Socket(_))) && mine.is_empty();
    if !binders.is_empty() || !mine.is_empty() {
        let pids = pids(binders.iter().copied().chain(mine));
        let unit = holders
            .iter()
            .find_map(|hd| hd.context.as_ref().and_then(|c| c.unit.clone()))
            .filter(|u| u.ends_with(".service"));
        let what = if matches!(target.spec, UnixSpec::Path(_)) { "path" } else { "name" };
        match (pids.is_empty(), unit) {
            (true, _) if viewer.root => h.push(
                "the holder could not be read even as root (a sandbox or LSM restricts /proc): look for it from the host or the container that runs it"
                    .to_string(),
            ),
            (true, _) => h.push(format!("the holder is hidden from you: run `sudo portctl who {label}` to see it")),
            (false, Some(u)) => h.push(format!(
                "stop it with `systemctl stop {u}` (or `portctl kill {label}`), or give the new server another {what}"
            )),
            (false, None) => h.push(format!(
                "free it with `portctl kill {label}` (pid {}), or give the new server another {what}",
                pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            )),
        }
        if let UnixSpec::Path(_) = target.spec {
            h.push(format!(
                "do not remove {label} while it runs: the server would keep listening on a socket nobody can reach"
            ));
        }
        for s in binders.iter().filter(|s| s.state == State::Listen && s.send_q > 0) {
            let pending = s.recv_q;
            if pending > 0 && u64::from(pending) * 2 >= u64::from(s.send_q) {
                h.push(format!(
                    "{pending} connection{} wait{} in the accept queue (backlog {}): the server is not accepting fast enough, or is stuck",
                    plural(pending as usize),
                    if pending == 1 { "s" } else { "" },
                    s.send_q
                ));
            }
        }
    }
    if stale && orphans.is_empty() {
        h.push(format!(
            "remove the stale file before starting the server: rm {label} (a server that unlinks its path before bind() does this itself)"
        ));
    }
    if let Some(o) = orphans.first() {
        let who = o.owners.first().map(|o| format!("{} (pid {})", o.name, o.pid)).unwrap_or("a process".into());
        if matches!(target.file, Some(FileState::Missing { .. })) {
            h.push(format!(
                "{who} still listens on the removed file: restart it to recreate {label}, or stop it; a new server can bind the path meanwhile"
            ));
        } else {
            h.push(format!(
                "{who} is bound to an earlier file of that name, unreachable now; the file there is stale: remove it (rm {label}) or restart {who}"
            ));
        }
    }
    if let Some(s) = elsewhere.first() {
        let who = s.owners.first().map(|o| format!("{} (pid {})", o.name, o.pid)).unwrap_or("a process".into());
        let ns = s.netns.as_ref().map(|n| n.to_string()).unwrap_or_default();
        h.push(format!(
            "{}{who} holds {label} in network namespace {ns}: abstract names are per network namespace",
            if mine.is_empty() { "free here, but " } else { "" }
        ));
    }
    if !unreadable.is_empty() {
        h.push(format!(
            "could not look into {} other network namespace{} ({})",
            unreadable.len(),
            plural(unreadable.len()),
            if viewer.root { "even as root" } else { "run as root to look there too" }
        ));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Addr, Detail, Family, Owner, Peer, UnixDetail, UnixName, UnixType};
    use std::sync::Arc;

    fn owner(pid: u32, name: &str) -> Owner {
        Owner { pid, name: name.into(), user: "root".into(), fd: 3, tid: None, cmdline: name.into(), context: None }
    }

    fn unix(name: UnixName, state: State, vfs: Option<Vfs>, inode: u64, owners: &[(u32, &str)]) -> Socket {
        let mut s = Socket::new(Proto::Unix, Family::Unix, state, Addr::from_unix(name), None);
        s.inode = inode;
        s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind: UnixType::Stream, vfs, pending: Vec::new() })));
        s.owners = owners.iter().map(|&(p, n)| owner(p, n)).collect::<Vec<_>>().into();
        s
    }

    fn path(p: &str, file: FileState) -> Lookup {
        Lookup { spec: UnixSpec::Path(p.into()), file: Some(file), canonical: None }
    }

    fn report(t: &Lookup, sockets: Vec<Socket>) -> WhoReport {
        let mut procs = ProcTable::new(std::path::Path::new("/nonexistent-proc"));
        answer(t, Found { sockets, ..Found::default() }, &mut procs, Viewer { root: true })
    }

    const FILE: Vfs = Vfs { dev: 64769, ino: 4242 };

    /// A listener with two accepted connections (from curl and nginx
    /// clients) and an unrelated socket.
    #[test]
    fn live_listener_with_connections() {
        let t = path("/run/app.sock", FileState::Socket(FILE));
        let name = || UnixName::path("/run/app.sock");
        let conn = |inode, peer_pid, peer_name: &str| {
            let mut s = unix(name(), State::Established, Some(FILE), inode, &[(12, "server")]);
            let mut p = Peer::inode(inode + 100);
            p.owners = Arc::from(vec![owner(peer_pid, peer_name)]);
            s.peer = Some(Box::new(p));
            s.remote = Some(Addr::from_unix(UnixName::unnamed()));
            s
        };
        let sockets = vec![
            unix(name(), State::Listen, Some(FILE), 1, &[(12, "server")]),
            conn(2, 900, "curl"),
            conn(3, 812, "nginx"),
            conn(4, 813, "nginx"),
            unix(UnixName::path("/run/other.sock"), State::Listen, Some(Vfs { dev: 1, ino: 2 }), 5, &[(1, "init")]),
        ];
        let r = report(&t, sockets);
        assert!(r.verdict.in_use);
        assert_eq!(
            r.verdict.summary,
            ["/run/app.sock is in use: server (pid 12, user root) listens on it (stream, 3 connections)"]
        );
        assert_eq!(r.sockets.len(), 4);
        let Bind::Unix(b) = &r.verdict.binds[0] else { panic!() };
        assert_eq!((b.plain, b.blocked_by.clone()), (Outcome::Fails, vec![1]));
        assert_eq!(r.connected.connections, 3);
        assert_eq!(who::connected_line(&r.connected).unwrap(), "2 × nginx (pids 812, 813), 1 × curl (pid 900)");
        assert!(r.hints[0].contains("portctl kill /run/app.sock"), "{:?}", r.hints);
    }

    #[test]
    fn stale_file() {
        let t = path("/tmp/x.sock", FileState::Socket(FILE));
        // Something else is bound elsewhere; nothing to this file.
        let r =
            report(&t, vec![unix(UnixName::path("/tmp/y.sock"), State::Listen, Some(Vfs { dev: 1, ino: 9 }), 5, &[])]);
        assert!(!r.verdict.in_use);
        assert!(r.verdict.summary[0].contains("stale socket file"), "{:?}", r.verdict.summary);
        let Bind::Unix(b) = &r.verdict.binds[0] else { panic!() };
        assert_eq!(b.plain, Outcome::Fails);
        assert!(b.reason.starts_with("EADDRINUSE: the file exists, stale"), "{}", b.reason);
        assert!(r.hints.iter().any(|h| h.contains("rm /tmp/x.sock")), "{:?}", r.hints);
        assert_eq!(
            r.spec.unix.as_ref().unwrap().file,
            Some(FileOut { exists: true, dev: Some(64769), ino: Some(4242) })
        );
    }

    #[test]
    fn file_removed_under_a_running_server() {
        let t = path("/tmp/x.sock", FileState::Missing { dir_exists: true });
        let old = Vfs { dev: 64769, ino: 1 };
        let r = report(&t, vec![unix(UnixName::path("/tmp/x.sock"), State::Listen, Some(old), 5, &[(7, "srv")])]);
        assert!(r.verdict.in_use, "a process still holds the name");
        assert!(r.verdict.summary[0].contains("by name only"), "{:?}", r.verdict.summary);
        let Bind::Unix(b) = &r.verdict.binds[0] else { panic!() };
        assert_eq!(b.plain, Outcome::Ok);
        assert!(r.hints.iter().any(|h| h.contains("srv (pid 7) still listens on the removed file")), "{:?}", r.hints);
        // Replaced: another, stale file there now.
        let t = path("/tmp/x.sock", FileState::Socket(FILE));
        let r = report(&t, vec![unix(UnixName::path("/tmp/x.sock"), State::Listen, Some(old), 5, &[(7, "srv")])]);
        assert!(r.verdict.summary[0].contains("removed or replaced"), "{:?}", r.verdict.summary);
        let t = path("/tmp/nope/x.sock", FileState::Missing { dir_exists: false });
        let r = report(&t, vec![]);
        assert!(!r.verdict.in_use);
        let Bind::Unix(b) = &r.verdict.binds[0] else { panic!() };
        assert_eq!(b.plain, Outcome::Fails);
    }

    #[test]
    fn without_bound_files_names_decide() {
        // /proc/net/unix: no device and inode; the name must do.
        let t = path("/run/app.sock", FileState::Socket(FILE));
        let mut s = unix(UnixName::path("/run/app.sock"), State::Listen, None, 1, &[(3, "a")]);
        s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind: UnixType::Dgram, vfs: None, pending: vec![] })));
        s.state = State::Unconn;
        let r = report(&t, vec![s]);
        assert_eq!(r.verdict.summary, ["/run/app.sock is in use: a (pid 3, user root) is bound to it (dgram)"]);
    }

    #[test]
    fn abstract_names() {
        let t = Lookup::abstract_name("bus@x");
        let mut other = unix(UnixName::abstract_name("bus\0x"), State::Listen, None, 3, &[(5, "dbus")]);
        other.netns = Some(Box::new(crate::model::NetnsRef { inode: 9, name: Some("blue".into()) }));
        let mut procs = ProcTable::new(std::path::Path::new("/nonexistent-proc"));
        let found = Found { other_netns: vec![other], ..Default::default() };
        let r = answer(&t, found, &mut procs, Viewer { root: true });
        assert!(!r.verdict.in_use);
        assert_eq!(r.other_netns.len(), 1, "NULs typed as @ match");
        assert!(
            r.hints.iter().any(|h| h.contains("free here, but dbus (pid 5) holds @bus@x in network namespace blue"))
        );
        let Bind::Unix(b) = &r.verdict.binds[0] else { panic!() };
        assert_eq!((b.plain, b.is_abstract), (Outcome::Ok, true));
    }
}
