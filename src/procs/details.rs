//! Process details (name, user, command line, and for `who` parent, start
//! time, cwd, cgroup), read lazily and once per pid: the hot fields by hand
//! ([`RawInfo`]), the rest through the `procfs` crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use procfs::process::Process;

use crate::intmap::IntMap;

/// What `listen` and `conns` show about an owning process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub name: Arc<str>,
    /// Effective user name (or the number when it has no name; `?` when unreadable).
    pub user: Arc<str>,
    pub uid: Option<u32>,
    pub cmdline: Arc<str>,
    pub ppid: Option<u32>,
    /// Process start, in clock ticks since boot (`stat` field 22).
    pub start_ticks: Option<u64>,
}

/// More about a process, for `who`.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Start time, RFC 3339 UTC.
    pub started: Option<String>,
    pub uptime_s: Option<u64>,
    pub cwd: Option<String>,
    pub context: Option<super::context::Context>,
}

/// Reads and caches process details and user names.
pub struct ProcTable {
    root: PathBuf,
    procs: IntMap<u32, Arc<ProcInfo>>,
    users: IntMap<u32, Arc<str>>,
    boot_time: Option<Option<u64>>,
    contexts: HashMap<u32, Option<super::context::Context>>,
    runtimes: Option<super::context::Runtimes>,
}

impl ProcTable {
    pub fn new(root: &Path) -> ProcTable {
        ProcTable {
            root: root.to_path_buf(),
            procs: IntMap::default(),
            users: IntMap::default(),
            boot_time: None,
            contexts: HashMap::new(),
            runtimes: None,
        }
    }

    pub fn process(&self, pid: u32) -> Option<Process> {
        Process::new_with_root(self.root.join(pid.to_string())).ok()
    }

    /// Details of one pid, read on first use. A process that vanished still
    /// gets a record (name `?`), because we did see it hold the socket.
    pub fn info(&mut self, pid: u32) -> Arc<ProcInfo> {
        if let Some(p) = self.procs.get(&pid) {
            return p.clone();
        }
        let raw = RawInfo::read(&self.root.join(pid.to_string()));
        self.insert(pid, raw)
    }

    /// Details read elsewhere (by the /proc walk's threads).
    pub fn seed(&mut self, infos: Vec<(u32, RawInfo)>) {
        for (pid, raw) in infos {
            self.insert(pid, raw);
        }
    }

    fn insert(&mut self, pid: u32, raw: RawInfo) -> Arc<ProcInfo> {
        let user = match raw.uid {
            Some(uid) => self.user(uid),
            None => Arc::from("?"),
        };
        let info = Arc::new(ProcInfo {
            pid,
            name: Arc::from(raw.name.as_deref().unwrap_or("?")),
            user,
            uid: raw.uid,
            cmdline: Arc::from(raw.cmdline),
            ppid: raw.ppid,
            start_ticks: raw.start_ticks,
        });
        self.procs.insert(pid, info.clone());
        info
    }

    /// Start time, working directory and cgroup context (uncached: `who`
    /// asks once per holder).
    pub fn extra(&mut self, pid: u32) -> Extra {
        let info = self.info(pid);
        let p = self.process(pid);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let boot = *self.boot_time.get_or_insert_with(|| procfs::boot_time_secs().ok());
        let start = info.start_ticks.and_then(|ticks| Some(boot? + ticks / procfs::ticks_per_second().max(1)));
        Extra {
            started: start.map(rfc3339),
            uptime_s: start.map(|s| now.saturating_sub(s)),
            cwd: p.as_ref().and_then(|p| p.cwd().ok()).map(|c| c.to_string_lossy().into_owned()),
            context: self.context(pid),
        }
    }

    /// The process's cgroup context, with the container's name when local
    /// metadata has it. Cached per pid.
    pub fn context(&mut self, pid: u32) -> Option<super::context::Context> {
        if let Some(c) = self.contexts.get(&pid) {
            return c.clone();
        }
        let mut ctx = std::fs::read_to_string(self.root.join(pid.to_string()).join("cgroup"))
            .ok()
            .and_then(|t| super::context::parse(&t));
        if let Some(c) = ctx.as_mut().and_then(|c| c.container.as_mut()) {
            let rt = self.runtimes.get_or_insert_with(super::context::Runtimes::detect);
            c.name = rt.name(c);
        }
        self.contexts.insert(pid, ctx.clone());
        ctx
    }

    /// Container metadata locations (detected once).
    pub fn runtimes(&mut self) -> &super::context::Runtimes {
        self.runtimes.get_or_insert_with(super::context::Runtimes::detect)
    }

    /// User name of a uid, cached.
    pub fn user(&mut self, uid: u32) -> Arc<str> {
        self.users
            .entry(uid)
            .or_insert_with(|| Arc::from(crate::sys::user_name(uid).unwrap_or_else(|| uid.to_string())))
            .clone()
    }
}

/// The fields of `/proc/PID/{stat,status,cmdline}` that [`ProcInfo`] needs.
///
/// Read with one `read` per file and parsed in place: the procfs crate parses
/// every field of `stat` and `status` (about 75 µs a process, 15 ms for the
/// 200 owners of the benchmark's population, on the critical path of
/// `conns`), and it returns no command line at all when one argument is not
/// UTF-8 (here such bytes become U+FFFD).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RawInfo {
    name: Option<String>,
    uid: Option<u32>,
    ppid: Option<u32>,
    start_ticks: Option<u64>,
    cmdline: String,
}

impl RawInfo {
    /// `dir` is `/proc/PID`; what cannot be read stays `None` / empty.
    pub fn read(dir: &Path) -> RawInfo {
        let mut buf = Vec::with_capacity(1024);
        let mut raw = RawInfo::default();
        if read_into(&dir.join("stat"), &mut buf) {
            raw.parse_stat(&buf);
        }
        if read_into(&dir.join("status"), &mut buf) {
            raw.uid = effective_uid(&buf);
        }
        if read_into(&dir.join("cmdline"), &mut buf) {
            raw.cmdline = join_cmdline(&buf);
        }
        raw
    }

    /// `pid (comm) state ppid ...`: comm may hold spaces and parentheses,
    /// so the fields after it are counted from its last `)`. starttime is
    /// field 22, the 20th after comm.
    fn parse_stat(&mut self, stat: &[u8]) {
        let (Some(open), Some(close)) = (stat.iter().position(|&b| b == b'('), stat.iter().rposition(|&b| b == b')'))
        else {
            return;
        };
        if close < open {
            return;
        }
        self.name = Some(String::from_utf8_lossy(&stat[open + 1..close]).into_owned());
        let mut fields = stat[close + 1..].split(|&b| b == b' ').filter(|f| !f.is_empty());
        let mut field = |n: usize| fields.nth(n).and_then(|f| std::str::from_utf8(f).ok()?.trim().parse::<u64>().ok());
        // state (skipped), ppid; starttime is the 18th field after ppid.
        self.ppid = field(1).and_then(|p| u32::try_from(p).ok());
        self.start_ticks = field(17);
    }
}

/// Reads a whole (small, /proc) file into `buf`; false when it cannot.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> bool {
    use std::io::Read;
    buf.clear();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(buf)).is_ok()
}

/// The effective uid: the second number of status's `Uid:` line.
fn effective_uid(status: &[u8]) -> Option<u32> {
    let line = status.split(|&b| b == b'\n').find(|l| l.starts_with(b"Uid:"))?;
    let text = std::str::from_utf8(&line[4..]).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Arguments are NUL-terminated; joined by spaces, empty ones dropped (as
/// procfs did). A process that rewrote its argv with spaces and no NULs
/// (`nginx: worker process`) reads as one argument, which prints the same.
fn join_cmdline(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for arg in raw.split(|&b| b == 0).filter(|a| !a.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&String::from_utf8_lossy(arg));
    }
    out
}

/// Unix seconds as `2026-11-21T12:09:39Z` (UTC; no time zone database needed).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_262_979), "2026-11-21T12:09:39Z");
    }

    use super::*;

    #[test]
    fn own_process_details() {
        let mut t = ProcTable::new(Path::new("/proc"));
        let me = t.info(std::process::id());
        assert_ne!(&*me.name, "?");
        assert_eq!(me.uid, Some(rustix::process::geteuid().as_raw()));
        assert!(!me.cmdline.is_empty());
        assert!(me.ppid.is_some());
        // cached: same allocation
        assert!(Arc::ptr_eq(&me, &t.info(std::process::id())));
    }

    /// Issue 6: context read through the real path, from a fake proc tree
    /// holding recorded cgroup files, with container names from a fake
    /// Docker data root.
    #[test]
    fn context_from_a_fake_proc_tree() {
        let id = "4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
        let root = std::env::temp_dir().join(format!("portctl-ctx-{}", std::process::id()));
        let files = [
            ("100", "0::/system.slice/nginx.service\n".to_string()),
            ("200", format!("0::/system.slice/docker-{id}.scope\n")),
            ("300", format!("12:pids:/docker/{id}\n1:name=systemd:/docker/{id}\n0::/\n")),
        ];
        for (pid, text) in &files {
            std::fs::create_dir_all(root.join("proc").join(pid)).unwrap();
            std::fs::write(root.join("proc").join(pid).join("cgroup"), text).unwrap();
        }
        let cdir = root.join("docker/containers").join(id);
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(cdir.join("config.v2.json"), r#"{"Name":"/web"}"#).unwrap();
        let mut t = ProcTable::new(&root.join("proc"));
        t.runtimes = Some(super::super::context::Runtimes { docker: root.join("docker"), podman: root.join("podman") });
        assert_eq!(t.context(100).unwrap().unit.as_deref(), Some("nginx.service"));
        for pid in [200, 300] {
            let c = t.context(pid).unwrap().container.unwrap();
            assert_eq!((c.runtime.as_str(), c.name.as_deref()), ("docker", Some("web")), "pid {pid}");
        }
        assert_eq!(t.context(999), None, "no such process: no context");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn stat_with_awkward_names() {
        let mut r = RawInfo::default();
        // fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
        r.parse_stat(b"4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 3 1 0 0 20 0 1 0 987654 1 2\n");
        assert_eq!(r.name.as_deref(), Some("a) b (c)"));
        assert_eq!(r.ppid, Some(17));
        assert_eq!(r.start_ticks, Some(987654));
        let mut r = RawInfo::default();
        r.parse_stat(b"garbage");
        assert_eq!(r, RawInfo::default());
    }

    #[test]
    fn same_as_procfs_for_this_process() {
        let me = procfs::process::Process::myself().unwrap();
        let stat = me.stat().unwrap();
        let raw = RawInfo::read(Path::new(&format!("/proc/{}", std::process::id())));
        assert_eq!(raw.name.as_deref(), Some(stat.comm.as_str()));
        assert_eq!(raw.ppid, u32::try_from(stat.ppid).ok());
        assert_eq!(raw.start_ticks, Some(stat.starttime));
        assert_eq!(raw.uid, Some(me.status().unwrap().euid));
        assert_eq!(raw.cmdline, me.cmdline().unwrap().join(" "));
    }

    #[test]
    fn status_and_cmdline() {
        let status = b"Name:\tx\nUmask:\t0022\nState:\tS\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n";
        assert_eq!(effective_uid(status), Some(1001));
        assert_eq!(effective_uid(b"Name:\tx\n"), None);
        assert_eq!(join_cmdline(b"/usr/bin/python3\0-m\0http.server\0\0"), "/usr/bin/python3 -m http.server");
        assert_eq!(join_cmdline(b"nginx: worker process"), "nginx: worker process");
        assert_eq!(join_cmdline(b""), "");
        assert_eq!(join_cmdline(b"a\xff\0b\0"), "a\u{fffd} b");
    }

    #[test]
    fn vanished_process_gets_placeholder() {
        let mut t = ProcTable::new(Path::new("/nonexistent-proc"));
        let p = t.info(42);
        assert_eq!(&*p.name, "?");
        assert_eq!(&*p.user, "?");
        assert_eq!(p.uid, None);
    }

    proptest::proptest! {
        /// /proc/PID/stat holds a name the process chose (parentheses,
        /// spaces, anything): any bytes parse or leave fields empty.
        #[test]
        fn random_stat_status_cmdline_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut r = RawInfo::default();
            r.parse_stat(&bytes);
            let _ = effective_uid(&bytes);
            let _ = join_cmdline(&bytes);
        }

        #[test]
        fn stat_with_any_name(name in "\\PC{0,40}", ppid in 0u64..5_000_000) {
            let stat = format!("42 ({name}) S {ppid} 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0\n");
            let mut r = RawInfo::default();
            r.parse_stat(stat.as_bytes());
            proptest::prop_assert_eq!(r.name.as_deref(), Some(name.as_str()));
            proptest::prop_assert_eq!(r.start_ticks, Some(777));
        }
    }
}
