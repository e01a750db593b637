//! `who`: who holds a port, what a new bind() would get, and what to do
//! about it. The answer's types (the `who --json` object, documented in
//! docs/json.md) and how it is reached from the sockets on the port.
//!
//! Strings here (verdicts, notes, hints) carry process names as the kernel
//! reports them: JSON writes them raw, and the text renderer escapes them
//! for the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::domain::bind::{self, BindCheck, Outcome};
use crate::domain::nat::{self, NatAnswer};
use crate::model::{AcceptQueue, Endpoint, Proto, Socket, State, longest_timer_ms};
use crate::procs::ProcTable;
use crate::procs::context::Context;
use crate::services;
use crate::sysctl::Sysctls;
use crate::text::{duration_ms, plural};

/// What `who` was asked about: a port (service names resolved), the
/// protocols, and optionally one local address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port: u16,
    /// The protocol named in the spec, if one was.
    pub proto: Option<Proto>,
    pub addr: Option<IpAddr>,
}

impl Target {
    /// The protocols asked about (none named: TCP and UDP).
    pub fn protos(&self) -> Vec<Proto> {
        self.proto.map_or_else(|| vec![Proto::Tcp, Proto::Udp], |p| vec![p])
    }

    /// `8080/tcp` or `port 8080`, for messages.
    pub fn label(&self) -> String {
        match self.proto {
            Some(p) => format!("{}/{p}", self.port),
            None => format!("port {}", self.port),
        }
    }

    /// `127.0.0.1:8080` or `port 8080`.
    pub fn place(&self) -> String {
        match self.addr {
            Some(a) => Endpoint { addr: a, port: self.port }.to_string(),
            None => format!("port {}", self.port),
        }
    }

    /// Whether `s` is on this target's port and protocols (its address
    /// aside: see [`Target::served_by`]).
    pub fn covers(&self, s: &Socket) -> bool {
        s.port() == self.port && self.proto.is_none_or(|p| p == s.proto) && s.proto.has_ports()
    }

    /// Whether a listener `s` serves this target (any listener on the port
    /// when no address was asked about).
    pub fn served_by(&self, s: &Socket) -> bool {
        self.addr.is_none_or(|a| bind::addresses_overlap(a, false, s))
    }
}

/// The JSON answer (`who --json`), documented in docs/json.md; the same
/// object for a port and for a unix socket (`who PATH`, `who @NAME`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoReport {
    pub spec: SpecOut,
    pub verdict: Verdict,
    pub holders: Vec<Holder>,
    /// Who is connected to the listeners (schema 3).
    pub connected: Connected,
    /// Every socket on the port, any state, in the namespace asked about.
    pub sockets: Vec<Socket>,
    /// Sockets on the port in other network namespaces (each with `netns`):
    /// they never block a bind here, but answer "my container listens on it".
    pub other_netns: Vec<Socket>,
    /// The NAT rules that translate the port (schema 3).
    pub nat: NatAnswer,
    pub hints: Vec<String>,
    /// TCP listeners' accept queues and backlogs (schema 3); `null` when no
    /// TCP socket listens on the port in the namespace asked about.
    pub listen_backlog: Option<ListenBacklog>,
}

/// What `who` says about the port's TCP listeners: full accept queues,
/// backlogs that somaxconn may have capped, and the namespace's overflow
/// counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenBacklog {
    /// `net.core.somaxconn` and `net.ipv4.tcp_max_syn_backlog` of the namespace.
    pub somaxconn: Option<u32>,
    pub tcp_max_syn_backlog: Option<u32>,
    /// Inodes of the listeners whose accept queue is full or nearly.
    pub full: Vec<u64>,
    /// Inodes of the listeners whose backlog is `somaxconn`.
    pub clamped: Vec<u64>,
    /// TcpExt ListenOverflows and ListenDrops of the namespace, since it
    /// was created (`null` when /proc/net/netstat could not be read).
    pub listen_overflows: Option<i64>,
    pub listen_drops: Option<i64>,
    /// Only when an accept queue is full or nearly: how much those two rose
    /// while `who` looked, over `sampled_ms`.
    pub overflows_rise: Option<i64>,
    pub drops_rise: Option<i64>,
    pub sampled_ms: Option<u64>,
    /// The same, in words (the text prints these).
    pub notes: Vec<String>,
}

/// TcpExt ListenOverflows and ListenDrops, read twice: when `who` started
/// and when it had found the sockets (see `commands/who.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverflowCounters {
    pub overflows: Option<i64>,
    pub drops: Option<i64>,
    /// The rise of each between the two reads, and the time between them
    /// (only when an accept queue was full or nearly).
    pub rise: Option<(Option<i64>, Option<i64>, std::time::Duration)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecOut {
    /// `null` for a unix socket.
    pub port: Option<u16>,
    pub protos: Vec<Proto>,
    pub addr: Option<IpAddr>,
    pub service: Option<String>,
    /// A unix socket's name (schema 3; absent for ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix: Option<UnixSpecOut>,
}

/// The unix socket `who` was asked about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixSpecOut {
    /// The path as given, or the abstract name without its `@`.
    pub name: String,
    #[serde(rename = "abstract")]
    pub is_abstract: bool,
    /// Paths: what is at the path now; `null` for abstract names.
    pub file: Option<FileOut>,
}

/// What a path holds: `exists`, and for a socket file its device and
/// inode (what sockets bound to it report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOut {
    pub exists: bool,
    pub dev: Option<u64>,
    pub ino: Option<u64>,
}

/// Who is connected to a listener: its accepted connections, counted per
/// process at the other end (when that end is on this host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connected {
    /// Connections (the listeners' side of them) on the target.
    pub connections: usize,
    /// Per process name at the other end, most connections first; a
    /// connection whose other end processes of several names hold counts
    /// for each.
    pub peers: Vec<PeerGroup>,
    /// Connections whose other end is no process visible here: another
    /// host, a process whose descriptors could not be read, or an end no
    /// process holds.
    pub other: usize,
    /// Unix listeners: clients waiting in the accept queue.
    pub pending: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerGroup {
    pub name: String,
    pub pids: Vec<u32>,
    /// Connections with a process of this name at the other end.
    pub count: usize,
}

/// One `verdict.binds` entry: a port bind or a unix one (untagged: `addr`
/// and `port` for one, `name` and `abstract` for the other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bind {
    Ip(BindCheck),
    Unix(UnixBind),
}

impl Bind {
    /// The port bind, for a port target.
    pub fn ip(&self) -> Option<&BindCheck> {
        match self {
            Bind::Ip(b) => Some(b),
            Bind::Unix(_) => None,
        }
    }

    pub fn plain(&self) -> Outcome {
        match self {
            Bind::Ip(b) => b.plain,
            Bind::Unix(b) => b.plain,
        }
    }
}

/// What a bind() to a unix name would get. SO_REUSEADDR changes nothing
/// for unix sockets: `reuseaddr` is `plain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixBind {
    pub proto: Proto,
    pub name: String,
    #[serde(rename = "abstract")]
    pub is_abstract: bool,
    pub plain: Outcome,
    pub reuseaddr: Outcome,
    /// Inodes of the sockets bound to the name.
    pub blocked_by: Vec<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Some process holds a socket on the port (any state; TIME_WAIT does
    /// not count: no process holds it). With an address in the spec, only
    /// sockets that would conflict with that address count.
    pub in_use: bool,
    /// A NAT rule sends connections to the port, on an address of this
    /// host, somewhere else (schema 3): something answers there even with
    /// no socket.
    pub published: bool,
    /// The verdict lines, one per protocol.
    pub summary: Vec<String>,
    /// What a new bind() would get on each candidate address.
    pub binds: Vec<Bind>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub cmdline: String,
    /// Start time, RFC 3339 UTC.
    pub started: Option<String>,
    pub uptime_s: Option<u64>,
    pub cwd: Option<String>,
    pub ppid: Option<u32>,
    pub parent_name: Option<String>,
    pub context: Option<Context>,
    /// Inodes of the sockets on this port it holds.
    pub sockets: Vec<u64>,
    /// Why this process may not be the one that created the socket.
    pub notes: Vec<String>,
}

/// What the inventory found for a `who` question.
#[derive(Debug, Default)]
pub struct Found {
    /// Every socket on the port, any state, in the namespace asked about
    /// (sorted).
    pub sockets: Vec<Socket>,
    /// Listeners and bound sockets on the port in the other namespaces.
    pub other_netns: Vec<Socket>,
    /// The other namespaces that could not be read, described.
    pub unreadable_netns: Vec<String>,
    /// The namespace's listen overflow counters.
    pub counters: OverflowCounters,
    /// The NAT rules of the namespace asked about that translate the port.
    pub nat: NatAnswer,
}

impl Default for NatAnswer {
    fn default() -> NatAnswer {
        NatAnswer::none()
    }
}

/// Who is asking: the advice differs for root (never "use sudo").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub root: bool,
}

impl Viewer {
    /// This process.
    pub fn me() -> Viewer {
        Viewer { root: crate::sys::is_root() }
    }
}

/// The whole answer, from what was found on the port. `procs` gives the
/// holders' details; `sys` is the asked-about namespace's settings.
pub fn answer(target: &Target, found: Found, procs: &mut ProcTable, sys: &Sysctls, viewer: Viewer) -> WhoReport {
    let Found { sockets, other_netns, unreadable_netns, counters, nat } = found;
    let port = target.port;
    let protos = target.protos();
    let holders = holders(&sockets, procs);
    let proxies = Proxy::of(holders.iter().map(|h| (h.pid, h.cmdline.as_str())), procs);
    let mut binds = Vec::new();
    for &proto in &protos {
        for addr in candidates(target.addr) {
            binds.push(bind::check(proto, addr, port, sys.bindv6only, &sockets));
        }
    }
    let in_use = sockets.iter().any(|s| !s.is_unowned_by_nature() && blocks_asked(s, target.addr, &binds));
    let summary = protos
        .iter()
        .map(|&p| {
            let line = verdict_line(p, port, target.addr, &sockets, &binds, viewer);
            let held = line.contains(" is in use: ");
            match nat::verdict_line(p, port, &nat.rules) {
                Some(published) if !held => published,
                _ => line,
            }
        })
        .collect();
    let free = binds.iter().all(|b| b.plain == Outcome::Ok);
    let listening = sockets.iter().any(|s| matches!(s.state, State::Listen | State::Unconn));
    let mut hints = nat::who_hints(port, &nat, free, listening, viewer.root);
    hints.extend(self::hints(port, &protos, &sockets, &holders, &proxies, &binds, sys, viewer));
    hints.extend(netns_hints(port, &sockets, &other_netns, &unreadable_netns, viewer));
    let listen_backlog = listen_backlog(&sockets, sys, counters);
    if listen_backlog.as_ref().is_some_and(|l| !l.full.is_empty()) {
        hints.push(
            "a full accept queue: make the server accept() faster (more workers or threads, no blocking work before accept), or give listen() a larger backlog (raise net.core.somaxconn with it)"
                .to_string(),
        );
    }
    hints.extend(udp_drop_hints(&sockets));
    let published = nat.published();
    WhoReport {
        spec: SpecOut {
            port: Some(port),
            protos,
            addr: target.addr,
            service: services::name(target.proto.unwrap_or(Proto::Tcp), port).map(str::to_string),
            unix: None,
        },
        verdict: Verdict { in_use, published, summary, binds: binds.into_iter().map(Bind::Ip).collect() },
        holders,
        connected: connected(sockets.iter().filter(|s| target.served_by(s))),
        sockets,
        other_netns,
        nat,
        hints,
        listen_backlog,
    }
}

/// The accept queues and backlogs of the TCP listeners on the port, and
/// what they mean; `None` without a TCP listener.
fn listen_backlog(sockets: &[Socket], sys: &Sysctls, c: OverflowCounters) -> Option<ListenBacklog> {
    let listeners: Vec<(&Socket, &AcceptQueue)> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == State::Listen)
        .filter_map(|s| Some((s, s.accept_queue()?)))
        .collect();
    if listeners.is_empty() {
        return None;
    }
    let (overflows_rise, drops_rise, sampled_ms) = match c.rise {
        Some((o, d, t)) => (o, d, Some(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))),
        None => (None, None, None),
    };
    // `(TcpExt ListenOverflows +3 in 0.2 s; 20 since the namespace was created)`.
    let counter_words = || -> String {
        let total = c.overflows.map(|n| format!("{n} since the namespace was created"));
        let rise = match (overflows_rise, sampled_ms) {
            (Some(r), Some(ms)) if ms < 1000 => Some(format!("+{r} in {ms} ms")),
            (Some(r), Some(ms)) => Some(format!("+{r} in {:.1} s", ms as f64 / 1000.0)),
            _ => None,
        };
        match (rise, total) {
            (Some(r), Some(t)) => format!(" (TcpExt ListenOverflows {r}; {t})"),
            (None, Some(t)) => format!(" (TcpExt ListenOverflows: {t})"),
            (Some(r), None) => format!(" (TcpExt ListenOverflows {r})"),
            (None, None) => String::new(),
        }
    };
    let mut notes = Vec::new();
    let mut full = Vec::new();
    let mut clamped = Vec::new();
    for (s, q) in &listeners {
        if q.full {
            notes.push(format!(
                "tcp {}: accept queue full: {} waiting, backlog {} — the process is not accepting fast enough; new connections are dropped{}",
                s.local,
                q.queued,
                q.backlog,
                counter_words()
            ));
        } else if q.near_full {
            notes.push(format!(
                "tcp {}: accept queue nearly full: {} waiting, backlog {} — the process barely keeps up; past {} new connections are dropped{}",
                s.local,
                q.queued,
                q.backlog,
                q.backlog,
                counter_words()
            ));
        }
        if q.is_alarming() {
            full.push(s.inode);
        }
        if sys.somaxconn == Some(q.backlog) {
            clamped.push(s.inode);
            let syn = sys.tcp_max_syn_backlog.map_or_else(String::new, |n| {
                format!(" (net.ipv4.tcp_max_syn_backlog {n} caps the connections still in their handshake)")
            });
            notes.push(format!(
                "tcp {}: backlog {}, net.core.somaxconn {}: the listen() backlog may have been clamped by somaxconn{syn}; raise net.core.somaxconn if the server asks for more",
                s.local, q.backlog, q.backlog
            ));
        }
    }
    Some(ListenBacklog {
        somaxconn: sys.somaxconn,
        tcp_max_syn_backlog: sys.tcp_max_syn_backlog,
        full,
        clamped,
        listen_overflows: c.overflows,
        listen_drops: c.drops,
        overflows_rise,
        drops_rise,
        sampled_ms,
        notes,
    })
}

/// UDP sockets on the port that have dropped datagrams.
fn udp_drop_hints(sockets: &[Socket]) -> Vec<String> {
    sockets
        .iter()
        .filter(|s| s.proto == Proto::Udp)
        .filter_map(|s| Some((s, s.skmem().filter(|m| m.drops > 0)?)))
        .map(|(s, m)| {
            format!(
                "udp {} has dropped {} datagram{} since it was opened: its receive buffer ({} bytes, SO_RCVBUF; net.core.rmem_max caps it) was full — the process reads too slowly",
                s.local,
                m.drops,
                plural(m.drops as usize),
                m.rcvbuf
            )
        })
        .collect()
}

/// Who is connected through `sockets` (the sockets on a target): their
/// connected ones, grouped by the process at the other end.
pub fn connected<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> Connected {
    let mut c = Connected::default();
    let mut groups: BTreeMap<&str, (BTreeSet<u32>, usize)> = BTreeMap::new();
    for s in sockets {
        if s.state == State::Listen {
            c.pending += s.unix().map_or(0, |u| u.pending.len()).max(s.recv_q as usize);
        }
        let connection = s.remote.is_some()
            && s.inode != 0
            && !matches!(s.state, State::Listen | State::Unconn | State::TimeWait | State::Close);
        if !connection {
            continue;
        }
        c.connections += 1;
        match s.peer.as_ref().filter(|p| !p.owners.is_empty()) {
            // Counted once per process name holding the other end (a
            // client that forked counts for both names).
            Some(p) => {
                let names: BTreeSet<&str> = p.owners.iter().map(|o| &*o.name).collect();
                for name in names {
                    let g = groups.entry(name).or_default();
                    g.0.extend(p.owners.iter().filter(|o| &*o.name == name).map(|o| o.pid));
                    g.1 += 1;
                }
            }
            None => c.other += 1,
        }
    }
    c.peers = groups
        .into_iter()
        .map(|(name, (pids, count))| PeerGroup { name: name.to_string(), pids: pids.into_iter().collect(), count })
        .collect();
    c.peers.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    c
}

/// `12 × nginx (pids 812, 813), 3 × curl (pid 900); 40 with no visible
/// process at the other end; 2 waiting to be accepted`; `None` when nothing
/// is connected.
pub fn connected_line(c: &Connected) -> Option<String> {
    if c.connections == 0 && c.pending == 0 {
        return None;
    }
    let mut peers: Vec<String> = c
        .peers
        .iter()
        .take(5)
        .map(|g| {
            let pids: Vec<String> = g.pids.iter().take(4).map(u32::to_string).collect();
            let more = if g.pids.len() > 4 { ", ..." } else { "" };
            let label = if g.pids.len() == 1 { "pid" } else { "pids" };
            format!("{} × {} ({label} {}{more})", g.count, g.name, pids.join(", "))
        })
        .collect();
    let rest: usize = c.peers.iter().skip(5).map(|g| g.count).sum();
    if rest > 0 {
        peers.push(format!("{rest} × other processes"));
    }
    let mut parts = Vec::new();
    if !peers.is_empty() {
        parts.push(peers.join(", "));
    }
    if c.connections == 0 {
        parts.push("none accepted".to_string());
    }
    if c.other > 0 {
        parts.push(format!("{} with no visible process at the other end (another host, or hidden)", c.other));
    }
    if c.pending > 0 {
        parts.push(format!("{} waiting to be accepted", c.pending));
    }
    Some(parts.join("; "))
}

/// The addresses a server would usually try, plus the one asked about.
fn candidates(asked: Option<IpAddr>) -> Vec<IpAddr> {
    let mut v =
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if let Some(a) = asked
        && !v.contains(&a)
    {
        v.push(a);
    }
    v
}

/// One entry per process, in pid order, with what may explain why it holds
/// a socket it did not open.
pub(crate) fn holders(sockets: &[Socket], procs: &mut ProcTable) -> Vec<Holder> {
    let mut by_pid: BTreeMap<u32, Vec<&Socket>> = BTreeMap::new();
    for s in sockets {
        for o in s.owners.iter() {
            let v = by_pid.entry(o.pid).or_default();
            if !v.iter().any(|x| x.inode == s.inode) {
                v.push(s);
            }
        }
    }
    by_pid.iter().map(|(&pid, socks)| holder(pid, socks, procs)).collect()
}

/// One holder's entry: its details, the inodes of `socks` (the sockets it
/// holds), and the notes that may explain why it holds them.
pub fn holder(pid: u32, socks: &[&Socket], procs: &mut ProcTable) -> Holder {
    let info = procs.info(pid);
    let extra = procs.extra(pid);
    let parent = info.ppid.filter(|&p| p != 0).map(|p| procs.info(p));
    let mut notes = Vec::new();
    let parent_holds = |s: &Socket| parent.as_ref().is_some_and(|p| s.owners.iter().any(|o| o.pid == p.pid));
    if let Some(p) = &parent
        && socks.iter().any(|s| parent_holds(s))
    {
        notes.push(format!("inherited from its parent {} (pid {}), which holds it too", p.name, p.pid));
    }
    if let Some(s) = socks.iter().find(|s| info.uid.is_some_and(|u| u != s.uid)) {
        notes.push(format!(
            "{} was created by uid {} ({}), not by this process's user: inherited (fork/exec or a privilege drop)",
            s.local,
            s.uid,
            procs.user(s.uid)
        ));
    }
    let listens = socks.iter().any(|s| s.state == State::Listen);
    let is_service = extra.context.as_ref().and_then(|c| c.unit.as_deref()).is_some_and(|u| u.ends_with(".service"));
    if listens && info.ppid == Some(1) && !is_service && !socks.iter().any(|s| parent_holds(s)) {
        let init = parent.as_ref().map_or("init".to_string(), |p| p.name.to_string());
        notes.push(format!(
            "its parent is pid 1 ({init}): if the server that opened this socket has exited, this process kept it"
        ));
    }
    if let Some((ip, cport)) = crate::procs::context::proxy_target(&info.cmdline) {
        let target = Endpoint { addr: ip, port: cport };
        let container = procs.runtimes().docker_by_ip(ip);
        notes.push(match container {
            Some((id, name)) => format!(
                "a userland proxy: traffic goes to container {} ({}) at {target}",
                if name.is_empty() { "?" } else { &name },
                crate::model::short_id(&id)
            ),
            None => format!("a userland proxy: traffic goes to {target} (a container's address)"),
        });
    }
    Holder {
        pid,
        name: info.name.to_string(),
        user: info.user.to_string(),
        cmdline: info.cmdline.to_string(),
        started: extra.started,
        uptime_s: extra.uptime_s,
        cwd: extra.cwd,
        ppid: info.ppid,
        parent_name: parent.map(|p| p.name.to_string()),
        context: extra.context,
        sockets: socks.iter().map(|s| s.inode).collect(),
        notes,
    }
}

/// `who --pid --json`: what one process holds, documented in docs/json.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessReport {
    /// The process, as a `who` holder (its `sockets` are the inodes below).
    pub holder: Holder,
    /// From the top of the process tree down to it.
    pub ancestry: Vec<crate::domain::process::Ancestor>,
    /// Every TCP and UDP socket it holds, any state.
    pub sockets: Vec<Socket>,
}

/// What `pid` holds among `sockets` (which the caller dumped with owners).
pub fn process_report(pid: u32, sockets: Vec<Socket>, procs: &mut ProcTable) -> ProcessReport {
    let mine: Vec<Socket> = sockets.into_iter().filter(|s| s.owners.iter().any(|o| o.pid == pid)).collect();
    let refs: Vec<&Socket> = mine.iter().collect();
    let holder = holder(pid, &refs, procs);
    let ancestry = crate::domain::process::ancestry(pid, procs);
    ProcessReport { holder, ancestry, sockets: mine }
}

/// Whether `s` counts for the spec: every socket on the port when no address
/// was asked about, else those that would block a bind on that address.
fn blocks_asked(s: &Socket, asked: Option<IpAddr>, binds: &[BindCheck]) -> bool {
    asked.is_none_or(|a| binds.iter().any(|b| b.addr == a && b.blocked_by.contains(&s.inode)))
}

/// `8080/tcp is in use: node (pid 12345, user app) listens on 127.0.0.1:8080`.
fn verdict_line(
    proto: Proto,
    port: u16,
    asked: Option<IpAddr>,
    sockets: &[Socket],
    binds: &[BindCheck],
    viewer: Viewer,
) -> String {
    let mine: Vec<&Socket> = sockets.iter().filter(|s| s.proto == proto && blocks_asked(s, asked, binds)).collect();
    let target = match asked {
        Some(a) => format!("{}/{proto}", Endpoint { addr: a, port }),
        None => format!("{port}/{proto}"),
    };
    let held: Vec<&&Socket> = mine.iter().filter(|s| !s.is_unowned_by_nature()).collect();
    let rank = |s: &Socket| match s.state {
        State::Listen => 0,
        State::Unconn => 1,
        State::Close => 2,
        _ => 3,
    };
    if let Some(s) = held.iter().min_by_key(|s| rank(s)) {
        let who = match s.owners.first() {
            Some(o) => {
                let n = s.owners.iter().map(|o| o.pid).collect::<BTreeSet<_>>().len();
                let others = if n > 1 {
                    format!(" and {} more process{}", n - 1, if n == 2 { "" } else { "es" })
                } else {
                    String::new()
                };
                format!("{} (pid {}, user {}){others}", o.name, o.pid, o.user)
            }
            None if s.owners_hidden && viewer.root => {
                "a socket no process portctl could read holds (in flight in a unix socket message, kept by the kernel, or held by a process a sandbox or LSM hides even from root)"
                    .to_string()
            }
            None if s.owners_hidden => "a process you may not inspect (run as root to see it)".to_string(),
            None => match s.unheld {
                Some(u) => u.subject().to_string(),
                None => "no visible process (another PID namespace, or the kernel)".to_string(),
            },
        };
        let what = match s.state {
            State::Listen => format!("listens on {}", s.local),
            State::Unconn => format!("is bound to {}", s.local),
            State::Close => format!("has bound {} without listening", s.local),
            _ => format!(
                "has a connection {} -> {}",
                s.local,
                s.remote.as_ref().map_or("?".to_string(), |r| r.to_string())
            ),
        };
        let extra = held.len() - 1;
        let more = if extra > 0 { format!(" (+{extra} more socket{})", plural(extra)) } else { String::new() };
        return format!("{target} is in use: {who} {what}{more}");
    }
    let tw: Vec<&&Socket> = mine.iter().filter(|s| s.state == State::TimeWait).collect();
    if !tw.is_empty() {
        let longest = longest_timer_ms(tw.iter().map(|s| **s));
        // The verdict of an address the TIME_WAIT sockets do block (a
        // TIME_WAIT socket on [::1] blocks `[::]`, not 0.0.0.0).
        let candidates = || binds.iter().filter(|b| b.proto == proto && asked.is_none_or(|a| b.addr == a));
        let check = candidates().find(|b| b.plain == Outcome::Fails).or_else(|| candidates().next());
        let what = match check.map(|b| (b.plain, b.reuseaddr, b.reuseport)) {
            Some((Outcome::Ok, _, _)) => "they block no new bind on the addresses checked",
            Some((_, Outcome::Ok, _)) => {
                "they have SO_REUSEADDR, so a bind with SO_REUSEADDR works now; without it, it fails until then"
            }
            Some((_, Outcome::Fails, Outcome::Ok)) => {
                "they did not set SO_REUSEADDR, so a bind fails until then, SO_REUSEADDR or not; with SO_REUSEPORT (they have it) it works now"
            }
            Some((_, Outcome::Fails, _)) => {
                "they did not set SO_REUSEADDR, so a bind fails until then, SO_REUSEADDR or not"
            }
            _ => "a bind without SO_REUSEADDR fails until then",
        };
        return format!(
            "{target} is not in use, but {} TIME_WAIT socket{} remain{} for up to {}: {what}",
            tw.len(),
            plural(tw.len()),
            if tw.len() == 1 { "s" } else { "" },
            duration_ms(longest)
        );
    }
    format!("{target} is free")
}

/// A holder that is a container runtime's userland proxy (docker-proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub pid: u32,
    pub target: Endpoint,
    /// The container with the target address: (id, name).
    pub container: Option<(String, String)>,
}

impl Proxy {
    /// The processes (pid, command line) that are userland proxies, with
    /// their containers.
    pub fn of<'a>(processes: impl IntoIterator<Item = (u32, &'a str)>, procs: &mut ProcTable) -> Vec<Proxy> {
        processes
            .into_iter()
            .filter_map(|(pid, cmdline)| {
                let (ip, port) = crate::procs::context::proxy_target(cmdline)?;
                let container = procs.runtimes().docker_by_ip(ip);
                Some(Proxy { pid, target: Endpoint { addr: ip, port }, container })
            })
            .collect()
    }

    /// `docker stop web`, or how to find the container.
    pub fn stop(&self) -> String {
        match &self.container {
            Some((_, name)) if !name.is_empty() => format!("`docker stop {name}`"),
            Some((id, _)) => format!("`docker stop {}`", crate::model::short_id(id)),
            None => format!("`docker stop` on the container at {} (`docker ps` shows it)", self.target.addr),
        }
    }

    pub fn hint(&self) -> String {
        format!(
            "docker-proxy (pid {}) forwards the port to a container at {}: stop the container with {}; killing the proxy leaves the port published and broken",
            self.pid,
            self.target,
            self.stop()
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn hints(
    port: u16,
    protos: &[Proto],
    sockets: &[Socket],
    holders: &[Holder],
    proxies: &[Proxy],
    binds: &[BindCheck],
    sys: &Sysctls,
    viewer: Viewer,
) -> Vec<String> {
    let mut h = Vec::new();
    let listeners: Vec<&Socket> = sockets.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    for g in bind::reuseport_groups(sockets) {
        let first = g.members[0];
        let pids: Vec<String> = g
            .members
            .iter()
            .flat_map(|s| s.owners.iter().map(|o| o.pid))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(u32::to_string)
            .collect();
        let pids = if pids.is_empty() { "hidden".to_string() } else { pids.join(",") };
        let n = g.members.len();
        h.push(if g.known {
            format!(
                "{n} {} socket{} on {} {} SO_REUSEPORT set (pid {pids}, uid {}): a new socket with SO_REUSEPORT of uid {} joins the group and shares its {}; any other bind there fails",
                first.proto,
                plural(n),
                first.local,
                if n == 1 { "has" } else { "have" },
                first.uid,
                first.uid,
                if first.proto == Proto::Tcp { "connections" } else { "datagrams" }
            )
        } else {
            format!(
                "{n} {} sockets share {} with SO_REUSEPORT (pids {pids}): a new member can join only with SO_REUSEPORT set and as the same user (uid {})",
                first.proto, first.local, first.uid
            )
        });
    }
    if !listeners.is_empty() {
        let pids: Vec<String> = listeners
            .iter()
            .flat_map(|s| s.owners.iter().map(|o| o.pid))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(u32::to_string)
            .collect();
        let unit = holders
            .iter()
            .find_map(|hd| hd.context.as_ref().and_then(|c| c.unit.clone()))
            .filter(|u| u.ends_with(".service"));
        let unheld = listeners.iter().find_map(|s| s.unheld);
        match (pids.is_empty(), unit) {
            (false, _) if !proxies.is_empty() => {
                for p in proxies {
                    h.push(p.hint());
                }
            }
            (true, _) if !listeners.iter().any(|s| s.owners_hidden) => h.push(format!(
                "no process holds the socket on port {port}{}: there is no process to stop; it goes when the message's receiver takes or drops it, or the kernel lets it go",
                unheld.map_or(String::new(), |u| format!(" ({})", u.why()))
            )),
            (true, _) if viewer.root => h.push(
                "no process portctl could read holds it: it is in flight in a unix socket message (it goes when the receiver takes or drops the message), or held by a process a sandbox or LSM hides even from root: look for it from the host or the container that runs it"
                    .to_string(),
            ),
            (true, _) => h.push("the holder is hidden from you: run `sudo portctl who` to see it".to_string()),
            (false, Some(u)) => {
                h.push(format!("stop it with `systemctl stop {u}` (or `kill {}`), or use another port", pids.join(" ")))
            }
            (false, None) => h.push(format!("free it with `kill {}`, or use another port", pids.join(" "))),
        }
    }
    let connections = sockets
        .iter()
        .filter(|s| !matches!(s.state, State::Listen | State::Unconn | State::TimeWait) && s.proto == Proto::Tcp)
        .count();
    let tw: Vec<&Socket> = sockets.iter().filter(|s| s.state == State::TimeWait).collect();
    // The TCP verdict when no listener blocks: TIME_WAIT and connections
    // are what stands in the way, and their options decide.
    let tcp_bind = binds.iter().find(|b| b.proto == Proto::Tcp && b.plain == Outcome::Fails);
    let blocked_by_conn_only = listeners.iter().all(|s| s.proto != Proto::Tcp) && tcp_bind.is_some();
    if let Some(b) = tcp_bind.filter(|_| blocked_by_conn_only && !tw.is_empty()) {
        let wait = duration_ms(longest_timer_ms(tw.iter().copied()));
        h.push(match (b.reuseaddr, b.reuseport) {
            (Outcome::Ok, _) => format!(
                "TIME_WAIT: the old sockets have SO_REUSEADDR (inherited from the socket they were): set SO_REUSEADDR before bind() and it works now; without it, wait {wait}"
            ),
            (Outcome::Fails, Outcome::Ok) => format!(
                "TIME_WAIT: the old sockets did not set SO_REUSEADDR, so setting it does not help; they did set SO_REUSEPORT: a bind with SO_REUSEPORT works now; otherwise wait {wait}"
            ),
            (Outcome::Fails, _) => format!(
                "TIME_WAIT: the old sockets did not set SO_REUSEADDR (nor SO_REUSEPORT), so setting it does not help: wait {wait}, or bind another port"
            ),
            _ => format!(
                "TIME_WAIT: set SO_REUSEADDR before bind() — it works only if the old server set it too (its TIME_WAIT sockets inherit the flag); otherwise wait {wait}"
            ),
        });
    }
    if let Some(b) = tcp_bind.filter(|_| blocked_by_conn_only && connections > 0) {
        let (n, s, verb) = (connections, plural(connections), if connections == 1 { "s" } else { "" });
        h.push(match b.reuseaddr {
            Outcome::Ok => format!(
                "{n} connection{s} still use{verb} port {port} locally, with SO_REUSEADDR set: a bind with SO_REUSEADDR works"
            ),
            Outcome::Fails => format!(
                "{n} connection{s} still use{verb} port {port} locally, without SO_REUSEADDR (or along with a socket that lacks it): close them or bind another port"
            ),
            _ => format!(
                "{n} connection{s} still use{verb} port {port} locally: SO_REUSEADDR helps only if they had it too; close them or bind another port"
            ),
        });
    }
    // SO_BINDTODEVICE: sockets bound to a device block a new socket bound
    // to none, but not one bound to another device.
    for &proto in protos {
        let blocked: Vec<&BindCheck> = binds.iter().filter(|b| b.proto == proto && b.plain == Outcome::Fails).collect();
        let mut devices: Vec<String> = Vec::new();
        let all_bound = !blocked.is_empty()
            && blocked.iter().all(|b| {
                let blockers = bind::blockers(b.proto, b.addr, b.port, b.v6only.unwrap_or(false), sockets);
                bind::devices_only(&blockers).is_some_and(|d| {
                    devices.extend(d.into_iter().filter(|n| !devices.contains(n)).collect::<Vec<_>>());
                    true
                })
            });
        if all_bound {
            h.push(format!(
                "the {proto} sockets on port {port} are bound to device {} (SO_BINDTODEVICE): a new socket bound to another device does not conflict with them",
                devices.join(", ")
            ));
        }
    }
    let close_wait = sockets.iter().filter(|s| s.state == State::CloseWait).count();
    if close_wait > 0 {
        h.push(format!(
            "{close_wait} socket{} in CLOSE_WAIT: the peer closed and the holder never did — a leak in that program",
            plural(close_wait)
        ));
    }
    let free = binds.iter().all(|b| b.plain == Outcome::Ok);
    if free {
        if port < sys.unprivileged_port_start && !viewer.root {
            h.push(format!(
                "port {port} is below net.ipv4.ip_unprivileged_port_start ({}): binding it needs root or CAP_NET_BIND_SERVICE",
                sys.unprivileged_port_start
            ));
        }
        let range = sys.local_range_or_default();
        let (lo, hi) = (range.lo, range.hi);
        if range.contains(port) && protos.contains(&Proto::Tcp) {
            if sys.reserved_ports.iter().any(|r| r.contains(port)) {
                h.push(format!("port {port} is in the ephemeral range {lo}-{hi} but reserved (net.ipv4.ip_local_reserved_ports): outgoing connections will not take it"));
            } else {
                h.push(format!(
                    "port {port} is in the ephemeral range {lo}-{hi}: an outgoing connection may take it before your server starts; add it to net.ipv4.ip_local_reserved_ports"
                ));
            }
        }
    }
    h
}

/// What the other namespaces add: the port is taken elsewhere, or could not
/// be checked elsewhere.
fn netns_hints(port: u16, here: &[Socket], others: &[Socket], unreadable: &[String], viewer: Viewer) -> Vec<String> {
    let mut h = Vec::new();
    let listening_here = here.iter().any(|s| matches!(s.state, State::Listen | State::Unconn));
    let elsewhere: Vec<&Socket> = others.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    if let Some(s) = elsewhere.first() {
        let who = s.owners.first().map(|o| format!("{} (pid {})", o.name, o.pid)).unwrap_or("a process".into());
        let ns = s.netns.as_ref().map(|n| n.to_string()).unwrap_or_default();
        let more = if elsewhere.len() > 1 { format!(" and {} more", elsewhere.len() - 1) } else { String::new() };
        h.push(format!(
            "{}{who} listens on {} in network namespace {ns}{more}: another namespace's port never blocks a bind here; reach it through that namespace's addresses or port mapping",
            if listening_here { "" } else { "free here, but " },
            s.local
        ));
    }
    if !unreadable.is_empty() {
        let why = if viewer.root {
            format!("even as root; whether port {port} is used there is unknown")
        } else {
            format!("run as root to check whether port {port} is used there")
        };
        h.push(format!(
            "could not look into {} other network namespace{} ({why})",
            unreadable.len(),
            plural(unreadable.len())
        ));
    }
    h
}
