//! `stats`: what `ss -s` says and what it does not: socket counts per
//! protocol, family and state; ephemeral port usage per destination (port
//! exhaustion); who accumulates TIME_WAIT and CLOSE_WAIT; listeners whose
//! accept queue overflows or whose backlog somaxconn capped; UDP sockets
//! that drop datagrams; the kernel's own counters (what `nstat` shows) and
//! socket memory. Types (the `stats --json` object, documented in
//! docs/json.md) and aggregation.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::counters::{Counters, Sockstat};
use crate::model::{
    AcceptQueue, Endpoint, Family, JSON_SCHEMA_VERSION, NetnsRef, PortRange, Proto, Socket, State, unmapped_endpoint,
};
use crate::services;
use crate::sysctl::{Sysctls, TcpMem};

/// Warn when one destination uses more than this share of the usable range.
pub const EPHEMERAL_WARN_PERCENT: u32 = 80;

/// `stats --json`: one object (documented in docs/json.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub schema_version: u32,
    /// Every TCP and UDP socket, IPv4 and IPv6, in every state.
    pub total: usize,
    /// Per protocol: how many sockets of each family.
    pub protocols: Vec<ProtoCount>,
    /// Per protocol and state, every state listed (zeros included): TCP's
    /// eleven, UDP's `established` (connected) and `unconn`.
    pub states: Vec<StateCount>,
    /// `null` when the sysctls could not be read.
    pub ephemeral: Option<EphemeralUsage>,
    /// Remote endpoints with the most TIME_WAIT sockets, most first.
    pub time_wait_top: Vec<Talker>,
    /// TIME_WAIT sockets per side, peer address and service port, most
    /// first (schema 2): what `time_wait_top` cannot show when this host is
    /// the server, where every client port is counted once.
    pub time_wait_peers: Vec<TimeWaitPeer>,
    /// `null` with `--no-owners`, or when /proc could not be walked.
    pub close_wait: Option<CloseWait>,
    /// TCP listeners whose accept queue is full or nearly, or whose backlog
    /// is `net.core.somaxconn` (schema 3).
    pub listeners: ListenQueues,
    /// UDP sockets that have dropped datagrams, most first (schema 3).
    pub udp_drops: Vec<UdpDrops>,
    /// The kernel's counters and socket memory of the namespace asked about
    /// (schema 3); `null` when none could be read.
    pub kernel: Option<Kernel>,
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRef {
    pub pid: u32,
    pub name: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenQueues {
    /// `net.core.somaxconn` of the namespace asked about.
    pub somaxconn: Option<u32>,
    /// `net.ipv4.tcp_max_syn_backlog`: the cap on connections still in
    /// their handshake (the SYN queue).
    pub tcp_max_syn_backlog: Option<u32>,
    /// Listeners whose accept queue is full or nearly, fullest first.
    pub full: Vec<QueuedListener>,
    /// Listeners whose backlog is their namespace's `net.core.somaxconn`:
    /// listen() may have asked for more, and the kernel capped it.
    pub clamped: Vec<QueuedListener>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedListener {
    pub local: Endpoint,
    pub inode: u64,
    /// The namespace, with `--netns` and `--all-netns`.
    pub netns: Option<NetnsRef>,
    pub accept_queue: AcceptQueue,
    /// `net.core.somaxconn` of its namespace.
    pub somaxconn: Option<u32>,
    /// Who holds it (empty with `--no-owners`, or when hidden).
    pub processes: Vec<ProcessRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpDrops {
    pub local: Endpoint,
    pub inode: u64,
    pub netns: Option<NetnsRef>,
    /// Datagrams dropped since the socket was opened (its `skmem.drops`).
    pub drops: u32,
    /// Receive memory in use, and the buffer's limit (SO_RCVBUF), bytes.
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub processes: Vec<ProcessRef>,
}

/// The kernel's view of one namespace: its counters (since it was
/// created), what rose during `--interval`, which counters signal
/// trouble, and socket memory against its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// TcpExt (/proc/net/netstat), Tcp and Udp (/proc/net/snmp), Udp6
    /// (/proc/net/snmp6): the kernel's names and values.
    pub counters: Counters,
    /// Only with `--interval`: how much each counter changed in it.
    pub sample: Option<Sample>,
    /// The counters of [`WATCHED`] that signal trouble and are not zero.
    pub problems: Vec<Problem>,
    pub sockstat: Sockstat,
    pub tcp_mem: Option<TcpMem>,
    pub tcp_max_orphans: Option<u64>,
    pub tcp_max_tw_buckets: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// Time between the two reads, in milliseconds.
    pub interval_ms: u64,
    /// Second read minus first, per counter (per second: `delta * 1000 /
    /// interval_ms`).
    pub deltas: Counters,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// `TcpExt`, `Tcp`, `Udp`, `Udp6`.
    pub group: String,
    /// The kernel's name: `ListenOverflows`.
    pub name: String,
    pub value: i64,
    /// With `--interval`: the rise, and per second.
    pub delta: Option<i64>,
    pub per_second: Option<f64>,
    /// What it means, in words.
    pub means: String,
}

/// A kernel counter portctl names: what it means, whether it signals
/// trouble, and its Prometheus counter.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// The groups it is in (UDP's are in Udp and Udp6).
    pub groups: &'static [&'static str],
    pub name: &'static str,
    /// Non-zero means something went wrong (a "problem"); the others are
    /// exported to Prometheus as denominators (segments, datagrams, opens).
    pub trouble: bool,
    pub means: &'static str,
    /// Prometheus counter name (`_total`); UDP ones get a `family` label.
    pub metric: &'static str,
}

const TCPEXT: &[&str] = &["TcpExt"];
const TCP: &[&str] = &["Tcp"];
const UDP: &[&str] = &["Udp", "Udp6"];

/// The counters of issue 16, and the few that put them in proportion.
pub const WATCHED: &[Watched] = &[
    Watched {
        groups: TCPEXT,
        name: "ListenOverflows",
        trouble: true,
        means: "a listener's accept queue was full: connections were dropped (the process does not accept() fast enough)",
        metric: "portctl_tcp_listen_overflows_total",
    },
    Watched {
        groups: TCPEXT,
        name: "ListenDrops",
        trouble: true,
        means: "connections dropped at a listener (accept queue full, no memory, or no route back)",
        metric: "portctl_tcp_listen_drops_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPReqQFullDrop",
        trouble: true,
        means: "SYNs dropped: the SYN queue (net.ipv4.tcp_max_syn_backlog) was full and SYN cookies are off",
        metric: "portctl_tcp_reqq_full_drop_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPReqQFullDoCookies",
        trouble: true,
        means: "the SYN queue was full: SYN cookies were sent instead (a SYN flood, or a backlog too small)",
        metric: "portctl_tcp_reqq_full_do_cookies_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPBacklogDrop",
        trouble: true,
        means: "segments dropped: a socket's backlog was full while its process held it (a slow or stuck reader)",
        metric: "portctl_tcp_backlog_drop_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPTimeWaitOverflow",
        trouble: true,
        means: "connections closed without TIME_WAIT: net.ipv4.tcp_max_tw_buckets was reached",
        metric: "portctl_tcp_time_wait_overflow_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPAbortOnMemory",
        trouble: true,
        means: "connections reset for lack of memory: net.ipv4.tcp_mem exhausted, or too many orphans",
        metric: "portctl_tcp_abort_on_memory_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPAbortOnTimeout",
        trouble: true,
        means: "connections given up after their retransmissions timed out (peer gone or path broken)",
        metric: "portctl_tcp_abort_on_timeout_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPRetransFail",
        trouble: true,
        means: "retransmissions that could not be sent (local queue full, or no memory)",
        metric: "portctl_tcp_retrans_fail_total",
    },
    Watched {
        groups: TCPEXT,
        name: "TCPMemoryPressures",
        trouble: true,
        means: "times TCP entered memory pressure (net.ipv4.tcp_mem): buffers were shrunk",
        metric: "portctl_tcp_memory_pressures_total",
    },
    Watched {
        groups: TCP,
        name: "AttemptFails",
        trouble: true,
        means: "connection attempts that failed (refused, reset, or timed out in the handshake)",
        metric: "portctl_tcp_attempt_fails_total",
    },
    Watched {
        groups: TCP,
        name: "EstabResets",
        trouble: true,
        means: "established connections reset",
        metric: "portctl_tcp_estab_resets_total",
    },
    Watched {
        groups: TCP,
        name: "RetransSegs",
        trouble: true,
        means: "segments retransmitted (loss or delay on the path; compare with OutSegs)",
        metric: "portctl_tcp_retrans_segs_total",
    },
    Watched {
        groups: TCP,
        name: "InErrs",
        trouble: true,
        means: "segments received with errors (bad checksum, malformed)",
        metric: "portctl_tcp_in_errs_total",
    },
    Watched {
        groups: TCP,
        name: "OutRsts",
        trouble: true,
        means: "resets sent: connections to closed ports, or aborted by this host",
        metric: "portctl_tcp_out_rsts_total",
    },
    Watched {
        groups: UDP,
        name: "InErrors",
        trouble: true,
        means: "datagrams received that could not be delivered (a receive buffer full, bad checksum)",
        metric: "portctl_udp_in_errors_total",
    },
    Watched {
        groups: UDP,
        name: "RcvbufErrors",
        trouble: true,
        means: "datagrams dropped because a socket's receive buffer was full (its process reads too slowly)",
        metric: "portctl_udp_rcvbuf_errors_total",
    },
    Watched {
        groups: UDP,
        name: "SndbufErrors",
        trouble: true,
        means: "datagrams not sent because a socket's send buffer was full",
        metric: "portctl_udp_sndbuf_errors_total",
    },
    Watched {
        groups: UDP,
        name: "NoPorts",
        trouble: true,
        means: "datagrams to a port no socket is bound to",
        metric: "portctl_udp_no_ports_total",
    },
    Watched {
        groups: UDP,
        name: "MemErrors",
        trouble: true,
        means: "datagrams dropped: UDP's memory limit (net.ipv4.udp_mem) was reached",
        metric: "portctl_udp_mem_errors_total",
    },
    Watched {
        groups: TCP,
        name: "ActiveOpens",
        trouble: false,
        means: "connections this host opened",
        metric: "portctl_tcp_active_opens_total",
    },
    Watched {
        groups: TCP,
        name: "PassiveOpens",
        trouble: false,
        means: "connections this host accepted",
        metric: "portctl_tcp_passive_opens_total",
    },
    Watched {
        groups: TCP,
        name: "InSegs",
        trouble: false,
        means: "segments received",
        metric: "portctl_tcp_in_segs_total",
    },
    Watched {
        groups: TCP,
        name: "OutSegs",
        trouble: false,
        means: "segments sent",
        metric: "portctl_tcp_out_segs_total",
    },
    Watched {
        groups: UDP,
        name: "InDatagrams",
        trouble: false,
        means: "datagrams delivered to sockets",
        metric: "portctl_udp_in_datagrams_total",
    },
    Watched {
        groups: UDP,
        name: "OutDatagrams",
        trouble: false,
        means: "datagrams sent",
        metric: "portctl_udp_out_datagrams_total",
    },
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoCount {
    pub proto: Proto,
    pub ipv4: usize,
    pub ipv6: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateCount {
    pub proto: Proto,
    pub state: State,
    pub ipv4: usize,
    pub ipv6: usize,
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralUsage {
    /// `net.ipv4.ip_local_port_range` (IPv6 uses it too).
    pub range: PortRange,
    /// `net.ipv4.ip_local_reserved_ports`, as spans.
    pub reserved: Vec<PortRange>,
    /// Ports `connect()` may pick: the range less the reserved ports in it.
    pub usable: u32,
    pub warn_percent: u32,
    /// Destinations (protocol, remote address, remote port) with at least one
    /// local port in the range.
    pub destinations: usize,
    /// The destinations using the most ports, most first.
    pub busiest: Vec<DestinationUsage>,
    /// Every destination above `warn_percent` (the same warning goes to stderr).
    pub over_threshold: Vec<DestinationUsage>,
}

/// How many usable local ports sockets towards one destination hold. Every
/// socket with a peer counts, TIME_WAIT included: it still holds its
/// 4-tuple, and TIME_WAIT is what usually exhausts the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationUsage {
    pub proto: Proto,
    pub remote: Endpoint,
    /// Distinct local ports in the usable range.
    pub ports: u32,
    /// `ports` as a percentage of `usable`, to one decimal.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Talker {
    pub remote: Endpoint,
    pub count: usize,
}

/// Which end of its connection a TIME_WAIT socket is. TIME_WAIT stays with
/// the side that closed first, so this says who closes first, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// A connection this host accepted: its local port has a listener (or,
    /// with none left, is outside the ephemeral range while the peer's is
    /// inside).
    In,
    /// A connection this host opened.
    Out,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::In => "in",
            Side::Out => "out",
        }
    }
}

/// TIME_WAIT sockets of one side, peer address and service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWaitPeer {
    pub side: Side,
    /// The remote address (IPv4-mapped IPv6 addresses as IPv4).
    pub peer: IpAddr,
    /// The service: the local port for `in`, the remote port for `out`.
    pub port: u16,
    /// Well-known name of `port`, when it has one.
    pub service: Option<String>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseWait {
    /// CLOSE_WAIT sockets.
    pub total: usize,
    /// Of those, how many no visible process holds (see the warning on stderr
    /// when owners are hidden).
    pub unowned: usize,
    /// Most first. A socket shared by several processes counts for each.
    pub processes: Vec<ProcessCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessCount {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub count: usize,
}

/// The summary of `sockets` (every TCP and UDP socket, any state), with the
/// namespace's settings `sys`; `top` rows in the ranked lists. The
/// CLOSE_WAIT section needs owners and is filled in by the caller
/// ([`close_wait_by_process`]).
pub fn summarise(sockets: &[Socket], sys: &Sysctls, top: usize) -> Stats {
    let (protocols, states) = counts(sockets);
    let ephemeral =
        sys.local_port_range.clone().ok().map(|range| ephemeral_usage(sockets, range, &sys.reserved_ports, top));
    Stats {
        schema_version: JSON_SCHEMA_VERSION,
        total: sockets.len(),
        protocols,
        states,
        ephemeral,
        time_wait_top: time_wait_top(sockets, top),
        time_wait_peers: time_wait_peers(sockets, sys.local_range_or_default(), top),
        close_wait: None,
        listeners: listen_queues(sockets, sys, |_| sys.somaxconn),
        udp_drops: udp_drops(sockets),
        kernel: None,
    }
}

/// TCP listeners whose accept queue is full or nearly (fullest first), and
/// those whose backlog equals `somaxconn_of` their namespace (by netns
/// inode; `None`: portctl's own).
pub fn listen_queues(
    sockets: &[Socket],
    sys: &Sysctls,
    somaxconn_of: impl Fn(Option<u64>) -> Option<u32>,
) -> ListenQueues {
    let mut full = Vec::new();
    let mut clamped = Vec::new();
    for s in sockets.iter().filter(|s| s.proto == Proto::Tcp && s.state == State::Listen) {
        let (Some(q), Some(local)) = (s.accept_queue(), s.local_ip()) else { continue };
        let somaxconn = somaxconn_of(s.netns_inode());
        let row = QueuedListener {
            local,
            inode: s.inode,
            netns: s.netns.as_deref().cloned(),
            accept_queue: *q,
            somaxconn,
            processes: processes(s),
        };
        if somaxconn == Some(q.backlog) {
            clamped.push(row.clone());
        }
        if q.is_alarming() {
            full.push(row);
        }
    }
    // Fullest first: by how far past the backlog (queued / backlog), then by address.
    let key = |l: &QueuedListener| u64::from(l.accept_queue.queued) * 1000 / u64::from(l.accept_queue.backlog.max(1));
    full.sort_by(|a, b| key(b).cmp(&key(a)).then(a.local.cmp(&b.local)));
    clamped.sort_by(|a, b| a.local.cmp(&b.local).then(a.inode.cmp(&b.inode)));
    ListenQueues { somaxconn: sys.somaxconn, tcp_max_syn_backlog: sys.tcp_max_syn_backlog, full, clamped }
}

/// UDP sockets whose socket memory says they dropped datagrams, most first.
pub fn udp_drops(sockets: &[Socket]) -> Vec<UdpDrops> {
    let mut v: Vec<UdpDrops> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Udp)
        .filter_map(|s| {
            let m = s.skmem().filter(|m| m.drops > 0)?;
            Some(UdpDrops {
                local: s.local_ip()?,
                inode: s.inode,
                netns: s.netns.as_deref().cloned(),
                drops: m.drops,
                rmem_alloc: m.rmem_alloc,
                rcvbuf: m.rcvbuf,
                processes: processes(s),
            })
        })
        .collect();
    v.sort_by(|a, b| b.drops.cmp(&a.drops).then(a.local.cmp(&b.local)));
    v
}

/// The distinct processes holding a socket, in pid order.
fn processes(s: &Socket) -> Vec<ProcessRef> {
    let mut v: Vec<ProcessRef> = Vec::new();
    for o in &s.owners {
        if !v.iter().any(|p| p.pid == o.pid) {
            v.push(ProcessRef { pid: o.pid, name: o.name.to_string(), user: o.user.to_string() });
        }
    }
    v.sort_by_key(|p| p.pid);
    v
}

/// Fills the `processes` of the listeners and UDP sockets listed, from
/// `sockets` with owners attached (matched by namespace and inode).
pub fn attach_processes(st: &mut Stats, sockets: &[Socket]) {
    let find = |inode: u64, netns: &Option<NetnsRef>| {
        sockets.iter().find(|s| s.inode == inode && s.netns_inode() == netns.as_ref().map(|n| n.inode)).map(processes)
    };
    for l in st.listeners.full.iter_mut().chain(st.listeners.clamped.iter_mut()) {
        l.processes = find(l.inode, &l.netns).unwrap_or_default();
    }
    for u in &mut st.udp_drops {
        u.processes = find(u.inode, &u.netns).unwrap_or_default();
    }
}

/// The kernel section from the counters read last, and, with `--interval`,
/// those read first and the time between the reads.
pub fn kernel(
    counters: Counters,
    first: Option<(Counters, std::time::Duration)>,
    sockstat: Sockstat,
    sys: &Sysctls,
) -> Kernel {
    let sample = first.map(|(before, elapsed)| Sample {
        interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        deltas: counters.minus(&before),
    });
    let secs = sample.as_ref().map(|s| s.interval_ms as f64 / 1000.0);
    let mut problems = Vec::new();
    for w in WATCHED.iter().filter(|w| w.trouble) {
        for group in w.groups {
            let Some(value) = counters.get(group, w.name) else { continue };
            let delta = sample.as_ref().and_then(|s| s.deltas.get(group, w.name));
            if value <= 0 && delta.is_none_or(|d| d <= 0) {
                continue;
            }
            let per_second = match (delta, secs) {
                (Some(d), Some(t)) if t > 0.0 => Some(d as f64 / t),
                _ => None,
            };
            problems.push(Problem {
                group: group.to_string(),
                name: w.name.to_string(),
                value,
                delta,
                per_second,
                means: w.means.to_string(),
            });
        }
    }
    Kernel {
        counters,
        sample,
        problems,
        sockstat,
        tcp_mem: sys.tcp_mem,
        tcp_max_orphans: sys.tcp_max_orphans,
        tcp_max_tw_buckets: sys.tcp_max_tw_buckets,
    }
}

/// Warnings for stderr: TCP memory under pressure, orphans or TIME_WAIT
/// sockets near their limits, accept queues that overflow.
pub fn kernel_warnings(st: &Stats) -> Vec<String> {
    let mut v = Vec::new();
    for l in st.listeners.full.iter().filter(|l| l.accept_queue.full) {
        let who = match l.processes.first() {
            Some(p) => format!(" ({}, pid {})", p.name, p.pid),
            None => String::new(),
        };
        v.push(format!(
            "tcp {}{who}: accept queue full ({} waiting, backlog {}): the process is not accepting fast enough; new connections are dropped",
            l.local, l.accept_queue.queued, l.accept_queue.backlog
        ));
    }
    let Some(k) = &st.kernel else { return v };
    let s = &k.sockstat;
    if let (Some(mem), Some(lim)) = (s.tcp_mem_pages, k.tcp_mem) {
        let over = s.tcp_memory_pressure == Some(true) || mem >= lim.pressure;
        if over {
            v.push(format!(
                "TCP is under memory pressure: {mem} pages in use, net.ipv4.tcp_mem is {} {} {} (min, pressure, max): \
                 the kernel shrinks socket buffers, and at the maximum drops data and resets connections (TcpExt TCPAbortOnMemory)",
                lim.min, lim.pressure, lim.max
            ));
        }
    } else if s.tcp_memory_pressure == Some(true) {
        v.push("TCP is under memory pressure (net.ipv4.tcp_mem): the kernel shrinks socket buffers".to_string());
    }
    if let (Some(n), Some(max)) = (s.tcp_orphan, k.tcp_max_orphans)
        && n * 10 >= max * 9
    {
        v.push(format!(
            "{n} orphaned TCP sockets, of at most {max} (net.ipv4.tcp_max_orphans): past it the kernel resets them (\"too many orphaned sockets\")"
        ));
    }
    if let (Some(n), Some(max)) = (s.tcp_time_wait, k.tcp_max_tw_buckets)
        && n * 10 >= max * 9
    {
        v.push(format!(
            "{n} TIME_WAIT sockets, of at most {max} (net.ipv4.tcp_max_tw_buckets): past it connections close without TIME_WAIT (TcpExt TCPTimeWaitOverflow)"
        ));
    }
    v
}

/// Counts per protocol/family and per protocol/state/family.
pub fn counts(sockets: &[Socket]) -> (Vec<ProtoCount>, Vec<StateCount>) {
    let mut by: HashMap<(Proto, State, Family), usize> = HashMap::new();
    for s in sockets {
        *by.entry((s.proto, s.state, s.family)).or_default() += 1;
    }
    let get = |p, st, f| by.get(&(p, st, f)).copied().unwrap_or(0);
    let mut states = Vec::new();
    let mut protocols = Vec::new();
    for (proto, list) in [(Proto::Tcp, &State::TCP[..]), (Proto::Udp, &[State::Established, State::Unconn][..])] {
        let mut pc = ProtoCount { proto, ipv4: 0, ipv6: 0, total: 0 };
        for &state in list {
            let (ipv4, ipv6) = (get(proto, state, Family::Ipv4), get(proto, state, Family::Ipv6));
            states.push(StateCount { proto, state, ipv4, ipv6, total: ipv4 + ipv6 });
        }
        // Every socket of the protocol, whatever its state.
        for ((p, _, f), n) in &by {
            if *p == proto {
                match f {
                    Family::Ipv4 => pc.ipv4 += n,
                    Family::Ipv6 => pc.ipv6 += n,
                    Family::Unix | Family::Packet => {}
                }
            }
        }
        pc.total = pc.ipv4 + pc.ipv6;
        protocols.push(pc);
    }
    (protocols, states)
}

/// Ephemeral port usage per destination, the `top` busiest and all over
/// [`EPHEMERAL_WARN_PERCENT`].
pub fn ephemeral_usage(sockets: &[Socket], range: PortRange, reserved: &[PortRange], top: usize) -> EphemeralUsage {
    let is_reserved = |p: u16| reserved.iter().any(|r| r.contains(p));
    let reserved_in_range: u32 = reserved
        .iter()
        .map(|r| PortRange { lo: r.lo.max(range.lo), hi: r.hi.min(range.hi) })
        .filter(|r| !r.is_empty())
        .map(PortRange::len)
        .sum();
    let usable = range.len().saturating_sub(reserved_in_range);
    // (proto, destination, local port), deduplicated: one local port used
    // from two local addresses to one destination counts once.
    let mut used: Vec<(Proto, Endpoint, u16)> = sockets
        .iter()
        .filter(|s| !matches!(s.state, State::Listen | State::Unconn | State::Close))
        .filter(|s| range.contains(s.port()) && !is_reserved(s.port()))
        .filter_map(|s| Some((s.proto, unmapped_endpoint(s.remote_ip()?), s.port())))
        .filter(|(_, r, _)| r.port != 0)
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut per_dest: Vec<DestinationUsage> = Vec::new();
    for (proto, remote, _) in used {
        match per_dest.last_mut() {
            Some(d) if d.proto == proto && d.remote == remote => d.ports += 1,
            _ => per_dest.push(DestinationUsage { proto, remote, ports: 1, percent: 0.0 }),
        }
    }
    for d in &mut per_dest {
        d.percent = percent(d.ports, usable);
    }
    let destinations = per_dest.len();
    per_dest.sort_by(|a, b| b.ports.cmp(&a.ports).then((a.proto, a.remote).cmp(&(b.proto, b.remote))));
    let over_threshold: Vec<DestinationUsage> = per_dest
        .iter()
        .filter(|d| u64::from(d.ports) * 100 > u64::from(usable) * u64::from(EPHEMERAL_WARN_PERCENT))
        .cloned()
        .collect();
    per_dest.truncate(top);
    EphemeralUsage {
        range,
        reserved: reserved.to_vec(),
        usable,
        warn_percent: EPHEMERAL_WARN_PERCENT,
        destinations,
        busiest: per_dest,
        over_threshold,
    }
}

/// `part / whole` in percent, rounded to one decimal (half up).
fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    ((u64::from(part) * 1000 + u64::from(whole) / 2) / u64::from(whole)) as f64 / 10.0
}

/// Warnings for destinations over the threshold: at most five, and a count
/// of the others (for stderr).
pub fn exhaustion_warnings(e: &EphemeralUsage) -> Vec<String> {
    const SHOWN: usize = 5;
    let mut v: Vec<String> = e
        .over_threshold
        .iter()
        .take(SHOWN)
        .map(|d| {
            format!(
                "{} {}: {} of {} ephemeral ports in use ({}%); connect() to it fails with \
                 'cannot assign requested address' when none is left (widen net.ipv4.ip_local_port_range, \
                 reuse connections, or spread over more addresses)",
                d.proto, d.remote, d.ports, e.usable, d.percent
            )
        })
        .collect();
    if e.over_threshold.len() > SHOWN {
        v.push(format!(
            "{} more destinations use over {}% of the ephemeral port range",
            e.over_threshold.len() - SHOWN,
            e.warn_percent
        ));
    }
    v
}

/// The `top` remote endpoints with the most TIME_WAIT sockets.
pub fn time_wait_top(sockets: &[Socket], top: usize) -> Vec<Talker> {
    let mut by: HashMap<Endpoint, usize> = HashMap::new();
    for s in sockets.iter().filter(|s| s.state == State::TimeWait) {
        if let Some(r) = s.remote_ip() {
            *by.entry(unmapped_endpoint(r)).or_default() += 1;
        }
    }
    let mut v: Vec<Talker> = by.into_iter().map(|(remote, count)| Talker { remote, count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.remote.cmp(&b.remote)));
    v.truncate(top);
    v
}

/// The `top` (side, peer address, service port) groups with the most
/// TIME_WAIT sockets. `range` is the ephemeral port range, for sockets
/// whose local port no longer has a listener.
pub fn time_wait_peers(sockets: &[Socket], range: PortRange, top: usize) -> Vec<TimeWaitPeer> {
    let listening: std::collections::HashSet<(Option<u64>, u16)> =
        sockets.iter().filter(|s| s.state == State::Listen).map(|s| (s.netns_inode(), s.port())).collect();
    let mut by: HashMap<(Side, IpAddr, u16), usize> = HashMap::new();
    for s in sockets.iter().filter(|s| s.state == State::TimeWait) {
        let Some(remote) = s.remote_ip().map(unmapped_endpoint) else { continue };
        let accepted = listening.contains(&(s.netns_inode(), s.port()))
            || (!range.contains(s.port()) && range.contains(remote.port));
        let key = if accepted { (Side::In, remote.addr, s.port()) } else { (Side::Out, remote.addr, remote.port) };
        *by.entry(key).or_default() += 1;
    }
    let mut v: Vec<TimeWaitPeer> = by
        .into_iter()
        .map(|((side, peer, port), count)| TimeWaitPeer {
            side,
            peer,
            port,
            service: services::name(Proto::Tcp, port).map(str::to_string),
            count,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then((a.side, a.peer, a.port).cmp(&(b.side, b.peer, b.port))));
    v.truncate(top);
    v
}

/// CLOSE_WAIT sockets (with owners attached) grouped by process.
pub fn close_wait_by_process(sockets: &[Socket]) -> CloseWait {
    let mut by: HashMap<u32, ProcessCount> = HashMap::new();
    let mut total = 0;
    let mut unowned = 0;
    for s in sockets.iter().filter(|s| s.state == State::CloseWait) {
        total += 1;
        if s.owners.is_empty() {
            unowned += 1;
        }
        let mut pids: Vec<u32> = Vec::new();
        for o in &s.owners {
            if pids.contains(&o.pid) {
                continue; // one process, several descriptors: one socket
            }
            pids.push(o.pid);
            by.entry(o.pid)
                .or_insert_with(|| ProcessCount {
                    pid: o.pid,
                    name: o.name.to_string(),
                    user: o.user.to_string(),
                    count: 0,
                })
                .count += 1;
        }
    }
    let mut processes: Vec<ProcessCount> = by.into_values().collect();
    processes.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
    CloseWait { total, unowned, processes }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Owner;
    use std::sync::Arc;

    fn sock(proto: Proto, state: State, local: &str, remote: Option<&str>) -> Socket {
        let inode = if state == State::TimeWait { 0 } else { 77 };
        Socket::sample(proto, state, local, remote, inode)
    }

    fn owned(mut s: Socket, owners: &[(u32, &str)]) -> Socket {
        s.owners = owners
            .iter()
            .map(|&(pid, name)| Owner {
                pid,
                name: Arc::from(name),
                user: Arc::from("alice"),
                fd: 3,
                tid: None,
                cmdline: Arc::from(name),
                context: None,
            })
            .collect();
        s
    }

    #[test]
    fn ephemeral_usage_per_destination() {
        // A small range (100 ports, 10 reserved) makes the threshold easy to reach.
        let range = PortRange { lo: 40000, hi: 40099 };
        let reserved = [PortRange { lo: 40090, hi: 40120 }, PortRange { lo: 80, hi: 80 }];
        let mut v = Vec::new();
        // 73 ports to db:5432 in assorted states, plus a duplicate local port
        // from a second local address, and 2 through IPv4-mapped IPv6.
        for i in 0..71u16 {
            let st = [State::Established, State::TimeWait, State::CloseWait, State::SynSent][i as usize % 4];
            v.push(sock(Proto::Tcp, st, &format!("10.0.0.1:{}", 40000 + i), Some("10.0.0.9:5432")));
        }
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.2:40000", Some("10.0.0.9:5432")));
        v.push(sock(Proto::Tcp, State::Established, "[::ffff:10.0.0.1]:40071", Some("[::ffff:10.0.0.9]:5432")));
        v.push(sock(Proto::Tcp, State::Established, "[::ffff:10.0.0.1]:40072", Some("[::ffff:10.0.0.9]:5432")));
        // reserved and out-of-range ports do not count
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.1:40095", Some("10.0.0.9:5432")));
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.1:50000", Some("10.0.0.9:5432")));
        // 82 ports to a DNS server over UDP, which has its own port space
        for i in 0..82u16 {
            v.push(sock(Proto::Udp, State::Established, &format!("10.0.0.1:{}", 40000 + i), Some("10.0.0.8:53")));
        }
        // a server socket accepted on an in-range port: one port per client
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.1:40080", Some("192.0.2.1:33000")));
        // listeners and unconnected UDP never count
        v.push(sock(Proto::Tcp, State::Listen, "0.0.0.0:40081", None));
        v.push(sock(Proto::Udp, State::Unconn, "0.0.0.0:40082", None));

        let e = ephemeral_usage(&v, range, &reserved, 10);
        assert_eq!(e.usable, 90);
        assert_eq!(e.destinations, 3);
        let got: Vec<(Proto, String, u32, f64)> =
            e.busiest.iter().map(|d| (d.proto, d.remote.to_string(), d.ports, d.percent)).collect();
        assert_eq!(
            got,
            vec![
                (Proto::Udp, "10.0.0.8:53".into(), 82, 91.1),
                (Proto::Tcp, "10.0.0.9:5432".into(), 73, 81.1),
                (Proto::Tcp, "192.0.2.1:33000".into(), 1, 1.1),
            ]
        );
        assert_eq!(e.over_threshold.len(), 2, "both above 80%");
        assert_eq!((percent(1, 28232), percent(3, 28232), percent(2, 3)), (0.0, 0.0, 66.7), "rounded, not cut");
        assert_eq!(percent(1, 1999), 0.1);
        let e = ephemeral_usage(&v, range, &reserved, 1);
        assert_eq!((e.busiest.len(), e.destinations, e.over_threshold.len()), (1, 3, 2));

        // exactly 80% is not over the threshold
        let v: Vec<Socket> = (0..72u16)
            .map(|i| sock(Proto::Tcp, State::Established, &format!("10.0.0.1:{}", 40000 + i), Some("10.0.0.9:1")))
            .collect();
        let e = ephemeral_usage(&v, range, &reserved, 10);
        assert_eq!((e.busiest[0].ports, e.busiest[0].percent, e.over_threshold.len()), (72, 80.0, 0));

        assert!(exhaustion_warnings(&ephemeral_usage(&v[..1], range, &[], 10)).is_empty());
    }

    #[test]
    fn exhaustion_warning_names_the_destination() {
        let range = PortRange { lo: 40000, hi: 40009 };
        let v: Vec<Socket> = (0..9u16)
            .map(|i| sock(Proto::Tcp, State::TimeWait, &format!("10.0.0.1:{}", 40000 + i), Some("10.0.0.9:443")))
            .collect();
        let w = exhaustion_warnings(&ephemeral_usage(&v, range, &[], 10));
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("tcp 10.0.0.9:443: 9 of 10 ephemeral ports in use (90%)"), "{}", w[0]);
    }

    #[test]
    fn time_wait_talkers() {
        let mut v = Vec::new();
        for (remote, n) in [("10.0.0.9:443", 5), ("10.0.0.7:80", 7), ("10.0.0.8:80", 5), ("10.0.0.6:22", 1)] {
            for i in 0..n {
                v.push(sock(Proto::Tcp, State::TimeWait, &format!("10.0.0.1:{}", 40000 + i), Some(remote)));
            }
        }
        // mapped IPv6 joins its IPv4 twin; other states do not count
        v.push(sock(Proto::Tcp, State::TimeWait, "[::ffff:10.0.0.1]:41000", Some("[::ffff:10.0.0.6]:22")));
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.1:41001", Some("10.0.0.6:22")));
        let got: Vec<(String, usize)> = time_wait_top(&v, 3).iter().map(|t| (t.remote.to_string(), t.count)).collect();
        assert_eq!(got, vec![("10.0.0.7:80".into(), 7), ("10.0.0.8:80".into(), 5), ("10.0.0.9:443".into(), 5)]);
        let all = time_wait_top(&v, 10);
        assert_eq!(all.len(), 4);
        assert_eq!((all[3].remote.to_string().as_str(), all[3].count), ("10.0.0.6:22", 2));
        assert!(time_wait_top(&[], 10).is_empty());
    }

    /// Server side: every client port differs, so the group is the client
    /// address and the local (service) port; client side: the server's
    /// address and port. A listener decides, else the ephemeral range.
    #[test]
    fn time_wait_peers_by_side() {
        let tw = |local: &str, remote: &str| sock(Proto::Tcp, State::TimeWait, local, Some(remote));
        let mut v = vec![sock(Proto::Tcp, State::Listen, "0.0.0.0:8080", None)];
        for i in 0..6 {
            v.push(tw("10.0.0.1:8080", &format!("10.0.0.5:{}", 50000 + i))); // we accepted, closed first
        }
        for i in 0..3 {
            v.push(tw(&format!("10.0.0.1:{}", 40000 + i), "10.0.0.9:5432")); // we connected
        }
        // No listener on 443 any more: 443 is outside the range, the peer's port inside.
        v.push(tw("[::ffff:10.0.0.1]:443", "[::ffff:10.0.0.5]:33000"));
        v.push(tw("10.0.0.1:443", "10.0.0.5:33001"));
        // A listener on a port inside the range still makes it the server side.
        v.push(sock(Proto::Tcp, State::Listen, "0.0.0.0:40500", None));
        v.push(tw("10.0.0.1:40500", "10.0.0.6:40000"));
        v.push(sock(Proto::Tcp, State::Established, "10.0.0.1:8080", Some("10.0.0.5:49999")));
        let got: Vec<(Side, String, u16, Option<String>, usize)> =
            time_wait_peers(&v, crate::sysctl::DEFAULT_LOCAL_PORT_RANGE, 10)
                .into_iter()
                .map(|t| (t.side, t.peer.to_string(), t.port, t.service, t.count))
                .collect();
        let name = |p| services::name(Proto::Tcp, p).map(str::to_string);
        assert_eq!(
            got,
            vec![
                (Side::In, "10.0.0.5".into(), 8080, name(8080), 6),
                (Side::Out, "10.0.0.9".into(), 5432, name(5432), 3),
                (Side::In, "10.0.0.5".into(), 443, name(443), 2),
                (Side::In, "10.0.0.6".into(), 40500, name(40500), 1),
            ]
        );
        assert_eq!(time_wait_peers(&v, crate::sysctl::DEFAULT_LOCAL_PORT_RANGE, 2).len(), 2);
        assert!(time_wait_peers(&[], crate::sysctl::DEFAULT_LOCAL_PORT_RANGE, 10).is_empty());
    }

    #[test]
    fn close_wait_grouping() {
        let cw = |port: u16| sock(Proto::Tcp, State::CloseWait, &format!("10.0.0.1:{port}"), Some("10.0.0.9:80"));
        let v = vec![
            owned(cw(1), &[(20, "leaky")]),
            owned(cw(2), &[(20, "leaky")]),
            owned(cw(3), &[(20, "leaky"), (20, "leaky")]), // two fds, one process
            owned(cw(4), &[(30, "worker"), (31, "worker")]), // shared after fork
            cw(5),
            owned(sock(Proto::Tcp, State::Established, "10.0.0.1:6", Some("10.0.0.9:80")), &[(40, "other")]),
        ];
        let got = close_wait_by_process(&v);
        assert_eq!((got.total, got.unowned), (5, 1));
        let rows: Vec<(u32, &str, usize)> = got.processes.iter().map(|p| (p.pid, p.name.as_str(), p.count)).collect();
        assert_eq!(rows, vec![(20, "leaky", 3), (30, "worker", 1), (31, "worker", 1)]);
    }

    #[test]
    fn counts_include_every_state_and_zeros() {
        let v = vec![
            sock(Proto::Tcp, State::Listen, "0.0.0.0:80", None),
            sock(Proto::Tcp, State::Listen, "[::]:80", None),
            sock(Proto::Tcp, State::TimeWait, "10.0.0.1:40000", Some("10.0.0.9:80")),
            sock(Proto::Udp, State::Unconn, "[::]:53", None),
        ];
        let (protos, states) = counts(&v);
        assert_eq!(
            protos,
            vec![
                ProtoCount { proto: Proto::Tcp, ipv4: 2, ipv6: 1, total: 3 },
                ProtoCount { proto: Proto::Udp, ipv4: 0, ipv6: 1, total: 1 },
            ]
        );
        assert_eq!(states.len(), 13);
        let find = |p, s| states.iter().find(|c| c.proto == p && c.state == s).unwrap().clone();
        assert_eq!(
            find(Proto::Tcp, State::Listen),
            StateCount { proto: Proto::Tcp, state: State::Listen, ipv4: 1, ipv6: 1, total: 2 }
        );
        assert_eq!(find(Proto::Tcp, State::CloseWait).total, 0);
        assert_eq!(find(Proto::Udp, State::Unconn).ipv6, 1);
    }

    /// Listeners: full (2 over a backlog of 1), near full, quiet; a backlog
    /// that is somaxconn; a UDP socket that dropped, one that did not.
    pub(crate) fn queues() -> Vec<Socket> {
        let listener = |local: &str, queued, backlog, inode| {
            let mut s = sock(Proto::Tcp, State::Listen, local, None);
            s.inode = inode;
            s.recv_q = queued;
            s.send_q = backlog;
            s.ext_mut().accept_queue = Some(AcceptQueue::new(queued, backlog));
            s
        };
        let udp = |local: &str, drops, inode| {
            let mut s = sock(Proto::Udp, State::Unconn, local, None);
            s.inode = inode;
            s.ext_mut().skmem =
                Some(crate::model::SkMem { rmem_alloc: 1280, rcvbuf: 2304, drops, ..Default::default() });
            s
        };
        vec![
            owned(listener("127.0.0.1:8080", 2, 1, 11), &[(40, "app"), (40, "app"), (41, "app")]),
            listener("0.0.0.0:9000", 116, 128, 12),
            listener("0.0.0.0:22", 0, 4096, 13),
            listener("0.0.0.0:443", 3, 8, 14),
            owned(udp("127.0.0.1:5353", 19, 21), &[(50, "mdns")]),
            udp("0.0.0.0:53", 0, 22),
            udp("0.0.0.0:123", 400, 23),
        ]
    }

    fn sys_with(somaxconn: u32) -> Sysctls {
        let mut sys = Sysctls::unknown("test".into());
        sys.somaxconn = Some(somaxconn);
        sys.tcp_max_syn_backlog = Some(128);
        sys.tcp_mem = Some(TcpMem { min: 100, pressure: 200, max: 300 });
        sys.tcp_max_orphans = Some(10);
        sys.tcp_max_tw_buckets = Some(100);
        sys
    }

    #[test]
    fn listen_queues_full_first_and_clamped() {
        let v = queues();
        let q = listen_queues(&v, &sys_with(8), |_| Some(8));
        let full: Vec<(String, u32, u32, bool)> = q
            .full
            .iter()
            .map(|l| (l.local.to_string(), l.accept_queue.queued, l.accept_queue.backlog, l.accept_queue.full))
            .collect();
        assert_eq!(
            full,
            [("127.0.0.1:8080".into(), 2, 1, true), ("0.0.0.0:9000".into(), 116, 128, false)],
            "full first, then near full; 3 of 8 is neither"
        );
        assert_eq!(q.full[0].processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [40, 41], "one entry per process");
        assert_eq!(q.clamped.iter().map(|l| l.local.port).collect::<Vec<_>>(), [443], "backlog 8 = somaxconn 8");
        assert_eq!((q.somaxconn, q.tcp_max_syn_backlog), (Some(8), Some(128)));
        // Each namespace's own somaxconn: only the default 4096 here.
        let q = listen_queues(&v, &sys_with(8), |_| Some(4096));
        assert_eq!(q.clamped.iter().map(|l| l.local.port).collect::<Vec<_>>(), [22]);
        assert!(listen_queues(&v, &sys_with(8), |_| None).clamped.is_empty());

        let d = udp_drops(&v);
        assert_eq!(d.iter().map(|d| (d.local.port, d.drops)).collect::<Vec<_>>(), [(123, 400), (5353, 19)]);
        assert_eq!(d[1].processes, [ProcessRef { pid: 50, name: "mdns".into(), user: "alice".into() }]);
        assert_eq!((d[1].rmem_alloc, d[1].rcvbuf), (1280, 2304));
    }

    #[test]
    fn kernel_problems_rates_and_warnings() {
        let counters = crate::counters::tests::recorded();
        // Without --interval: the trouble counters that are not zero, in
        // WATCHED's order.
        let mut sockstat = crate::counters::parse_sockstat(crate::counters::tests::SOCKSTAT);
        let k = kernel(counters.clone(), None, sockstat.clone(), &sys_with(8));
        let names: Vec<String> = k.problems.iter().map(|p| format!("{}{}", p.group, p.name)).collect();
        assert_eq!(
            names,
            [
                "TcpExtListenOverflows",
                "TcpExtListenDrops",
                "TcpEstabResets",
                "TcpOutRsts",
                "UdpInErrors",
                "UdpRcvbufErrors",
                "Udp6RcvbufErrors",
                "Udp6NoPorts"
            ]
        );
        assert!(k.problems.iter().all(|p| p.delta.is_none() && p.per_second.is_none()));
        assert_eq!(k.tcp_mem, Some(TcpMem { min: 100, pressure: 200, max: 300 }));
        // With --interval: deltas, and the rate per second.
        let mut before = counters.clone();
        for g in &mut before.groups {
            for (n, v) in &mut g.values {
                if n == "ListenOverflows" {
                    *v -= 6;
                }
            }
        }
        let k = kernel(
            counters.clone(),
            Some((before, std::time::Duration::from_millis(2000))),
            sockstat.clone(),
            &sys_with(8),
        );
        let s = k.sample.as_ref().unwrap();
        assert_eq!((s.interval_ms, s.deltas.get("TcpExt", "ListenOverflows")), (2000, Some(6)));
        let p = &k.problems[0];
        assert_eq!((p.name.as_str(), p.value, p.delta, p.per_second), ("ListenOverflows", 20, Some(6), Some(3.0)));
        assert_eq!(k.problems[1].delta, Some(0));

        // Warnings: the full queue; memory at the pressure threshold, orphans
        // and TIME_WAIT near their limits.
        let mut st = summarise(&queues(), &sys_with(8), 10);
        st.kernel = Some(k.clone());
        let w = kernel_warnings(&st);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("tcp 127.0.0.1:8080 (app, pid 40): accept queue full (2 waiting, backlog 1)"),
            "{w:?}"
        );
        assert!(w[1].contains("TCP is under memory pressure: 221 pages in use"), "{w:?}");
        sockstat.tcp_mem_pages = Some(150);
        sockstat.tcp_memory_pressure = Some(false);
        sockstat.tcp_orphan = Some(9);
        sockstat.tcp_time_wait = Some(95);
        st.kernel = Some(kernel(counters, None, sockstat, &sys_with(8)));
        let w = kernel_warnings(&st);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].starts_with("9 orphaned TCP sockets, of at most 10"), "{w:?}");
        assert!(w[2].starts_with("95 TIME_WAIT sockets, of at most 100"), "{w:?}");
    }

    #[test]
    fn json_round_trips_with_deny_unknown_fields() {
        let mut v = vec![sock(Proto::Tcp, State::TimeWait, "10.0.0.1:40000", Some("10.0.0.9:80"))];
        v.extend(queues());
        let sys = sys_with(8);
        let mut s = summarise(&v, &sys, 10);
        s.ephemeral = Some(ephemeral_usage(&v, PortRange { lo: 32768, hi: 60999 }, &[], 10));
        let counters = crate::counters::tests::recorded();
        let sockstat = crate::counters::parse_sockstat(crate::counters::tests::SOCKSTAT);
        s.kernel = Some(kernel(counters.clone(), Some((counters, std::time::Duration::from_secs(1))), sockstat, &sys));
        assert!(!s.listeners.full.is_empty() && !s.udp_drops.is_empty());
        let buf = serde_json::to_vec_pretty(&s).unwrap();
        let back: Stats = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, s);
    }
}
