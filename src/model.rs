//! Plain data: what the kernel told us about a socket and who holds it.
//!
//! These types are the JSON contract (see `docs/json.md`): renaming a field or
//! a variant is a breaking change.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Version of the JSON contract described in `docs/json.md`.
pub const JSON_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
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
            (Proto::Udp, 7) => State::Unconn,
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

    /// The `idiag_states` mask for one protocol. UDP sockets only ever are
    /// ESTABLISHED (connected) or CLOSE (unconnected, our `unconn`).
    pub fn kernel_mask(self, proto: Proto) -> u32 {
        match proto {
            Proto::Tcp => State::TCP.iter().filter(|&&s| self.contains(s)).fold(0, |m, s| m | 1 << s.kernel_number()),
            Proto::Udp => {
                let mut m = 0;
                if self.contains(State::Established) {
                    m |= 1 << 1;
                }
                if self.contains(State::Unconn) {
                    m |= 1 << 7;
                }
                m
            }
        }
    }
}

/// One end of a socket.
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

/// The unspecified address of a family.
pub fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
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
    /// Full command line, arguments joined by spaces; empty for kernel threads
    /// and zombies.
    pub cmdline: Arc<str>,
    /// Only with `--context`: systemd unit and container of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Box<Context>>,
}

/// TCP essentials from `INET_DIAG_INFO` (struct tcp_info), `conns --extended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub retransmits: u32,
    pub total_retrans: u32,
    pub snd_cwnd: u32,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
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

/// One socket, as the kernel reports it, plus the processes holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socket {
    pub proto: Proto,
    pub family: Family,
    pub state: State,
    pub local: Endpoint,
    /// `null` for listeners and unconnected UDP.
    pub remote: Option<Endpoint>,
    /// Socket inode; 0 for sockets no file refers to (TIME_WAIT, orphans).
    pub inode: u64,
    pub uid: u32,
    /// IPv6 sockets: whether IPV6_V6ONLY is set; `null` for IPv4 or when the
    /// kernel did not say.
    pub v6only: Option<bool>,
    pub exposure: Exposure,
    /// Interface that carries the local address, for `address` exposure.
    pub interface: Option<String>,
    /// Well-known service name of the local port (listeners) or remote port.
    pub service: Option<Cow<'static, str>>,
    /// Receive queue: pending connections for listeners, unread bytes otherwise.
    pub recv_q: u32,
    /// Send queue: backlog limit for listeners, unacknowledged bytes otherwise.
    pub send_q: u32,
    pub timer: Option<Timer>,
    pub owners: Vec<Owner>,
    /// True when the owners could not be read (permissions): `owners` being
    /// empty then does not mean "no process".
    pub owners_hidden: bool,
    /// Only with `conns --extended`, TCP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<Box<TcpInfo>>,
    /// Only with `--netns` or `--all-netns`: the namespace it lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<Box<NetnsRef>>,
}

impl Socket {
    /// A dual-stack IPv6 wildcard socket also takes the IPv4 port.
    pub fn is_dual_stack(&self) -> bool {
        self.family == Family::Ipv6 && self.local.is_wildcard() && self.v6only == Some(false)
    }

    /// The inode of the network namespace it was tagged with (`--netns`,
    /// `--all-netns`); `None` for portctl's own without those flags.
    pub fn netns_inode(&self) -> Option<u64> {
        self.netns.as_ref().map(|n| n.inode)
    }

    /// Sockets no file descriptor refers to: no process can own them.
    pub fn is_unowned_by_nature(&self) -> bool {
        self.inode == 0 || self.state == State::TimeWait
    }
}

#[cfg(test)]
impl Socket {
    /// A socket with no owners, for tests: `local` and `remote` are
    /// `addr:port` (`[v6]:port`).
    pub fn sample(proto: Proto, state: State, local: &str, remote: Option<&str>, inode: u64) -> Socket {
        let local: std::net::SocketAddr = local.parse().unwrap();
        let remote = remote.map(|r| r.parse::<std::net::SocketAddr>().unwrap());
        Socket {
            proto,
            family: Family::of(&local.ip()),
            state,
            local: Endpoint { addr: local.ip(), port: local.port() },
            remote: remote.map(|r| Endpoint { addr: r.ip(), port: r.port() }),
            inode,
            uid: 0,
            v6only: None,
            exposure: Exposure::of(&local.ip()),
            interface: None,
            service: None,
            recv_q: 0,
            send_q: 0,
            timer: None,
            owners: Vec::new(),
            owners_hidden: false,
            tcp_info: None,
            netns: None,
        }
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
        assert!(std::mem::size_of::<Socket>() <= 176, "Socket is {} bytes", std::mem::size_of::<Socket>());
        assert!(std::mem::size_of::<Owner>() <= 64, "Owner is {} bytes", std::mem::size_of::<Owner>());
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
