//! Fallback for kernels without sock_diag: `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! Slower (the kernel formats text for every socket, and nothing is filtered
//! in the kernel) and poorer (no IPV6_V6ONLY, no tcp_info), so it is only used
//! when sock_diag is unavailable, and the caller says so on stderr.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Expr, matches};
// Conditions beyond the ends are refused before this reader is used.
use crate::model::{Endpoint, Family, Proto, Socket, State, Timer, TimerKind};

pub fn read(proto: Proto, family: Family, states: u32, filter: Option<&Expr>, out: &mut Vec<Socket>) -> io::Result<()> {
    let file = match (proto, family) {
        (Proto::Tcp, Family::Ipv4) => "tcp",
        (Proto::Tcp, Family::Ipv6) => "tcp6",
        (Proto::Udp, Family::Ipv4) => "udp",
        (Proto::Udp, Family::Ipv6) => "udp6",
        // Nothing else has a table of this shape.
        _ => return Ok(()),
    };
    let text = match std::fs::read_to_string(format!("/proc/thread-self/net/{file}")) {
        Ok(t) => t,
        // No IPv6 on this host: nothing to list, not an error.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
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
    let unconnected =
        matches!(state, State::Listen | State::Unconn) && remote.port == 0 && remote.addr.is_unspecified();
    let mut s = Socket::new(proto, family, state, local.into(), (!unconnected).then_some(remote.into()));
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

    proptest::proptest! {
        /// /proc/net rows come from the kernel, but any text must parse or
        /// be skipped, never panic.
        #[test]
        fn random_rows_never_panic(line in "\\PC{0,200}") {
            for proto in [Proto::Tcp, Proto::Udp] {
                for family in Family::IP {
                    let _ = parse_line(proto, family, &line, 10);
                }
            }
            let _ = kernel_state(&line);
        }

        #[test]
        fn rows_of_hex_fields_never_panic(fields in proptest::collection::vec("[0-9A-Fa-f:]{0,40}", 0..14)) {
            let line = fields.join(" ");
            let _ = parse_line(Proto::Tcp, Family::Ipv6, &line, 10);
            let _ = parse_line(Proto::Udp, Family::Ipv4, &line, 1);
        }
    }
}
