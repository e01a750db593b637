//! Unix, raw and packet sockets against the kernel and its other readers:
//! `ss -xpa`, `ss -wpa`, `ss -0pa` and `lsof -U` as oracles, on sockets the
//! tests make (paths, abstract names, unnamed sockets, socketpairs, dgram
//! and seqpacket sockets, a listener with many peers, a stale socket file,
//! sockets in another namespace, a raw ICMP socket, a packet socket);
//! `who PATH` / `who @NAME`, `kill PATH`, `wait PATH`; bad input.
//!
//! Peers are checked against what the test connected itself.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use portctl::domain::who::WhoReport;
use portctl::model::{Addr, Proto, Socket, State, UnixType};

fn ino(fd: &OwnedFd) -> u64 {
    socket_inode(fd.as_raw_fd())
}

/// `sleep` holding these descriptors of ours (close-on-exec cleared in the
/// child only).
fn sleeper_holding(fds: &[RawFd]) -> ChildGuard {
    let fds = fds.to_vec();
    let mut cmd = Command::new("sleep");
    cmd.arg("120").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only fcntl (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    spawn(&mut cmd)
}

fn unix_records(run: &Run) -> Vec<Socket> {
    run.expect_code(0);
    let v = run.sockets();
    assert!(v.iter().all(|s| s.proto == Proto::Unix), "{}", run.dump());
    v
}

fn by_inode(v: &[Socket]) -> BTreeMap<u64, &Socket> {
    v.iter().map(|s| (s.inode, s)).collect()
}

/// ss's state column for ours.
fn ss_state(s: &Socket) -> &'static str {
    match s.state {
        State::Listen => "LISTEN",
        State::Established => "ESTAB",
        State::SynSent => "SYN-SENT",
        _ => "UNCONN",
    }
}

/// ss's name column for ours: the path, `@name`, `*`.
fn ss_name(a: &Addr) -> String {
    a.to_string()
}

/// The unix sockets `inodes` (the ones a test made; tests running alongside
/// make others in this process), as portctl and as `ss -xpa` see them: the
/// same states, names, queues, peers and holders.
fn check_against_ss(records: &[Socket], inodes: &BTreeSet<u64>) {
    let ours: BTreeMap<u64, &Socket> =
        records.iter().filter(|s| inodes.contains(&s.inode)).map(|s| (s.inode, s)).collect();
    let theirs: BTreeMap<u64, SsUnix> =
        ss_unix(None).into_iter().filter(|u| inodes.contains(&u.inode)).map(|u| (u.inode, u)).collect();
    assert_eq!(ours.len(), inodes.len(), "portctl lists every socket the test made");
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "the same sockets as ss -xpa");
    for (inode, s) in &ours {
        let u = &theirs[inode];
        let kind = s.unix().unwrap().kind;
        assert_eq!(u.netid, kind.ss_name(), "{s:?} / {u:?}");
        assert_eq!(u.state, ss_state(s), "{s:?} / {u:?}");
        assert_eq!(u.local, ss_name(&s.local), "{s:?} / {u:?}");
        assert_eq!((u.recv_q, u.send_q), (s.recv_q, s.send_q), "{s:?} / {u:?}");
        // ss names the peer by inode (0 for a client its server has not
        // accepted yet, whose other end portctl gives as the listener).
        if u.peer_inode != 0 {
            assert_eq!(s.peer.as_ref().map(|p| p.inode), Some(u.peer_inode), "{s:?} / {u:?}");
        }
        let holders: BTreeSet<(u32, u32)> = s.owners.iter().map(|o| (o.pid, o.fd)).collect();
        let ss_holders: BTreeSet<(u32, u32)> = u.users.iter().map(|x| (x.pid, x.fd)).collect();
        assert_eq!(holders, ss_holders, "{s:?} / {u:?}");
    }
}

/// `users:((...))` of one ss line.
fn parse_users(line: &str) -> Vec<SsUser> {
    let Some(start) = line.find("users:((") else { return Vec::new() };
    let mut out = Vec::new();
    for part in line[start..].split("(\"").skip(1) {
        let pid = part.split("pid=").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next());
        let fd = part.split("fd=").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next());
        if let (Some(pid), Some(fd)) = (pid.and_then(|p| p.parse().ok()), fd.and_then(|f| f.parse().ok())) {
            out.push(SsUser { name: String::new(), pid, fd });
        }
    }
    out
}

/// `lsof -U -a -p PID -F pfi`: (fd, inode) of every unix socket it holds.
fn lsof_unix(pid: u32) -> BTreeSet<(u32, u64)> {
    let run = output(Command::new("lsof").args(["-nP", "-U", "-a", "-p", &pid.to_string(), "-F", "pfi"]));
    assert!(run.status.success() || run.status.code() == Some(1), "{}", run.dump());
    let mut out = BTreeSet::new();
    let mut fd = None;
    for line in run.stdout.lines() {
        if let Some(f) = line.strip_prefix('f') {
            fd = f.parse().ok();
        } else if let Some(i) = line.strip_prefix('i') {
            out.insert((fd.expect("f before i"), i.parse().unwrap()));
        }
    }
    out
}

struct Population {
    _dir: TempDir,
    path: std::path::PathBuf,
    dgram_path: std::path::PathBuf,
    abstract_name: String,
    listener: OwnedFd,
    accepted: Vec<OwnedFd>,
    clients: Vec<OwnedFd>,
    waiting: OwnedFd,
    seqpacket: (OwnedFd, OwnedFd, OwnedFd),
    dgram: (OwnedFd, OwnedFd),
    pair: (OwnedFd, OwnedFd),
}

impl Population {
    fn inodes(&self) -> BTreeSet<u64> {
        let mut v = vec![&self.listener, &self.waiting, &self.seqpacket.0, &self.seqpacket.1, &self.seqpacket.2];
        v.extend([&self.dgram.0, &self.dgram.1, &self.pair.0, &self.pair.1]);
        v.extend(self.accepted.iter().chain(&self.clients));
        v.into_iter().map(ino).collect()
    }
}

/// A listener on a path with `n` accepted connections and one client not
/// accepted yet, a seqpacket listener on an abstract name with one
/// connection, a bound dgram socket with a connected client, a socketpair.
fn population(n: usize) -> Population {
    let dir = TempDir::new();
    let path = dir.path().join("app.sock");
    let dgram_path = dir.path().join("dgram.sock");
    let abstract_name = unique_name();
    let listener = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(64));
    let mut clients = Vec::new();
    let mut accepted = Vec::new();
    for _ in 0..n {
        clients.push(unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path)));
        accepted.push(unix_accept(&listener));
    }
    let waiting = unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path));
    let sl = unix_socket(libc::SOCK_SEQPACKET, UnixAddr::Abstract(abstract_name.as_bytes()), Some(5));
    let sc = unix_connect(libc::SOCK_SEQPACKET, UnixAddr::Abstract(abstract_name.as_bytes()));
    let sa = unix_accept(&sl);
    let dg = unix_socket(libc::SOCK_DGRAM, UnixAddr::Path(&dgram_path), None);
    let dc = unix_connect(libc::SOCK_DGRAM, UnixAddr::Path(&dgram_path));
    Population {
        _dir: dir,
        path,
        dgram_path,
        abstract_name,
        listener,
        accepted,
        clients,
        waiting,
        seqpacket: (sl, sc, sa),
        dgram: (dg, dc),
        pair: unix_pair(libc::SOCK_STREAM),
    }
}

#[test]
fn listen_x_and_conns_x_match_ss_and_lsof() {
    let mut p = population(3);
    // The clients live in another process, as a server's clients do.
    let client_fds: Vec<RawFd> = p.clients.iter().map(|c| c.as_raw_fd()).collect();
    let child = sleeper_holding(&client_fds);
    let inodes = p.inodes();
    let clients: Vec<u64> = p.clients.iter().map(ino).collect();
    p.clients.clear();

    let listen = unix_records(&Portctl::new(["listen", "-x", "--json"]).run());
    let l = by_inode(&listen);
    let lr = l[&ino(&p.listener)];
    assert_eq!(
        (lr.state, lr.recv_q, lr.send_q, lr.local.to_string()),
        (State::Listen, 1, 64, p.path.display().to_string())
    );
    assert_eq!(lr.unix().unwrap().pending, [ino(&p.waiting)]);
    let file = std::fs::metadata(&p.path).unwrap();
    let vfs = lr.unix().unwrap().vfs.unwrap();
    assert_eq!((vfs.dev, vfs.ino), (file.dev(), file.ino()));
    assert_eq!(l[&ino(&p.seqpacket.0)].local.to_string(), format!("@{}", p.abstract_name));
    // A bound dgram socket a client connected to: the kernel calls it
    // established (both ends, since Linux 5.13), yet it has no peer and
    // still serves the name.
    let dr = l[&ino(&p.dgram.0)];
    assert_eq!((dr.state, dr.peer.as_ref()), (State::Established, None));
    assert!(!l.contains_key(&ino(&p.pair.0)), "unnamed sockets are not listening");

    let all = unix_records(&Portctl::new(["conns", "-x", "--state", "all", "--json"]).run());
    check_against_ss(&all, &inodes);
    let c = by_inode(&all);
    // Peers, as the test connected them.
    for (&client, server) in clients.iter().zip(&p.accepted) {
        let cs = c[&client];
        assert_eq!(cs.peer.as_ref().unwrap().inode, ino(server));
        assert_eq!(cs.owners.iter().map(|o| o.pid).collect::<Vec<_>>(), [child.pid()]);
        assert_eq!(cs.remote.as_ref().unwrap().to_string(), p.path.display().to_string());
        let ss = c[&ino(server)];
        let peer = ss.peer.as_ref().unwrap();
        assert_eq!((peer.inode, peer.owners.iter().map(|o| o.pid).collect::<Vec<_>>()), (client, vec![child.pid()]));
    }
    let (sl, sc, sa) = &p.seqpacket;
    assert_eq!(c[&ino(sc)].peer.as_ref().unwrap().inode, ino(sa));
    assert_eq!(c[&ino(sa)].unix().unwrap().kind, UnixType::Seqpacket);
    assert_eq!(c[&ino(sl)].unix().unwrap().kind, UnixType::Seqpacket);
    let (dg, dc) = &p.dgram;
    assert_eq!(c[&ino(dc)].peer.as_ref().unwrap().inode, ino(dg), "a connected dgram client's peer is the server");
    assert_eq!(c[&ino(dc)].remote.as_ref().unwrap().to_string(), p.dgram_path.display().to_string());
    assert_eq!(c[&ino(&p.pair.0)].peer.as_ref().unwrap().inode, ino(&p.pair.1));
    assert_eq!(c[&ino(&p.pair.1)].peer.as_ref().unwrap().inode, ino(&p.pair.0));

    // lsof -U: every unix socket of the child, with its descriptor.
    let ours: BTreeSet<(u32, u64)> = all
        .iter()
        .flat_map(|s| s.owners.iter().filter(|o| o.pid == child.pid()).map(move |o| (o.fd, s.inode)))
        .collect();
    assert_eq!(ours, lsof_unix(child.pid()));

    // The table: ss's type names, both names, the peer process.
    let run = Portctl::new(["conns", "-x"]).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(
        header,
        [
            "TYPE",
            "STATE",
            "LOCAL",
            "REMOTE",
            "RECV-Q",
            "SEND-Q",
            "INODE",
            "PID",
            "PROCESS",
            "USER",
            "PEER-INODE",
            "PEER"
        ]
    );
    let row = rows.iter().find(|r| r[6] == clients[0].to_string()).expect("the first client's row");
    assert_eq!((row[0].as_str(), row[2].as_str(), row[3].as_str()), ("u_str", "*", p.path.to_str().unwrap()));
    assert_eq!(
        (row[8].as_str(), row[11].clone()),
        ("sleep", format!("{}({})", own_comm_and_cmdline().0, std::process::id()))
    );
    drop(child);
}

#[test]
fn who_path_counts_the_processes_connected() {
    let mut p = population(12);
    let fds: Vec<RawFd> = p.clients.iter().skip(2).map(|c| c.as_raw_fd()).collect();
    let child = sleeper_holding(&fds);
    // Ten clients now only in the child, two only here.
    p.clients.truncate(2);
    let spec = p.path.to_str().unwrap();
    let run = Portctl::new(["who", spec, "--json"]).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.verdict.in_use);
    assert_eq!((r.connected.connections, r.connected.pending, r.connected.other), (12, 1, 0), "{:?}", r.connected);
    let (comm, _) = own_comm_and_cmdline();
    let groups: Vec<(String, Vec<u32>, usize)> =
        r.connected.peers.iter().map(|g| (g.name.clone(), g.pids.clone(), g.count)).collect();
    assert_eq!(groups, [("sleep".to_string(), vec![child.pid()], 10), (comm.clone(), vec![std::process::id()], 2)]);
    // The text says so, on the line under the verdict.
    let run = Portctl::new(["who", spec]).run();
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("{spec} is in use: ")), "{}", run.stdout);
    assert!(lines[0].ends_with("listens on it (stream, 12 connections)"), "{}", run.stdout);
    assert_eq!(
        lines[1],
        format!(
            "connected: 10 × sleep (pid {}), 2 × {comm} (pid {}); 1 waiting to be accepted",
            child.pid(),
            std::process::id()
        )
    );
    assert!(
        run.stdout.contains(&format!("a new bind() on {spec}\n  {spec}  fails  (EADDRINUSE: the file exists")),
        "{}",
        run.stdout
    );
    // The abstract name: the same answer by name.
    let run = Portctl::new(["who", &format!("@{}", p.abstract_name)]).run();
    run.expect_code(0);
    assert!(run.stdout.starts_with(&format!("@{} is in use: ", p.abstract_name)), "{}", run.stdout);
    assert!(run.stdout.contains("listens on it (seqpacket, 1 connection)"), "{}", run.stdout);
    drop(child);
}

#[test]
fn who_path_on_a_stale_file_and_a_removed_one() {
    let dir = TempDir::new();
    let path = dir.path().join("crashed.sock");
    let spec = path.to_str().unwrap().to_string();
    drop(unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4)));
    assert!(path.exists(), "the file outlives its socket");
    let run = Portctl::new(["who", &spec]).run();
    run.expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{spec} is not in use, but it is a stale socket file: no socket is bound to it (its server exited without removing it, or crashed)"
        )
    );
    assert!(run.stdout.contains("fails  (EADDRINUSE: the file exists, stale"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("hint: remove the stale file before starting the server: rm {spec}")),
        "{}",
        run.stdout
    );
    // The kernel agrees: a bind() there fails.
    let again = std::panic::catch_unwind(|| unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), None));
    assert!(again.is_err(), "bind() on a stale file fails (EADDRINUSE)");

    // A server whose file was removed: in use by name, bind succeeds.
    std::fs::remove_file(&path).unwrap();
    let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4));
    std::fs::remove_file(&path).unwrap();
    let run = Portctl::new(["who", &spec, "--json"]).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.verdict.summary[0].contains("is in use by name only"), "{:?}", r.verdict.summary);
    assert_eq!(r.verdict.binds[0].plain(), portctl::domain::bind::Outcome::Ok);
    assert_eq!(r.sockets.iter().map(|s| s.inode).collect::<Vec<_>>(), [ino(&l)]);
    // Nothing at all there: free.
    drop(l);
    let run = Portctl::new(["who", &spec]).run();
    run.expect_code(1);
    assert!(run.stdout.starts_with(&format!("{spec} is free: no such file")), "{}", run.stdout);
}

#[test]
fn bad_unix_specs_are_one_line() {
    let dir = TempDir::new();
    let regular = dir.path().join("regular");
    std::fs::write(&regular, "x").unwrap();
    let long = format!("/{}", "a".repeat(108));
    let cases: [(&str, &str); 7] = [
        (regular.to_str().unwrap(), "is not a socket: it is a regular file"),
        (dir.path().to_str().unwrap(), "is not a socket: it is a directory"),
        ("run/app.sock", "looks like a relative path"),
        ("./app.sock", "looks like a relative path"),
        ("@", "'@' alone names no socket"),
        ("/tmp/a\nb.sock", "newline"),
        (&long, "path of 109 bytes"),
    ];
    for cmd in ["who", "kill", "wait"] {
        for (spec, want) in cases {
            let run = Portctl::new([cmd, spec]).run();
            run.expect_code(2);
            let lines = run.stderr_lines();
            assert_eq!(lines.len(), 1, "{cmd} {spec:?}: one line\n{}", run.dump());
            assert!(
                lines[0].starts_with("portctl: error: ") && lines[0].contains(want),
                "{cmd} {spec:?}: {}",
                run.dump()
            );
            assert!(run.stdout.is_empty(), "{}", run.dump());
        }
    }
    // A missing path is no error: it is free (exit 1, the truth on stdout).
    let missing = dir.path().join("missing.sock");
    let run = Portctl::new(["who", missing.to_str().unwrap()]).run();
    run.expect_code(1);
    assert!(run.stderr.is_empty(), "{}", run.dump());
    let run = Portctl::new(["who", dir.path().join("no/such/dir.sock").to_str().unwrap(), "--json"]).run();
    run.expect_code(1);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.verdict.binds[0].plain() == portctl::domain::bind::Outcome::Fails, "no directory: bind fails");
}

#[test]
fn kill_and_wait_a_unix_listener() {
    let dir = TempDir::new();
    let path = dir.path().join("srv.sock");
    let spec = path.to_str().unwrap().to_string();
    // wait: nothing there yet; a listener appears.
    let mut waiter = spawn(
        Portctl::new(["wait", &spec, "--timeout", "20s", "--interval", "20ms"])
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4));
    let child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    let out = waiter.child_mut().stdout.take().unwrap();
    let line = BufReader::new(out).lines().next().unwrap().unwrap();
    assert!(line.starts_with(&format!("{spec}: listening after ")), "{line}");
    assert!(waiter.wait().success());

    // kill: the holder, then the port... the path is free of listeners, the
    // stale file stays.
    let run = Portctl::new(["kill", &spec, "--yes", "--wait=10s", "--json"]).run();
    run.expect_code(0);
    let k: portctl::domain::kill::KillReport = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(k.targets.iter().map(|t| (t.pid, t.result.as_str())).collect::<Vec<_>>(), [(child.pid(), "signalled")]);
    assert_eq!(k.freed, Some(true));
    assert!(k.message.contains(&format!("{spec} remains, now stale")), "{}", k.message);
    assert!(path.exists());
    // wait --free: already free.
    let run = Portctl::new(["wait", &spec, "--free", "--timeout", "5s"]).run();
    run.expect_code(0);
    // wait with nothing coming: a timeout, exit 1.
    let run = Portctl::new(["wait", &spec, "--timeout", "300ms"]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("nothing listening after"), "{}", run.dump());
    drop(child);
}

#[test]
fn proc_net_unix_fallback_keeps_names_and_owners() {
    let p = population(1);
    let run = Portctl::new(["listen", "-x", "--json"]).env("PORTCTL_SOURCE", "proc").run();
    let v = unix_records(&run);
    let l = by_inode(&v)[&ino(&p.listener)];
    assert_eq!((l.state, l.local.to_string()), (State::Listen, p.path.display().to_string()));
    assert_eq!(l.unix().unwrap().vfs, None, "/proc/net/unix has no bound file");
    assert_eq!(l.owners[0].pid, std::process::id());
    assert!(run.stderr.contains("PORTCTL_SOURCE=proc"), "{}", run.dump());
    // who matches by name there.
    let run = Portctl::new(["who", p.path.to_str().unwrap(), "--json"]).env("PORTCTL_SOURCE", "proc").run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.sockets.iter().any(|s| s.inode == ino(&p.listener)), "{:?}", r.sockets);
}

#[test]
fn watch_listen_x_sees_a_unix_listener_come() {
    let dir = TempDir::new();
    let mut cmd = Portctl::new(["watch", "--events", "--interval", "50ms", "listen", "-x"]).command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut w = spawn(&mut cmd);
    let lines = BufReader::new(w.child_mut().stdout.take().unwrap()).lines();
    // The first refresh is the baseline: make the listener until it is
    // reported added (it may land in the baseline once).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut held = Vec::new();
    let mut made = BTreeSet::new();
    let mut found = None;
    'rounds: for round in 0..20 {
        let p = dir.path().join(format!("late-{round}.sock"));
        let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&p), Some(1));
        made.insert(ino(&l));
        held.push(l);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200 * (round + 1))) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["event"] == "added" && v["socket"]["inode"].as_u64().is_some_and(|i| made.contains(&i)) {
                found = Some(v);
                break 'rounds;
            }
        }
    }
    let v = found.expect("watch --events listen -x reports the new unix listener");
    assert_eq!(v["socket"]["proto"], "unix");
    assert_eq!(v["socket"]["detail"]["type"], "stream");
    drop(w);
}

#[test]
#[ignore = "needs root"]
fn namespaces_keep_abstract_names_and_paths_cross_them() {
    require_root();
    let ns = Netns::new();
    let dir = TempDir::new();
    let path = dir.path().join("ns.sock");
    let name = unique_name();
    let (abs, on_path) = in_netns(&ns, || {
        (
            unix_socket(libc::SOCK_STREAM, UnixAddr::Abstract(name.as_bytes()), Some(4)),
            unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4)),
        )
    });
    // The abstract name is the namespace's: free here, held there.
    let run = Portctl::new(["who", &format!("@{name}")]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("free here, but "), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("holds @{name} in network namespace {}", ns.name())), "{}", run.stdout);
    let run = Portctl::new(["who", &format!("@{name}"), "--netns", ns.name()]).run();
    run.expect_code(0);
    // The path is the filesystem's: in use from here too, the socket tagged
    // with its namespace.
    let run = Portctl::new(["who", path.to_str().unwrap(), "--json"]).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    let s = r.sockets.iter().find(|s| s.inode == ino(&on_path)).expect("the namespace's listener");
    assert_eq!(s.netns.as_ref().and_then(|n| n.name.as_deref()), Some(ns.name()));
    // A client here of the listener there: the kernel makes the accepted
    // end in the client's namespace, so the pair is here, and the listener
    // there names the client in its queue until it is accepted.
    let c = unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path));
    let run = Portctl::new(["conns", "-x", "--all-netns", "--json"]).run();
    let v = unix_records(&run);
    let cs = v.iter().find(|s| s.inode == ino(&c)).expect("the waiting client");
    let peer = cs.peer.as_ref().unwrap();
    assert_eq!(peer.inode, ino(&on_path), "waiting: the listener in the other namespace");
    assert_eq!(peer.netns.as_ref().and_then(|n| n.name.as_deref()), Some(ns.name()), "{cs:?}");
    let a = in_netns(&ns, || unix_accept(&on_path));
    let run = Portctl::new(["conns", "-x", "--all-netns", "--json"]).run();
    let v = unix_records(&run);
    let cs = v.iter().find(|s| s.inode == ino(&c)).expect("the client");
    let peer = cs.peer.as_ref().unwrap();
    assert_eq!((peer.inode, peer.netns.as_ref()), (ino(&a), None), "{cs:?}");
    // ss agrees on which namespace has which.
    let there: BTreeSet<u64> = ss_unix(Some(&ns)).into_iter().map(|u| u.inode).collect();
    let here: BTreeSet<u64> = ss_unix(None).into_iter().map(|u| u.inode).collect();
    assert!(there.contains(&ino(&abs)) && there.contains(&ino(&on_path)));
    assert!(here.contains(&ino(&a)) && here.contains(&ino(&c)) && !there.contains(&ino(&a)));
}

#[test]
#[ignore = "needs root"]
fn raw_and_packet_sockets_match_ss() {
    require_root();
    let ns = Netns::new();
    let (raw, raw6, packet) = in_netns(&ns, || {
        (
            try_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP).unwrap(),
            try_socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap(),
            packet_socket(libc::SOCK_DGRAM, 1, 0x0806, false),
        )
    });
    let run = Portctl::new(["conns", "-w", "-0", "--json"]).netns(&ns).run();
    run.expect_code(0);
    let v = run.sockets();
    let got: BTreeSet<(u64, Proto, Option<u8>)> = v.iter().map(|s| (s.inode, s.proto, s.raw_protocol())).collect();
    assert_eq!(
        got,
        BTreeSet::from([
            (ino(&raw), Proto::Raw, Some(1)),
            (ino(&raw6), Proto::Raw, Some(255)),
            (ino(&packet), Proto::Packet, None)
        ])
    );
    // ss -wpa and ss -0pa list the same sockets, held by the same
    // descriptors of this process.
    let me = std::process::id();
    for (flags, fds) in [("-wpaH", vec![raw.as_raw_fd(), raw6.as_raw_fd()]), ("-0paH", vec![packet.as_raw_fd()])] {
        let run = output(ns.command("ss").arg(flags));
        run.expect_code(0);
        let theirs: BTreeSet<u32> =
            run.stdout.lines().flat_map(parse_users).filter(|u| u.pid == me).map(|u| u.fd).collect();
        let want: BTreeSet<u32> = fds.iter().map(|&f| f as u32).collect();
        assert_eq!(theirs, want, "ss {flags}:\n{}", run.stdout);
        let kinds: &[Proto] = if flags == "-0paH" { &[Proto::Packet] } else { &[Proto::Raw, Proto::Icmp] };
        let ours: BTreeSet<u32> = v
            .iter()
            .filter(|s| kinds.contains(&s.proto))
            .flat_map(|s| s.owners.iter().filter(|o| o.pid == me).map(|o| o.fd))
            .collect();
        assert_eq!(ours, want, "portctl conns -w -0 and ss {flags}");
    }
    let p = v.iter().find(|s| s.proto == Proto::Packet).unwrap();
    assert_eq!(
        (p.local.link().map(|l| (l.ifindex, l.protocol)), p.interface.as_deref()),
        (Some((1, 0x0806)), Some("lo"))
    );
    // The tables.
    let run = Portctl::new(["conns", "-w", "-0"]).netns(&ns).run();
    run.expect_code(0);
    assert!(run.stdout.contains("PROTO  STATE   LOCAL    REMOTE  PROTOCOL"), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l.starts_with("raw6 ") && l.contains(" raw ")), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l.starts_with("p_dgr  lo ") && l.contains(" arp ")), "{}", run.stdout);
}

#[test]
#[ignore = "needs root"]
fn stats_counts_unix_sockets_per_type_and_state_as_ss() {
    require_root();
    let ns = Netns::new();
    let dir = TempDir::new();
    let held: Vec<OwnedFd> = in_netns(&ns, || {
        let mut v = Vec::new();
        for i in 0..3 {
            let p = dir.path().join(format!("s{i}.sock"));
            let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&p), Some(4));
            v.push(unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&p)));
            v.push(unix_accept(&l));
            v.push(l);
        }
        let (a, b) = unix_pair(libc::SOCK_DGRAM);
        v.extend([a, b]);
        v.push(unix_socket(libc::SOCK_SEQPACKET, UnixAddr::Abstract(b"stats-seq"), Some(2)));
        v
    });
    let run = Portctl::new(["stats", "--json", "--netns", ns.name(), "--no-owners"]).run();
    run.expect_code(0);
    let st: portctl::domain::stats::Stats = serde_json::from_str(&run.stdout).unwrap();
    let u = st.unix.unwrap();
    let mut ss_counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for x in ss_unix(Some(&ns)) {
        *ss_counts.entry((x.netid, x.state)).or_default() += 1;
    }
    let ours: BTreeMap<(String, String), usize> = u
        .states
        .iter()
        .filter(|c| c.count > 0)
        .map(|c| {
            let s = Socket::new(
                Proto::Unix,
                portctl::model::Family::Unix,
                c.state,
                Addr::from_unix(portctl::model::UnixName::unnamed()),
                None,
            );
            ((c.kind.ss_name().to_string(), ss_state(&s).to_string()), c.count)
        })
        .collect();
    assert_eq!(ours, ss_counts);
    assert_eq!(u.total, held.len());
}

#[test]
fn mptcp_subflows_are_marked() {
    // MPTCP is on in this kernel (net.mptcp.enabled = 1): a listener and a
    // connection, whose TCP subflows share the MPTCP sockets' inodes.
    let fd = try_socket(libc::AF_INET, libc::SOCK_STREAM, 262).expect("IPPROTO_MPTCP sockets (CONFIG_MPTCP)");
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in; the descriptor is ours.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&sin as *const libc::sockaddr_in).cast(), 16) };
    assert_eq!(rc, 0);
    // SAFETY: plain syscall on our descriptor.
    assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 4) }, 0);
    let l = std::net::TcpListener::from(fd);
    let port = l.local_addr().unwrap().port();
    let run = Portctl::new(["listen", "-t", "--port", &port.to_string(), "--json"]).run();
    run.expect_code(0);
    let v = run.sockets();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].is_mptcp(), "{v:?}");
    assert_eq!(v[0].owners[0].pid, std::process::id());
    let run = Portctl::new(["listen", "-t", "--port", &port.to_string()]).run();
    assert!(run.stdout.lines().nth(1).is_some_and(|l| l.starts_with("mptcp ")), "{}", run.stdout);
    // A plain TCP listener is not marked.
    let plain = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 4);
    let run = Portctl::new(["listen", "-t", "--port", &plain.local_addr().unwrap().port().to_string(), "--json"]).run();
    assert!(!run.sockets()[0].is_mptcp());
}

/// A server that bound a relative name: the kernel keeps the name as given
/// (`srv.sock`), and `who` finds it by the file (device and inode).
#[test]
fn a_relative_name_is_found_by_its_file() {
    let dir = TempDir::new();
    let cdir = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("120").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe system calls
    // run (chdir, socket, bind, listen, fcntl), on memory made before the
    // fork (the CString, a sockaddr_un on the stack).
    unsafe {
        cmd.pre_exec(move || {
            let mut sun: libc::sockaddr_un = std::mem::zeroed();
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (d, b) in sun.sun_path.iter_mut().zip(b"srv.sock") {
                *d = *b as libc::c_char;
            }
            let len = (std::mem::size_of::<libc::sa_family_t>() + 8) as libc::socklen_t;
            if libc::chdir(cdir.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 || libc::bind(fd, (&sun as *const libc::sockaddr_un).cast(), len) != 0 || libc::listen(fd, 4) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    let path = dir.path().join("srv.sock");
    wait_until("the child's listener", || path.exists());
    let run = Portctl::new(["who", path.to_str().unwrap(), "--json"]).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    let l = r.sockets.iter().find(|s| s.state == State::Listen).expect("the listener");
    assert_eq!(l.local.to_string(), "srv.sock", "the name as the server gave it");
    assert_eq!(l.owners.iter().map(|o| o.pid).collect::<Vec<_>>(), [child.pid()]);
    drop(child);
}

/// Ports and unix names in one command line: one answer each, in order;
/// `kill` signals the process that holds both once; `wait --free` waits
/// for both.
#[test]
fn ports_and_unix_paths_in_one_command_line() {
    let dir = TempDir::new();
    let path = dir.path().join("both.sock");
    let spec = path.to_str().unwrap().to_string();
    let u = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4));
    let t = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 4);
    let port = t.local_addr().unwrap().port();
    let child = sleeper_holding(&[u.as_raw_fd(), t.as_raw_fd()]);
    drop((u, t));
    let tcp = format!("{port}/tcp");

    let run = Portctl::new(["who", &tcp, &spec, "--json"]).run();
    run.expect_code(0);
    let answers: Vec<WhoReport> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(answers.len(), 2, "{}", run.stdout);
    assert_eq!((answers[0].spec.port, answers[0].spec.unix.is_none()), (Some(port), true));
    assert_eq!(answers[1].spec.unix.as_ref().map(|u| u.name.as_str()), Some(spec.as_str()));
    for a in &answers {
        assert!(a.verdict.in_use, "{a:?}");
        assert_eq!(a.holders.iter().map(|h| h.pid).collect::<Vec<_>>(), [child.pid()], "{a:?}");
    }

    let run = Portctl::new(["kill", &tcp, &spec, "--yes", "--wait=10s", "--json"]).run();
    run.expect_code(0);
    let reports: Vec<portctl::domain::kill::KillReport> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(reports.len(), 2);
    assert_eq!((reports[0].port, reports[1].port), (Some(port), None));
    for r in &reports {
        assert_eq!(
            r.targets.iter().map(|t| (t.pid, t.result.as_str())).collect::<Vec<_>>(),
            [(child.pid(), "signalled")]
        );
        assert_eq!(r.freed, Some(true), "{r:?}");
    }
    Portctl::new(["wait", &tcp, &spec, "--free", "--timeout", "5s"]).run().expect_code(0);
    drop(child);
}
