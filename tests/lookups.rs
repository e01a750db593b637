//! Reverse lookups and outputs for scripts, with processes the tests start:
//! `--pid` (and `--children`), `--process`, `--process-regex`, `--user`,
//! `--unit`, `--container` on listen and conns; `who --pid`;
//! `--by-process` with ancestry; `--pids` (exact output); `-o/--columns`;
//! `--sort`; service names and `!` in the port flags.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::*;
use portctl::domain::process::ByProcess;
use portctl::domain::who::ProcessReport;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A `sleep` child holding a listener on 127.0.0.1:`port` (ours closed),
/// optionally moved into a cgroup v2 directory first.
fn holder(port: u16, cgroup: Option<&std::path::Path>) -> ChildGuard {
    let l: TcpListener = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 16);
    let fd = l.as_raw_fd();
    let procs = cgroup.map(|c| std::ffi::CString::new(c.join("cgroup.procs").to_str().unwrap()).unwrap());
    let mut cmd = Command::new("sleep");
    cmd.arg("100000").stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, open, write, close) run
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(p) = &procs {
                let f = libc::open(p.as_ptr(), libc::O_WRONLY);
                if f < 0 || libc::write(f, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(f);
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    drop(l);
    child
}

/// A cgroup v2 directory of the test's own, removed on drop (after its
/// processes are gone: declare it before them).
struct Cgroup(std::path::PathBuf);

impl Cgroup {
    fn new(name: &str) -> Cgroup {
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(str::to_string))?
            })
            .expect("cgroup v2 is mounted");
        let dir = std::path::Path::new(&mount).join(name);
        std::fs::create_dir(&dir).unwrap();
        Cgroup(dir)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn ports_of(run: &Run) -> Vec<u16> {
    let mut v: Vec<u16> = run.sockets().iter().map(|s| s.port()).collect();
    v.sort_unstable();
    v
}

#[test]
fn pid_children_process_and_user_on_listen() {
    let (p1, p2) = (unused_port(), unused_port());
    let a = holder(p1, None);
    let b = holder(p2, None);
    let me = std::process::id().to_string();
    let q = |args: &[&str]| Portctl::new(["listen", "--json", "-t"]).args(args).run();
    let only = |port: u16| {
        move |run: &Run| ports_of(run).into_iter().filter(|p| [p1, p2].contains(p)).collect::<Vec<_>>() == vec![port]
    };
    let run = q(&["--pid", &a.pid().to_string()]);
    assert_eq!(ports_of(&run), [p1], "{}", run.dump());
    // The holders are our children: --pid ME finds them only with --children.
    let run = q(&["--pid", &me, "--port", &p1.to_string(), "--port", &p2.to_string()]);
    run.expect_code(1);
    let run = q(&["--pid", &me, "--children", "--port", &p1.to_string(), "--port", &p2.to_string()]);
    let mut want = vec![p1, p2];
    want.sort_unstable();
    assert_eq!(ports_of(&run), want, "{}", run.dump());
    let run = q(&["--process", "sleep", "--pid", &b.pid().to_string()]);
    assert!(only(p2)(&run), "{}", run.dump());
    let run = q(&["--process-regex", "^sle+p$", "--port", &p1.to_string()]);
    assert_eq!(ports_of(&run), [p1], "{}", run.dump());
    let run = q(&["--user", &user_name(euid()), "--port", &p2.to_string()]);
    assert_eq!(ports_of(&run), [p2], "{}", run.dump());
    // On conns too: the holder's listener with every state.
    let run = Portctl::new(["conns", "--json", "--state", "all", "--pid", &a.pid().to_string()]).run();
    assert_eq!(ports_of(&run), [p1], "{}", run.dump());
}

/// `--unit` and `--container` read the holder's cgroup: one holder in a
/// cgroup named like a systemd service, one like a Docker container scope.
#[test]
#[ignore = "needs root"]
fn unit_and_container_from_the_cgroup() {
    require_root();
    let name = unique_name();
    let id = format!("{:0>64}", format!("{:x}", std::process::id()));
    let service = Cgroup::new(&format!("{name}.service"));
    let container = Cgroup::new(&format!("docker-{id}.scope"));
    let (p1, p2) = (unused_port(), unused_port());
    let a = holder(p1, Some(&service.0));
    let b = holder(p2, Some(&container.0));
    let q = |args: &[&str]| Portctl::new(["listen", "--json", "-t"]).args(args).run();
    for unit in [name.clone(), format!("{name}.service")] {
        let run = q(&["--unit", &unit]);
        assert_eq!(ports_of(&run), [p1], "--unit {unit}: {}", run.dump());
    }
    let run = q(&["--container", &id[..12]]);
    assert_eq!(ports_of(&run), [p2], "{}", run.dump());
    let run = q(&["--container", &id[..12], "--context"]);
    assert_eq!(run.sockets()[0].owners[0].context.as_ref().unwrap().container.as_ref().unwrap().id, id);
    let run = Portctl::new(["conns", "--json", "-s", "listen", "--unit", &name]).run();
    assert_eq!(ports_of(&run), [p1], "{}", run.dump());
    q(&["--unit", "no-such-unit-portctl"]).expect_code(1);
    drop((a, b));
}

/// `who --pid`: what one process holds, with its ancestry; `--pids` prints
/// it when it holds something.
#[test]
fn who_pid_and_ancestry() {
    let port = unused_port();
    let child = holder(port, None);
    let pid = child.pid();
    let run = Portctl::new(["who", "--pid", &pid.to_string(), "--json"]).run();
    run.expect_code(0);
    let r: ProcessReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(r.holder.pid, pid);
    assert_eq!(r.sockets.len(), 1);
    assert_eq!(r.sockets[0].port(), port);
    let chain: Vec<u32> = r.ancestry.iter().map(|a| a.pid).collect();
    assert_eq!(chain.last(), Some(&pid));
    assert!(chain.contains(&std::process::id()), "this test is one of its ancestors: {chain:?}");
    let text = Portctl::new(["who", "--pid", &pid.to_string()]).run();
    text.expect_code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines[0], format!("sleep (pid {pid}, user {}) holds 1 socket", user_name(euid())));
    assert!(lines[1].ends_with(&format!("→ sleep ({pid})")), "{}", text.dump());
    assert!(text.stdout.contains(&format!("  tcp LISTEN 127.0.0.1:{port} (fd ")), "{}", text.dump());
    let pids = Portctl::new(["who", "--pid", &pid.to_string(), "--pids"]).run();
    assert_eq!((pids.code(), pids.stdout.as_str()), (0, format!("{pid}\n").as_str()), "{}", pids.dump());
    // A process that holds nothing: exit 1; one that does not exist: 2.
    let idle = spawn(Command::new("sleep").arg("100000").stdin(Stdio::null()));
    let run = Portctl::new(["who", "--pid", &idle.pid().to_string()]).run();
    run.expect_code(1);
    assert!(run.stdout.contains("holds no TCP or UDP socket"), "{}", run.dump());
    let run = Portctl::new(["who", "--pid", "4194303"]).run();
    run.expect_code(2);
    assert_eq!(run.stderr, "portctl: error: no process 4194303\n");
}

#[test]
fn by_process_groups_with_ancestry() {
    let (p1, p2) = (unused_port(), unused_port());
    let a = holder(p1, None);
    let _b = holder(p2, None);
    let args = ["listen", "-t", "--by-process", "--port", &p1.to_string(), "--port", &p2.to_string()];
    let run = Portctl::new(args).arg("--json").run();
    run.expect_code(0);
    let g: ByProcess = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(g.processes.len(), 2, "{}", run.dump());
    let first = g.processes.iter().find(|p| p.pid == a.pid()).expect("the first holder");
    assert_eq!(first.sockets.iter().map(|s| s.port()).collect::<Vec<_>>(), [p1]);
    assert_eq!(first.ancestry.last().map(|x| x.pid), Some(a.pid()));
    assert!(first.ancestry.iter().any(|x| x.pid == std::process::id()));
    assert!(g.unowned.is_empty());
    let text = Portctl::new(args).run();
    text.expect_code(0);
    let header = format!("sleep (pid {}, user {}): sleep 100000", a.pid(), user_name(euid()));
    assert!(text.stdout.lines().any(|l| l == header), "{}", text.dump());
    assert!(text.stdout.contains(&format!("→ sleep ({})", a.pid())), "{}", text.dump());
    assert!(text.stdout.contains(&format!("  tcp  LISTEN  127.0.0.1:{p1}  *  fd ")), "{}", text.dump());
}

/// `--pids`: exactly the holders' pids, sorted, one per line, nothing else.
#[test]
fn pids_output_is_exact() {
    let (p1, p2) = (unused_port(), unused_port());
    let a = holder(p1, None);
    let b = holder(p2, None);
    let mut want = [a.pid(), b.pid()];
    want.sort_unstable();
    let want = format!("{}\n{}\n", want[0], want[1]);
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let run = Portctl::new(["listen", "--pids", "-p", &s1, "-p", &s2]).run();
    assert_eq!((run.code(), run.stdout.as_str()), (0, want.as_str()), "{}", run.dump());
    let run = Portctl::new(["who", "--pids", &s1, &s2]).run();
    assert_eq!((run.code(), run.stdout.as_str()), (0, want.as_str()), "{}", run.dump());
    let run = Portctl::new(["conns", "--pids", "--state", "listen", "sport", "=", &format!(":{p1}")]).run();
    assert_eq!((run.code(), run.stdout.clone()), (0, format!("{}\n", a.pid())), "{}", run.dump());
    // A connection from us to p2: --port matches either end; the accepted
    // end waits in the listener's queue, held by no process.
    let c = TcpStream::connect(("127.0.0.1", p2)).unwrap();
    let run = Portctl::new(["conns", "--pids", "-p", &s2]).run();
    assert_eq!(run.stdout, format!("{}\n", std::process::id()), "{}", run.dump());
    let run = Portctl::new(["conns", "--pids", "--state", "all", "-p", &s2]).run();
    let mut both = [std::process::id(), b.pid()];
    both.sort_unstable();
    assert_eq!(run.stdout, format!("{}\n{}\n", both[0], both[1]), "{}", run.dump());
    drop(c);
    // Nothing: no output, exit 1.
    let free = unused_port().to_string();
    let run = Portctl::new(["listen", "--pids", "-p", &free]).run();
    assert_eq!((run.code(), run.stdout.as_str()), (1, ""), "{}", run.dump());
    let run = Portctl::new(["who", "--pids", &free]).run();
    assert_eq!((run.code(), run.stdout.as_str()), (1, ""), "{}", run.dump());
}

#[test]
fn columns_and_sort() {
    let (p1, p2) = (unused_port(), unused_port());
    let a = holder(p1, None);
    let b = holder(p2, None);
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let run =
        Portctl::new(["listen", "-t", "-o", "port,pid,process,inode", "--sort", "port", "-p", &s1, "-p", &s2]).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(header, ["PORT", "PID", "PROCESS", "INODE"]);
    let mut want = vec![(p1, a.pid()), (p2, b.pid())];
    want.sort();
    let got: Vec<(u16, u32)> = rows.iter().map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap())).collect();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r[2] == "sleep" && r[3].parse::<u64>().unwrap() > 0));
    let run =
        Portctl::new(["listen", "-t", "-o", "port,pid", "--sort", "port", "--reverse", "-p", &s1, "-p", &s2]).run();
    let (_, rows) = run.table();
    let got: Vec<u16> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    let mut desc = vec![p1, p2];
    desc.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(got, desc);
    // --sort orders JSON too.
    let run = Portctl::new(["listen", "-t", "--json", "--sort", "pid", "--reverse", "-p", &s1, "-p", &s2]).run();
    let pids: Vec<u32> = run.sockets().iter().map(|s| s.owners[0].pid).collect();
    let mut sorted = pids.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(pids, sorted);
    let bad = Portctl::new(["listen", "-o", "port,nosuch"]).run();
    bad.expect_code(2);
    assert_eq!(bad.stderr_lines().len(), 1, "{}", bad.dump());
    assert!(bad.stderr.contains("invalid value 'nosuch'"), "{}", bad.dump());
}

/// Service names and `!` in --port/--sport/--dport, in a namespace where
/// the well-known ports are free.
#[test]
#[ignore = "needs root"]
fn service_names_and_exclusions_in_port_flags() {
    require_root();
    let ns = Netns::new();
    let (ls, cs, ss) = in_netns(&ns, || {
        let mut ls = Vec::new();
        let mut cs = Vec::new();
        let mut ss = Vec::new();
        for port in [22u16, 80, 443] {
            let l = tcp_listener(sa(&format!("127.0.0.1:{port}")), None, 8);
            cs.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
            ss.push(l.accept().unwrap().0);
            ls.push(l);
        }
        (ls, cs, ss)
    });
    let listen = |args: &[&str]| ports_of(&Portctl::new(["listen", "--json"]).args(args).netns(&ns).run());
    assert_eq!(listen(&["--port", "https"]), [443]);
    assert_eq!(listen(&["--port", "ssh", "--port", "http"]), [22, 80]);
    assert_eq!(listen(&["--port", "!ssh"]), [80, 443]);
    assert_eq!(listen(&["--port", "1-1000", "--port", "!80"]), [22, 443]);
    let conns = |args: &[&str]| {
        let run = Portctl::new(["conns", "--json"]).args(args).netns(&ns).run();
        let mut v: Vec<(u16, u16)> = run.sockets().iter().map(|s| (s.port(), s.remote_ip().unwrap().port)).collect();
        v.sort_unstable();
        v.into_iter().map(|(l, r)| if l < 1024 { l } else { r }).collect::<Vec<u16>>()
    };
    assert_eq!(conns(&["--sport", "https"]), [443]);
    assert_eq!(conns(&["--dport", "https"]), [443]);
    // Exclusions AND: neither 80 nor 22 (the accepted ends' peers are ephemeral).
    assert_eq!(conns(&["--dport", "!80", "--dport", "!22"]), [22, 80, 443, 443]);
    assert_eq!(conns(&["--dport", "1-1000", "--dport", "!80", "--dport", "!22"]), [443]);
    let bad = Portctl::new(["conns", "--dport", "no-such-service"]).run();
    bad.expect_code(2);
    assert_eq!(
        bad.stderr,
        "portctl: error: --dport no-such-service: unknown service name (not in /etc/services nor portctl's table)\n"
    );
    drop((ls, cs, ss));
}
