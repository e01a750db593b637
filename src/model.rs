//! Plain data: what the kernel told us about a socket and who holds it.
//!
//! These types are the JSON contract (see `docs/json.md`): renaming a field or
//! a variant is a breaking change.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Version of the JSON contract described in `docs/json.md`.
pub const JSON_SCHEMA_VERSION: u32 = 3;

/// The kind of socket: its protocol (TCP, UDP, raw IP) or, for the other
/// address families, the family's own kind (unix, packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// SOCK_RAW IP sockets (ICMP, routing daemons), `ss -w`.
    Raw,
    /// AF_UNIX, every type (stream, dgram, seqpacket), `ss -x`.
    Unix,
    /// AF_PACKET (link layer: tcpdump, dhclient), `ss -0`.
    Packet,
    /// ICMP datagram sockets ("ping sockets": SOCK_DGRAM with IPPROTO_ICMP
    /// or IPPROTO_ICMPV6, what an unprivileged `ping` opens); listed with
    /// raw sockets (`--raw`). No sock_diag module reports them: they come
    /// from /proc/net/icmp and icmp6.
    Icmp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Raw => "raw",
            Proto::Unix => "unix",
            Proto::Packet => "packet",
            Proto::Icmp => "icmp",
        }
    }

    /// The kinds with IP addresses: TCP, UDP, raw and ICMP sockets.
    pub fn is_ip(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp | Proto::Raw | Proto::Icmp)
    }

    /// TCP and UDP: the protocols with ports, which `who`, `kill`, `wait`
    /// and the bind rules are about.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, `AF_PACKET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
    Unix,
    Packet,
}

impl Family {
    /// The IP families, in the order dumps are made.
    pub const IP: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
            Family::Unix => "unix",
            Family::Packet => "packet",
        }
    }
}

/// Socket state, with the kernel's numbering (`include/net/tcp_states.h`).
///
/// UDP reuses the numbers: a connected UDP socket is `Established`, an
/// unconnected one is `TCP_CLOSE` in the kernel and [`State::Unconn`] here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Established,
    SynSent,
    SynRecv,
    #[serde(rename = "fin_wait1")]
    FinWait1,
    #[serde(rename = "fin_wait2")]
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    /// UDP socket that is bound but not connected (kernel state TCP_CLOSE).
    Unconn,
}

impl State {
    /// Every TCP state, in kernel order.
    pub const TCP: [State; 11] = [
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait1,
        State::FinWait2,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::Closing,
    ];

    /// Decodes the kernel's state number for a protocol. Unknown numbers
    /// (e.g. TCP_NEW_SYN_RECV = 12, which the kernel reports as SYN_RECV
    /// already) map to the nearest meaning.
    pub fn from_kernel(proto: Proto, n: u8) -> State {
        match (proto, n) {
            (Proto::Tcp, 7) => State::Close,
            (_, 7) => State::Unconn,
            (_, 1) => State::Established,
            (_, 2) => State::SynSent,
            (_, 3) | (_, 12) => State::SynRecv,
            (_, 4) => State::FinWait1,
            (_, 5) => State::FinWait2,
            (_, 6) => State::TimeWait,
            (_, 8) => State::CloseWait,
            (_, 9) => State::LastAck,
            (_, 10) => State::Listen,
            (_, 11) => State::Closing,
            _ => State::Close,
        }
    }

    /// The kernel's state number (`Unconn` is TCP_CLOSE).
    pub fn kernel_number(self) -> u8 {
        match self {
            State::Established => 1,
            State::SynSent => 2,
            State::SynRecv => 3,
            State::FinWait1 => 4,
            State::FinWait2 => 5,
            State::TimeWait => 6,
            State::Close | State::Unconn => 7,
            State::CloseWait => 8,
            State::LastAck => 9,
            State::Listen => 10,
            State::Closing => 11,
        }
    }

    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Established => "established",
            State::SynSent => "syn_sent",
            State::SynRecv => "syn_recv",
            State::FinWait1 => "fin_wait1",
            State::FinWait2 => "fin_wait2",
            State::TimeWait => "time_wait",
            State::Close => "close",
            State::CloseWait => "close_wait",
            State::LastAck => "last_ack",
            State::Listen => "listen",
            State::Closing => "closing",
            State::Unconn => "unconn",
        }
    }

    /// The name `ss` prints, upper case, for tables.
    pub fn label(self) -> &'static str {
        match self {
            State::Established => "ESTAB",
            State::SynSent => "SYN-SENT",
            State::SynRecv => "SYN-RECV",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::TimeWait => "TIME-WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE-WAIT",
            State::LastAck => "LAST-ACK",
            State::Listen => "LISTEN",
            State::Closing => "CLOSING",
            State::Unconn => "UNCONN",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`State`]s, as a bit per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct StateSet(u16);

impl StateSet {
    pub const EMPTY: StateSet = StateSet(0);

    pub fn of(states: &[State]) -> StateSet {
        let mut set = StateSet::EMPTY;
        for &s in states {
            set.insert(s);
        }
        set
    }

    /// Every TCP state plus unconnected UDP.
    pub fn all() -> StateSet {
        let mut set = StateSet::of(&State::TCP);
        set.insert(State::Unconn);
        set
    }

    pub fn insert(&mut self, s: State) {
        self.0 |= 1 << (s as u16);
    }

    pub fn contains(self, s: State) -> bool {
        self.0 & (1 << (s as u16)) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: StateSet) -> StateSet {
        StateSet(self.0 | other.0)
    }

    /// The kernel's state mask (`idiag_states`, `udiag_states`) for one
    /// kind of socket. UDP and raw sockets only ever are ESTABLISHED
    /// (connected) or CLOSE (unconnected, our `unconn`); unix sockets are
    /// also LISTEN or SYN_SENT (connecting); packet sockets have no state.
    pub fn kernel_mask(self, proto: Proto) -> u32 {
        let bits =
            |states: &[State]| states.iter().filter(|&&s| self.contains(s)).fold(0, |m, s| m | 1 << s.kernel_number());
        match proto {
            Proto::Tcp => bits(&State::TCP),
            Proto::Udp | Proto::Raw | Proto::Icmp => bits(&[State::Established, State::Unconn]),
            Proto::Unix => bits(&[State::Established, State::SynSent, State::Listen, State::Unconn]),
            Proto::Packet => u32::MAX,
        }
    }
}

/// An IP end of a socket: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn is_wildcard(&self) -> bool {
        self.addr.is_unspecified()
    }
}

impl fmt::Display for Endpoint {
    /// `127.0.0.1:80`, `[::1]:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// An inclusive port range; one port is `lo == hi`. The command line's
/// `--port 8000-8100`, the kernel's ephemeral and reserved ranges.
/// JSON: `{"lo": number, "hi": number}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// How many ports it holds (0 when backwards).
    pub fn len(self) -> u32 {
        if self.hi < self.lo { 0 } else { u32::from(self.hi - self.lo) + 1 }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for PortRange {
    /// `8080`, `8000-8100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi { write!(f, "{}", self.lo) } else { write!(f, "{}-{}", self.lo, self.hi) }
    }
}

/// The name of a unix socket: a filesystem path, an abstract name (Linux:
/// a name in the network namespace, not a file), or none (a socketpair, or
/// the client end of most connections).
///
/// JSON: `{"name": string | null, "abstract": bool}`; `ss` prints an
/// abstract name as `@name`, and so do tables here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixName {
    /// The path or the abstract name; `null` when unnamed. Bytes that are
    /// not UTF-8 are replaced (U+FFFD); abstract names keep their NULs.
    pub name: Option<Box<str>>,
    #[serde(rename = "abstract")]
    pub is_abstract: bool,
}

impl UnixName {
    /// A filesystem path.
    pub fn path(p: impl Into<Box<str>>) -> UnixName {
        UnixName { name: Some(p.into()), is_abstract: false }
    }

    /// An abstract name (without the leading NUL).
    pub fn abstract_name(n: impl Into<Box<str>>) -> UnixName {
        UnixName { name: Some(n.into()), is_abstract: true }
    }

    /// No name: a socketpair, or most clients.
    pub fn unnamed() -> UnixName {
        UnixName { name: None, is_abstract: false }
    }
}

/// The link-layer end of a packet socket: the interface it is bound to (0:
/// every interface) and the Ethernet protocol it receives (ETH_P_*, host
/// order; 0x0003 is ETH_P_ALL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkAddr {
    pub ifindex: u32,
    pub protocol: u16,
}

/// One end of a socket, whatever its kind: what `local` and `remote` hold.
///
/// JSON is the inner object itself (no tag): `{"addr", "port"}` for TCP,
/// UDP and raw sockets, `{"name", "abstract"}` for unix sockets,
/// `{"ifindex", "protocol"}` for packet sockets. Unix names are boxed so
/// the common IP case stays small (a socket record per socket on the host).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Addr {
    Ip(Endpoint),
    Unix(Box<UnixName>),
    Link(LinkAddr),
}

impl Addr {
    /// The IP endpoint, for TCP, UDP and raw sockets.
    pub fn ip(&self) -> Option<Endpoint> {
        match self {
            Addr::Ip(e) => Some(*e),
            _ => None,
        }
    }

    /// The unix name, for unix sockets.
    pub fn unix(&self) -> Option<&UnixName> {
        match self {
            Addr::Unix(u) => Some(u),
            _ => None,
        }
    }

    /// The link-layer end, for packet sockets.
    pub fn link(&self) -> Option<LinkAddr> {
        match self {
            Addr::Link(l) => Some(*l),
            _ => None,
        }
    }

    /// A unix end.
    pub fn from_unix(u: UnixName) -> Addr {
        Addr::Unix(Box::new(u))
    }
}

impl From<Endpoint> for Addr {
    fn from(e: Endpoint) -> Addr {
        Addr::Ip(e)
    }
}

impl fmt::Display for Addr {
    /// `127.0.0.1:80`, `[::1]:80`, `/run/app.sock`, `@name`, `*` (an unnamed
    /// unix socket), `if2:0x0003`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Ip(e) => e.fmt(f),
            // An abstract name's NULs show as `@`, as in `ss` (JSON keeps them).
            Addr::Unix(u) => match (&u.name, u.is_abstract) {
                (None, _) => f.write_str("*"),
                (Some(n), true) => write!(f, "@{}", n.replace('\0', "@")),
                (Some(n), false) => f.write_str(n),
            },
            Addr::Link(l) => write!(f, "if{}:{:#06x}", l.ifindex, l.protocol),
        }
    }
}

/// How far a bound address reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// 127.0.0.0/8, ::1 and IPv4-mapped loopback: reachable from this host only.
    Loopback,
    /// 0.0.0.0 or `::`: every address of the family (both families for a
    /// dual-stack `::` socket).
    Wildcard,
    /// One specific address (see `interface`).
    Address,
}

impl Exposure {
    pub fn of(addr: &IpAddr) -> Exposure {
        if addr.is_unspecified() {
            Exposure::Wildcard
        } else if is_loopback(addr) {
            Exposure::Loopback
        } else {
            Exposure::Address
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Exposure::Loopback => "loopback",
            Exposure::Wildcard => "wildcard",
            Exposure::Address => "address",
        }
    }
}

/// Loopback, including IPv4-mapped 127.0.0.0/8 (`::ffff:127.0.0.1`).
pub fn is_loopback(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// IPv4-mapped IPv6 addresses as IPv4 (`::ffff:10.0.0.1` is `10.0.0.1`):
/// the same peer, the same port space, the same interface address.
pub fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// [`unmapped`] for an endpoint.
pub fn unmapped_endpoint(e: Endpoint) -> Endpoint {
    Endpoint { addr: unmapped(e.addr), port: e.port }
}

/// A kernel timer running on a socket (`idiag_timer`, `idiag_expires`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timer {
    pub kind: TimerKind,
    /// Milliseconds until it fires.
    pub expires_ms: u32,
    /// Retransmissions so far (retransmit timer only; otherwise 0).
    pub retrans: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// Retransmit timer (`on` in ss).
    Retransmit,
    /// Keepalive.
    Keepalive,
    /// TIME_WAIT expiry.
    TimeWait,
    /// Zero-window probe.
    Probe,
}

impl TimerKind {
    /// The kernel's timer code (`idiag_timer`, the `tr` column of
    /// /proc/net/tcp): 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 probe.
    pub fn from_kernel(code: u8) -> Option<TimerKind> {
        match code {
            1 => Some(TimerKind::Retransmit),
            2 => Some(TimerKind::Keepalive),
            3 => Some(TimerKind::TimeWait),
            4 => Some(TimerKind::Probe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Retransmit => "retransmit",
            TimerKind::Keepalive => "keepalive",
            TimerKind::TimeWait => "time_wait",
            TimerKind::Probe => "probe",
        }
    }
}

/// Where a process runs, from its cgroup (see docs/containers.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The cgroup path (v2 unified line, else the first v1 hierarchy's).
    pub cgroup: String,
    /// systemd unit: `nginx.service`, `session-3.scope`.
    pub unit: Option<String>,
    pub container: Option<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// `docker`, `containerd`, `cri-o`, `podman`, `lxc`.
    pub runtime: String,
    /// Full id (64 hex) or, for LXC, the container name.
    pub id: String,
    /// Kubernetes pod uid, when the path names one.
    pub pod_uid: Option<String>,
    /// Container name, when the runtime's metadata is readable locally
    /// (Docker's config.v2.json, Podman's containers.json).
    pub name: Option<String>,
}

/// The first 12 characters of a container id, as `docker ps` shows it.
/// Characters, not bytes: an LXC container's "id" is its name, any text.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// A process that holds a socket through one of its file descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub pid: u32,
    /// `comm` (may be truncated to 15 bytes by the kernel).
    pub name: Arc<str>,
    /// User name of the process's effective uid, or the number when it has
    /// no name; `?` when the process vanished before we could look.
    pub user: Arc<str>,
    pub fd: u32,
    /// The thread whose descriptor table holds `fd`, when that is not the
    /// process's own: a thread that called `unshare(CLONE_FILES)`
    /// (`/proc/PID/task/TID/fd`). `None` for the process's table.
    pub tid: Option<u32>,
    /// Full command line, arguments joined by spaces; empty for kernel threads
    /// and zombies.
    pub cmdline: Arc<str>,
    /// Only with `--context`: systemd unit and container of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Box<Context>>,
}

/// TCP details from `INET_DIAG_INFO` (struct tcp_info) and `INET_DIAG_CONG`,
/// `conns --extended`. Fields the kernel's struct is too short for (older
/// kernels) are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub retransmits: u32,
    pub total_retrans: u32,
    pub snd_cwnd: u32,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    /// Congestion control algorithm (`cubic`, `bbr`), from INET_DIAG_CONG
    /// (schema 3).
    pub congestion: Option<Cow<'static, str>>,
    /// Maximum segment sizes, sending and receiving, bytes.
    pub snd_mss: u32,
    pub rcv_mss: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Segments the kernel believes lost.
    pub lost: u32,
    /// How far out of order segments may arrive before loss is assumed.
    pub reordering: u32,
    /// Bytes per second the kernel paces sending to; `None` when there is no
    /// limit (or the kernel did not say).
    pub pacing_rate: Option<u64>,
    /// Most recent delivery rate measured, bytes per second (Linux 4.9+).
    pub delivery_rate: Option<u64>,
    /// Time spent sending, and of it limited by the peer's receive window or
    /// by our send buffer, in microseconds (Linux 4.10+).
    pub busy_time_us: Option<u64>,
    pub rwnd_limited_us: Option<u64>,
    pub sndbuf_limited_us: Option<u64>,
}

/// A TCP listener's accept queue: `idiag_rqueue` and `idiag_wqueue` of a
/// LISTEN socket (what `ss` shows as Recv-Q and Send-Q).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptQueue {
    /// Connections that completed the handshake and wait for accept().
    pub queued: u32,
    /// The listen() backlog, as the kernel keeps it (capped by
    /// `net.core.somaxconn` when listen() was called).
    pub backlog: u32,
    /// `queued > backlog`: the kernel drops new connections to this
    /// listener (TcpExt ListenOverflows, ListenDrops).
    pub full: bool,
    /// Not full, but at 90% of the backlog or more.
    pub near_full: bool,
}

impl AcceptQueue {
    pub fn new(queued: u32, backlog: u32) -> AcceptQueue {
        let full = queued > backlog;
        let near_full = !full && queued > 0 && u64::from(queued) * 10 >= u64::from(backlog) * 9;
        AcceptQueue { queued, backlog, full, near_full }
    }

    /// Full or nearly: what tables and `who` speak up about.
    pub fn is_alarming(&self) -> bool {
        self.full || self.near_full
    }
}

/// Socket memory from `INET_DIAG_SKMEMINFO` (what `ss -m` shows as
/// `skmem:(r,rb,t,tb,f,w,o,bl,d)`), bytes except `drops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkMem {
    /// Memory held by received data not yet read.
    pub rmem_alloc: u32,
    /// The receive buffer limit (SO_RCVBUF).
    pub rcvbuf: u32,
    /// Memory held by data sent and not yet freed by the device.
    pub wmem_alloc: u32,
    /// The send buffer limit (SO_SNDBUF).
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    /// Data queued for sending.
    pub wmem_queued: u32,
    pub optmem: u32,
    /// The socket backlog: packets that arrived while the socket was busy.
    pub backlog: u32,
    /// Packets dropped on this socket (receive buffer full, filters, ...):
    /// for UDP, datagrams lost because the process read too slowly.
    pub drops: u32,
}

/// The rare parts of a socket record, boxed together so that the common
/// record stays small. JSON: each is a field of the socket record, present
/// only when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SocketExt {
    /// TCP listeners read through sock_diag (schema 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_queue: Option<AcceptQueue>,
    /// Only with `conns --extended`, TCP only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
    /// With `conns --extended` (TCP and UDP), and on UDP sockets of
    /// `listen`, `who` and `stats` (schema 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skmem: Option<SkMem>,
}

impl SocketExt {
    /// None of them: such a part is no part (JSON cannot tell it apart).
    pub fn is_empty(&self) -> bool {
        self.accept_queue.is_none() && self.tcp_info.is_none() && self.skmem.is_none()
    }
}

/// An interface name on a socket record, shared by every socket on the
/// interface and one pointer wide (a record per socket on the host is
/// kept: [`Socket`] stays at 176 bytes). Reads as a `str`; JSON: a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IfName(Arc<String>);

impl std::ops::Deref for IfName {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for IfName {
    fn from(s: String) -> IfName {
        IfName(Arc::new(s))
    }
}

impl From<&str> for IfName {
    fn from(s: &str) -> IfName {
        IfName(Arc::new(s.to_string()))
    }
}

impl From<Box<str>> for IfName {
    fn from(s: Box<str>) -> IfName {
        IfName(Arc::new(s.into_string()))
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// The network namespace a socket lives in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsRef {
    /// nsfs inode: what `ip netns identify`, `lsns` and `/proc/PID/ns/net` show.
    pub inode: u64,
    /// `ip netns` name, `docker:<sandbox>`, or `pid:PID` when only a process
    /// is known to live there; null when it has none.
    pub name: Option<String>,
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => f.write_str(n),
            None => write!(f, "net:[{}]", self.inode),
        }
    }
}

/// Why a socket that has an inode has no owner although every process
/// could be read (`owners` empty, `owners_hidden` false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unheld {
    /// No file refers to it: a socket the kernel made for itself (the BPF
    /// socket iterators tell).
    Kernel,
    /// A file refers to it, but no process has a descriptor of it: in
    /// flight in a unix socket message (SCM_RIGHTS) not yet received, or
    /// kept by the kernel (the BPF socket iterators tell).
    InFlight,
    /// No process holds it, and nothing could tell which of the two above
    /// (the /proc path): in flight in a unix socket message, or held by the
    /// kernel.
    NoProcess,
}

impl Unheld {
    pub fn as_str(self) -> &'static str {
        match self {
            Unheld::Kernel => "kernel",
            Unheld::InFlight => "in_flight",
            Unheld::NoProcess => "no_process",
        }
    }

    /// What a table shows instead of a process.
    pub fn label(self) -> &'static str {
        match self {
            Unheld::Kernel => "(kernel)",
            Unheld::InFlight => "(in flight)",
            Unheld::NoProcess => "(no process)",
        }
    }

    /// The subject of a sentence: what holds the socket.
    pub fn subject(self) -> &'static str {
        match self {
            Unheld::Kernel => "a socket of the kernel's own (no process holds it)",
            Unheld::InFlight => "a socket no process holds (in flight in a unix socket message, or kept by the kernel)",
            Unheld::NoProcess => "a socket no process holds (in flight in a unix socket message, or the kernel's)",
        }
    }

    /// Why no process holds it, for a parenthesis.
    pub fn why(self) -> &'static str {
        match self {
            Unheld::Kernel => "the kernel made it for itself",
            Unheld::InFlight => {
                "it is in flight in a unix socket message (SCM_RIGHTS) not yet received, or kept by the kernel"
            }
            Unheld::NoProcess => "in flight in a unix socket message, or the kernel's",
        }
    }

    /// The explanation, for sentences.
    pub fn explain(self) -> &'static str {
        match self {
            Unheld::Kernel => "held by the kernel (a socket it made for itself; no process has it)",
            Unheld::InFlight => {
                "held by no process: in flight in a unix socket message (SCM_RIGHTS) not yet received, or kept by the kernel"
            }
            Unheld::NoProcess => "held by no process: in flight in a unix socket message, or by the kernel",
        }
    }
}

/// An empty owner list, shared: sockets are made by the hundred thousand,
/// and an empty `Arc<[Owner]>` of their own would cost an allocation each.
pub fn no_owners() -> Arc<[Owner]> {
    static EMPTY: std::sync::OnceLock<Arc<[Owner]>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from([])).clone()
}

/// The other end of a connection, when it is a socket on this host: for
/// unix sockets the kernel names it (its inode); for TCP and UDP it is the
/// socket with the reversed 4-tuple, in the same network namespace (or, with
/// `--all-netns`, in another one). JSON: `{"inode", "owners",
/// "owners_hidden"}`, plus `netns` when it lives in another namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub inode: u64,
    /// The processes holding the peer socket, as `owners`.
    pub owners: Arc<[Owner]>,
    /// As `owners_hidden`, for the peer.
    pub owners_hidden: bool,
    /// The peer's namespace, when it is not this socket's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Box<NetnsRef>>,
}

impl Peer {
    /// A peer known by its inode only (owners filled in later).
    pub fn inode(inode: u64) -> Peer {
        Peer { inode, owners: no_owners(), owners_hidden: false, netns: None }
    }
}

/// A unix socket's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixType {
    Stream,
    Dgram,
    Seqpacket,
}

impl UnixType {
    /// From `sk_type` (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5).
    pub fn from_kernel(t: u8) -> Option<UnixType> {
        match t {
            1 => Some(UnixType::Stream),
            2 => Some(UnixType::Dgram),
            5 => Some(UnixType::Seqpacket),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnixType::Stream => "stream",
            UnixType::Dgram => "dgram",
            UnixType::Seqpacket => "seqpacket",
        }
    }

    /// `u_str`, `u_dgr`, `u_seq`: the names `ss -x` prints.
    pub fn ss_name(self) -> &'static str {
        match self {
            UnixType::Stream => "u_str",
            UnixType::Dgram => "u_dgr",
            UnixType::Seqpacket => "u_seq",
        }
    }
}

/// The file a unix socket is bound to: device and inode as stat(2) reports
/// them for the path (`st_dev`, `st_ino`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vfs {
    pub dev: u64,
    pub ino: u64,
}

/// What only unix sockets have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixDetail {
    #[serde(rename = "type")]
    pub kind: UnixType,
    /// The bound file (filesystem names only, and only from sock_diag; a
    /// server's accepted connections carry their listener's).
    pub vfs: Option<Vfs>,
    /// Listeners: inodes of the clients waiting in the accept queue.
    pub pending: Vec<u64>,
}

/// What only raw and ICMP sockets have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetail {
    /// The IP protocol the socket was opened with (1 ICMP, 58 ICMPv6, 255
    /// IPPROTO_RAW, 89 OSPF, ...): raw sockets have no port.
    pub protocol: u8,
}

/// A packet socket's type: SOCK_RAW (link-layer headers included) or
/// SOCK_DGRAM (cooked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketType {
    Raw,
    Dgram,
}

/// A PACKET_MMAP ring (`PACKET_RX_RING`, `PACKET_TX_RING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ring {
    pub block_size: u32,
    pub blocks: u32,
    pub frame_size: u32,
    pub frames: u32,
}

/// A PACKET_FANOUT group: sockets sharing the traffic of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    pub id: u16,
    /// PACKET_FANOUT_HASH 0, LB 1, CPU 2, ROLLOVER 3, RND 4, QM 5, CBPF 6,
    /// EBPF 7.
    pub mode: u8,
}

/// What only packet sockets have (PACKET_DIAG; /proc/net/packet gives the
/// type and `running` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketDetail {
    #[serde(rename = "type")]
    pub kind: PacketType,
    /// Whether it receives (bound to a protocol, not paused).
    pub running: bool,
    /// Put the interface in promiscuous mode (PACKET_MR_PROMISC): it sees
    /// traffic not addressed to this host, as tcpdump does.
    pub promiscuous: bool,
    /// TPACKET version of its rings (1, 2, 3).
    pub version: u8,
    pub rx_ring: Option<Ring>,
    pub tx_ring: Option<Ring>,
    pub fanout: Option<Fanout>,
}

/// What only TCP sockets have, when they have anything: an MPTCP mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpDetail {
    /// A subflow (or the listener) of an MPTCP socket: the process holds the
    /// MPTCP socket, whose inode it shares.
    pub mptcp: bool,
}

/// The part of a record only one kind of socket has (JSON `detail`: present
/// on unix, raw, ICMP and packet records, and on TCP records marked MPTCP;
/// absent otherwise). Untagged: the record's `proto` says which it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    Unix(UnixDetail),
    Packet(PacketDetail),
    Raw(RawDetail),
    Tcp(TcpDetail),
}

/// One socket, as the kernel reports it, plus the processes holding it.
///
/// Deserialised through [`SocketRecord`] (the same fields, flat, with
/// `deny_unknown_fields`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SocketRecord")]
pub struct Socket {
    pub proto: Proto,
    pub family: Family,
    pub state: State,
    pub local: Addr,
    /// `null` for listeners, unconnected UDP and unix sockets with no peer.
    pub remote: Option<Addr>,
    /// Socket inode; 0 for sockets no file refers to (TIME_WAIT, orphans).
    pub inode: u64,
    pub uid: u32,
    /// IPv6 sockets: whether IPV6_V6ONLY is set; `null` for IPv4 or when the
    /// kernel did not say.
    pub v6only: Option<bool>,
    /// SO_REUSEADDR (`sk_reuse`), as the kernel has it; `null` when it could
    /// not be read (sock_diag does not report it: it comes from the BPF
    /// iterators). TIME_WAIT sockets keep the flag of the socket they were.
    pub reuseaddr: Option<bool>,
    /// SO_REUSEPORT (`sk_reuseport`), the same way.
    pub reuseport: Option<bool>,
    pub exposure: Exposure,
    /// Interface that carries the local address, for `address` exposure
    /// (and a packet socket's interface), or the device the socket is
    /// bound to (see [`IfName`]).
    pub interface: Option<IfName>,
    /// The index of the device the socket is bound to (SO_BINDTODEVICE,
    /// `sk_bound_dev_if`); 0 when it is bound to none; `null` when unknown
    /// (read from /proc/net). `close` names the socket to SOCK_DESTROY by
    /// it (with the addresses and `cookie`).
    pub bound_ifindex: Option<u32>,
    /// Well-known service name of the local port (listeners) or remote port.
    pub service: Option<Cow<'static, str>>,
    /// Receive queue: pending connections for listeners, unread bytes otherwise.
    pub recv_q: u32,
    /// Send queue: backlog limit for listeners, unacknowledged bytes otherwise.
    pub send_q: u32,
    pub timer: Option<Timer>,
    /// Shared (an `Arc`) so that a peer can name the same owners without a
    /// copy.
    pub owners: Arc<[Owner]>,
    /// True when the owners could not be read (permissions): `owners` being
    /// empty then does not mean "no process".
    pub owners_hidden: bool,
    /// Why a socket with an inode has no owner: see [`Unheld`]; `None` when
    /// it has owners, when no descriptor can refer to it (TIME_WAIT,
    /// orphans: inode 0), and when they are hidden and nothing more is known.
    pub unheld: Option<Unheld>,
    /// `accept_queue`, `tcp_info`, `skmem`: see [`SocketExt`]; `None` when
    /// it has none of them.
    #[serde(flatten)]
    pub ext: Option<Box<SocketExt>>,
    /// Only with `--netns` or `--all-netns`: the namespace it lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Box<NetnsRef>>,
    /// Kind-specific facts (unix, raw, packet, MPTCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<Detail>>,
    /// The other end, when it is a socket on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Box<Peer>>,
    /// The kernel's cookie for the socket (`idiag_cookie`): with the
    /// addresses and `bound_ifindex` it names this very socket to `close`
    /// (SOCK_DESTROY); 0 when unknown (read from /proc/net). Not in JSON.
    #[serde(skip)]
    pub cookie: u64,
}

/// [`Socket`] as JSON has it: every field flat. Deserialising checks the
/// contract (`deny_unknown_fields`), then becomes a `Socket`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketRecord {
    proto: Proto,
    family: Family,
    state: State,
    local: Addr,
    remote: Option<Addr>,
    inode: u64,
    uid: u32,
    v6only: Option<bool>,
    reuseaddr: Option<bool>,
    reuseport: Option<bool>,
    exposure: Exposure,
    interface: Option<Box<str>>,
    bound_ifindex: Option<u32>,
    service: Option<Cow<'static, str>>,
    recv_q: u32,
    send_q: u32,
    timer: Option<Timer>,
    owners: Vec<Owner>,
    owners_hidden: bool,
    unheld: Option<Unheld>,
    #[serde(default)]
    accept_queue: Option<AcceptQueue>,
    #[serde(default)]
    tcp_info: Option<TcpInfo>,
    #[serde(default)]
    skmem: Option<SkMem>,
    #[serde(default)]
    netns: Option<Box<NetnsRef>>,
    #[serde(default)]
    detail: Option<Box<Detail>>,
    #[serde(default)]
    peer: Option<Box<Peer>>,
}

impl From<SocketRecord> for Socket {
    fn from(r: SocketRecord) -> Socket {
        let ext = SocketExt { accept_queue: r.accept_queue, tcp_info: r.tcp_info, skmem: r.skmem };
        Socket {
            proto: r.proto,
            family: r.family,
            state: r.state,
            local: r.local,
            remote: r.remote,
            inode: r.inode,
            uid: r.uid,
            v6only: r.v6only,
            reuseaddr: r.reuseaddr,
            reuseport: r.reuseport,
            exposure: r.exposure,
            interface: r.interface.map(IfName::from),
            bound_ifindex: r.bound_ifindex,
            service: r.service,
            recv_q: r.recv_q,
            send_q: r.send_q,
            timer: r.timer,
            owners: r.owners.into(),
            owners_hidden: r.owners_hidden,
            unheld: r.unheld,
            ext: (!ext.is_empty()).then(|| Box::new(ext)),
            netns: r.netns,
            detail: r.detail,
            peer: r.peer,
            cookie: 0,
        }
    }
}

impl Socket {
    /// The local IP endpoint (TCP, UDP, raw).
    pub fn local_ip(&self) -> Option<Endpoint> {
        self.local.ip()
    }

    /// The remote IP endpoint of a connected IP socket.
    pub fn remote_ip(&self) -> Option<Endpoint> {
        self.remote.as_ref().and_then(Addr::ip)
    }

    /// The local port; 0 for sockets without ports.
    pub fn port(&self) -> u16 {
        self.local_ip().map_or(0, |e| e.port)
    }

    /// A dual-stack IPv6 wildcard socket also takes the IPv4 port.
    pub fn is_dual_stack(&self) -> bool {
        self.family == Family::Ipv6 && self.local_ip().is_some_and(|e| e.is_wildcard()) && self.v6only == Some(false)
    }

    /// The unix part, for unix sockets.
    pub fn unix(&self) -> Option<&UnixDetail> {
        match self.detail.as_deref() {
            Some(Detail::Unix(u)) => Some(u),
            _ => None,
        }
    }

    /// The packet part, for packet sockets.
    pub fn packet(&self) -> Option<&PacketDetail> {
        match self.detail.as_deref() {
            Some(Detail::Packet(p)) => Some(p),
            _ => None,
        }
    }

    /// The IP protocol of a raw or ICMP socket.
    pub fn raw_protocol(&self) -> Option<u8> {
        match self.detail.as_deref() {
            Some(Detail::Raw(r)) => Some(r.protocol),
            _ => None,
        }
    }

    /// A TCP subflow or listener of an MPTCP socket.
    pub fn is_mptcp(&self) -> bool {
        matches!(self.detail.as_deref(), Some(Detail::Tcp(TcpDetail { mptcp: true })))
    }

    /// The local unix name, for unix sockets.
    pub fn unix_name(&self) -> Option<&UnixName> {
        self.local.unix()
    }

    /// The inode of the network namespace it was tagged with (`--netns`,
    /// `--all-netns`); `None` for portctl's own without those flags.
    pub fn netns_inode(&self) -> Option<u64> {
        self.netns.as_ref().map(|n| n.inode)
    }

    /// `struct tcp_info` and the congestion algorithm (`conns --extended`).
    pub fn tcp_info(&self) -> Option<&TcpInfo> {
        self.ext.as_deref().and_then(|e| e.tcp_info.as_ref())
    }

    /// Socket memory (`conns --extended`; UDP sockets in listen, who, stats).
    pub fn skmem(&self) -> Option<&SkMem> {
        self.ext.as_deref().and_then(|e| e.skmem.as_ref())
    }

    /// A TCP listener's accept queue (read through sock_diag).
    pub fn accept_queue(&self) -> Option<&AcceptQueue> {
        self.ext.as_deref().and_then(|e| e.accept_queue.as_ref())
    }

    /// The rare parts, allocated on first use.
    pub fn ext_mut(&mut self) -> &mut SocketExt {
        self.ext.get_or_insert_with(Default::default)
    }

    /// Datagrams (or segments) this socket dropped, when the kernel said.
    pub fn drops(&self) -> u32 {
        self.skmem().map_or(0, |m| m.drops)
    }

    /// Sockets no file descriptor refers to: no process can own them.
    pub fn is_unowned_by_nature(&self) -> bool {
        self.inode == 0 || self.state == State::TimeWait
    }

    /// A record with nothing but its kind, state and addresses, for the
    /// sources to fill in (decoders, the /proc/net reader, fixtures).
    pub fn new(proto: Proto, family: Family, state: State, local: Addr, remote: Option<Addr>) -> Socket {
        let exposure = match &local {
            Addr::Ip(e) => Exposure::of(&e.addr),
            // Only this host reaches a unix socket.
            Addr::Unix(_) => Exposure::Loopback,
            // A packet socket sees one interface, or all of them.
            Addr::Link(l) if l.ifindex == 0 => Exposure::Wildcard,
            Addr::Link(_) => Exposure::Address,
        };
        Socket {
            proto,
            family,
            state,
            local,
            remote,
            inode: 0,
            uid: 0,
            v6only: None,
            reuseaddr: None,
            reuseport: None,
            exposure,
            interface: None,
            bound_ifindex: None,
            service: None,
            recv_q: 0,
            send_q: 0,
            timer: None,
            owners: no_owners(),
            owners_hidden: false,
            unheld: None,
            ext: None,
            netns: None,
            detail: None,
            peer: None,
            cookie: 0,
        }
    }

    /// An IP socket with no owners, for tests and fixtures: `local` and
    /// `remote` are `addr:port` (`[v6]:port`).
    ///
    /// # Panics
    ///
    /// When an address does not parse: meant for fixed test data only.
    pub fn sample(proto: Proto, state: State, local: &str, remote: Option<&str>, inode: u64) -> Socket {
        let ep = |t: &str| {
            let a: std::net::SocketAddr = t.parse().expect("a test address");
            Endpoint { addr: a.ip(), port: a.port() }
        };
        let local = ep(local);
        let mut s = Socket::new(proto, Family::of(&local.addr), state, local.into(), remote.map(|r| ep(r).into()));
        s.inode = inode;
        s
    }
}

/// The longest time left on any of these sockets' timers, in ms (0 when
/// none has one): how long until the last TIME_WAIT is gone.
pub fn longest_timer_ms<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> u32 {
    sockets.into_iter().filter_map(|s| s.timer.map(|t| t.expires_ms)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_numbers_round_trip() {
        for s in State::TCP {
            assert_eq!(State::from_kernel(Proto::Tcp, s.kernel_number()), s);
        }
        assert_eq!(State::from_kernel(Proto::Udp, 7), State::Unconn);
        assert_eq!(State::from_kernel(Proto::Udp, 1), State::Established);
        assert_eq!(State::from_kernel(Proto::Tcp, 12), State::SynRecv);
    }

    #[test]
    fn state_names_match_serde() {
        for s in State::TCP.iter().chain([State::Unconn].iter()) {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn kernel_masks() {
        let listen = StateSet::of(&[State::Listen, State::Unconn]);
        assert_eq!(listen.kernel_mask(Proto::Tcp), 1 << 10);
        assert_eq!(listen.kernel_mask(Proto::Udp), 1 << 7);
        let tw = StateSet::of(&[State::TimeWait]);
        assert_eq!(tw.kernel_mask(Proto::Tcp), 1 << 6);
        assert_eq!(tw.kernel_mask(Proto::Udp), 0);
        assert_eq!(StateSet::all().kernel_mask(Proto::Tcp), 0xffe);
        assert_eq!(StateSet::all().kernel_mask(Proto::Udp), (1 << 1) | (1 << 7));
        assert!(StateSet::EMPTY.is_empty());
    }

    /// A guard on memory: `conns --state all` holds one Socket (and usually
    /// one Owner) per socket on the host, 130k+ on a busy one (issue 5:
    /// peak RSS at most 64 MiB). Rarely used parts are boxed.
    #[test]
    fn records_stay_small() {
        // 184: issue 14's device index and socket options next to issue
        // 15's detail and peer boxes; 8 bytes on 133k sockets is 1 MiB of
        // the 64 MiB budget (bench/run.sh measures the peak).
        assert!(std::mem::size_of::<Socket>() <= 184, "Socket is {} bytes", std::mem::size_of::<Socket>());
        // 72: the thread id of a thread-private table (issue 14) costs 8.
        assert!(std::mem::size_of::<Owner>() <= 72, "Owner is {} bytes", std::mem::size_of::<Owner>());
    }

    #[test]
    fn endpoint_display() {
        let v4 = Endpoint { addr: "127.0.0.1".parse().unwrap(), port: 80 };
        let v6 = Endpoint { addr: "::1".parse().unwrap(), port: 443 };
        assert_eq!(v4.to_string(), "127.0.0.1:80");
        assert_eq!(v6.to_string(), "[::1]:443");
    }

    #[test]
    fn exposure_of_addresses() {
        let cases = [
            ("0.0.0.0", Exposure::Wildcard),
            ("::", Exposure::Wildcard),
            ("127.0.0.1", Exposure::Loopback),
            ("127.8.9.10", Exposure::Loopback),
            ("::1", Exposure::Loopback),
            ("::ffff:127.0.0.1", Exposure::Loopback),
            ("10.1.2.3", Exposure::Address),
            ("fe80::1", Exposure::Address),
        ];
        for (addr, want) in cases {
            assert_eq!(Exposure::of(&addr.parse().unwrap()), want, "{addr}");
        }
    }
}
