//! Snapshot tests (insta) of what people read: every table and text output,
//! rendered from fixed records (a fixture population with hostile and wide
//! names) through the same renderers the commands use. Live outputs of the
//! binary are snapshotted in the tests of each command, with pids and
//! ephemeral ports redacted.
//!
//! Review a changed snapshot with `cargo insta review` (or read the
//! `.snap.new` file next to it) and commit it when the change is meant.

mod common;

use std::path::Path;
use std::sync::Arc;

use portctl::domain::kill::{KillReport, Target as KillTarget};
use portctl::domain::who::{self, Target};
use portctl::domain::{order, stats};
use portctl::model::{AcceptQueue, Container, Context, Exposure, Owner, Proto, SkMem, Socket, State, Timer, TimerKind};
use portctl::procs::ProcTable;
use portctl::render::{self, Format, Output, Style};
use portctl::sysctl::Sysctls;

fn owner(pid: u32, name: &str, user: &str, fd: u32, cmdline: &str) -> Owner {
    Owner {
        pid,
        name: Arc::from(name),
        user: Arc::from(user),
        fd,
        tid: None,
        cmdline: Arc::from(cmdline),
        context: None,
    }
}

fn sock(proto: Proto, state: State, local: &str, remote: Option<&str>, inode: u64, owners: Vec<Owner>) -> Socket {
    let mut s = Socket::sample(proto, state, local, remote, inode);
    s.owners = owners.into();
    s
}

/// A small host: sshd, a pre-fork nginx on a dual-stack port, a resolver on
/// loopback, postgres on one address, a process with a hostile name and one
/// with a wide (CJK) name, and their connections in several states.
fn population() -> Vec<Socket> {
    let sshd = || owner(812, "sshd", "root", 3, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups");
    let nginx = |pid| owner(pid, "nginx", "www-data", 6, "nginx: worker process");
    let mut v = vec![
        sock(Proto::Tcp, State::Listen, "0.0.0.0:22", None, 1001, vec![sshd()]),
        sock(Proto::Tcp, State::Listen, "[::]:443", None, 1002, vec![nginx(900), nginx(901)]),
        sock(
            Proto::Udp,
            State::Unconn,
            "127.0.0.53:53",
            None,
            1003,
            vec![owner(600, "systemd-resolve", "systemd-resolve", 13, "/lib/systemd/systemd-resolved")],
        ),
        sock(
            Proto::Tcp,
            State::Listen,
            "10.20.0.5:5432",
            None,
            1004,
            vec![owner(
                700,
                "postgres",
                "postgres",
                5,
                "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
            )],
        ),
        sock(
            Proto::Tcp,
            State::Listen,
            "127.0.0.1:8080",
            None,
            1005,
            vec![owner(4242, "evil\n1 root\u{202e}x", "root", 3, "evil \x1b[2J")],
        ),
        sock(
            Proto::Tcp,
            State::Listen,
            "127.0.0.1:9090",
            None,
            1006,
            vec![owner(4300, "服务器", "app", 4, "./服务器 --port 9090")],
        ),
        sock(Proto::Udp, State::Unconn, "0.0.0.0:5353", None, 1007, vec![]),
        sock(Proto::Tcp, State::Established, "10.20.0.5:22", Some("10.20.0.9:51000"), 2001, vec![sshd()]),
        sock(
            Proto::Tcp,
            State::Established,
            "[::ffff:10.20.0.5]:443",
            Some("[::ffff:10.20.0.7]:40022"),
            2002,
            vec![nginx(901)],
        ),
        sock(
            Proto::Tcp,
            State::CloseWait,
            "127.0.0.1:8080",
            Some("127.0.0.1:45000"),
            2003,
            vec![owner(4242, "evil\n1 root\u{202e}x", "root", 7, "evil")],
        ),
        sock(Proto::Tcp, State::TimeWait, "10.20.0.5:443", Some("10.20.0.7:40001"), 0, vec![]),
        sock(Proto::Tcp, State::TimeWait, "10.20.0.5:41000", Some("10.20.0.8:5432"), 0, vec![]),
    ];
    v[1].v6only = Some(false);
    v[1].send_q = 511;
    v[3].exposure = Exposure::Address;
    v[3].interface = Some("eth0".into());
    v[6].owners_hidden = true;
    for s in v.iter_mut().filter(|s| s.state == State::TimeWait) {
        s.timer = Some(Timer { kind: TimerKind::TimeWait, expires_ms: 41_500, retrans: 0 });
    }
    v[7].timer = Some(Timer { kind: TimerKind::Keepalive, expires_ms: 7_100_000, retrans: 0 });
    // TCP listeners carry their accept queue, as sock_diag gives it; UDP
    // sockets their memory.
    for s in v.iter_mut() {
        if s.proto == Proto::Tcp && s.state == State::Listen {
            if s.send_q == 0 {
                s.send_q = 128;
            }
            let (q, b) = (s.recv_q, s.send_q);
            s.ext_mut().accept_queue = Some(AcceptQueue::new(q, b));
        }
        if s.proto == Proto::Udp {
            s.ext_mut().skmem = Some(SkMem { rcvbuf: 212_992, ..SkMem::default() });
        }
    }
    portctl::inventory::enrich(&mut v);
    v
}

/// Sets a listener's queue (and its recv_q/send_q, as the kernel reports them).
fn set_queue(s: &mut Socket, queued: u32, backlog: u32) {
    s.recv_q = queued;
    s.send_q = backlog;
    s.ext_mut().accept_queue = Some(AcceptQueue::new(queued, backlog));
}

/// The population in trouble: postgres's accept queue over its backlog,
/// nginx's nearly full, the resolver dropping datagrams.
fn troubled() -> Vec<Socket> {
    let mut v = population();
    for s in v.iter_mut() {
        match (s.proto, s.port()) {
            (Proto::Tcp, 5432) if s.state == State::Listen => set_queue(s, 129, 128),
            (Proto::Tcp, 443) if s.state == State::Listen => set_queue(s, 470, 511),
            (Proto::Udp, 53) => {
                s.ext_mut().skmem =
                    Some(SkMem { rmem_alloc: 214_400, rcvbuf: 212_992, drops: 1_742, ..SkMem::default() })
            }
            _ => {}
        }
    }
    v
}

fn table() -> Output {
    Output::plain(Format::Table)
}

fn text(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn listen_table() {
    let mut v: Vec<Socket> =
        population().into_iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    order::listen(&mut v);
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &table(), false)));
}

#[test]
fn listen_table_with_context_and_namespaces() {
    let mut v: Vec<Socket> = population().into_iter().filter(|s| s.state == State::Listen).collect();
    order::listen(&mut v);
    let with_context = |s: &mut Socket, c: Context| {
        let mut owners = s.owners.to_vec();
        owners[0].context = Some(Box::new(c));
        s.owners = owners.into();
    };
    with_context(
        &mut v[0],
        Context { cgroup: "/system.slice/ssh.service".into(), unit: Some("ssh.service".into()), container: None },
    );
    with_context(
        &mut v[1],
        Context {
            cgroup: "/system.slice/docker-4f1c0a4e3b7d2e9f.scope".into(),
            unit: None,
            container: Some(Container {
                runtime: "docker".into(),
                id: "4f1c0a4e3b7d2e9f8a6b".into(),
                pod_uid: None,
                name: Some("web".into()),
            }),
        },
    );
    with_context(
        &mut v[2],
        Context {
            cgroup: "/lxc.payload.xéééééééééééé".into(),
            unit: None,
            container: Some(Container {
                runtime: "lxc".into(), id: "xéééééééééééé".into(), pod_uid: None, name: None
            }),
        },
    );
    v[0].netns = Some(Box::new(portctl::model::NetnsRef { inode: 4026532001, name: Some("blue".into()) }));
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &table(), true)));
}

#[test]
fn conns_table_and_extended() {
    let mut v: Vec<Socket> = population().into_iter().filter(|s| s.remote.is_some()).collect();
    order::conns(&mut v);
    v[0].ext_mut().tcp_info = Some(portctl::model::TcpInfo {
        rtt_us: 1250,
        rttvar_us: 300,
        retransmits: 0,
        total_retrans: 2,
        snd_cwnd: 10,
        bytes_sent: Some(4096),
        bytes_received: Some(123_456),
        congestion: Some("cubic".into()),
        snd_mss: 1448,
        rcv_mss: 1448,
        unacked: 1,
        lost: 0,
        reordering: 3,
        pacing_rate: Some(2_400_000),
        delivery_rate: Some(1_250_000),
        busy_time_us: Some(5000),
        rwnd_limited_us: Some(0),
        sndbuf_limited_us: Some(0),
    });
    v[0].ext_mut().skmem = Some(portctl::model::SkMem { rcvbuf: 131_072, sndbuf: 87_040, ..Default::default() });
    let plain = text(|w| render::conns::write(w, &v, &table(), false, false, false));
    let extended = text(|w| render::conns::write(w, &v, &table(), true, false, false));
    insta::assert_snapshot!("conns_table", plain);
    insta::assert_snapshot!("conns_table_extended", extended);
}

/// ACCEPT-Q and DROPS appear only when a queue is full or nearly, or a UDP
/// socket dropped (the plain listen table above has neither).
#[test]
fn listen_table_with_full_queues_and_drops() {
    let mut v: Vec<Socket> =
        troubled().into_iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    order::listen(&mut v);
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &table(), false)));
    let mut l: Vec<Socket> = troubled().into_iter().filter(|s| s.state == State::Listen).collect();
    order::conns(&mut l);
    insta::assert_snapshot!(
        "conns_table_listeners_full",
        text(|w| render::conns::write(w, &l, &table(), false, false, false))
    );
}

#[test]
fn tables_without_header_and_empty() {
    let v: Vec<Socket> = population().into_iter().take(2).collect();
    let out = Output { header: false, ..table() };
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &out, false)));
    assert_eq!(text(|w| render::listen::write(w, &[], &table(), false)), "");
}

/// A fake /proc with the holders' stat, status and cmdline, so `who` reads
/// fixed details (start times and uptimes are redacted: they follow the
/// host's boot time and the clock).
fn fake_proc(pids: &[(u32, &str, u32, &str)]) -> common::TempDir {
    let dir = common::TempDir::new();
    for &(pid, comm, ppid, cmdline) in pids {
        let d = dir.path().join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0\n"),
        )
        .unwrap();
        std::fs::write(d.join("status"), "Name:\tx\nUid:\t0\t0\t0\t0\n").unwrap();
        std::fs::write(d.join("cmdline"), cmdline.replace(' ', "\0")).unwrap();
        std::fs::write(d.join("cgroup"), "0::/system.slice/nginx.service\n").unwrap();
    }
    dir
}

fn redacted(text: String) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("  up ") {
            Some(i) => format!("{}  up [uptime]", &line[..i]),
            None => line.to_string(),
        };
        let line = if line.trim_start().starts_with("started ") { "    started  [time]".to_string() } else { line };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn sysctls() -> Sysctls {
    let mut s = Sysctls::unknown("fixture".into());
    s.local_port_range = Ok(portctl::sysctl::DEFAULT_LOCAL_PORT_RANGE);
    s.somaxconn = Some(4096);
    s
}

#[test]
fn who_text() {
    let proc_dir = fake_proc(&[
        (900, "nginx", 899, "nginx: worker process"),
        (901, "nginx", 899, "nginx: worker process"),
        (899, "nginx", 1, "nginx: master process /usr/sbin/nginx"),
    ]);
    let mut procs = ProcTable::new(proc_dir.path());
    let mut here: Vec<Socket> = population().into_iter().filter(|s| s.port() == 443).collect();
    order::listen(&mut here);
    let mut elsewhere =
        sock(Proto::Tcp, State::Listen, "0.0.0.0:443", None, 5001, vec![owner(7000, "caddy", "root", 3, "caddy run")]);
    elsewhere.netns =
        Some(Box::new(portctl::model::NetnsRef { inode: 4026532100, name: Some("docker:1f2e3d".into()) }));
    let target = Target { port: 443, proto: None, addr: None };
    let found = |here| who::Found {
        sockets: here,
        other_netns: vec![elsewhere.clone()],
        unreadable_netns: vec!["pid:1234: permission denied".into()],
        counters: Default::default(),
        nat: Default::default(),
    };
    let root = who::answer(&target, found(here.clone()), &mut procs, &sysctls(), who::Viewer { root: true });
    insta::assert_snapshot!(redacted(text(|w| render::who::write(w, &root, Style { color: false }))));
    // Not root: the same sockets, the advice of someone who may not look.
    let mut hidden = here;
    for s in &mut hidden {
        s.owners = portctl::model::no_owners();
        s.owners_hidden = s.inode != 0;
    }
    let user = who::answer(&target, found(hidden), &mut procs, &sysctls(), who::Viewer { root: false });
    insta::assert_snapshot!("who_text_hidden_not_root", text(|w| render::who::write(w, &user, Style { color: false })));
}

/// A listener whose accept queue is full and whose backlog is somaxconn,
/// with the overflow counter's rise; a UDP socket dropping on the same port.
#[test]
fn who_text_full_accept_queue() {
    let mut procs = ProcTable::new(Path::new("/nonexistent-proc"));
    let mut l =
        sock(Proto::Tcp, State::Listen, "127.0.0.1:8080", None, 3001, vec![owner(4400, "api", "app", 3, "./api")]);
    set_queue(&mut l, 9, 8);
    let mut u =
        sock(Proto::Udp, State::Unconn, "127.0.0.1:8080", None, 3002, vec![owner(4400, "api", "app", 4, "./api")]);
    u.ext_mut().skmem = Some(SkMem { rmem_alloc: 2_304, rcvbuf: 2_304, drops: 49, ..SkMem::default() });
    let mut sys = sysctls();
    sys.somaxconn = Some(8);
    sys.tcp_max_syn_backlog = Some(128);
    let counters = who::OverflowCounters {
        overflows: Some(27),
        drops: Some(27),
        rise: Some((Some(3), Some(3), std::time::Duration::from_millis(250))),
    };
    let found = who::Found { sockets: vec![l, u], counters, ..Default::default() };
    let target = Target { port: 8080, proto: None, addr: None };
    let r = who::answer(&target, found, &mut procs, &sys, who::Viewer { root: true });
    let lb = r.listen_backlog.as_ref().unwrap();
    assert_eq!(
        (lb.full.as_slice(), lb.clamped.as_slice(), lb.overflows_rise, lb.sampled_ms),
        (&[3001][..], &[3001][..], Some(3), Some(250))
    );
    insta::assert_snapshot!(text(|w| render::who::write(w, &r, Style { color: false })));
}

#[test]
fn who_text_free_and_time_wait_only() {
    let mut procs = ProcTable::new(Path::new("/nonexistent-proc"));
    let target = Target { port: 45000, proto: Some(Proto::Tcp), addr: None };
    let me = who::Viewer { root: false };
    let free = who::answer(&target, who::Found::default(), &mut procs, &sysctls(), me);
    let mut tw = sock(Proto::Tcp, State::TimeWait, "127.0.0.1:7000", Some("127.0.0.1:50000"), 0, vec![]);
    tw.timer = Some(Timer { kind: TimerKind::TimeWait, expires_ms: 30_000, retrans: 0 });
    let target7000 = Target { port: 7000, proto: Some(Proto::Tcp), addr: Some("127.0.0.1".parse().unwrap()) };
    let tw_only =
        who::answer(&target7000, who::Found { sockets: vec![tw], ..Default::default() }, &mut procs, &sysctls(), me);
    insta::assert_snapshot!("who_free", text(|w| render::who::write(w, &free, Style { color: false })));
    insta::assert_snapshot!("who_time_wait_only", text(|w| render::who::write(w, &tw_only, Style { color: false })));
}

/// Issue 14: what portctl says once the options were read (BPF) — definite
/// verdicts on a TIME_WAIT-only port, a SO_REUSEPORT group of another user,
/// a listener bound to a device — and who holds what when no process does.
#[test]
fn who_text_with_the_options_known() {
    let mut procs = ProcTable::new(Path::new("/nonexistent-proc"));
    let me = who::Viewer { root: true };
    let known = |mut s: Socket, reuseaddr, reuseport| {
        s.reuseaddr = Some(reuseaddr);
        s.reuseport = Some(reuseport);
        s.bound_ifindex = Some(0);
        s
    };
    for (name, reuse) in [("who_time_wait_reuseaddr_known", true), ("who_time_wait_no_reuseaddr_known", false)] {
        let mut tw = known(
            sock(Proto::Tcp, State::TimeWait, "127.0.0.1:7000", Some("127.0.0.1:50000"), 0, vec![]),
            reuse,
            false,
        );
        tw.timer = Some(Timer { kind: TimerKind::TimeWait, expires_ms: 30_000, retrans: 0 });
        let target = Target { port: 7000, proto: Some(Proto::Tcp), addr: None };
        let r =
            who::answer(&target, who::Found { sockets: vec![tw], ..Default::default() }, &mut procs, &sysctls(), me);
        insta::assert_snapshot!(name, text(|w| render::who::write(w, &r, Style { color: false })));
    }
    // Two workers of uid 1000 in one SO_REUSEPORT group, one thread-private.
    let mut worker = owner(5001, "worker", "app", 4, "worker --port 8443");
    let a = known(sock(Proto::Tcp, State::Listen, "0.0.0.0:8443", None, 3001, vec![worker.clone()]), false, true);
    worker.pid = 5002;
    worker.tid = Some(5010);
    let b = known(sock(Proto::Tcp, State::Listen, "0.0.0.0:8443", None, 3002, vec![worker]), false, true);
    let (mut a, mut b) = (a, b);
    a.uid = 1000;
    b.uid = 1000;
    let target = Target { port: 8443, proto: Some(Proto::Tcp), addr: None };
    let r = who::answer(&target, who::Found { sockets: vec![a, b], ..Default::default() }, &mut procs, &sysctls(), me);
    insta::assert_snapshot!("who_reuseport_group_known", text(|w| render::who::write(w, &r, Style { color: false })));
    // A listener bound to a device, and a socket in flight.
    let mut dev = known(sock(Proto::Udp, State::Unconn, "0.0.0.0:5353", None, 3003, vec![]), true, false);
    dev.bound_ifindex = Some(2);
    dev.interface = Some("eth0".into());
    dev.unheld = Some(portctl::model::Unheld::InFlight);
    let target = Target { port: 5353, proto: Some(Proto::Udp), addr: None };
    let r = who::answer(&target, who::Found { sockets: vec![dev], ..Default::default() }, &mut procs, &sysctls(), me);
    insta::assert_snapshot!("who_device_bound_in_flight", text(|w| render::who::write(w, &r, Style { color: false })));
}

/// Sockets nobody holds (the kernel's, in flight, unknown) and a thread's own
/// table, as the listen table shows them.
#[test]
fn listen_table_unheld_and_threads() {
    use portctl::model::Unheld;
    let mut v = vec![
        sock(Proto::Udp, State::Unconn, "0.0.0.0:4789", None, 4001, vec![]),
        sock(Proto::Tcp, State::Listen, "127.0.0.1:7000", None, 4002, vec![]),
        sock(Proto::Tcp, State::Listen, "127.0.0.1:7001", None, 4003, vec![]),
        sock(Proto::Tcp, State::Listen, "127.0.0.1:7002", None, 4004, vec![]),
    ];
    v[0].unheld = Some(Unheld::Kernel);
    v[1].unheld = Some(Unheld::InFlight);
    v[2].unheld = Some(Unheld::NoProcess);
    let mut t = owner(6000, "java", "app", 12, "java -jar app.jar");
    t.tid = Some(6042);
    v[3].owners = vec![t].into();
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &table(), false)));
    // The views of issue 18 say the same: `-o` with FD, `--by-process`,
    // and what `close --dry-run` would close.
    use portctl::filter::Column as C;
    let cols = [C::Proto, C::Local, C::Pid, C::Process, C::Fd];
    insta::assert_snapshot!(
        "columns_table_unheld_and_threads",
        text(|w| render::columns::write(w, &v, &cols, &table()))
    );
    let tree = host_tree();
    let mut procs = ProcTable::new(tree.path());
    let g = portctl::domain::process::by_process(v.clone(), &mut procs);
    insta::assert_snapshot!(
        "by_process_text_unheld_and_threads",
        text(|w| render::by_process::write(w, &g, Style { color: false }))
    );
    let mut dry = portctl::domain::close::plan(v, true);
    dry.message = portctl::domain::close::summary(&dry);
    insta::assert_snapshot!(
        "close_text_unheld_and_threads",
        text(|w| render::close::write(w, &dry, Style { color: false }))
    );
}

#[test]
fn stats_text() {
    let sockets = population();
    let mut summary = stats::summarise(&sockets, &sysctls(), 10);
    summary.close_wait = Some(stats::close_wait_by_process(&sockets));
    insta::assert_snapshot!(text(|w| render::stats::write(w, &summary, &table())));
    summary.close_wait = None;
    summary.ephemeral = None;
    insta::assert_snapshot!(
        "stats_text_without_owners_or_range",
        text(|w| render::stats::write(w, &summary, &table()))
    );
}

/// Counters as the kernel prints them (cut short), for the kernel sections.
const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPBacklogDrop TCPTimeWaitOverflow\n\
                       TcpExt: 0 27 27 0 0\n";
const SNMP: &str = "Tcp: ActiveOpens PassiveOpens AttemptFails EstabResets InSegs OutSegs RetransSegs InErrs OutRsts\n\
                    Tcp: 120 90 2 0 5000 4800 12 0 3\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 300 0 1742 10 1742 0\n";

fn counters(scale: i64) -> portctl::counters::Counters {
    let mut groups = portctl::counters::parse_pairs(NETSTAT);
    groups.extend(portctl::counters::parse_pairs(SNMP));
    for g in &mut groups {
        for (_, v) in &mut g.values {
            *v *= scale;
        }
    }
    portctl::counters::Counters { groups }
}

/// The sections of a host in trouble: queues, drops, problems, memory;
/// with `--interval`, the rises and rates too.
#[test]
fn stats_text_with_queues_drops_and_counters() {
    let sockets = troubled();
    let mut sys = sysctls();
    sys.tcp_max_syn_backlog = Some(512);
    sys.tcp_mem = Some(portctl::sysctl::TcpMem { min: 100, pressure: 200, max: 300 });
    sys.tcp_max_orphans = Some(65536);
    sys.tcp_max_tw_buckets = Some(262144);
    let mut summary = stats::summarise(&sockets, &sys, 10);
    summary.close_wait = Some(stats::close_wait_by_process(&sockets));
    stats::attach_processes(&mut summary, &sockets);
    let sockstat = portctl::counters::parse_sockstat(
        "sockets: used 30\nTCP: inuse 20 orphan 2 tw 5 alloc 25 mem 250\nUDP: inuse 2 mem 60\n",
    );
    summary.kernel = Some(stats::kernel(counters(1), None, sockstat.clone(), &sys));
    insta::assert_snapshot!(text(|w| render::stats::write(w, &summary, &table())));
    let first = (counters(1), std::time::Duration::from_millis(2000));
    summary.kernel = Some(stats::kernel(counters(2), Some(first), sockstat, &sys));
    insta::assert_snapshot!("stats_text_with_interval", text(|w| render::stats::write(w, &summary, &table())));
}

#[test]
fn kill_text() {
    let target = |pid, name: &str, result: &str, reason: Option<&str>| KillTarget {
        pid,
        name: name.into(),
        user: "root".into(),
        result: result.into(),
        reason: reason.map(String::from),
        sockets: vec![1002],
    };
    let mut r = KillReport {
        port: Some(443),
        protos: vec![Proto::Tcp],
        unix: None,
        signal: "SIGTERM".into(),
        dry_run: false,
        targets: vec![
            target(900, "nginx", "signalled", None),
            target(1, "systemd", "refused", Some("pid 1 (init): use --force to signal it")),
            target(4242, "evil\n1 root", "gone", Some("no longer holds the socket")),
        ],
        freed: Some(true),
        waited_ms: Some(1200),
        time_wait_left: Some(3),
        message: String::new(),
        nat: portctl::domain::nat::NatAnswer::none(),
        hints: Vec::new(),
    };
    r.message = portctl::domain::kill::summary(&r, "443/tcp");
    insta::assert_snapshot!(text(|w| render::kill::write(w, &r, Style { color: false })));
    let coloured = text(|w| render::kill::write(w, &r, Style { color: true })).replace('\x1b', "<ESC>");
    insta::assert_snapshot!("kill_text_colour", coloured);
}

#[test]
fn watch_frame() {
    use render::watch::{Mark, Table, frame};
    let v: Vec<Socket> = population().into_iter().filter(|s| s.state == State::Listen).take(3).collect();
    let marks = [Mark::Same, Mark::Added, Mark::Gone];
    let heading = "every 1.0s: portctl listen: 2 sockets (+1 -1)";
    insta::assert_snapshot!(text(|w| frame(w, Table::Listen { context: false }, &v, &marks, heading, &table())));
    insta::assert_snapshot!(
        "watch_frame_empty",
        text(|w| frame(
            w,
            Table::Conns { extended: false, peers: false, context: false },
            &[],
            &[],
            "every 1.0s: portctl conns: 0 sockets (+0 -0)",
            &table()
        ))
    );
}

/// Colour codes appear only where asked, around escaped text.
#[test]
fn colour_on() {
    let v: Vec<Socket> = population().into_iter().filter(|s| s.state == State::Listen).take(2).collect();
    let out = Output { color: true, ..table() };
    insta::assert_snapshot!(text(|w| render::listen::write(w, &v, &out, false)).replace('\x1b', "<ESC>"));
}

// ---------------------------------------------------------------------------
// Unix, raw and packet sockets; peers (issue 15)

fn unix_sock(
    kind: portctl::model::UnixType,
    state: State,
    name: portctl::model::UnixName,
    inode: u64,
    owners: Vec<Owner>,
) -> Socket {
    use portctl::model::{Addr, Detail, Family, UnixDetail};
    let mut s = Socket::new(Proto::Unix, Family::Unix, state, Addr::from_unix(name), None);
    s.inode = inode;
    s.owners = owners.into();
    s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind, vfs: None, pending: Vec::new() })));
    s
}

fn peer_of(s: &mut Socket, other: &Socket) {
    s.peer = Some(Box::new(portctl::model::Peer {
        inode: other.inode,
        owners: other.owners.clone(),
        owners_hidden: other.owners_hidden,
        netns: None,
    }));
    s.remote = Some(other.local.clone());
}

/// docker.sock with a waiting client and two connections (one of them from
/// a hostile name), journald's dgram socket, an abstract seqpacket name with
/// a NUL in it, a socketpair; a raw ICMP socket, a ping socket, a packet
/// socket capturing on eth0 (tcpdump) and dhclient's.
fn other_kinds() -> Vec<Socket> {
    use portctl::model::{Detail, Family, LinkAddr, PacketDetail, PacketType, RawDetail, Ring, UnixName, UnixType};
    let dockerd = || owner(812, "dockerd", "root", 5, "/usr/bin/dockerd -H fd://");
    let curl = owner(4100, "curl", "alice", 3, "curl --unix-socket /run/docker.sock http://x/v1.45/info");
    let evil = owner(4242, "evil\n1 root", "root", 4, "evil");
    let mut listener =
        unix_sock(UnixType::Stream, State::Listen, UnixName::path("/run/docker.sock"), 11, vec![dockerd()]);
    listener.recv_q = 3;
    listener.send_q = 4;
    let mut v = vec![listener];
    for (i, client) in [curl, evil].into_iter().enumerate() {
        let i = i as u64;
        let mut server = unix_sock(
            UnixType::Stream,
            State::Established,
            UnixName::path("/run/docker.sock"),
            20 + i,
            vec![dockerd()],
        );
        let mut c = unix_sock(UnixType::Stream, State::Established, UnixName::unnamed(), 30 + i, vec![client]);
        peer_of(&mut c, &server);
        peer_of(&mut server, &c);
        v.extend([server, c]);
    }
    v.push(unix_sock(
        UnixType::Dgram,
        State::Unconn,
        UnixName::path("/run/systemd/journal/socket"),
        40,
        vec![owner(300, "systemd-journal", "root", 3, "/lib/systemd/systemd-journald")],
    ));
    v.push(unix_sock(
        UnixType::Seqpacket,
        State::Listen,
        UnixName::abstract_name("/org/kernel/udev\0x"),
        41,
        vec![owner(400, "systemd-udevd", "root", 6, "/lib/systemd/systemd-udevd")],
    ));
    let mut a = unix_sock(UnixType::Stream, State::Established, UnixName::unnamed(), 50, vec![]);
    a.owners_hidden = true;
    let mut b = unix_sock(UnixType::Stream, State::Established, UnixName::unnamed(), 51, vec![dockerd()]);
    peer_of(&mut a, &b);
    peer_of(&mut b, &a);
    v.extend([a, b]);
    let mut raw = sock(Proto::Raw, State::Unconn, "0.0.0.0:0", None, 60, vec![owner(500, "bird", "bird", 7, "bird")]);
    raw.detail = Some(Box::new(Detail::Raw(RawDetail { protocol: 89 })));
    let mut ping =
        sock(Proto::Icmp, State::Unconn, "[::]:0", None, 61, vec![owner(501, "ping", "alice", 3, "ping ::1")]);
    ping.detail = Some(Box::new(Detail::Raw(RawDetail { protocol: 58 })));
    v.extend([raw, ping]);
    let packet = |ifindex, protocol, kind, promiscuous, ring: bool, inode, o: Owner| {
        let mut s = Socket::new(
            Proto::Packet,
            Family::Packet,
            State::Unconn,
            portctl::model::Addr::Link(LinkAddr { ifindex, protocol }),
            None,
        );
        s.inode = inode;
        s.owners = vec![o].into();
        s.interface = (ifindex == 2).then(|| "eth0".into());
        let r = Ring { block_size: 4096 * 1024, blocks: 2, frame_size: 65536, frames: 128 };
        s.detail = Some(Box::new(Detail::Packet(PacketDetail {
            kind,
            running: true,
            promiscuous,
            version: 3,
            rx_ring: ring.then_some(r),
            tx_ring: None,
            fanout: None,
        })));
        s
    };
    v.push(packet(2, 0x0003, PacketType::Raw, true, true, 70, owner(600, "tcpdump", "tcpdump", 4, "tcpdump -i eth0")));
    v.push(packet(0, 0x0800, PacketType::Dgram, false, false, 71, owner(601, "dhclient", "root", 6, "dhclient eth0")));
    v
}

#[test]
fn listen_and_conns_tables_of_every_kind() {
    let mut v: Vec<Socket> = other_kinds();
    v.extend(population().into_iter().filter(|s| s.state == State::Listen).take(2));
    let mut l: Vec<Socket> = v.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).cloned().collect();
    order::listen(&mut l);
    insta::assert_snapshot!("listen_tables_of_every_kind", text(|w| render::listen::write(w, &l, &table(), false)));
    let mut c = v.clone();
    order::conns(&mut c);
    insta::assert_snapshot!(
        "conns_tables_of_every_kind",
        text(|w| render::conns::write(w, &c, &table(), false, false, false))
    );
}

#[test]
fn conns_table_with_peers() {
    let mut v: Vec<Socket> = population().into_iter().filter(|s| s.remote.is_some()).collect();
    // A local client of the hostile process's port.
    let mut client = sock(
        Proto::Tcp,
        State::FinWait2,
        "127.0.0.1:45000",
        Some("127.0.0.1:8080"),
        2004,
        vec![owner(4500, "curl", "alice", 5, "curl http://127.0.0.1:8080/")],
    );
    let server = v.iter_mut().find(|s| s.inode == 2003).unwrap();
    client.peer = Some(Box::new(portctl::model::Peer {
        inode: server.inode,
        owners: server.owners.clone(),
        owners_hidden: false,
        netns: None,
    }));
    server.peer = Some(Box::new(portctl::model::Peer {
        inode: 2004,
        owners: client.owners.clone(),
        owners_hidden: false,
        netns: Some(Box::new(portctl::model::NetnsRef { inode: 1, name: Some("blue".into()) })),
    }));
    v.push(client);
    order::conns(&mut v);
    insta::assert_snapshot!(text(|w| render::conns::write(w, &v, &table(), false, true, false)));
}

#[test]
fn who_text_for_unix_sockets() {
    use portctl::domain::unix::{FileState, Lookup};
    use portctl::filter::UnixSpec;
    use portctl::model::Vfs;
    let proc_dir = fake_proc(&[(812, "dockerd", 1, "/usr/bin/dockerd -H fd://")]);
    let mut procs = ProcTable::new(proc_dir.path());
    let file = Vfs { dev: 25, ino: 1234 };
    let mut v = other_kinds();
    for s in v.iter_mut().filter(|s| s.local.to_string() == "/run/docker.sock") {
        if let Some(portctl::model::Detail::Unix(u)) = s.detail.as_deref_mut() {
            u.vfs = Some(file);
        }
    }
    let live = Lookup {
        spec: UnixSpec::Path("/run/docker.sock".into()),
        file: Some(FileState::Socket(file)),
        canonical: None,
    };
    let found = |sockets| who::Found { sockets, ..Default::default() };
    let r = portctl::domain::unix::answer(&live, found(v.clone()), &mut procs, who::Viewer { root: true });
    insta::assert_snapshot!("who_unix_live", redacted(text(|w| render::who::write(w, &r, Style { color: false }))));
    let stale = Lookup {
        spec: UnixSpec::Path("/run/app.sock".into()),
        file: Some(FileState::Socket(Vfs { dev: 25, ino: 99 })),
        canonical: None,
    };
    let r = portctl::domain::unix::answer(&stale, found(v.clone()), &mut procs, who::Viewer { root: true });
    insta::assert_snapshot!("who_unix_stale", text(|w| render::who::write(w, &r, Style { color: false })));
    let abs = Lookup::abstract_name("/org/kernel/udev@x");
    let r = portctl::domain::unix::answer(&abs, found(v), &mut procs, who::Viewer { root: false });
    insta::assert_snapshot!("who_unix_abstract", redacted(text(|w| render::who::write(w, &r, Style { color: false }))));
}

#[test]
fn stats_text_with_unix_sockets() {
    let v = population();
    let mut st = stats::summarise(&v, &sysctls(), 5);
    st.unix = Some(stats::unix_counts(&other_kinds()));
    insta::assert_snapshot!(text(|w| render::stats::write(w, &st, &table())));
}

/// NAT records from a recorded capture (tests/fixtures/nat/captures/all:
/// Docker on iptables-nft, netavark, CNI portmap, kube-proxy nftables and
/// iptables-legacy, hand-written rules), as seen from a host with these
/// addresses; the Docker container at 172.17.0.2 is named `web`, and one
/// hand-written rule carries a hostile comment.
fn nat_records() -> Vec<portctl::nat::NatRule> {
    use portctl::nat::{self, Inputs, NatContainer, RuleSource};
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nat/captures/all");
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let inputs = Inputs {
        nft: vec![read("nft.json")],
        iptables: vec![
            ("ip", RuleSource::IptablesNft, read("iptables-nft-save.txt")),
            ("ip6", RuleSource::IptablesNft, read("ip6tables-nft-save.txt")),
            ("ip", RuleSource::IptablesLegacy, read("iptables-legacy-save.txt")),
        ],
    };
    let local = [
        ("127.0.0.1", "lo"),
        ("192.168.0.2", "eth0"),
        ("192.0.2.10", "eth0"),
        ("10.88.0.1", "podman0"),
        ("172.17.0.1", "docker0"),
    ]
    .iter()
    .map(|(a, n)| (a.parse().unwrap(), n.to_string()))
    .collect();
    let mut records = nat::records(&nat::analyze(&inputs, None).entries, &local);
    for r in &mut records {
        if r.to.addr.as_deref() == Some("172.17.0.2") {
            r.container = Some(NatContainer {
                runtime: Some("docker".into()),
                id: Some("4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f".into()),
                name: Some("web".into()),
            });
        }
        if r.comment.as_deref() == Some("rdp to vm") {
            r.comment = Some("rdp\x1b[2J to vm\u{202e}".into());
        }
    }
    records
}

#[test]
fn listen_table_with_nat_rows() {
    let mut v: Vec<Socket> =
        population().into_iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    order::listen(&mut v);
    let nat: Vec<_> = nat_records().into_iter().filter(|r| r.on_this_host()).collect();
    insta::assert_snapshot!(text(|w| render::listen::write_with_nat(w, &v, &nat, &table(), false)));
    insta::assert_snapshot!(
        "listen_table_with_nat_rows_and_context",
        text(|w| render::listen::write_with_nat(w, &v[..2], &nat[..4], &table(), true))
    );
}

#[test]
fn who_text_published_by_nat() {
    use portctl::domain::nat::{NatAnswer, for_target};
    let records = nat_records();
    let mut procs = ProcTable::new(Path::new("/nonexistent-proc"));
    let me = who::Viewer { root: true };
    let answer = |port, proto| {
        let target = Target { port, proto, addr: None };
        let nat = NatAnswer { rules: for_target(&records, &target), ..NatAnswer::none() };
        let found = who::Found { nat, ..Default::default() };
        let r = who::answer(&target, found, &mut ProcTable::new(Path::new("/nonexistent-proc")), &sysctls(), me);
        text(|w| render::who::write(w, &r, Style { color: false }))
    };
    insta::assert_snapshot!("who_nat_docker", answer(8080, Some(Proto::Tcp)));
    insta::assert_snapshot!("who_nat_kubernetes_nodeport", answer(30080, Some(Proto::Tcp)));
    insta::assert_snapshot!("who_nat_cluster_ips", answer(80, Some(Proto::Tcp)));
    insta::assert_snapshot!("who_nat_hostile_comment", answer(3389, Some(Proto::Tcp)));
    // Without CAP_NET_ADMIN: said, not guessed.
    let target = Target { port: 8080, proto: Some(Proto::Tcp), addr: None };
    let nat = NatAnswer {
        status: portctl::nat::Status::NotPermitted,
        reason: Some("NAT rules could not be read: portctl lacks CAP_NET_ADMIN".into()),
        ..NatAnswer::none()
    };
    let r = who::answer(
        &target,
        who::Found { nat, ..Default::default() },
        &mut procs,
        &sysctls(),
        who::Viewer { root: false },
    );
    insta::assert_snapshot!("who_nat_not_permitted", text(|w| render::who::write(w, &r, Style { color: false })));
}

#[test]
fn kill_text_published_by_nat() {
    use portctl::domain::nat::{NatAnswer, for_target};
    let target = Target { port: 8080, proto: Some(Proto::Tcp), addr: None };
    let nat = NatAnswer { rules: for_target(&nat_records(), &target), ..NatAnswer::none() };
    let mut r = KillReport {
        port: Some(8080),
        protos: vec![Proto::Tcp],
        unix: None,
        signal: "SIGTERM".into(),
        dry_run: false,
        targets: vec![],
        freed: None,
        waited_ms: None,
        time_wait_left: None,
        message: String::new(),
        hints: portctl::domain::kill::nat_hints(&nat),
        nat,
    };
    r.message = portctl::domain::kill::nothing_to_kill("8080/tcp", &[], &r.nat);
    insta::assert_snapshot!(text(|w| render::kill::write(w, &r, Style { color: false })));
}

/// A fake /proc for ancestry: (pid, comm, ppid, cmdline, cgroup).
fn fake_tree(pids: &[(u32, &str, u32, &str, &str)]) -> common::TempDir {
    let dir = common::TempDir::new();
    for &(pid, comm, ppid, cmdline, cgroup) in pids {
        let d = dir.path().join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0\n"),
        )
        .unwrap();
        std::fs::write(d.join("status"), "Name:\tx\nUid:\t0\t0\t0\t0\n").unwrap();
        std::fs::write(d.join("cmdline"), cmdline.replace(' ', "\0")).unwrap();
        std::fs::write(d.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
    }
    dir
}

fn host_tree() -> common::TempDir {
    fake_tree(&[
        (1, "systemd", 0, "/sbin/init", "/init.scope"),
        (812, "sshd", 1, "sshd: /usr/sbin/sshd -D", "/system.slice/ssh.service"),
        (899, "nginx", 1, "nginx: master process /usr/sbin/nginx", "/system.slice/nginx.service"),
        (900, "nginx", 899, "nginx: worker process", "/system.slice/nginx.service"),
        (901, "nginx", 899, "nginx: worker process", "/system.slice/nginx.service"),
        (600, "systemd-resolve", 1, "/lib/systemd/systemd-resolved", "/system.slice/systemd-resolved.service"),
        (700, "postgres", 1, "/usr/lib/postgresql/15/bin/postgres", "/system.slice/postgresql.service"),
        (4242, "evil\n1 root", 1, "evil", "/user.slice/user-0.slice/session-1.scope"),
        (4300, "服务器", 4242, "./服务器 --port 9090", "/user.slice/user-0.slice/session-1.scope"),
    ])
}

/// `--by-process`: holders in pid order with their ancestry lines, then
/// what no visible process holds.
#[test]
fn by_process_text() {
    let tree = host_tree();
    let mut procs = ProcTable::new(tree.path());
    let mut v = population();
    order::conns(&mut v);
    let g = portctl::domain::process::by_process(v, &mut procs);
    insta::assert_snapshot!(text(|w| render::by_process::write(w, &g, Style { color: false })));
}

/// `who --pid`: the process, its ancestry, what it holds.
#[test]
fn who_process_text() {
    let tree = host_tree();
    let mut procs = ProcTable::new(tree.path());
    let mut v = population();
    order::listen(&mut v);
    let r = who::process_report(901, v, &mut procs);
    insta::assert_snapshot!(
        redacted(text(|w| render::who::write_process(w, &r, Style { color: false })))
            .replace(&format!("    cwd      {}\n", tree.path().display()), "")
    );
}

/// `close`: a line per socket and what became of it, then the summary.
#[test]
fn close_text() {
    use portctl::domain::close;
    let v: Vec<Socket> =
        population().into_iter().filter(|s| s.state == State::Established || s.state == State::CloseWait).collect();
    let mut r = close::plan(v, false);
    for (c, errno) in r.sockets.iter_mut().zip([0, libc::ESTALE, libc::EINVAL]) {
        let (result, reason) = close::outcome(errno);
        c.result = result.into();
        c.reason = reason;
    }
    r.message = close::summary(&r);
    insta::assert_snapshot!(text(|w| render::close::write(w, &r, Style { color: false })));
    let mut dry = close::plan(population().into_iter().filter(|s| s.port() == 22).collect(), true);
    dry.message = close::summary(&dry);
    insta::assert_snapshot!("close_text_dry_run", text(|w| render::close::write(w, &dry, Style { color: false })));
}

/// `-o/--columns`: the columns asked for, in that order, the extra ones too.
#[test]
fn columns_table() {
    use portctl::filter::Column as C;
    let v = population();
    let cols = [C::Proto, C::State, C::Local, C::Remote, C::Pid, C::Process, C::Fd, C::Uid, C::Inode, C::Cmdline];
    insta::assert_snapshot!(text(|w| render::columns::write(w, &v, &cols, &table())));
}
