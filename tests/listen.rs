//! `portctl listen` against real sockets: the test binds them, runs the
//! binary, and checks what it reports against what the kernel knows (the
//! descriptor, the inode, the options the test set) and, in a namespace of
//! its own, against `ss`.
//!
//! JSON output is always deserialised into `portctl::model::Socket`, whose
//! `deny_unknown_fields` makes every such test a check of the JSON contract.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;
use portctl::model::{Exposure, Family, Proto, Socket, State};

const BACKLOG: i32 = 37;

/// What the test knows about one socket it made.
#[derive(Debug, Clone)]
struct Expected {
    what: &'static str,
    proto: Proto,
    family: Family,
    state: State,
    addr: IpAddr,
    port: u16,
    v6only: Option<bool>,
    exposure: Exposure,
    /// Table PROTO column.
    label: &'static str,
    /// Table LOCAL column.
    local_text: String,
    fd: RawFd,
    inode: u64,
    /// Listeners: the backlog, which sock_diag reports as the send queue.
    send_q: u32,
}

impl Expected {
    fn key(&self) -> (Proto, IpAddr, u16) {
        (self.proto, self.addr, self.port)
    }
}

fn key(s: &Socket) -> (Proto, IpAddr, u16) {
    (s.proto, s.local_ip().unwrap().addr, s.port())
}

fn tcp(
    what: &'static str,
    addr: &str,
    v6only: Option<bool>,
    exposure: Exposure,
    label: &'static str,
) -> (TcpListener, Expected) {
    let l = tcp_listener(addr.parse().unwrap(), v6only, BACKLOG);
    let local = l.local_addr().unwrap();
    let e = expected(what, Proto::Tcp, State::Listen, local, v6only, exposure, label, l.as_raw_fd(), BACKLOG as u32);
    (l, e)
}

fn udp(
    what: &'static str,
    addr: &str,
    v6only: Option<bool>,
    exposure: Exposure,
    label: &'static str,
) -> (UdpSocket, Expected) {
    let u = udp_socket(addr.parse().unwrap(), v6only);
    let local = u.local_addr().unwrap();
    let e = expected(what, Proto::Udp, State::Unconn, local, v6only, exposure, label, u.as_raw_fd(), 0);
    (u, e)
}

#[allow(clippy::too_many_arguments)]
fn expected(
    what: &'static str,
    proto: Proto,
    state: State,
    local: SocketAddr,
    v6only: Option<bool>,
    exposure: Exposure,
    label: &'static str,
    fd: RawFd,
    send_q: u32,
) -> Expected {
    let (family, local_text) = match local.ip() {
        IpAddr::V4(a) => (Family::Ipv4, a.to_string()),
        IpAddr::V6(a) => (Family::Ipv6, format!("[{a}]")),
    };
    Expected {
        what,
        proto,
        family,
        state,
        addr: local.ip(),
        port: local.port(),
        v6only,
        exposure,
        label,
        local_text,
        fd,
        inode: socket_inode(fd),
        send_q,
    }
}

/// The four sockets most tests use, all held by this test process.
struct Fixture {
    _v4: TcpListener,
    _dual: TcpListener,
    _v6: TcpListener,
    _udp: UdpSocket,
    v4: Expected,
    dual: Expected,
    v6: Expected,
    udp: Expected,
}

impl Fixture {
    fn new() -> Fixture {
        let (_v4, v4) = tcp("tcp 127.0.0.1", "127.0.0.1:0", None, Exposure::Loopback, "tcp");
        let (_dual, dual) = tcp("tcp [::] dual-stack", "[::]:0", Some(false), Exposure::Wildcard, "tcp46");
        let (_v6, v6) = tcp("tcp [::1] v6only", "[::1]:0", Some(true), Exposure::Loopback, "tcp6");
        let (_udp, udp) = udp("udp 127.0.0.1", "127.0.0.1:0", None, Exposure::Loopback, "udp");
        Fixture { _v4, _dual, _v6, _udp, v4, dual, v6, udp }
    }

    fn all(&self) -> [&Expected; 4] {
        [&self.v4, &self.dual, &self.v6, &self.udp]
    }

    /// `--port A --port B ...` for every socket.
    fn port_args(&self) -> Vec<String> {
        port_args(&self.all())
    }
}

fn port_args(es: &[&Expected]) -> Vec<String> {
    es.iter().flat_map(|e| ["--port".to_string(), e.port.to_string()]).collect()
}

/// The one record for this socket; panics if there is none or several.
fn find<'a>(sockets: &'a [Socket], e: &Expected) -> &'a Socket {
    let hits: Vec<&Socket> = sockets.iter().filter(|s| key(s) == e.key()).collect();
    assert_eq!(hits.len(), 1, "{}: want exactly one record for {:?}, got {hits:#?}", e.what, e.key());
    hits[0]
}

/// Every field of the record against what the kernel and this process know.
fn check_record(s: &Socket, e: &Expected) {
    let me = std::process::id();
    let (comm, cmdline) = own_comm_and_cmdline();
    assert_eq!(s.proto, e.proto, "{}: proto", e.what);
    assert_eq!(s.family, e.family, "{}: family", e.what);
    assert_eq!(s.state, e.state, "{}: state", e.what);
    assert_eq!(s.local_ip().map(|l| l.addr), Some(e.addr), "{}: local addr", e.what);
    assert_eq!(s.port(), e.port, "{}: local port", e.what);
    assert_eq!(s.remote, None, "{}: remote", e.what);
    assert_eq!(s.inode, e.inode, "{}: inode", e.what);
    assert_eq!(s.uid, euid(), "{}: uid", e.what);
    assert_eq!(s.v6only, e.v6only, "{}: v6only", e.what);
    assert_eq!(s.exposure, e.exposure, "{}: exposure", e.what);
    assert_eq!(s.interface, None, "{}: interface", e.what);
    assert_eq!(s.recv_q, 0, "{}: recv_q", e.what);
    assert_eq!(s.send_q, e.send_q, "{}: send_q", e.what);
    assert_eq!(s.timer, None, "{}: timer", e.what);
    assert!(!s.owners_hidden, "{}: owners_hidden", e.what);
    assert!(s.tcp_info().is_none(), "{}: tcp_info", e.what);
    assert_eq!(s.owners.len(), 1, "{}: owners: {:#?}", e.what, s.owners);
    let o = &s.owners[0];
    assert_eq!(o.pid, me, "{}: owner pid", e.what);
    assert_eq!(o.fd, e.fd as u32, "{}: owner fd", e.what);
    assert_eq!(&*o.name, comm, "{}: owner name", e.what);
    assert_eq!(&*o.user, user_name(euid()), "{}: owner user", e.what);
    assert_eq!(&*o.cmdline, cmdline, "{}: owner cmdline", e.what);
}

/// Stdout is clean JSON and stderr is silent.
fn listen_json(args: &[String]) -> Vec<Socket> {
    let run = Portctl::new(["listen", "--json"]).args(args).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "", "stderr of {}", run.what);
    run.sockets()
}

// ---------------------------------------------------------------------------
// 1. Live sockets, reported as the kernel has them

#[test]
fn live_sockets_are_reported_with_kernel_facts_and_owner() {
    let fx = Fixture::new();
    for e in fx.all() {
        let sockets = listen_json(&port_args(&[e]));
        check_record(find(&sockets, e), e);
        assert!(sockets.iter().all(|s| s.port() == e.port), "--port {} let others through: {sockets:#?}", e.port);
    }
    // All four at once, with --port repeated.
    let sockets = listen_json(&fx.port_args());
    for e in fx.all() {
        check_record(find(&sockets, e), e);
    }
    let ports: BTreeSet<u16> = fx.all().iter().map(|e| e.port).collect();
    assert!(sockets.iter().all(|s| ports.contains(&s.port())), "--port let others through: {sockets:#?}");
}

#[test]
fn jsonl_gives_the_same_records_as_json() {
    let fx = Fixture::new();
    let ours = |v: Vec<Socket>| -> Vec<Socket> {
        v.into_iter().filter(|s| fx.all().iter().any(|e| e.key() == key(s))).collect()
    };
    let json = listen_json(&fx.port_args());
    let run = Portctl::new(["listen", "--jsonl"]).args(fx.port_args()).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "");
    let jsonl = run.jsonl_sockets();
    assert_eq!(run.stdout.lines().count(), jsonl.len());
    let (json, jsonl) = (ours(json), ours(jsonl));
    assert_eq!(json.len(), 4, "{json:#?}");
    assert_eq!(json, jsonl);
}

#[test]
fn table_shows_labels_exposure_and_owner() {
    let fx = Fixture::new();
    let run = Portctl::new(["listen"]).args(fx.port_args()).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(header, ["PROTO", "LOCAL", "PORT", "SERVICE", "EXPOSURE", "PID", "PROCESS", "USER"], "{}", run.dump());
    let (comm, _) = own_comm_and_cmdline();
    for e in fx.all() {
        let row = rows
            .iter()
            .find(|r| r[1] == e.local_text && r[2] == e.port.to_string() && r[0].starts_with(e.proto.as_str()))
            .unwrap_or_else(|| panic!("{}: no row for {} {}\n{}", e.what, e.local_text, e.port, run.dump()));
        assert_eq!(row.len(), 8, "{}: {row:?}", e.what);
        assert_eq!(row[0], e.label, "{}: PROTO", e.what);
        assert_eq!(row[4], e.exposure.as_str(), "{}: EXPOSURE", e.what);
        assert_eq!(row[5], std::process::id().to_string(), "{}: PID", e.what);
        assert_eq!(row[6], comm, "{}: PROCESS", e.what);
        assert_eq!(row[7], user_name(euid()), "{}: USER", e.what);
    }
    let no_header = Portctl::new(["listen", "--no-header"]).args(fx.port_args()).run();
    no_header.expect_code(0);
    let (first, rest) = no_header.table();
    assert_eq!(std::iter::once(first).chain(rest).collect::<Vec<_>>(), rows, "--no-header drops only the header");
}

// ---------------------------------------------------------------------------
// 2. Protocol and family filters

#[test]
fn filters_select_protocol_and_family() {
    let fx = Fixture::new();
    let (v4, dual, v6, udp) = (&fx.v4, &fx.dual, &fx.v6, &fx.udp);
    // Flags -> which of our sockets must be listed (the others must not).
    // -4 keeps the dual-stack [::] listener: it accepts IPv4 connections.
    let cases: &[(&[&str], &[&Expected])] = &[
        (&[], &[v4, dual, v6, udp]),
        (&["--tcp"], &[v4, dual, v6]),
        (&["-t"], &[v4, dual, v6]),
        (&["--udp"], &[udp]),
        (&["-u"], &[udp]),
        (&["--tcp", "--udp"], &[v4, dual, v6, udp]),
        (&["-4"], &[v4, dual, udp]),
        (&["--ipv4"], &[v4, dual, udp]),
        (&["-6"], &[dual, v6]),
        (&["--ipv6"], &[dual, v6]),
        (&["-4", "-6"], &[v4, dual, v6, udp]),
        (&["--tcp", "-4"], &[v4, dual]),
        (&["--tcp", "-6"], &[dual, v6]),
        (&["--udp", "-4"], &[udp]),
        (&["--udp", "-6"], &[]),
    ];
    for (flags, want) in cases {
        let run = Portctl::new(["listen", "--json"]).args(fx.port_args()).args(*flags).run();
        let sockets = run.sockets();
        let got: BTreeSet<_> = sockets.iter().map(key).filter(|k| fx.all().iter().any(|e| e.key() == *k)).collect();
        let want_keys: BTreeSet<_> = want.iter().map(|e| e.key()).collect();
        assert_eq!(got, want_keys, "listen {flags:?}\n{}", run.dump());
        // Whatever else shares our ports must obey the flags too.
        for s in &sockets {
            let tcp_only = flags.contains(&"--tcp") || flags.contains(&"-t");
            let udp_only = flags.contains(&"--udp") || flags.contains(&"-u");
            let v4_only = flags.contains(&"-4") || flags.contains(&"--ipv4");
            let v6_only = flags.contains(&"-6") || flags.contains(&"--ipv6");
            if tcp_only && !udp_only {
                assert_eq!(s.proto, Proto::Tcp, "listen {flags:?} listed {s:?}");
            }
            if udp_only && !tcp_only {
                assert_eq!(s.proto, Proto::Udp, "listen {flags:?} listed {s:?}");
            }
            if v4_only && !v6_only {
                assert!(s.family == Family::Ipv4 || s.is_dual_stack(), "listen {flags:?} listed {s:?}");
            }
            if v6_only && !v4_only {
                assert_eq!(s.family, Family::Ipv6, "listen {flags:?} listed {s:?}");
            }
        }
        let code = if sockets.is_empty() { 1 } else { 0 };
        run.expect_code(code);
        if want.is_empty() {
            assert_eq!(code, 1, "listen {flags:?} matched nothing of ours but listed {sockets:#?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Exit codes, bad input, broken pipes

#[test]
fn bad_port_values_exit_2_with_one_error_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "70000"], "70000"),
        (&["--port", "65536"], "65536"),
        (&["--port", "abc"], "abc"),
        (&["--port", "9-3"], "9-3"),
        (&["--port", "0"], "0"),
        (&["--port", ""], "''"),
        (&["--port", "1-70000"], "70000"),
        (&["--port", "80-"], "80-"),
        (&["--port=-1"], "-1"),
        // Service names are taken (issue 18); unknown ones are errors.
        (&["-p", "no-such-service"], "no-such-service: unknown service name"),
        (&["--json", "--port", "abc"], "abc"),
        (&["--port", "22", "--port", "x22"], "x22"),
    ];
    for (args, value) in cases {
        let run = Portctl::new(["listen"]).args(*args).env("RUST_BACKTRACE", "1").run();
        run.expect_code(2);
        assert_eq!(run.stdout, "", "listen {args:?}: stdout");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "listen {args:?}: want one stderr line\n{}", run.dump());
        assert!(lines[0].starts_with("portctl: error:"), "listen {args:?}: {:?}", lines[0]);
        assert!(lines[0].contains(value), "listen {args:?}: the error does not name {value:?}: {:?}", lines[0]);
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!run.stderr.contains(bad), "listen {args:?}: {bad}\n{}", run.dump());
        }
    }
}

#[test]
fn a_port_nothing_listens_on_exits_1_with_no_output() {
    let port = unused_port().to_string();
    let table = Portctl::new(["listen", "--port", &port]).run();
    table.expect_code(1);
    assert_eq!(table.stdout, "", "no header either");
    assert_eq!(table.stderr, "");
    let jsonl = Portctl::new(["listen", "--jsonl", "--port", &port]).run();
    jsonl.expect_code(1);
    assert_eq!(jsonl.stdout, "");
    assert_eq!(jsonl.stderr, "");
    // --json stays valid JSON: an empty array.
    let json = Portctl::new(["listen", "--json", "--port", &port]).run();
    json.expect_code(1);
    assert_eq!(json.sockets(), vec![]);
    assert_eq!(json.stderr, "");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    // Enough listeners that the output is several pipe buffers (64 KiB)
    // long: portctl cannot finish before the reader goes away, so its writes
    // really hit EPIPE.
    let listeners: Vec<TcpListener> =
        (0..1000).map(|_| tcp_listener("127.0.0.1:0".parse().unwrap(), None, 1)).collect();
    let full = Portctl::new(["listen", "--json"]).run();
    full.expect_code(0);
    let listed = full.sockets().iter().filter(|s| s.owners.iter().any(|o| o.pid == std::process::id())).count();
    assert!(listed >= listeners.len(), "only {listed} of our {} listeners listed", listeners.len());
    assert!(full.stdout.len() > 256 * 1024, "output is only {} bytes: not enough to fill the pipe", full.stdout.len());

    for args in [&["listen", "--json"][..], &["listen"][..], &["listen", "--jsonl"][..]] {
        // `portctl listen | head -1`
        let mut cmd = Portctl::new(args).command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = spawn(&mut cmd);
        let mut err = child.child_mut().stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        });
        let mut first = String::new();
        {
            let mut out = BufReader::new(child.child_mut().stdout.take().unwrap());
            out.read_line(&mut first).unwrap();
            // `out` drops here: the read end of the pipe closes.
        }
        assert!(!first.is_empty(), "{args:?}: no first line");
        let status = child.wait();
        let stderr = err_reader.join().unwrap();
        assert_eq!(status.signal(), None, "{args:?}: killed by a signal; stderr: {stderr}");
        assert_eq!(status.code(), Some(0), "{args:?}: exit status; stderr: {stderr}");
        for bad in ["Broken pipe", "broken pipe", "panicked", "error"] {
            assert!(!stderr.contains(bad), "{args:?}: stderr mentions {bad:?}: {stderr}");
        }
    }
    // Closed while no portctl runs: a parallel test sharing one of these
    // port numbers (UDP) must not see a socket vanish mid-run.
    let _lock = spawn_lock();
    drop(listeners);
}

// ---------------------------------------------------------------------------
// 4. The /proc/net fallback

#[test]
fn proc_fallback_reports_the_same_sockets() {
    let fx = Fixture::new();
    // A listener with a connection waiting to be accepted: its receive
    // queue (pending connections) is 1 in both sources.
    let (pending, pending_e) =
        tcp("tcp 127.0.0.1 with a pending connection", "127.0.0.1:0", None, Exposure::Loopback, "tcp");
    let _client = TcpStream::connect(pending.local_addr().unwrap()).unwrap();
    wait_for_pending_connection(&pending);
    let all: Vec<&Expected> = fx.all().into_iter().chain([&pending_e]).collect();
    let args = port_args(&all);

    let kernel = listen_json(&args);
    let run = Portctl::new(["listen", "--json"]).args(&args).env("PORTCTL_SOURCE", "proc").run();
    run.expect_code(0);
    let fallback = run.sockets();
    // Every difference, not just the first: this compares two sources.
    let mut wrong = Vec::new();
    for e in &all {
        let (k, f) = (find(&kernel, e), find(&fallback, e));
        let mut same = |field: &str, a: String, b: String| {
            if a != b {
                wrong.push(format!("{}: {field}: sock_diag {a}, /proc/net {b}", e.what));
            }
        };
        same(
            "proto/family/state",
            format!("{:?}", (k.proto, k.family, k.state)),
            format!("{:?}", (f.proto, f.family, f.state)),
        );
        same("local/remote", format!("{:?}", (&k.local, &k.remote)), format!("{:?}", (&f.local, &f.remote)));
        same("inode/uid", format!("{:?}", (k.inode, k.uid)), format!("{:?}", (f.inode, f.uid)));
        same(
            "exposure/interface/service",
            format!("{:?}", (k.exposure, &k.interface, &k.service)),
            format!("{:?}", (f.exposure, &f.interface, &f.service)),
        );
        same("owners", format!("{:?}", (&k.owners, k.owners_hidden)), format!("{:?}", (&f.owners, f.owners_hidden)));
        same("recv_q (pending connections for a listener)", k.recv_q.to_string(), f.recv_q.to_string());
        same("v6only (unknown to /proc/net)", "None".into(), format!("{:?}", f.v6only));
    }
    if find(&kernel, &pending_e).recv_q != 1 {
        wrong.push(format!("sock_diag: recv_q {} with one pending connection", find(&kernel, &pending_e).recv_q));
    }
    // Stdout stays pure JSON; the fallback is announced on stderr.
    if !run.stderr_lines().iter().any(|l| l.starts_with("portctl: note:") && l.contains("/proc/net")) {
        wrong.push(format!(
            "PORTCTL_SOURCE=proc: no `portctl: note:` line on stderr saying /proc/net was read: {:?}",
            run.stderr
        ));
    }
    assert!(wrong.is_empty(), "the /proc/net fallback differs:\n{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------
// 5. Hostile process names

#[test]
fn control_characters_in_process_names_are_escaped_in_tables() {
    // The kernel sets comm from the name of the file exec'd: a symlink to
    // sleep(1) with control characters in its name gives a process with
    // that comm. (/proc/PID/comm of another process cannot be written:
    // EINVAL.) The child inherits a listener and is its only holder.
    let name = "a\x1b[2Jb\nc\u{202e}d";
    let escaped = r"a\x1b[2Jb\nc\u{202e}d";
    let held = NamedHolder::start(name);
    let (child, port, fd) = (&held.child, held.port, held.fd);

    // JSON carries the name as it is (JSON escapes it).
    let run = Portctl::new(["listen", "--json", "--port", &port.to_string()]).run();
    run.expect_code(0);
    let sockets = run.sockets();
    assert_eq!(sockets.len(), 1, "{}", run.dump());
    assert_eq!(sockets[0].owners.len(), 1, "{:#?}", sockets[0].owners);
    assert_eq!(sockets[0].owners[0].pid, child.pid());
    assert_eq!(sockets[0].owners[0].fd, fd as u32);
    assert_eq!(&*sockets[0].owners[0].name, name);
    assert!(!run.stdout.contains('\x1b'), "raw ESC in JSON: {:?}", run.stdout);

    // The table escapes it: one row, no raw control or bidi characters.
    let run = Portctl::new(["listen", "--port", &port.to_string()]).run();
    run.expect_code(0);
    let out = &run.stdout;
    assert!(!out.contains('\x1b'), "raw ESC in the table: {out:?}");
    assert!(!out.contains('\u{202e}'), "raw RIGHT-TO-LEFT OVERRIDE in the table: {out:?}");
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "raw control character in the table: {out:?}");
    assert_eq!(out.lines().count(), 2, "header and one row, no forged line: {out:?}");
    let (_, rows) = run.table();
    assert_eq!(rows[0][5], child.pid().to_string(), "{out:?}");
    assert_eq!(rows[0][6], escaped, "{out:?}");
}

// ---------------------------------------------------------------------------
// 6. Oracle: ss, in a namespace full of sockets

#[test]
#[ignore = "needs root"]
fn matches_ss_in_a_busy_namespace() {
    require_root();
    let ns = Netns::new();
    let base = 20000u16;
    let v4 = Sockpop::start(
        &[
            "--procs",
            "4",
            "--listeners",
            "220",
            "--udp",
            "40",
            "--established",
            "20",
            "--time-wait",
            "10",
            "--close-wait",
            "5",
            "--shared-listener",
            "--base-port",
            &base.to_string(),
        ],
        Some(&ns),
    );
    let v6 = Sockpop::start(
        &["--procs", "2", "--listeners", "40", "--udp", "10", "--v6", "--base-port", "30000"],
        Some(&ns),
    );
    let holders: BTreeSet<u32> = v4.holders.iter().chain(&v6.holders).copied().collect();

    let run = Portctl::new(["listen", "--json"]).netns(&ns).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "", "{}", run.dump());
    let mine = run.sockets();
    let theirs = ss("-tulnpH", Some(&ns));
    let (mine_n, theirs_n) = (mine.len(), theirs.len());

    type Row = (State, u32, u32, bool, BTreeSet<(u32, u32)>);
    let mine: BTreeMap<(Proto, IpAddr, u16), Row> = mine
        .iter()
        .map(|s| {
            let owners = s.owners.iter().map(|o| (o.pid, o.fd)).collect();
            (key(s), (s.state, s.recv_q, s.send_q, s.is_dual_stack(), owners))
        })
        .collect();
    let theirs: BTreeMap<(Proto, IpAddr, u16), Row> = theirs
        .iter()
        .map(|s| {
            let state = match s.state.as_str() {
                "LISTEN" => State::Listen,
                "UNCONN" => State::Unconn,
                other => panic!("ss -l listed state {other}: {s:?}"),
            };
            let owners = s.users.iter().map(|u| (u.pid, u.fd)).collect();
            ((s.proto, s.local.addr, s.local.port), (state, s.recv_q, s.send_q, s.dual_stack, owners))
        })
        .collect();
    // 220 + 1 shared TCP listeners and 40 UDP from the first, 40 + 10 from
    // the second: the namespace holds nothing else.
    assert_eq!(mine.len(), 311, "sockets in the namespace: {:?}", mine.keys());
    assert_eq!((mine_n, theirs_n), (mine.len(), theirs.len()), "a socket listed twice");
    let only_mine: Vec<_> = mine.keys().filter(|k| !theirs.contains_key(k)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|k| !mine.contains_key(k)).collect();
    assert!(only_mine.is_empty() && only_theirs.is_empty(), "only portctl: {only_mine:?}\nonly ss: {only_theirs:?}");
    for (k, m) in &mine {
        assert_eq!(m, &theirs[k], "{k:?}: portctl (state, recv_q, send_q, dual stack, owners) vs ss");
        assert!(!m.4.is_empty(), "{k:?}: no owner");
        assert!(m.4.iter().all(|(pid, _)| holders.contains(pid)), "{k:?}: owner not a sockpop holder: {m:?}");
    }
    // The listener two processes share, on base - 1.
    let shared: Vec<_> = mine.iter().filter(|(k, _)| k.0 == Proto::Tcp && k.2 == base - 1).collect();
    assert_eq!(shared.len(), 1, "one shared listener on {}: {shared:?}", base - 1);
    let pids: BTreeSet<u32> = shared[0].1.4.iter().map(|&(pid, _)| pid).collect();
    assert_eq!(pids, BTreeSet::from([v4.holders[0], v4.holders[1]]), "the shared listener's holders: {shared:?}");
    drop((v4, v6));
}

// ---------------------------------------------------------------------------
// 7. Not root: other users' owners are hidden, never dropped

#[test]
#[ignore = "needs root"]
fn other_users_owners_are_hidden_not_dropped() {
    require_root();
    let (listener, e) = tcp("root's tcp 127.0.0.1", "127.0.0.1:0", None, Exposure::Loopback, "tcp");
    let (bin, _copy) = portctl_for_others();
    let run = Portctl::new(["listen", "--json", "--port", &e.port.to_string()]).as_user(65534, 65534, &bin).run();
    run.expect_code(0);
    let sockets = run.sockets();
    let s = find(&sockets, &e);
    assert_eq!(s.uid, 0);
    assert_eq!(s.inode, e.inode);
    assert_eq!(s.state, State::Listen);
    assert!(s.owners.is_empty(), "nobody cannot see root's descriptors: {:?}", s.owners);
    assert!(s.owners_hidden, "owners must be flagged hidden, not absent");
    let lines = run.stderr_lines();
    // One warning about the owners, and the note that the NAT rules could
    // not be read either (issue 17: said, not guessed).
    assert_eq!(lines.len(), 2, "one warning line and the NAT note\n{}", run.dump());
    assert!(lines[0].starts_with("portctl: warning:"), "{:?}", lines[0]);
    assert!(lines[0].contains("hidden") && lines[0].contains("sudo"), "{:?}", lines[0]);
    assert_eq!(lines[1], "portctl: note: NAT rules could not be read: portctl lacks CAP_NET_ADMIN");

    // The table prints them as `-`, PROCESS saying why.
    let run = Portctl::new(["listen", "--port", &e.port.to_string()]).as_user(65534, 65534, &bin).run();
    run.expect_code(0);
    let (_, rows) = run.table();
    let row = rows.iter().find(|r| r[1] == e.local_text).unwrap_or_else(|| panic!("no row\n{}", run.dump()));
    assert_eq!(&row[5..], ["-", "(hidden)", "-"], "{}", run.dump());
    drop(listener);
}

// ---------------------------------------------------------------------------
// 8. Regressions

/// Issue 2: a `[::]` socket without IPV6_V6ONLY takes IPv4 too; it must be
/// shown as dual-stack (`tcp46`, v6only false) and kept by `-4`, unlike a
/// v6only `[::]` socket. `ss` (which prints `*` for dual-stack) agrees.
#[test]
fn issue2_dual_stack_is_reported_as_such() {
    let (_d, dual) = tcp("tcp [::] dual-stack", "[::]:0", Some(false), Exposure::Wildcard, "tcp46");
    let (_o, only6) = tcp("tcp [::] v6only", "[::]:0", Some(true), Exposure::Wildcard, "tcp6");
    let (_u, udual) = udp("udp [::] dual-stack", "[::]:0", Some(false), Exposure::Wildcard, "udp46");
    let (_w, uonly6) = udp("udp [::] v6only", "[::]:0", Some(true), Exposure::Wildcard, "udp6");
    let all = [&dual, &only6, &udual, &uonly6];
    let args = port_args(&all);

    let sockets = listen_json(&args);
    for e in all {
        check_record(find(&sockets, e), e);
        assert_eq!(find(&sockets, e).is_dual_stack(), e.v6only == Some(false), "{}", e.what);
    }

    let run = Portctl::new(["listen"]).args(&args).run();
    run.expect_code(0);
    let (_, rows) = run.table();
    for e in all {
        let row = rows
            .iter()
            .find(|r| r[1] == "[::]" && r[2] == e.port.to_string() && r[0].starts_with(e.proto.as_str()))
            .unwrap_or_else(|| panic!("{}: no row\n{}", e.what, run.dump()));
        assert_eq!(row[0], e.label, "{}", e.what);
    }

    let v4 = Portctl::new(["listen", "--json", "-4"]).args(&args).run().sockets();
    let kept: BTreeSet<_> = v4.iter().map(key).collect();
    for e in all {
        assert_eq!(kept.contains(&e.key()), e.v6only == Some(false), "-4 and {}", e.what);
    }

    // The oracle: ss prints `*:PORT` for dual-stack and `[::]:PORT` for v6only.
    let ss_dual: BTreeMap<(Proto, IpAddr, u16), bool> =
        ss("-tulnH", None).into_iter().map(|s| ((s.proto, s.local.addr, s.local.port), s.dual_stack)).collect();
    for e in all {
        assert_eq!(ss_dual.get(&e.key()), Some(&(e.v6only == Some(false))), "ss on {}", e.what);
    }
}

/// Live snapshots (issue 13): the real binary's tables for a population
/// built in a namespace of the test's own, with what changes from run to
/// run redacted (pids; the kernel's ephemeral ports), and columns collapsed
/// to single spaces (pid widths vary; alignment is snapshotted from fixtures
/// in tests/snapshots.rs).
#[test]
#[ignore = "needs root"]
fn live_tables_snapshot() {
    require_root();
    let ns = Netns::new();
    let pop = Sockpop::start(
        &["--procs", "2", "--listeners", "3", "--established", "2", "--udp", "2", "--base-port", "31000"],
        Some(&ns),
    );
    let redact = |text: &str| -> String {
        let mut out = text.to_string();
        let mut pids = pop.holders.clone();
        pids.sort_unstable_by_key(|p| std::cmp::Reverse(p.to_string().len()));
        for p in pids {
            out = regex::Regex::new(&format!(r"\b{p}\b")).unwrap().replace_all(&out, "[pid]").into_owned();
        }
        let ephemeral = regex::Regex::new(r":(3[3-9]\d{3}|[4-5]\d{4}|60\d{3})\b").unwrap();
        let out = ephemeral.replace_all(&out, ":[ephemeral]").into_owned();
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
    };
    let listen = Portctl::new(["listen"]).netns(&ns).run();
    listen.expect_code(0);
    insta::assert_snapshot!("live_listen", redact(&listen.stdout));
    let conns = Portctl::new(["conns", "--tcp", "--port", "31000"]).netns(&ns).run();
    conns.expect_code(0);
    insta::assert_snapshot!("live_conns", redact(&conns.stdout));
    drop(pop);
}

// ---------------------------------------------------------------------------
// 6. Accept queues and UDP drops (issue 16): quiet until they matter

#[test]
#[ignore = "needs root"]
fn accept_queue_and_drops_columns_appear_only_when_it_matters() {
    require_root();
    let ns = Netns::new();
    let quiet = in_netns(&ns, || tcp_listener("127.0.0.1:9200".parse().unwrap(), None, 8));
    let table = |ns: &Netns| {
        let run = Portctl::new(["listen"]).netns(ns).run();
        run.expect_code(0);
        run
    };
    let run = table(&ns);
    let (header, _) = run.table();
    assert_eq!(header, ["PROTO", "LOCAL", "PORT", "SERVICE", "EXPOSURE", "PID", "PROCESS", "USER"], "{}", run.dump());

    // A listener whose queue is full, and a UDP socket that dropped.
    let q = FullQueue::new(&ns, "127.0.0.1:8080", 1, 1, 6);
    let udp = DroppingUdp::new(&ns, "127.0.0.1:5300", 50);
    let drops = ss_drops(&ns, "-ua", udp.addr);
    let run = table(&ns);
    let (header, rows) = run.table();
    assert_eq!(header[8..], ["ACCEPT-Q", "DROPS"], "{}", run.dump());
    let row = |port: &str| rows.iter().find(|r| r[2] == port).unwrap_or_else(|| panic!("no :{port}\n{}", run.dump()));
    assert_eq!(row("8080")[8..], ["2/1", "full", "-"], "{}", run.dump());
    assert_eq!(row("9200")[8..], ["0/8", "-"], "{}", run.dump());
    assert_eq!(row("5300")[8..], ["-".to_string(), drops.to_string()], "{}", run.dump());

    // JSON: every TCP listener's accept_queue is ss's Recv-Q and Send-Q;
    // UDP sockets carry their memory, drops as ss -m counts them.
    let run = Portctl::new(["listen", "--json"]).netns(&ns).run();
    run.expect_code(0);
    let sockets = run.sockets();
    let theirs = ss("-tulnH", Some(&ns));
    for s in &sockets {
        let ss = theirs.iter().find(|t| t.proto == s.proto && Some(t.local) == s.local_ip()).unwrap();
        match s.proto {
            Proto::Tcp => {
                let aq = s.accept_queue().unwrap_or_else(|| panic!("no accept_queue: {s:?}"));
                assert_eq!((aq.queued, aq.backlog, aq.full), (ss.recv_q, ss.send_q, ss.recv_q > ss.send_q), "{s:?}");
                assert!(s.skmem().is_none(), "listen asks for TCP's socket memory only with conns --extended");
            }
            _ => {
                assert!(s.accept_queue().is_none());
                let m = s.skmem().unwrap_or_else(|| panic!("no skmem on UDP: {s:?}"));
                let local = s.local_ip().unwrap();
                assert_eq!(m.drops, ss_drops(&ns, "-ua", SocketAddr::new(local.addr, local.port)), "{s:?}");
            }
        }
    }
    let udp_rec = sockets.iter().find(|s| s.port() == 5300).unwrap();
    assert_eq!(udp_rec.drops(), drops);
    drop((q, udp, quiet));
}
