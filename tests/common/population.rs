//! A socket population in a network namespace of its own, for the filter
//! tests: listeners on IPv4, IPv6, dual-stack and IPv6-only addresses, TCP
//! connections from several source addresses (IPv4-mapped ones included),
//! sockets in TIME_WAIT, CLOSE_WAIT, FIN_WAIT2 and FIN_WAIT1, bound and
//! connected UDP, a socket bound to a device and sockets with marks.
//! Every socket is held by this test process; dropping the population
//! closes them and deletes the namespace.
//!
//! | port | sockets |
//! |---|---|
//! | 22 | TCP listener 127.0.0.1, two connections from 127.0.0.1 |
//! | 80 | TCP listener 0.0.0.0; from 193.233.8.1 (established), from 193.233.7.10 (the server's end in FIN_WAIT1), three TIME_WAIT from 127.0.0.7 |
//! | 443 | TCP listener [::] dual stack; from 127.0.0.1 (mapped), from 193.233.7.11 (mapped, server in FIN_WAIT1), from [fd00:1::6] |
//! | 5432 | TCP listener 10.0.0.5; from 10.0.0.6:30000 (fixed port), from 10.0.0.6 (half closed: CLOSE_WAIT / FIN_WAIT2) |
//! | 7000 | TCP listener 10.0.0.6, SO_BINDTODEVICE lo, mark 0x3 |
//! | 8080 | TCP listener [::1] IPv6 only; one connection from [::1] (mark 0x2 on the client) |
//! | 9090 | TCP listener [fd00::5] IPv6 only; one connection from [fd00:1::6] |
//! | 53, 5353, 123 | UDP 127.0.0.1, [::] dual stack, 10.0.0.5; 10.0.0.6:40000 connected to 10.0.0.5:123 |
//! | 161 | UDP 10.0.0.5 bound to lo, mark 0x1 |

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

use super::*;

/// Addresses put on the namespace's `lo`.
pub const ADDRESSES: [&str; 7] = [
    "10.0.0.5/32",
    "10.0.0.6/32",
    "193.233.7.10/32",
    "193.233.7.11/32",
    "193.233.8.1/32",
    "fd00::5/128",
    "fd00:1::6/128",
];

pub struct Population {
    // Field order is drop order: sockets before the namespace.
    pub listeners: Vec<TcpListener>,
    pub streams: Vec<TcpStream>,
    pub udp: Vec<UdpSocket>,
    pub ns: Netns,
    /// When the TIME_WAIT sockets were made: they last 60 s.
    pub built: std::time::Instant,
}

fn a(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| panic!("{s} is not a socket address"))
}

impl Population {
    /// Builds it and waits until the kernel shows every state it should.
    pub fn new() -> Population {
        require_root();
        let ns = Netns::new();
        for addr in ADDRESSES {
            let mut cmd = Command::new("ip");
            cmd.args(["-n", ns.name(), "addr", "add", addr, "dev", "lo"]);
            if addr.contains(':') {
                cmd.arg("nodad");
            }
            output(&mut cmd).expect_code(0);
        }
        let (listeners, mut streams, udp, fin_wait1) = in_netns(&ns, build);
        // The server ends towards 193.233.7.0/24 lose their FINs (and
        // everything else they send there), so they stay in FIN_WAIT1:
        // shut down but held (an orphan would give up within a minute).
        let nft = |rule: &str| {
            output(ns.command("nft").args(rule.split(' '))).expect_code(0);
        };
        nft("add table inet portctl_t");
        nft("add chain inet portctl_t out { type filter hook output priority 0 ; }");
        nft("add rule inet portctl_t out ip daddr 193.233.7.0/24 tcp sport { 80, 443 } drop");
        for s in &fin_wait1 {
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        }
        streams.extend(fin_wait1);
        let pop =
            Population { listeners, streams: std::mem::take(&mut streams), udp, ns, built: std::time::Instant::now() };
        let count = |state: &str| {
            let run = output(pop.ns.command("ss").args(["-tuanH", "state", state]));
            parse_ss(&run.expect_code(0).stdout).len()
        };
        let mut seen = (0, 0, 0, 0);
        let start = std::time::Instant::now();
        while seen != (2, 3, 1, 1) {
            seen = (count("fin-wait-1"), count("time-wait"), count("close-wait"), count("fin-wait-2"));
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "FIN_WAIT1, TIME_WAIT, CLOSE_WAIT, FIN_WAIT2: want (2, 3, 1, 1), have {seen:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        pop
    }
}

type Built = (Vec<TcpListener>, Vec<TcpStream>, Vec<UdpSocket>, Vec<TcpStream>);

/// Runs inside the namespace: every socket.
fn build() -> Built {
    let mut listeners = Vec::new();
    let mut streams = Vec::new();
    let mut fin_wait1 = Vec::new();
    let l = |addr: &str, v6only: Option<bool>| tcp_listener(a(addr), v6only, 64);
    let l22 = l("127.0.0.1:22", None);
    let l80 = l("0.0.0.0:80", None);
    let l443 = l("[::]:443", Some(false));
    let l5432 = l("10.0.0.5:5432", None);
    let l7000 = l("10.0.0.6:7000", None);
    bind_to_device(l7000.as_raw_fd(), "lo").expect("SO_BINDTODEVICE lo");
    set_int_option(l7000.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, 3).expect("SO_MARK");
    let l8080 = l("[::1]:8080", Some(true));
    let l9090 = l("[fd00::5]:9090", Some(true));
    // (listener, client source, destination): client and accepted end kept.
    let connect = |listener: &TcpListener, src: &str, dst: &str| -> (TcpStream, TcpStream) {
        let c = tcp_connect_from(a(src), a(dst));
        let (s, _) = listener.accept().expect("accept");
        (c, s)
    };
    for _ in 0..2 {
        let (c, s) = connect(&l22, "127.0.0.1:0", "127.0.0.1:22");
        streams.extend([c, s]);
    }
    let (c, s) = connect(&l80, "193.233.8.1:0", "10.0.0.5:80");
    streams.extend([c, s]);
    let (c, s) = connect(&l80, "193.233.7.10:0", "10.0.0.5:80");
    streams.push(c);
    fin_wait1.push(s);
    let (c, s) = connect(&l443, "127.0.0.1:0", "127.0.0.1:443");
    streams.extend([c, s]);
    let (c, s) = connect(&l443, "193.233.7.11:0", "10.0.0.5:443");
    streams.push(c);
    fin_wait1.push(s);
    let (c, s) = connect(&l443, "[fd00:1::6]:0", "[fd00::5]:443");
    streams.extend([c, s]);
    let (c, s) = connect(&l5432, "10.0.0.6:30000", "10.0.0.5:5432");
    streams.extend([c, s]);
    let (c, s) = connect(&l5432, "10.0.0.6:0", "10.0.0.5:5432");
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    streams.extend([c, s]);
    let (c, s) = connect(&l8080, "[::1]:0", "[::1]:8080");
    set_int_option(c.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, 2).expect("SO_MARK");
    streams.extend([c, s]);
    let (c, s) = connect(&l9090, "[fd00:1::6]:0", "[fd00::5]:9090");
    streams.extend([c, s]);
    // TIME_WAIT on the client side: it closes first, then the server.
    for _ in 0..3 {
        let (c, mut s) = connect(&l80, "127.0.0.7:0", "127.0.0.1:80");
        drop(c);
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).expect("read the FIN"), 0);
        drop(s);
    }
    listeners.extend([l22, l80, l443, l5432, l7000, l8080, l9090]);
    let u = |addr: &str, v6only| udp_socket(a(addr), v6only);
    let connected = u("10.0.0.6:40000", None);
    connected.connect(a("10.0.0.5:123")).expect("connect UDP");
    let u161 = u("10.0.0.5:161", None);
    bind_to_device(u161.as_raw_fd(), "lo").expect("SO_BINDTODEVICE lo");
    set_int_option(u161.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, 1).expect("SO_MARK");
    let udp = vec![u("127.0.0.1:53", None), u("[::]:5353", Some(false)), u("10.0.0.5:123", None), connected, u161];
    (listeners, streams, udp, fin_wait1)
}
