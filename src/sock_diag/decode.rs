//! Decoding of `SOCK_DIAG_BY_FAMILY` replies: netlink headers, `struct
//! inet_diag_msg` (TCP, UDP, raw), `struct unix_diag_msg` and `struct
//! packet_diag_msg`, and their attributes.
//!
//! We decode `inet_diag_msg` ourselves instead of with
//! `netlink_packet_sock_diag::inet::InetResponse`: that type drops
//! `idiag_expires` for TIME_WAIT timers (which `who` and `conns` must show)
//! and allocates a vector of attributes per socket, which shows at 100k
//! sockets. The layout is fixed ABI (`include/uapi/linux/inet_diag.h`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::borrow::Cow;

use crate::model::{
    AcceptQueue, Addr, Detail, Endpoint, Family, Fanout, LinkAddr, PacketDetail, PacketType, Peer, Proto, RawDetail,
    Ring, SkMem, Socket, SocketExt, State, TcpInfo, Timer, TimerKind, UnixDetail, UnixName, UnixType, Vfs,
};

/// `struct nlmsghdr` size.
pub const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_msg` size.
pub const INET_DIAG_MSG_LEN: usize = 72;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// Attribute types in a reply (`enum inet_diag_attr`'s values we read).
const INET_DIAG_INFO: u16 = 2;
const INET_DIAG_CONG: u16 = 4;
const INET_DIAG_SKMEMINFO: u16 = 7;
const INET_DIAG_PROTOCOL: u16 = 10;
const INET_DIAG_SKV6ONLY: u16 = 11;
/// `sk_mark`, sent to CAP_NET_ADMIN only (Linux 4.9+).
const INET_DIAG_MARK: u16 = 15;
/// The socket's cgroup v2 id (Linux 5.9+), full sockets only.
const INET_DIAG_CGROUP_ID: u16 = 21;

/// `struct unix_diag_msg` size, and `enum`'s attribute types
/// (`include/uapi/linux/unix_diag.h`).
pub const UNIX_DIAG_MSG_LEN: usize = 16;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_UID: u16 = 7;

/// `struct packet_diag_msg` size, and its attribute types
/// (`include/uapi/linux/packet_diag.h`).
pub const PACKET_DIAG_MSG_LEN: usize = 16;
const PACKET_DIAG_INFO: u16 = 0;
const PACKET_DIAG_MCLIST: u16 = 1;
const PACKET_DIAG_RX_RING: u16 = 2;
const PACKET_DIAG_TX_RING: u16 = 3;
const PACKET_DIAG_FANOUT: u16 = 4;
const PACKET_DIAG_UID: u16 = 5;
/// `struct packet_diag_mclist`: index, count, type, alen, addr[32].
const PACKET_MCLIST_LEN: usize = 44;
const PACKET_MR_PROMISC: u16 = 1;
const PDI_RUNNING: u32 = 0x1;

/// One netlink message in a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Splits a receive buffer into netlink messages. A truncated trailing
/// message is reported as an error rather than silently dropped.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<NlMsg<'_>, String>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() < NLMSG_HDRLEN {
            buf = &[];
            return Some(Err("truncated netlink header".to_string()));
        }
        let len = u32_ne(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err(format!("bad netlink message length {len}")));
        }
        let msg = NlMsg {
            kind: u16_ne(buf, 4),
            flags: u16_ne(buf, 6),
            seq: u32_ne(buf, 8),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        let next = align4(len).min(buf.len());
        buf = &buf[next..];
        Some(Ok(msg))
    })
}

/// The errno carried by an `NLMSG_ERROR` or `NLMSG_DONE` payload (negative
/// in the kernel, returned positive here; 0 means success/ack).
pub fn error_code(payload: &[u8]) -> i32 {
    if payload.len() < 4 {
        return 0;
    }
    -(u32_ne(payload, 0) as i32)
}

/// Decodes one `inet_diag_msg` with its attributes into a [`Socket`] (no
/// owners yet). `proto` is what was asked for: the message does not say.
pub fn socket(proto: Proto, payload: &[u8]) -> Result<Socket, String> {
    if payload.len() < INET_DIAG_MSG_LEN {
        return Err(format!("inet_diag_msg too short: {} bytes, need {INET_DIAG_MSG_LEN}", payload.len()));
    }
    let family = match payload[0] as i32 {
        libc::AF_INET => Family::Ipv4,
        libc::AF_INET6 => Family::Ipv6,
        other => return Err(format!("unexpected address family {other}")),
    };
    let state = State::from_kernel(proto, payload[1]);
    let timer_code = payload[2];
    let retrans = payload[3];
    // struct inet_diag_sockid at offset 4: ports are big endian.
    let sport = u16::from_be_bytes([payload[4], payload[5]]);
    let dport = u16::from_be_bytes([payload[6], payload[7]]);
    let src = addr(family, &payload[8..24]);
    let dst = addr(family, &payload[24..40]);
    let expires = u32_ne(payload, 52);
    let recv_q = u32_ne(payload, 56);
    let send_q = u32_ne(payload, 60);
    let uid = u32_ne(payload, 64);
    let inode = u32_ne(payload, 68) as u64;
    let ifindex = u32_ne(payload, 40);
    // idiag_cookie[2]: the kernel's 64-bit cookie, low word first.
    let cookie = u64::from(u32_ne(payload, 44)) | u64::from(u32_ne(payload, 48)) << 32;

    let timer = TimerKind::from_kernel(timer_code).map(|kind| Timer {
        kind,
        expires_ms: expires,
        retrans: if kind == TimerKind::Retransmit { retrans } else { 0 },
    });

    let mut v6only = None;
    let mut tcp_info = None;
    let mut congestion = None;
    let mut skmem = None;
    let mut protocol = None;
    for (kind, value) in attributes(&payload[INET_DIAG_MSG_LEN..]) {
        match kind {
            INET_DIAG_SKV6ONLY if !value.is_empty() => v6only = Some(value[0] != 0),
            INET_DIAG_INFO if proto == Proto::Tcp => tcp_info = decode_tcp_info(value),
            INET_DIAG_CONG if proto == Proto::Tcp => congestion = Some(congestion_name(value)),
            INET_DIAG_SKMEMINFO => skmem = decode_skmem(value),
            INET_DIAG_PROTOCOL if !value.is_empty() => protocol = Some(value[0]),
            _ => {}
        }
    }
    if let Some(info) = tcp_info.as_mut() {
        info.congestion = congestion;
    }
    // A listener's queues are its accept queue: connections waiting, and
    // the backlog (/proc/net does not carry the backlog; sock_diag does).
    let accept_queue = (proto == Proto::Tcp && state == State::Listen).then(|| AcceptQueue::new(recv_q, send_q));
    if family == Family::Ipv4 {
        v6only = None;
    }

    let raw = matches!(proto, Proto::Raw | Proto::Icmp);
    // A raw socket's "port" is its protocol (inet_num): it has no port.
    let (sport, dport, detail) = if raw {
        let protocol = protocol.unwrap_or(sport as u8);
        (0, 0, Some(Box::new(Detail::Raw(RawDetail { protocol }))))
    } else {
        (sport, dport, None)
    };
    let local = Endpoint { addr: src, port: sport };
    let unconnected = matches!(state, State::Listen | State::Unconn) && dst.is_unspecified() && dport == 0;
    let remote = (!unconnected).then_some(Endpoint { addr: dst, port: dport }.into());
    let mut s = Socket::new(proto, family, state, local.into(), remote);
    s.detail = detail;
    s.inode = inode;
    s.uid = uid;
    s.v6only = v6only;
    s.recv_q = recv_q;
    s.send_q = send_q;
    s.timer = timer;
    if accept_queue.is_some() || tcp_info.is_some() || skmem.is_some() {
        s.ext = Some(Box::new(SocketExt { accept_queue, tcp_info, skmem }));
    }
    s.cookie = cookie;
    s.bound_ifindex = Some(ifindex);
    Ok(s)
}

/// Decodes one `unix_diag_msg` with its attributes. The peer's name is
/// not in the message (only its inode): `remote` is an unnamed end when
/// there is a peer, for the caller to name from the peer's own record.
pub fn unix_socket(payload: &[u8]) -> Result<Socket, String> {
    if payload.len() < UNIX_DIAG_MSG_LEN {
        return Err(format!("unix_diag_msg too short: {} bytes, need {UNIX_DIAG_MSG_LEN}", payload.len()));
    }
    if payload[0] as i32 != libc::AF_UNIX {
        return Err(format!("unexpected address family {} in a unix reply", payload[0]));
    }
    let kind = UnixType::from_kernel(payload[1]).ok_or_else(|| format!("unknown unix socket type {}", payload[1]))?;
    let state = State::from_kernel(Proto::Unix, payload[2]);
    let inode = u64::from(u32_ne(payload, 4));
    let mut name = UnixName::unnamed();
    let mut vfs = None;
    let mut peer = 0u64;
    let mut pending = Vec::new();
    let mut queues = (0, 0);
    let mut uid = 0;
    for (kind, value) in attributes(&payload[UNIX_DIAG_MSG_LEN..]) {
        match kind {
            UNIX_DIAG_NAME => name = unix_name(value),
            UNIX_DIAG_VFS if value.len() >= 8 => {
                vfs = Some(Vfs { ino: u64::from(u32_ne(value, 0)), dev: user_dev(u32_ne(value, 4)) });
            }
            UNIX_DIAG_PEER if value.len() >= 4 => peer = u64::from(u32_ne(value, 0)),
            UNIX_DIAG_ICONS => pending = value.chunks_exact(4).map(|c| u64::from(u32_ne(c, 0))).collect(),
            UNIX_DIAG_RQLEN if value.len() >= 8 => queues = (u32_ne(value, 0), u32_ne(value, 4)),
            UNIX_DIAG_UID if value.len() >= 4 => uid = u32_ne(value, 0),
            _ => {}
        }
    }
    let remote = (peer != 0).then(|| Addr::from_unix(UnixName::unnamed()));
    let mut s = Socket::new(Proto::Unix, Family::Unix, state, Addr::from_unix(name), remote);
    s.inode = inode;
    s.uid = uid;
    (s.recv_q, s.send_q) = queues;
    s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind, vfs, pending })));
    if peer != 0 {
        s.peer = Some(Box::new(Peer::inode(peer)));
    }
    Ok(s)
}

/// A unix name as the kernel stores it (`sun_path`, `addr_len` bytes): a
/// leading NUL makes it abstract (the rest is the name, NULs and all); a
/// path ends at its first NUL. Not UTF-8: replaced (U+FFFD).
pub fn unix_name(raw: &[u8]) -> UnixName {
    match raw.split_first() {
        None => UnixName::unnamed(),
        Some((0, rest)) => UnixName::abstract_name(String::from_utf8_lossy(rest)),
        Some(_) => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            UnixName::path(String::from_utf8_lossy(&raw[..end]))
        }
    }
}

/// A device number as the kernel keeps it (`MAJOR << 20 | MINOR`, what
/// `UNIX_DIAG_VFS` carries) in stat(2)'s encoding (glibc's `makedev`).
pub fn user_dev(kdev: u32) -> u64 {
    let (major, minor) = (u64::from(kdev >> 20), u64::from(kdev & 0xf_ffff));
    ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
}

/// Decodes one `packet_diag_msg` with its attributes. `interface` is left
/// for the caller, which knows the namespace's interface names.
pub fn packet_socket(payload: &[u8]) -> Result<Socket, String> {
    if payload.len() < PACKET_DIAG_MSG_LEN {
        return Err(format!("packet_diag_msg too short: {} bytes, need {PACKET_DIAG_MSG_LEN}", payload.len()));
    }
    if payload[0] as i32 != libc::AF_PACKET {
        return Err(format!("unexpected address family {} in a packet reply", payload[0]));
    }
    let kind = match payload[1] as i32 {
        libc::SOCK_RAW => PacketType::Raw,
        libc::SOCK_DGRAM => PacketType::Dgram,
        other => return Err(format!("unknown packet socket type {other}")),
    };
    let protocol = u16_ne(payload, 2);
    let inode = u64::from(u32_ne(payload, 4));
    let mut ifindex = 0;
    let mut detail = PacketDetail {
        kind,
        running: false,
        promiscuous: false,
        version: 1,
        rx_ring: None,
        tx_ring: None,
        fanout: None,
    };
    let mut uid = 0;
    for (kind, value) in attributes(&payload[PACKET_DIAG_MSG_LEN..]) {
        match kind {
            PACKET_DIAG_INFO if value.len() >= 24 => {
                ifindex = u32_ne(value, 0);
                // tp_version: TPACKET_V1 = 0, V2 = 1, V3 = 2.
                detail.version = u32_ne(value, 4).min(254) as u8 + 1;
                detail.running = u32_ne(value, 20) & PDI_RUNNING != 0;
            }
            PACKET_DIAG_UID if value.len() >= 4 => uid = u32_ne(value, 0),
            PACKET_DIAG_MCLIST => {
                detail.promiscuous = value.chunks_exact(PACKET_MCLIST_LEN).any(|m| u16_ne(m, 8) == PACKET_MR_PROMISC);
            }
            PACKET_DIAG_RX_RING => detail.rx_ring = ring(value),
            PACKET_DIAG_TX_RING => detail.tx_ring = ring(value),
            PACKET_DIAG_FANOUT if value.len() >= 4 => {
                let v = u32_ne(value, 0);
                detail.fanout = Some(Fanout { id: v as u16, mode: (v >> 16) as u8 });
            }
            _ => {}
        }
    }
    let local = Addr::Link(LinkAddr { ifindex, protocol });
    let mut s = Socket::new(Proto::Packet, Family::Packet, State::Unconn, local, None);
    s.inode = inode;
    s.uid = uid;
    s.detail = Some(Box::new(Detail::Packet(detail)));
    Ok(s)
}

/// `struct packet_diag_ring`: block size, blocks, frame size, frames, ...
fn ring(v: &[u8]) -> Option<Ring> {
    (v.len() >= 16).then(|| Ring {
        block_size: u32_ne(v, 0),
        blocks: u32_ne(v, 4),
        frame_size: u32_ne(v, 8),
        frames: u32_ne(v, 12),
    })
}

/// What the kernel's filter would see of the socket in `payload` (an
/// `inet_diag_msg` with attributes), for evaluating an expression in user
/// space: both ends as the kernel keeps them (an unconnected socket's
/// remote end is all zeros), the bound device, and the mark and cgroup
/// when the reply carries them. `None` when the payload is too short or
/// not IPv4/IPv6.
pub fn entry(payload: &[u8]) -> Option<crate::sock_diag::bytecode::Entry> {
    if payload.len() < INET_DIAG_MSG_LEN {
        return None;
    }
    let family = match payload[0] as i32 {
        libc::AF_INET => Family::Ipv4,
        libc::AF_INET6 => Family::Ipv6,
        _ => return None,
    };
    let sport = u16::from_be_bytes([payload[4], payload[5]]);
    let dport = u16::from_be_bytes([payload[6], payload[7]]);
    let mut e = crate::sock_diag::bytecode::Entry::ends(
        (addr(family, &payload[8..24]), sport),
        (addr(family, &payload[24..40]), dport),
    );
    e.ifindex = Some(u32_ne(payload, 40));
    for (kind, value) in attributes(&payload[INET_DIAG_MSG_LEN..]) {
        match kind {
            INET_DIAG_MARK if value.len() >= 4 => e.mark = Some(u32_ne(value, 0)),
            INET_DIAG_CGROUP_ID if value.len() >= 8 => {
                e.cgroup = Some(u64::from_ne_bytes(value[..8].try_into().unwrap_or([0; 8])));
            }
            _ => {}
        }
    }
    Some(e)
}

/// The bound device index (`idiag_if`), 0 when not bound to a device.
pub fn bound_ifindex(payload: &[u8]) -> u32 {
    if payload.len() < INET_DIAG_MSG_LEN { 0 } else { u32_ne(payload, 40) }
}

/// An address of `raw` (16 bytes, IPv4 in the first 4); `family` is IPv4
/// or IPv6 (the caller checked).
fn addr(family: Family, raw: &[u8]) -> IpAddr {
    let mut b = [0u8; 16];
    b.copy_from_slice(&raw[..16]);
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        _ => IpAddr::V6(Ipv6Addr::from(b)),
    }
}

/// Iterates `struct rtattr`s: (type, value).
fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16_ne(buf, 0) as usize;
        let kind = u16_ne(buf, 2) & 0x3fff; // strip NLA_F_NESTED / NET_BYTEORDER
        if len < 4 || len > buf.len() {
            buf = &[];
            return None;
        }
        let value = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((kind, value))
    })
}

/// `struct tcp_info` fields we show. Offsets are fixed ABI
/// (`include/uapi/linux/tcp.h`); older kernels send a shorter struct, so
/// every field past the original layout is optional.
fn decode_tcp_info(v: &[u8]) -> Option<TcpInfo> {
    // u8 fields: state, ca_state, retransmits (offset 2) ... then u32s from 8.
    if v.len() < 104 {
        return None;
    }
    let u64_at =
        |off: usize| (v.len() >= off + 8).then(|| u64::from_ne_bytes(v[off..off + 8].try_into().unwrap_or([0; 8])));
    Some(TcpInfo {
        retransmits: v[2] as u32,
        rtt_us: u32_ne(v, 68),
        rttvar_us: u32_ne(v, 72),
        snd_cwnd: u32_ne(v, 80),
        total_retrans: u32_ne(v, 100),
        // tcpi_bytes_received at 128 (Linux 4.1+), tcpi_bytes_sent at 200 (4.19+).
        bytes_sent: u64_at(200),
        bytes_received: u64_at(128),
        congestion: None,
        snd_mss: u32_ne(v, 16),
        rcv_mss: u32_ne(v, 20),
        unacked: u32_ne(v, 24),
        lost: u32_ne(v, 32),
        reordering: u32_ne(v, 88),
        // ~0: no pacing limit.
        pacing_rate: u64_at(104).filter(|&r| r != u64::MAX),
        // tcpi_delivery_rate at 160 (4.9+); busy, rwnd- and sndbuf-limited
        // times at 168, 176, 184 (4.10+).
        delivery_rate: u64_at(160),
        busy_time_us: u64_at(168),
        rwnd_limited_us: u64_at(176),
        sndbuf_limited_us: u64_at(184),
    })
}

/// The congestion control name (NUL-terminated); the common ones without
/// an allocation (one per socket with `--extended`).
fn congestion_name(v: &[u8]) -> Cow<'static, str> {
    let name = v.split(|&b| b == 0).next().unwrap_or_default();
    const KNOWN: [&str; 8] = ["cubic", "bbr", "reno", "dctcp", "htcp", "bic", "vegas", "westwood"];
    match KNOWN.iter().find(|k| k.as_bytes() == name) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(String::from_utf8_lossy(name).into_owned()),
    }
}

/// `u32 skmem[SK_MEMINFO_VARS]`: nine values on current kernels (drops
/// came last); older kernels send fewer, and the missing ones stay 0.
fn decode_skmem(v: &[u8]) -> Option<SkMem> {
    if v.len() < 16 {
        return None;
    }
    let at = |i: usize| if v.len() >= (i + 1) * 4 { u32_ne(v, i * 4) } else { 0 };
    Some(SkMem {
        rmem_alloc: at(0),
        rcvbuf: at(1),
        wmem_alloc: at(2),
        sndbuf: at(3),
        fwd_alloc: at(4),
        wmem_queued: at(5),
        optmem: at(6),
        backlog: at(7),
        drops: at(8),
    })
}

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_ne(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_ne(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Exposure;

    /// A real reply, captured on Linux 6.18 (x86_64, little endian) for a
    /// dump of AF_INET6/TCP with state mask LISTEN, in a fresh network
    /// namespace holding one dual-stack `[::]:8080` listener (backlog 128).
    #[rustfmt::skip]
    const V6_LISTENER: &[u8] = &[
        // nlmsghdr: len = 132, type = 20 (SOCK_DIAG_BY_FAMILY),
        // flags = 0x0002 (NLM_F_MULTI), seq = 1, port id = 0x2166
        0x84, 0, 0, 0,  0x14, 0,  0x02, 0,  1, 0, 0, 0,  0x66, 0x21, 0, 0,
        // inet_diag_msg: family = 10 (AF_INET6), state = 10 (LISTEN),
        // timer = 0, retrans = 0
        0x0a, 0x0a, 0, 0,
        // sockid: sport = 8080 (0x1f90, big endian), dport = 0
        0x1f, 0x90, 0, 0,
        // src = :: (16 bytes)
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // dst = :: (16 bytes)
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // if = 0, cookie = 0x442
        0, 0, 0, 0,  0x42, 0x04, 0, 0, 0, 0, 0, 0,
        // expires = 0, rqueue = 0 (pending), wqueue = 128 (backlog)
        0, 0, 0, 0,  0, 0, 0, 0,  0x80, 0, 0, 0,
        // uid = 0, inode = 20087 (0x4e77)
        0, 0, 0, 0,  0x77, 0x4e, 0, 0,
        // rtattr len 5, type 8 (INET_DIAG_SHUTDOWN) = 0, padded to 8
        0x05, 0, 0x08, 0,  0, 0, 0, 0,
        // rtattr len 5, type 11 (INET_DIAG_SKV6ONLY) = 0: dual stack
        0x05, 0, 0x0b, 0,  0, 0, 0, 0,
        // rtattr len 8, type 15 (INET_DIAG_MARK) = 0
        0x08, 0, 0x0f, 0,  0, 0, 0, 0,
        // rtattr len 12, type 21 (INET_DIAG_CGROUP_ID) = 1
        0x0c, 0, 0x15, 0,  1, 0, 0, 0, 0, 0, 0, 0,
        // rtattr len 6, type 22 (INET_DIAG_SOCKOPT) = 0x0012, padded to 8
        0x06, 0, 0x16, 0,  0x12, 0, 0, 0,
    ];

    /// An IPv4 TIME_WAIT socket: 127.0.0.1:40000 -> 127.0.0.1:8080, timer 3
    /// (TIME_WAIT) with 59,000 ms left, inode 0, no attributes.
    #[rustfmt::skip]
    const V4_TIME_WAIT: &[u8] = &[
        // nlmsghdr: len = 88, type = 20, flags = NLM_F_MULTI, seq = 7, pid = 0
        88, 0, 0, 0,  20, 0,  2, 0,  7, 0, 0, 0,  0, 0, 0, 0,
        // family = 2 (AF_INET), state = 6 (TIME_WAIT), timer = 3, retrans = 0
        2, 6, 3, 0,
        // sport = 40000 (0x9c40), dport = 8080 (0x1f90)
        0x9c, 0x40, 0x1f, 0x90,
        // src = 127.0.0.1 then 12 unused bytes
        127, 0, 0, 1,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // dst = 127.0.0.1 then 12 unused bytes
        127, 0, 0, 1,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // if = 0, cookie
        0, 0, 0, 0,  9, 0, 0, 0, 0, 0, 0, 0,
        // expires = 59000 ms (0xe678), rqueue = 0, wqueue = 0
        0x78, 0xe6, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        // uid = 0, inode = 0
        0, 0, 0, 0,  0, 0, 0, 0,
    ];

    /// `NLMSG_ERROR` with errno -2 (ENOENT), then the echoed request header.
    #[rustfmt::skip]
    const ERROR_ENOENT: &[u8] = &[
        36, 0, 0, 0,  2, 0,  0, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        0xfe, 0xff, 0xff, 0xff,
        72, 0, 0, 0,  20, 0,  1, 3,  1, 0, 0, 0,  0, 0, 0, 0,
    ];

    /// A real reply (Linux 6.18, x86_64), INFO, CONG and SKMEMINFO asked for: an IPv4
    /// listener on 127.0.0.1:8080 made with listen(1), never accepting, that three
    /// clients connected to: 2 queued, backlog 1; congestion control `bbr`.
    const LISTENER_FULL_HEX: &[&str] = &[
        "c8010000140002000100000094720000020a00001f9000007f0000010000000000000000000000000000000000000000",
        "000000000000000000000000ae41060000000000000000000200000001000000000000001a7917000500080000000000",
        "08000f00000000000c001500010000000000000006001600520000002800070000000000000002000000000000400000",
        "00000000000000000000000000000000010000001c0102000a0000000000000000000000000000000000000000000000",
        "020000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000a0000000000000003000000000000000000000000000000ffffffffffffffffffffffffffffffff",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000800040062627200",
    ];
    /// The server end of a connection on 127.0.0.1:8080 that received 1000 bytes
    /// (same kernel, same extensions): tcp_info, `bbr`, socket memory.
    const ESTABLISHED_HEX: &[&str] = &[
        "c80100001400020001000000376e0000020100001f90c4027f0000010000000000000000000000007f00000100000000",
        "000000000000000000000000ac4106000000000000000000840300000000000000000000de7317000500080000000000",
        "08000f00000000000c0015000100000000000000060016005200000028000700280700000000020000000000001e3c00",
        "d8080000000000000000000000000000000000001c010200010000000007aa01e01c0300409c000000800000e8030000",
        "000000000000000000000000000000000000000064000000000000006400000064000000ffff00001d12010012000000",
        "09000000ffffff7f0a000000cbff00000300000000000000cbff000000000000e39bf71c0c000000ffffffffffffffff",
        "0000000000000000e8030000000000000100000003000000000000001200000001000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000",
        "000000000000000000000000000001000014010000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000800040062627200",
    ];
    /// An unconnected UDP socket on 127.0.0.1:5353 with SO_RCVBUF 1 (the kernel's
    /// minimum, 2304) sent 20 datagrams of 200 bytes: one queued (1280 bytes
    /// of memory), 19 dropped; SKMEMINFO asked for.
    const UDP_DROPPING_HEX: &[&str] = &[
        "a400000014000200010000001c7300000207000014e900007f0000010000000000000000000000000000000000000000",
        "000000000000000000000000f082060000000000000000000005000000000000000000003d7c17000500080000000000",
        "08000f00000000000c001500010000000000000006001600500000002800070000050000000900000000000000400300",
        "000b000000000000000000000000000013000000",
    ];

    fn one(buf: &[u8]) -> NlMsg<'_> {
        let msgs: Vec<_> = messages(buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        msgs[0]
    }

    #[test]
    fn decodes_dual_stack_listener() {
        let msg = one(V6_LISTENER);
        assert_eq!(msg.kind, 20);
        assert_eq!(msg.seq, 1);
        let s = socket(Proto::Tcp, msg.payload).unwrap();
        assert_eq!(s.family, Family::Ipv6);
        assert_eq!(s.state, State::Listen);
        assert_eq!(s.local, Endpoint { addr: "::".parse().unwrap(), port: 8080 }.into());
        assert_eq!(s.remote, None);
        assert_eq!(s.v6only, Some(false));
        assert!(s.is_dual_stack());
        assert_eq!(s.exposure, Exposure::Wildcard);
        assert_eq!((s.uid, s.inode, s.send_q, s.recv_q), (0, 20087, 128, 0));
        assert_eq!(s.timer, None);
        assert_eq!((s.cookie, s.bound_ifindex), (0x442, Some(0)));
        // What the filter sees: the mark (captured as root) and cgroup attributes.
        let e = entry(msg.payload).unwrap();
        assert_eq!((e.local.1, e.remote.1, e.ifindex, e.mark, e.cgroup), (8080, 0, Some(0), Some(0), Some(1)));
        let no_attrs = &msg.payload[..INET_DIAG_MSG_LEN];
        assert_eq!((entry(no_attrs).unwrap().mark, entry(no_attrs).unwrap().cgroup), (None, None));
        assert!(e.remote.0.is_unspecified());
    }

    #[test]
    fn decodes_time_wait_with_timer() {
        let msg = one(V4_TIME_WAIT);
        let s = socket(Proto::Tcp, msg.payload).unwrap();
        assert_eq!(s.state, State::TimeWait);
        assert_eq!(s.local.to_string(), "127.0.0.1:40000");
        assert_eq!(s.remote.as_ref().unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(s.timer, Some(Timer { kind: TimerKind::TimeWait, expires_ms: 59000, retrans: 0 }));
        assert_eq!(s.inode, 0);
        assert!(s.is_unowned_by_nature());
        assert_eq!(s.v6only, None);
    }

    #[test]
    fn udp_close_state_is_unconn() {
        let mut buf = V4_TIME_WAIT.to_vec();
        buf[NLMSG_HDRLEN + 1] = 7; // TCP_CLOSE
        buf[NLMSG_HDRLEN + 6] = 0; // dport = 0
        buf[NLMSG_HDRLEN + 7] = 0;
        buf[NLMSG_HDRLEN + 24..NLMSG_HDRLEN + 28].copy_from_slice(&[0, 0, 0, 0]);
        let s = socket(Proto::Udp, one(&buf).payload).unwrap();
        assert_eq!(s.state, State::Unconn);
        assert_eq!(s.remote, None);
        let s = socket(Proto::Tcp, one(&buf).payload).unwrap();
        assert_eq!(s.state, State::Close);
    }

    #[test]
    fn error_message_carries_errno() {
        let msg = one(ERROR_ENOENT);
        assert_eq!(msg.kind, NLMSG_ERROR);
        assert_eq!(error_code(msg.payload), libc::ENOENT);
    }

    #[test]
    fn several_messages_and_truncation() {
        let mut buf = V6_LISTENER.to_vec();
        buf.extend_from_slice(V4_TIME_WAIT);
        let kinds: Vec<_> = messages(&buf).map(|m| m.unwrap().seq).collect();
        assert_eq!(kinds, vec![1, 7]);
        let cut = &buf[..buf.len() - 10];
        let results: Vec<_> = messages(cut).collect();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
    }

    #[test]
    fn short_payload_is_an_error_not_a_panic() {
        assert!(socket(Proto::Tcp, &V4_TIME_WAIT[NLMSG_HDRLEN..NLMSG_HDRLEN + 40]).is_err());
        assert!(socket(Proto::Tcp, &[]).is_err());
        let mut bad = V4_TIME_WAIT[NLMSG_HDRLEN..].to_vec();
        bad[0] = 99;
        assert!(socket(Proto::Tcp, &bad).is_err());
        assert!(entry(&bad).is_none() && entry(&[]).is_none());
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Random replies never panic the decoders.
            #[test]
            fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), fam in 0u8..12) {
                let mut b = bytes;
                if b.len() > 1 { b[0] = fam; }
                let _ = socket(Proto::Tcp, &b);
                let _ = entry(&b);
                let _ = messages(&b).count();
            }
        }
    }

    /// A real unix_diag reply, captured on Linux 6.18 (x86_64) in a fresh
    /// namespace: a stream listener on /tmp/pt15cap.sock (backlog 7) with
    /// one client waiting in its accept queue, asked for with UDIAG_SHOW
    /// name, vfs, peer, icons, rqlen and uid.
    #[rustfmt::skip]
    const UNIX_LISTENER: &[u8] = &[
        // nlmsghdr: len 104, type 20, NLM_F_MULTI, seq 1
        104, 0, 0, 0, 20, 0, 2, 0, 1, 0, 0, 0, 5, 81, 0, 0,
        // unix_diag_msg: AF_UNIX, SOCK_STREAM, TCP_LISTEN, pad; ino 3338679; cookie
        1, 1, 10, 0,  183, 241, 50, 0,  144, 81, 18, 0, 0, 0, 0, 0,
        // UNIX_DIAG_NAME (len 22): "/tmp/pt15cap.sock\0", padded to 24
        22, 0, 0, 0,  47, 116, 109, 112, 47, 112, 116, 49, 53, 99, 97, 112, 46, 115, 111, 99, 107, 0, 0, 0,
        // UNIX_DIAG_VFS: ino 10010849, dev 0x0fe00000 (254:0 in the kernel's encoding)
        12, 0, 1, 0,  225, 192, 152, 0,  0, 0, 224, 15,
        // UNIX_DIAG_ICONS: one pending client, inode 3338680
        8, 0, 3, 0,  184, 241, 50, 0,
        // UNIX_DIAG_RQLEN: 1 waiting, backlog 7
        12, 0, 4, 0,  1, 0, 0, 0,  7, 0, 0, 0,
        // UNIX_DIAG_SHUTDOWN (5, padded) and UNIX_DIAG_UID 0
        5, 0, 6, 0, 0, 0, 0, 0,  8, 0, 7, 0, 0, 0, 0, 0,
    ];

    /// A real packet_diag reply (same kernel): an AF_PACKET SOCK_DGRAM
    /// socket bound to lo (ifindex 1) for ETH_P_ARP, with PACKET_MR_PROMISC
    /// membership on lo, asked for with info, mclist, rings and fanout.
    #[rustfmt::skip]
    const PACKET_PROMISC: &[u8] = &[
        116, 0, 0, 0, 20, 0, 2, 0, 1, 0, 0, 0, 5, 81, 0, 0,
        // packet_diag_msg: AF_PACKET, SOCK_DGRAM, num 0x0806 (host order); ino 3338682; cookie
        17, 2, 6, 8,  186, 241, 50, 0,  145, 81, 18, 0, 0, 0, 0, 0,
        // PACKET_DIAG_INFO: index 1, version 0 (TPACKET_V1), reserve, copy_thresh, tstamp, flags PDI_RUNNING
        28, 0, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  1, 0, 0, 0,
        // PACKET_DIAG_UID 0
        8, 0, 5, 0,  0, 0, 0, 0,
        // PACKET_DIAG_MCLIST: one packet_diag_mclist: index 1, count 1, type 1 (PROMISC), alen 0, addr[32]
        48, 0, 1, 0,  1, 0, 0, 0,  1, 0, 0, 0,  1, 0,  0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn decodes_a_unix_listener_with_a_waiting_client() {
        let s = unix_socket(one(UNIX_LISTENER).payload).unwrap();
        assert_eq!((s.proto, s.family, s.state), (Proto::Unix, Family::Unix, State::Listen));
        assert_eq!(s.local.to_string(), "/tmp/pt15cap.sock");
        assert_eq!((s.inode, s.recv_q, s.send_q, s.uid), (3338679, 1, 7, 0));
        assert_eq!((s.remote.as_ref(), s.peer.as_ref()), (None, None));
        let u = s.unix().unwrap();
        assert_eq!(u.kind, crate::model::UnixType::Stream);
        // As stat(2) reports the file: st_dev 65024 (254:0), st_ino 10010849.
        assert_eq!(u.vfs, Some(Vfs { dev: 65024, ino: 10010849 }));
        assert_eq!(u.pending, [3338680]);
        assert_eq!(s.exposure, crate::model::Exposure::Loopback);
    }

    #[test]
    fn decodes_a_promiscuous_packet_socket() {
        let s = packet_socket(one(PACKET_PROMISC).payload).unwrap();
        assert_eq!((s.proto, s.state, s.inode), (Proto::Packet, State::Unconn, 3338682));
        assert_eq!(s.local.link(), Some(LinkAddr { ifindex: 1, protocol: 0x0806 }));
        let p = s.packet().unwrap();
        assert_eq!((p.kind, p.running, p.promiscuous, p.version), (PacketType::Dgram, true, true, 1));
        assert_eq!((p.rx_ring, p.fanout), (None, None));
        assert_eq!(s.exposure, crate::model::Exposure::Address);
    }

    #[test]
    fn unix_names_and_devices() {
        assert_eq!(unix_name(b""), UnixName::unnamed());
        assert_eq!(unix_name(b"\0bus\0x"), UnixName::abstract_name("bus\0x"));
        assert_eq!(unix_name(b"/run/a.sock\0\0junk"), UnixName::path("/run/a.sock"));
        assert_eq!(unix_name(b"rel.sock"), UnixName::path("rel.sock"));
        // MKDEV(8, 1) (sda1) and a minor above 255, as glibc's makedev.
        assert_eq!(user_dev(8 << 20 | 1), 0x801);
        assert_eq!(user_dev(259 << 20 | 300), (259 << 8) | 0x2c | (1 << 20));
    }

    #[test]
    fn raw_sockets_carry_a_protocol_not_a_port() {
        // An ICMP raw socket as inet_diag reports it: sport = protocol 1.
        let mut buf = V4_TIME_WAIT.to_vec();
        buf[NLMSG_HDRLEN + 1] = 7;
        buf[NLMSG_HDRLEN + 2] = 0;
        buf[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].copy_from_slice(&[0, 1, 0, 0]);
        buf[NLMSG_HDRLEN + 24..NLMSG_HDRLEN + 28].copy_from_slice(&[0, 0, 0, 0]);
        let s = socket(Proto::Raw, one(&buf).payload).unwrap();
        assert_eq!((s.state, s.port(), s.raw_protocol(), s.remote.as_ref()), (State::Unconn, 0, Some(1), None));
    }

    proptest::proptest! {
        /// Kernel bytes are not trusted: any buffer splits into messages or
        /// errors, and any payload decodes or errors, never a panic.
        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            for msg in messages(&buf).flatten() {
                let _ = socket(Proto::Tcp, msg.payload);
                let _ = socket(Proto::Raw, msg.payload);
                let _ = unix_socket(msg.payload);
                let _ = packet_socket(msg.payload);
                let _ = error_code(msg.payload);
                let _ = bound_ifindex(msg.payload);
            }
            let _ = socket(Proto::Udp, &buf);
            let _ = unix_socket(&buf);
            let _ = packet_socket(&buf);
            let _ = unix_name(&buf);
            let _ = bound_ifindex(&buf);
        }

        /// Real unix and packet replies with a byte changed and cut short.
        #[test]
        fn mangled_unix_and_packet_replies_never_panic(
            at in 0usize..PACKET_PROMISC.len(),
            byte in proptest::num::u8::ANY,
            cut in 0usize..PACKET_PROMISC.len(),
        ) {
            for real in [UNIX_LISTENER, PACKET_PROMISC] {
                let mut buf = real.to_vec();
                buf[at % real.len()] = byte;
                buf.truncate(cut.max(1));
                for msg in messages(&buf).flatten() {
                    let _ = unix_socket(msg.payload);
                    let _ = packet_socket(msg.payload);
                }
            }
        }

        /// A real message with its attributes and length fields mangled.
        #[test]
        fn mangled_real_replies_never_panic(
            at in 0usize..V6_LISTENER.len(),
            byte in proptest::num::u8::ANY,
            cut in 0usize..V6_LISTENER.len(),
        ) {
            let mut buf = V6_LISTENER.to_vec();
            buf[at] = byte;
            buf.truncate(cut.max(1));
            for msg in messages(&buf).flatten() {
                let _ = socket(Proto::Tcp, msg.payload);
            }
        }
    }

    fn hex(parts: &[&str]) -> Vec<u8> {
        let h: String = parts.concat();
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn decodes_a_full_accept_queue() {
        let buf = hex(LISTENER_FULL_HEX);
        let s = socket(Proto::Tcp, one(&buf).payload).unwrap();
        assert_eq!((s.state, s.recv_q, s.send_q), (State::Listen, 2, 1));
        let q = s.accept_queue().unwrap();
        assert_eq!((q.queued, q.backlog, q.full, q.near_full), (2, 1, true, false));
        // A listener has tcp_info too (asked for), with its congestion algorithm.
        assert_eq!(s.tcp_info().unwrap().congestion.as_deref(), Some("bbr"));
        // The listener counts the third client's packet it refused as a drop.
        let m = s.skmem().unwrap();
        assert_eq!(m.drops, 1);
        assert!(m.rcvbuf > 0 && m.sndbuf > 0, "{m:?}");
    }

    #[test]
    fn decodes_tcp_info_congestion_and_socket_memory() {
        let buf = hex(ESTABLISHED_HEX);
        let s = socket(Proto::Tcp, one(&buf).payload).unwrap();
        assert_eq!(s.state, State::Established);
        assert!(s.accept_queue().is_none(), "only listeners have an accept queue");
        let i = s.tcp_info().unwrap();
        assert_eq!(i.congestion.as_deref(), Some("bbr"));
        assert!(matches!(i.congestion, Some(Cow::Borrowed(_))), "a known name needs no allocation");
        assert_eq!((i.snd_mss, i.rcv_mss, i.unacked, i.lost, i.reordering), (32768, 1000, 0, 0, 3));
        assert_eq!((i.rtt_us, i.snd_cwnd, i.bytes_received, i.bytes_sent), (18, 10, Some(1000), Some(0)));
        assert_eq!(i.pacing_rate, Some(52_025_596_899));
        assert_eq!(
            (i.delivery_rate, i.busy_time_us, i.rwnd_limited_us, i.sndbuf_limited_us),
            (Some(0), Some(0), Some(0), Some(0))
        );
        let m = s.skmem().unwrap();
        assert_eq!((m.rmem_alloc, m.rcvbuf, m.sndbuf, m.fwd_alloc, m.drops), (1832, 131072, 3939840, 2264, 0));
        // A kernel with the original 104-byte tcp_info: the later fields unknown.
        let info = decode_tcp_info(&[0u8; 104]).unwrap();
        assert_eq!((info.pacing_rate, info.delivery_rate, info.bytes_received), (None, None, None));
        let mut unpaced = [0u8; 112];
        unpaced[104..112].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(decode_tcp_info(&unpaced).unwrap().pacing_rate, None, "~0 is no pacing limit");
        assert_eq!(congestion_name(b"my-cc\0\0"), "my-cc");
    }

    #[test]
    fn decodes_udp_drops() {
        let buf = hex(UDP_DROPPING_HEX);
        let s = socket(Proto::Udp, one(&buf).payload).unwrap();
        assert_eq!((s.state, s.port()), (State::Unconn, 5353));
        assert!(s.tcp_info().is_none() && s.accept_queue().is_none());
        let m = s.skmem().unwrap();
        assert_eq!((m.rmem_alloc, m.rcvbuf, m.drops), (1280, 2304, 19));
        assert_eq!(s.drops(), 19);
        // Short or absent memory arrays.
        assert_eq!(decode_skmem(&[1, 0, 0, 0, 2, 0, 0, 0]), None);
        assert_eq!(decode_skmem(&[7u8; 16]).map(|m| (m.rmem_alloc, m.drops)), Some((0x0707_0707, 0)));
    }

    proptest::proptest! {
        /// Attribute payloads are the kernel's to choose: any bytes after a
        /// valid message header decode or fail, never panic.
        #[test]
        fn random_attributes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let base = hex(ESTABLISHED_HEX);
            let mut payload = base[NLMSG_HDRLEN..NLMSG_HDRLEN + INET_DIAG_MSG_LEN].to_vec();
            payload.extend_from_slice(&tail);
            let _ = socket(Proto::Tcp, &payload);
            let _ = socket(Proto::Udp, &payload);
            let _ = decode_tcp_info(&tail);
            let _ = decode_skmem(&tail);
        }
    }
}
