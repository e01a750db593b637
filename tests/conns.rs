//! `portctl conns` against real sockets: connections the test makes on
//! loopback, kernel-side filters in a namespace of the test's own, and `ss`
//! as an oracle on a namespace holding a few thousand sockets.
//!
//! JSON output is deserialised into `portctl::model::Socket`, whose
//! `deny_unknown_fields` makes every such test a check of the JSON contract.

mod common;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use portctl::model::{Endpoint, Proto, Socket, State, TimerKind};

fn conns(args: &[&str]) -> Portctl {
    Portctl::new(["conns"]).args(args)
}

fn ep(s: SocketAddr) -> Endpoint {
    Endpoint { addr: s.ip(), port: s.port() }
}

/// (state, local, remote) of each socket, sorted.
fn keys(sockets: &[Socket]) -> Vec<(State, Endpoint, Option<Endpoint>)> {
    let mut v: Vec<_> = sockets.iter().map(|s| (s.state, s.local_ip().unwrap(), s.remote_ip())).collect();
    v.sort();
    v
}

/// A TCP connection from `local` (port chosen by the kernel) to `remote`.
fn connect_from(local: IpAddr, remote: SocketAddr) -> TcpStream {
    let (IpAddr::V4(l), SocketAddr::V4(r)) = (local, remote) else { panic!("IPv4 only") };
    // SAFETY: plain syscalls; results checked; the fd is owned right away.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let sin = |a: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let me = sin(l, 0);
        let rc = libc::bind(fd.as_raw_fd(), (&me as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "bind {l}: {}", io::Error::last_os_error());
        let peer = sin(*r.ip(), r.port());
        let rc = libc::connect(fd.as_raw_fd(), (&peer as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect {remote}: {}", io::Error::last_os_error());
        TcpStream::from(fd)
    }
}

/// One established connection on loopback, both ends held by this process.
struct Pair {
    listener: TcpListener,
    client: TcpStream,
    server: TcpStream,
}

impl Pair {
    fn new() -> Pair {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _lock = spawn_lock(); // no fork may copy these descriptors
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        Pair { listener, client, server }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
}

// ---------------------------------------------------------------------------
// 1. Bad input

#[test]
fn bad_input_exits_2_with_one_error_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--state", "listenning"], "did you mean 'listen'"),
        (&["--state", "estab", "--state", "bogus-state"], "bogus-state"),
        (&["--src", "10.0.0.0/33"], "/33"),
        (&["--dst", "::1/129"], "/129"),
        (&["--dst", "10.0.0/8"], "10.0.0"),
        (&["--user", "nosuchuser"], "unknown user 'nosuchuser'"),
        (&["--json", "--user", "nosuchuser"], "nosuchuser"),
        (&["--sport", "1-0"], "1-0"),
        (&["--dport", "9-3"], "backwards"),
        (&["--port", "70000"], "70000"),
        (&["--pid", "abc"], "abc"),
        (&["--process-regex", "ngin(x"], "unclosed group"),
        (&["--json", "--jsonl"], "--jsonl"),
    ];
    for (args, want) in cases {
        let run = conns(args).env("RUST_BACKTRACE", "1").run();
        run.expect_code(2);
        assert_eq!(run.stdout, "", "conns {args:?}: stdout");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "conns {args:?}: want one stderr line\n{}", run.dump());
        assert!(lines[0].starts_with("portctl: error: "), "conns {args:?}: {:?}", lines[0]);
        assert!(lines[0].contains(want), "conns {args:?}: no {want:?} in {:?}", lines[0]);
        assert!(!run.stderr.contains("panicked"), "{}", run.dump());
    }
}

// ---------------------------------------------------------------------------
// 2. Live sockets of this process, in the host's namespace (no root needed):
//    every filter narrows to this test's own port, so other processes'
//    sockets never matter.

#[test]
fn own_connection_is_reported_from_both_ends_with_its_owner() {
    let p = Pair::new();
    let port = p.port().to_string();
    let me = std::process::id();
    let client = (ep(p.client.local_addr().unwrap()), ep(p.client.peer_addr().unwrap()));
    let server = (ep(p.server.local_addr().unwrap()), ep(p.server.peer_addr().unwrap()));

    let run = conns(&["--json", "--port", &port]).run();
    run.expect_code(0);
    let got = run.sockets();
    let want = {
        let mut v =
            vec![(State::Established, client.0, Some(client.1)), (State::Established, server.0, Some(server.1))];
        v.sort();
        v
    };
    assert_eq!(keys(&got), want, "{}", run.dump());
    for s in &got {
        assert_eq!(s.proto, Proto::Tcp);
        assert_eq!(s.owners.iter().map(|o| o.pid).collect::<Vec<_>>(), vec![me], "{s:?}");
        assert!(s.inode != 0 && !s.owners_hidden);
        assert!(s.tcp_info().is_none(), "tcp_info only with --extended");
    }
    // sorted by local port: the listener's side (lower port) need not be first,
    // but the order must follow local ports
    assert!(got.windows(2).all(|w| w[0].port() <= w[1].port()), "{got:?}");

    // --sport / --dport pick one end each; --state adds the listener
    let only = |args: &[&str]| {
        let run = conns(args).run();
        run.expect_code(0);
        keys(&run.sockets())
    };
    assert_eq!(only(&["--json", "--sport", &port]), vec![(State::Established, server.0, Some(server.1))]);
    assert_eq!(only(&["--json", "--dport", &port]), vec![(State::Established, client.0, Some(client.1))]);
    let all = only(&["--json", "--port", &port, "--state", "all"]);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains(&(State::Listen, ep(p.listener.local_addr().unwrap()), None)));
    assert_eq!(only(&["--json", "--port", &port, "--state", "listen"]).len(), 1);
    assert_eq!(only(&["--json", "--port", &port, "--src", "127.0.0.0/8", "--dst", "127.0.0.1"]).len(), 2);
    assert_eq!(only(&["--json", "--port", &port, "-4", "--tcp"]).len(), 2);

    // owner filters
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap().trim_end().to_string();
    let euid = euid().to_string();
    let user = user_name(euid.parse().unwrap());
    for owner_args in [
        vec!["--pid".to_string(), me.to_string()],
        vec!["--pid".into(), "1".into(), "--pid".into(), me.to_string()],
        vec!["--process".into(), comm.clone()],
        vec!["--process-regex".into(), format!("^{}", regex_escape(&comm[..3]))],
        vec!["--user".into(), euid.clone()],
        vec!["--user".into(), user.clone()],
    ] {
        let run = conns(&["--json", "--port", &port]).args(&owner_args).run();
        run.expect_code(0);
        assert_eq!(run.sockets().len(), 2, "{owner_args:?}\n{}", run.dump());
    }

    // nothing matches: exit 1, nothing on stdout, nothing on stderr
    for args in [
        vec!["--port", &port, "--dst", "10.0.0.0/8"],
        vec!["--port", &port, "--state", "time-wait"],
        vec!["--port", &port, "-6"],
        vec!["--port", &port, "--udp"],
        vec!["--port", &port, "--process", "no-such-process"],
        vec!["--port", &port, "--pid", "1"],
        vec!["--port", &port, "--json", "--user", "4000000000"],
    ] {
        let run = conns(&args).run();
        run.expect_code(1);
        assert_eq!(run.stdout.trim(), if args.contains(&"--json") { "[\n]" } else { "" }, "{args:?}");
        assert_eq!(run.stderr, "", "{args:?}");
    }
    drop(p);
}

fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") }).collect()
}

#[test]
fn table_jsonl_and_extended() {
    let p = Pair::new();
    let port = p.port().to_string();
    let me = std::process::id().to_string();

    let run = conns(&["--port", &port]).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(
        header,
        ["PROTO", "STATE", "LOCAL", "REMOTE", "RECV-Q", "SEND-Q", "TIMER", "PID", "PROCESS", "USER"],
        "{}",
        run.dump()
    );
    assert_eq!(rows.len(), 2, "{}", run.dump());
    for r in &rows {
        assert_eq!((r[0].as_str(), r[1].as_str(), r[7].as_str()), ("tcp", "ESTAB", me.as_str()), "{r:?}");
    }
    assert!(rows.iter().any(|r| r[2] == p.server.local_addr().unwrap().to_string()));

    let run = conns(&["--port", &port, "--no-header"]).run();
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.dump());
    assert!(!run.stdout.contains("PROTO"));

    let json = conns(&["--port", &port, "--json"]).run().sockets();
    let jsonl = conns(&["--port", &port, "--jsonl"]).run().jsonl_sockets();
    assert_eq!(keys(&json), keys(&jsonl));

    // --extended: tcp_info for TCP, and five more columns
    let ext = conns(&["--port", &port, "--json", "--extended"]).run();
    ext.expect_code(0);
    for s in ext.sockets() {
        let info = s.tcp_info().unwrap_or_else(|| panic!("no tcp_info with --extended: {s:?}"));
        assert!(info.snd_cwnd > 0, "{info:?}");
        assert!(info.bytes_sent.is_some() && info.bytes_received.is_some(), "{info:?}");
    }
    let run = conns(&["--port", &port, "-e"]).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(
        &header[10..],
        ["RTT", "RETRANS", "CWND", "CC", "MSS", "LOST", "DELIVERY", "SENT", "RECV", "RMEM", "DROPS"],
        "{}",
        run.dump()
    );
    assert!(rows.iter().all(|r| r[10].ends_with("ms") && r[11] == "0/0" && r[20] == "0"), "{}", run.dump());
    drop(p);
}

/// What `ss -tinm` prints for a socket: the congestion algorithm, mss,
/// rcvmss and the skmem fields (rb, tb, d).
#[derive(Debug, Default, PartialEq)]
struct SsInfo {
    cc: Option<String>,
    mss: Option<u32>,
    rcvmss: Option<u32>,
    rb: Option<u32>,
    tb: Option<u32>,
    drops: Option<u32>,
}

fn ss_info(flags: &str, local: SocketAddr) -> SsInfo {
    let run = common::output(std::process::Command::new("ss").args([flags, "-i", "-m", "-n", "-H"]));
    run.expect_code(0);
    let text = run.stdout.replace("\n\t", " ");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(&local.to_string()))
        .unwrap_or_else(|| panic!("no {local} in ss {flags}:\n{}", run.stdout));
    let mut info = SsInfo::default();
    let num = |v: &str| v.parse::<u32>().ok();
    for (i, tok) in line.split_whitespace().enumerate().skip(5) {
        if let Some(m) = tok.strip_prefix("skmem:(") {
            for f in m.trim_end_matches(')').split(',') {
                if let Some(v) = f.strip_prefix("rb") {
                    info.rb = num(v);
                } else if let Some(v) = f.strip_prefix("tb") {
                    info.tb = num(v);
                } else if let Some(v) = f.strip_prefix('d') {
                    info.drops = num(v);
                }
            }
        } else if let Some(v) = tok.strip_prefix("mss:") {
            info.mss = num(v);
        } else if let Some(v) = tok.strip_prefix("rcvmss:") {
            info.rcvmss = num(v);
        } else if i == 6 && tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // The algorithm's name comes right after skmem (ss prints it
            // from INET_DIAG_CONG).
            info.cc = Some(tok.to_string());
        }
    }
    info
}

#[test]
fn extended_adds_congestion_mss_and_socket_memory_as_ss_has_them() {
    let p = Pair::new();
    let port = p.port().to_string();
    let ext = conns(&["--port", &port, "--json", "--extended"]).run();
    ext.expect_code(0);
    let sockets = ext.sockets();
    assert_eq!(sockets.len(), 2, "{}", ext.dump());
    for s in &sockets {
        let local = s.local_ip().unwrap();
        let ss = ss_info("-t", SocketAddr::new(local.addr, local.port));
        let info = s.tcp_info().unwrap();
        let m = s.skmem().unwrap_or_else(|| panic!("--extended: no skmem: {s:?}"));
        let ours = SsInfo {
            cc: info.congestion.as_deref().map(String::from),
            mss: Some(info.snd_mss),
            rcvmss: Some(info.rcv_mss),
            rb: Some(m.rcvbuf),
            tb: Some(m.sndbuf),
            drops: Some(m.drops),
        };
        assert_eq!(ours, ss, "{s:?}");
        assert!(ss.cc.is_some(), "ss names the algorithm");
        assert!(info.pacing_rate.is_some() && info.delivery_rate.is_some() && info.busy_time_us.is_some(), "{info:?}");
        assert!(s.accept_queue().is_none(), "connections have no accept queue");
    }
    // The listener's accept queue, in the same run with --state listen.
    let run = conns(&["--port", &port, "--json", "--state", "listen"]).run();
    run.expect_code(0);
    let l = run.sockets();
    let q = l[0].accept_queue().unwrap_or_else(|| panic!("a TCP listener has accept_queue: {l:?}"));
    assert_eq!((q.queued, q.backlog, q.full), (l[0].recv_q, l[0].send_q, false));

    // A connected UDP socket has socket memory with --extended, no tcp_info.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.connect(p.listener.local_addr().unwrap()).unwrap();
    let uport = u.local_addr().unwrap().port().to_string();
    let run = conns(&["-u", "--sport", &uport, "--json", "--extended"]).run();
    run.expect_code(0);
    let us = run.sockets();
    assert_eq!(us.len(), 1, "{}", run.dump());
    assert!(us[0].tcp_info().is_none());
    assert_eq!(us[0].skmem().map(|m| m.rcvbuf), ss_info("-ua", u.local_addr().unwrap()).rb);
    drop(p);
}

#[test]
fn time_wait_shows_its_timer_and_no_owner() {
    let p = Pair::new();
    let port = p.port().to_string();
    let client_port = p.client.local_addr().unwrap().port().to_string();
    // The side that closes first ends in TIME_WAIT.
    let Pair { listener, client, server } = p;
    drop(client);
    drop(server);
    let args = ["--state", "time-wait", "--dport", &port, "--sport", &client_port, "--json"];
    let mut got = Vec::new();
    wait_until("the client end to reach TIME_WAIT", || {
        let run = conns(&args).run();
        got = if run.code() == 0 { run.sockets() } else { Vec::new() };
        got.len() == 1
    });
    let s = &got[0];
    assert_eq!(s.state, State::TimeWait);
    assert_eq!((s.inode, s.owners.len(), s.owners_hidden), (0, 0, false), "{s:?}");
    let t = s.timer.expect("TIME_WAIT has a timer");
    assert_eq!(t.kind, TimerKind::TimeWait);
    assert!(t.expires_ms > 0 && t.expires_ms <= 60_000, "{t:?}");

    let run = conns(&args[..args.len() - 1]).run();
    run.expect_code(0);
    let row = run.stdout.lines().nth(1).unwrap_or_else(|| panic!("no row\n{}", run.dump()));
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((f[1], f[6]), ("TIME-WAIT", "time_wait"), "{row}");
    assert!(f[7].ends_with('s') && f[7].trim_end_matches('s').parse::<u32>().is_ok_and(|n| n <= 60), "{row}");
    assert_eq!(&f[8..], ["-", "-", "-"], "{row}");
    assert_eq!(run.stderr, "");
    drop(listener);
}

// ---------------------------------------------------------------------------
// 3. Kernel filters, in a namespace of the test's own

#[test]
#[ignore = "needs root"]
fn kernel_filters_return_exactly_the_matching_sockets() {
    require_root();
    let ns = Netns::new();
    // 500 sockets: 480 listeners on 20000-20479, one more on 9000, and 10
    // connections to it (20 sockets), 3 of them from 127.0.0.7.
    let held = in_netns(&ns, || {
        let mut v: Vec<Box<dyn Send>> = Vec::new();
        for port in 20000..20480u16 {
            v.push(Box::new(TcpListener::bind(("127.0.0.1", port)).unwrap()));
        }
        let l = TcpListener::bind("127.0.0.1:9000").unwrap();
        let _lock = spawn_lock();
        for i in 0..10 {
            let from: IpAddr = if i < 3 { "127.0.0.7" } else { "127.0.0.1" }.parse().unwrap();
            v.push(Box::new(connect_from(from, "127.0.0.1:9000".parse().unwrap())));
            v.push(Box::new(l.accept().unwrap().0));
        }
        v.push(Box::new(l));
        v
    });
    assert_eq!(held.len(), 501);
    let total = ss("-tuanH", Some(&ns)).len();
    assert_eq!(total, 501, "sockets in the namespace");

    let run_ns = |args: &[&str]| {
        let run = conns(args).arg("--json").netns(&ns).run();
        // No "reading /proc/net instead" note: the kernel did the filtering.
        assert_eq!(run.stderr, "", "{args:?}\n{}", run.dump());
        run
    };
    // 3 of the 480 listeners, by local port
    let run = run_ns(&["--state", "listen", "--sport", "20007", "--sport", "20123", "--sport", "20479"]);
    run.expect_code(0);
    let got: Vec<(String, Option<Endpoint>)> =
        run.sockets().iter().map(|s| (s.local.to_string(), s.remote_ip())).collect();
    assert_eq!(
        got,
        [("127.0.0.1:20007".to_string(), None), ("127.0.0.1:20123".into(), None), ("127.0.0.1:20479".into(), None)]
    );
    // three server-side ends whose peer is 127.0.0.7, and the three client ends on it
    let by_dst = run_ns(&["--state", "all", "--dst", "127.0.0.7/32"]);
    by_dst.expect_code(0);
    let by_dst = by_dst.sockets();
    assert_eq!(by_dst.len(), 3, "{by_dst:?}");
    assert!(by_dst.iter().all(|s| s.port() == 9000 && s.remote_ip().unwrap().addr.to_string() == "127.0.0.7"));
    let by_src = run_ns(&["--state", "all", "--src", "127.0.0.7"]);
    by_src.expect_code(0);
    let by_src = by_src.sockets();
    assert_eq!(by_src.len(), 3, "{by_src:?}");
    assert!(by_src.iter().all(|s| s.remote_ip().unwrap().port == 9000));
    // --port is either end: the listener and all 20 connection ends
    let either = run_ns(&["--state", "all", "--port", "9000"]);
    assert_eq!(either.sockets().len(), 21);
    // both flags must hold: 127.0.0.7 as source and a local port range that excludes its ports
    let none_args: [&[&str]; 5] = [
        &["--state", "all", "--dst", "10.0.0.0/8"],
        &["--state", "all", "--sport", "1-8999"],
        &["--state", "all", "--src", "127.0.0.7", "--sport", "9000"],
        &["--state", "listen", "--sport", "20480-20999"],
        &["--state", "all", "-6"],
    ];
    for args in none_args {
        let run = run_ns(args);
        run.expect_code(1);
        assert_eq!(run.stdout.trim(), "[\n]", "{args:?}");
    }
    let run = run_ns(&["--state", "listen", "--sport", "20000-20479"]);
    assert_eq!(run.sockets().len(), 480);
    let run = run_ns(&[]);
    assert_eq!(run.sockets().len(), 20, "default: established only");
    drop(held);
}

// ---------------------------------------------------------------------------
// 4. Oracle: ss, on a namespace with a few thousand sockets in several states

/// (proto, ss state label, local, remote) -> owner pids, sorted: a multiset,
/// since UDP sockets can share all four.
type Row = ((Proto, String, Endpoint, Option<Endpoint>), BTreeSet<u32>);

fn mine(sockets: &[Socket]) -> Vec<Row> {
    let mut v: Vec<Row> = sockets
        .iter()
        .map(|s| {
            (
                (s.proto, s.state.label().to_string(), s.local_ip().unwrap(), s.remote_ip()),
                s.owners.iter().map(|o| o.pid).collect(),
            )
        })
        .collect();
    v.sort();
    v
}

fn theirs(sockets: &[SsSocket]) -> Vec<Row> {
    let mut v: Vec<Row> = sockets.iter().map(|s| ((s.proto, s.state.clone(), s.local, s.peer), s.pids())).collect();
    v.sort();
    v
}

fn diff(a: &[Row], b: &[Row]) -> String {
    let only_a: Vec<_> = a.iter().filter(|x| !b.contains(x)).take(10).collect();
    let only_b: Vec<_> = b.iter().filter(|x| !a.contains(x)).take(10).collect();
    format!("only portctl (first 10): {only_a:#?}\nonly ss (first 10): {only_b:#?}")
}

#[test]
#[ignore = "needs root"]
fn agrees_with_ss_on_a_busy_namespace() {
    require_root();
    let ns = Netns::new();
    let v4 = Sockpop::start(
        &[
            "--procs",
            "4",
            "--listeners",
            "100",
            "--established",
            "1000",
            "--time-wait",
            "400",
            "--close-wait",
            "200",
            "--udp",
            "30",
            "--base-port",
            "20000",
        ],
        Some(&ns),
    );
    let v6 = Sockpop::start(
        &["--procs", "2", "--listeners", "20", "--established", "100", "--udp", "10", "--v6", "--base-port", "30000"],
        Some(&ns),
    );
    let holders: BTreeSet<u32> = v4.holders.iter().chain(&v6.holders).copied().collect();

    // Everything, then the same with ss right after (TIME_WAIT lasts 60 s).
    let run = conns(&["--state", "all", "--json"]).netns(&ns).run();
    let ss_all = ss("-tuanpH", Some(&ns));
    run.expect_code(0);
    assert_eq!(run.stderr, "", "{}", run.dump());
    let got = run.sockets();
    assert!(got.len() >= 3000, "only {} sockets: sockpop did not build the population", got.len());
    let (m, t) = (mine(&got), theirs(&ss_all));
    assert!(m == t, "conns --state all vs ss -tuanpH\n{}", diff(&m, &t));
    for st in [State::Established, State::TimeWait, State::CloseWait, State::Listen, State::FinWait2, State::Unconn] {
        assert!(got.iter().any(|s| s.state == st), "no {st} socket in the population");
    }
    let owned: BTreeSet<u32> = got.iter().flat_map(|s| s.owners.iter().map(|o| o.pid)).collect();
    assert!(owned.is_subset(&holders) && !owned.is_empty(), "owners {owned:?} vs sockpop holders {holders:?}");

    // One state at a time, each against `ss state X`; and the default.
    for (state, ss_state, st_label) in [
        (Some("established"), "established", "ESTAB"),
        (None, "established", "ESTAB"),
        (Some("time-wait"), "time-wait", "TIME-WAIT"),
        (Some("close-wait"), "close-wait", "CLOSE-WAIT"),
        (Some("listen"), "listening", "LISTEN"),
        (Some("fin-wait-2"), "fin-wait-2", "FIN-WAIT-2"),
    ] {
        let mut args = vec!["--json", "--tcp"];
        args.extend(state.iter().flat_map(|s| ["--state", s]));
        let run = conns(&args).netns(&ns).run();
        let ss_one = ss_state_filter(&ns, ss_state, st_label);
        run.expect_code(0);
        let (m, t) = (mine(&run.sockets()), theirs(&ss_one));
        assert!(m == t, "conns {args:?} vs ss state {ss_state}\n{}", diff(&m, &t));
    }

    // Owner filters against ss's pids.
    let pid = v4.holders[0];
    let run = conns(&["--state", "all", "--json", "--pid", &pid.to_string()]).netns(&ns).run();
    let ss_all = ss("-tuanpH", Some(&ns));
    run.expect_code(0);
    let want: Vec<Row> = theirs(&ss_all).into_iter().filter(|r| r.1.contains(&pid)).collect();
    assert!(!want.is_empty());
    let m = mine(&run.sockets());
    assert!(m == want, "--pid {pid}\n{}", diff(&m, &want));
    let with_owner: Vec<Row> = theirs(&ss_all).into_iter().filter(|r| !r.1.is_empty()).collect();
    for args in [["--process", "sockpop"], ["--process-regex", "^sock.o"], ["--user", "root"]] {
        let run = conns(&["--state", "all", "--json", "--tcp", "--udp"]).args(args).netns(&ns).run();
        run.expect_code(0);
        let m = mine(&run.sockets());
        assert!(m == with_owner, "{args:?}\n{}", diff(&m, &with_owner));
    }

    // TCP of both families is one walk of the kernel's table (the older
    // TCPDIAG_GETSOCK request, which the kernel dumps for every family);
    // asked one family at a time (SOCK_DIAG_BY_FAMILY requests), the same
    // sockets, with and without a filter for the kernel to run.
    for filter in [&[][..], &["--sport", "20000-30010"][..]] {
        let tcp = |family: &[&str]| {
            let run = conns(&["--state", "all", "--json", "--tcp"]).args(filter).args(family).netns(&ns).run();
            run.expect_code(0);
            mine(&run.sockets())
        };
        let (both, only4, only6) = (tcp(&[]), tcp(&["-4"]), tcp(&["-6"]));
        assert!(!only4.is_empty() && !only6.is_empty(), "{filter:?}: {} IPv4, {} IPv6", only4.len(), only6.len());
        let mut apart: Vec<Row> = only4.into_iter().chain(only6).collect();
        apart.sort();
        assert!(both == apart, "{filter:?}: one walk vs one per family\n{}", diff(&both, &apart));
    }
    drop((v4, v6));
}

/// `ss -tanpH state X`, with a Netid column (ss prints one only when asked
/// for more than one protocol, so ask for UDP too: UDP has none of these
/// states but established, which is then dropped). With one state, ss leaves
/// the State column out: put `label` back for the parser.
fn ss_state_filter(ns: &Netns, state: &str, label: &str) -> Vec<SsSocket> {
    let run = output(ns.command("ss").args(["-tuanpH", "state", state]));
    run.expect_code(0);
    let text: String = run
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (netid, rest) = l.split_once(' ').unwrap_or_else(|| panic!("ss line {l:?}"));
            format!("{netid} {label} {rest}\n")
        })
        .collect();
    parse_ss(&text).into_iter().filter(|s| s.proto == Proto::Tcp).collect()
}

/// The /proc walk runs while the kernel dump does, so connections made
/// while portctl runs are in the dump after the walk may have read their
/// process. Each end must still come back with its holder (this process),
/// never as hidden or held by nobody: portctl reads the likely holders again.
#[test]
fn connections_accepted_during_the_walk_keep_their_owner() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 1024);
    let addr = listener.local_addr().unwrap();
    let port = addr.port().to_string();
    let stop = AtomicBool::new(false);
    let made = AtomicUsize::new(0);
    let me = std::process::id();
    // Both ends stay open until the end: a socket in the dump is then
    // still held when portctl looks again, so the check cannot race.
    const MAX_PAIRS: usize = 3000;
    std::thread::scope(|s| {
        let churn = s.spawn(|| {
            let mut kept = Vec::new();
            while !stop.load(Ordering::Relaxed) && kept.len() < MAX_PAIRS {
                let c = TcpStream::connect(addr).unwrap();
                let (a, _) = listener.accept().unwrap();
                kept.push((c, a));
                made.fetch_add(1, Ordering::Relaxed);
            }
            kept
        });
        let mut checked = 0;
        let mut raced_runs = 0;
        for _ in 0..8 {
            let before = made.load(Ordering::Relaxed);
            let run = conns(&["--port", &port, "--state", "established", "--json"]).run();
            let during = made.load(Ordering::Relaxed) - before;
            run.expect_code(0);
            // Both ends; the accepted end is ownerless only while it waits
            // in the accept queue, with no file yet (inode 0).
            let ours =
                |s: &&Socket| s.inode != 0 && (s.local_ip() == Some(ep(addr)) || s.remote_ip() == Some(ep(addr)));
            for sock in run.sockets().iter().filter(ours) {
                let pids: Vec<u32> = sock.owners.iter().map(|o| o.pid).collect();
                assert!(
                    pids == [me] && !sock.owners_hidden,
                    "{} -> {:?}: owners {pids:?}, hidden {}\n{}",
                    sock.local,
                    sock.remote,
                    sock.owners_hidden,
                    run.stderr
                );
                checked += 1;
            }
            assert!(!run.stderr.contains("held by no process"), "{}", run.stderr);
            raced_runs += usize::from(during > 0);
        }
        stop.store(true, Ordering::Relaxed);
        let kept = churn.join().unwrap();
        assert!(checked > 0, "no accepted connection was checked");
        assert!(raced_runs > 0, "no connection was accepted while portctl ran ({} in all)", kept.len());
    });
}
