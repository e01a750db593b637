//! `portctl watch` (issue 7): changes reported as they happen.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{Portctl, spawn, tcp_listener, unused_port};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Starts `portctl watch ...` with its stdout read line by line on a thread.
fn watch(args: &[&str]) -> (common::ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Portctl::new(["watch"]).args(args).command();
    cmd.stdout(Stdio::piped());
    let mut child = spawn(&mut cmd);
    let stdout = child.child_mut().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// `n` consecutive ports nothing is bound to (TCP), the first returned.
fn unused_port_range(n: u16) -> u16 {
    loop {
        let base = unused_port();
        if base.checked_add(n).is_some() && (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

/// The next `want` event for `port` within `wait`, skipping others.
fn next_event_within(rx: &mpsc::Receiver<String>, want: &str, port: u16, wait: Duration) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).ok()?;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
        if v["socket"]["local"]["port"] == port && v["event"] == want {
            return Some(v);
        }
    }
}

fn next_event(rx: &mpsc::Receiver<String>, want: &str, port: u16) -> serde_json::Value {
    loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no '{want}' event for {port}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
        if v["socket"]["local"]["port"] == port && v["event"] == want {
            return v;
        }
    }
}

#[test]
fn issue7_watch_events_report_an_added_and_a_removed_listener() {
    // A range of ports, so that each try below has a port of its own.
    let base = unused_port_range(8);
    let range = format!("{base}-{}", base + 7);
    // --count bounds the run (60 s at most) even if the test fails.
    let (_child, rx) = watch(&["--events", "--interval", "100ms", "--count", "600", "listen", "--port", &range]);
    // The first refresh is a silent baseline: a listener opened before it
    // is never "added". Open one, wait for its event a while, and if none
    // comes (it landed in the baseline), try the next port, waiting longer.
    let mut wait = Duration::from_millis(200);
    let (l, port, added) = (0..8u16)
        .find_map(|i| {
            let port = base + i;
            let l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
            let found = next_event_within(&rx, "added", port, wait).map(|e| (l, port, e));
            wait *= 2;
            found
        })
        .expect("watch --events reported a listener opened after it started");
    assert_eq!(added["socket"]["state"], "listen");
    assert_eq!(added["socket"]["owners"][0]["pid"], std::process::id());
    drop(l);
    let removed = next_event(&rx, "removed", port);
    assert_eq!(removed["socket"]["local"]["addr"], "127.0.0.1");
}

#[test]
fn issue7_watch_table_marks_new_sockets_and_stops_after_count() {
    let port = unused_port();
    let p = port.to_string();
    let (child, rx) = watch(&["--interval", "300ms", "--count", "3", "listen", "--port", &p]);
    // The first refresh's heading: the listener opened after it is new.
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("a first refresh");
    assert!(first.starts_with("every 0.3s: portctl listen: 0 sockets"), "{first}");
    let _l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    let status = child.wait();
    assert!(status.success(), "watch --count stops by itself and exits 0: {status:?}");
    let lines: Vec<String> = std::iter::once(first).chain(rx.iter()).collect();
    let text = lines.join("\n");
    assert_eq!(lines.iter().filter(|l| l.starts_with("every 0.3s: portctl listen")).count(), 3, "{text}");
    let marked = lines.iter().any(|l| l.trim_start().starts_with('+') && l.contains(&format!(" {port} ")));
    assert!(marked, "the new listener is marked '+' when it appears between refreshes:\n{text}");
    assert!(!text.contains('\x1b'), "no escapes when piped");
}

#[test]
fn issue7_watch_stops_quietly_when_stdout_closes() {
    let (mut child, rx) = watch(&["--interval", "50ms", "--count", "400", "listen"]);
    // Read one line, then drop the reader: the pipe closes.
    rx.recv_timeout(Duration::from_secs(20)).expect("a first refresh");
    drop(rx);
    let status = child.child_mut().wait().unwrap();
    assert!(status.success(), "exit 0 on a closed pipe, not a signal or an error: {status:?}");
}

#[test]
fn issue7_watch_bad_input() {
    for (args, want) in
        [(vec!["watch", "--interval", "0"], "positive"), (vec!["watch", "conns", "--state", "listenning"], "listen")]
    {
        let run = Portctl::new(args.clone()).run();
        run.expect_code(2);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.dump());
    }
}
