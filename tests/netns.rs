//! Network namespaces (issue 6): `--netns`, `--all-netns` and `who` across
//! namespaces, with namespaces and listeners the tests create.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use common::{Netns, Portctl, Sockpop};
use portctl::domain::stats::Stats;
use portctl::domain::who::WhoReport;
use portctl::model::{Socket, State};

/// Two namespaces, each with sockpop listeners from the same base port:
/// A has 2 listeners (7000, 7001), B has 1 (7000) and a UDP socket.
struct TwoNamespaces {
    // Field order = drop order: processes before their namespaces.
    pop_a: Sockpop,
    pop_b: Sockpop,
    a: Netns,
    b: Netns,
}

fn two_namespaces() -> TwoNamespaces {
    let a = Netns::new();
    let b = Netns::new();
    let pop_a = Sockpop::start(&["--procs", "1", "--listeners", "2", "--base-port", "7000"], Some(&a));
    let pop_b = Sockpop::start(&["--procs", "1", "--listeners", "1", "--udp", "1", "--base-port", "7000"], Some(&b));
    TwoNamespaces { pop_a, pop_b, a, b }
}

fn ns_inode(ns: &Netns) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name())).unwrap().ino()
}

fn listeners_on(sockets: &[Socket], port: u16) -> Vec<&Socket> {
    sockets.iter().filter(|s| s.port() == port && matches!(s.state, State::Listen | State::Unconn)).collect()
}

#[test]
#[ignore = "needs root"]
fn issue6_netns_by_name_path_and_pid() {
    let t = two_namespaces();
    for spec in [t.a.name().to_string(), format!("/run/netns/{}", t.a.name()), format!("pid:{}", t.pop_a.holders[0])] {
        let run = Portctl::new(["listen", "--json", "--netns", &spec]).run();
        run.expect_code(0);
        let sockets = run.sockets();
        let ports: BTreeSet<u16> = sockets.iter().map(|s| s.port()).collect();
        assert_eq!(ports, BTreeSet::from([7000, 7001]), "--netns {spec}: {sockets:?}");
        for s in &sockets {
            let ns = s.netns.as_ref().unwrap_or_else(|| panic!("--netns {spec}: record without netns"));
            assert_eq!(ns.inode, ns_inode(&t.a), "--netns {spec}");
            assert_eq!(
                s.owners.iter().map(|o| o.pid).collect::<Vec<_>>(),
                t.pop_a.holders,
                "owners resolved across namespaces"
            );
        }
    }
    // The name is reported when the namespace has one.
    let run = Portctl::new(["listen", "--json", "--netns", t.b.name()]).run();
    let sockets = run.sockets();
    assert_eq!(sockets.len(), 2, "B: one TCP listener and one UDP socket: {sockets:?}");
    assert!(sockets.iter().all(|s| s.netns.as_ref().unwrap().name.as_deref() == Some(t.b.name())));
    assert!(!t.pop_b.holders.is_empty());
}

#[test]
#[ignore = "needs root"]
fn issue6_all_netns_sees_the_same_port_in_two_namespaces() {
    let t = two_namespaces();
    let run = Portctl::new(["listen", "--json", "--all-netns", "--port", "7000"]).run();
    run.expect_code(0);
    let sockets = run.sockets();
    let on_7000 = listeners_on(&sockets, 7000);
    let by_ns: BTreeSet<(u64, Option<String>)> =
        on_7000.iter().map(|s| s.netns.as_ref().map(|n| (n.inode, n.name.clone())).unwrap()).collect();
    assert!(by_ns.contains(&(ns_inode(&t.a), Some(t.a.name().to_string()))), "{by_ns:?}");
    assert!(by_ns.contains(&(ns_inode(&t.b), Some(t.b.name().to_string()))), "{by_ns:?}");
    let owners = |ns: &Netns| -> Vec<u32> {
        on_7000
            .iter()
            .filter(|s| s.netns.as_ref().unwrap().inode == ns_inode(ns))
            .flat_map(|s| s.owners.iter().map(|o| o.pid))
            .collect()
    };
    assert_eq!(owners(&t.a), t.pop_a.holders);
    assert_eq!(owners(&t.b), t.pop_b.holders);
    // Tables gain a NETNS column only when several namespaces are shown.
    let table = Portctl::new(["listen", "-A", "--port", "7000"]).run();
    assert!(table.stdout.lines().next().unwrap().starts_with("NETNS"), "{}", table.stdout);
    assert!(table.stdout.contains(t.a.name()) && table.stdout.contains(t.b.name()), "{}", table.stdout);
    let one = Portctl::new(["listen", "--netns", t.a.name()]).run();
    assert!(!one.stdout.contains("NETNS"), "{}", one.stdout);
    // conns and stats take the flags too.
    Portctl::new(["conns", "--state", "listen", "--netns", t.a.name()]).run().expect_code(0);
    let stats = Portctl::new(["stats", "--json", "--netns", t.b.name()]).run();
    stats.expect_code(0);
    assert!(stats.stdout.contains("\"total\": 2"), "{}", stats.stdout);
}

#[test]
#[ignore = "needs root"]
fn issue6_who_answers_across_namespaces() {
    let t = two_namespaces();
    // Port 7000 is free here but taken in A and B.
    let run = Portctl::new(["who", "7000/tcp", "--json"]).run();
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    let here_free = r.sockets.iter().all(|s| s.port() != 7000 || s.state != State::Listen);
    assert!(here_free, "nothing of ours listens on 7000 in the host namespace");
    run.expect_code(1);
    let elsewhere: BTreeSet<u64> = r.other_netns.iter().filter_map(|s| s.netns.as_ref().map(|n| n.inode)).collect();
    assert!(elsewhere.contains(&ns_inode(&t.a)) && elsewhere.contains(&ns_inode(&t.b)), "{:?}", r.other_netns);
    assert!(r.hints.iter().any(|h| h.contains("free here, but") && h.contains("network namespace")), "{:?}", r.hints);
    let text = Portctl::new(["who", "7000/tcp"]).run();
    assert!(text.stdout.contains("in other network namespaces"), "{}", text.stdout);

    // Asked about A: in use there by A's holder; B is "elsewhere".
    let run = Portctl::new(["who", "7000/tcp", "--json", "--netns", t.a.name()]).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.verdict.in_use);
    assert_eq!(r.holders.iter().map(|h| h.pid).collect::<Vec<_>>(), t.pop_a.holders);
    assert!(r.other_netns.iter().any(|s| s.netns.as_ref().unwrap().inode == ns_inode(&t.b)));
    assert!(r.other_netns.iter().all(|s| s.netns.as_ref().unwrap().inode != ns_inode(&t.a)));
}

/// The ephemeral range is a per-namespace sysctl: `stats --netns X` reads
/// X's, not the host's.
#[test]
#[ignore = "needs root"]
fn stats_reads_the_port_range_of_the_namespace_asked_about() {
    let ns = Netns::new();
    let set = common::output(ns.command("sysctl").args(["-qw", "net.ipv4.ip_local_port_range=40000 40100"]));
    assert!(set.status.success(), "{}", set.dump());
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    assert_ne!(host.split_whitespace().collect::<Vec<_>>(), ["40000", "40100"], "the host must differ for this test");
    let run = Portctl::new(["stats", "--json", "--netns", ns.name()]).run();
    run.expect_code(0);
    let stats: Stats = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    let e = stats.ephemeral.expect("ephemeral section");
    assert_eq!((e.range.lo, e.range.hi), (40000, 40100));
    assert_eq!(e.usable, 101);
}

#[test]
#[ignore = "needs root"]
fn issue6_setns_never_moves_the_main_thread() {
    let t = two_namespaces();
    let before = portctl::netns::current_inode();
    let ns = portctl::netns::Netns::open(t.a.name()).unwrap();
    let inside = ns.run(portctl::netns::current_inode).unwrap();
    assert_eq!(inside, Some(ns_inode(&t.a)), "the worker thread entered A");
    assert_eq!(portctl::netns::current_inode(), before, "the calling thread did not move");
}

#[test]
#[ignore = "needs root"]
fn issue6_not_root_degrades_with_a_notice() {
    let t = two_namespaces();
    let (bin, _copy) = common::portctl_for_others();
    let run = Portctl::new(["listen", "--all-netns", "--json"]).as_user(65534, 65534, &bin).run();
    assert!([0, 1].contains(&run.code()), "{}", run.dump());
    assert!(!run.stderr.contains("panicked"));
    assert!(run.stderr.contains("network namespace"), "a notice says what could not be looked at: {}", run.dump());
    let sockets = run.sockets();
    assert!(
        sockets.iter().all(|s| s.netns.as_ref().is_none_or(|n| n.inode != ns_inode(&t.a))),
        "nobody cannot enter A"
    );
    // Naming one: a clear error.
    let run = Portctl::new(["listen", "--netns", t.a.name()]).as_user(65534, 65534, &bin).run();
    run.expect_code(2);
    assert!(run.stderr.starts_with("portctl: error:") && run.stderr.contains("root"), "{}", run.dump());
    // who says what it could not check.
    let run = Portctl::new(["who", "7000/tcp", "--json"]).as_user(65534, 65534, &bin).run();
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert!(r.hints.iter().any(|h| h.contains("could not look into")), "{:?}", r.hints);
}

#[test]
fn issue6_unknown_namespace_is_a_clear_error() {
    for args in [
        vec!["listen", "--netns", "portctl-no-such-ns"],
        vec!["who", "80", "--netns", "portctl-no-such-ns"],
        vec!["conns", "--netns", "pid:abc"],
        vec!["stats", "--netns", "/etc/hostname"],
    ] {
        let run = Portctl::new(args.clone()).run();
        run.expect_code(2);
        assert!(run.stderr.starts_with("portctl: error:"), "{args:?}: {}", run.dump());
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}

/// The /proc/net fallback reads the namespace asked about: /proc/net is the
/// namespace of portctl's first thread, so it must read
/// /proc/thread-self/net on the thread that entered the namespace (before
/// that fix, `--netns A` listed the host's listeners).
#[test]
#[ignore = "needs root"]
fn proc_net_fallback_reads_the_namespace_asked_about() {
    let t = two_namespaces();
    let run = Portctl::new(["listen", "--json", "--netns", t.a.name()]).env("PORTCTL_SOURCE", "proc").run();
    run.expect_code(0);
    assert!(run.stderr.contains("reading /proc/net as PORTCTL_SOURCE=proc asks"), "{}", run.dump());
    let ports: BTreeSet<u16> = run.sockets().iter().map(|s| s.port()).collect();
    assert_eq!(ports, BTreeSet::from([7000, 7001]), "{}", run.dump());
    assert!(!t.pop_b.holders.is_empty());
}

/// A TCP connection between two namespaces over a veth pair: with
/// `--all-netns`, each end's peer is the other, tagged with its namespace;
/// loopback connections in two namespaces with the same 4-tuple are not
/// taken for each other.
#[test]
#[ignore = "needs root"]
fn tcp_peers_across_namespaces_over_veth() {
    use std::os::fd::AsRawFd;
    common::require_root();
    let a = Netns::new();
    let b = Netns::new();
    let veth_a = format!("pv{}", std::process::id() % 100_000);
    let veth_b = format!("{veth_a}b");
    let ip = |args: &[&str]| {
        let run = common::output(std::process::Command::new("ip").args(args));
        assert!(run.status.success(), "ip {args:?}\n{}", run.dump());
    };
    ip(&["link", "add", &veth_a, "netns", a.name(), "type", "veth", "peer", "name", &veth_b, "netns", b.name()]);
    ip(&["-n", a.name(), "addr", "add", "10.197.0.1/24", "dev", &veth_a]);
    ip(&["-n", b.name(), "addr", "add", "10.197.0.2/24", "dev", &veth_b]);
    ip(&["-n", a.name(), "link", "set", &veth_a, "up"]);
    ip(&["-n", b.name(), "link", "set", &veth_b, "up"]);
    let listener = common::in_netns(&a, || common::tcp_listener("10.197.0.1:0".parse().unwrap(), None, 4));
    let port = listener.local_addr().unwrap().port();
    let client = common::in_netns(&b, || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // The link may take a moment to come up (DAD is off for IPv4).
            match std::net::TcpStream::connect(("10.197.0.1", port)) {
                Ok(c) => break c,
                Err(e) => assert!(std::time::Instant::now() < deadline, "connect over the veth: {e}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let (server, _) = listener.accept().unwrap();
    let run = Portctl::new(["conns", "--all-netns", "--port", &port.to_string(), "--json"]).run();
    run.expect_code(0);
    let v = run.sockets();
    let find = |fd: i32| v.iter().find(|s| s.inode == common::socket_inode(fd)).unwrap_or_else(|| panic!("{v:?}"));
    let (c, s) = (find(client.as_raw_fd()), find(server.as_raw_fd()));
    let pc = c.peer.as_ref().expect("the client's peer: the server in the other namespace");
    assert_eq!((pc.inode, pc.netns.as_ref().map(|n| n.inode)), (s.inode, Some(ns_inode(&a))));
    let ps = s.peer.as_ref().expect("the server's peer");
    assert_eq!((ps.inode, ps.netns.as_ref().map(|n| n.inode)), (c.inode, Some(ns_inode(&b))));
    // Without --all-netns, from the client's namespace: no peer is known.
    let run = Portctl::new(["conns", "--port", &port.to_string(), "--json"]).netns(&b).run();
    let v = run.sockets();
    assert!(v.iter().all(|s| s.peer.is_none()), "{v:?}");
    drop((client, server));
}
