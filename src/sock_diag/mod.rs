//! The kernel's view of sockets: `NETLINK_SOCK_DIAG` dumps, with the state
//! mask and a bytecode filter applied in the kernel, and a `/proc/net`
//! fallback for systems without sock_diag.
//!
//! This module knows nothing of processes or of how sockets are shown.

pub mod bytecode;
pub mod decode;
mod procnet;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::Emitable;
use netlink_packet_sock_diag::SOCK_DIAG_BY_FAMILY;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

pub use bytecode::{Cond, DevRef, Expr, Fact};

use crate::model::{Family, IfName, Proto, Socket, StateSet};

/// What to ask the kernel for. Everything here is applied kernel-side.
#[derive(Debug, Clone)]
pub struct Query {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    /// States wanted; mapped onto each protocol's kernel state mask.
    pub states: StateSet,
    /// Port/address filter, compiled to `INET_DIAG_REQ_BYTECODE`.
    pub filter: Option<Expr>,
    /// Ask for `struct tcp_info` and the congestion algorithm
    /// (INET_DIAG_INFO, INET_DIAG_CONG) of TCP sockets.
    pub tcp_info: bool,
    /// Ask for socket memory (INET_DIAG_SKMEMINFO) of these protocols'
    /// sockets.
    pub skmem: Vec<Proto>,
    /// Also dump TCP sockets that are bound but neither listening nor
    /// connected (Linux 6.8+, TCP_BOUND_INACTIVE); they block bind() yet `ss`
    /// cannot show them. Reported in state `close`. Only done when the dump
    /// found no TCP listener: walking the kernel's bind hash costs about as
    /// much as the main dump (30 ms per family at 130k sockets), and a
    /// listener already answers "who blocks this port".
    pub bound_inactive: bool,
    /// Raw, ICMP and packet sockets in every state, whatever `states` says:
    /// their states mean little (a raw socket is "unconnected" unless it
    /// called connect()), and `conns --raw` without `--state` shows them all.
    pub any_state_raw: bool,
    /// Where to read from.
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// sock_diag, falling back to /proc/net when it is unavailable.
    Auto,
    /// /proc/net only (testing the fallback; `PORTCTL_SOURCE=proc`).
    ProcNet,
}

/// The result of a dump: sockets plus notes for stderr.
#[derive(Debug, Default)]
pub struct Dump {
    pub sockets: Vec<Socket>,
    /// Things the user should know (fallbacks taken); printed once each.
    pub notes: Vec<String>,
}

/// Why the kernel could not be asked.
#[derive(Debug)]
pub enum DiagError {
    /// No sock_diag on this system (module not loaded, seccomp, very old kernel).
    Unavailable(io::Error),
    /// The kernel answered with `NLMSG_ERROR`.
    Kernel {
        errno: i32,
        request: String,
    },
    /// The dump was interrupted (`NLM_F_DUMP_INTR`) on every try.
    Interrupted {
        tries: u32,
    },
    /// The filter cannot be expressed as kernel bytecode (too large).
    Filter(String),
    /// The filter asks about something this source cannot tell (a fact
    /// /proc/net does not show, a device this namespace lacks): a message
    /// for the user, as is.
    Untestable(String),
    /// A reply we could not decode.
    Decode(String),
    Io(io::Error),
}

impl fmt::Display for DiagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiagError::Unavailable(e) => write!(f, "sock_diag is not available: {e}"),
            DiagError::Kernel { errno, request } => write!(
                f,
                "the kernel refused the sock_diag request for {request}: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            DiagError::Interrupted { tries } => {
                write!(f, "the socket table changed during every one of {tries} dumps (NLM_F_DUMP_INTR)")
            }
            DiagError::Filter(e) => write!(f, "the filter cannot be given to the kernel: {e}"),
            DiagError::Untestable(e) => f.write_str(e),
            DiagError::Decode(e) => write!(f, "could not decode a sock_diag reply: {e}"),
            DiagError::Io(e) => write!(f, "netlink I/O failed: {e}"),
        }
    }
}

impl std::error::Error for DiagError {}

impl DiagError {
    /// Errors that mean "this kernel has no sock_diag for that protocol", which
    /// the /proc/net fallback covers.
    fn is_unavailable(&self) -> bool {
        match self {
            DiagError::Unavailable(_) => true,
            DiagError::Kernel { errno, .. } => {
                matches!(*errno, libc::ENOENT | libc::EOPNOTSUPP | libc::EPROTONOSUPPORT)
            }
            _ => false,
        }
    }
}

/// Dumps every (protocol, family) pair the query names, in the kernel when it
/// can, from /proc/net when it cannot (with a note saying so).
///
/// Endpoint filters are about addresses and ports: unix and packet sockets
/// have neither and never match one, so a filtered query skips them; raw
/// and ICMP sockets (no ports) are filtered here, not in the kernel, whose
/// raw "port" is the protocol number.
pub fn dump(query: &Query) -> Result<Dump, DiagError> {
    let mut out = Dump::default();
    // Device names are this namespace's interfaces, and `autobound` its
    // ephemeral range: looked up here, in the thread that dumps (it has
    // entered the namespace asked about).
    let resolved;
    let filter = match &query.filter {
        Some(f) if f.has_device_names() || f.needs().contains(&Fact::AutoBound) => {
            let mut e = f.resolve_devices(&crate::sys::interface_index).map_err(|name| {
                DiagError::Untestable(format!("'dev {name}': no network device '{name}' in this network namespace"))
            })?;
            if e.needs().contains(&Fact::AutoBound) {
                let r = crate::sysctl::local_port_range();
                e = e.expand_autobound(r.lo, r.hi);
            }
            resolved = e;
            Some(&resolved)
        }
        f => f.as_ref(),
    };
    let mut reader = match query.source {
        Source::Auto => match Reader::new() {
            Ok(r) => Some(r),
            Err(e) => {
                out.notes.push(format!("{e}; reading /proc/net instead (slower, no IPV6_V6ONLY, no tcp_info)"));
                None
            }
        },
        Source::ProcNet => {
            out.notes.push("reading /proc/net as PORTCTL_SOURCE=proc asks (no IPV6_V6ONLY, no tcp_info)".to_string());
            None
        }
    };
    let families = || query.families.iter().copied().filter(|f| Family::IP.contains(f));
    for &proto in &query.protos {
        let states = match proto {
            Proto::Raw | Proto::Icmp | Proto::Packet if query.any_state_raw => StateSet::all(),
            _ => query.states,
        }
        .kernel_mask(proto);
        if states == 0 {
            continue;
        }
        match proto {
            Proto::Tcp | Proto::Udp => {
                let ext = Extensions { tcp_info: query.tcp_info, skmem: query.skmem.contains(&proto) };
                let wanted: Vec<Family> = families().collect();
                if proto == Proto::Tcp
                    && wanted.len() == Family::IP.len()
                    && let Some(r) = reader.as_mut()
                {
                    // Both families in one walk; a kernel that refuses the
                    // request is asked per family below, and its errors are
                    // those answers'.
                    let start = out.sockets.len();
                    let both = Request::Inet { proto, family: None, states, filter, ext };
                    match r.dump_filtered(&both, &mut out.sockets) {
                        Ok(()) => continue,
                        Err(DiagError::Io(e)) => return Err(DiagError::Io(e)),
                        Err(_) => out.sockets.truncate(start),
                    }
                }
                let mut dumped = match reader.as_mut() {
                    Some(r) => dump_families(r, proto, &wanted, states, filter, ext, &mut out.sockets),
                    None => Vec::new(),
                }
                .into_iter();
                for family in wanted {
                    match dumped.next() {
                        Some(Ok(())) => continue,
                        Some(Err(e)) if e.is_unavailable() => {
                            out.notes.push(format!("{e}; reading /proc/net for {proto} instead"));
                        }
                        Some(Err(e)) => return Err(e),
                        None => {}
                    }
                    if let Some(fact) = filter.and_then(|f| f.needs().first().copied()) {
                        return Err(DiagError::Untestable(format!(
                            "'{}' cannot be tested on sockets read from /proc/net, which does not show {}: it needs sock_diag",
                            fact.keyword(),
                            fact_what(fact)
                        )));
                    }
                    procnet::read(proto, family, states, filter, &mut out.sockets).map_err(DiagError::Io)?;
                }
            }
            Proto::Raw | Proto::Icmp => {
                let start = out.sockets.len();
                for family in families() {
                    // Raw sockets from sock_diag when the kernel has raw_diag
                    // (CONFIG_INET_RAW_DIAG), else /proc/net/raw, which holds
                    // the same facts (so no note). ICMP ("ping") sockets have
                    // no diag module at all.
                    if proto == Proto::Raw
                        && let Some(r) = reader.as_mut()
                    {
                        let req =
                            Request::Inet { proto, family: Some(family), states, filter: None, ext: Extensions::NONE };
                        match r.dump(&req, None, &mut out.sockets) {
                            Ok(()) => continue,
                            Err(e) if e.is_unavailable() => {}
                            Err(e) => return Err(e),
                        }
                    }
                    procnet::read(proto, family, states, None, &mut out.sockets).map_err(DiagError::Io)?;
                }
                if let Some(f) = filter {
                    let mut i = start;
                    while i < out.sockets.len() {
                        if matches(f, &out.sockets[i]) {
                            i += 1;
                        } else {
                            out.sockets.swap_remove(i);
                        }
                    }
                }
            }
            Proto::Unix | Proto::Packet if filter.is_some() => {}
            Proto::Unix | Proto::Packet => {
                // A bound dgram socket becomes ESTABLISHED when a client
                // connects to it (Linux 5.13+ sets both ends), peer or not:
                // asked for unconnected sockets, it is one of them.
                let bound_dgram = proto == Proto::Unix
                    && query.states.contains(crate::model::State::Unconn)
                    && !query.states.contains(crate::model::State::Established);
                let states = if bound_dgram { states | 1 << 1 } else { states };
                let start = out.sockets.len();
                let keep = |s: &Socket| {
                    !bound_dgram
                        || s.state != crate::model::State::Established
                        || (s.peer.is_none()
                            && s.unix().is_some_and(|u| u.kind == crate::model::UnixType::Dgram)
                            && s.unix_name().is_some_and(|n| n.name.is_some()))
                };
                if let Some(r) = reader.as_mut() {
                    let req = if proto == Proto::Unix { Request::Unix { states } } else { Request::Packet };
                    match r.dump(&req, None, &mut out.sockets) {
                        Ok(()) => {
                            let mut i = start;
                            while i < out.sockets.len() {
                                if keep(&out.sockets[i]) {
                                    i += 1;
                                } else {
                                    out.sockets.swap_remove(i);
                                }
                            }
                            continue;
                        }
                        Err(e) if e.is_unavailable() => {
                            let lost = if proto == Proto::Unix {
                                "no peers, queues, uids or bound files"
                            } else {
                                "no rings, fanout or promiscuity"
                            };
                            out.notes.push(format!("{e}; reading /proc/net/{proto} instead ({lost})"));
                        }
                        Err(e) => return Err(e),
                    }
                }
                let read = if proto == Proto::Unix {
                    procnet::read_unix(states, &mut out.sockets)
                } else {
                    procnet::read_packet(&mut out.sockets)
                };
                read.map_err(DiagError::Io)?;
            }
        }
    }
    // With the ports the filter names (one or several `sport = N`), a port
    // that has a TCP listener needs no second look; without, any listener
    // answers.
    let listens_on = |port: Option<u16>| {
        out.sockets.iter().any(|s| {
            s.proto == Proto::Tcp && s.state == crate::model::State::Listen && port.is_none_or(|p| s.port() == p)
        })
    };
    let ports = filter.map(named_ports).unwrap_or_default();
    let all_listen = if ports.is_empty() { listens_on(None) } else { ports.iter().all(|&p| listens_on(Some(p))) };
    if query.bound_inactive
        && query.protos.contains(&Proto::Tcp)
        && !all_listen
        && let Some(r) = reader.as_mut()
    {
        for family in families() {
            // Older kernels answer an unknown state bit with nothing at all.
            let req = Request::Inet {
                proto: Proto::Tcp,
                family: Some(family),
                states: TCPF_BOUND_INACTIVE,
                filter,
                ext: Extensions::NONE,
            };
            r.dump_filtered(&req, &mut out.sockets)?;
        }
    }
    if query.protos.contains(&Proto::Tcp)
        && let Some(r) = reader.as_mut()
    {
        mark_mptcp(r, families(), query.states.kernel_mask(Proto::Tcp), &mut out.sockets);
    }
    Ok(out)
}

/// Dumps `proto` sockets of each family into `out`, in the order given: the
/// first on `r`, the others at the same time, each on a thread with a
/// netlink socket of its own (it inherits this thread's namespace). Each
/// dump walks the kernel's whole table, whatever the family (an IPv6 dump
/// of a host of IPv4 sockets costs a quarter of the IPv4 one): for UDP,
/// which no request covers both families of, and TCP on a kernel that
/// refuses the older request. One result per family.
fn dump_families(
    r: &mut Reader,
    proto: Proto,
    families: &[Family],
    states: u32,
    filter: Option<&Expr>,
    ext: Extensions,
    out: &mut Vec<Socket>,
) -> Vec<Result<(), DiagError>> {
    let request = |family| Request::Inet { proto, family: Some(family), states, filter, ext };
    let Some((&first, rest)) = families.split_first() else { return Vec::new() };
    let (head, others) = std::thread::scope(|s| {
        let others: Vec<_> = rest
            .iter()
            .map(|&family| {
                s.spawn(move || {
                    let mut own = Reader::new().ok()?;
                    let mut sockets = Vec::new();
                    Some(own.dump_filtered(&request(family), &mut sockets).map(|()| sockets))
                })
            })
            .collect();
        let head = r.dump_filtered(&request(first), out);
        (head, others.into_iter().map(|t| t.join().ok().flatten()).collect::<Vec<_>>())
    });
    let mut results = vec![head];
    for (&family, other) in rest.iter().zip(others) {
        // No thread (or no socket for it): this reader, after the first.
        let got = other.unwrap_or_else(|| {
            let mut sockets = Vec::new();
            r.dump_filtered(&request(family), &mut sockets).map(|()| sockets)
        });
        results.push(got.map(|mut sockets| out.append(&mut sockets)));
    }
    results
}

/// Marks the TCP sockets that are subflows (or listeners) of an MPTCP
/// socket: the kernel grafts every subflow onto the MPTCP socket the
/// process holds, so they share its inode, and an MPTCP dump lists those
/// inodes. Kernels without MPTCP diag (or with MPTCP off) mark nothing.
fn mark_mptcp(r: &mut Reader, families: impl Iterator<Item = Family>, states: u32, sockets: &mut [Socket]) {
    if states == 0 || !sockets.iter().any(|s| s.proto == Proto::Tcp && s.inode != 0) {
        return;
    }
    let mut msk = Vec::new();
    for family in families {
        let _ = r.dump(&Request::Mptcp { family, states }, None, &mut msk);
    }
    let mut inodes: Vec<u64> = msk.iter().map(|s| s.inode).filter(|&i| i != 0).collect();
    if inodes.is_empty() {
        return;
    }
    inodes.sort_unstable();
    for s in sockets.iter_mut().filter(|s| s.proto == Proto::Tcp && s.inode != 0) {
        if inodes.binary_search(&s.inode).is_ok() {
            s.detail = Some(Box::new(crate::model::Detail::Tcp(crate::model::TcpDetail { mptcp: true })));
        }
    }
}

/// The local ports a filter consists of: `sport = N`, or an `or` of them.
fn named_ports(e: &Expr) -> Vec<u16> {
    match e {
        Expr::Cond(Cond::SPort { lo, hi }) if lo == hi => vec![*lo],
        Expr::Or(v) => {
            let ports: Vec<u16> = v.iter().flat_map(named_ports).collect();
            if ports.len() == v.len() { ports } else { Vec::new() }
        }
        _ => Vec::new(),
    }
}

/// What a fact is, for messages.
fn fact_what(f: Fact) -> &'static str {
    match f {
        Fact::Device => "the device a socket is bound to",
        Fact::Mark => "socket marks",
        Fact::Cgroup => "socket cgroups",
        Fact::AutoBound => "whether a port was bound explicitly",
    }
}

/// Why an expression could not be evaluated in user space after the
/// kernel refused its program: the fact is not in the replies either.
fn untestable(f: Fact) -> String {
    match f {
        Fact::Mark => "'fwmark' needs CAP_NET_ADMIN: the kernel accepts a mark filter, and shows socket marks, to it only (and from Linux 4.9)".to_string(),
        Fact::Cgroup => "'cgroup' needs Linux 5.9 or later built with CONFIG_SOCK_CGROUP_DATA: this kernel refused the cgroup filter and reports no socket cgroups".to_string(),
        Fact::Device => "'dev' could not be tested: the kernel refused the device filter".to_string(),
        Fact::AutoBound => "'autobound' could not be tested: only the kernel's filter knows how a port was bound".to_string(),
    }
}

/// `1 << TCP_BOUND_INACTIVE`: the kernel dumps bound-only sockets only when
/// this is the sole bit requested.
const TCPF_BOUND_INACTIVE: u32 = 1 << 13;

/// What a dump asks the kernel to add to each socket (`idiag_ext`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// INET_DIAG_INFO and INET_DIAG_CONG (TCP only).
    pub tcp_info: bool,
    /// INET_DIAG_SKMEMINFO.
    pub skmem: bool,
}

impl Extensions {
    pub const NONE: Extensions = Extensions { tcp_info: false, skmem: false };

    /// The `idiag_ext` bits: `1 << (INET_DIAG_X - 1)`.
    fn bits(self, proto: Proto) -> u8 {
        let mut bits = 0;
        if self.tcp_info && proto == Proto::Tcp {
            bits |= (1 << (2 - 1)) | (1 << (4 - 1)); // INFO, CONG
        }
        if self.skmem {
            bits |= 1 << (7 - 1); // SKMEMINFO
        }
        bits
    }
}

/// Netlink attribute carrying a bytecode filter in a request.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Netlink attribute carrying the protocol when it does not fit the
/// request's `u8` (IPPROTO_MPTCP is 262).
const INET_DIAG_REQ_PROTOCOL: u16 = 3;
const IPPROTO_MPTCP: u32 = 262;
/// Everything unix_diag can say that we show: name, bound file, peer,
/// pending connections, queue lengths, uid.
const UDIAG_SHOW: u32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x40;
/// packet_diag: info (with the uid), multicast list (promiscuity), rings,
/// fanout.
const PACKET_SHOW: u32 = 0x01 | 0x02 | 0x04 | 0x08;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// Tries before giving up on a dump that keeps being interrupted.
const DUMP_TRIES: u32 = 5;
/// The kernel fills at most 32 KiB per dump message batch; a little more room
/// avoids MSG_TRUNC on any kernel.
const RECV_BUF: usize = 64 * 1024;

/// One dump request.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// inet_diag: TCP, UDP or raw sockets of one family; TCP of both
    /// families in one walk of the kernel's tables when `family` is `None`
    /// (the older `TCPDIAG_GETSOCK` request, which the kernel answers for
    /// every family: a `SOCK_DIAG_BY_FAMILY` request names one, and each
    /// such dump walks the whole table).
    Inet { proto: Proto, family: Option<Family>, states: u32, filter: Option<&'a Expr>, ext: Extensions },
    /// inet_diag for IPPROTO_MPTCP: the MPTCP sockets themselves.
    Mptcp { family: Family, states: u32 },
    /// unix_diag.
    Unix { states: u32 },
    /// packet_diag (no state).
    Packet,
}

impl Request<'_> {
    fn describe(&self) -> String {
        match self {
            Request::Inet { proto, family: Some(family), .. } => describe(*proto, *family),
            Request::Inet { proto, family: None, .. } => format!("{proto}/IPv4 and IPv6"),
            Request::Mptcp { family, .. } => describe(Proto::Tcp, *family).replace("tcp", "mptcp"),
            Request::Unix { .. } => "unix".to_string(),
            Request::Packet => "packet".to_string(),
        }
    }

    /// The request's bytes; the sequence number (bytes 8..12) is filled in
    /// per send.
    pub fn bytes(&self) -> Result<Vec<u8>, DiagError> {
        match *self {
            Request::Inet { proto, family, states, filter, ext } => request_bytes(proto, family, states, filter, ext),
            Request::Mptcp { family, states } => {
                let mut b =
                    inet_request(Proto::Tcp, Some(family), states, None, Extensions::NONE, IPPROTO_MPTCP as u8)?;
                let attr_len = 8usize;
                let total = b.len() + attr_len;
                b.extend_from_slice(&(attr_len as u16).to_ne_bytes());
                b.extend_from_slice(&INET_DIAG_REQ_PROTOCOL.to_ne_bytes());
                b.extend_from_slice(&IPPROTO_MPTCP.to_ne_bytes());
                b[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
                Ok(b)
            }
            Request::Unix { states } => {
                // struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
                let mut body = vec![libc::AF_UNIX as u8, 0, 0, 0];
                body.extend_from_slice(&states.to_ne_bytes());
                body.extend_from_slice(&0u32.to_ne_bytes());
                body.extend_from_slice(&UDIAG_SHOW.to_ne_bytes());
                body.extend_from_slice(&[0xff; 8]);
                Ok(with_header(&body))
            }
            Request::Packet => {
                // struct packet_diag_req: family, protocol, pad, ino, show, cookie[2].
                let mut body = vec![libc::AF_PACKET as u8, 0, 0, 0];
                body.extend_from_slice(&0u32.to_ne_bytes());
                body.extend_from_slice(&PACKET_SHOW.to_ne_bytes());
                body.extend_from_slice(&[0xff; 8]);
                Ok(with_header(&body))
            }
        }
    }

    fn decode(&self, payload: &[u8]) -> Result<(Socket, u32), String> {
        match *self {
            Request::Inet { proto, .. } => Ok((decode::socket(proto, payload)?, decode::bound_ifindex(payload))),
            Request::Mptcp { .. } => Ok((decode::socket(Proto::Tcp, payload)?, 0)),
            Request::Unix { .. } => Ok((decode::unix_socket(payload)?, 0)),
            Request::Packet => {
                let s = decode::packet_socket(payload)?;
                let ifindex = s.local.link().map_or(0, |l| l.ifindex);
                Ok((s, ifindex))
            }
        }
    }
}

/// `nlmsghdr` (dump request) + `body`.
fn with_header(body: &[u8]) -> Vec<u8> {
    let total = decode::NLMSG_HDRLEN + body.len();
    let mut buf = vec![0u8; decode::NLMSG_HDRLEN];
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf.extend_from_slice(body);
    buf
}

/// A sock_diag netlink socket with its receive buffer, reused across dumps.
pub struct Reader {
    sock: NlSocket,
    buf: Vec<u8>,
    seq: u32,
    ifnames: HashMap<u32, Option<IfName>>,
}

impl Reader {
    pub fn new() -> Result<Reader, DiagError> {
        let mut sock = NlSocket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Unavailable)?;
        sock.bind_auto().map_err(DiagError::Unavailable)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(DiagError::Unavailable)?;
        // A large socket buffer lets the kernel queue more while we decode.
        let _ = sock.set_rx_buf_sz(4 * 1024 * 1024);
        Ok(Reader { sock, buf: Vec::with_capacity(RECV_BUF), seq: 0, ifnames: HashMap::new() })
    }

    /// [`Reader::dump`] of an inet request with its filter as the
    /// kernel's program. A kernel that refuses the program for a condition
    /// newer than its audit (`EINVAL`) or one it reserves for CAP_NET_ADMIN
    /// (`EPERM`, marks) is asked again without those conditions, and the
    /// whole expression is evaluated on the replies; what the replies do not
    /// show either is an error that names it.
    pub fn dump_filtered(&mut self, request: &Request<'_>, out: &mut Vec<Socket>) -> Result<(), DiagError> {
        let first = self.dump(request, None, out);
        let Request::Inet { proto, family, states, filter: Some(f), ext } = *request else { return first };
        let mut newer = false;
        f.visit(&mut |c| newer |= c.is_newer_opcode());
        match first {
            Err(DiagError::Kernel { errno, .. }) if newer && matches!(errno, libc::EINVAL | libc::EPERM) => {
                let relaxed = f.relax(&|c| c.is_newer_opcode());
                let again = Request::Inet { proto, family, states, filter: Some(&relaxed), ext };
                self.dump(&again, Some(f), out)
            }
            other => other,
        }
    }

    /// One dump, appended to `out`; `post` is an expression evaluated on
    /// each inet reply before it is kept. Retries from scratch when the
    /// kernel flags the dump as interrupted.
    pub fn dump(&mut self, request: &Request<'_>, post: Option<&Expr>, out: &mut Vec<Socket>) -> Result<(), DiagError> {
        let bytes = request.bytes()?;
        for _ in 0..DUMP_TRIES {
            let start = out.len();
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            let mut req = bytes.clone();
            req[8..12].copy_from_slice(&seq.to_ne_bytes());
            self.sock.send(&req, 0).map_err(DiagError::Io)?;
            match self.receive(request, seq, post, out) {
                Ok(true) => return Ok(()),
                Ok(false) => out.truncate(start),
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
        Err(DiagError::Interrupted { tries: DUMP_TRIES })
    }

    /// Reads one dump's replies. Ok(false) when the kernel marked it interrupted.
    /// One datagram of replies into `buf` (retried when a signal
    /// interrupts it); a truncated one is an error.
    fn recv(&mut self) -> Result<(), DiagError> {
        self.buf.clear();
        let n = loop {
            match self.sock.recv(&mut self.buf, 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DiagError::Io(e)),
            }
        };
        if n > self.buf.len() {
            return Err(DiagError::Decode(format!("reply of {n} bytes truncated to {}", self.buf.len())));
        }
        Ok(())
    }

    fn receive(
        &mut self,
        request: &Request<'_>,
        seq: u32,
        post: Option<&Expr>,
        out: &mut Vec<Socket>,
    ) -> Result<bool, DiagError> {
        let mut intact = true;
        loop {
            self.recv()?;
            let mut bound = Vec::new();
            let mut done = false;
            for msg in decode::messages(&self.buf) {
                let msg = msg.map_err(DiagError::Decode)?;
                if msg.seq != seq {
                    continue; // a stale reply to an earlier, abandoned dump
                }
                if msg.flags & decode::NLM_F_DUMP_INTR != 0 {
                    intact = false;
                }
                match msg.kind {
                    decode::NLMSG_DONE => {
                        let errno = decode::error_code(msg.payload);
                        if errno != 0 {
                            return Err(DiagError::Kernel { errno, request: request.describe() });
                        }
                        done = true;
                        break;
                    }
                    decode::NLMSG_ERROR => {
                        let errno = decode::error_code(msg.payload);
                        if errno != 0 {
                            return Err(DiagError::Kernel { errno, request: request.describe() });
                        }
                    }
                    SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                        if let Some(expr) = post {
                            let entry = decode::entry(msg.payload)
                                .ok_or_else(|| DiagError::Decode("a reply too short for its filter".to_string()))?;
                            match expr.eval(&entry) {
                                Ok(true) => {}
                                Ok(false) => continue,
                                Err(fact) => return Err(DiagError::Untestable(untestable(fact))),
                            }
                        }
                        let (s, ifindex) = request.decode(msg.payload).map_err(DiagError::Decode)?;
                        if ifindex != 0 {
                            bound.push((out.len(), ifindex));
                        }
                        out.push(s);
                    }
                    _ => {}
                }
            }
            for (i, ifindex) in bound {
                out[i].interface = self.ifname(ifindex);
            }
            if done {
                return Ok(intact);
            }
        }
    }

    fn ifname(&mut self, index: u32) -> Option<IfName> {
        self.ifnames.entry(index).or_insert_with(|| crate::sys::interface_name(index).map(IfName::from)).clone()
    }

    /// Closes one socket, as `ss -K` does: a `SOCK_DESTROY` request naming
    /// it exactly (protocol, family, both ends, bound device and the
    /// kernel's cookie, so a socket that took its addresses since is never
    /// hit: the kernel answers ESTALE or ENOENT instead). The kernel aborts
    /// it: a TCP peer gets a RST, and the holder's next call fails with
    /// ECONNABORTED. Needs CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY.
    ///
    /// # Errors
    ///
    /// [`DiagError::Kernel`] with the errno: `EPERM` (no CAP_NET_ADMIN),
    /// `EOPNOTSUPP` (no CONFIG_INET_DIAG_DESTROY, or a protocol without it),
    /// `ENOENT`/`ESTALE` (the socket is gone).
    pub fn destroy(&mut self, s: &Socket) -> Result<(), DiagError> {
        let mut req = destroy_bytes(s)?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        req[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.sock.send(&req, 0).map_err(DiagError::Io)?;
        let what = || format!("SOCK_DESTROY of {} {}", s.proto, s.local);
        loop {
            self.recv()?;
            for msg in decode::messages(&self.buf) {
                let msg = msg.map_err(DiagError::Decode)?;
                if msg.seq != seq {
                    continue;
                }
                if msg.kind == decode::NLMSG_ERROR || msg.kind == decode::NLMSG_DONE {
                    return match decode::error_code(msg.payload) {
                        0 => Ok(()),
                        errno => Err(DiagError::Kernel { errno, request: what() }),
                    };
                }
            }
        }
    }
}

/// `SOCK_DESTROY`: the message type of a sock_diag request to close a socket.
pub const SOCK_DESTROY: u16 = 21;
const NLM_F_ACK: u16 = 0x4;

/// `nlmsghdr` + `inet_diag_req_v2` naming one socket exactly, for
/// [`Reader::destroy`] (sequence number filled in per send).
pub fn destroy_bytes(s: &Socket) -> Result<Vec<u8>, DiagError> {
    let (af, alen) = match s.family {
        Family::Ipv4 => (libc::AF_INET as u8, 4),
        Family::Ipv6 => (libc::AF_INET6 as u8, 16),
        _ => return Err(DiagError::Filter(format!("{:?} sockets cannot be closed with SOCK_DESTROY", s.family))),
    };
    let protocol = match s.proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
        p => return Err(DiagError::Filter(format!("{p} sockets cannot be closed here"))),
    };
    let Some(local) = s.local_ip() else {
        return Err(DiagError::Filter("a socket without an IP address".to_string()));
    };
    let remote = s.remote_ip().map_or_else(
        || (if local.addr.is_ipv4() { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u8; 16]) }, 0),
        |r| (r.addr, r.port),
    );
    let octets = |a: IpAddr| -> Vec<u8> {
        match a {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        }
    };
    let total = decode::NLMSG_HDRLEN + 56;
    let mut buf = vec![0u8; total];
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&SOCK_DESTROY.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    let b = &mut buf[decode::NLMSG_HDRLEN..];
    b[0] = af;
    b[1] = protocol;
    // idiag_ext, pad: 0; idiag_states: every state (an exact lookup ignores them).
    b[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    // struct inet_diag_sockid at 8: ports big endian, addresses network order.
    b[8..10].copy_from_slice(&local.port.to_be_bytes());
    b[10..12].copy_from_slice(&remote.1.to_be_bytes());
    b[12..12 + alen].copy_from_slice(&octets(local.addr));
    b[28..28 + alen].copy_from_slice(&octets(remote.0));
    b[44..48].copy_from_slice(&s.bound_ifindex.unwrap_or(0).to_ne_bytes());
    // Cookie words as the dump gave them; "no cookie" (all ones) when unknown.
    let cookie = if s.cookie == 0 { u64::MAX } else { s.cookie };
    b[48..52].copy_from_slice(&(cookie as u32).to_ne_bytes());
    b[52..56].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
    Ok(buf)
}

fn describe(proto: Proto, family: Family) -> String {
    let fam = match family {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
        Family::Unix => "unix",
        Family::Packet => "packet",
    };
    format!("{proto}/{fam}")
}

/// `nlmsghdr` + `inet_diag_req_v2` + optional bytecode attribute. The
/// sequence number (bytes 8..12) is filled in per send.
pub fn request_bytes(
    proto: Proto,
    family: Option<Family>,
    states: u32,
    filter: Option<&Expr>,
    ext: Extensions,
) -> Result<Vec<u8>, DiagError> {
    let protocol = match proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
        Proto::Raw => libc::IPPROTO_RAW as u8,
        _ => return Err(DiagError::Filter(format!("{proto} is not an inet_diag protocol"))),
    };
    inet_request(proto, family, states, filter, ext, protocol)
}

fn inet_request(
    proto: Proto,
    family: Option<Family>,
    states: u32,
    filter: Option<&Expr>,
    ext: Extensions,
    protocol: u8,
) -> Result<Vec<u8>, DiagError> {
    let (kind, body) = match family {
        Some(family) => {
            let (af, sid) = match family {
                Family::Ipv4 => (libc::AF_INET as u8, SocketId::new_v4()),
                Family::Ipv6 => (libc::AF_INET6 as u8, SocketId::new_v6()),
                _ => return Err(DiagError::Filter(format!("{family:?} is not an inet family"))),
            };
            // Raw sockets: the request's pad byte is `sdiag_raw_protocol`, 0
            // (every protocol) as InetRequest emits it.
            let req = InetRequest {
                family: af,
                protocol,
                extensions: ExtensionFlags::from_bits_retain(ext.bits(proto)),
                states: StateFlags::from_bits_retain(states),
                socket_id: sid,
            };
            let mut body = vec![0u8; req.buffer_len()];
            req.emit(&mut body);
            (SOCK_DIAG_BY_FAMILY, body)
        }
        None if proto == Proto::Tcp => (TCPDIAG_GETSOCK, tcpdiag_request(states, ext.bits(proto))),
        None => return Err(DiagError::Filter(format!("{proto} has no request for both families"))),
    };
    let body_len = body.len();
    let bytecode = filter.map(bytecode::try_compile).transpose().map_err(|e| DiagError::Filter(e.to_string()))?;
    let attr_len = bytecode.as_ref().map_or(0, |bc| 4 + bc.len());
    let total = decode::NLMSG_HDRLEN + body_len + decode::align4(attr_len);
    let mut buf = vec![0u8; total];
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&kind.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf[decode::NLMSG_HDRLEN..decode::NLMSG_HDRLEN + body_len].copy_from_slice(&body);
    if let Some(bc) = bytecode {
        let at = decode::NLMSG_HDRLEN + body_len;
        buf[at..at + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        buf[at + 2..at + 4].copy_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        buf[at + 4..at + 4 + bc.len()].copy_from_slice(&bc);
    }
    Ok(buf)
}

/// The older inet_diag request type, TCP only: the kernel dumps it with
/// the family unspecified, so one walk of its tables gives IPv4 and IPv6
/// sockets alike. Its replies carry this type too.
const TCPDIAG_GETSOCK: u16 = 18;

/// `struct inet_diag_req` (the older request, 60 bytes): family, source and
/// destination prefix lengths, extensions, a socket id (unused by a dump),
/// states, and `idiag_dbs`.
fn tcpdiag_request(states: u32, ext: u8) -> Vec<u8> {
    let mut b = vec![0u8; 60];
    b[0] = libc::AF_INET as u8; // the kernel dumps every family whatever this says
    b[3] = ext;
    b[52..56].copy_from_slice(&states.to_ne_bytes());
    b
}

/// Evaluates a filter in user space on an IP socket, for sockets read from
/// /proc/net: the kernel evaluates the same expression as bytecode on the
/// fast path, and [`Expr::matches`] is that evaluation's definition.
pub fn matches(expr: &Expr, s: &Socket) -> bool {
    let Some(local) = s.local_ip() else { return false };
    let remote = s.remote_ip().map_or_else(
        || {
            let any = if local.addr.is_ipv4() { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u8; 16]) };
            (any, 0)
        },
        |r| (r.addr, r.port),
    );
    expr.matches((local.addr, local.port), remote)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP of both families: the older request type (18), a 60-byte
    /// `struct inet_diag_req` with the extensions at byte 3 and the states
    /// at byte 52, then the filter as for any other request.
    #[test]
    fn both_families_use_the_older_tcp_request() {
        let f = Expr::Cond(Cond::SPort { lo: 80, hi: 80 });
        let b = request_bytes(Proto::Tcp, None, 1 << 1, Some(&f), Extensions { tcp_info: true, skmem: false }).unwrap();
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), TCPDIAG_GETSOCK);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST | NLM_F_DUMP);
        let body = &b[16..76];
        assert_eq!(body[3], (1 << 1) | (1 << 3), "INFO and CONG");
        assert_eq!(u32::from_ne_bytes(body[52..56].try_into().unwrap()), 1 << 1);
        assert!(body[4..52].iter().all(|&x| x == 0), "no socket id: a dump");
        assert_eq!(u16::from_ne_bytes([b[78], b[79]]), INET_DIAG_REQ_BYTECODE);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
        assert_eq!(
            Request::Inet { proto: Proto::Tcp, family: None, states: 2, filter: None, ext: Extensions::NONE }
                .describe(),
            "tcp/IPv4 and IPv6"
        );
        // UDP has no such request: one per family.
        assert!(request_bytes(Proto::Udp, None, 1 << 7, None, Extensions::NONE).is_err());
    }

    #[test]
    fn request_layout_without_filter() {
        let b = request_bytes(Proto::Tcp, Some(Family::Ipv6), 1 << 10, None, Extensions::NONE).unwrap();
        // nlmsghdr (16) + inet_diag_req_v2 (56)
        assert_eq!(b.len(), 72);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x301);
        // sdiag_family, sdiag_protocol, idiag_ext, pad
        assert_eq!(&b[16..20], &[libc::AF_INET6 as u8, 6, 0, 0]);
        // idiag_states: LISTEN only
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 1 << 10);
    }

    #[test]
    fn request_carries_bytecode_attribute() {
        let f = Expr::Cond(Cond::SPort { lo: 443, hi: 443 });
        let bc = bytecode::compile(&f);
        let ext = Extensions { tcp_info: true, skmem: false };
        let b = request_bytes(Proto::Udp, Some(Family::Ipv4), 1 << 7, Some(&f), ext).unwrap();
        assert_eq!(b.len(), 72 + decode::align4(4 + bc.len()));
        // protocol UDP and no INFO extension for UDP
        assert_eq!(&b[16..20], &[libc::AF_INET as u8, 17, 0, 0]);
        assert_eq!(u16::from_ne_bytes(b[72..74].try_into().unwrap()) as usize, 4 + bc.len());
        assert_eq!(u16::from_ne_bytes(b[74..76].try_into().unwrap()), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&b[76..76 + bc.len()], &bc[..]);
    }

    /// The requests ss sends (strace of `ss -Mln`, `ss -xa`, `ss -0a`): the
    /// MPTCP protocol in an INET_DIAG_REQ_PROTOCOL (3) attribute, since
    /// 262 does not fit `sdiag_protocol`.
    #[test]
    fn mptcp_unix_and_packet_requests() {
        let b = Request::Mptcp { family: Family::Ipv4, states: 1 << 10 }.bytes().unwrap();
        assert_eq!(b.len(), 80);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 80);
        assert_eq!(&b[16..18], &[libc::AF_INET as u8, libc::IPPROTO_TCP as u8]);
        assert_eq!(&b[72..80], &[8, 0, 3, 0, 6, 1, 0, 0]);
        let b = Request::Unix { states: 0xfff }.bytes().unwrap();
        assert_eq!(b.len(), 16 + 24);
        assert_eq!(b[16], libc::AF_UNIX as u8);
        assert_eq!(u32::from_ne_bytes(b[20..24].try_into().unwrap()), 0xfff);
        assert_eq!(u32::from_ne_bytes(b[28..32].try_into().unwrap()), UDIAG_SHOW);
        let b = Request::Packet.bytes().unwrap();
        assert_eq!((b.len(), b[16], b[17]), (16 + 20, libc::AF_PACKET as u8, 0));
        assert_eq!(u32::from_ne_bytes(b[24..28].try_into().unwrap()), PACKET_SHOW);
        let raw = request_bytes(Proto::Raw, Some(Family::Ipv6), 1 << 7, None, Extensions::NONE).unwrap();
        assert_eq!(&raw[16..20], &[libc::AF_INET6 as u8, libc::IPPROTO_RAW as u8, 0, 0]);
    }

    /// The SOCK_DESTROY request names the socket as the dump gave it:
    /// ports big endian, addresses in network order, device, cookie words.
    #[test]
    fn destroy_request_layout() {
        let mut s =
            Socket::sample(Proto::Tcp, crate::model::State::Established, "127.0.0.1:40000", Some("10.0.0.5:5432"), 7);
        s.cookie = 0x1122_3344_5566_7788;
        s.bound_ifindex = Some(3);
        let b = destroy_bytes(&s).unwrap();
        assert_eq!(b.len(), 72);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 21);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x5);
        assert_eq!(&b[16..18], &[libc::AF_INET as u8, libc::IPPROTO_TCP as u8]);
        assert_eq!(
            &b[24..28],
            &40000u16.to_be_bytes().iter().chain(&5432u16.to_be_bytes()).copied().collect::<Vec<u8>>()[..]
        );
        assert_eq!(&b[28..32], &[127, 0, 0, 1]);
        assert_eq!(&b[44..48], &[10, 0, 0, 5]);
        assert_eq!(u32::from_ne_bytes(b[60..64].try_into().unwrap()), 3);
        assert_eq!(u32::from_ne_bytes(b[64..68].try_into().unwrap()), 0x5566_7788);
        assert_eq!(u32::from_ne_bytes(b[68..72].try_into().unwrap()), 0x1122_3344);
        // A listener: remote all zeros; IPv6 addresses take 16 bytes.
        let l = Socket::sample(Proto::Udp, crate::model::State::Unconn, "[::1]:53", None, 8);
        let b = destroy_bytes(&l).unwrap();
        assert_eq!(&b[16..18], &[libc::AF_INET6 as u8, libc::IPPROTO_UDP as u8]);
        assert_eq!(&b[28..44], &"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert!(b[44..60].iter().all(|&x| x == 0));
        assert_eq!(&b[64..72], &[0xff; 8], "no cookie known: INET_DIAG_NOCOOKIE");
    }

    #[test]
    fn extension_bits() {
        let both = Extensions { tcp_info: true, skmem: true };
        let b = request_bytes(Proto::Tcp, Some(Family::Ipv4), 2, None, Extensions { tcp_info: true, skmem: false })
            .unwrap();
        assert_eq!(b[18], (1 << (2 - 1)) | (1 << (4 - 1))); // INET_DIAG_INFO, INET_DIAG_CONG
        let b = request_bytes(Proto::Tcp, Some(Family::Ipv4), 2, None, both).unwrap();
        assert_eq!(b[18], 0x02 | 0x08 | 0x40); // and INET_DIAG_SKMEMINFO
        // UDP has no tcp_info; socket memory it has.
        let b = request_bytes(Proto::Udp, Some(Family::Ipv4), 1 << 7, None, both).unwrap();
        assert_eq!(b[18], 0x40);
    }
}
