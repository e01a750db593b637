//! Owner sources (issue 14): the BPF task_file iterator and the /proc walk
//! give the same owners (pid, tid, fd) on the same sockets, every command;
//! a thread with a descriptor table of its own is found both ways; a
//! socket in flight in a unix socket message, or the kernel's own, is said
//! to be held by no process (never "try sudo" to root); `auto` falls back
//! to /proc when BPF cannot run — capabilities taken away, a kernel without
//! the iterator — and says why with `-v`; `--owners-from bpf` then fails in
//! one line; bad values are one-line errors.
//!
//! BPF needs root (or CAP_BPF and CAP_PERFMON): those tests are
//! `#[ignore = "needs root"]` and fail without it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;

use common::{HeldSocket, Netns, Portctl, Run, Sockpop, require_root, socket_inode, spawn_lock, tcp_listener};
use portctl::model::{Socket, Unheld};

/// (inode, sorted (pid, tid, fd)) of every socket with an inode.
type Owners = BTreeMap<u64, Vec<(u32, Option<u32>, u32)>>;

fn owners_of(sockets: &[Socket]) -> Owners {
    sockets
        .iter()
        .filter(|s| s.inode != 0)
        .map(|s| {
            let mut o: Vec<_> = s.owners.iter().map(|o| (o.pid, o.tid, o.fd)).collect();
            o.sort();
            (s.inode, o)
        })
        .collect()
}

fn run(source: &str, args: &[&str]) -> Run {
    Portctl::new(args).args(["--owners-from", source, "-v"]).run()
}

/// The `-v` line naming the source.
fn source_line(run: &Run) -> String {
    run.stderr_lines()
        .into_iter()
        .find(|l| l.starts_with("portctl: owners from"))
        .unwrap_or_else(|| panic!("no -v line: {}", run.dump()))
        .to_string()
}

/// The stderr lines of a run as root never tell root to use sudo.
fn no_sudo(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("sudo") && !text.contains("run as root"), "advice for root: {}", run.dump());
    }
}

#[test]
#[ignore = "needs root"]
fn both_sources_give_the_same_owners_in_every_command() {
    require_root();
    let ns = Netns::new();
    let pop = Sockpop::start(
        &[
            "--procs",
            "6",
            "--listeners",
            "12",
            "--established",
            "300",
            "--close-wait",
            "6",
            "--udp",
            "8",
            "--shared-listener",
            "--base-port",
            "21000",
        ],
        Some(&ns),
    );
    // A thread-private table in the namespace too.
    let threaded = HeldSocket::start_in(&ns, &["--thread-table", "--listen", "tcp", "127.0.0.1:21500"]);
    let nsarg = ["--netns", ns.name()];
    let listing = |source: &str, args: &[&str]| -> Owners {
        let r = run(source, &[args, &nsarg[..]].concat());
        r.expect_code(0);
        owners_of(&r.sockets())
    };
    for args in [&["listen", "--json"][..], &["conns", "--state", "all", "--json"], &["conns", "--json", "-t"]] {
        let (bpf, proc) = (listing("bpf", args), listing("proc", args));
        assert!(bpf.values().filter(|o| !o.is_empty()).count() >= 12, "{args:?}: {bpf:?}");
        assert_eq!(bpf, proc, "{args:?}");
    }
    // The thread's listener: its pid and tid, both ways.
    let listen = listing("bpf", &["listen", "--json", "--port", "21500"]);
    assert_eq!(listen[&threaded.inode], [(threaded.pid(), Some(threaded.tid), threaded.fd)]);
    assert_ne!(threaded.pid(), threaded.tid);
    // The shared listener (two holders) and a port with connections.
    for port in ["20999", "21000"] {
        let who = |source| {
            let r = run(source, &["who", port, "--json", "--netns", ns.name()]);
            r.expect_code(0);
            let w: portctl::domain::who::WhoReport = serde_json::from_str(&r.stdout).unwrap();
            let holders: Vec<(u32, Vec<u64>)> = w.holders.iter().map(|h| (h.pid, h.sockets.clone())).collect();
            (owners_of(&w.sockets), holders)
        };
        let (bpf, proc) = (who("bpf"), who("proc"));
        assert!(!bpf.1.is_empty(), "{port}: holders");
        assert_eq!(bpf, proc, "who {port}");
    }
    let shared = listing("bpf", &["listen", "--json", "--port", "20999"]);
    let pids: BTreeSet<u32> = shared.values().flatten().map(|o| o.0).collect();
    assert_eq!(pids.len(), 2, "the shared listener has two holders: {shared:?}");
    // kill --dry-run: the same targets; stats: the same CLOSE_WAIT holders.
    let targets = |source| {
        let r = Portctl::new(["kill", "21000", "--dry-run", "--json", "--owners-from", source]).netns(&ns).run();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.dump()));
        v["targets"].as_array().unwrap().iter().map(|t| (t["pid"].as_u64(), t["sockets"].clone())).collect::<Vec<_>>()
    };
    let (bpf, proc) = (targets("bpf"), targets("proc"));
    assert!(!bpf.is_empty());
    assert_eq!(bpf, proc);
    let close_wait = |source| {
        let r = run(source, &["stats", "--json", "--netns", ns.name()]);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["close_wait"]["processes"].clone()
    };
    let (bpf, proc) = (close_wait("bpf"), close_wait("proc"));
    assert!(bpf.as_array().is_some_and(|p| !p.is_empty()), "{bpf}");
    assert_eq!(bpf, proc);
    // -v names each.
    let r = run("bpf", &["listen", "--netns", ns.name()]);
    assert!(source_line(&r).starts_with("portctl: owners from BPF (iter/task_file"), "{}", r.dump());
    let r = run("proc", &["listen", "--netns", ns.name()]);
    assert_eq!(source_line(&r), "portctl: owners from the /proc walk (--owners-from proc)");
    drop(pop);
}

#[test]
#[ignore = "needs root"]
fn thread_private_table_is_found_both_ways() {
    require_root();
    let port = common::unused_port();
    let addr = format!("127.0.0.1:{port}");
    let held = HeldSocket::start(None, &["--thread-table", "--listen", "tcp", &addr]);
    assert_ne!(held.pid(), held.tid, "made by a thread, not the main one");
    // Only the thread's table has it.
    let want = format!("socket:[{}]", held.inode);
    let link = std::fs::read_link(format!("/proc/{}/task/{}/fd/{}", held.pid(), held.tid, held.fd)).unwrap();
    assert_eq!(link.to_str(), Some(want.as_str()));
    let main = std::fs::read_link(format!("/proc/{}/fd/{}", held.pid(), held.fd));
    assert!(main.is_err() || main.unwrap().to_str() != Some(want.as_str()), "not in the process's own table");
    for source in ["bpf", "proc"] {
        let r = run(source, &["listen", "--json", "--port", &port.to_string()]);
        r.expect_code(0);
        let o = owners_of(&r.sockets());
        assert_eq!(o[&held.inode], [(held.pid(), Some(held.tid), held.fd)], "{source}: {}", r.dump());
        let table = run(source, &["listen", "--port", &port.to_string()]);
        assert!(table.stdout.contains(&format!("{}(tid {})", held.pid(), held.tid)), "{source}: {}", table.stdout);
        let who = run(source, &["who", &format!("{port}/tcp")]);
        who.expect_code(0);
        assert!(who.stdout.contains(&format!("(fd {} of thread {})", held.fd, held.tid)), "{source}: {}", who.stdout);
        no_sudo(&who);
    }
}

/// `kill` finds a holder whose socket is in a thread's own table, checks it
/// there (`/proc/PID/task/TID/fd`) through its pidfd, and signals it.
#[test]
#[ignore = "needs root"]
fn kill_signals_a_holder_through_its_thread_table() {
    require_root();
    let port = common::unused_port();
    let held = HeldSocket::start(None, &["--thread-table", "--listen", "tcp", &format!("127.0.0.1:{port}")]);
    for source in ["proc", "bpf"] {
        let r = run(source, &["kill", &format!("{port}/tcp"), "--dry-run", "--json"]);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["targets"][0]["pid"].as_u64(), Some(u64::from(held.pid())), "{source}: {}", r.dump());
        assert_eq!(v["targets"][0]["result"], "would_signal", "{source}: {}", r.dump());
    }
    let r = run("bpf", &["kill", &format!("{port}/tcp"), "--yes", "--json", "--signal", "CONT"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["targets"][0]["result"], "signalled", "the thread's table was checked: {}", r.dump());
}

/// A TCP listener whose only reference is an SCM_RIGHTS message nobody
/// received: the descriptor is sent over a socketpair and closed.
fn in_flight_listener() -> (u16, u64, [OwnedFd; 2]) {
    let _lock = spawn_lock(); // no fork may keep a copy of the listener
    let l = tcp_listener("127.0.0.1:0".parse::<SocketAddr>().unwrap(), None, 8);
    let port = l.local_addr().unwrap().port();
    let inode = socket_inode(l.as_raw_fd());
    let mut pair: [RawFd; 2] = [0; 2];
    // SAFETY: plain syscalls; every pointer is valid and sized for its call.
    unsafe {
        assert_eq!(libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()), 0);
        let fd = l.as_raw_fd();
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::copy_nonoverlapping((&fd as *const RawFd).cast::<u8>(), libc::CMSG_DATA(cmsg), 4);
        assert_eq!(libc::sendmsg(pair[0], &msg, 0), 1);
        let pair = [OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])];
        drop(l);
        (port, inode, pair)
    }
}

/// Whether every process's descriptors are readable here (a sandbox may
/// hide some even from root: then "held by no process" cannot be said).
fn every_process_readable() -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
        .all(|e| match std::fs::read_dir(e.path().join("fd")) {
            Ok(mut d) => d.next().is_none_or(|f| f.is_ok_and(|f| std::fs::read_link(f.path()).is_ok())),
            Err(err) => err.kind() == std::io::ErrorKind::NotFound,
        })
}

#[test]
#[ignore = "needs root"]
fn in_flight_socket_is_held_by_no_process() {
    require_root();
    let (port, inode, _pair) = in_flight_listener();
    let spec = port.to_string();
    // Some processes may be hidden even from root (this sandbox's pid 1,
    // from /proc and from the iterator alike): then one of them might hold
    // it, and portctl names them instead of claiming nobody does.
    let all = every_process_readable();
    let r = run("bpf", &["listen", "--json", "--port", &spec]);
    r.expect_code(0);
    let s = r.sockets().into_iter().find(|s| s.inode == inode).unwrap_or_else(|| panic!("{}", r.dump()));
    assert_eq!((s.owners.len(), s.owners_hidden, s.unheld), (0, !all, Some(Unheld::InFlight)), "{}", r.dump());
    if all {
        assert!(
            r.stderr.contains("1 socket held by no process: in flight in a unix socket message (SCM_RIGHTS)"),
            "{}",
            r.dump()
        );
    } else {
        assert!(
            r.stderr.contains("1 socket held by no process portctl could read: in flight in a unix socket message, kept by the kernel, or held by process"),
            "{}",
            r.dump()
        );
        assert!(r.stderr.contains("hidden by a sandbox or LSM even from root"), "{}", r.dump());
    }
    no_sudo(&r);
    let table = run("bpf", &["listen", "--port", &spec]);
    assert!(table.stdout.contains(if all { "(in flight)" } else { "(hidden)" }), "{}", table.stdout);
    let who = run("bpf", &["who", &format!("{port}/tcp")]);
    who.expect_code(0);
    let subject = if all {
        "a socket no process holds (in flight"
    } else {
        "a socket no process portctl could read holds (in flight"
    };
    assert!(who.stdout.starts_with(&format!("{port}/tcp is in use: {subject}")), "{}", who.stdout);
    assert!(
        who.stdout.contains(if all { "there is no process to stop" } else { "no process portctl could read holds it" }),
        "{}",
        who.stdout
    );
    no_sudo(&who);
    // /proc: the same, but it cannot tell a message from the kernel.
    let r = run("proc", &["listen", "--json", "--port", &spec]);
    let s = r.sockets().into_iter().find(|s| s.inode == inode).unwrap();
    if all {
        assert_eq!((s.owners_hidden, s.unheld), (false, Some(Unheld::NoProcess)), "{}", r.dump());
        assert!(r.stderr.contains("held by no process: in flight in a unix socket message, or by the kernel"));
    } else {
        assert_eq!((s.owners_hidden, s.unheld), (true, None), "{}", r.dump());
        assert!(r.stderr.contains("held by no process portctl could read"), "{}", r.dump());
    }
    no_sudo(&r);
}

#[test]
#[ignore = "needs root"]
fn kernel_socket_is_held_by_the_kernel() {
    require_root();
    let ns = Netns::new();
    // A VXLAN device opens a UDP socket of the kernel's own when it goes up.
    for args in [
        &["link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "dev", "lo"][..],
        &["link", "set", "vx0", "up"],
    ] {
        let r = common::output(ns.command("ip").args(args));
        assert!(r.status.success(), "{}", r.dump());
    }
    let r = run("bpf", &["listen", "-u", "--json", "--port", "4789", "--netns", ns.name()]);
    r.expect_code(0);
    let socks = r.sockets();
    assert_eq!(socks.len(), 1, "{}", r.dump());
    // No file refers to it: the kernel's, whatever could not be read.
    assert_eq!((socks[0].owners.len(), socks[0].owners_hidden, socks[0].unheld), (0, false, Some(Unheld::Kernel)));
    assert!(r.stderr.contains("1 socket held by the kernel"), "{}", r.dump());
    no_sudo(&r);
}

/// `setpriv` dropping the capabilities BPF needs from root.
fn without_bpf_caps(args: &[&str]) -> Run {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--inh-caps=-all", "--bounding-set=-bpf,-perfmon,-sys_admin"]).arg(common::portctl_path()).args(args);
    cmd.env_remove("PORTCTL_OWNERS").env_remove("PORTCTL_BTF").env("PORTCTL_NAT_CACHE", "0");
    common::output(&mut cmd)
}

#[test]
#[ignore = "needs root"]
fn auto_falls_back_to_proc_without_the_capabilities() {
    require_root();
    let l = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
    let port = l.local_addr().unwrap().port().to_string();
    let r = without_bpf_caps(&["listen", "--json", "-v", "--port", &port]);
    r.expect_code(0);
    assert_eq!(
        source_line(&r),
        "portctl: owners from the /proc walk: BPF is not available: root without CAP_BPF and CAP_PERFMON (a restricted capability set)"
    );
    let o = owners_of(&r.sockets());
    assert_eq!(o[&socket_inode(l.as_raw_fd())], [(std::process::id(), None, l.as_raw_fd() as u32)]);
    let r = without_bpf_caps(&["listen", "--owners-from", "bpf"]);
    r.expect_code(2);
    assert_eq!(
        r.stderr_lines(),
        [
            "portctl: error: --owners-from bpf: BPF is not available: root without CAP_BPF and CAP_PERFMON (a restricted capability set)"
        ]
    );
    assert!(r.stdout.is_empty());
    // And an ordinary user: no BPF; with CAP_BPF and CAP_PERFMON given, BPF.
    let (bin, _copy) = common::portctl_for_others();
    let r = Portctl::new(["listen", "-v"]).as_user(65534, 65534, &bin).run();
    assert_eq!(
        source_line(&r),
        "portctl: owners from the /proc walk: BPF is not available: it needs root, or CAP_BPF and CAP_PERFMON"
    );
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+bpf,+perfmon",
        "--ambient-caps=+bpf,+perfmon",
    ])
    .arg(&bin)
    .args(["listen", "--json", "-v", "--port", &port]);
    let r = common::output(&mut cmd);
    r.expect_code(0);
    assert!(source_line(&r).starts_with("portctl: owners from BPF"), "{}", r.dump());
    let o = owners_of(&r.sockets());
    assert_eq!(
        o[&socket_inode(l.as_raw_fd())],
        [(std::process::id(), None, l.as_raw_fd() as u32)],
        "root's socket, seen by nobody with the capabilities"
    );
}

/// A copy of the kernel's BTF in which the task_file iterator's function
/// has another name: what an older kernel (before 5.8) looks like to the
/// loader.
fn btf_without_task_file(dir: &common::TempDir) -> std::path::PathBuf {
    let mut data = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let (from, to) = (b"\0bpf_iter_task_file\0", b"\0bpf_iter_task_fil_\0");
    let at = data.windows(from.len()).position(|w| w == from).expect("the kernel has the task_file iterator");
    data[at..at + to.len()].copy_from_slice(to);
    let path = dir.path().join("vmlinux");
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
#[ignore = "needs root"]
fn auto_falls_back_to_proc_on_a_kernel_without_the_iterator() {
    require_root();
    let dir = common::TempDir::new();
    let old = btf_without_task_file(&dir);
    let l = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
    let port = l.local_addr().unwrap().port().to_string();
    let r = Portctl::new(["listen", "--json", "-v", "--port", &port]).env("PORTCTL_BTF", &old).run();
    r.expect_code(0);
    assert_eq!(
        source_line(&r),
        "portctl: owners from the /proc walk: BPF is not available: the kernel has no task_file iterator (Linux 5.8 or later has)"
    );
    assert_eq!(
        owners_of(&r.sockets())[&socket_inode(l.as_raw_fd())],
        [(std::process::id(), None, l.as_raw_fd() as u32)]
    );
    let r = Portctl::new(["who", &port, "--owners-from", "bpf"]).env("PORTCTL_BTF", &old).run();
    r.expect_code(2);
    assert_eq!(
        r.stderr_lines(),
        [
            "portctl: error: --owners-from bpf: BPF is not available: the kernel has no task_file iterator (Linux 5.8 or later has)"
        ]
    );
    // No BTF at all.
    let r = Portctl::new(["listen", "-v", "--port", &port]).env("PORTCTL_BTF", dir.path().join("missing")).run();
    assert!(source_line(&r).contains("BPF is not available: the kernel publishes no BTF"), "{}", r.dump());
    // The environment picks the source as the flag does; the flag wins.
    let r = Portctl::new(["listen", "-v", "--port", &port]).env("PORTCTL_OWNERS", "proc").run();
    assert_eq!(source_line(&r), "portctl: owners from the /proc walk (--owners-from proc)");
    let r = Portctl::new(["listen", "-v", "--port", &port, "--owners-from", "bpf"]).env("PORTCTL_OWNERS", "proc").run();
    assert!(source_line(&r).starts_with("portctl: owners from BPF"), "{}", r.dump());
}

#[test]
fn bad_owners_from_is_one_line_exit_2() {
    for run in [
        Portctl::new(["listen", "--owners-from", "kernel"]).run(),
        Portctl::new(["--owners-from", "nope", "who", "80"]).run(),
        Portctl::new(["conns"]).env("PORTCTL_OWNERS", "bpf2").run(),
    ] {
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{}", run.dump());
        let lines = run.stderr_lines();
        assert_eq!(lines.len(), 1, "{}", run.dump());
        assert!(lines[0].starts_with("portctl: error: invalid value"), "{}", run.dump());
        assert!(lines[0].contains("[possible values: auto, bpf, proc]"), "{}", run.dump());
    }
}

#[test]
fn verbose_says_which_source_ran() {
    let r = Portctl::new(["listen", "-v", "--owners-from", "proc"]).run();
    assert_eq!(source_line(&r), "portctl: owners from the /proc walk (--owners-from proc)");
    let r = Portctl::new(["listen", "--owners-from", "proc"]).run();
    assert!(!r.stderr.contains("owners from"), "only with -v: {}", r.dump());
    // On every command, before or after its name.
    for args in [&["-v", "conns"][..], &["stats", "-v"], &["who", "-v", "1"], &["kill", "1", "--dry-run", "-v"]] {
        let r = Portctl::new(args).arg("--owners-from=proc").run();
        assert!([0, 1].contains(&r.code()), "{}", r.dump());
        assert!(!r.stderr.contains("error"), "{}", r.dump());
    }
}

#[test]
#[ignore = "needs root"]
fn bpf_leaves_nothing_loaded() {
    require_root();
    let _l = TcpListener::bind("127.0.0.1:0").unwrap();
    for args in [&["listen"][..], &["conns", "--state", "all"], &["who", "1"]] {
        run("bpf", args);
    }
    let out = common::output(Command::new("bpftool").args(["prog", "show", "--json"]));
    assert!(out.status.success(), "bpftool (apt install bpftool): {}", out.dump());
    let progs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for p in progs.as_array().unwrap() {
        let name = p["name"].as_str().unwrap_or("");
        if name.starts_with("portctl_") {
            // Another test's portctl may be running: then it holds it.
            let pids = p["pids"].as_array().map_or(0, Vec::len);
            assert!(pids > 0, "a portctl program nobody holds (pinned?): {p}");
        }
    }
}
