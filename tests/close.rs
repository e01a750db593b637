//! `portctl close FILTER`: SOCK_DESTROY on real connections in a namespace
//! of the test's own: one of two connections to the same port is closed
//! and the other survives; the closed end's holder sees ECONNABORTED, its
//! peer a reset; listeners only with --listeners; UDP; dry run and
//! confirmation; and the error without CAP_NET_ADMIN.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

use common::*;
use portctl::model::{Proto, State};

/// A listener on 127.0.0.1:8080 in a new namespace with two connections
/// to it (client and accepted ends held here).
struct Two {
    clients: Vec<TcpStream>,
    servers: Vec<TcpStream>,
    listener: TcpListener,
    ns: Netns,
}

fn two() -> Two {
    let ns = Netns::new();
    let (listener, clients, servers) = in_netns(&ns, || {
        let l = tcp_listener("127.0.0.1:8080".parse().unwrap(), None, 8);
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..2 {
            clients.push(TcpStream::connect("127.0.0.1:8080").unwrap());
            servers.push(l.accept().unwrap().0);
        }
        (l, clients, servers)
    });
    Two { clients, servers, listener, ns }
}

fn close(ns: &Netns, args: &[&str]) -> Portctl {
    Portctl::new(["close", "--netns", ns.name()]).args(args)
}

fn ss_lines(ns: &Netns, filter: &str) -> Vec<SsSocket> {
    let run =
        output(ns.command("ss").args(["-tuanH", "state", "all"]).args(filter.split(' ').filter(|w| !w.is_empty())));
    parse_ss(&run.expect_code(0).stdout)
}

#[test]
#[ignore = "needs root"]
fn closes_one_of_two_connections_and_the_other_survives() {
    require_root();
    let mut t = two();
    let port_a = t.clients[0].local_addr().unwrap().port();
    let port_b = t.clients[1].local_addr().unwrap().port();
    let filter = format!("dport = :8080 and sport = :{port_a}");
    // What it would close: that one end, with its holder (this process).
    let dry = close(&t.ns, &["--dry-run", "--json"]).args(filter.split(' ')).run();
    dry.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    let sockets = v["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "{}", dry.dump());
    assert_eq!(sockets[0]["result"], "would_close");
    assert_eq!(sockets[0]["socket"]["local"]["port"], port_a);
    assert_eq!(sockets[0]["socket"]["owners"][0]["pid"], std::process::id());
    assert_eq!(ss_lines(&t.ns, &format!("sport = :{port_a}")).len(), 1, "a dry run closes nothing");
    // Without a terminal and without --yes: refused.
    let asked = close(&t.ns, &[]).args(filter.split(' ')).run();
    asked.expect_code(2);
    assert!(
        asked.stderr.starts_with("portctl: error: refusing to close 1 socket without confirmation"),
        "{}",
        asked.dump()
    );
    assert!(asked.stderr.contains("hint: pass --yes, or --dry-run"), "{}", asked.dump());
    // Closed.
    let run = close(&t.ns, &["--yes"]).args(filter.split(' ')).run();
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.dump());
    assert!(lines[0].starts_with("closed  tcp  ESTAB  127.0.0.1:"), "{}", run.dump());
    assert!(lines[0].contains(&format!("127.0.0.1:{port_a}")), "{}", run.dump());
    assert!(lines[0].contains(&format!("(pid {}, user root)", std::process::id())), "{}", run.dump());
    assert!(lines[1].starts_with("closed 1 of 1 socket (their holders see ECONNABORTED"), "{}", run.dump());
    // The closed end's holder (us) sees ECONNABORTED; its peer a reset.
    let mut buf = [0u8; 8];
    let e = t.clients[0].read(&mut buf).expect_err("the closed socket fails");
    assert_eq!(e.raw_os_error(), Some(libc::ECONNABORTED), "{e}");
    let peer = t.servers[0].read(&mut buf);
    assert!(matches!(&peer, Err(e) if e.kind() == ErrorKind::ConnectionReset) || matches!(peer, Ok(0)), "{peer:?}");
    // The other connection to the same port is untouched.
    t.clients[1].write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    t.servers[1].read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    let left = ss_lines(&t.ns, "dport = :8080");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].local.port, port_b);
    // Nothing left to close for that filter: exit 1.
    let again = close(&t.ns, &["--yes"]).args(filter.split(' ')).run();
    again.expect_code(1);
    assert_eq!(again.stdout, "nothing to close: no socket matched\n", "{}", again.dump());
    drop(t.listener);
}

#[test]
#[ignore = "needs root"]
fn listeners_only_with_the_flag_and_udp_too() {
    require_root();
    let t = two();
    // The listener matches `sport = :8080`, but is left alone without --listeners.
    let run = close(&t.ns, &["--yes", "--json", "sport", "=", ":8080"]).run();
    run.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let states: Vec<&str> =
        v["sockets"].as_array().unwrap().iter().map(|c| c["socket"]["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["established", "established"], "{}", run.dump());
    assert_eq!(ss_lines(&t.ns, "state listening").len(), 1);
    let run = close(&t.ns, &["--yes", "--listeners", "sport", "=", ":8080"]).run();
    run.expect_code(0);
    assert!(run.stdout.contains("closed  tcp  LISTEN  127.0.0.1:8080"), "{}", run.dump());
    assert!(ss_lines(&t.ns, "sport = :8080").is_empty());
    let refused = in_netns(&t.ns, || TcpStream::connect("127.0.0.1:8080").unwrap_err());
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // A connected UDP socket: its holder's next call fails too.
    let (server, client) = in_netns(&t.ns, || {
        let server = udp_socket("127.0.0.1:5353".parse().unwrap(), None);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect("127.0.0.1:5353").unwrap();
        (server, client)
    });
    let run = close(&t.ns, &["--yes", "dport", "=", ":5353"]).run();
    run.expect_code(0);
    assert!(run.stdout.contains("closed  udp  ESTAB"), "{}", run.dump());
    let mut buf = [0u8; 4];
    let e = client.recv(&mut buf).expect_err("the closed UDP socket fails");
    assert_eq!(e.raw_os_error(), Some(libc::ECONNABORTED), "{e}");
    assert_eq!(ss_lines(&t.ns, "sport = :5353").len(), 1, "the unconnected one stays");
    drop(server);
}

/// Without CAP_NET_ADMIN (taken from root with setpriv) the kernel refuses
/// SOCK_DESTROY: one error that says so, and nothing is closed.
#[test]
#[ignore = "needs root"]
fn without_cap_net_admin_the_error_says_so() {
    require_root();
    let t = two();
    let run = Portctl::new(["close", "--yes", "--netns", t.ns.name(), "dport", "=", ":8080"])
        .wrapped(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"])
        .run();
    run.expect_code(2);
    let lines = run.stderr_lines();
    assert!(
        lines[0].starts_with(
            "portctl: error: the kernel refused to close the socket (EPERM): closing sockets needs CAP_NET_ADMIN"
        ),
        "{}",
        run.dump()
    );
    assert!(lines.last().unwrap().starts_with("hint: even as root this process lacks CAP_NET_ADMIN"), "{}", run.dump());
    assert!(!run.stderr.contains("sudo"), "{}", run.dump());
    assert_eq!(ss_lines(&t.ns, "dport = :8080").len(), 2, "nothing was closed");
    // fwmark is for CAP_NET_ADMIN too: the filter says what is missing.
    let mark = Portctl::new(["conns", "--netns", t.ns.name(), "fwmark", "=", "0x1"])
        .wrapped(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"])
        .run();
    mark.expect_code(2);
    assert!(mark.stderr.contains("'fwmark' needs CAP_NET_ADMIN"), "{}", mark.dump());
}

/// An address the filter names: a connection closed by destination, as
/// `ss -K dst 10.0.0.5 dport = :5432` does, and the plan in text.
#[test]
#[ignore = "needs root"]
fn close_by_destination_like_ss_k() {
    require_root();
    let ns = Netns::new();
    output(std::process::Command::new("ip").args(["-n", ns.name(), "addr", "add", "10.0.0.5/32", "dev", "lo"]))
        .expect_code(0);
    let (l, c, s, other) = in_netns(&ns, || {
        let l = tcp_listener("10.0.0.5:5432".parse().unwrap(), None, 8);
        let c = TcpStream::connect("10.0.0.5:5432").unwrap();
        let s = l.accept().unwrap().0;
        let other = tcp_listener("127.0.0.1:5432".parse::<SocketAddr>().unwrap(), None, 8);
        (l, c, s, other)
    });
    let run =
        Portctl::new(["close", "--dry-run", "--netns", ns.name(), "dst", "10.0.0.5", "dport", "=", ":5432"]).run();
    run.expect_code(0);
    assert!(run.stdout.starts_with("would close  tcp  ESTAB  10.0.0.5:"), "{}", run.dump());
    assert!(run.stdout.ends_with("dry run: would close 1 socket\n"), "{}", run.dump());
    let sockets = Portctl::new(["conns", "--json", "--netns", ns.name(), "dport", "=", ":5432"]).run().sockets();
    assert_eq!(sockets.len(), 1);
    assert_eq!((sockets[0].proto, sockets[0].state), (Proto::Tcp, State::Established));
    drop((l, c, s, other));
}
