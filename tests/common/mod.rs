//! Support shared by the integration tests (`tests/*.rs`).
//!
//! - [`Portctl`] runs the built binary (optionally inside a network namespace
//!   and/or as another user) and captures stdout, stderr and the exit status
//!   in a [`Run`], which parses JSON, JSON lines and tables.
//! - [`tcp_listener`] / [`udp_socket`] bind real sockets with exact options
//!   (IPV6_V6ONLY on or off, backlog), close-on-exec like everything else.
//! - Guards that clean up in `Drop`, so a failing assertion (a panic) still
//!   cleans up: [`Netns`] (a network namespace the test creates),
//!   [`ChildGuard`] (a child process, killed by pid), [`Sockpop`] (the
//!   `examples/sockpop` socket population generator), [`TempDir`].
//! - [`ss`] / [`parse_ss`]: `ss` output as data, used as an oracle.
//!
//! One rule for whoever adds tests: start every process through [`output`],
//! [`spawn`] or the types above. They hold one lock ([`SPAWN_LOCK`]) while a
//! process is being forked and while portctl runs, because a child that has
//! been forked but has not yet exec'd holds copies of every descriptor of the
//! test process; a portctl run by a parallel test would then see a stranger
//! "owning" this test's sockets.
//!
//! Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::Duration;

use portctl::model::{Endpoint, Proto, Socket};

pub mod population;

/// Held while a process is forked and while portctl runs (see the module docs).
pub static SPAWN_LOCK: Mutex<()> = Mutex::new(());

/// Takes [`SPAWN_LOCK`]; a test that panicked while holding it does not
/// poison it for the others.
pub fn spawn_lock() -> MutexGuard<'static, ()> {
    SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unique names for namespaces and temp dirs: `portctl-t-<pid>-<n>`.
pub fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("portctl-t-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The binary under test.
pub fn portctl_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portctl"))
}

/// `examples/sockpop`, next to the binary under test. Panics when it has not
/// been built (`cargo test` does not build examples; `scripts/test.sh` does).
pub fn sockpop_path() -> PathBuf {
    example_path("sockpop")
}

/// An example (a test fixture) next to the binary under test; panics when
/// it has not been built.
pub fn example_path(name: &str) -> PathBuf {
    let bin = portctl_path();
    let path = bin.parent().expect("the binary has a directory").join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the test fixtures first with `cargo build --examples` (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Panics unless running as root (for `#[ignore = "needs root"]` tests, which
/// must fail, not pass, when run without root).
pub fn require_root() {
    assert!(is_root(), "this test needs root (network namespaces / other users): run it as root");
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// User name of a uid, as `getent passwd UID` (NSS, like portctl) names it,
/// or the number when it has none, which is what portctl prints.
pub fn user_name(uid: u32) -> String {
    let run = output(Command::new("getent").args(["passwd", &uid.to_string()]));
    match run.stdout.split(':').next() {
        Some(name) if run.status.success() && !name.is_empty() => name.to_string(),
        _ => uid.to_string(),
    }
}

/// This process's `comm` and command line as /proc shows them to others.
pub fn own_comm_and_cmdline() -> (String, String) {
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    (comm.trim_end_matches('\n').to_string(), args.join(" "))
}

// ---------------------------------------------------------------------------
// Cgroups

/// A cgroup v2 directory tree of the test's own (`components`, outermost
/// first, under the cgroup2 mount), removed on drop, innermost first.
/// Declare it before the processes moved into it, so that they are killed
/// and reaped first.
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// The path as /proc/PID/cgroup shows it.
    pub path: String,
}

impl Cgroup {
    pub fn new(components: &[String]) -> Cgroup {
        require_root();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER`
        let mount = mountinfo
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let f: Vec<&str> = left.split_whitespace().collect();
                (right.split_whitespace().next() == Some("cgroup2") && f.get(3) == Some(&"/")).then(|| f[4].to_string())
            })
            .expect("a cgroup v2 hierarchy mounted at its root (the test builds a cgroup path there)");
        let mut cg = Cgroup { dirs: Vec::new(), path: format!("/{}", components.join("/")) };
        let mut dir = PathBuf::from(mount);
        for c in components {
            dir.push(c);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            cg.dirs.push(dir.clone());
        }
        cg
    }

    /// Moves `pid` into the innermost directory.
    pub fn add(&self, pid: u32) {
        let procs = self.dirs.last().expect("a cgroup directory").join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(text.lines().any(|l| l == format!("0::{}", self.path)), "{pid} not moved: {text}");
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("warning: rmdir {}: {e}", d.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running commands

/// What a finished command left behind.
#[derive(Debug)]
pub struct Run {
    /// What ran, for failure messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code; panics when the process died from a signal.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(c) => c,
            None => panic!("{} was killed by signal {:?}\n{}", self.what, self.status.signal(), self.dump()),
        }
    }

    /// Panics (showing everything) unless the exit code is `want`.
    pub fn expect_code(&self, want: i32) -> &Run {
        assert_eq!(self.code(), want, "exit status of {}\n{}", self.what, self.dump());
        self
    }

    /// Stdout and stderr, for failure messages.
    pub fn dump(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}---", self.stdout, self.stderr)
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Stdout as the `--json` contract: one array of [`Socket`], every
    /// record deserialised with `deny_unknown_fields`.
    pub fn sockets(&self) -> Vec<Socket> {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not a JSON array of Socket: {e}\n{}", self.what, self.dump()))
    }

    /// Stdout as the `--jsonl` contract: one [`Socket`] per line.
    pub fn jsonl_sockets(&self) -> Vec<Socket> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: line is not a Socket record: {e}: {l}\n{}", self.what, self.dump()))
            })
            .collect()
    }

    /// Stdout as a table: the header's column names, then each row split on
    /// whitespace. Only for tables whose cells have no spaces.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut lines = self.stdout.lines();
        let header = lines.next().unwrap_or_else(|| panic!("{}: no table header\n{}", self.what, self.dump()));
        let split = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        (split(header), lines.map(split).collect())
    }
}

/// Runs a command to completion (holding [`SPAWN_LOCK`]) with stdin closed.
pub fn output(cmd: &mut Command) -> Run {
    let what = describe(cmd);
    let _lock = spawn_lock();
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    Run {
        what,
        status: out.status,
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Starts a command (holding [`SPAWN_LOCK`] while it forks) and guards it.
pub fn spawn(cmd: &mut Command) -> ChildGuard {
    let what = describe(cmd);
    let _lock = spawn_lock();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    ChildGuard { child: Some(child), what }
}

/// `program arg arg`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A portctl command line, run directly, in a namespace, and/or as another user.
///
/// ```ignore
/// let run = Portctl::new(["listen", "--json"]).netns(&ns).run();
/// run.expect_code(0);
/// let sockets = run.sockets();
/// ```
pub struct Portctl {
    bin: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    netns: Option<String>,
    user: Option<(u32, u32)>,
    /// A command portctl runs under (`setpriv --bounding-set=-net_admin`).
    wrap: Vec<OsString>,
}

impl Portctl {
    pub fn new<I, S>(args: I) -> Portctl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Portctl {
            bin: portctl_path(),
            args: args.into_iter().map(|a| a.as_ref().to_os_string()).collect(),
            env: Vec::new(),
            netns: None,
            user: None,
            wrap: Vec::new(),
        }
    }

    /// Runs portctl under this command, e.g. `["setpriv",
    /// "--bounding-set=-net_admin"]` to take a capability away from root.
    pub fn wrapped<I, S>(mut self, prefix: I) -> Portctl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrap = prefix.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Portctl {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Portctl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Portctl {
        self.env.push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }

    /// Runs inside the namespace (`ip netns exec`).
    pub fn netns(mut self, ns: &Netns) -> Portctl {
        self.netns = Some(ns.name().to_string());
        self
    }

    /// Runs as uid/gid with no supplementary groups (`setpriv`), from `bin`,
    /// which that user must be able to execute (see [`executable_by_others`]).
    // A builder step, read as "portctl ... as user N": not a conversion.
    #[allow(clippy::wrong_self_convention)]
    pub fn as_user(mut self, uid: u32, gid: u32, bin: &Path) -> Portctl {
        self.user = Some((uid, gid));
        self.bin = bin.to_path_buf();
        self
    }

    /// The command to run: `[ip netns exec NS] [setpriv ...] portctl args`.
    pub fn command(&self) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec"].map(OsString::from));
            argv.push(ns.into());
        }
        if let Some((uid, gid)) = self.user {
            argv.push("setpriv".into());
            argv.push(format!("--reuid={uid}").into());
            argv.push(format!("--regid={gid}").into());
            argv.push("--clear-groups".into());
        }
        argv.extend(self.wrap.iter().cloned());
        argv.push(self.bin.clone().into());
        argv.extend(self.args.iter().cloned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        // A clean, predictable environment: no colour, no source override
        // unless the test sets one, and no NAT cache left in /run/portctl
        // for the namespaces the tests make and delete (the cache's own
        // test turns it on).
        cmd.env_remove("PORTCTL_SOURCE")
            .env_remove("PORTCTL_OWNERS")
            .env_remove("PORTCTL_BTF")
            .env_remove("RUST_BACKTRACE")
            .env("PORTCTL_NAT_CACHE", "0")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self) -> Run {
        output(&mut self.command())
    }
}

/// Whether every directory above `path` is searchable, and `path` readable
/// and executable, by users other than the owner.
pub fn executable_by_others(path: &Path) -> bool {
    let file_ok = std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o005 == 0o005);
    file_ok && path.ancestors().skip(1).all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0))
}

// ---------------------------------------------------------------------------
// Sockets with exact options

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A close-on-exec socket bound to `addr`; for IPv6, IPV6_V6ONLY is set to
/// `v6only` (which must be `None` for IPv4).
fn bound_socket(addr: SocketAddr, ty: libc::c_int, v6only: Option<bool>) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) };
    check(fd)?;
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    match (addr, v6only) {
        (SocketAddr::V4(_), None) => {}
        (SocketAddr::V4(_), Some(_)) => panic!("IPV6_V6ONLY is for IPv6 sockets"),
        (SocketAddr::V6(_), v) => {
            let on: libc::c_int = v.map_or_else(|| panic!("say whether {addr} is v6only"), i32::from);
            // SAFETY: on lives across the call; the size matches.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            check(rc)?;
        }
    }
    // SAFETY: `sa` points to a socket address of `len` bytes, alive for the call.
    let rc = with_sockaddr(addr, |sa, len| unsafe { libc::bind(fd.as_raw_fd(), sa, len) });
    check(rc)?;
    Ok(fd)
}

/// Calls `f` with `addr` as a C socket address and its length.
fn with_sockaddr<R>(addr: SocketAddr, f: impl FnOnce(*const libc::sockaddr, libc::socklen_t) -> R) -> R {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                sin_zero: [0; 8],
            };
            f((&sin as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sin) as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            f((&sin6 as *const libc::sockaddr_in6).cast(), std::mem::size_of_val(&sin6) as libc::socklen_t)
        }
    }
}

/// A TCP listener on `addr` (port 0: the kernel picks) with this backlog.
pub fn try_tcp_listener(addr: SocketAddr, v6only: Option<bool>, backlog: i32) -> io::Result<TcpListener> {
    let fd = bound_socket(addr, libc::SOCK_STREAM, v6only)?;
    // SAFETY: plain syscall on a descriptor we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(TcpListener::from(fd))
}

/// A TCP connection from `src` (port 0: any) to `dst`, close-on-exec.
pub fn try_tcp_connect_from(src: SocketAddr, dst: SocketAddr) -> io::Result<std::net::TcpStream> {
    let v6only = if src.is_ipv6() { Some(false) } else { None };
    let fd = bound_socket(src, libc::SOCK_STREAM, v6only)?;
    // SAFETY: `sa` points to a socket address of `len` bytes, alive for the call.
    let rc = with_sockaddr(dst, |sa, len| unsafe { libc::connect(fd.as_raw_fd(), sa, len) });
    check(rc)?;
    Ok(std::net::TcpStream::from(fd))
}

/// [`try_tcp_connect_from`], panicking on failure.
pub fn tcp_connect_from(src: SocketAddr, dst: SocketAddr) -> std::net::TcpStream {
    try_tcp_connect_from(src, dst).unwrap_or_else(|e| panic!("TCP connection {src} -> {dst}: {e}"))
}

/// Sets an integer socket option (SO_MARK, SO_BINDTODEVICE needs a name:
/// see [`bind_to_device`]).
pub fn set_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value lives across the call; the size matches.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(rc)
}

/// SO_BINDTODEVICE (root: CAP_NET_RAW).
pub fn bind_to_device(fd: RawFd, dev: &str) -> io::Result<()> {
    // SAFETY: the name's bytes live across the call; the size matches.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_ptr().cast(), dev.len() as libc::socklen_t)
    };
    check(rc)
}

/// [`try_tcp_listener`], panicking on failure.
pub fn tcp_listener(addr: SocketAddr, v6only: Option<bool>, backlog: i32) -> TcpListener {
    try_tcp_listener(addr, v6only, backlog).unwrap_or_else(|e| panic!("TCP listener on {addr}: {e}"))
}

/// A bound, unconnected UDP socket.
pub fn try_udp_socket(addr: SocketAddr, v6only: Option<bool>) -> io::Result<UdpSocket> {
    Ok(UdpSocket::from(bound_socket(addr, libc::SOCK_DGRAM, v6only)?))
}

/// [`try_udp_socket`], panicking on failure.
pub fn udp_socket(addr: SocketAddr, v6only: Option<bool>) -> UdpSocket {
    try_udp_socket(addr, v6only).unwrap_or_else(|e| panic!("UDP socket on {addr}: {e}"))
}

/// A unix socket's name as a test gives it: a path, an abstract name (no
/// leading NUL), or none (left unbound).
#[derive(Debug, Clone, Copy)]
pub enum UnixAddr<'a> {
    Path(&'a Path),
    Abstract(&'a [u8]),
    Unbound,
}

fn sockaddr_un(addr: UnixAddr<'_>) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_un is a valid value (family 0, empty path).
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes: Vec<u8> = match addr {
        UnixAddr::Path(p) => {
            use std::os::unix::ffi::OsStrExt;
            p.as_os_str().as_bytes().to_vec()
        }
        UnixAddr::Abstract(n) => std::iter::once(0).chain(n.iter().copied()).collect(),
        UnixAddr::Unbound => Vec::new(),
    };
    assert!(bytes.len() <= sun.sun_path.len(), "name too long for sun_path");
    for (d, b) in sun.sun_path.iter_mut().zip(&bytes) {
        *d = *b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len();
    (sun, len as libc::socklen_t)
}

/// A close-on-exec unix socket of type `ty` (SOCK_STREAM, SOCK_DGRAM,
/// SOCK_SEQPACKET), bound to `addr`, listening with `backlog` if given.
pub fn unix_socket(ty: libc::c_int, addr: UnixAddr<'_>, backlog: Option<i32>) -> OwnedFd {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) };
    check(fd).unwrap_or_else(|e| panic!("unix socket: {e}"));
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if !matches!(addr, UnixAddr::Unbound) {
        let (sun, len) = sockaddr_un(addr);
        // SAFETY: sun is a valid sockaddr_un and len does not exceed its size.
        let rc = unsafe { libc::bind(fd.as_raw_fd(), (&sun as *const libc::sockaddr_un).cast(), len) };
        check(rc).unwrap_or_else(|e| panic!("bind {addr:?}: {e}"));
    }
    if let Some(b) = backlog {
        // SAFETY: plain syscall on a descriptor we own.
        check(unsafe { libc::listen(fd.as_raw_fd(), b) }).unwrap_or_else(|e| panic!("listen: {e}"));
    }
    fd
}

/// A unix client of type `ty` connected to `addr`.
pub fn unix_connect(ty: libc::c_int, addr: UnixAddr<'_>) -> OwnedFd {
    let fd = unix_socket(ty, UnixAddr::Unbound, None);
    let (sun, len) = sockaddr_un(addr);
    // SAFETY: sun is a valid sockaddr_un and len does not exceed its size.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&sun as *const libc::sockaddr_un).cast(), len) };
    check(rc).unwrap_or_else(|e| panic!("connect {addr:?}: {e}"));
    fd
}

/// Accepts one connection (close-on-exec).
pub fn unix_accept(listener: &OwnedFd) -> OwnedFd {
    // SAFETY: null address pointers are allowed; the result is checked.
    let fd =
        unsafe { libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    check(fd).unwrap_or_else(|e| panic!("accept: {e}"));
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A close-on-exec unix socketpair of type `ty`.
pub fn unix_pair(ty: libc::c_int) -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    let rc = unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    check(rc).unwrap_or_else(|e| panic!("socketpair: {e}"));
    // SAFETY: two fresh descriptors we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A close-on-exec socket of any family, type and protocol (raw, ICMP,
/// packet sockets); the error when the kernel refuses it.
pub fn try_socket(family: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol) };
    check(fd)?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An AF_PACKET socket on interface `ifindex` for Ethernet protocol
/// `protocol` (host order), made promiscuous there when `promisc` (what
/// tcpdump does, through PACKET_ADD_MEMBERSHIP).
pub fn packet_socket(ty: libc::c_int, ifindex: i32, protocol: u16, promisc: bool) -> OwnedFd {
    let fd = try_socket(libc::AF_PACKET, ty, i32::from(protocol.to_be())).unwrap_or_else(|e| panic!("AF_PACKET: {e}"));
    // SAFETY: an all-zero sockaddr_ll is a valid value; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc).unwrap_or_else(|e| panic!("bind AF_PACKET: {e}"));
    if promisc {
        // SAFETY: an all-zero packet_mreq is valid; fields set below.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: mreq lives across the call; the size matches.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        check(rc).unwrap_or_else(|e| panic!("PACKET_ADD_MEMBERSHIP: {e}"));
    }
    fd
}

/// The inode of the socket behind a descriptor (what sock_diag calls
/// `idiag_inode`).
pub fn socket_inode(fd: RawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino()
}

/// Blocks until a listener has a connection waiting in its accept queue
/// (poll says readable), so its receive queue is known to be non-empty.
pub fn wait_for_pending_connection(l: &TcpListener) {
    let mut p = libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: p is one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, 60_000) };
    assert!(n == 1, "no connection reached the accept queue of {:?} (poll returned {n})", l.local_addr());
}

/// A port nothing on this host has bound, for TCP or UDP, IPv4 or IPv6:
/// below the ephemeral range (so a parallel test binding port 0 cannot take
/// it) and checked by binding dual-stack `[::]` for both protocols.
/// Each call in a test process returns a different port, so tests running in
/// parallel never race for the same one.
pub fn unused_port() -> u16 {
    static NEXT_BELOW: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let lo: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    // Start at an offset from the pid, so that two test processes running at
    // once (two checkouts, say) do not walk down the same ports together.
    let offset = (std::process::id() as u16 % 64) * 64;
    let _ = NEXT_BELOW.compare_exchange(0, lo - offset, Ordering::SeqCst, Ordering::SeqCst);
    // No fork while the probe sockets exist: a child between fork and exec
    // would keep one open after we close it, and the caller's bind would fail.
    let _lock = spawn_lock();
    loop {
        let port = NEXT_BELOW.fetch_sub(1, Ordering::SeqCst) - 1;
        if port < 10_000 {
            break;
        }
        // Checked on the addresses tests bind, not only on [::]: a TIME_WAIT
        // left on 127.0.0.1 by an earlier test binary must rule the port out.
        let any = SocketAddr::new("::".parse().unwrap(), port);
        let lo4 = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
        let free = try_tcp_listener(any, Some(false), 1).is_ok()
            && try_udp_socket(any, Some(false)).is_ok()
            && try_tcp_listener(lo4, None, 1).is_ok()
            && try_udp_socket(lo4, None).is_ok();
        if free {
            return port;
        }
    }
    panic!("no unused port below the ephemeral range {lo}");
}

/// Runs `f` on a thread that has entered the namespace: sockets it creates
/// live there (a socket's namespace is fixed when it is created), whichever
/// thread uses them later.
pub fn in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{}", ns.name())).unwrap();
            // SAFETY: plain syscall on a descriptor we hold; affects this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {}: {}", ns.name(), io::Error::last_os_error());
            f()
        });
        h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Polls until `f` holds (socket state changes travel through the loopback
/// asynchronously); panics after 20 s.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Guards

/// A directory under the system temp dir, mode 0755, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique_name());
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A child process, killed (by its pid) and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child is running").id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child is running")
    }

    /// Waits for it to exit by itself (no kill).
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child is running");
        child.wait().unwrap_or_else(|e| panic!("wait for {}: {e}", self.what))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // kill(2) on this child's pid only; harmless if it already exited
            // (it is not reaped yet, so the pid cannot have been reused).
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A network namespace made for one test (`portctl-t-<pid>-<n>`, with `lo`
/// up), deleted on drop, even when the test panics.
///
/// Declare it before the guards of processes running inside it, so that
/// they drop (are killed) first.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Netns {
        require_root();
        let name = unique_name();
        let add = output(Command::new("ip").args(["netns", "add", &name]));
        assert!(add.status.success(), "ip netns add {name} failed\n{}", add.dump());
        let ns = Netns { name };
        let up = output(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        assert!(up.status.success(), "ip -n {} link set lo up failed\n{}", ns.name, up.dump());
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NS program`: add arguments and run it with [`output`]
    /// or [`spawn`]. The pid of the child is the program's (ip execs it).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let del = output(Command::new("ip").args(["netns", "del", &self.name]));
        if !del.status.success() {
            eprintln!("warning: ip netns del {} failed\n{}", self.name, del.dump());
        }
    }
}

/// `examples/sockpop` running (in a namespace or not), with the pids of its
/// holder processes. Dropping it closes sockpop's stdin, which makes it kill
/// its holders and exit; if it has not after ten seconds, the guard kills the
/// holders (by pid, only while they are still sockpop's children) and
/// sockpop itself.
pub struct Sockpop {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    /// Pids of the processes holding the sockets, in the order printed.
    pub holders: Vec<u32>,
    /// Everything sockpop printed up to and including `ready`.
    pub transcript: Vec<String>,
}

impl Sockpop {
    /// Starts sockpop with these arguments and waits for `ready`. Panics if
    /// it exits first, or has not said `ready` after two minutes (a hang
    /// guard, not a performance check).
    pub fn start(args: &[&str], netns: Option<&Netns>) -> Sockpop {
        let path = sockpop_path();
        let mut cmd = match netns {
            Some(ns) => ns.command(&path),
            None => Command::new(&path),
        };
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = spawn(&mut cmd);
        let stdin = child.child_mut().stdin.take();
        let stdout = child.child_mut().stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line == "ready";
                if tx.send(line).is_err() || done {
                    break;
                }
            }
        });
        let mut pop = Sockpop { child, stdin, holders: Vec::new(), transcript: Vec::new() };
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("sockpop {args:?} did not say ready in 120 s; said {:?}", pop.transcript)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("sockpop {args:?} exited before ready; said {:?}", pop.transcript)
                }
            };
            pop.transcript.push(line.clone());
            if line == "ready" {
                break;
            }
            if let Some(pid) = line.strip_prefix("pid ") {
                pop.holders.push(pid.trim().parse().unwrap_or_else(|_| panic!("sockpop printed {line:?}")));
            }
        }
        assert!(!pop.holders.is_empty(), "sockpop {args:?} printed no `pid N` line: {:?}", pop.transcript);
        pop
    }

    /// The pid of sockpop itself.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// The parent pid from /proc/PID/stat; None when the process is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may contain anything: skip to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for Sockpop {
    fn drop(&mut self) {
        // EOF on stdin: sockpop kills its holders (by pid), reaps them and
        // exits. Give it a while to do so quietly.
        drop(self.stdin.take());
        let child = self.child.child_mut();
        for _ in 0..1000 {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Still there: kill the holders ourselves, by pid, and only while they
        // are still sockpop's children (a pid whose parent is no longer
        // sockpop may belong to someone else by now); then sockpop itself
        // (ChildGuard's drop).
        let me = self.child.pid();
        for &pid in &self.holders {
            if parent_of(pid) == Some(me) {
                // SAFETY: plain syscall.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ss as an oracle

/// One socket as `ss -tuanpH` (or a subset of those flags) prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsSocket {
    pub proto: Proto,
    /// ss's state column: `LISTEN`, `UNCONN`, `ESTAB`, `TIME-WAIT`, ...;
    /// empty when ss did not print it (a filter naming one state).
    pub state: String,
    pub recv_q: u32,
    pub send_q: u32,
    /// The local address; ss's `*` (a dual-stack IPv6 wildcard) is `::`.
    pub local: Endpoint,
    /// ss printed `*` for the local address: `[::]` without IPV6_V6ONLY.
    pub dual_stack: bool,
    /// `%ifname` after the local address (SO_BINDTODEVICE).
    pub interface: Option<String>,
    /// The peer; None when ss prints a wildcard port (`*`).
    pub peer: Option<Endpoint>,
    /// `users:(("name",pid=N,fd=M),...)`, in ss's order; empty without `-p`.
    pub users: Vec<SsUser>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SsUser {
    pub name: String,
    pub pid: u32,
    pub fd: u32,
}

impl SsSocket {
    pub fn pids(&self) -> BTreeSet<u32> {
        self.users.iter().map(|u| u.pid).collect()
    }
}

/// Runs `ss` with these flags (which must include `-H` and `-n`, and one of
/// `-t`/`-u` both or `--tcp --udp` so the Netid column is there), in a
/// namespace or not, and parses it.
pub fn ss(flags: &str, netns: Option<&Netns>) -> Vec<SsSocket> {
    let mut cmd = match netns {
        Some(ns) => ns.command("ss"),
        None => Command::new("ss"),
    };
    cmd.arg(flags);
    let run = output(&mut cmd);
    run.expect_code(0);
    parse_ss(&run.stdout)
}

/// Parses `ss -tu[a|l]n[p]H` output: `Netid State Recv-Q Send-Q Local Peer [Process]`.
/// Panics on a line it does not understand (an oracle must not guess).
pub fn parse_ss(text: &str) -> Vec<SsSocket> {
    text.lines().filter(|l| !l.trim().is_empty()).map(parse_ss_line).collect()
}

fn parse_ss_line(line: &str) -> SsSocket {
    let bad = |why: &str| -> ! { panic!("ss line not understood ({why}): {line:?}") };
    let mut f = line.split_whitespace();
    let mut next = |what: &str| f.next().unwrap_or_else(|| bad(what)).to_string();
    let proto = match next("netid").as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => bad(&format!("netid {other}")),
    };
    // ss leaves the State column out when the filter names one state.
    let second = next("state");
    let (state, recv_q) = match second.parse::<u32>() {
        Ok(q) => (String::new(), q),
        Err(_) => (second, next("recv-q").parse().unwrap_or_else(|_| bad("recv-q"))),
    };
    let send_q = next("send-q").parse().unwrap_or_else(|_| bad("send-q"));
    let local_text = next("local");
    let peer_text = next("peer");
    let process = f.collect::<Vec<_>>().join(" ");
    let (local, dual_stack, interface) = parse_ss_addr(&local_text).unwrap_or_else(|| bad("local address"));
    let local = local.unwrap_or_else(|| bad("local port"));
    let peer = parse_ss_addr(&peer_text).unwrap_or_else(|| bad("peer address")).0;
    SsSocket { proto, state, recv_q, send_q, local, dual_stack, interface, peer, users: parse_ss_users(&process) }
}

/// `127.0.0.1:80`, `[::1]:80`, `*:80`, `0.0.0.0:*`, `127.0.0.53%lo:53`,
/// `[fe80::1]%eth0:123` -> (endpoint, unless the port is `*`; whether the
/// address was `*`; interface).
fn parse_ss_addr(s: &str) -> Option<(Option<Endpoint>, bool, Option<String>)> {
    let (host, port) = s.rsplit_once(':')?;
    let (host, interface) = match host.rsplit_once('%') {
        Some((h, i)) => (h, Some(i.to_string())),
        None => (host, None),
    };
    let (addr, star): (IpAddr, bool) = if host == "*" {
        ("::".parse().unwrap(), true)
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        (v6.parse().ok()?, false)
    } else {
        (host.parse().ok()?, false)
    };
    let endpoint = if port == "*" { None } else { Some(Endpoint { addr, port: port.parse().ok()? }) };
    Some((endpoint, star, interface))
}

/// `users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))` -> owners. Names
/// are taken between the quotes; a name containing `",pid=` would confuse
/// it, which is fine for the processes tests start.
fn parse_ss_users(s: &str) -> Vec<SsUser> {
    let Some(start) = s.find("users:(") else { return Vec::new() };
    let mut out = Vec::new();
    let mut rest = &s[start + "users:(".len()..];
    while let Some(open) = rest.find("(\"") {
        rest = &rest[open + 2..];
        let end = rest.find("\",pid=").unwrap_or_else(|| panic!("ss users not understood: {s:?}"));
        let name = rest[..end].to_string();
        rest = &rest[end + "\",pid=".len()..];
        let num = |t: &str| -> (u32, usize) {
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            (t[..digits].parse().unwrap_or_else(|_| panic!("ss users not understood: {s:?}")), digits)
        };
        let (pid, n) = num(rest);
        rest = rest[n..].strip_prefix(",fd=").unwrap_or_else(|| panic!("ss users not understood: {s:?}"));
        let (fd, n) = num(rest);
        rest = &rest[n..];
        out.push(SsUser { name, pid, fd });
    }
    out
}

/// One unix socket as `ss -xpaH` prints it: `Netid State Recv-Q Send-Q
/// Local Inode Peer PeerInode [users]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsUnix {
    /// `u_str`, `u_dgr`, `u_seq`.
    pub netid: String,
    pub state: String,
    pub recv_q: u32,
    pub send_q: u32,
    /// The name as ss shows it: a path, `@name`, or `*`.
    pub local: String,
    pub inode: u64,
    pub peer: String,
    pub peer_inode: u64,
    pub users: Vec<SsUser>,
}

/// `ss -xpaH` (in a namespace or not), parsed. Names with spaces would
/// confuse it: tests do not make those.
pub fn ss_unix(netns: Option<&Netns>) -> Vec<SsUnix> {
    let mut cmd = match netns {
        Some(ns) => ns.command("ss"),
        None => Command::new("ss"),
    };
    cmd.arg("-xpaH");
    let run = output(&mut cmd);
    run.expect_code(0);
    run.stdout.lines().filter(|l| !l.trim().is_empty()).map(parse_ss_unix_line).collect()
}

fn parse_ss_unix_line(line: &str) -> SsUnix {
    let bad = |why: &str| -> ! { panic!("ss -x line not understood ({why}): {line:?}") };
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        bad("fields");
    }
    let num = |i: usize, what: &str| f[i].parse().unwrap_or_else(|_| bad(what));
    SsUnix {
        netid: f[0].to_string(),
        state: f[1].to_string(),
        recv_q: num(2, "recv-q") as u32,
        send_q: num(3, "send-q") as u32,
        local: f[4].to_string(),
        inode: num(5, "inode"),
        peer: f[6].to_string(),
        peer_inode: num(7, "peer inode"),
        users: parse_ss_users(&f[8..].join(" ")),
    }
}

/// A child process whose name (`comm`) is `name`, holding a TCP listener on
/// 127.0.0.1 that it inherited and alone holds. The kernel takes `comm` from
/// the file exec'd, so a symlink named `name` to sleep(1) does it (another
/// process's `/proc/PID/comm` cannot be written).
pub struct NamedHolder {
    // Field order = drop order: the child before its directory.
    pub child: ChildGuard,
    pub port: u16,
    /// The listener's descriptor number in the child (same as it had here).
    pub fd: RawFd,
    _dir: TempDir,
}

impl NamedHolder {
    pub fn start(name: &str) -> NamedHolder {
        use std::os::unix::process::CommandExt;
        let dir = TempDir::new();
        let link = dir.path().join(name);
        let sleep = ["/usr/bin/sleep", "/bin/sleep"].into_iter().find(|p| Path::new(p).exists());
        std::os::unix::fs::symlink(sleep.expect("sleep(1) is installed"), &link).unwrap();
        let listener = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
        let port = listener.local_addr().unwrap().port();
        let fd = listener.as_raw_fd();
        let mut cmd = Command::new(&link);
        cmd.arg0("sleep").arg("100000").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: only fcntl (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = spawn(&mut cmd);
        drop(listener);
        let comm = std::fs::read(format!("/proc/{}/comm", child.pid())).unwrap();
        assert_eq!(comm, format!("{name}\n").as_bytes(), "the kernel did not take the name from the symlink");
        NamedHolder { child, port, fd, _dir: dir }
    }
}

/// The binary under test, runnable by another user: itself when every
/// directory above it is searchable, else a 0755 copy in a temp dir (kept
/// alive by the returned guard).
pub fn portctl_for_others() -> (PathBuf, Option<TempDir>) {
    for_others(&portctl_path())
}

/// `path`, runnable by another user (as [`portctl_for_others`]).
pub fn for_others(path: &Path) -> (PathBuf, Option<TempDir>) {
    if executable_by_others(path) {
        return (path.to_path_buf(), None);
    }
    let dir = TempDir::new();
    let to = dir.path().join(path.file_name().expect("a file"));
    std::fs::copy(path, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    (to, Some(dir))
}

// ---------------------------------------------------------------------------
// Accept queues that overflow, UDP sockets that drop, and nstat as an oracle

/// A non-blocking TCP connect from a fresh close-on-exec socket: the SYN is
/// sent when this returns (EINPROGRESS), whatever becomes of it.
pub fn start_connect(to: SocketAddr) -> OwnedFd {
    let SocketAddr::V4(v4) = to else { panic!("start_connect is IPv4 only: {to}") };
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    check(fd).unwrap_or_else(|e| panic!("socket: {e}"));
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a valid sockaddr_in of the size given.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let err = io::Error::last_os_error();
    assert!(rc == 0 || err.raw_os_error() == Some(libc::EINPROGRESS), "connect {to}: {err}");
    fd
}

/// A TCP listener in a namespace made with `listen(backlog)` that never
/// accepts, and `clients` connections started to it: the accept queue fills
/// to `backlog + 1` (the point where the kernel starts dropping) and the
/// other clients' handshakes are dropped (TcpExt ListenOverflows).
pub struct FullQueue {
    pub listener: TcpListener,
    pub clients: Vec<OwnedFd>,
    pub addr: SocketAddr,
}

impl FullQueue {
    /// Waits (polling `ss` in the namespace, with a deadline) until the
    /// queue holds `backlog + 1`; `backlog` here is the one the kernel kept
    /// (somaxconn caps what listen() asks).
    pub fn new(ns: &Netns, addr: &str, listen_backlog: i32, kept_backlog: u32, clients: usize) -> FullQueue {
        let addr: SocketAddr = addr.parse().unwrap();
        let (listener, clients) = in_netns(ns, || {
            let l = tcp_listener(addr, None, listen_backlog);
            let to = l.local_addr().unwrap();
            let clients: Vec<OwnedFd> = (0..clients).map(|_| start_connect(to)).collect();
            (l, clients)
        });
        let addr = listener.local_addr().unwrap();
        wait_until(&format!("{} waiting on {addr} (backlog {kept_backlog})", kept_backlog + 1), || {
            ss("-tulnH", Some(ns)).iter().any(|s| s.local == endpoint(addr) && s.recv_q == kept_backlog + 1)
        });
        FullQueue { listener, clients, addr }
    }
}

fn endpoint(a: SocketAddr) -> Endpoint {
    Endpoint { addr: a.ip(), port: a.port() }
}

/// Starts a connection to `to` in the namespace every few milliseconds
/// (closing each at once: its SYN is out) until `stop` is set or `max`
/// were made; returns how many. Against a full accept queue each SYN is an
/// overflow, so the counters rise while a command looks.
pub fn knock_until(
    ns: &Netns,
    to: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    max: usize,
) -> std::thread::JoinHandle<usize> {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: plain syscall on a descriptor we hold; affects this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
        let mut n = 0;
        while n < max && !stop.load(Ordering::Relaxed) {
            drop(start_connect(to));
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    })
}

/// A UDP socket bound to `addr` in the namespace with the smallest receive
/// buffer (SO_RCVBUF 1: the kernel makes it its minimum, 2304), and
/// `datagrams` datagrams of 200 bytes sent to it on loopback: all but the
/// first are dropped on the socket (its `skmem.drops`, Udp RcvbufErrors).
pub struct DroppingUdp {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

impl DroppingUdp {
    pub fn new(ns: &Netns, addr: &str, datagrams: usize) -> DroppingUdp {
        let addr: SocketAddr = addr.parse().unwrap();
        let socket = in_netns(ns, || {
            let u = udp_socket(addr, None);
            let one: libc::c_int = 1;
            // SAFETY: a valid int option of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    u.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            check(rc).unwrap();
            let to = u.local_addr().unwrap();
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..datagrams {
                sender.send_to(&[7u8; 200], to).unwrap();
            }
            u
        });
        let addr = socket.local_addr().unwrap();
        DroppingUdp { socket, addr }
    }
}

/// `skmem:(...,d<N>)` of a socket, from `ss -m` in the namespace: the drops
/// the kernel counted on it.
pub fn ss_drops(ns: &Netns, flags: &str, local: SocketAddr) -> u32 {
    let run = output(ns.command("ss").args([flags, "-m", "-H", "-n"]));
    run.expect_code(0);
    let text = run.stdout.replace("\n\t", " ");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(&local.to_string()))
        .unwrap_or_else(|| panic!("no {local} in ss {flags} -m:\n{}", run.stdout));
    let skmem = &line[line.find("skmem:(").unwrap_or_else(|| panic!("no skmem in {line:?}"))..];
    let d = skmem.split([',', ')']).find_map(|f| f.strip_prefix('d')).unwrap_or_else(|| panic!("no drops in {skmem}"));
    d.parse().unwrap_or_else(|_| panic!("drops {d:?} in {skmem}"))
}

/// `nstat -azs --json` in the namespace (absolute values, zeros included,
/// the history file left alone): nstat's names (`TcpExtListenOverflows`)
/// and values.
pub fn nstat(ns: &Netns) -> std::collections::BTreeMap<String, i64> {
    let run = output(ns.command("nstat").arg("-azsj"));
    run.expect_code(0);
    #[derive(serde::Deserialize)]
    struct Out {
        kernel: std::collections::BTreeMap<String, i64>,
    }
    let out: Out = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("nstat -azsj: {e}\n{}", run.dump()));
    out.kernel
}

/// The group and counter name of an nstat name, for the groups portctl
/// reads: `TcpExtListenOverflows` is (TcpExt, ListenOverflows).
pub fn nstat_group(name: &str) -> Option<(&'static str, &str)> {
    if name.starts_with("UdpLite") {
        return None;
    }
    ["TcpExt", "Tcp", "Udp6", "Udp"].into_iter().find_map(|g| {
        name.strip_prefix(g).filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())).map(|rest| (g, rest))
    })
}

/// Counters nstat leaves out ("useless numbers"): constants and a gauge.
pub const NSTAT_SKIPS: [&str; 5] = ["TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn", "TcpCurrEstab"];

/// Installs a NAT fixture of tests/fixtures/nat (`script NETNS`, with
/// `env`) in the namespace; panics when it fails.
pub fn nat_fixture(ns: &Netns, script: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nat").join(script)).arg(ns.name());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = output(&mut cmd);
    assert!(run.status.success(), "{script} failed (scripts/test.sh installs nftables and iptables)\n{}", run.dump());
}

/// A socket bound by `examples/trybind --hold` (as another user with `uid`),
/// held until dropped.
pub struct HeldSocket {
    // Field order = drop order: the child before the copy of the binary.
    child: ChildGuard,
    _stdin: ChildStdin,
    pub inode: u64,
    pub uid: u32,
    /// The thread that made it (the process itself unless `--thread-table`).
    pub tid: u32,
    pub fd: u32,
    _copy: Option<TempDir>,
}

/// `[ip netns exec NS] [setpriv --reuid U ...] trybind`.
fn trybind_command(uid: Option<u32>, netns: Option<&Netns>, bin: &Path) -> Command {
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(ns) = netns {
        argv.extend(["ip", "netns", "exec", ns.name()].map(OsString::from));
    }
    if let Some(u) = uid {
        argv.push("setpriv".into());
        argv.push(format!("--reuid={u}").into());
        argv.push(format!("--regid={u}").into());
        argv.push("--clear-groups".into());
    }
    argv.push(bin.into());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

impl HeldSocket {
    /// `trybind --hold ARGS...`, as `uid` (through setpriv) when given;
    /// panics unless the bind succeeded.
    pub fn start(uid: Option<u32>, args: &[&str]) -> HeldSocket {
        HeldSocket::launch(uid, None, args)
    }

    /// The same, inside a namespace.
    pub fn start_in(ns: &Netns, args: &[&str]) -> HeldSocket {
        HeldSocket::launch(None, Some(ns), args)
    }

    fn launch(uid: Option<u32>, netns: Option<&Netns>, args: &[&str]) -> HeldSocket {
        let (bin, copy) = for_others(&example_path("trybind"));
        let mut cmd = trybind_command(uid, netns, &bin);
        cmd.arg("--hold").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = spawn(&mut cmd);
        let stdin = child.child_mut().stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.child_mut().stdout.take().expect("piped stdout")).read_line(&mut line).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["ok", "inode", inode, "uid", got, "tid", tid, "fd", fd] = words.as_slice() else {
            panic!("trybind --hold {args:?} as {uid:?}: {line:?}")
        };
        HeldSocket {
            child,
            _stdin: stdin,
            inode: inode.parse().unwrap(),
            uid: got.parse().unwrap(),
            tid: tid.parse().unwrap(),
            fd: fd.parse().unwrap(),
            _copy: copy,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// One `examples/trybind` bind (as `uid` when given): Ok, or the errno.
pub fn try_bind_as(uid: Option<u32>, args: &[&str]) -> Result<(), i32> {
    trybind(uid, None, args)
}

/// One `examples/trybind` bind inside a namespace.
pub fn try_bind_in(ns: &Netns, args: &[&str]) -> Result<(), i32> {
    trybind(None, Some(ns), args)
}

fn trybind(uid: Option<u32>, netns: Option<&Netns>, args: &[&str]) -> Result<(), i32> {
    let (bin, _copy) = for_others(&example_path("trybind"));
    let mut cmd = trybind_command(uid, netns, &bin);
    cmd.args(args);
    let run = output(&mut cmd);
    match run.stdout.trim() {
        "ok" => Ok(()),
        other => match other.strip_prefix("errno ") {
            Some(n) => Err(n.parse().unwrap()),
            None => panic!("trybind {args:?}: {}", run.dump()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_unix_lines_parse() {
        let got = parse_ss_unix_line(
            "u_str LISTEN 1      16       /tmp/pt15/app.sock 2093975            * 0    users:((\"python3\",pid=5495,fd=3))",
        );
        assert_eq!((got.netid.as_str(), got.state.as_str(), got.recv_q, got.send_q), ("u_str", "LISTEN", 1, 16));
        assert_eq!(
            (got.local.as_str(), got.inode, got.peer.as_str(), got.peer_inode),
            ("/tmp/pt15/app.sock", 2093975, "*", 0)
        );
        assert_eq!(got.users, vec![SsUser { name: "python3".into(), pid: 5495, fd: 3 }]);
        let pair = parse_ss_unix_line("u_seq ESTAB 0 0 * 1177037 * 1177038");
        assert_eq!((pair.inode, pair.peer_inode, pair.users.len()), (1177037, 1177038, 0));
    }

    #[test]
    fn ss_lines_parse() {
        let text = "\
tcp   LISTEN 0      128          0.0.0.0:2024       0.0.0.0:*
tcp   LISTEN 0      4096               *:20001            *:*    users:((\"sockpop\",pid=10,fd=7),(\"sockpop\",pid=11,fd=7))
tcp   LISTEN 0      511            [::1]:8080          [::]:*    users:((\"a b\",pid=12,fd=3))
udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*    users:((\"systemd-resolve\",pid=5,fd=14))
tcp   ESTAB  0      0          127.0.0.1:40000    127.0.0.1:20000
";
        let got = parse_ss(text);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].proto, Proto::Tcp);
        assert_eq!(got[0].state, "LISTEN");
        assert_eq!(got[0].send_q, 128);
        assert_eq!(got[0].local, Endpoint { addr: "0.0.0.0".parse().unwrap(), port: 2024 });
        assert!(got[0].users.is_empty() && !got[0].dual_stack && got[0].peer.is_none());
        assert!(got[1].dual_stack);
        assert_eq!(got[1].local, Endpoint { addr: "::".parse().unwrap(), port: 20001 });
        assert_eq!(got[1].pids(), BTreeSet::from([10, 11]));
        assert_eq!(got[1].users[1], SsUser { name: "sockpop".into(), pid: 11, fd: 7 });
        assert_eq!(got[2].local, Endpoint { addr: "::1".parse().unwrap(), port: 8080 });
        assert_eq!(got[2].users, vec![SsUser { name: "a b".into(), pid: 12, fd: 3 }]);
        assert_eq!(got[3].proto, Proto::Udp);
        assert_eq!(got[3].interface.as_deref(), Some("lo"));
        assert_eq!(got[3].local.port, 53);
        assert_eq!(got[4].peer, Some(Endpoint { addr: "127.0.0.1".parse().unwrap(), port: 20000 }));
        // One state asked for: no State column.
        let one = parse_ss("tcp   0      0      10.0.0.5:80   193.233.7.10:40000\n");
        assert_eq!((one[0].state.as_str(), one[0].local.port, one[0].recv_q), ("", 80, 0));
    }
}
