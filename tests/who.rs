//! `portctl who` (issue 3): every bind case of the issue, with real sockets,
//! and each verdict checked against what a real bind() does right after.
//!
//! The issue-3 cases run with `--owners-from proc`: the sockets' options are
//! unknown there and the verdicts that hang on them stay conditional. The
//! issue-14 cases (root: BPF) read the options and check that every verdict
//! is definite and what the kernel does with those options set — as this
//! user and, for SO_REUSEPORT's same-user rule, as another
//! (`examples/trybind` run through setpriv).

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{HeldSocket, Portctl, Run, require_root, spawn, tcp_listener, try_bind_as, udp_socket, unused_port};
use portctl::domain::bind::Outcome;
use portctl::domain::who::WhoReport;
use portctl::model::{Proto, State};

/// `who SPEC --json`, owners from /proc (options unknown).
fn who(spec: &str) -> (Run, WhoReport) {
    who_from(spec, "proc")
}

/// `who SPEC --json`, owners and options from BPF (root).
fn who_bpf(spec: &str) -> (Run, WhoReport) {
    who_from(spec, "bpf")
}

fn who_from(spec: &str, source: &str) -> (Run, WhoReport) {
    let run = Portctl::new(["who", spec, "--json", "--owners-from", source]).run();
    let report: WhoReport = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("who {spec} --json is not a WhoReport: {e}\n{}", run.dump()));
    (run, report)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `struct sockaddr_in` for an IPv4 address and port.
fn sin(addr: std::net::Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(addr).to_be() },
        sin_zero: [0; 8],
    }
}

/// A real bind() attempt: Ok(()) or the errno.
fn try_bind(proto: Proto, addr: SocketAddr, v6only: bool, reuseaddr: bool) -> Result<(), i32> {
    try_bind_with(proto, addr, v6only, reuseaddr, false)
}

/// [`try_bind`], also with SO_REUSEPORT.
fn try_bind_with(proto: Proto, addr: SocketAddr, v6only: bool, reuseaddr: bool, reuseport: bool) -> Result<(), i32> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let ty = if proto == Proto::Tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
    // SAFETY: plain syscalls on a descriptor we own; every pointer is valid for its call.
    unsafe {
        let fd = libc::socket(family, ty | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if reuseaddr {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), len);
        }
        if reuseport {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const i32).cast(), len);
        }
        if let SocketAddr::V6(_) = addr {
            let v: libc::c_int = v6only.into();
            libc::setsockopt(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, (&v as *const i32).cast(), len);
        }
        let rc = match addr {
            SocketAddr::V4(a) => {
                let sin = sin(*a.ip(), a.port());
                libc::bind(fd.as_raw_fd(), (&sin as *const libc::sockaddr_in).cast(), 16)
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as u16,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: 0,
                };
                libc::bind(fd.as_raw_fd(), (&sin6 as *const libc::sockaddr_in6).cast(), 28)
            }
        };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)) }
    }
}

/// Every plain-bind verdict must be what bind() really does, and a
/// SO_REUSEADDR verdict of ok/fails must be too ("only if theirs had it"
/// depends on the other socket, checked by the callers that know).
fn verdicts_match_the_kernel(r: &WhoReport) {
    // Probe sockets are bound and closed in turn: no fork may keep one alive.
    let _lock = common::spawn_lock();
    for b in r.verdict.binds.iter().filter_map(|b| b.ip()) {
        let addr = SocketAddr::new(b.addr, b.port);
        let v6only = b.v6only.unwrap_or(false);
        let real = try_bind(b.proto, addr, v6only, false);
        assert_eq!(
            real.is_ok(),
            b.plain == Outcome::Ok,
            "plain bind {addr}/{:?}: kernel said {real:?}, portctl {b:?}",
            b.proto
        );
        if b.reuseaddr != Outcome::OnlyIfTheirsToo {
            let real = try_bind(b.proto, addr, v6only, true);
            assert_eq!(
                real.is_ok(),
                b.reuseaddr == Outcome::Ok,
                "SO_REUSEADDR bind {addr}: kernel {real:?}, portctl {b:?}"
            );
        }
        // SO_REUSEPORT: definite, or for one user only (checked as that
        // user by the callers that made the socket another's).
        let real = try_bind_with(b.proto, addr, v6only, false, true);
        match (b.reuseport, b.reuseport_uid) {
            (Outcome::Ok | Outcome::Fails, _) => assert_eq!(
                real.is_ok(),
                b.reuseport == Outcome::Ok,
                "SO_REUSEPORT bind {addr}: kernel {real:?}, portctl {b:?}"
            ),
            (Outcome::OnlyAsUid, Some(uid)) => assert_eq!(
                real.is_ok(),
                uid == common::euid(),
                "SO_REUSEPORT bind {addr} as uid {}: kernel {real:?}, portctl {b:?}",
                common::euid()
            ),
            (Outcome::OnlyAsUid, None) => panic!("only_as_uid without a uid: {b:?}"),
            (Outcome::OnlyIfTheirsToo, _) => {}
        }
    }
}

/// Every verdict definite (the sockets' options were read).
fn definite(r: &WhoReport) {
    for b in r.verdict.binds.iter().filter_map(|b| b.ip()) {
        assert!(
            b.reuseaddr != Outcome::OnlyIfTheirsToo && b.reuseport != Outcome::OnlyIfTheirsToo,
            "options known, verdicts definite: {b:?}"
        );
    }
    for s in r.sockets.iter().filter(|s| s.proto.has_ports()) {
        assert!(s.reuseaddr.is_some() && s.reuseport.is_some(), "BPF read the options of {s:?}");
    }
}

fn bind_of<'a>(r: &'a WhoReport, proto: Proto, addr: &str) -> &'a portctl::domain::bind::BindCheck {
    let addr: IpAddr = addr.parse().unwrap();
    r.verdict
        .binds
        .iter()
        .filter_map(|b| b.ip())
        .find(|b| b.proto == proto && b.addr == addr)
        .unwrap_or_else(|| panic!("no verdict for {addr}"))
}

#[test]
fn issue3_wildcard_listener_blocks_every_address_of_its_family() {
    let _l = tcp_listener(sa("0.0.0.0:0"), None, 16);
    let port = _l.local_addr().unwrap().port();
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(0);
    assert!(r.verdict.in_use);
    let me = std::process::id();
    assert!(r.verdict.summary[0].contains(&format!("pid {me}")), "{:?}", r.verdict.summary);
    assert!(r.verdict.summary[0].contains(&format!("listens on 0.0.0.0:{port}")), "{:?}", r.verdict.summary);
    assert_eq!(bind_of(&r, Proto::Tcp, "127.0.0.1").plain, Outcome::Fails);
    assert_eq!(bind_of(&r, Proto::Tcp, "0.0.0.0").reuseaddr, Outcome::Fails, "SO_REUSEADDR never beats a listener");
    assert_eq!(bind_of(&r, Proto::Tcp, "::").plain, Outcome::Fails, "a default (dual-stack) [::] bind takes IPv4 too");
    assert_eq!(r.holders.len(), 1);
    assert_eq!(r.holders[0].pid, me);
    assert!(r.hints.iter().any(|h| h.contains(&format!("kill {me}"))), "{:?}", r.hints);
    verdicts_match_the_kernel(&r);
}

#[test]
fn issue3_loopback_listener_blocks_loopback_and_wildcard_not_another_address() {
    let _l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = _l.local_addr().unwrap().port();
    let (run, r) = who(&format!("127.0.0.2:{port}/tcp"));
    // 127.0.0.2 is another specific address: the listener does not block it.
    assert_eq!(bind_of(&r, Proto::Tcp, "127.0.0.2").plain, Outcome::Ok);
    assert!(!r.verdict.in_use, "nothing conflicts with 127.0.0.2:{port}");
    run.expect_code(1);
    assert_eq!(bind_of(&r, Proto::Tcp, "127.0.0.1").plain, Outcome::Fails);
    assert_eq!(bind_of(&r, Proto::Tcp, "0.0.0.0").plain, Outcome::Fails);
    verdicts_match_the_kernel(&r);
    let (run, r) = who(&format!("127.0.0.1:{port}"));
    run.expect_code(0);
    assert!(r.verdict.in_use);
}

#[test]
fn issue3_dual_stack_listener_blocks_ipv4_and_v6only_does_not() {
    let port = unused_port();
    let dual = tcp_listener(sa(&format!("[::]:{port}")), Some(false), 16);
    let (run, r) = who(&format!(":{port}/tcp"));
    run.expect_code(0);
    assert_eq!(bind_of(&r, Proto::Tcp, "0.0.0.0").plain, Outcome::Fails);
    assert!(bind_of(&r, Proto::Tcp, "0.0.0.0").reason.contains("dual-stack"), "{:?}", r.verdict.binds);
    assert_eq!(r.sockets[0].v6only, Some(false));
    verdicts_match_the_kernel(&r);
    // Close and rebind with no fork in flight (a forked child would hold
    // the old listener until it execs).
    let _v6 = {
        let _lock = common::spawn_lock();
        drop(dual);
        tcp_listener(sa(&format!("[::]:{port}")), Some(true), 16)
    };
    let (run, r) = who(&format!(":{port}/tcp"));
    run.expect_code(0);
    assert_eq!(bind_of(&r, Proto::Tcp, "0.0.0.0").plain, Outcome::Ok);
    assert_eq!(bind_of(&r, Proto::Tcp, "127.0.0.1").plain, Outcome::Ok);
    assert_eq!(bind_of(&r, Proto::Tcp, "::").plain, Outcome::Fails);
    verdicts_match_the_kernel(&r);
}

/// Leaves a TIME_WAIT socket whose local port is the listener's: the server
/// side closes first. `reuse` sets SO_REUSEADDR on the listener (accepted
/// sockets, and so their TIME_WAIT, inherit it).
fn time_wait_on(port: u16, reuse: bool) {
    time_wait_at(sa(&format!("127.0.0.1:{port}")), reuse);
}

/// [`time_wait_on`] at any address (IPv6 ones v6only).
fn time_wait_at(addr: std::net::SocketAddr, reuse: bool) {
    let port = addr.port();
    let l = tcp_listener(addr, addr.is_ipv6().then_some(true), 16);
    if reuse {
        let one: libc::c_int = 1;
        // SAFETY: valid option pointer and size.
        unsafe {
            libc::setsockopt(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), 4);
        }
    }
    let c = TcpStream::connect(addr).unwrap();
    let (s, _) = l.accept().unwrap();
    drop(s); // server closes first: its end will be TIME_WAIT
    drop(c);
    drop(l);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, r) = who(&format!("{port}/tcp"));
        if r.sockets.iter().any(|s| s.state == State::TimeWait && s.port() == port) {
            break;
        }
        assert!(Instant::now() < deadline, "no TIME_WAIT appeared on {port}: {:?}", r.sockets);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn issue3_time_wait_only_means_not_in_use_but_plain_bind_fails() {
    let port = unused_port();
    time_wait_on(port, false);
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(1);
    assert!(!r.verdict.in_use, "TIME_WAIT is held by no process");
    assert!(r.holders.is_empty());
    let tw = r.sockets.iter().find(|s| s.state == State::TimeWait).unwrap();
    let left = tw.timer.expect("TIME_WAIT carries its timer").expires_ms;
    assert!(left > 0 && left <= 60_000, "{left}");
    assert!(r.verdict.summary[0].contains("TIME_WAIT"), "{:?}", r.verdict.summary);
    let b = bind_of(&r, Proto::Tcp, "127.0.0.1");
    assert_eq!((b.plain, b.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo));
    assert!(
        r.hints.iter().any(|h| h.contains("SO_REUSEADDR") && h.contains("old server set it too") && h.contains("wait")),
        "{:?}",
        r.hints
    );
    verdicts_match_the_kernel(&r);
    // The old socket lacked SO_REUSEADDR: even with it, the new bind fails.
    assert!(try_bind(Proto::Tcp, sa(&format!("127.0.0.1:{port}")), false, true).is_err());
}

/// TIME_WAIT on [::1] only, from a server without SO_REUSEADDR: 0.0.0.0
/// and 127.0.0.1 are free, `[::]` is blocked, and the summary speaks of the
/// blocked address (it said "a bind with SO_REUSEADDR works now", the
/// verdict of 0.0.0.0, which no TIME_WAIT socket blocks).
#[test]
fn time_wait_on_an_ipv6_address_summarised_by_the_address_it_blocks() {
    let port = unused_port();
    time_wait_at(sa(&format!("[::1]:{port}")), false);
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(1);
    assert_eq!(bind_of(&r, Proto::Tcp, "0.0.0.0").plain, Outcome::Ok);
    assert_eq!(bind_of(&r, Proto::Tcp, "::").plain, Outcome::Fails);
    verdicts_match_the_kernel(&r);
    let summary = &r.verdict.summary[0];
    assert!(summary.contains("TIME_WAIT") && !summary.contains("works now"), "{summary}");
    if common::is_root() {
        // Options from BPF: known, and the summary definite.
        let (_, r) = who_bpf(&format!("{port}/tcp"));
        assert_eq!(bind_of(&r, Proto::Tcp, "::").reuseaddr, Outcome::Fails);
        let summary = &r.verdict.summary[0];
        assert!(summary.contains("did not set SO_REUSEADDR") && !summary.contains("works now"), "{summary}");
    }
}

#[test]
fn issue3_time_wait_from_a_reuseaddr_server_lets_reuseaddr_binds_through() {
    let port = unused_port();
    time_wait_on(port, true);
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(1);
    assert_eq!(bind_of(&r, Proto::Tcp, "127.0.0.1").reuseaddr, Outcome::OnlyIfTheirsToo);
    verdicts_match_the_kernel(&r);
    // "only if theirs had it too": here it had, and the kernel agrees.
    assert_eq!(try_bind(Proto::Tcp, sa(&format!("127.0.0.1:{port}")), false, true), Ok(()));
}

#[test]
fn issue3_established_socket_using_the_port_locally_blocks_a_plain_bind() {
    let port = unused_port();
    let server = tcp_listener(sa("127.0.0.1:0"), None, 16);
    // An outgoing connection that has local port `port`.
    let fd = {
        // SAFETY: plain syscalls; pointers valid for each call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let sin = sin(std::net::Ipv4Addr::LOCALHOST, port);
            assert_eq!(libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16), 0);
            OwnedFd::from_raw_fd(fd)
        }
    };
    let client = std::net::TcpStream::from(fd);
    // connect() through std: re-wrap is not possible, so use libc connect.
    let dst = server.local_addr().unwrap();
    let sin = sin(std::net::Ipv4Addr::LOCALHOST, dst.port());
    // SAFETY: valid sockaddr of the given size.
    assert_eq!(unsafe { libc::connect(client.as_raw_fd(), (&sin as *const libc::sockaddr_in).cast(), 16) }, 0);
    let _accepted = server.accept().unwrap();
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(0);
    assert!(r.verdict.in_use);
    assert!(r.verdict.summary[0].contains("has a connection"), "{:?}", r.verdict.summary);
    let b = bind_of(&r, Proto::Tcp, "0.0.0.0");
    assert_eq!((b.plain, b.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo));
    assert!(r.hints.iter().any(|h| h.contains("connection") && h.contains("SO_REUSEADDR")), "{:?}", r.hints);
    verdicts_match_the_kernel(&r);
    // That connection lacked SO_REUSEADDR, so the kernel refuses even with it.
    assert!(try_bind(Proto::Tcp, sa(&format!("0.0.0.0:{port}")), false, true).is_err());
}

#[test]
fn issue3_reuseport_group_lists_all_members() {
    let port = unused_port();
    let mk = || -> TcpListener {
        // SAFETY: plain syscalls; pointers valid for each call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            let one: libc::c_int = 1;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const i32).cast(), 4);
            let sin = sin(std::net::Ipv4Addr::LOCALHOST, port);
            assert_eq!(libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16), 0);
            assert_eq!(libc::listen(fd, 16), 0);
            TcpListener::from(OwnedFd::from_raw_fd(fd))
        }
    };
    let (a, b) = (mk(), mk());
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(0);
    let listeners: Vec<_> = r.sockets.iter().filter(|s| s.state == State::Listen).collect();
    assert_eq!(listeners.len(), 2, "both members are listed");
    let inodes = [common::socket_inode(a.as_raw_fd()), common::socket_inode(b.as_raw_fd())];
    for i in inodes {
        assert!(listeners.iter().any(|s| s.inode == i), "member {i} missing");
    }
    let hint = r.hints.iter().find(|h| h.contains("SO_REUSEPORT")).unwrap_or_else(|| panic!("{:?}", r.hints));
    assert!(hint.contains("same user"), "{hint}");
    verdicts_match_the_kernel(&r);
}

#[test]
fn issue3_inherited_listener_names_the_holder_and_its_parent() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = l.local_addr().unwrap().port();
    // Let the child inherit the listener (clear close-on-exec), then drop ours.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    let child = spawn(Command::new("sleep").arg("60"));
    drop(l);
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(0);
    assert_eq!(r.holders.len(), 1, "{:?}", r.holders);
    let h = &r.holders[0];
    assert_eq!((h.pid, h.name.as_str()), (child.pid(), "sleep"));
    assert_eq!(h.ppid, Some(std::process::id()), "the parent is named");
    assert!(h.parent_name.as_deref().is_some_and(|n| !n.is_empty()), "{h:?}");
    assert!(h.started.is_some() && h.cwd.is_some(), "{h:?}");
    assert!(r.verdict.summary[0].contains(&format!("sleep (pid {},", child.pid())), "{:?}", r.verdict.summary);
    let text = Portctl::new(["who", &format!("{port}/tcp")]).run();
    assert!(text.stdout.contains(&format!("parent   {}", std::process::id())), "{}", text.stdout);
}

#[test]
fn issue3_udp_socket_blocks_udp_only() {
    let port = unused_port();
    let _u = udp_socket(sa(&format!("127.0.0.1:{port}")), None);
    let (run, r) = who(&format!("{port}/udp"));
    run.expect_code(0);
    assert!(r.verdict.summary[0].contains("is bound to"), "{:?}", r.verdict.summary);
    let b = bind_of(&r, Proto::Udp, "127.0.0.1");
    assert_eq!((b.plain, b.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo), "UDP has no listener exception");
    verdicts_match_the_kernel(&r);
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(1);
    assert!(r.verdict.binds.iter().all(|b| b.plain() == Outcome::Ok));
    verdicts_match_the_kernel(&r);
    // Without a protocol: one verdict line per protocol.
    let (run, r) = who(&format!("{port}"));
    run.expect_code(0);
    assert_eq!(r.verdict.summary.len(), 2);
    assert!(r.verdict.summary[1].contains("/udp is in use"), "{:?}", r.verdict.summary);
    assert!(r.verdict.summary[0].contains("/tcp is free"), "{:?}", r.verdict.summary);
}

#[test]
fn issue3_free_port_in_the_ephemeral_range_warns() {
    let port = {
        let l = tcp_listener(sa("127.0.0.1:0"), None, 1);
        l.local_addr().unwrap().port()
    };
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(1);
    assert!(!r.verdict.in_use);
    assert!(r.verdict.summary[0].ends_with("is free"), "{:?}", r.verdict.summary);
    assert!(r.hints.iter().any(|h| h.contains("ip_local_reserved_ports")), "{:?}", r.hints);
}

#[test]
#[ignore = "needs root"]
fn issue3_privileged_port_needs_cap_net_bind_service_when_not_root() {
    common::require_root();
    let start: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap().trim().parse().unwrap();
    assert!(start > 1, "this test needs ip_unprivileged_port_start > 1 (is {start})");
    // A privileged port nothing uses.
    let port = (1..start)
        .rev()
        .find(|&p| try_bind(Proto::Tcp, sa(&format!("[::]:{p}")), false, false).is_ok())
        .expect("a free privileged port");
    let (bin, _copy) = common::portctl_for_others();
    let run = Portctl::new(["who", &format!("{port}/tcp"), "--json"]).as_user(65534, 65534, &bin).run();
    run.expect_code(1);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.hints.iter().any(|h| h.contains("CAP_NET_BIND_SERVICE")), "{:?}", r.hints);
}

#[test]
fn issue3_service_names_resolve() {
    let (run, r) = who("https/tcp");
    assert_eq!(r.spec.port, Some(443));
    assert!([0, 1].contains(&run.code()));
}

#[test]
fn issue3_bad_specs_are_one_line_errors() {
    for bad in [":0", ":65536", "abc:80", "[::1", "8080/sctp", "no-such-service-xyz"] {
        let run = Portctl::new(["who", bad]).run();
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{bad}: {}", run.dump());
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{bad}: {}", run.dump());
        assert!(lines[0].starts_with("portctl: error:"), "{bad}: {}", run.dump());
        assert!(!run.stderr.contains("panicked"), "{bad}");
    }
}

#[test]
fn issue3_text_output_shows_verdict_holders_and_binds() {
    let _l = tcp_listener(sa("[::]:0"), Some(false), 16);
    let port = _l.local_addr().unwrap().port();
    let run = Portctl::new(["who", &format!("{port}/tcp")]).run();
    run.expect_code(0);
    let first = run.stdout.lines().next().unwrap();
    assert!(first.starts_with(&format!("{port}/tcp is in use: ")), "{}", run.stdout);
    for section in ["holders", "a new bind() on port", "hint:"] {
        assert!(run.stdout.contains(section), "missing {section}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("tcp46 LISTEN"), "{}", run.stdout);
}

/// Issue 13: a container id is cut for display by characters. An LXC
/// container's "id" is its name, any text: a listener in cgroup
/// `lxc.payload.xéééééé...` made `who` panic (exit 101) slicing it at byte 12.
#[test]
#[ignore = "needs root"]
fn issue13_a_container_named_in_any_letters_does_not_panic_who() {
    require_root();
    let name = format!("xéééééé-{}", common::unique_name());
    let cgroup = common::Cgroup::new(&[format!("lxc.payload.{name}")]);
    let l = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 16);
    let port = l.local_addr().unwrap().port();
    // SAFETY: fcntl on a descriptor we own: let the child inherit it.
    unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    let child = spawn(Command::new("sleep").arg("60"));
    drop(l);
    cgroup.add(child.pid());
    let run = Portctl::new(["who", &format!("{port}/tcp")]).run();
    run.expect_code(0);
    let short: String = name.chars().take(12).collect();
    assert!(run.stdout.contains(&format!("container lxc {short} ")), "{}", run.dump());
    let (run, r) = who(&format!("{port}/tcp"));
    run.expect_code(0);
    let c = r.holders[0].context.as_ref().and_then(|c| c.container.as_ref()).expect("a container");
    assert_eq!((c.runtime.as_str(), c.id.as_str()), ("lxc", name.as_str()), "JSON keeps the whole name");
    drop(child);
}

/// Issue 13: escaping is for terminals only. `who --json` carried the
/// terminal escaping in `verdict.summary` and `hints` (`ev\\x1bil` beside
/// the raw name in `holders`); now every JSON string is the raw name, and
/// the text escapes every line, including the zero-width and bidi ones.
#[test]
fn issue13_who_json_carries_raw_names_and_text_escapes_them() {
    let name = "ev\x1bil\u{200b}\u{2067}x";
    let held = common::NamedHolder::start(name);
    let spec = format!("{}/tcp", held.port);
    let (run, r) = who(&spec);
    run.expect_code(0);
    assert_eq!(r.holders[0].name, name);
    assert!(r.verdict.summary[0].contains(&format!("{name} (pid {}", held.child.pid())), "{:?}", r.verdict.summary);
    assert!(r.hints.iter().any(|h| h.contains(&format!("kill {}", held.child.pid()))), "{:?}", r.hints);
    assert!(!run.stdout.contains("\\\\x1b"), "no terminal escaping inside JSON strings: {}", run.stdout);
    let run = Portctl::new(["who", &spec]).run();
    run.expect_code(0);
    assert!(!run.stdout.chars().any(|c| portctl::render::sanitize::needs_escape(c) && c != '\n'), "{:?}", run.stdout);
    assert!(run.stdout.contains(r"ev\x1bil\u{200b}\u{2067}x (pid"), "{}", run.dump());
}

// ---------------------------------------------------------------------------
// Accept queues, backlogs and UDP drops (issue 16), in namespaces of the
// test's own

fn who_in(ns: &common::Netns, spec: &str) -> (Run, WhoReport) {
    let run = Portctl::new(["who", spec, "--json", "--netns", ns.name()]).run();
    let report: WhoReport = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("who {spec} --json is not a WhoReport: {e}\n{}", run.dump()));
    (run, report)
}

#[test]
#[ignore = "needs root"]
fn a_full_accept_queue_is_said_in_words_with_the_overflow_counter_rise() {
    require_root();
    let ns = common::Netns::new();
    let q = common::FullQueue::new(&ns, "127.0.0.1:8080", 1, 1, 4);
    let inode = common::socket_inode(q.listener.as_raw_fd());
    // New SYNs keep overflowing the queue while who looks.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let knocker = common::knock_until(&ns, q.addr, stop.clone(), 2000);
    let before = common::nstat(&ns)["TcpExtListenOverflows"];
    let (run, r) = who_in(&ns, "8080");
    let after = common::nstat(&ns)["TcpExtListenOverflows"];
    let (text, _) = {
        let run = Portctl::new(["who", "8080", "--netns", ns.name()]).run();
        (run.stdout.clone(), run)
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(knocker.join().unwrap() > 0);
    run.expect_code(0);

    let lb = r.listen_backlog.as_ref().unwrap_or_else(|| panic!("a TCP listener: listen_backlog\n{}", run.dump()));
    assert_eq!((lb.full.as_slice(), lb.clamped.as_slice()), (&[inode][..], &[][..]), "{lb:?}");
    assert!(lb.sampled_ms.is_some_and(|ms| ms >= 250), "at least 250 ms of sampling: {lb:?}");
    let rise = lb.overflows_rise.unwrap();
    assert!(rise > 0 && rise <= after - before, "rise {rise}, nstat {before} -> {after}");
    assert!(lb.drops_rise.is_some_and(|d| d >= rise), "{lb:?}");
    assert!(lb.listen_overflows.is_some_and(|n| before <= n && n <= after), "{lb:?}, nstat {before} -> {after}");
    let want = "tcp 127.0.0.1:8080: accept queue full: 2 waiting, backlog 1 — the process is not accepting fast enough; new connections are dropped (TcpExt ListenOverflows +";
    assert!(lb.notes[0].starts_with(want), "{:?}", lb.notes);
    assert_eq!(lb.notes.len(), 1, "{:?}", lb.notes);
    // The record says the same, and the hints what to do.
    let l = r.sockets.iter().find(|s| s.inode == inode).unwrap();
    let aq = l.accept_queue().unwrap();
    assert_eq!((aq.queued, aq.backlog, aq.full, aq.near_full), (2, 1, true, false));
    assert!(
        r.hints.iter().any(|h| h.starts_with("a full accept queue: make the server accept() faster")),
        "{:?}",
        r.hints
    );
    assert!(text.contains(&format!("\nlisten queue\n  {want}")), "{text}");
    drop(q);
}

#[test]
#[ignore = "needs root"]
fn a_backlog_equal_to_somaxconn_is_said_with_both_values() {
    require_root();
    let ns = common::Netns::new();
    common::output(ns.command("sysctl").args(["-qw", "net.core.somaxconn=8"])).expect_code(0);
    let syn: u32 =
        common::output(ns.command("cat").arg("/proc/sys/net/ipv4/tcp_max_syn_backlog")).stdout.trim().parse().unwrap();
    let (capped, small) = common::in_netns(&ns, || {
        (tcp_listener(sa("127.0.0.1:9100"), None, 128), tcp_listener(sa("127.0.0.1:9101"), None, 4))
    });
    let (run, r) = who_in(&ns, "9100");
    run.expect_code(0);
    let lb = r.listen_backlog.unwrap();
    assert_eq!(lb.clamped, [common::socket_inode(capped.as_raw_fd())]);
    assert_eq!((lb.somaxconn, lb.tcp_max_syn_backlog), (Some(8), Some(syn)));
    assert!(lb.full.is_empty() && lb.sampled_ms.is_none() && lb.overflows_rise.is_none(), "no sampling: {lb:?}");
    assert_eq!(
        lb.notes,
        [format!(
            "tcp 127.0.0.1:9100: backlog 8, net.core.somaxconn 8: the listen() backlog may have been clamped by somaxconn (net.ipv4.tcp_max_syn_backlog {syn} caps the connections still in their handshake); raise net.core.somaxconn if the server asks for more"
        )]
    );
    let run = Portctl::new(["who", "9100", "--netns", ns.name()]).run();
    assert!(
        run.stdout.contains("\nlisten queue\n  tcp 127.0.0.1:9100: backlog 8, net.core.somaxconn 8: "),
        "{}",
        run.dump()
    );

    // listen(4): below somaxconn, nothing to say.
    let (_, r) = who_in(&ns, "9101");
    let lb = r.listen_backlog.unwrap();
    assert!(lb.clamped.is_empty() && lb.notes.is_empty(), "{lb:?}");
    let run = Portctl::new(["who", "9101", "--netns", ns.name()]).run();
    assert!(!run.stdout.contains("listen queue"), "{}", run.dump());
    // No TCP listener on the port: no listen_backlog at all.
    let (_, r) = who_in(&ns, "9102");
    assert!(r.listen_backlog.is_none());
    drop((capped, small));
}

#[test]
#[ignore = "needs root"]
fn a_udp_socket_that_dropped_gets_a_hint() {
    require_root();
    let ns = common::Netns::new();
    let udp = common::DroppingUdp::new(&ns, "127.0.0.1:5300", 100);
    let drops = common::ss_drops(&ns, "-ua", udp.addr);
    assert!(drops > 0);
    let (run, r) = who_in(&ns, "5300/udp");
    run.expect_code(0);
    let want = format!("udp 127.0.0.1:5300 has dropped {drops} datagrams since it was opened: its receive buffer (");
    assert!(r.hints.iter().any(|h| h.starts_with(&want)), "{want}\n{:?}", r.hints);
    assert_eq!(r.sockets[0].skmem().map(|m| m.drops), Some(drops));
    assert!(r.listen_backlog.is_none());
    drop(udp);
}

/// Several ports: one answer each, a JSON array; exit 0 only when every
/// port is in use. (Owners from `auto`: as root the options of both ports
/// come from BPF, and the definite verdicts are checked too.)
#[test]
fn several_ports_one_answer_each() {
    let (p1, p2, free) = (unused_port(), unused_port(), unused_port());
    let _l1 = tcp_listener(sa(&format!("127.0.0.1:{p1}")), None, 8);
    let _l2 = udp_socket(sa(&format!("127.0.0.1:{p2}")), None);
    let run = Portctl::new(["who", "--json", &p1.to_string(), &format!("{p2}/udp")]).run();
    run.expect_code(0);
    let reports: Vec<WhoReport> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(
        reports.iter().map(|r| (r.spec.port, r.verdict.in_use)).collect::<Vec<_>>(),
        [(Some(p1), true), (Some(p2), true)]
    );
    for r in &reports {
        verdicts_match_the_kernel(r);
    }
    let run = Portctl::new(["who", &p1.to_string(), &free.to_string()]).run();
    run.expect_code(1);
    let blocks: Vec<&str> = run.stdout.split("\n\n").collect();
    assert!(blocks[0].starts_with(&format!("{p1}/tcp is in use: ")), "{}", run.dump());
    assert!(run.stdout.contains(&format!("{free}/tcp is free")), "{}", run.dump());
    // One spec: the object, as before.
    let (run, r) = who(&p1.to_string());
    run.expect_code(0);
    assert_eq!(r.spec.port, Some(p1));
}

// --- issue 14: the options read by BPF make every verdict definite ---------

/// A TCP socket with these options set, bound (and listening with `listen`).
fn tcp_with(addr: &str, reuseaddr: bool, reuseport: bool, listen: bool) -> TcpListener {
    let addr = sa(addr);
    let SocketAddr::V4(a) = addr else { panic!("IPv4 only: {addr}") };
    // SAFETY: plain syscalls on a descriptor we own; pointers valid for each call.
    unsafe {
        let fd = OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0));
        let one: libc::c_int = 1;
        if reuseaddr {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const i32).cast(), 4);
        }
        if reuseport {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const i32).cast(), 4);
        }
        let sin = sin(*a.ip(), a.port());
        assert_eq!(libc::bind(fd.as_raw_fd(), (&sin as *const libc::sockaddr_in).cast(), 16), 0, "bind {addr}");
        if listen {
            assert_eq!(libc::listen(fd.as_raw_fd(), 16), 0);
        }
        TcpListener::from(fd)
    }
}

/// The record of one socket of the port, by inode.
fn record(r: &WhoReport, inode: u64) -> &portctl::model::Socket {
    r.sockets.iter().find(|s| s.inode == inode).unwrap_or_else(|| panic!("no socket {inode}: {:#?}", r.sockets))
}

#[test]
#[ignore = "needs root"]
fn issue14_time_wait_verdicts_are_definite_both_ways() {
    common::require_root();
    for reuse in [true, false] {
        let port = unused_port();
        time_wait_on(port, reuse);
        let (run, r) = who_bpf(&format!("{port}/tcp"));
        run.expect_code(1);
        definite(&r);
        let tw = r.sockets.iter().find(|s| s.state == State::TimeWait).expect("the TIME_WAIT socket");
        assert_eq!((tw.reuseaddr, tw.reuseport), (Some(reuse), Some(false)), "as the listener had them: {tw:?}");
        let b = bind_of(&r, Proto::Tcp, "127.0.0.1");
        let want = if reuse { Outcome::Ok } else { Outcome::Fails };
        assert_eq!((b.plain, b.reuseaddr, b.reuseport), (Outcome::Fails, want, Outcome::Fails), "{b:?}");
        let summary = &r.verdict.summary[0];
        if reuse {
            assert!(summary.contains("they have SO_REUSEADDR, so a bind with SO_REUSEADDR works now"), "{summary}");
        } else {
            assert!(summary.contains("they did not set SO_REUSEADDR, so a bind fails until then"), "{summary}");
        }
        assert!(!summary.contains("only if"), "{summary}");
        verdicts_match_the_kernel(&r);
        // And listen() agrees after the SO_REUSEADDR bind.
        assert_eq!(try_bind_as(None, &["--reuseaddr", "--listen", "tcp", &format!("127.0.0.1:{port}")]).is_ok(), reuse);
    }
}

#[test]
#[ignore = "needs root"]
fn issue14_reuseport_group_of_another_user_takes_that_user_only() {
    common::require_root();
    let port = unused_port();
    let addr = format!("127.0.0.1:{port}");
    let a = HeldSocket::start(Some(65534), &["--reuseport", "--listen", "tcp", &addr]);
    let b = HeldSocket::start(Some(65534), &["--reuseport", "--listen", "tcp", &addr]);
    assert_eq!((a.uid, b.uid), (65534, 65534));
    let (run, r) = who_bpf(&format!("{port}/tcp"));
    run.expect_code(0);
    definite(&r);
    for h in [&a, &b] {
        let s = record(&r, h.inode);
        assert_eq!((s.reuseaddr, s.reuseport, s.uid), (Some(false), Some(true), 65534), "{s:?}");
        assert_eq!(s.owners.iter().map(|o| o.pid).collect::<Vec<_>>(), [h.pid()]);
    }
    let c = bind_of(&r, Proto::Tcp, "0.0.0.0");
    assert_eq!(
        (c.plain, c.reuseaddr, c.reuseport, c.reuseport_uid),
        (Outcome::Fails, Outcome::Fails, Outcome::OnlyAsUid, Some(65534))
    );
    let hint = r.hints.iter().find(|h| h.contains("SO_REUSEPORT set")).unwrap_or_else(|| panic!("{:?}", r.hints));
    assert!(hint.starts_with(&format!("2 tcp sockets on {addr} have SO_REUSEPORT set")), "{hint}");
    assert!(
        hint.contains("uid 65534") && hint.contains(&a.pid().to_string()) && hint.contains(&b.pid().to_string()),
        "{hint}"
    );
    // root is another user: refused; the group's user joins.
    verdicts_match_the_kernel(&r);
    assert_eq!(try_bind_as(Some(65534), &["--reuseport", "--listen", "tcp", &addr]), Ok(()));
    assert!(try_bind_as(Some(65533), &["--reuseport", "--listen", "tcp", &addr]).is_err());
    let text = Portctl::new(["who", &format!("{port}/tcp"), "--owners-from", "bpf"]).run();
    assert!(text.stdout.contains("with SO_REUSEPORT: only as uid 65534"), "{}", text.stdout);
}

#[test]
#[ignore = "needs root"]
fn issue14_own_reuseport_listener_lets_a_new_member_join() {
    common::require_root();
    let port = unused_port();
    let l = tcp_with(&format!("127.0.0.1:{port}"), false, true, true);
    let (run, r) = who_bpf(&format!("{port}/tcp"));
    run.expect_code(0);
    definite(&r);
    let s = record(&r, common::socket_inode(l.as_raw_fd()));
    assert_eq!((s.reuseaddr, s.reuseport), (Some(false), Some(true)));
    let b = bind_of(&r, Proto::Tcp, "127.0.0.1");
    assert_eq!((b.reuseport, b.reuseport_uid), (Outcome::OnlyAsUid, Some(0)));
    // A group of one: the hint says a new socket would join it.
    assert!(
        r.hints.iter().any(|h| h.starts_with(&format!("1 tcp socket on 127.0.0.1:{port} has SO_REUSEPORT set"))),
        "{:?}",
        r.hints
    );
    verdicts_match_the_kernel(&r);
}

#[test]
#[ignore = "needs root"]
fn issue14_connections_with_and_without_reuseaddr() {
    common::require_root();
    for reuse in [true, false] {
        let port = unused_port();
        let server = tcp_listener(sa("127.0.0.1:0"), None, 16);
        let client = tcp_with(&format!("127.0.0.1:{port}"), reuse, false, false);
        let dst = sin(std::net::Ipv4Addr::LOCALHOST, server.local_addr().unwrap().port());
        // SAFETY: valid sockaddr of the given size.
        assert_eq!(unsafe { libc::connect(client.as_raw_fd(), (&dst as *const libc::sockaddr_in).cast(), 16) }, 0);
        let _accepted = server.accept().unwrap();
        let (run, r) = who_bpf(&format!("{port}/tcp"));
        run.expect_code(0);
        definite(&r);
        assert_eq!(record(&r, common::socket_inode(client.as_raw_fd())).reuseaddr, Some(reuse));
        let b = bind_of(&r, Proto::Tcp, "0.0.0.0");
        assert_eq!((b.plain, b.reuseaddr), (Outcome::Fails, if reuse { Outcome::Ok } else { Outcome::Fails }));
        let hint = r.hints.iter().find(|h| h.contains("still use")).unwrap_or_else(|| panic!("{:?}", r.hints));
        assert!(hint.contains(if reuse { "with SO_REUSEADDR set" } else { "without SO_REUSEADDR" }), "{hint}");
        verdicts_match_the_kernel(&r);
    }
}

#[test]
#[ignore = "needs root"]
fn issue14_udp_reuse_rules() {
    common::require_root();
    let port = unused_port();
    let addr = format!("127.0.0.1:{port}");
    // SO_REUSEADDR on both sides shares a UDP port, listener or not.
    let reuse = HeldSocket::start(None, &["--reuseaddr", "udp", &addr]);
    let (run, r) = who_bpf(&format!("{port}/udp"));
    run.expect_code(0);
    definite(&r);
    assert_eq!(record(&r, reuse.inode).reuseaddr, Some(true));
    let b = bind_of(&r, Proto::Udp, "127.0.0.1");
    assert_eq!((b.plain, b.reuseaddr, b.reuseport), (Outcome::Fails, Outcome::Ok, Outcome::Fails), "{b:?}");
    verdicts_match_the_kernel(&r);
    drop(reuse);
    // SO_REUSEPORT of another user: that user only.
    let other = HeldSocket::start(Some(65534), &["--reuseport", "udp", &addr]);
    let (_, r) = who_bpf(&format!("{port}/udp"));
    definite(&r);
    let b = bind_of(&r, Proto::Udp, "127.0.0.1");
    assert_eq!((b.reuseaddr, b.reuseport, b.reuseport_uid), (Outcome::Fails, Outcome::OnlyAsUid, Some(other.uid)));
    verdicts_match_the_kernel(&r);
    assert_eq!(try_bind_as(Some(65534), &["--reuseport", "udp", &addr]), Ok(()));
}

#[test]
#[ignore = "needs root"]
fn issue14_device_bound_listener_blocks_unbound_binds_not_other_devices() {
    common::require_root();
    let ns = common::Netns::new();
    let ip = |args: &[&str]| {
        let run = common::output(ns.command("ip").args(args));
        assert!(run.status.success(), "{}", run.dump());
    };
    ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ip(&["link", "set", "d0", "up"]);
    let port = 7777;
    let held = HeldSocket::start_in(&ns, &["--device", "lo", "--listen", "tcp", &format!("0.0.0.0:{port}")]);
    let run = Portctl::new(["who", &format!("{port}/tcp"), "--json", "--owners-from", "bpf"]).netns(&ns).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    let s = record(&r, held.inode);
    assert_eq!((s.bound_ifindex, s.interface.as_deref()), (Some(1), Some("lo")), "{s:?}");
    let b = bind_of(&r, Proto::Tcp, "0.0.0.0");
    assert_eq!(b.plain, Outcome::Fails, "a new socket bound to no device conflicts: {b:?}");
    assert!(b.reason.contains("(SO_BINDTODEVICE lo)"), "{b:?}");
    assert!(
        r.hints
            .iter()
            .any(|h| h.contains(&format!("the tcp sockets on port {port} are bound to device lo (SO_BINDTODEVICE)"))),
        "{:?}",
        r.hints
    );
    // The kernel agrees: unbound fails, bound to another device binds.
    let tb = |args: &[&str]| common::try_bind_in(&ns, args);
    assert!(tb(&["tcp", &format!("0.0.0.0:{port}")]).is_err());
    assert_eq!(tb(&["--device", "d0", "tcp", &format!("0.0.0.0:{port}")]), Ok(()));
    assert!(tb(&["--device", "lo", "tcp", &format!("0.0.0.0:{port}")]).is_err());
}
