//! Fallback for kernels without sock_diag: `/proc/net/{tcp,tcp6,udp,udp6}`,
//! `unix` and `packet`; and the only source of ICMP ("ping") sockets
//! (`icmp`, `icmp6`) and, on kernels without raw_diag, of raw ones (`raw`,
//! `raw6`).
//!
//! Slower (the kernel formats text for every socket, and nothing is filtered
//! in the kernel) and poorer (no IPV6_V6ONLY, no tcp_info), so it is only used
//! when sock_diag is unavailable, and the caller says so on stderr.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Expr, matches};
// Conditions beyond the ends are refused before this reader is used.
use crate::model::{
    Addr, Detail, Endpoint, Family, LinkAddr, PacketDetail, PacketType, Proto, RawDetail, Socket, State, Timer,
    TimerKind, UnixDetail, UnixName, UnixType,
};

pub fn read(proto: Proto, family: Family, states: u32, filter: Option<&Expr>, out: &mut Vec<Socket>) -> io::Result<()> {
    let file = match (proto, family) {
        (Proto::Tcp, Family::Ipv4) => "tcp",
        (Proto::Tcp, Family::Ipv6) => "tcp6",
        (Proto::Udp, Family::Ipv4) => "udp",
        (Proto::Udp, Family::Ipv6) => "udp6",
        (Proto::Raw, Family::Ipv4) => "raw",
        (Proto::Raw, Family::Ipv6) => "raw6",
        (Proto::Icmp, Family::Ipv4) => "icmp",
        (Proto::Icmp, Family::Ipv6) => "icmp6",
        // Nothing else has a table of this shape.
        _ => return Ok(()),
    };
    let Some(text) = read_table(file)? else { return Ok(()) };
    let ms_per_tick = 1000 / clock_ticks();
    for line in text.lines().skip(1) {
        let Some(s) = parse_line(proto, family, line, ms_per_tick) else { continue };
        if states & (1 << kernel_state(line)) == 0 {
            continue;
        }
        if filter.is_none_or(|f| matches(f, &s)) {
            out.push(s);
        }
    }
    Ok(())
}

/// `/proc/net/NAME`; `None` when the kernel has no such table (no IPv6,
/// no packet sockets): nothing to list, not an error.
fn read_table(name: &str) -> io::Result<Option<String>> {
    // The calling thread's namespace: a thread may have entered another
    // one (setns) while /proc/net names the process's.
    match std::fs::read(format!("/proc/thread-self/net/{name}")) {
        // Names in /proc/net/unix are bytes, not always UTF-8.
        Ok(t) => Ok(Some(String::from_utf8_lossy(&t).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/proc/net/unix`: sockets in the kernel states of `states`. No peers,
/// queues, uid or bound file there: those need sock_diag.
pub fn read_unix(states: u32, out: &mut Vec<Socket>) -> io::Result<()> {
    let Some(text) = read_table("unix")? else { return Ok(()) };
    for line in text.lines().skip(1) {
        let Some(s) = parse_unix_line(line) else { continue };
        if states & (1 << s.state.kernel_number()) != 0 {
            out.push(s);
        }
    }
    Ok(())
}

/// `Num RefCount Protocol Flags Type St Inode [Path]`, e.g.
/// `0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/a.sock`.
/// Flags 0x10000 (`__SO_ACCEPTCON`) marks a listener; `St` is the socket
/// state (1 unconnected, 2 connecting, 3 connected, 4 disconnecting). The
/// kernel prints an abstract name with `@` for its leading NUL (and for any
/// other NUL in it), and a path as it is, spaces included; a path with a
/// newline in it breaks the line, whose pieces are then skipped.
fn parse_unix_line(line: &str) -> Option<Socket> {
    let mut rest = line.trim_start();
    let mut field = || -> Option<&str> {
        let end = rest.find(' ')?;
        let f = &rest[..end];
        rest = rest[end..].trim_start_matches(' ');
        Some(f)
    };
    let num = field()?;
    if !num.ends_with(':') {
        return None;
    }
    let _refcount = field()?;
    let _protocol = field()?;
    let flags = u32::from_str_radix(field()?, 16).ok()?;
    let kind = UnixType::from_kernel(u8::from_str_radix(field()?, 16).ok()?)?;
    let st = u8::from_str_radix(field()?, 16).ok()?;
    // The inode is the last field when there is no path.
    let (inode, path) = match rest.find(' ') {
        Some(end) => (&rest[..end], Some(&rest[end + 1..])),
        None => (rest, None),
    };
    let inode: u64 = inode.trim_end().parse().ok()?;
    let name = match path {
        None | Some("") => UnixName::unnamed(),
        Some(p) => match p.strip_prefix('@') {
            Some(a) => UnixName::abstract_name(a),
            None => UnixName::path(p),
        },
    };
    let state = if flags & 0x10000 != 0 {
        State::Listen
    } else {
        match st {
            2 => State::SynSent,
            3 => State::Established,
            _ => State::Unconn,
        }
    };
    let mut s = Socket::new(Proto::Unix, Family::Unix, state, Addr::from_unix(name), None);
    s.inode = inode;
    s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind, vfs: None, pending: Vec::new() })));
    Some(s)
}

/// `/proc/net/packet`: `sk RefCnt Type Proto Iface R Rmem User Inode`.
pub fn read_packet(out: &mut Vec<Socket>) -> io::Result<()> {
    let Some(text) = read_table("packet")? else { return Ok(()) };
    let mut names = std::collections::HashMap::new();
    for line in text.lines().skip(1) {
        let Some(mut s) = parse_packet_line(line) else { continue };
        let ifindex = s.local.link().map_or(0, |l| l.ifindex);
        if ifindex != 0 {
            s.interface = names
                .entry(ifindex)
                .or_insert_with(|| crate::sys::interface_name(ifindex).map(crate::model::IfName::from))
                .clone();
        }
        out.push(s);
    }
    Ok(())
}

fn parse_packet_line(line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 9 {
        return None;
    }
    let kind = match f[2].parse::<i32>().ok()? {
        libc::SOCK_RAW => PacketType::Raw,
        libc::SOCK_DGRAM => PacketType::Dgram,
        _ => return None,
    };
    let protocol = u16::from_str_radix(f[3], 16).ok()?;
    let ifindex: u32 = f[4].parse().ok()?;
    let running = f[5] == "1";
    let uid = f[7].parse().ok()?;
    let inode = f[8].parse().ok()?;
    let local = Addr::Link(LinkAddr { ifindex, protocol });
    let mut s = Socket::new(Proto::Packet, Family::Packet, State::Unconn, local, None);
    s.inode = inode;
    s.uid = uid;
    s.detail = Some(Box::new(Detail::Packet(PacketDetail {
        kind,
        running,
        promiscuous: false,
        version: 1,
        rx_ring: None,
        tx_ring: None,
        fanout: None,
    })));
    Some(s)
}

fn clock_ticks() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        t @ 1..=1000 => t,
        _ => 100,
    }
}

fn kernel_state(line: &str) -> u32 {
    line.split_whitespace().nth(3).and_then(|s| u32::from_str_radix(s, 16).ok()).unwrap_or(0).min(31)
}

/// Parses one row; None for a malformed one (skipped, never a panic).
fn parse_line(proto: Proto, family: Family, line: &str, ms_per_tick: u64) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let local = endpoint(family, f[1])?;
    let remote = endpoint(family, f[2])?;
    let state = State::from_kernel(proto, u8::from_str_radix(f[3], 16).ok()?);
    let (tx, rx) = f[4].split_once(':')?;
    let (tr, when) = f[5].split_once(':')?;
    let retrans = u8::from_str_radix(f[6], 16).unwrap_or(0);
    let uid = f[7].parse().ok()?;
    let inode = f[9].parse().ok()?;
    let kind = TimerKind::from_kernel(u8::from_str_radix(tr, 16).ok()?);
    let ticks = u64::from_str_radix(when, 16).unwrap_or(0);
    let timer = kind.map(|kind| Timer {
        kind,
        expires_ms: (ticks * ms_per_tick).min(u32::MAX as u64) as u32,
        retrans: if kind == TimerKind::Retransmit { retrans } else { 0 },
    });
    // Raw sockets' "port" is their protocol; ICMP sockets' the echo id.
    let (local, remote, detail) = match proto {
        Proto::Raw | Proto::Icmp => {
            let protocol = match (proto, family) {
                (Proto::Icmp, Family::Ipv4) => libc::IPPROTO_ICMP as u8,
                (Proto::Icmp, _) => libc::IPPROTO_ICMPV6 as u8,
                _ => local.port as u8,
            };
            let detail = Some(Box::new(Detail::Raw(RawDetail { protocol })));
            (Endpoint { port: 0, ..local }, Endpoint { port: 0, ..remote }, detail)
        }
        _ => (local, remote, None),
    };
    let unconnected =
        matches!(state, State::Listen | State::Unconn) && remote.port == 0 && remote.addr.is_unspecified();
    let mut s = Socket::new(proto, family, state, local.into(), (!unconnected).then_some(remote.into()));
    s.detail = detail;
    s.inode = inode;
    s.uid = uid;
    // For listeners rx_queue is the accept queue, as in sock_diag; the
    // backlog limit is not in /proc/net, so send_q stays 0 there.
    s.recv_q = u32::from_str_radix(rx, 16).ok()?;
    s.send_q = if state == State::Listen { 0 } else { u32::from_str_radix(tx, 16).ok()? };
    s.timer = timer;
    Some(s)
}

/// `0100007F:1F90` -> 127.0.0.1:8080. Address words are in host byte order.
fn endpoint(family: Family, s: &str) -> Option<Endpoint> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let addr = match family {
        Family::Ipv4 if a.len() == 8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(a, 16).ok()?.to_ne_bytes())),
        Family::Ipv6 if a.len() == 32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                let w = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(Endpoint { addr, port })
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::model::Exposure;

    // Rows recorded from /proc/net/tcp and tcp6 on x86_64.
    const TCP_LISTEN: &str = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
    const TCP_TW: &str = "   1: 0100007F:9C40 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000";
    const TCP6_DUAL: &str = "   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
    const TCP6_V4MAPPED: &str = "   2: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 888 1 0000000000000000 20 4 30 10 -1";

    #[test]
    fn listener_v4() {
        let s = parse_line(Proto::Tcp, Family::Ipv4, TCP_LISTEN, 10).unwrap();
        assert_eq!(s.local.to_string(), "127.0.0.1:8080");
        assert_eq!(s.state, State::Listen);
        assert_eq!(s.remote, None);
        assert_eq!((s.uid, s.inode), (1000, 123456));
        assert_eq!(s.exposure, Exposure::Loopback);
    }

    #[test]
    fn time_wait_timer_in_ticks() {
        let s = parse_line(Proto::Tcp, Family::Ipv4, TCP_TW, 10).unwrap();
        assert_eq!(s.state, State::TimeWait);
        // 0x1770 = 6000 ticks of 10 ms
        assert_eq!(s.timer, Some(Timer { kind: TimerKind::TimeWait, expires_ms: 60000, retrans: 0 }));
        assert_eq!(s.remote_ip().unwrap().port, 8080);
    }

    #[test]
    fn ipv6_rows() {
        let s = parse_line(Proto::Tcp, Family::Ipv6, TCP6_DUAL, 10).unwrap();
        assert_eq!(s.local.to_string(), "[::]:443");
        assert_eq!(s.exposure, Exposure::Wildcard);
        assert_eq!(s.v6only, None);
        let s = parse_line(Proto::Tcp, Family::Ipv6, TCP6_V4MAPPED, 10).unwrap();
        assert_eq!(s.local.to_string(), "[::ffff:127.0.0.1]:8080");
        assert_eq!(s.exposure, Exposure::Loopback);
        assert_eq!(s.state, State::Established);
    }

    #[test]
    fn malformed_rows_are_skipped() {
        for bad in ["", "garbage", "  0: 0100007F 00000000:0000 0A", "  0: XYZ:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1"] {
            assert!(parse_line(Proto::Tcp, Family::Ipv4, bad, 10).is_none(), "{bad}");
        }
        assert!(parse_line(Proto::Tcp, Family::Ipv6, TCP_LISTEN, 10).is_none());
    }

    // Rows recorded from /proc/net/unix, packet, raw and icmp on Linux 6.18.
    const UNIX_ROWS: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 2093975 /tmp/pt15/app.sock
0000000000000000: 00000002 00000000 00000000 0002 01 2093982 /tmp/pt15/dgram.sock
0000000000000000: 00000002 00000000 00010000 0005 01 2093981 @portctl-test-abs
0000000000000000: 00000003 00000000 00000000 0001 03 2093943
0000000000000000: 00000003 00000000 00000000 0001 03  1072
0000000000000000: 00000002 00000000 00000000 0001 01 2093990 /tmp/with two  spaces
";
    const PACKET_ROW: &str = "ffff8a1bc3f4a000 3        3      0003   0     1      0 0      2093988";
    const RAW_ROW: &str = "   1: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2093986 2 0000000000000000 0";
    const ICMP_ROW: &str = "  25: 0100007F:3039 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 77 2 0000000000000000 0";

    #[test]
    fn unix_rows() {
        let v: Vec<Socket> = UNIX_ROWS.lines().skip(1).filter_map(parse_unix_line).collect();
        let seen: Vec<(String, State, u64)> = v.iter().map(|s| (s.local.to_string(), s.state, s.inode)).collect();
        assert_eq!(
            seen,
            [
                ("/tmp/pt15/app.sock".to_string(), State::Listen, 2093975),
                ("/tmp/pt15/dgram.sock".to_string(), State::Unconn, 2093982),
                ("@portctl-test-abs".to_string(), State::Listen, 2093981),
                ("*".to_string(), State::Established, 2093943),
                ("*".to_string(), State::Established, 1072),
                ("/tmp/with two  spaces".to_string(), State::Unconn, 2093990),
            ]
        );
        assert_eq!(v[1].unix().map(|u| u.kind), Some(UnixType::Dgram));
        assert_eq!(v[2].unix().map(|u| u.kind), Some(UnixType::Seqpacket));
        assert!(v[2].unix_name().unwrap().is_abstract);
        assert!(parse_unix_line("Num       RefCount Protocol Flags    Type St Inode Path").is_none());
    }

    #[test]
    fn packet_raw_and_icmp_rows() {
        let p = parse_packet_line(PACKET_ROW).unwrap();
        assert_eq!((p.inode, p.local.link().map(|l| (l.ifindex, l.protocol))), (2093988, Some((0, 3))));
        assert_eq!(p.packet().map(|d| (d.kind, d.running)), Some((PacketType::Raw, true)));
        let r = parse_line(Proto::Raw, Family::Ipv4, RAW_ROW, 10).unwrap();
        assert_eq!(
            (r.local.to_string(), r.raw_protocol(), r.state, r.remote),
            ("0.0.0.0:0".into(), Some(1), State::Unconn, None)
        );
        let i = parse_line(Proto::Icmp, Family::Ipv4, ICMP_ROW, 10).unwrap();
        assert_eq!((i.local.to_string(), i.raw_protocol(), i.uid), ("127.0.0.1:0".into(), Some(1), 1000));
    }

    proptest::proptest! {
        /// /proc/net rows come from the kernel, but any text must parse or
        /// be skipped, never panic.
        #[test]
        fn random_rows_never_panic(line in "\\PC{0,200}") {
            for proto in [Proto::Tcp, Proto::Udp, Proto::Raw, Proto::Icmp] {
                for family in Family::IP {
                    let _ = parse_line(proto, family, &line, 10);
                }
            }
            let _ = kernel_state(&line);
            let _ = parse_unix_line(&line);
            let _ = parse_packet_line(&line);
        }

        /// Unix rows with random names (paths may hold anything but a NUL).
        #[test]
        fn unix_rows_with_any_name_parse(name in "[^\\x00\\n]{0,120}", flags in 0u32..0x20000, st in 0u8..6) {
            let line = format!("0000000000000000: 00000002 00000000 {flags:08X} 0001 {st:02X} 123 {name}");
            let s = parse_unix_line(&line);
            proptest::prop_assert!(s.is_some());
        }

        #[test]
        fn rows_of_hex_fields_never_panic(fields in proptest::collection::vec("[0-9A-Fa-f:]{0,40}", 0..14)) {
            let line = fields.join(" ");
            let _ = parse_line(Proto::Tcp, Family::Ipv6, &line, 10);
            let _ = parse_line(Proto::Udp, Family::Ipv4, &line, 1);
        }
    }
}
