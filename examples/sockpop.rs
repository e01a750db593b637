//! `sockpop` — socket-population generator for portctl's integration tests and benchmark.
//!
//! It creates real sockets in the *current* network namespace (wrap it in
//! `ip netns exec NS sockpop ...` to keep the population away from the host), spreads
//! them over several holder processes and holds them until told to stop.
//!
//! ```text
//! sockpop [--procs N] [--listeners N] [--established N] [--time-wait N] [--close-wait N]
//!         [--udp N] [--shared-listener] [--v6] [--base-port P] [--hold-secs S] [--ignore-stdin]
//!         [--unix-listeners N] [--unix-pairs N] [--unix-dir DIR]
//! ```
//!
//! Build/run: `cargo build --release --example sockpop`, then
//! `ip netns exec NS target/release/examples/sockpop --established 1000`.
//! Only `std`, `libc` and `rustix` are used.
//!
//! # Unsafe code
//! Every fd here is a plain `RawFd` that sockpop created (or inherited over `fork`) and
//! owns until it closes it or exits; none is ever wrapped in an `OwnedFd`, `File` or other
//! owning std/rustix type, so the raw libc calls on them cannot close or reuse an fd that
//! Rust code elsewhere believes it owns. The socket and fd-passing calls stay on libc
//! because they need this raw-fd bookkeeping (fds cross `fork` and SCM_RIGHTS and are
//! held until exit); process calls that take no fd go through rustix. Each `unsafe`
//! block says why its pointers and lengths are valid.
//!
//! # What gets created (addresses are 127.0.0.1, or ::1 with `--v6`)
//! * `--listeners N` (default 0): TCP listeners on ports `base-port .. base-port+N-1`
//!   (default base 20000); listener `j` is owned by holder `j % procs`. With `--v6` they
//!   are bound on `::1` with `IPV6_V6ONLY`.
//! * `--established N` (default 0): N established loopback TCP pairs, spread round-robin
//!   over the listeners (pair `k` uses listener `k % listeners`). If `--listeners 0` but
//!   pairs are needed, one internal listener is created on `base-port`. The accepted end
//!   stays in the process that owns the listener and the client end is handed (SCM_RIGHTS)
//!   to the next holder, so `ss -tanp` shows two different pids per pair. If that layout
//!   would put more than 15,000 fds in one holder (few listeners, many pairs), both ends
//!   are instead spread evenly over all holders ("balanced" layout; noted on stderr).
//!   Held sockets have `SO_LINGER {on, 0}` so that killing the holders resets them
//!   instead of leaving ~N TIME_WAIT sockets behind.
//! * `--time-wait N` (default 0): about N sockets in TIME_WAIT: connect, accept, the
//!   client closes first, the server reads EOF then closes, so the client end goes to
//!   TIME_WAIT (these have no owning process). TIME_WAIT lasts 60 s in Linux (plus up to a
//!   few seconds of timer slack), so the parent keeps the count topped up while holding:
//!   it counts the namespace's TIME_WAIT sockets of the chosen family through
//!   NETLINK_SOCK_DIAG (a dump filtered to that one state) and asks the listener owners to
//!   create the difference. That dump walks the whole TCP hash (~40 ms of kernel time at
//!   130k sockets), so it runs every 10 s, or sooner when the O(1) `tw` figure of
//!   /proc/net/sockstat (read every 250 ms) drops. Expect a short dip (under a second) each time a
//!   cohort expires — first ~60 s after `ready` — and no overshoot. TIME_WAIT sockets that
//!   are already in the namespace (e.g. from an earlier run) count towards N.
//! * `--close-wait N` (default 0): N accepted sockets in CLOSE_WAIT held by the listener's
//!   owner: the client end is closed (it lingers ~60 s in FIN_WAIT2 as an orphan, then
//!   disappears), the holder never closes its end. Those clients connect from fixed ports
//!   placed after the UDP ports (which must lie outside the ephemeral range): with an
//!   ephemeral port, a later connect() could reuse the tuple once the FIN_WAIT2 remnant is
//!   gone, and its SYN would hit and reset the CLOSE_WAIT socket.
//!
//! * `--unix-listeners N` (default 0): unix stream listeners, listener `j` owned by holder
//!   `j % procs`: on `DIR/u<j>.sock` with `--unix-dir DIR` (the files are removed at
//!   exit), else on the abstract name `@sockpop-<parent pid>-<j>` (the namespace's).
//! * `--unix-pairs N` (default 0): N connected unix stream pairs, pair `k` on unix
//!   listener `k % unix-listeners`: the accepted end stays with the listener's owner, the
//!   client end goes to the next holder, as for TCP pairs (`ss -xp` shows two pids).
//!
//! Port layout: shared listener `base-1`, TCP listeners `base..`, UDP right after them,
//! close-wait client ports right after the UDP ones.
//! * `--udp N` (default 0): N unconnected UDP sockets bound on the ports right after the
//!   TCP listener ports, round-robin over the holders.
//! * `--shared-listener`: one extra TCP listener on `base-port - 1` held by two processes
//!   (holders 0 and 1, both hold the same socket, like a pre-fork server; with
//!   `--procs 1` the parent is the second holder).
//!
//! # Processes and lifetime
//! * `--procs N` (default 4): number of holder processes (forked while the parent is still
//!   single-threaded). Every holder must stay under 15,000 fds; sockpop refuses with a
//!   message naming the `--procs` needed if the numbers cannot fit. RLIMIT_NOFILE's soft
//!   limit is raised to the hard limit in every process.
//! * stdout (flushed per line): one `pid <PID>` line per holder right after they are
//!   forked, then `ready` once every socket exists. Errors go to stderr; a failed
//!   build exits with status 1 without printing `ready`.
//! * The parent exits (status 0) when stdin reaches EOF (unless `--ignore-stdin`), on
//!   SIGTERM/SIGINT/SIGHUP, or after `--hold-secs` (default 600). It then SIGKILLs its
//!   holders by pid and reaps them. Holders also have PR_SET_PDEATHSIG(SIGKILL), so they
//!   die with the parent even if it is SIGKILLed. If a holder dies on its own, the parent
//!   kills the rest and exits with status 1.
//! * Beware: a non-interactive shell runs `sockpop &` with stdin on /dev/null, which is an
//!   immediate EOF. Feed it a pipe (e.g. a bash `coproc`), or pass `--ignore-stdin` and
//!   rely on `--hold-secs` or a signal.
//!
//! # Kernel limits that matter (per network namespace unless said otherwise)
//! * `net.core.somaxconn` (4096 by default) caps the listen backlog; pairs are made in
//!   batches of at most min(somaxconn/2, 256) connects per accept round so the accept
//!   queue never overflows (an overflow drops the SYN and costs a 1 s retransmit).
//! * `net.ipv4.ip_local_port_range` (32768-60999, ~28k ports): connect() may reuse a local
//!   port for different destinations, so the limit is per listener: pairs + close-wait +
//!   time-wait on one listener must fit in the range. Spread load over more listeners.
//! * `net.ipv4.tcp_max_tw_buckets` (131072 in a new namespace): TIME_WAIT plus the
//!   close-wait clients' FIN_WAIT2 orphans must fit, or the kernel destroys them early.
//! * `net.ipv4.tcp_tw_reuse` (2 = loopback only) lets connect() recycle a TIME_WAIT tuple
//!   older than 1 s once the port search for a destination wraps; the top-up absorbs it.
//! * RLIMIT_NOFILE (the hard limit bounds each holder) and `net.unix.max_dgram_qlen`
//!   (fd hand-over between holders blocks briefly when a receiver's queue is full).
use std::ffi::{c_int, c_void};
use std::io::{self, Write};
use std::mem::{size_of, size_of_val, zeroed};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, waitpid};

const USAGE: &str = "usage: sockpop [--procs N] [--listeners N] [--established N] [--time-wait N] \
[--close-wait N] [--udp N] [--shared-listener] [--v6] [--base-port P] [--hold-secs S] [--ignore-stdin] \
[--unix-listeners N] [--unix-pairs N] [--unix-dir DIR]";

/// Upper bound of fds for one holder process.
const HOLDER_FD_LIMIT: usize = 15_000;
/// stdio, pipes, inbox/sender sockets and some slack.
const HOLDER_FD_OVERHEAD: usize = 32;
/// Linux SCM_MAX_FD: fds per SCM_RIGHTS message.
const SCM_MAX_FDS: usize = 253;
/// Flush every outgoing buffer when this many fds wait to be handed over.
const OUTBOX_FLUSH_AT: usize = 1024;
/// Largest connect batch before the accepts.
const MAX_BATCH: usize = 256;
/// Listen backlog asked for (the kernel caps it to somaxconn).
const LISTEN_BACKLOG: c_int = 4096;
/// Timeout for one accept / one expected FIN, in ms.
const IO_TIMEOUT_MS: c_int = 10_000;
/// TIME_WAIT controller period.
const TW_TICK: Duration = Duration::from_millis(250);
/// Exact TIME_WAIT count at least this often.
const TW_FULL_CHECK: Duration = Duration::from_secs(10);
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_TIME_WAIT: u32 = 6;

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    procs: usize,
    listeners: usize,
    established: usize,
    time_wait: usize,
    close_wait: usize,
    udp: usize,
    shared_listener: bool,
    v6: bool,
    base_port: usize,
    hold_secs: u64,
    ignore_stdin: bool,
    unix_listeners: usize,
    unix_pairs: usize,
    unix_dir: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            procs: 4,
            listeners: 0,
            established: 0,
            time_wait: 0,
            close_wait: 0,
            udp: 0,
            shared_listener: false,
            v6: false,
            base_port: 20000,
            hold_secs: 600,
            ignore_stdin: false,
            unix_listeners: 0,
            unix_pairs: 0,
            unix_dir: None,
        }
    }
}

/// Ok(None) means `--help` was asked for.
fn parse_args(args: &[String]) -> Res<Option<Opts>> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg, None),
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--shared-listener" | "--v6" | "--ignore-stdin" => {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                match name {
                    "--shared-listener" => o.shared_listener = true,
                    "--v6" => o.v6 = true,
                    _ => o.ignore_stdin = true,
                }
                continue;
            }
            _ => {}
        }
        let slot: &mut usize = match name {
            "--procs" => &mut o.procs,
            "--listeners" => &mut o.listeners,
            "--established" => &mut o.established,
            "--time-wait" => &mut o.time_wait,
            "--close-wait" => &mut o.close_wait,
            "--udp" => &mut o.udp,
            "--base-port" => &mut o.base_port,
            "--hold-secs" => {
                let v = take_value(name, inline, args, &mut i)?;
                o.hold_secs = v.parse().map_err(|_| format!("{name}: not a number: {v:?}"))?;
                continue;
            }
            "--unix-dir" => {
                o.unix_dir = Some(take_value(name, inline, args, &mut i)?);
                continue;
            }
            "--unix-listeners" => &mut o.unix_listeners,
            "--unix-pairs" => &mut o.unix_pairs,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let v = take_value(name, inline, args, &mut i)?;
        *slot = v.parse().map_err(|_| format!("{name}: not a number: {v:?}"))?;
    }
    if o.procs == 0 {
        return Err("--procs must be at least 1".into());
    }
    if o.base_port == 0 || o.base_port > 65535 {
        return Err("--base-port must be in 1..=65535".into());
    }
    if o.unix_pairs > 0 && o.unix_listeners == 0 {
        return Err("--unix-pairs needs --unix-listeners".into());
    }
    Ok(Some(o))
}

fn take_value(name: &str, inline: Option<String>, args: &[String], i: &mut usize) -> Res<String> {
    if let Some(v) = inline {
        return Ok(v);
    }
    let v = args.get(*i).ok_or_else(|| format!("{name} needs a value"))?;
    *i += 1;
    Ok(v.clone())
}

// ---------------------------------------------------------------------------------------
// Kernel facts

struct SysInfo {
    somaxconn: usize,
    max_tw_buckets: Option<usize>,
    ephemeral_ports: usize,
    ephemeral_range: (usize, usize),
}

fn read_sysctl(path: &str) -> Option<Vec<i64>> {
    let s = std::fs::read_to_string(path).ok()?;
    let v: Vec<i64> = s.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    if v.is_empty() { None } else { Some(v) }
}

impl SysInfo {
    fn read() -> SysInfo {
        let somaxconn = read_sysctl("/proc/sys/net/core/somaxconn").map(|v| v[0].max(1) as usize).unwrap_or(4096);
        let max_tw_buckets = read_sysctl("/proc/sys/net/ipv4/tcp_max_tw_buckets").map(|v| v[0].max(0) as usize);
        let ephemeral_range = read_sysctl("/proc/sys/net/ipv4/ip_local_port_range")
            .filter(|v| v.len() == 2 && v[0] >= 0 && v[1] >= v[0])
            .map(|v| (v[0] as usize, v[1] as usize))
            .unwrap_or((32768, 60999));
        let ephemeral_ports = ephemeral_range.1 - ephemeral_range.0 + 1;
        SysInfo { somaxconn, max_tw_buckets, ephemeral_ports, ephemeral_range }
    }
}

fn raise_nofile() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // rustix spells RLIM_INFINITY as None.
    let value = |v: Option<u64>| v.unwrap_or(u64::MAX);
    let mut rl = getrlimit(Resource::Nofile);
    if value(rl.current) < value(rl.maximum) {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: rl.maximum, maximum: rl.maximum });
        rl = getrlimit(Resource::Nofile);
    }
    usize::try_from(value(rl.current)).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------
// Plan: who owns and who holds what. Everything is a pure function of the options, so the
// parent and every (forked) holder agree without talking.

struct Plan {
    o: Opts,
    /// The parent's pid: abstract unix names carry it, so two sockpops in one
    /// namespace do not collide.
    tag: u32,
    /// TCP listeners actually created (>= 1 when any pair is needed).
    nlisten: usize,
    balanced: bool,
    batch: usize,
    /// Per holder: fds it will receive from other holders.
    recv_expected: Vec<usize>,
    /// Per holder: planned peak fd use.
    loads: Vec<usize>,
}

impl Plan {
    fn new(o: &Opts, sys: &SysInfo, nofile: usize) -> Res<Plan> {
        let pairs_needed = o.established + o.time_wait + o.close_wait > 0;
        let nlisten = if o.listeners == 0 && pairs_needed { 1 } else { o.listeners };
        let last_port = o.base_port + nlisten + o.udp + o.close_wait;
        if last_port > 65536 {
            return Err(format!(
                "ports {}..{} do not fit below 65536: lower --base-port or the counts",
                o.base_port,
                last_port - 1
            ));
        }
        let cw_ports = (o.base_port + nlisten + o.udp, last_port - 1);
        if o.close_wait > 0 && cw_ports.1 >= sys.ephemeral_range.0 && cw_ports.0 <= sys.ephemeral_range.1 {
            return Err(format!(
                "close-wait peers use ports {}..={} which overlap net.ipv4.ip_local_port_range \
                 {}-{}: pick a --base-port so they stay outside it",
                cw_ports.0, cw_ports.1, sys.ephemeral_range.0, sys.ephemeral_range.1
            ));
        }
        if o.shared_listener && o.base_port < 2 {
            return Err("--shared-listener uses base-port - 1: --base-port must be >= 2".into());
        }
        let batch = (sys.somaxconn.min(LISTEN_BACKLOG as usize) / 2).clamp(1, MAX_BATCH);
        let mut plan = Plan {
            o: o.clone(),
            tag: std::process::id(),
            nlisten,
            balanced: false,
            batch,
            recv_expected: vec![],
            loads: vec![],
        };
        if nlisten > 0 {
            let per = |n: usize| n.div_ceil(nlisten);
            let busiest = per(o.established) + per(o.close_wait) + per(o.time_wait);
            if busiest + 1024 > sys.ephemeral_ports {
                return Err(format!(
                    "{busiest} connections on one listener exceed the ephemeral port range \
                     ({} ports, net.ipv4.ip_local_port_range): use more --listeners",
                    sys.ephemeral_ports
                ));
            }
        }
        if let Some(max_tw) = sys.max_tw_buckets
            && o.time_wait + o.close_wait > max_tw
        {
            return Err(format!(
                "--time-wait + --close-wait = {} exceeds net.ipv4.tcp_max_tw_buckets = {max_tw}",
                o.time_wait + o.close_wait
            ));
        }
        plan.compute_loads();
        if plan.max_load() > HOLDER_FD_LIMIT {
            plan.balanced = true;
            plan.compute_loads();
        }
        let busiest = plan.max_load();
        if busiest > HOLDER_FD_LIMIT {
            let held = nlisten + o.udp + 2 * o.established + o.close_wait + if o.shared_listener { 2 } else { 0 };
            let per_proc = HOLDER_FD_LIMIT - HOLDER_FD_OVERHEAD - 2 * batch - OUTBOX_FLUSH_AT - SCM_MAX_FDS;
            return Err(format!(
                "the busiest holder would need about {busiest} fds (limit {HOLDER_FD_LIMIT} per \
                 process): use --procs {} or more",
                held.div_ceil(per_proc).max(o.procs + 1)
            ));
        }
        if busiest > nofile {
            return Err(format!(
                "a holder needs about {busiest} fds but RLIMIT_NOFILE allows {nofile}: \
                 raise the hard limit or use more --procs"
            ));
        }
        Ok(plan)
    }

    fn procs(&self) -> usize {
        self.o.procs
    }
    fn listener_port(&self, j: usize) -> u16 {
        (self.o.base_port + j) as u16
    }
    fn udp_port(&self, k: usize) -> u16 {
        (self.o.base_port + self.nlisten + k) as u16
    }
    /// Fixed source port of close-wait pair `k`'s (closed) client.
    fn close_wait_src_port(&self, k: usize) -> u16 {
        (self.o.base_port + self.nlisten + self.o.udp + k) as u16
    }
    fn owner(&self, j: usize) -> usize {
        j % self.procs()
    }
    fn udp_owner(&self, k: usize) -> usize {
        (self.nlisten + k) % self.procs()
    }
    /// Holder that creates pair `k` (and owns its listener).
    fn creator(&self, k: usize) -> usize {
        self.owner(k % self.nlisten)
    }
    fn server_dest(&self, k: usize) -> usize {
        if self.balanced { (2 * k) % self.procs() } else { self.creator(k) }
    }
    fn client_dest(&self, k: usize) -> usize {
        if self.balanced { (2 * k + 1) % self.procs() } else { (self.creator(k) + 1) % self.procs() }
    }
    fn close_wait_dest(&self, k: usize) -> usize {
        if self.balanced { (2 * self.o.established + k) % self.procs() } else { self.creator(k) }
    }
    /// Holders that own at least one TCP listener (they create pairs and TIME_WAITs).
    fn creators(&self) -> usize {
        self.procs().min(self.nlisten)
    }
    fn unix_owner(&self, j: usize) -> usize {
        j % self.procs()
    }
    /// Where unix pair `k`'s client end is held: the holder after its listener's owner.
    fn unix_client_dest(&self, k: usize) -> usize {
        (self.unix_owner(k % self.o.unix_listeners) + 1) % self.procs()
    }
    /// The file unix listener `j` binds (`--unix-dir`), if it binds one.
    fn unix_path(&self, j: usize) -> Option<String> {
        self.o.unix_dir.as_ref().map(|d| format!("{}/u{j}.sock", d.trim_end_matches('/')))
    }
    /// Unix listener `j`'s address: its path, or `@sockpop-<tag>-<j>`.
    fn unix_addr(&self, j: usize) -> Res<UnixAddr> {
        // SAFETY: sockaddr_un is plain integers, so all-zero is a valid value.
        let mut a: libc::sockaddr_un = unsafe { zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let name: Vec<u8> = match self.unix_path(j) {
            Some(p) => p.into_bytes(),
            None => std::iter::once(0).chain(format!("sockpop-{}-{j}", self.tag).into_bytes()).collect(),
        };
        if name.len() > a.sun_path.len() {
            return Err(format!("unix socket name of {} bytes does not fit sun_path", name.len()));
        }
        for (d, b) in a.sun_path.iter_mut().zip(&name) {
            *d = *b as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + name.len()) as libc::socklen_t;
        Ok(UnixAddr { addr: a, len })
    }

    fn compute_loads(&mut self) {
        let p = self.procs();
        let mut load = vec![HOLDER_FD_OVERHEAD; p];
        let mut recv = vec![0usize; p];
        for j in 0..self.nlisten {
            load[self.owner(j)] += 1;
        }
        for k in 0..self.o.udp {
            load[self.udp_owner(k)] += 1;
        }
        if self.o.shared_listener {
            load[0] += 1;
            if p > 1 {
                load[1] += 1;
            }
        }
        for k in 0..self.o.established {
            let c = self.creator(k);
            for d in [self.server_dest(k), self.client_dest(k)] {
                load[d] += 1;
                if d != c {
                    recv[d] += 1;
                }
            }
        }
        for k in 0..self.o.close_wait {
            let d = self.close_wait_dest(k);
            load[d] += 1;
            if d != self.creator(k) {
                recv[d] += 1;
            }
        }
        if self.o.established + self.o.close_wait + self.o.time_wait > 0 {
            for l in load.iter_mut().take(self.creators()) {
                *l += 2 * self.batch + OUTBOX_FLUSH_AT + SCM_MAX_FDS;
            }
        }
        for j in 0..self.o.unix_listeners {
            load[self.unix_owner(j)] += 1;
        }
        for k in 0..self.o.unix_pairs {
            load[self.unix_owner(k % self.o.unix_listeners)] += 1;
            let d = self.unix_client_dest(k);
            load[d] += 1;
            if d != self.unix_owner(k % self.o.unix_listeners) {
                recv[d] += 1;
            }
        }
        if self.o.unix_pairs > 0 {
            for l in load.iter_mut().take(self.procs().min(self.o.unix_listeners)) {
                *l += self.batch + OUTBOX_FLUSH_AT + SCM_MAX_FDS;
            }
        }
        self.loads = load;
        self.recv_expected = recv;
    }

    fn max_load(&self) -> usize {
        self.loads.iter().copied().max().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// Small syscall helpers

fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cvt(r: c_int) -> io::Result<c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Closes an fd this process owns; callers never use `fd` again.
fn close(fd: RawFd) {
    // SAFETY: close(2) takes no pointers. `fd` is one of sockpop's own raw fds (see
    // "Unsafe code" at the top), not one held by an owning Rust type, and callers drop
    // it from their bookkeeping, so no live handle is left pointing at a reused number.
    unsafe {
        libc::close(fd);
    }
}

fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, val: c_int) -> io::Result<()> {
    // SAFETY: optval points to `val`, a live c_int on this stack frame, and optlen is
    // exactly its size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(fd, level, name, &val as *const c_int as *const c_void, size_of::<c_int>() as libc::socklen_t)
    };
    cvt(r).map(|_| ())
}

/// SO_LINGER {on, 0}: close() sends RST, so tearing down leaves no TIME_WAIT behind.
fn set_linger0(fd: RawFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: optval points to `l`, a live `struct linger`, and optlen is its size; the
    // kernel only reads it. A failure leaves the default linger, as before.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const c_void,
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn sockaddr(v6: bool, port: u16) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain integers, so all-zero is a valid value; it is
    // larger than and at least as aligned as sockaddr_in and sockaddr_in6 (that is its
    // purpose), so writing either one's fields through a cast pointer stays in bounds.
    // The returned length is the size of the struct actually filled in.
    unsafe {
        let mut ss: libc::sockaddr_storage = zeroed();
        if v6 {
            let sa = &mut ss as *mut _ as *mut libc::sockaddr_in6;
            (*sa).sin6_family = libc::AF_INET6 as libc::sa_family_t;
            (*sa).sin6_port = port.to_be();
            (*sa).sin6_addr.s6_addr[15] = 1;
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        } else {
            let sa = &mut ss as *mut _ as *mut libc::sockaddr_in;
            (*sa).sin_family = libc::AF_INET as libc::sa_family_t;
            (*sa).sin_port = port.to_be();
            (*sa).sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
    }
}

fn port_of(ss: &libc::sockaddr_storage) -> u16 {
    // SAFETY: the cast is chosen by ss_family, so the bytes were written by the kernel (or
    // by `sockaddr`) as that struct; sockaddr_storage is large and aligned enough for
    // sockaddr_in and sockaddr_in6, and reading their integer fields is always defined.
    unsafe {
        match ss.ss_family as c_int {
            libc::AF_INET => u16::from_be((*(ss as *const _ as *const libc::sockaddr_in)).sin_port),
            libc::AF_INET6 => u16::from_be((*(ss as *const _ as *const libc::sockaddr_in6)).sin6_port),
            _ => 0,
        }
    }
}

fn family(v6: bool) -> c_int {
    if v6 { libc::AF_INET6 } else { libc::AF_INET }
}

fn addr_text(v6: bool, port: u16) -> String {
    if v6 { format!("[::1]:{port}") } else { format!("127.0.0.1:{port}") }
}

fn new_socket(v6: bool, ty: c_int) -> io::Result<RawFd> {
    // SAFETY: socket(2) takes no pointers; the new fd is owned by the caller.
    cvt(unsafe { libc::socket(family(v6), ty | libc::SOCK_CLOEXEC, 0) })
}

fn bind_to(fd: RawFd, v6: bool, port: u16) -> io::Result<()> {
    if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (ss, len) = sockaddr(v6, port);
    // SAFETY: addr points to `ss`, which lives across the call, and `len` (from
    // `sockaddr`) does not exceed its size; bind(2) only reads it.
    cvt(unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) }).map(|_| ())
}

fn tcp_listen(v6: bool, port: u16) -> Res<RawFd> {
    let ctx = |e: io::Error| format!("TCP listener on {}: {e}", addr_text(v6, port));
    let fd = new_socket(v6, libc::SOCK_STREAM).map_err(ctx)?;
    let r = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .and_then(|_| bind_to(fd, v6, port))
        // SAFETY: listen(2) takes no pointers; `fd` is the socket created just above.
        .and_then(|_| cvt(unsafe { libc::listen(fd, LISTEN_BACKLOG) }).map(|_| ()));
    match r {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(ctx(e))
        }
    }
}

fn udp_bind(v6: bool, port: u16) -> Res<RawFd> {
    let ctx = |e: io::Error| format!("UDP socket on {}: {e}", addr_text(v6, port));
    let fd = new_socket(v6, libc::SOCK_DGRAM).map_err(ctx)?;
    match bind_to(fd, v6, port) {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(ctx(e))
        }
    }
}

/// A unix stream listener at `addr`; a stale file at `path` (an earlier run killed
/// before its cleanup) is removed first.
fn unix_listen(addr: &UnixAddr, path: Option<&str>) -> Res<RawFd> {
    if let Some(p) = path {
        let _ = std::fs::remove_file(p);
    }
    let what = path.map_or_else(|| "an abstract name".to_string(), str::to_string);
    // SAFETY: socket(2) takes no pointers; the new fd is owned by the caller.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("unix socket: {e}"))?;
    // SAFETY: addr points to `addr.addr`, a live sockaddr_un, and `addr.len` does not
    // exceed its size; bind(2) only reads it. listen(2) takes no pointers.
    let r = unsafe {
        cvt(libc::bind(fd, &addr.addr as *const _ as *const libc::sockaddr, addr.len))
            .and_then(|_| cvt(libc::listen(fd, LISTEN_BACKLOG)))
    };
    match r {
        Ok(_) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(format!("unix listener on {what}: {e}"))
        }
    }
}

/// Blocking loopback connect, from `src_port` if given (else an ephemeral port); returns
/// the fd and its local port.
fn tcp_connect(v6: bool, port: u16, src_port: Option<u16>) -> Res<(RawFd, u16)> {
    let ctx = |e: io::Error| format!("connect to {}: {e}", addr_text(v6, port));
    let fd = new_socket(v6, libc::SOCK_STREAM).map_err(ctx)?;
    if let Some(sp) = src_port {
        let r = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).and_then(|_| bind_to(fd, v6, sp));
        if let Err(e) = r {
            close(fd);
            return Err(format!("binding a client to {}: {e}", addr_text(v6, sp)));
        }
    }
    let (ss, len) = sockaddr(v6, port);
    // SAFETY: addr points to `ss`, live across the call, and `len` does not exceed its
    // size; connect(2) only reads it.
    let r = unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            close(fd);
            return Err(ctx(e));
        }
        // Interrupted: the handshake goes on; wait for it and fetch the result.
        let mut err: c_int = 0;
        if let Err(e) = wait_fd(fd, libc::POLLOUT, IO_TIMEOUT_MS) {
            close(fd);
            return Err(ctx(e));
        }
        let mut l = size_of::<c_int>() as libc::socklen_t;
        // SAFETY: optval points to `err`, a live c_int, and optlen to `l`, which holds its
        // size, so the kernel writes at most one c_int and updates `l`.
        unsafe {
            libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut c_int as *mut c_void, &mut l);
        }
        if err != 0 {
            close(fd);
            return Err(ctx(io::Error::from_raw_os_error(err)));
        }
    }
    // SAFETY: sockaddr_storage is plain integers; all-zero is a valid value.
    let mut local: libc::sockaddr_storage = unsafe { zeroed() };
    let mut l = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: addr points to `local` and addrlen to `l`, which holds its full size, so
    // the kernel writes at most that many bytes (truncating if ever needed).
    let r = unsafe { libc::getsockname(fd, &mut local as *mut _ as *mut libc::sockaddr, &mut l) };
    if r != 0 {
        let e = io::Error::last_os_error();
        close(fd);
        return Err(ctx(e));
    }
    Ok((fd, port_of(&local)))
}

/// Waits until `fd` reports one of `events` (error/hangup also end the wait).
fn wait_fd(fd: RawFd, events: libc::c_short, timeout_ms: c_int) -> io::Result<libc::c_short> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms as u64);
    loop {
        let mut p = libc::pollfd { fd, events, revents: 0 };
        let left = deadline.saturating_duration_since(Instant::now()).as_millis() as c_int;
        // SAFETY: fds points to `p`, one live pollfd, and nfds is 1; the kernel writes
        // only its `revents`.
        let r = unsafe { libc::poll(&mut p, 1, left) };
        if r > 0 {
            return Ok(p.revents);
        }
        if r == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        if errno() != libc::EINTR {
            return Err(io::Error::last_os_error());
        }
    }
}

/// Writes a whole line to a pipe (lines < PIPE_BUF are atomic, so holders can share one).
fn write_line(fd: RawFd, line: &str) {
    let mut s: String = line.chars().take(3000).collect();
    s.push('\n');
    let mut b = s.as_bytes();
    while !b.is_empty() {
        // SAFETY: buf/count are the pointer and length of the live slice `b`; write(2)
        // only reads from it.
        let r = unsafe { libc::write(fd, b.as_ptr() as *const c_void, b.len()) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return;
        }
        b = &b[r as usize..];
    }
}

fn say(line: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------
// fd hand-over between holders: every holder has an inbox (AF_UNIX datagram socket with an
// autobound abstract name, created by the parent before forking so all exist up front).

#[derive(Clone, Copy)]
struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

fn new_inbox() -> io::Result<(RawFd, UnixAddr)> {
    // SAFETY: socket(2) takes no pointers; the new fd is returned to the caller.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: sockaddr_un is plain integers, so all-zero is valid. bind(2) reads only the
    // first size_of::<sa_family_t>() bytes of `a`; getsockname(2) writes at most `len`
    // = size_of::<sockaddr_un>() bytes into `a` and stores the real length in `len`.
    // `fd` is the socket just created; on error it is closed once and not returned.
    unsafe {
        let mut a: libc::sockaddr_un = zeroed();
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        // Binding with only the family field autobinds a unique abstract address.
        let r =
            libc::bind(fd, &a as *const _ as *const libc::sockaddr, size_of::<libc::sa_family_t>() as libc::socklen_t);
        if r != 0 {
            let e = io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
        let mut len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::getsockname(fd, &mut a as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            let e = io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
        Ok((fd, UnixAddr { addr: a, len }))
    }
}

fn send_fds(sender: RawFd, to: &UnixAddr, fds: &[RawFd]) -> Res<()> {
    let n = fds.len();
    debug_assert!(n > 0 && n <= SCM_MAX_FDS);
    let mut payload = (n as u32).to_ne_bytes();
    let mut iov = libc::iovec { iov_base: payload.as_mut_ptr() as *mut c_void, iov_len: 4 };
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    let space = unsafe { libc::CMSG_SPACE(size_of_val(fds) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let deadline = Instant::now() + Duration::from_secs(120);
    // SAFETY: msghdr is plain integers and pointers, so all-zero (null pointers) is valid.
    // Every pointer stored in it outlives the sendmsg loop below: msg_name -> `to.addr`
    // (borrowed for the call; the kernel only reads it, so the *mut cast is never written
    // through) with msg_namelen = the length getsockname reported for it; msg_iov -> `iov`
    // -> `payload` (4 bytes, iov_len 4); msg_control -> `cbuf`, a Vec<u64> of at least
    // `space` bytes, 8-aligned as cmsghdr requires. Because msg_controllen = CMSG_SPACE(n
    // fds) >= size_of::<cmsghdr>(), CMSG_FIRSTHDR returns a non-null pointer to the start
    // of `cbuf`, and the header plus CMSG_LEN(n fds) bytes of data fit inside `space`, so
    // the n unaligned c_int writes stay in bounds. The fds are open fds of this process;
    // sendmsg duplicates them for the receiver and does not take them from us.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_name = &to.addr as *const _ as *mut c_void;
        msg.msg_namelen = to.len;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
        msg.msg_controllen = space as _;
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(size_of_val(fds) as u32) as _;
        let data = libc::CMSG_DATA(cm) as *mut c_int;
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(*fd);
        }
        loop {
            if libc::sendmsg(sender, &msg, 0) >= 0 {
                return Ok(());
            }
            let e = errno();
            match e {
                libc::EINTR => continue,
                // Receiver queue full / too many fds in flight for this user: wait a bit.
                libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM | libc::ETOOMANYREFS if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                _ => {
                    return Err(format!("handing {n} fds to another holder: {}", io::Error::from_raw_os_error(e)));
                }
            }
        }
    }
}

fn receive_fds(inbox: RawFd, expected: usize) -> Res<Vec<RawFd>> {
    let mut got = Vec::with_capacity(expected);
    // SAFETY: CMSG_SPACE is arithmetic on its argument only.
    let space = unsafe { libc::CMSG_SPACE((SCM_MAX_FDS * size_of::<c_int>()) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    while got.len() < expected {
        let mut payload = [0u8; 16];
        let mut iov = libc::iovec { iov_base: payload.as_mut_ptr() as *mut c_void, iov_len: payload.len() };
        // SAFETY: msghdr is plain integers and pointers, so all-zero is valid. msg_iov ->
        // `iov` -> `payload` (16 bytes, iov_len 16) and msg_control -> `cbuf` (>= `space`
        // bytes, 8-aligned for cmsghdr, msg_controllen = space) live across the call, so
        // recvmsg writes only inside them and sets msg_controllen to what it wrote.
        // CMSG_FIRSTHDR/CMSG_NXTHDR only return headers that lie inside that written
        // length (null otherwise). For an SCM_RIGHTS header the kernel wrote cmsg_len
        // bytes inside the buffer (a truncated control message is refused before the
        // walk), so its data holds (cmsg_len - CMSG_LEN(0)) / size_of::<c_int>() fds,
        // read unaligned, in bounds.
        // Those fds were installed in this process by recvmsg and are now ours to hold.
        unsafe {
            let mut msg: libc::msghdr = zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
            msg.msg_controllen = space as _;
            let r = libc::recvmsg(inbox, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if r < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return Err(format!("receiving fds: {}", io::Error::last_os_error()));
            }
            if msg.msg_flags & libc::MSG_CTRUNC != 0 {
                return Err("receiving fds: control message truncated".into());
            }
            let mut cm = libc::CMSG_FIRSTHDR(&msg);
            while !cm.is_null() {
                if (*cm).cmsg_level == libc::SOL_SOCKET && (*cm).cmsg_type == libc::SCM_RIGHTS {
                    let bytes = (*cm).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let data = libc::CMSG_DATA(cm) as *const c_int;
                    for i in 0..bytes / size_of::<c_int>() {
                        got.push(data.add(i).read_unaligned());
                    }
                }
                cm = libc::CMSG_NXTHDR(&msg, cm);
            }
        }
    }
    Ok(got)
}

struct Outbox<'a> {
    sender: RawFd,
    addrs: &'a [UnixAddr],
    bufs: Vec<Vec<RawFd>>,
    pending: usize,
}

impl Outbox<'_> {
    fn push(&mut self, dest: usize, fd: RawFd) -> Res<()> {
        self.bufs[dest].push(fd);
        self.pending += 1;
        if self.bufs[dest].len() >= SCM_MAX_FDS {
            self.flush(dest)?;
        }
        if self.pending >= OUTBOX_FLUSH_AT {
            self.flush_all()?;
        }
        Ok(())
    }

    fn flush(&mut self, dest: usize) -> Res<()> {
        let fds = std::mem::take(&mut self.bufs[dest]);
        if fds.is_empty() {
            return Ok(());
        }
        send_fds(self.sender, &self.addrs[dest], &fds)?;
        self.pending -= fds.len();
        for fd in fds {
            close(fd);
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Res<()> {
        for d in 0..self.bufs.len() {
            self.flush(d)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Holder process

struct OwnListener {
    j: usize,
    port: u16,
    fd: RawFd,
}

struct Holder<'a> {
    me: usize,
    plan: &'a Plan,
    listeners: Vec<OwnListener>,
    /// Every socket this process keeps (never read or written again).
    held: Vec<RawFd>,
    out: Outbox<'a>,
    tw_rr: usize,
}

impl Holder<'_> {
    fn v6(&self) -> bool {
        self.plan.o.v6
    }

    fn route(&mut self, fd: RawFd, dest: usize) -> Res<()> {
        if dest == self.me {
            self.held.push(fd);
            Ok(())
        } else {
            self.out.push(dest, fd)
        }
    }

    fn build(&mut self) -> Res<()> {
        let plan = self.plan;
        let p = plan.procs();
        for j in (self.me..plan.nlisten).step_by(p) {
            let port = plan.listener_port(j);
            let fd = tcp_listen(self.v6(), port)?;
            self.listeners.push(OwnListener { j, port, fd });
        }
        for k in 0..plan.o.udp {
            if plan.udp_owner(k) == self.me {
                let fd = udp_bind(self.v6(), plan.udp_port(k))?;
                self.held.push(fd);
            }
        }
        let nl = plan.nlisten;
        for li in 0..self.listeners.len() {
            let j = self.listeners[li].j;
            let ks: Vec<usize> = (j..plan.o.established).step_by(nl).collect();
            for chunk in ks.chunks(plan.batch) {
                self.established_batch(li, chunk)?;
            }
            let ks: Vec<usize> = (j..plan.o.close_wait).step_by(nl).collect();
            for chunk in ks.chunks(plan.batch) {
                self.close_wait_batch(li, chunk)?;
            }
            let tw = (j..plan.o.time_wait).step_by(nl).count();
            self.time_wait_on(li, tw)?;
        }
        let un = plan.o.unix_listeners;
        for j in (self.me..un).step_by(p) {
            let addr = plan.unix_addr(j)?;
            let fd = unix_listen(&addr, plan.unix_path(j).as_deref())?;
            let ks: Vec<usize> = (j..plan.o.unix_pairs).step_by(un).collect();
            for chunk in ks.chunks(plan.batch) {
                self.unix_batch(fd, &addr, chunk)?;
            }
            self.held.push(fd);
        }
        self.out.flush_all()
    }

    /// Connects a client per pair in `ks` to unix listener `lfd` (at `addr`), accepts
    /// them, and routes both ends (the accepted one stays here).
    fn unix_batch(&mut self, lfd: RawFd, addr: &UnixAddr, ks: &[usize]) -> Res<()> {
        for &k in ks {
            // SAFETY: socket(2) takes no pointers; the new fd is owned here.
            let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })
                .map_err(|e| format!("unix socket: {e}"))?;
            loop {
                // SAFETY: addr points to `addr.addr`, a live sockaddr_un, and `addr.len`
                // does not exceed its size; connect(2) only reads it. The batch is no
                // larger than the backlog, so the connect is queued at once.
                let r = unsafe { libc::connect(fd, &addr.addr as *const _ as *const libc::sockaddr, addr.len) };
                if r == 0 {
                    break;
                }
                if errno() != libc::EINTR {
                    let e = io::Error::last_os_error();
                    close(fd);
                    return Err(format!("unix connect: {e}"));
                }
            }
            self.route(fd, self.plan.unix_client_dest(k))?;
        }
        for _ in ks {
            wait_fd(lfd, libc::POLLIN, IO_TIMEOUT_MS).map_err(|e| format!("unix accept: {e}"))?;
            // SAFETY: null address pointers are allowed by accept4(2); the accepted fd is
            // ours and kept until exit.
            let fd = unsafe { libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
            if fd < 0 {
                return Err(format!("unix accept: {}", io::Error::last_os_error()));
            }
            self.held.push(fd);
        }
        Ok(())
    }

    /// Connects `n` clients to own listener `li` (from `src_ports[i]` when given) and
    /// accepts them; returns (client, server) pairs matched by the client's local port.
    /// Foreign connections found in the accept queue are kept open (held) and ignored.
    fn make_pairs(&mut self, li: usize, n: usize, src_ports: Option<&[u16]>) -> Res<Vec<(RawFd, RawFd)>> {
        let (lfd, port) = (self.listeners[li].fd, self.listeners[li].port);
        let v6 = self.v6();
        let mut clients = Vec::with_capacity(n);
        let mut by_port = std::collections::HashMap::with_capacity(n);
        for i in 0..n {
            let (fd, lport) = tcp_connect(v6, port, src_ports.map(|p| p[i]))?;
            clients.push(fd);
            by_port.insert(lport, i);
        }
        let mut servers = vec![-1; n];
        let mut matched = 0;
        while matched < n {
            wait_fd(lfd, libc::POLLIN, IO_TIMEOUT_MS).map_err(|e| format!("accept on {}: {e}", addr_text(v6, port)))?;
            // SAFETY: sockaddr_storage is plain integers; all-zero is a valid value.
            let mut peer: libc::sockaddr_storage = unsafe { zeroed() };
            let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: addr points to `peer` and addrlen to `len`, which holds its full
            // size, so the kernel writes at most that many bytes; the accepted fd is ours.
            let fd =
                unsafe { libc::accept4(lfd, &mut peer as *mut _ as *mut libc::sockaddr, &mut len, libc::SOCK_CLOEXEC) };
            if fd < 0 {
                let e = errno();
                if e == libc::EINTR || e == libc::EAGAIN || e == libc::ECONNABORTED {
                    continue;
                }
                return Err(format!("accept on {}: {}", addr_text(v6, port), io::Error::from_raw_os_error(e)));
            }
            match by_port.remove(&port_of(&peer)) {
                Some(i) => {
                    servers[i] = fd;
                    matched += 1;
                }
                None => self.held.push(fd),
            }
        }
        Ok(clients.into_iter().zip(servers).collect())
    }

    fn established_batch(&mut self, li: usize, ks: &[usize]) -> Res<()> {
        let pairs = self.make_pairs(li, ks.len(), None)?;
        for (&k, (c, s)) in ks.iter().zip(pairs) {
            set_linger0(c);
            set_linger0(s);
            self.route(s, self.plan.server_dest(k))?;
            self.route(c, self.plan.client_dest(k))?;
        }
        Ok(())
    }

    fn close_wait_batch(&mut self, li: usize, ks: &[usize]) -> Res<()> {
        // The closed peer's port must never be picked again by connect() while the
        // CLOSE_WAIT end lives (a new SYN on that 4-tuple would hit and reset it once the
        // peer's FIN_WAIT2 remnant expires), so it comes from a fixed port outside the
        // ephemeral range.
        let ports: Vec<u16> = ks.iter().map(|&k| self.plan.close_wait_src_port(k)).collect();
        let pairs = self.make_pairs(li, ks.len(), Some(&ports))?;
        for &(c, _) in &pairs {
            close(c);
        }
        for (&k, (_, s)) in ks.iter().zip(pairs) {
            wait_fd(s, libc::POLLRDHUP | libc::POLLIN, IO_TIMEOUT_MS)
                .map_err(|e| format!("waiting for the peer's FIN (close-wait): {e}"))?;
            set_linger0(s);
            self.route(s, self.plan.close_wait_dest(k))?;
        }
        Ok(())
    }

    /// Creates `n` TIME_WAIT sockets through own listener `li`.
    fn time_wait_on(&mut self, li: usize, n: usize) -> Res<()> {
        let mut left = n;
        while left > 0 {
            let b = left.min(self.plan.batch);
            let pairs = self.make_pairs(li, b, None)?;
            for &(c, _) in &pairs {
                close(c); // active close: this end ends up in TIME_WAIT
            }
            for &(_, s) in &pairs {
                // Read the EOF, so the server's close is a passive one (LAST_ACK).
                let mut buf = [0u8; 64];
                loop {
                    wait_fd(s, libc::POLLIN | libc::POLLRDHUP, IO_TIMEOUT_MS)
                        .map_err(|e| format!("waiting for the peer's FIN (time-wait): {e}"))?;
                    // SAFETY: buf/count are the pointer and length of the live array `buf`.
                    let r = unsafe { libc::read(s, buf.as_mut_ptr() as *mut c_void, buf.len()) };
                    if r == 0 || (r < 0 && errno() != libc::EINTR && errno() != libc::EAGAIN) {
                        break;
                    }
                }
                close(s);
            }
            left -= b;
        }
        Ok(())
    }

    /// Top-up request from the parent: `n` more TIME_WAITs over own listeners.
    fn top_up_time_wait(&mut self, n: usize) -> Res<()> {
        let nl = self.listeners.len();
        if nl == 0 {
            return Err("no listener to make TIME_WAIT sockets with".into());
        }
        let mut counts = vec![0usize; nl];
        for i in 0..n {
            counts[(self.tw_rr + i) % nl] += 1;
        }
        self.tw_rr = (self.tw_rr + n) % nl;
        for (li, c) in counts.into_iter().enumerate() {
            if c > 0 {
                self.time_wait_on(li, c)?;
            }
        }
        Ok(())
    }

    fn hold(&mut self, cmd_r: RawFd, status_w: RawFd) -> ! {
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let mut tmp = [0u8; 512];
            // SAFETY: buf/count are the pointer and length of the live array `tmp`.
            let r = unsafe { libc::read(cmd_r, tmp.as_mut_ptr() as *mut c_void, tmp.len()) };
            if r == 0 {
                // SAFETY: _exit(2) takes no pointers and does not return. It is used rather
                // than process::exit so this forked holder runs no atexit handlers and
                // flushes no stdio state copied from the parent.
                unsafe { libc::_exit(0) };
            }
            if r < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                // SAFETY: as for _exit(0) above.
                unsafe { libc::_exit(1) };
            }
            buf.extend_from_slice(&tmp[..r as usize]);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(n) = line.trim().strip_prefix("tw ").and_then(|v| v.parse().ok()) {
                    let res = self.top_up_time_wait(n).and_then(|_| self.out.flush_all());
                    match res {
                        Ok(()) => write_line(status_w, &format!("twdone {} {n}", self.me)),
                        Err(e) => write_line(status_w, &format!("twdone {} 0 {e}", self.me)),
                    }
                }
            }
        }
    }
}

struct ChildCtx<'a> {
    me: usize,
    parent_pid: Pid,
    old_mask: &'a libc::sigset_t,
    status_r: RawFd,
    status_w: RawFd,
    /// Parent-side fds inherited through fork that the child must drop.
    parent_fds: &'a [RawFd],
    cmd_r: RawFd,
    cmd_w: RawFd,
    inboxes: &'a [RawFd],
    addrs: &'a [UnixAddr],
    shared: Option<RawFd>,
}

fn child_main(plan: &Plan, cx: ChildCtx) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if rustix::process::getppid() != Some(cx.parent_pid) {
        // The parent died before PR_SET_PDEATHSIG was in place.
        // SAFETY: _exit(2) takes no pointers and does not return; no atexit handlers or
        // stdio flushes of state copied from the parent run in this forked child.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: `cx.old_mask` points to the sigset_t the parent filled in with
    // sigprocmask(2) before forking (this child has its own copy of that memory) and the
    // old-set pointer is null, which sigprocmask allows. The child is single-threaded
    // here (see the fork in `parent`), so setting the process mask is well defined.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, cx.old_mask, std::ptr::null_mut());
    }
    let me = cx.me;
    let status_w = cx.status_w;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| holder_run(plan, &cx)));
    let msg = match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => "holder returned unexpectedly".to_string(),
        Err(_) => "holder panicked".to_string(),
    };
    write_line(status_w, &format!("err {me} {msg}"));
    // SAFETY: _exit(2) takes no pointers and does not return (see above for why not
    // process::exit in a forked child).
    unsafe { libc::_exit(1) }
}

fn holder_run(plan: &Plan, cx: &ChildCtx) -> Res<()> {
    close(cx.status_r);
    close(cx.cmd_w);
    for &fd in cx.parent_fds {
        close(fd);
    }
    for (i, &fd) in cx.inboxes.iter().enumerate() {
        if i != cx.me {
            close(fd);
        }
    }
    if let Some(fd) = cx.shared
        && cx.me >= 2
    {
        close(fd);
    }
    // O_RDWR | O_CLOEXEC, as std opens every file; dup2 leaves fds 0 and 1 inheritable.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    raise_nofile();
    // SAFETY: socket(2) takes no pointers; the new fd is this holder's sender.
    let sender = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("unix socket: {e}"))?;
    let inbox = cx.inboxes[cx.me];
    let expected = plan.recv_expected[cx.me];
    let receiver = (expected > 0).then(|| std::thread::spawn(move || receive_fds(inbox, expected)));
    let mut h = Holder {
        me: cx.me,
        plan,
        listeners: Vec::new(),
        held: Vec::new(),
        out: Outbox { sender, addrs: cx.addrs, bufs: vec![Vec::new(); plan.procs()], pending: 0 },
        tw_rr: 0,
    };
    h.build()?;
    if let Some(t) = receiver {
        let fds = t.join().map_err(|_| "fd receiver thread panicked".to_string())??;
        h.held.extend(fds);
    }
    write_line(cx.status_w, &format!("ok {}", cx.me));
    h.hold(cx.cmd_r, cx.status_w)
}

// ---------------------------------------------------------------------------------------
// TIME_WAIT counting through NETLINK_SOCK_DIAG

#[repr(C)]
struct DiagReq {
    nlh: libc::nlmsghdr,
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: [u32; 12],
}

/// The "tw" field of this namespace's /proc/net/sockstat (TIME_WAIT and FIN_WAIT2
/// remnants of both families).
fn sockstat_tw() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == "tw" {
            return it.next()?.parse().ok();
        }
    }
    None
}

fn count_time_wait(v6: bool) -> io::Result<usize> {
    // SAFETY: socket(2) takes no pointers; the fd is closed below, once.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) })?;
    let res = count_time_wait_on(fd, v6);
    close(fd);
    res
}

fn count_time_wait_on(fd: RawFd, v6: bool) -> io::Result<usize> {
    // SAFETY: DiagReq is repr(C) and made only of integers, so all-zero is a valid value.
    let mut req: DiagReq = unsafe { zeroed() };
    req.nlh.nlmsg_len = size_of::<DiagReq>() as u32;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req.nlh.nlmsg_seq = 1;
    req.family = family(v6) as u8;
    req.protocol = libc::IPPROTO_TCP as u8;
    req.states = 1 << TCP_TIME_WAIT;
    // SAFETY: sockaddr_nl is plain integers; all-zero (pid 0 = the kernel) is valid.
    let mut sa: libc::sockaddr_nl = unsafe { zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: buf/len are `req` and its full size (16 + 4 + 4 + 48 bytes, no padding, so
    // every byte sent is initialised); dest_addr/addrlen are `sa` and its size. Both live
    // across the call and are only read.
    let r = unsafe {
        libc::sendto(
            fd,
            &req as *const DiagReq as *const c_void,
            size_of::<DiagReq>(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut count = 0;
    loop {
        // SAFETY: buf/len are the pointer and length of the live Vec `buf`.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        let mut off = 0usize;
        let n = n as usize;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            if len < 16 {
                return Err(io::Error::other("bad netlink message"));
            }
            match ty as c_int {
                libc::NLMSG_DONE => return Ok(count),
                libc::NLMSG_ERROR => {
                    let e = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                    return Err(io::Error::from_raw_os_error(-e));
                }
                _ if ty == SOCK_DIAG_BY_FAMILY => count += 1,
                _ => {}
            }
            off += (len + 3) & !3;
        }
        if n == 0 {
            return Ok(count);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parent

struct Kids {
    pids: Vec<Pid>,
    alive: Vec<bool>,
}

impl Kids {
    fn kill_all(&mut self) {
        for (i, &pid) in self.pids.iter().enumerate() {
            if self.alive[i] {
                // Not reaped yet, so the pid is still our child's.
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
        for (i, &pid) in self.pids.iter().enumerate() {
            if self.alive[i] {
                while let Err(Errno::INTR) = waitpid(Some(pid), WaitOptions::empty()) {}
                self.alive[i] = false;
            }
        }
    }

    /// Reaps exited holders; returns a description of the first one that died.
    fn reap(&mut self) -> Option<String> {
        let mut died = None;
        for (i, &pid) in self.pids.iter().enumerate() {
            if !self.alive[i] {
                continue;
            }
            if let Ok(Some((p, st))) = waitpid(Some(pid), WaitOptions::NOHANG)
                && p == pid
            {
                let st = st.as_raw();
                self.alive[i] = false;
                let how = if libc::WIFSIGNALED(st) {
                    format!("killed by signal {}", libc::WTERMSIG(st))
                } else {
                    format!("exited with status {}", libc::WEXITSTATUS(st))
                };
                died.get_or_insert(format!("holder {i} (pid {pid}) {how}"));
            }
        }
        died
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("sockpop: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::process::exit(parent(opts));
}

fn parent(o: Opts) -> i32 {
    let nofile = raise_nofile();
    let sys = SysInfo::read();
    let plan = match Plan::new(&o, &sys, nofile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sockpop: {e}");
            return 1;
        }
    };
    if plan.balanced {
        eprintln!(
            "sockpop: note: pairs spread evenly over holders (accepted ends are not all in \
             their listener's process) to keep every holder under {HOLDER_FD_LIMIT} fds"
        );
    }
    if let Some(max_tw) = sys.max_tw_buckets
        && (o.time_wait + o.close_wait) * 10 > max_tw * 9
    {
        eprintln!("sockpop: warning: close to net.ipv4.tcp_max_tw_buckets = {max_tw}");
    }
    let p = plan.procs();

    // Block the signals we handle through a signalfd (the holders restore the old mask).
    // SAFETY: sigset_t is a plain bit array; all-zero is a valid (empty) value, and
    // sigemptyset below initialises `sigs` the documented way anyway.
    let mut sigs: libc::sigset_t = unsafe { zeroed() };
    // SAFETY: as for `sigs`; sigprocmask overwrites it with the current mask.
    let mut old_mask: libc::sigset_t = unsafe { zeroed() };
    // SAFETY: every pointer is to one of the two live local sigset_t values above and the
    // signal numbers are valid. The process is still single-threaded (nothing has spawned
    // a thread yet), so sigprocmask(2) sets the mask of the one thread there is.
    unsafe {
        libc::sigemptyset(&mut sigs);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut sigs, s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &sigs, &mut old_mask);
    }

    let mut status = [0 as c_int; 2];
    // SAFETY: pipefd points to `status`, a live array of the two c_int pipe2(2) writes.
    if unsafe { libc::pipe2(status.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("sockpop: pipe: {}", io::Error::last_os_error());
        return 1;
    }
    let (status_r, status_w) = (status[0], status[1]);
    let mut inboxes = Vec::with_capacity(p);
    let mut addrs = Vec::with_capacity(p);
    for _ in 0..p {
        match new_inbox() {
            Ok((fd, a)) => {
                inboxes.push(fd);
                addrs.push(a);
            }
            Err(e) => {
                eprintln!("sockpop: unix socket: {e}");
                return 1;
            }
        }
    }
    let shared = if o.shared_listener {
        match tcp_listen(o.v6, (o.base_port - 1) as u16) {
            Ok(fd) => Some(fd),
            Err(e) => {
                eprintln!("sockpop: shared listener: {e}");
                return 1;
            }
        }
    } else {
        None
    };

    let parent_pid = rustix::process::getpid();
    let mut kids = Kids { pids: Vec::with_capacity(p), alive: Vec::with_capacity(p) };
    let mut cmd_w: Vec<RawFd> = Vec::with_capacity(p);
    for me in 0..p {
        let mut cmd = [0 as c_int; 2];
        // SAFETY: pipefd points to `cmd`, a live array of the two c_int pipe2(2) writes.
        if unsafe { libc::pipe2(cmd.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            eprintln!("sockpop: pipe: {}", io::Error::last_os_error());
            kids.kill_all();
            return 1;
        }
        // SAFETY: fork(2) takes no pointers. sockpop has only its main thread here (the one
        // thread it ever spawns is a holder's fd receiver, after the fork), so no lock
        // (allocator, stdio) can be held by a thread missing from the child, and the child
        // may allocate, print and spawn threads. The child runs `child_main`, which never
        // returns (-> !): it leaves through _exit, so it neither continues this loop nor
        // drops or closes the parent's state a second time.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            child_main(
                &plan,
                ChildCtx {
                    me,
                    parent_pid,
                    old_mask: &old_mask,
                    status_r,
                    status_w,
                    parent_fds: &cmd_w,
                    cmd_r: cmd[0],
                    cmd_w: cmd[1],
                    inboxes: &inboxes,
                    addrs: &addrs,
                    shared,
                },
            );
        }
        close(cmd[0]);
        if pid < 0 {
            eprintln!("sockpop: fork: {}", io::Error::last_os_error());
            close(cmd[1]);
            kids.kill_all();
            return 1;
        }
        // fork() returned > 0: a child pid.
        kids.pids.push(Pid::from_raw(pid).expect("fork returned a positive pid"));
        kids.alive.push(true);
        cmd_w.push(cmd[1]);
    }
    close(status_w);
    for fd in inboxes {
        close(fd);
    }
    if let Some(fd) = shared
        && p >= 2
    {
        close(fd);
    }
    for pid in &kids.pids {
        say(&format!("pid {pid}"));
    }

    let code = supervise(&o, &plan, &mut kids, &cmd_w, status_r, &sigs);
    kids.kill_all();
    // The unix listeners' files outlive their sockets: remove them.
    for j in 0..o.unix_listeners {
        if let Some(p) = plan.unix_path(j) {
            let _ = std::fs::remove_file(p);
        }
    }
    code
}

/// Prints the `err` lines holders left in the status pipe (called when one has died, so
/// its own explanation comes before the bare exit status).
fn report_holder_errors(status_r: RawFd, sbuf: &mut Vec<u8>, pids: &[Pid]) {
    loop {
        let mut p = libc::pollfd { fd: status_r, events: libc::POLLIN, revents: 0 };
        // SAFETY: fds points to `p`, one live pollfd, and nfds is 1.
        if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
            break;
        }
        let mut tmp = [0u8; 4096];
        // SAFETY: buf/count are the pointer and length of the live array `tmp`.
        let n = unsafe { libc::read(status_r, tmp.as_mut_ptr() as *mut c_void, tmp.len()) };
        if n <= 0 {
            break;
        }
        sbuf.extend_from_slice(&tmp[..n as usize]);
    }
    for line in String::from_utf8_lossy(sbuf).lines() {
        let mut it = line.splitn(3, ' ');
        if let (Some("err"), Some(who), Some(msg)) = (it.next(), it.next(), it.next()) {
            let pid = who.parse::<usize>().ok().and_then(|w| pids.get(w)).copied();
            let pid = Pid::as_raw(pid);
            eprintln!("sockpop: holder {who} (pid {pid}): {msg}");
        }
    }
    sbuf.clear();
}

fn supervise(o: &Opts, plan: &Plan, kids: &mut Kids, cmd_w: &[RawFd], status_r: RawFd, sigs: &libc::sigset_t) -> i32 {
    // SAFETY: mask points to `sigs`, a live, initialised sigset_t borrowed for the call;
    // fd -1 asks for a new signalfd, owned here until exit.
    let sfd = unsafe { libc::signalfd(-1, sigs, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if sfd < 0 {
        eprintln!("sockpop: signalfd: {}", io::Error::last_os_error());
        return 1;
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.hold_secs);
    let p = plan.procs();
    let mut ready = false;
    let mut oks = 0usize;
    let stdin_open = !o.ignore_stdin;
    let mut sbuf: Vec<u8> = Vec::new();
    let tw_target = o.time_wait;
    let mut tw_enabled = tw_target > 0 && plan.creators() > 0;
    let mut next_tick = Instant::now();
    let mut outstanding = 0usize;
    let mut outstanding_since = Instant::now();
    let mut tw_rr = 0usize;
    let mut tw_ref: Option<usize> = None;
    let mut last_exact = Instant::now();

    loop {
        let now = Instant::now();
        if now >= deadline {
            eprintln!("sockpop: --hold-secs {} elapsed, exiting", o.hold_secs);
            return 0;
        }
        let mut timeout = deadline - now;
        if ready && tw_enabled {
            timeout = timeout.min(next_tick.saturating_duration_since(now));
        }
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(3);
        pfds.push(libc::pollfd { fd: sfd, events: libc::POLLIN, revents: 0 });
        pfds.push(libc::pollfd { fd: status_r, events: libc::POLLIN, revents: 0 });
        if stdin_open {
            pfds.push(libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 });
        }
        let ms = timeout.as_millis().min(60_000) as c_int + 1;
        // SAFETY: fds/nfds are the pointer and length of the live Vec `pfds`; the kernel
        // writes only the `revents` fields.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if r < 0 && errno() != libc::EINTR {
            eprintln!("sockpop: poll: {}", io::Error::last_os_error());
            return 1;
        }
        for pf in pfds.iter().filter(|pf| pf.revents != 0) {
            if pf.fd == sfd {
                loop {
                    // SAFETY: signalfd_siginfo is plain integers; all-zero is a valid value.
                    let mut si: libc::signalfd_siginfo = unsafe { zeroed() };
                    // SAFETY: buf/count are `si` and its exact size, the unit a signalfd
                    // read returns; the kernel writes at most that many bytes.
                    let n = unsafe {
                        libc::read(sfd, &mut si as *mut _ as *mut c_void, size_of::<libc::signalfd_siginfo>())
                    };
                    if n <= 0 {
                        break;
                    }
                    if si.ssi_signo as c_int == libc::SIGCHLD {
                        if let Some(what) = kids.reap() {
                            report_holder_errors(status_r, &mut sbuf, &kids.pids);
                            eprintln!("sockpop: {what}; stopping");
                            return 1;
                        }
                    } else {
                        return 0;
                    }
                }
            } else if pf.fd == 0 {
                let mut tmp = [0u8; 4096];
                // Unbuffered read(2) of fd 0 (std's Stdin would buffer behind poll's back).
                match rustix::io::read(io::stdin(), &mut tmp) {
                    Ok(0) => return 0, // EOF on stdin
                    Err(e) if e != Errno::INTR && e != Errno::AGAIN => return 0,
                    _ => {}
                }
            } else if pf.fd == status_r {
                let mut tmp = [0u8; 4096];
                // SAFETY: buf/count are the pointer and length of the live array `tmp`.
                let n = unsafe { libc::read(status_r, tmp.as_mut_ptr() as *mut c_void, tmp.len()) };
                if n == 0 {
                    if let Some(what) = kids.reap() {
                        eprintln!("sockpop: {what}; stopping");
                    } else {
                        eprintln!("sockpop: all holders closed their status pipe; stopping");
                    }
                    return 1;
                }
                if n < 0 {
                    continue;
                }
                sbuf.extend_from_slice(&tmp[..n as usize]);
                while let Some(pos) = sbuf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = sbuf.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line).trim().to_string();
                    let mut it = line.splitn(3, ' ');
                    let (kind, who, rest) = (it.next(), it.next(), it.next());
                    let who: usize = who.and_then(|w| w.parse().ok()).unwrap_or(usize::MAX);
                    let pid = Pid::as_raw(kids.pids.get(who).copied());
                    match kind {
                        Some("ok") => {
                            oks += 1;
                            if oks == p && !ready {
                                ready = true;
                                eprintln!("sockpop: ready after {:.2} s", start.elapsed().as_secs_f64());
                                say("ready");
                                next_tick = Instant::now() + TW_TICK;
                            }
                        }
                        Some("err") => {
                            eprintln!("sockpop: holder {who} (pid {pid}): {}", rest.unwrap_or("failed"));
                            return 1;
                        }
                        Some("twdone") => {
                            outstanding = outstanding.saturating_sub(1);
                            if let Some(msg) = rest.and_then(|r| r.split_once(' ')).map(|x| x.1) {
                                eprintln!("sockpop: TIME_WAIT top-up in holder {who}: {msg}");
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if ready && tw_enabled && Instant::now() >= next_tick {
            next_tick = Instant::now() + TW_TICK;
            if outstanding > 0 && outstanding_since.elapsed() > Duration::from_secs(30) {
                eprintln!("sockpop: TIME_WAIT top-up is slow; sending more anyway");
                outstanding = 0;
            }
            // The exact count walks the whole TCP hash table (~40 ms of kernel time at
            // 130k sockets), so it only runs when /proc/net/sockstat's O(1) "tw" figure
            // (TIME_WAIT + FIN_WAIT2 remnants, both families) went down since the last
            // exact count, after a top-up, and every TW_FULL_CHECK as a safety net.
            let cheap = sockstat_tw();
            let due = match (cheap, tw_ref) {
                (Some(c), Some(r)) => c < r || last_exact.elapsed() >= TW_FULL_CHECK,
                _ => true,
            };
            if outstanding == 0 && due {
                last_exact = Instant::now();
                match count_time_wait(o.v6) {
                    Ok(live) if live >= tw_target => tw_ref = cheap,
                    Ok(live) => {
                        tw_ref = None; // verify once the top-up is done
                        let deficit = tw_target - live;
                        let h = plan.creators();
                        let (per, extra) = (deficit / h, deficit % h);
                        for i in 0..h {
                            let who = (tw_rr + i) % h;
                            let n = per + usize::from(i < extra);
                            if n > 0 {
                                write_line(cmd_w[who], &format!("tw {n}"));
                                outstanding += 1;
                            }
                        }
                        tw_rr = (tw_rr + extra) % h;
                        outstanding_since = Instant::now();
                    }
                    Err(e) => {
                        eprintln!(
                            "sockpop: cannot count TIME_WAIT sockets (sock_diag: {e}); \
                             TIME_WAIT will not be topped up"
                        );
                        tw_enabled = false;
                    }
                }
            }
        }
    }
}
