//! The BPF owner source: the kernel's task_file iterator
//! ([`crate::bpf::Program::Owners`]) lists every socket descriptor of every
//! task — without the permission checks of /proc (it needs root, or
//! CAP_BPF and CAP_PERFMON, which may read kernel memory anyway), at about
//! a seventh of the cost of a `readlink` per descriptor.
//!
//! On Linux 6.1+ the iterator runs once per process (a task iterator can be
//! limited to one), so the work is shared out: the thread that builds the
//! map starts while the kernel dump runs on another, and that one joins in
//! ([`OwnerSource::help`]) when the dump is done. Once the caller has said
//! which inodes it wants ([`Job::offer`]), the rest of the processes are
//! read with the filtering program: only those sockets' records are
//! written. Before 6.1, one iterator over every task.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use super::{Job, Link, OwnerMap, OwnerSource, RawInfo, SocketQuery, flags, walk};
use crate::bpf::records::{self, OwnerRec, SockRec};
use crate::bpf::{self, Bpf, Loaded, Program, Set, Unavailable};

/// The source; one per command run.
pub struct BpfOwners {
    phase: Mutex<Phase>,
    ready: Condvar,
    /// For `-v`: what the last build did.
    summary: Mutex<Option<String>>,
}

enum Phase {
    /// Not started, or loading the programs.
    Starting,
    /// Processes being read; helpers may join.
    Walking(Arc<Walk>),
    /// Built (or failed): what a recheck or a socket query reuses.
    Done(Option<Arc<Loader>>),
}

/// The programs, loaded once per run.
struct Loader {
    bpf: Bpf,
    /// [`Program::Owners`].
    all: Loaded,
    /// Whether the kernel takes a process id for task iterators.
    per_pid: bool,
    /// [`Program::OwnersWanted`], loaded ahead (while the caller dumps) with
    /// a map for [`SPARE`] inodes, for the job that will filter.
    spare: Mutex<Option<Set>>,
}

/// Inodes the filter loaded ahead takes: listen's listeners, who's port;
/// more than that get a map of their own (a hash map's buckets are
/// allocated with it: 16k cost 0.2 ms, a million 35).
const SPARE: usize = 1 << 14;

impl Loader {
    fn owners(&self) -> &Loaded {
        &self.all
    }
}

/// One build's shared work.
struct Walk {
    loader: Arc<Loader>,
    pids: Vec<u32>,
    next: AtomicUsize,
    /// [`Program::OwnersWanted`] with the wanted inodes, once they came
    /// (`None`: it could not be loaded; the unfiltered one serves).
    filtered: OnceLock<Option<Set>>,
    /// What each thread found, and how many are still at work.
    shared: Mutex<Shared>,
    finished: Condvar,
    details: bool,
}

#[derive(Default)]
struct Shared {
    parts: Vec<Part>,
    active: usize,
}

#[derive(Default)]
struct Part {
    recs: Vec<OwnerRec>,
    /// The records as links, sorted (when the thread is done).
    links: Vec<Link>,
    infos: Vec<(u32, RawInfo)>,
    read: usize,
    filtered: usize,
    /// Processes the iterator showed nothing of although they have
    /// descriptors (see [`hidden`]).
    hidden: Vec<u32>,
}

impl Default for BpfOwners {
    fn default() -> BpfOwners {
        BpfOwners::new()
    }
}

impl BpfOwners {
    pub fn new() -> BpfOwners {
        BpfOwners { phase: Mutex::new(Phase::Starting), ready: Condvar::new(), summary: Mutex::new(None) }
    }

    fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = p;
        self.ready.notify_all();
    }

    fn loader(&self) -> Option<Arc<Loader>> {
        match &*self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Done(l) => l.clone(),
            Phase::Walking(w) => Some(w.loader.clone()),
            Phase::Starting => None,
        }
    }

    fn start(&self, filter: bool) -> Result<Arc<Loader>, Unavailable> {
        bpf::check()?;
        let bpf = Bpf::open()?;
        crate::timings::mark("bpf: BTF subset, relocated");
        let all = bpf
            .load(&[Program::Owners], 1)?
            .take(Program::Owners)
            .ok_or_else(|| Unavailable("the owners program did not load".into()))?;
        // Whether task iterators take a pid (Linux 6.1): ask for our own
        // process, which holds a few descriptors.
        let mut probe = Vec::new();
        let per_pid = match all.read(Some(std::process::id()), &mut probe) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
            Err(e) => return Err(Unavailable(format!("the task_file iterator failed: {e}"))),
        };
        let spare = if filter && per_pid { bpf.load(&[Program::OwnersWanted], SPARE).ok() } else { None };
        crate::timings::mark("bpf: owners programs loaded");
        Ok(Arc::new(Loader { bpf, all, per_pid, spare: Mutex::new(spare) }))
    }

    fn build_inner(&self, job: &Job) -> Result<OwnerMap, Unavailable> {
        let started = Instant::now();
        let loader = self.start(job.filter)?;
        if !loader.per_pid {
            self.set_phase(Phase::Done(Some(loader.clone())));
            let mut buf = Vec::with_capacity(1 << 20);
            loader
                .owners()
                .read(None, &mut buf)
                .map_err(|e| Unavailable(format!("the task_file iterator failed: {e}")))?;
            let mut recs = Vec::new();
            records::owners(&buf, &mut recs);
            recs.retain(|r| r.bits & records::SEEN == 0);
            let mut pids: Vec<u32> = recs.iter().map(|r| r.tgid).collect();
            pids.sort_unstable();
            pids.dedup();
            let infos =
                if job.details { pids.iter().map(|&p| (p, RawInfo::read(&proc_dir(p)))).collect() } else { Vec::new() };
            let n = recs.len();
            let map = OwnerMap::from_source(links(&recs), walk::pids(Path::new("/proc")).unwrap_or(pids), infos);
            self.summarise(format!(
                "owners from BPF (iter/task_file over every task, {n} socket descriptors, {:.1} ms)",
                started.elapsed().as_secs_f64() * 1e3
            ));
            return Ok(map);
        }
        let pids = walk::pids(Path::new("/proc")).map_err(|e| Unavailable(format!("could not list /proc: {e}")))?;
        let w = Arc::new(Walk {
            loader: loader.clone(),
            pids,
            next: AtomicUsize::new(0),
            filtered: OnceLock::new(),
            shared: Mutex::new(Shared::default()),
            finished: Condvar::new(),
            details: job.details,
        });
        self.set_phase(Phase::Walking(w.clone()));
        crate::timings::mark("bpf: walking");
        w.work(job);
        crate::timings::mark("bpf: builder's share done");
        // Every pid is taken: wait for the helpers still reading one. (A
        // helper that joins later finds none left.)
        let parts = {
            let mut sh = w.shared.lock().unwrap_or_else(PoisonError::into_inner);
            while sh.active > 0 {
                sh = w.finished.wait(sh).unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut sh.parts)
        };
        self.set_phase(Phase::Done(Some(loader)));
        let helpers = parts.len();
        let (mut sorted, mut infos, mut read, mut filtered, mut denied) = (Vec::new(), Vec::new(), 0, 0, Vec::new());
        for p in parts {
            sorted.push(p.links);
            infos.extend(p.infos);
            read += p.read;
            filtered += p.filtered;
            denied.extend(p.hidden);
        }
        crate::timings::mark("bpf: every process read");
        let n: usize = sorted.iter().map(Vec::len).sum();
        let mut map = OwnerMap::from_sorted_parts(sorted, w.pids.clone(), infos);
        denied.sort_unstable();
        map.denied = denied;
        crate::timings::mark("bpf: map built");
        let filter = match job.wanted() {
            Some(w) if job.filter => {
                format!(", {filtered} of them filtered in the kernel to the {} inodes dumped", w.len())
            }
            _ => String::new(),
        };
        self.summarise(format!(
            "owners from BPF (iter/task_file per process on {helpers} thread{}: {read} processes{filter}; {n} socket descriptors; {:.1} ms)",
            if helpers == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64() * 1e3
        ));
        Ok(map)
    }

    fn summarise(&self, s: String) {
        *self.summary.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
    }
}

impl Walk {
    /// Reads processes until none is left; what it found goes to `parts`.
    fn work(&self, job: &Job) {
        // Counted before taking a pid, so that the builder, once it finds
        // none left, waits for whoever took the last ones.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).active += 1;
        let mut part = Part::default();
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(&pid) = self.pids.get(self.next.fetch_add(1, Ordering::SeqCst)) {
            // Nothing was dumped: no descriptor can be wanted.
            if job.filter && job.wanted().is_some_and(<[u64]>::is_empty) {
                self.next.store(self.pids.len(), Ordering::SeqCst);
                break;
            }
            let filtered = match job.wanted() {
                Some(inodes) if job.filter => self.filtered.get_or_init(|| self.filtered_set(inodes)).as_ref(),
                _ => None,
            };
            let prog = match filtered.and_then(|set| set.get(Program::OwnersWanted)) {
                Some(p) => {
                    part.filtered += 1;
                    p
                }
                None => self.loader.owners(),
            };
            buf.clear();
            // A process gone since /proc was listed has nothing to report.
            let before = part.recs.len();
            if prog.read(Some(pid), &mut buf).is_ok() {
                records::owners(&buf, &mut part.recs);
            }
            let found = &part.recs[before..];
            if !found.iter().any(|r| r.bits & records::SEEN != 0) && hidden(pid) {
                part.hidden.push(pid);
            }
            // The details of a process that holds a socket shown (every one
            // with `details`; filtered, only those of the wanted sockets),
            // read here on the walk's threads rather than one by one later.
            let holds = found.iter().any(|r| r.bits & records::SEEN == 0);
            if holds && (self.details || prog.program == Program::OwnersWanted) {
                part.infos.push((pid, RawInfo::read(&proc_dir(pid))));
            }
            part.read += 1;
        }
        // Each thread sorts its own: the builder only merges.
        part.links = links(&part.recs);
        part.recs = Vec::new();
        super::sort_links(&mut part.links);
        let mut sh = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        sh.parts.push(part);
        sh.active -= 1;
        self.finished.notify_all();
    }
}

impl Walk {
    /// The filtering program, loaded with a map of `inodes`.
    fn filtered_set(&self, inodes: &[u64]) -> Option<Set> {
        let spare = self.loader.spare.lock().unwrap_or_else(PoisonError::into_inner).take();
        let set = match spare {
            Some(set) if inodes.len() <= SPARE => set,
            _ => self.loader.bpf.load(&[Program::OwnersWanted], inodes.len()).ok()?,
        };
        set.want(inodes).ok()?;
        crate::timings::mark("bpf: filtering program loaded");
        Some(set)
    }
}

fn proc_dir(pid: u32) -> std::path::PathBuf {
    Path::new("/proc").join(pid.to_string())
}

/// Whether a process the iterator showed nothing of has descriptors (so it
/// did not show them: a sandbox hides it from the iterator as from /proc).
/// A kernel thread, a process gone, or one whose table is empty does not;
/// one whose table portctl may not list either (not root) counts as hidden:
/// nothing says it holds nothing.
fn hidden(pid: u32) -> bool {
    match std::fs::read_dir(proc_dir(pid).join("fd")) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) => e.kind() == io::ErrorKind::PermissionDenied && !kernel_thread(pid),
    }
}

/// Whether `pid` is a kernel thread (`PF_KTHREAD` in /proc/PID/stat).
fn kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(proc_dir(pid).join("stat")) else { return false };
    // The name may hold anything: the fields follow the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else { return false };
    rest.split_whitespace().nth(6).and_then(|f| f.parse::<u64>().ok()).is_some_and(|f| f & PF_KTHREAD != 0)
}

/// The records as links (one per descriptor; markers dropped).
fn links(recs: &[OwnerRec]) -> Vec<Link> {
    recs.iter()
        .filter(|r| r.bits & records::SEEN == 0)
        .map(|r| Link {
            inode: r.inode,
            pid: r.tgid,
            fd: r.fd,
            tid: if r.bits & records::OWN_TABLE != 0 { r.tid } else { 0 },
            flags: socket_flags(r.bits),
        })
        .collect()
}

/// The iterator's bits as [`flags`].
pub fn socket_flags(bits: u8) -> u8 {
    if bits & records::INET == 0 {
        return 0;
    }
    let mut f = flags::KNOWN;
    if bits & records::REUSEADDR != 0 {
        f |= flags::REUSEADDR;
    }
    if bits & records::REUSEPORT != 0 {
        f |= flags::REUSEPORT;
    }
    f
}

impl OwnerSource for BpfOwners {
    fn name(&self) -> &'static str {
        "bpf"
    }

    fn build(&self, job: &Job) -> io::Result<OwnerMap> {
        let built = self.build_inner(job);
        // However it ended, a helper waiting for the walk to start must not
        // wait for ever.
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*phase, Phase::Starting) {
            *phase = Phase::Done(None);
            self.ready.notify_all();
        }
        drop(phase);
        built.map_err(io::Error::other)
    }

    fn help(&self, job: &Job) {
        let w = {
            let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match &*phase {
                    Phase::Starting => phase = self.ready.wait(phase).unwrap_or_else(PoisonError::into_inner),
                    Phase::Walking(w) => break w.clone(),
                    Phase::Done(_) => return,
                }
            }
        };
        crate::timings::mark("bpf: helper joins");
        w.work(job);
        crate::timings::mark("bpf: helper's share done");
    }

    fn recheck(&self, map: &mut OwnerMap, candidates: &[u32]) -> usize {
        let Some(loader) = self.loader() else { return 0 };
        let mut pids: Vec<u32> = match walk::pids(Path::new("/proc")) {
            Ok(now) => now.into_iter().filter(|&p| !map.walked(p)).collect(),
            Err(_) => Vec::new(),
        };
        pids.extend_from_slice(candidates);
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            return 0;
        }
        let mut buf = Vec::new();
        let mut recs = Vec::new();
        if loader.per_pid {
            for &pid in &pids {
                buf.clear();
                if loader.owners().read(Some(pid), &mut buf).is_ok() {
                    records::owners(&buf, &mut recs);
                }
            }
        } else if loader.owners().read(None, &mut buf).is_ok() {
            records::owners(&buf, &mut recs);
        }
        map.add(links(&recs), &pids)
    }

    fn kernel_sockets(&self, q: &SocketQuery<'_>) -> Option<io::Result<Vec<SockRec>>> {
        let loader = self.loader()?;
        Some(loader.sockets(q))
    }

    fn describe(&self) -> String {
        self.summary.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_else(|| "owners from BPF".into())
    }
}

impl Loader {
    /// Runs the TCP and UDP iterators with `q`'s filter, in its namespace.
    fn sockets(&self, q: &SocketQuery<'_>) -> io::Result<Vec<SockRec>> {
        let set = self.bpf.load(&[Program::Tcp, Program::Udp], q.inodes.len()).map_err(io::Error::other)?;
        let (Some(tcp), Some(udp)) = (set.get(Program::Tcp), set.get(Program::Udp)) else { return Ok(Vec::new()) };
        set.want(&q.inodes)?;
        set.filter(q.port.unwrap_or(0), !q.inodes.is_empty())?;
        let run = || -> io::Result<Vec<SockRec>> {
            let mut out = Vec::new();
            let mut buf = Vec::new();
            for (wanted, prog, udp) in [(q.tcp, tcp, false), (q.udp, udp, true)] {
                if wanted {
                    buf.clear();
                    prog.read(None, &mut buf)?;
                    records::sockets(&buf, udp, &mut out);
                }
            }
            Ok(out)
        };
        // The iterator lists the namespace of the thread that creates it.
        match q.netns.filter(|n| !n.current) {
            Some(ns) => ns.run(run).map_err(io::Error::other)?,
            None => run(),
        }
    }
}
