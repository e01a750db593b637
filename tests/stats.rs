//! `portctl stats` against `ss`: counts per protocol, family and state
//! (`ss -tuan`, `ss -tan state X`, `ss -s`), ephemeral port usage with a
//! namespace's own small port range, TIME_WAIT top talkers and CLOSE_WAIT by
//! process. `--json` is deserialised into `portctl::domain::stats::Stats`,
//! whose `deny_unknown_fields` makes each test a check of the contract.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, TcpListener, TcpStream};

use common::*;
use portctl::domain::stats::{DestinationUsage, Side, Stats, Talker, TimeWaitPeer};
use portctl::model::PortRange as PortSpan;
use portctl::model::{Endpoint, Family, Proto, State};

fn stats(args: &[&str]) -> Portctl {
    Portctl::new(["stats"]).args(args)
}

fn parse(run: &Run) -> Stats {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{}: stdout is not a stats object: {e}\n{}", run.what, run.dump()))
}

fn count(st: &Stats, proto: Proto, state: State) -> usize {
    st.states
        .iter()
        .find(|c| c.proto == proto && c.state == state)
        .map_or_else(|| panic!("no {proto} {state} row in {:?}", st.states), |c| c.total)
}

/// `n` connections to `l`: (client, server) ends.
fn connect_n(l: &TcpListener, n: usize) -> Vec<(TcpStream, TcpStream)> {
    let _lock = spawn_lock();
    (0..n)
        .map(|_| {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            (c, s)
        })
        .collect()
}

fn sysctl_in(ns: &Netns, name: &str, value: &str) {
    let path = format!("/proc/sys/net/ipv4/{name}");
    let run = output(ns.command("sh").args(["-c", &format!("echo '{value}' > {path}")]));
    run.expect_code(0);
    let back = output(ns.command("cat").arg(&path));
    assert_eq!(back.stdout.split_whitespace().collect::<Vec<_>>().join(" "), value, "{path} in {}", ns.name());
}

// ---------------------------------------------------------------------------
// 1. Without root: the contract, the sections, the exit status

#[test]
fn json_is_one_object_whose_numbers_add_up() {
    let run = stats(&["--json"]).run();
    run.expect_code(0);
    let st = parse(&run);
    assert_eq!(st.schema_version, portctl::model::JSON_SCHEMA_VERSION);
    assert_eq!(st.protocols.iter().map(|p| p.total).sum::<usize>(), st.total);
    for p in &st.protocols {
        assert_eq!(p.ipv4 + p.ipv6, p.total);
        let by_state: usize = st.states.iter().filter(|s| s.proto == p.proto).map(|s| s.total).sum();
        assert_eq!(by_state, p.total, "{:?}: states add up to the protocol's total", p.proto);
    }
    assert_eq!(st.states.len(), 13, "every TCP state and UDP's two, zeros included");
    let e = st.ephemeral.as_ref().expect("the sysctls are readable here");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let r: Vec<u16> = range.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(e.range, PortSpan { lo: r[0], hi: r[1] });
    assert!(e.usable <= e.range.len() && e.warn_percent == 80);
    assert!(e.busiest.len() <= 10 && st.time_wait_top.len() <= 10);
    assert!(st.close_wait.is_some());

    let run = stats(&["--json", "--no-owners", "--top", "1"]).run();
    run.expect_code(0);
    let st = parse(&run);
    assert!(st.close_wait.is_none());
    assert!(st.time_wait_top.len() <= 1);
}

#[test]
fn text_shows_every_section() {
    let run = stats(&[]).run();
    run.expect_code(0);
    for title in ["SOCKETS", "EPHEMERAL PORTS  range ", "TIME_WAIT TOP TALKERS", "CLOSE_WAIT BY PROCESS"] {
        assert!(run.stdout.contains(title), "no {title:?}\n{}", run.dump());
    }
    assert!(run.stdout.contains("PROTO  STATE"), "{}", run.dump());
    let run = stats(&["--no-owners"]).run();
    run.expect_code(0);
    assert!(run.stdout.contains("CLOSE_WAIT BY PROCESS  not looked up (--no-owners)"), "{}", run.dump());
}

#[test]
fn bad_flags_exit_2_with_one_error_line() {
    for args in [&["--top", "x"][..], &["--top", "-1"], &["--state", "all"], &["--color", "sometimes"], &["--jsonl"]] {
        let run = stats(args).run();
        run.expect_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}\n{}", run.dump());
        assert!(lines[0].starts_with("portctl: error: "), "{args:?}: {:?}", lines[0]);
    }
}

// ---------------------------------------------------------------------------
// 2. In namespaces of the test's own

#[test]
#[ignore = "needs root"]
fn an_empty_namespace_is_still_a_summary() {
    require_root();
    let ns = Netns::new();
    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "");
    let st = parse(&run);
    assert_eq!(st.total, 0);
    assert!(st.time_wait_top.is_empty());
    assert_eq!(st.ephemeral.as_ref().map(|e| e.destinations), Some(0));
    let cw = st.close_wait.unwrap();
    assert_eq!((cw.total, cw.unowned, cw.processes.len()), (0, 0, 0));
    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    assert!(run.stdout.contains("SOCKETS  0 in total"), "{}", run.dump());
}

/// `ss -s`: the TCP line and the transport table.
#[derive(Debug, Default)]
struct SsSummary {
    estab: usize,
    timewait: usize,
    /// Transport -> (IP, IPv6).
    transports: BTreeMap<String, (usize, usize)>,
}

fn ss_summary(ns: &Netns) -> SsSummary {
    let run = output(ns.command("ss").arg("-s"));
    run.expect_code(0);
    let mut out = SsSummary::default();
    let num_after = |line: &str, key: &str| -> usize {
        let at = line.find(key).unwrap_or_else(|| panic!("no {key:?} in ss -s line {line:?}")) + key.len();
        line[at..].trim_start().chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    };
    for line in run.stdout.lines() {
        if line.starts_with("TCP:") {
            out.estab = num_after(line, "estab");
            out.timewait = num_after(line, "timewait");
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 && f[1..].iter().all(|x| x.parse::<usize>().is_ok()) {
            out.transports.insert(f[0].to_string(), (f[2].parse().unwrap(), f[3].parse().unwrap()));
        }
    }
    assert!(out.transports.contains_key("TCP") && out.transports.contains_key("UDP"), "ss -s:\n{}", run.stdout);
    out
}

fn ss_count(ns: &Netns, state: &str) -> usize {
    let run = output(ns.command("ss").args(["-tanH", "state", state]));
    run.expect_code(0);
    run.stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

fn family(addr: &IpAddr) -> Family {
    Family::of(addr)
}

fn canonical(e: Endpoint) -> Endpoint {
    match e.addr {
        IpAddr::V6(a) => Endpoint { addr: a.to_ipv4_mapped().map_or(e.addr, IpAddr::V4), port: e.port },
        IpAddr::V4(_) => e,
    }
}

/// ss's state column as a state (ss prints TCP_CLOSE as UNCONN for both).
fn label_state(proto: Proto, label: &str) -> State {
    match (proto, label) {
        (Proto::Udp, "UNCONN") => State::Unconn,
        (Proto::Tcp, "UNCONN") => State::Close,
        _ => State::TCP.into_iter().find(|s| s.label() == label).unwrap_or_else(|| panic!("ss state {label}")),
    }
}

#[test]
#[ignore = "needs root"]
fn numbers_agree_with_ss_on_a_busy_namespace() {
    require_root();
    let ns = Netns::new();
    let v4 = Sockpop::start(
        &[
            "--procs",
            "3",
            "--listeners",
            "50",
            "--established",
            "600",
            "--time-wait",
            "300",
            "--close-wait",
            "120",
            "--udp",
            "20",
            "--base-port",
            "20000",
        ],
        Some(&ns),
    );
    let v6 = Sockpop::start(
        &["--procs", "2", "--listeners", "10", "--established", "50", "--udp", "5", "--v6", "--base-port", "30000"],
        Some(&ns),
    );

    // portctl, then ss right after: nothing here decays within seconds.
    let run = stats(&["--json", "--top", "10"]).netns(&ns).run();
    let all = ss("-tuanpH", Some(&ns));
    let summary = ss_summary(&ns);
    run.expect_code(0);
    assert_eq!(run.stderr, "", "{}", run.dump());
    let st = parse(&run);
    assert!(st.total >= 1500, "only {} sockets: sockpop did not build the population", st.total);
    assert_eq!(st.total, all.len(), "every socket ss -tuan lists");

    // Per protocol, family and state, against ss -tuan.
    let mut theirs: BTreeMap<(Proto, State, Family), usize> = BTreeMap::new();
    for s in &all {
        *theirs.entry((s.proto, label_state(s.proto, &s.state), family(&s.local.addr))).or_default() += 1;
    }
    for c in &st.states {
        let get = |f| theirs.get(&(c.proto, c.state, f)).copied().unwrap_or(0);
        assert_eq!((c.ipv4, c.ipv6), (get(Family::Ipv4), get(Family::Ipv6)), "{:?} {:?}", c.proto, c.state);
    }
    // `ss -tan state X | wc -l`, the words.
    for (state, ss_name) in [
        (State::Established, "established"),
        (State::TimeWait, "time-wait"),
        (State::CloseWait, "close-wait"),
        (State::Listen, "listening"),
        (State::FinWait2, "fin-wait-2"),
        (State::SynRecv, "syn-recv"),
    ] {
        assert_eq!(count(&st, Proto::Tcp, state), ss_count(&ns, ss_name), "ss -tan state {ss_name}");
    }
    for state in [State::Established, State::TimeWait, State::CloseWait, State::Listen] {
        assert!(count(&st, Proto::Tcp, state) > 0, "no {state} socket in the population");
    }
    // `ss -s`: UDP per family; TCP "estab" is CurrEstab (ESTABLISHED and
    // CLOSE_WAIT); TCP per family counts full sockets, and "timewait" the
    // TIME_WAIT mini-sockets (orphaned FIN_WAIT2 ones included), so together
    // they are every TCP socket.
    let tcp = st.protocols.iter().find(|p| p.proto == Proto::Tcp).unwrap();
    let udp = st.protocols.iter().find(|p| p.proto == Proto::Udp).unwrap();
    assert_eq!(summary.transports["UDP"], (udp.ipv4, udp.ipv6), "ss -s UDP");
    assert_eq!(summary.estab, count(&st, Proto::Tcp, State::Established) + count(&st, Proto::Tcp, State::CloseWait));
    let (tcp4, tcp6) = summary.transports["TCP"];
    assert_eq!(tcp4 + tcp6 + summary.timewait, tcp.total, "ss -s: TCP IP + IPv6 + timewait {summary:?}");
    assert!(summary.timewait >= count(&st, Proto::Tcp, State::TimeWait), "{summary:?}");

    // TIME_WAIT top talkers, computed from ss's list.
    let mut tw: BTreeMap<Endpoint, usize> = BTreeMap::new();
    for s in all.iter().filter(|s| s.proto == Proto::Tcp && s.state == "TIME-WAIT") {
        *tw.entry(canonical(s.peer.unwrap())).or_default() += 1;
    }
    let mut want: Vec<Talker> = tw.into_iter().map(|(remote, count)| Talker { remote, count }).collect();
    want.sort_by(|a, b| b.count.cmp(&a.count).then(a.remote.cmp(&b.remote)));
    want.truncate(10);
    assert!(!want.is_empty());
    assert_eq!(st.time_wait_top, want);
    // The same TIME_WAIT sockets by side: sockpop's clients close first, so
    // every one is on the client side (its local port has no listener).
    let listening: BTreeSet<u16> = all.iter().filter(|s| s.state == "LISTEN").map(|s| s.local.port).collect();
    let mut tw: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
    for s in all.iter().filter(|s| s.proto == Proto::Tcp && s.state == "TIME-WAIT") {
        assert!(!listening.contains(&s.local.port), "sockpop's TIME_WAIT is the client end: {s:?}");
        let peer = canonical(s.peer.unwrap());
        *tw.entry((peer.addr, peer.port)).or_default() += 1;
    }
    let mut want: Vec<(Side, IpAddr, u16, usize)> =
        tw.into_iter().map(|((addr, port), count)| (Side::Out, addr, port, count)).collect();
    want.sort_by(|a, b| b.3.cmp(&a.3).then((a.1, a.2).cmp(&(b.1, b.2))));
    want.truncate(10);
    let got: Vec<(Side, IpAddr, u16, usize)> =
        st.time_wait_peers.iter().map(|t| (t.side, t.peer, t.port, t.count)).collect();
    assert_eq!(got, want);

    // CLOSE_WAIT by process, from ss -p.
    let cw = st.close_wait.as_ref().unwrap();
    let mut by_pid: BTreeMap<u32, usize> = BTreeMap::new();
    let mut unowned = 0;
    let ss_cw: Vec<&SsSocket> = all.iter().filter(|s| s.state == "CLOSE-WAIT").collect();
    for s in &ss_cw {
        if s.users.is_empty() {
            unowned += 1;
        }
        for pid in s.pids() {
            *by_pid.entry(pid).or_default() += 1;
        }
    }
    assert_eq!((cw.total, cw.unowned), (ss_cw.len(), unowned));
    let got: BTreeMap<u32, usize> = cw.processes.iter().map(|p| (p.pid, p.count)).collect();
    assert_eq!(got, by_pid);
    assert!(cw.processes.iter().all(|p| p.name == "sockpop"), "{:?}", cw.processes);
    assert!(cw.processes.windows(2).all(|w| w[0].count >= w[1].count), "most first");

    // Ephemeral ports, from ss's list and the namespace's sysctls.
    let e = st.ephemeral.as_ref().unwrap();
    let range = output(ns.command("cat").arg("/proc/sys/net/ipv4/ip_local_port_range")).stdout;
    let r: Vec<u16> = range.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(e.range, PortSpan { lo: r[0], hi: r[1] });
    let mut ports: BTreeMap<(Proto, Endpoint), BTreeSet<u16>> = BTreeMap::new();
    for s in &all {
        let Some(peer) = s.peer else { continue };
        if (r[0]..=r[1]).contains(&s.local.port) && !matches!(s.state.as_str(), "LISTEN" | "UNCONN") {
            ports.entry((s.proto, canonical(peer))).or_default().insert(s.local.port);
        }
    }
    assert_eq!(e.destinations, ports.len());
    let mut want: Vec<(Proto, Endpoint, u32)> = ports.iter().map(|((p, r), set)| (*p, *r, set.len() as u32)).collect();
    want.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    want.truncate(10);
    let got: Vec<(Proto, Endpoint, u32)> = e.busiest.iter().map(|d| (d.proto, d.remote, d.ports)).collect();
    assert_eq!(got, want);
    assert!(e.over_threshold.is_empty());

    // The text form shows the same numbers.
    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    let tcp_all = run.stdout.lines().find(|l| l.starts_with("tcp") && l.contains("(all)")).unwrap();
    let f: Vec<&str> = tcp_all.split_whitespace().collect();
    assert_eq!(f[2..], [tcp.ipv4.to_string(), tcp.ipv6.to_string(), tcp.total.to_string()], "{tcp_all}");
    drop((v4, v6));
}

#[test]
#[ignore = "needs root"]
fn ephemeral_exhaustion_warns_on_stderr_and_in_json() {
    require_root();
    let ns = Netns::new();
    // 20 ports, 2 of them reserved: 18 usable; 16 connections to one
    // destination use 88.9% of them, 2 to another 11.1%.
    sysctl_in(&ns, "ip_local_port_range", "40000 40019");
    sysctl_in(&ns, "ip_local_reserved_ports", "40018-40019");
    let held = in_netns(&ns, || {
        let busy = TcpListener::bind("127.0.0.1:9000").unwrap();
        let quiet = TcpListener::bind("127.0.0.1:9001").unwrap();
        let a = connect_n(&busy, 16);
        let b = connect_n(&quiet, 2);
        (busy, quiet, a, b)
    });
    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    let st = parse(&run);
    let e = st.ephemeral.as_ref().unwrap();
    assert_eq!(e.range, PortSpan { lo: 40000, hi: 40019 });
    assert_eq!(e.reserved, [PortSpan { lo: 40018, hi: 40019 }]);
    assert_eq!((e.usable, e.destinations), (18, 2));
    let dest = |port: u16, ports: u32, percent: f64| DestinationUsage {
        proto: Proto::Tcp,
        remote: Endpoint { addr: "127.0.0.1".parse().unwrap(), port },
        ports,
        percent,
    };
    assert_eq!(e.busiest, [dest(9000, 16, 88.9), dest(9001, 2, 11.1)]);
    assert_eq!(e.over_threshold, [dest(9000, 16, 88.9)]);
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", run.dump());
    assert!(
        lines[0].starts_with("portctl: warning: tcp 127.0.0.1:9000: 16 of 18 ephemeral ports in use (88.9%)"),
        "{:?}",
        lines[0]
    );
    assert!(lines[0].contains("ip_local_port_range"), "{:?}", lines[0]);
    // the JSON on stdout carries no warning text
    assert!(!run.stdout.contains("warning"));

    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    assert!(
        run.stdout.contains("range 40000-40019, reserved 40018-40019: 18 usable; 2 destinations"),
        "{}",
        run.dump()
    );
    let row = run.stdout.lines().find(|l| l.contains("127.0.0.1:9000")).unwrap();
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["tcp", "127.0.0.1:9000", "16", "88.9%"]);
    assert_eq!(run.stderr_lines().len(), 1);
    drop(held);
}

#[test]
#[ignore = "needs root"]
fn close_wait_owners_come_from_proc_and_no_owners_skips_them() {
    require_root();
    let ns = Netns::new();
    // 7 CLOSE_WAIT sockets held by this process: the peers closed, we did not.
    let held = in_netns(&ns, || {
        let l = TcpListener::bind("127.0.0.1:9000").unwrap();
        let servers: Vec<TcpStream> = connect_n(&l, 7).into_iter().map(|(_c, s)| s).collect();
        (l, servers)
    });
    wait_until("7 CLOSE_WAIT sockets", || ss_count(&ns, "close-wait") == 7);

    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "");
    let cw = parse(&run).close_wait.unwrap();
    assert_eq!((cw.total, cw.unowned, cw.processes.len()), (7, 0, 1));
    assert_eq!((cw.processes[0].pid, cw.processes[0].count), (std::process::id(), 7));
    assert_eq!(cw.processes[0].user, "root");

    // As nobody, root's descriptors are unreadable: the walk says so...
    let (bin, _copy) = portctl_for_others();
    let run = stats(&["--json"]).netns(&ns).as_user(65534, 65534, &bin).run();
    run.expect_code(0);
    let cw = parse(&run).close_wait.unwrap();
    assert_eq!((cw.total, cw.unowned), (7, 7));
    assert!(run.stderr.contains("owners of 7 sockets are hidden"), "{}", run.dump());
    // ...and with --no-owners there is no walk: no owners, no warning.
    let run = stats(&["--json", "--no-owners"]).netns(&ns).as_user(65534, 65534, &bin).run();
    run.expect_code(0);
    assert_eq!(run.stderr, "", "--no-owners must not walk /proc");
    let st = parse(&run);
    assert!(st.close_wait.is_none());
    assert_eq!(count(&st, Proto::Tcp, State::CloseWait), 7);
    drop(held);
}

/// TIME_WAIT stays with whichever end closed first. A server that closes
/// first piles it up on its own port, one client port each: grouped by
/// side, its five connections are one row, not five rows of one.
#[test]
#[ignore = "needs root"]
fn time_wait_peers_tell_the_server_side_from_the_client_side() {
    use std::io::Read;
    require_root();
    let ns = Netns::new();
    let eof = |mut s: TcpStream| {
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the peer closed: EOF");
    };
    let listeners = in_netns(&ns, || {
        let server = TcpListener::bind("127.0.0.1:9000").unwrap();
        let other = TcpListener::bind("127.0.0.1:9001").unwrap();
        for (client, accepted) in connect_n(&server, 5) {
            drop(accepted); // the server closes first: its end goes to TIME_WAIT
            eof(client);
        }
        for (client, accepted) in connect_n(&other, 3) {
            drop(client); // the client closes first
            eof(accepted);
        }
        (server, other)
    });
    wait_until("8 TIME_WAIT sockets", || ss_count(&ns, "time-wait") == 8);
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let peer = |side, port, count| TimeWaitPeer {
        side,
        peer: lo,
        port,
        service: portctl::services::name(Proto::Tcp, port).map(String::from),
        count,
    };
    let want = [peer(Side::In, 9000, 5), peer(Side::Out, 9001, 3)];
    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    assert_eq!(parse(&run).time_wait_peers, want, "{}", run.dump());

    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("TIME_WAIT TOP TALKERS"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let svc = |p| want.iter().find(|w| w.port == p).unwrap().service.clone().unwrap_or("-".into());
    assert_eq!(
        rows,
        [["in", "127.0.0.1", "9000", &svc(9000), "5"], ["out", "127.0.0.1", "9001", &svc(9001), "3"]],
        "{}",
        run.dump()
    );

    // With the listeners gone, the ports tell: 9000 is outside the
    // ephemeral range, the clients' ports inside.
    drop(listeners);
    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    assert_eq!(parse(&run).time_wait_peers, want, "{}", run.dump());
}

// ---------------------------------------------------------------------------
// 3. Accept queues, UDP drops and the kernel's counters (issue 16), with
//    nstat as the oracle

/// Every TcpExt, Tcp, Udp and Udp6 counter portctl read is nstat's, and the
/// other way round. `before` and `after` are nstat right before and after
/// portctl: counters move on their own (retransmitted SYNs), so each value
/// must lie between the two, and equal them when they agree.
fn counters_match_nstat(
    k: &portctl::domain::stats::Kernel,
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) {
    let mut checked = 0;
    for g in &k.counters.groups {
        for (name, v) in &g.values {
            let id = format!("{}{name}", g.name);
            if NSTAT_SKIPS.contains(&id.as_str()) {
                continue;
            }
            let (lo, hi) = (before.get(&id), after.get(&id));
            let (Some(&lo), Some(&hi)) = (lo, hi) else { panic!("nstat has no {id}, portctl says {v}") };
            assert!(lo <= *v && *v <= hi, "{id}: portctl {v}, nstat {lo} before and {hi} after");
            checked += 1;
        }
    }
    for id in after.keys() {
        if let Some((group, name)) = nstat_group(id) {
            assert!(k.counters.get(group, name).is_some(), "nstat has {id}, portctl does not");
        }
    }
    assert!(checked > 150, "only {checked} counters compared");
}

fn kernel_of(st: &Stats) -> &portctl::domain::stats::Kernel {
    st.kernel.as_ref().expect("the kernel's counters are readable")
}

fn problem<'a>(k: &'a portctl::domain::stats::Kernel, group: &str, name: &str) -> &'a portctl::domain::stats::Problem {
    k.problems
        .iter()
        .find(|p| p.group == group && p.name == name)
        .unwrap_or_else(|| panic!("no problem {group} {name} in {:#?}", k.problems))
}

#[test]
#[ignore = "needs root"]
fn a_full_accept_queue_is_listed_warned_about_and_counted_as_nstat_counts() {
    require_root();
    let ns = Netns::new();
    // listen(1), never accepting, 12 clients: 2 wait in the queue, the
    // others' handshakes are dropped.
    let q = FullQueue::new(&ns, "127.0.0.1:8080", 1, 1, 12);
    wait_until("ListenOverflows above 0", || nstat(&ns)["TcpExtListenOverflows"] > 0);

    // Run from the host, reading the namespace from a thread that entered it.
    let before = nstat(&ns);
    let run = stats(&["--json", "--netns", ns.name()]).run();
    let after = nstat(&ns);
    run.expect_code(0);
    let st = parse(&run);
    let k = kernel_of(&st);
    counters_match_nstat(k, &before, &after);

    let full = &st.listeners.full;
    assert_eq!(full.len(), 1, "{:#?}", st.listeners);
    let l = &full[0];
    assert_eq!(l.local.to_string(), "127.0.0.1:8080");
    assert_eq!((l.accept_queue.queued, l.accept_queue.backlog, l.accept_queue.full), (2, 1, true));
    assert_eq!(l.inode, socket_inode(std::os::fd::AsRawFd::as_raw_fd(&q.listener)));
    assert_eq!(l.processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [std::process::id()], "its holder: us");
    let default_somaxconn: u32 =
        output(ns.command("cat").arg("/proc/sys/net/core/somaxconn")).stdout.trim().parse().unwrap();
    assert_eq!(st.listeners.somaxconn, Some(default_somaxconn));
    assert!(st.listeners.clamped.is_empty(), "backlog 1 is not somaxconn: {:#?}", st.listeners.clamped);

    let overflows = problem(k, "TcpExt", "ListenOverflows");
    assert!(overflows.value >= 1 && overflows.delta.is_none(), "{overflows:?}");
    assert_eq!(Some(overflows.value), k.counters.get("TcpExt", "ListenOverflows"));
    assert!(problem(k, "TcpExt", "ListenDrops").value >= overflows.value);
    assert!(k.sample.is_none(), "no sample without --interval");
    // Only non-zero trouble counters are problems.
    assert!(k.problems.iter().all(|p| p.value > 0), "{:#?}", k.problems);
    // The socket table of the namespace, against its sockstat.
    let tcp = st.protocols.iter().find(|p| p.proto == Proto::Tcp).unwrap();
    assert_eq!(k.sockstat.tcp_inuse.map(|n| n as usize), Some(tcp.total - count(&st, Proto::Tcp, State::TimeWait)));
    assert!(k.tcp_mem.is_some() && k.tcp_max_orphans.is_some(), "host-wide limits read from portctl's namespace");
    let host_mem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem").unwrap();
    let m = k.tcp_mem.unwrap();
    assert_eq!(
        format!("{} {} {}", m.min, m.pressure, m.max),
        host_mem.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert!(k.tcp_max_tw_buckets.is_some());
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{}", run.dump());
    assert!(
        lines[0].starts_with("portctl: warning: tcp 127.0.0.1:8080 (")
            && lines[0].contains("accept queue full (2 waiting, backlog 1): the process is not accepting fast enough"),
        "{}",
        run.dump()
    );

    // The text: the listener, and the counters among the problems.
    let run = stats(&["--netns", ns.name()]).run();
    run.expect_code(0);
    let row = run.stdout.lines().find(|l| l.starts_with("127.0.0.1:8080")).unwrap_or_else(|| panic!("{}", run.dump()));
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f[..4], ["127.0.0.1:8080", "2", "1", "full:"], "{row}");
    assert!(run.stdout.contains("\nLISTEN QUEUES  net.core.somaxconn "), "{}", run.dump());
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("PROBLEMS"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(problems.starts_with(&["TcpExtListenOverflows", "TcpExtListenDrops"]), "{problems:?}\n{}", run.dump());
    assert!(run.stdout.contains("\nSOCKET MEMORY "), "{}", run.dump());
    drop(q);
}

#[test]
#[ignore = "needs root"]
fn interval_reads_the_counters_twice_and_gives_rates() {
    require_root();
    let ns = Netns::new();
    let q = FullQueue::new(&ns, "127.0.0.1:8080", 1, 1, 3);
    // New SYNs keep arriving at the full queue while portctl samples.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let knocker = knock_until(&ns, q.addr, stop.clone(), 2000);
    let before = nstat(&ns);
    let run = stats(&["--json", "--interval", "1s", "--no-owners"]).netns(&ns).run();
    let after = nstat(&ns);
    run.expect_code(0);
    let st = parse(&run);
    let k = kernel_of(&st);
    counters_match_nstat(k, &before, &after);
    let s = k.sample.as_ref().expect("--interval samples");
    assert!((1000..5000).contains(&s.interval_ms), "{s:?}");
    let rise = s.deltas.get("TcpExt", "ListenOverflows").unwrap();
    let (lo, hi) = (before["TcpExtListenOverflows"], after["TcpExtListenOverflows"]);
    assert!(rise > 0 && rise <= hi - lo, "rise {rise}, nstat {lo} -> {hi}");
    assert!(k.counters.get("TcpExt", "ListenOverflows").unwrap() - rise >= lo, "the first read came after nstat's");
    let p = problem(k, "TcpExt", "ListenOverflows");
    assert_eq!(p.delta, Some(rise));
    let per_second = p.per_second.unwrap();
    assert!((per_second - rise as f64 * 1000.0 / s.interval_ms as f64).abs() < 1e-9, "{p:?}");
    // Run inside the namespace, portctl sees no host-wide tcp_mem: unknown, not made up.
    assert_eq!(k.tcp_mem, None);

    // The text: the rise among the problems, and every counter that changed.
    let run = stats(&["--interval", "500ms", "--no-owners"]).netns(&ns).run();
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("PROBLEMS  kernel counters that signal trouble: since the namespace was created, and in 0.5 s"),
        "{}",
        run.dump()
    );
    let changed: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("KERNEL COUNTERS  those that changed in"))
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = changed.iter().find(|r| r[0] == "TcpExtListenOverflows").unwrap_or_else(|| panic!("{}", run.dump()));
    assert!(row[2].parse::<i64>().unwrap() > 0, "{row:?}");
    assert!(changed.iter().all(|r| r.len() == 4 && r[2] != "0"), "only counters that changed: {changed:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let knocks = knocker.join().unwrap();
    assert!(knocks > 0);
    drop(q);
}

#[test]
fn bad_intervals_exit_2_with_one_error_line() {
    for args in [
        &["--interval", "0"][..],
        &["--interval", "-1s"],
        &["-i", "x"],
        &["--interval", "1s", "--format", "prometheus"],
    ] {
        let run = stats(args).run();
        run.expect_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr_lines().len(), 1, "{args:?}\n{}", run.dump());
        assert!(run.stderr.starts_with("portctl: error: "), "{args:?}\n{}", run.dump());
    }
}

/// A listen() backlog above net.core.somaxconn becomes somaxconn: `stats`
/// lists the listener, `who` says so with both values.
#[test]
#[ignore = "needs root"]
fn a_backlog_capped_by_somaxconn_is_listed() {
    require_root();
    let ns = Netns::new();
    let run = output(ns.command("sysctl").args(["-qw", "net.core.somaxconn=8"]));
    run.expect_code(0);
    let (capped, small) = in_netns(&ns, || {
        (
            tcp_listener("127.0.0.1:9100".parse().unwrap(), None, 128),
            tcp_listener("127.0.0.1:9101".parse().unwrap(), None, 4),
        )
    });
    let backlogs: BTreeMap<u16, u32> =
        ss("-tulnH", Some(&ns)).iter().filter(|s| s.proto == Proto::Tcp).map(|s| (s.local.port, s.send_q)).collect();
    assert_eq!(backlogs, BTreeMap::from([(9100, 8), (9101, 4)]), "the kernel capped listen(128) at 8");

    let run = stats(&["--json"]).netns(&ns).run();
    run.expect_code(0);
    let st = parse(&run);
    assert_eq!(st.listeners.somaxconn, Some(8));
    let clamped: Vec<(u16, u32, Option<u32>)> =
        st.listeners.clamped.iter().map(|l| (l.local.port, l.accept_queue.backlog, l.somaxconn)).collect();
    assert_eq!(clamped, [(9100, 8, Some(8))]);
    assert_eq!(st.listeners.clamped[0].processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [std::process::id()]);
    assert!(st.listeners.full.is_empty());
    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    assert!(
        run.stdout.contains("LISTEN QUEUES  net.core.somaxconn 8, net.ipv4.tcp_max_syn_backlog "),
        "{}",
        run.dump()
    );
    let row = run.stdout.lines().find(|l| l.starts_with("127.0.0.1:9100")).unwrap_or_else(|| panic!("{}", run.dump()));
    assert!(row.contains("backlog = somaxconn (8)"), "{row}");
    assert!(!run.stdout.contains("127.0.0.1:9101"), "{}", run.dump());
    drop((capped, small));
}

/// A UDP socket with the smallest receive buffer, flooded on loopback: its
/// drops as `ss -m` counts them, and the namespace's Udp RcvbufErrors.
#[test]
#[ignore = "needs root"]
fn a_udp_socket_that_drops_is_listed_and_counted() {
    require_root();
    let ns = Netns::new();
    let before = nstat(&ns);
    let udp = DroppingUdp::new(&ns, "127.0.0.1:5300", 200);
    let drops = ss_drops(&ns, "-ua", udp.addr);
    assert!(drops >= 150, "ss says {drops} drops of 200 datagrams");
    let after = nstat(&ns);
    assert_eq!(after["UdpRcvbufErrors"] - before["UdpRcvbufErrors"], i64::from(drops), "nstat counts the same drops");

    let first = nstat(&ns);
    let run = stats(&["--json"]).netns(&ns).run();
    let last = nstat(&ns);
    run.expect_code(0);
    let st = parse(&run);
    let k = kernel_of(&st);
    counters_match_nstat(k, &first, &last);
    assert_eq!(k.counters.get("Udp", "RcvbufErrors"), Some(last["UdpRcvbufErrors"]));
    assert_eq!(st.udp_drops.len(), 1, "{:#?}", st.udp_drops);
    let d = &st.udp_drops[0];
    assert_eq!((d.local.to_string(), d.drops), (udp.addr.to_string(), drops));
    assert!(d.rcvbuf >= 2304 && d.rcvbuf <= 4608 && d.rmem_alloc > 0, "{d:?}");
    assert_eq!(d.processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [std::process::id()]);
    assert!(problem(k, "Udp", "RcvbufErrors").value >= i64::from(drops));

    let run = stats(&[]).netns(&ns).run();
    run.expect_code(0);
    let row =
        run.stdout.lines().find(|l| l.starts_with(&udp.addr.to_string())).unwrap_or_else(|| panic!("{}", run.dump()));
    assert_eq!(row.split_whitespace().nth(1), Some(drops.to_string().as_str()), "{row}");
    assert!(run.stdout.contains("\nUDP DROPS  "), "{}", run.dump());
    drop(udp);
}
