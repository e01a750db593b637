//! `portctl kill` and `portctl wait` (issue 7), with child processes the
//! tests start and sockets they bind on loopback.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard, Portctl, spawn, tcp_listener, udp_socket, unused_port};
use portctl::domain::kill::KillReport;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A `sleep` child holding a listener on `port` (inherited from us; our copy
/// is closed), so the only holder is the child.
fn child_holding(port: u16) -> ChildGuard {
    let l: TcpListener = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    // SAFETY: fcntl on a descriptor we own: let the child inherit it.
    unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    let child = spawn(Command::new("sleep").arg("60"));
    drop(l);
    child
}

/// [`child_holding`], with SIGTERM blocked in the child: a SIGTERM sent to
/// it stays pending (visible in /proc/PID/status) instead of killing it, so
/// "nothing was sent" can be checked at once, without waiting to see.
fn child_holding_with_sigterm_blocked(port: u16) -> ChildGuard {
    use std::os::unix::process::CommandExt;
    let l: TcpListener = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    // SAFETY: fcntl on a descriptor we own: let the child inherit it.
    unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    // SAFETY: between fork and exec the closure only calls sigemptyset,
    // sigaddset and sigprocmask on a local set: async-signal-safe, no
    // allocation. The blocked mask survives exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let child = spawn(&mut cmd);
    drop(l);
    child
}

/// Whether `pid` has SIGTERM pending (sent while blocked).
fn sigterm_pending(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {status}"));
        u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
    };
    let bit = 1u64 << (libc::SIGTERM - 1);
    assert_ne!(mask("SigBlk:") & bit, 0, "SIGTERM is blocked in the child");
    (mask("SigPnd:") | mask("ShdPnd:")) & bit != 0
}

fn kill_json(args: &[&str]) -> (common::Run, KillReport) {
    let run = Portctl::new(["kill"]).args(args).arg("--json").run();
    let r: KillReport =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not a KillReport: {e}\n{}", run.dump()));
    (run, r)
}

#[test]
fn issue7_kill_frees_the_port_and_the_child_got_the_signal() {
    let port = unused_port();
    let child = child_holding(port);
    let pid = child.pid();
    let (run, r) = kill_json(&[&format!("{port}/tcp"), "--yes", "--wait=5s"]);
    run.expect_code(0);
    assert_eq!(r.targets.len(), 1, "{:?}", r.targets);
    assert_eq!((r.targets[0].pid, r.targets[0].result.as_str()), (pid, "signalled"));
    assert_eq!(r.freed, Some(true));
    assert_eq!(r.signal, "SIGTERM");
    let status = child.wait();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "the child died of SIGTERM: {status:?}");
    // The port is free again.
    assert!(common::try_tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 1).is_ok());
}

#[test]
fn issue7_kill_with_another_signal() {
    let port = unused_port();
    let child = child_holding(port);
    Portctl::new(["kill", &format!(":{port}"), "-y", "--signal", "KILL"]).run().expect_code(0);
    assert_eq!(child.wait().signal(), Some(libc::SIGKILL));
}

#[test]
fn issue7_dry_run_signals_nothing() {
    let port = unused_port();
    let child = child_holding_with_sigterm_blocked(port);
    let (run, r) = kill_json(&[&format!("{port}"), "--dry-run"]);
    run.expect_code(0);
    assert_eq!(r.targets[0].result, "would_signal");
    assert!(r.dry_run);
    assert!(!sigterm_pending(child.pid()), "dry run must not signal");
    // The check can fail: a real kill leaves the signal pending.
    let (run, r) = kill_json(&[&format!("{port}"), "--yes"]);
    run.expect_code(0);
    assert_eq!(r.targets[0].result, "signalled");
    assert!(sigterm_pending(child.pid()), "the real kill's SIGTERM is pending");
}

#[test]
fn issue7_kill_without_a_terminal_refuses_unless_yes() {
    let port = unused_port();
    let mut child = child_holding(port);
    let run = Portctl::new(["kill", &format!("{port}")]).run();
    run.expect_code(2);
    assert!(run.stderr.contains("without confirmation") && run.stderr.contains("--yes"), "{}", run.dump());
    assert!(child.child_mut().try_wait().unwrap().is_none(), "nothing was signalled");
}

#[test]
fn issue7_kill_refuses_its_own_ancestry() {
    // The test process holds the listener and is portctl's parent.
    let port = unused_port();
    let _l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    let (run, r) = kill_json(&[&format!("{port}"), "--yes"]);
    run.expect_code(2);
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.targets[0].pid, std::process::id());
    assert_eq!(r.targets[0].result, "refused");
    assert!(r.targets[0].reason.as_deref().unwrap().contains("--force"));
}

#[test]
fn issue7_nothing_to_kill_and_time_wait_only() {
    let port = unused_port();
    let run = Portctl::new(["kill", &format!("{port}"), "--yes"]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("nothing to kill"), "{}", run.dump());
    // Leave a TIME_WAIT on the port: server closes first.
    let l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = l.accept().unwrap();
    drop(s);
    drop(c);
    drop(l);
    common::wait_until("a TIME_WAIT socket on the port", || {
        let ss =
            common::output(Command::new("ss").args(["-tanH", "state", "time-wait", "sport", "=", &format!(":{port}")]));
        !ss.stdout.trim().is_empty()
    });
    let run = Portctl::new(["kill", &format!("{port}/tcp"), "--yes"]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("TIME_WAIT") && run.stdout.contains("frees within"), "{}", run.dump());
}

#[test]
fn issue7_bad_input() {
    for (args, want) in [
        (vec!["kill", "8080", "--signal", "FOO"], "unknown signal"),
        (vec!["kill", "8080", "--signal", "0"], "out of range"),
        (vec!["kill", "8080", "--wait=0"], "positive"),
        (vec!["kill", "8080", "--wait=-3s"], "positive"),
        (vec!["wait", "8080", "--timeout", "0"], "positive"),
        (vec!["wait", "8080", "--timeout", "-1"], "positive"),
        (vec!["wait", "8080", "--interval", "0ms"], "positive"),
        (vec!["kill", "8080/sctp"], "unknown protocol"),
        (vec!["kill", "8080", "--then-kill"], "--wait"),
    ] {
        let run = Portctl::new(args.clone()).run();
        run.expect_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{args:?}: {}", run.dump());
        assert!(run.stderr.contains(want), "{args:?}: {}", run.dump());
    }
}

#[test]
fn issue7_wait_returns_0_shortly_after_a_listener_starts() {
    let port = unused_port();
    let mut waiter = {
        let mut cmd =
            Portctl::new(["-v", "wait", &format!("{port}/tcp"), "--timeout", "20s", "--interval", "50ms"]).command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        spawn(&mut cmd)
    };
    // `-v` says when the first poll found nothing: the wait has begun, and
    // the listener below appears while it polls (no sleep to guess that).
    let mut stderr = std::io::BufReader::new(waiter.child_mut().stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("nothing listening yet; polling every 50 ms"), "{line:?}");
    let started = Instant::now();
    let _l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    let status = waiter.wait();
    assert_eq!(status.code(), Some(0), "wait exits 0 once the listener is up");
    assert!(started.elapsed() < Duration::from_secs(10), "it returned well before its timeout");
}

#[test]
fn issue7_wait_times_out_with_1_and_works_for_udp_and_free() {
    let port = unused_port();
    let run = Portctl::new(["wait", &format!("{port}"), "--timeout", "300ms"]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("timeout"), "{}", run.dump());
    let _u = udp_socket(sa(&format!("127.0.0.1:{port}")), None);
    Portctl::new(["wait", &format!("{port}/udp"), "--timeout", "5s"]).run().expect_code(0);
    Portctl::new(["wait", &format!("{port}/tcp"), "--timeout", "300ms"]).run().expect_code(1);
    Portctl::new(["wait", &format!("{port}/tcp"), "--free", "--timeout", "1s"]).run().expect_code(0);
    Portctl::new(["wait", &format!("{port}/udp"), "--free", "--timeout", "300ms"]).run().expect_code(1);
    // An address: a wildcard listener serves it, another address's does not.
    let port2 = unused_port();
    let _l = tcp_listener(sa(&format!("0.0.0.0:{port2}")), None, 16);
    Portctl::new(["wait", &format!("127.0.0.1:{port2}"), "--timeout", "2s"]).run().expect_code(0);
}

/// A `sleep` child holding listeners on every one of `ports`.
fn child_holding_all(ports: &[u16]) -> ChildGuard {
    let ls: Vec<TcpListener> = ports.iter().map(|p| tcp_listener(sa(&format!("127.0.0.1:{p}")), None, 16)).collect();
    for l in &ls {
        // SAFETY: fcntl on a descriptor we own: let the child inherit it.
        unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, 0) };
    }
    let child = spawn(Command::new("sleep").arg("60"));
    drop(ls);
    child
}

/// Several ports: one report each (a JSON array), each holder signalled,
/// a free port is no failure, and a process holding two of the ports is
/// signalled once.
#[test]
fn kill_several_ports() {
    let (p1, p2, p3, free) = (unused_port(), unused_port(), unused_port(), unused_port());
    let a = child_holding(p1);
    let both = child_holding_all(&[p2, p3]);
    let run = Portctl::new([
        "kill",
        "--yes",
        "--json",
        &p1.to_string(),
        &format!("{p2}/tcp"),
        &format!(":{p3}"),
        &free.to_string(),
    ])
    .run();
    run.expect_code(0);
    let reports: Vec<KillReport> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    let ports: Vec<u16> = reports.iter().filter_map(|r| r.port).collect();
    assert_eq!(ports, [p1, p2, p3, free]);
    assert_eq!(reports[0].targets[0].pid, a.pid());
    for r in &reports[1..3] {
        assert_eq!(r.targets.len(), 1, "{r:?}");
        assert_eq!((r.targets[0].pid, r.targets[0].result.as_str()), (both.pid(), "signalled"));
    }
    assert!(reports[3].targets.is_empty() && reports[3].message.contains("nothing to kill"), "{:?}", reports[3]);
    assert_eq!(a.wait().signal(), Some(libc::SIGTERM));
    assert_eq!(both.wait().signal(), Some(libc::SIGTERM));
    // Nothing on any of them: exit 1; text: one block per port.
    let (f1, f2) = (unused_port(), unused_port());
    let run = Portctl::new(["kill", "--yes", &f1.to_string(), &f2.to_string()]).run();
    run.expect_code(1);
    assert_eq!(
        run.stdout,
        format!("nothing to kill: no process holds port {f1}\n\nnothing to kill: no process holds port {f2}\n")
    );
}

/// A holder refused (our own ancestry) on one port fails the run, even
/// when another port's holder was signalled.
#[test]
fn kill_mixed_results_exit_2() {
    let (p1, p2) = (unused_port(), unused_port());
    let child = child_holding(p1);
    let _mine = tcp_listener(sa(&format!("127.0.0.1:{p2}")), None, 16);
    let run = Portctl::new(["kill", "--yes", "--json", &p1.to_string(), &p2.to_string()]).run();
    run.expect_code(2);
    let reports: Vec<KillReport> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(reports[0].targets[0].result, "signalled");
    assert_eq!(reports[1].targets[0].result, "refused");
    assert_eq!(child.wait().signal(), Some(libc::SIGTERM));
}

#[test]
fn wait_for_several_ports() {
    let (p1, p2) = (unused_port(), unused_port());
    let _l1 = tcp_listener(sa(&format!("127.0.0.1:{p1}")), None, 16);
    let run = Portctl::new(["wait", &p1.to_string(), &p2.to_string(), "--timeout", "500ms"]).run();
    run.expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("port {p1}: listening after ")), "{}", run.dump());
    assert!(
        lines[1].starts_with(&format!("port {p2}: nothing listening after ")) && lines[1].ends_with("(timeout)"),
        "{}",
        run.dump()
    );
    let _l2 = udp_socket(sa(&format!("127.0.0.1:{p2}")), None);
    let run = Portctl::new(["wait", &p1.to_string(), &format!("{p2}/udp"), "--timeout", "5s"]).run();
    run.expect_code(0);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.dump());
    // --free: until none of them is held.
    Portctl::new(["wait", "--free", &p1.to_string(), &unused_port().to_string(), "--timeout", "300ms"])
        .run()
        .expect_code(1);
}
