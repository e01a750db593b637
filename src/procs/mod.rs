//! Who holds each socket: an owner source ([`OwnerSource`]) builds an
//! inode -> owners map — the kernel's BPF task_file iterator ([`bpf`]) or
//! the walk of `/proc/*/fd` ([`ProcWalk`]), as `--owners-from` chooses
//! ([`Chosen`]); process details are read only for the pids that matter
//! ([`ProcTable`]).
//!
//! This module reports what it could not read (`denied`, `errors`); deciding
//! how to present that is the caller's job.

pub mod bpf;
pub mod context;
mod details;
pub mod pidfd;
mod walk;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

pub use details::{Extra, ProcInfo, ProcTable, RawInfo, rfc3339};
pub use walk::Link;

use crate::bpf::records::SockRec;
use crate::netns::Netns;

/// Bits of [`Link::flags`]: what a source read of the socket itself.
pub mod flags {
    /// The flags below are known (an IP socket, read by the BPF iterator).
    pub const KNOWN: u8 = 1;
    /// SO_REUSEADDR.
    pub const REUSEADDR: u8 = 2;
    /// SO_REUSEPORT.
    pub const REUSEPORT: u8 = 4;
}

/// Where the inode -> owner links come from. Sources are interchangeable:
/// the inventory asks one for a map, and for a second look when sockets
/// turned up that no holder was found for (a socket opened while the map
/// was being built).
pub trait OwnerSource: Sync {
    /// Its name, for `-v` and messages (`bpf`, `proc`).
    fn name(&self) -> &'static str;

    /// Every socket link on the host (or those of [`Job::offer`]'s inodes,
    /// for a source that can filter). With `job.details`, also the details
    /// of every process that holds a socket (`OwnerMap::infos`), read while
    /// the map is built rather than one by one afterwards.
    fn build(&self, job: &Job) -> io::Result<OwnerMap>;

    /// Lends the calling thread to a [`OwnerSource::build`] running on
    /// another, once the caller's own work is done; returns when there is
    /// nothing left to share (at once, for a source that cannot share).
    fn help(&self, _job: &Job) {}

    /// Reads again the links of `candidates`, and those of processes
    /// started since the map was built; returns how many links that added.
    fn recheck(&self, map: &mut OwnerMap, candidates: &[u32]) -> usize;

    /// What the kernel's socket tables say of sockets that descriptors do
    /// not show (TIME_WAIT, orphans, sockets in flight or the kernel's
    /// own), as the BPF socket iterators report them; `None` when this
    /// source cannot tell.
    fn kernel_sockets(&self, _q: &SocketQuery<'_>) -> Option<io::Result<Vec<SockRec>>> {
        None
    }

    /// One line for `-v`: which source gave the owners, and how.
    fn describe(&self) -> String {
        format!("owners from {}", self.name())
    }
}

/// What one build is asked for.
#[derive(Debug, Default)]
pub struct Job {
    /// Read the details of every process holding a socket (`conns`).
    pub details: bool,
    /// The caller will [`Job::offer`] the inodes it wants, and a source
    /// that can filter in the kernel may wait for them (`who`, `listen`).
    pub filter: bool,
    wanted: OnceLock<Vec<u64>>,
}

impl Job {
    pub fn new(details: bool, filter: bool) -> Job {
        Job { details, filter, wanted: OnceLock::new() }
    }

    /// The inodes that matter, once known (the kernel dump is in).
    pub fn offer(&self, inodes: Vec<u64>) {
        let _ = self.wanted.set(inodes);
    }

    /// The offered inodes, if they came already.
    pub fn wanted(&self) -> Option<&[u64]> {
        self.wanted.get().map(Vec::as_slice)
    }
}

/// Which sockets [`OwnerSource::kernel_sockets`] reports.
#[derive(Debug, Default)]
pub struct SocketQuery<'a> {
    pub tcp: bool,
    pub udp: bool,
    /// Only those on this local port.
    pub port: Option<u16>,
    /// Only these inodes (none: any).
    pub inodes: Vec<u64>,
    /// In this namespace (the current one when `None`).
    pub netns: Option<&'a Netns>,
}

/// The /proc walk: `getdents64` + `readlinkat` over every `/proc/PID/fd`
/// (and the own tables of threads that have one), on every core.
#[derive(Debug, Clone)]
pub struct ProcWalk {
    /// `/proc`, or a fake tree in tests.
    pub root: PathBuf,
    pub threads: usize,
}

impl ProcWalk {
    /// The host's /proc, on every core the process may use.
    pub fn host() -> ProcWalk {
        ProcWalk { root: PathBuf::from("/proc"), threads: default_threads() }
    }
}

impl OwnerSource for ProcWalk {
    fn name(&self) -> &'static str {
        "proc"
    }

    fn build(&self, job: &Job) -> io::Result<OwnerMap> {
        OwnerMap::walk(&self.root, self.threads, job.details)
    }

    fn recheck(&self, map: &mut OwnerMap, candidates: &[u32]) -> usize {
        map.recheck(candidates)
    }

    fn describe(&self) -> String {
        "owners from the /proc walk (--owners-from proc)".to_string()
    }
}

/// `--owners-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnersFrom {
    /// BPF when the kernel allows it, else the /proc walk.
    #[default]
    Auto,
    /// BPF, or an error saying why not.
    Bpf,
    /// The /proc walk.
    Proc,
}

/// The owner source `--owners-from` asked for; with `auto`, BPF falling
/// back to the /proc walk (on any failure), remembering why for `-v`.
pub struct Chosen {
    from: OwnersFrom,
    bpf: bpf::BpfOwners,
    walk: ProcWalk,
    /// Why BPF did not give the owners (auto), once known.
    fallback: Mutex<Option<String>>,
}

impl Chosen {
    pub fn new(from: OwnersFrom) -> Chosen {
        Chosen { from, bpf: bpf::BpfOwners::new(), walk: ProcWalk::host(), fallback: Mutex::new(None) }
    }

    fn uses_bpf(&self) -> bool {
        match self.from {
            OwnersFrom::Proc => false,
            OwnersFrom::Bpf => true,
            OwnersFrom::Auto => self.fallback.lock().unwrap_or_else(PoisonError::into_inner).is_none(),
        }
    }
}

impl OwnerSource for Chosen {
    fn name(&self) -> &'static str {
        if self.uses_bpf() { "bpf" } else { "proc" }
    }

    fn build(&self, job: &Job) -> io::Result<OwnerMap> {
        match self.from {
            OwnersFrom::Proc => self.walk.build(job),
            OwnersFrom::Bpf => self.bpf.build(job).map_err(|e| {
                io::Error::other(crate::error::UserError::new(format!("--owners-from bpf: BPF is not available: {e}")))
            }),
            OwnersFrom::Auto => match self.bpf.build(job) {
                Ok(m) => Ok(m),
                Err(e) => {
                    *self.fallback.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                    self.walk.build(job)
                }
            },
        }
    }

    fn help(&self, job: &Job) {
        if self.from != OwnersFrom::Proc {
            self.bpf.help(job);
        }
    }

    fn recheck(&self, map: &mut OwnerMap, candidates: &[u32]) -> usize {
        if self.uses_bpf() { self.bpf.recheck(map, candidates) } else { self.walk.recheck(map, candidates) }
    }

    fn kernel_sockets(&self, q: &SocketQuery<'_>) -> Option<io::Result<Vec<SockRec>>> {
        if self.uses_bpf() { self.bpf.kernel_sockets(q) } else { None }
    }

    fn describe(&self) -> String {
        match (self.from, self.fallback.lock().unwrap_or_else(PoisonError::into_inner).as_deref()) {
            (OwnersFrom::Proc, _) => self.walk.describe(),
            (OwnersFrom::Auto, Some(why)) => format!("owners from the /proc walk: BPF is not available: {why}"),
            _ => self.bpf.describe(),
        }
    }
}

/// inode -> (pid, fd) links, sorted by inode.
///
/// A sorted flat vector rather than a `HashMap<inode, Vec<owner>>`: 16 bytes
/// per link and no allocation per socket, the owners of one socket are
/// contiguous, and building it is one `sort_unstable` (O(n log n), ~5 ms at
/// 125k fds) — nothing like `ss -p`'s fixed 256-bucket table, which goes
/// quadratic.
#[derive(Debug, Default)]
pub struct OwnerMap {
    links: Vec<Link>,
    /// Processes whose descriptors could not be read (permissions).
    pub denied: Vec<u32>,
    /// Unexpected errors, one per process.
    pub errors: Vec<(u32, io::Error)>,
    /// Processes walked.
    pub processes: usize,
    /// Details of the processes holding sockets, when the walk was asked to
    /// read them ([`OwnerMap::build_with_details`]), for [`ProcTable::seed`].
    pub infos: Vec<(u32, RawInfo)>,
    /// Where the walk read from (`/proc` unless testing).
    pub root: PathBuf,
    /// The pids the walk listed, sorted: a later [`OwnerMap::recheck`]
    /// reads the processes that are not among them.
    walked: Vec<u32>,
}

impl OwnerMap {
    /// A map of links another source found (and, for tests, a fake's).
    pub fn from_links(mut links: Vec<Link>, mut denied: Vec<u32>) -> OwnerMap {
        normalize(&mut links);
        denied.sort_unstable();
        denied.dedup();
        OwnerMap { links, denied, ..OwnerMap::default() }
    }

    /// The map a source that lists processes built: `walked` are the pids
    /// it set out to read (a later recheck reads the others).
    pub fn from_source(mut links: Vec<Link>, mut walked: Vec<u32>, infos: Vec<(u32, RawInfo)>) -> OwnerMap {
        normalize(&mut links);
        walked.sort_unstable();
        walked.dedup();
        OwnerMap { links, processes: walked.len(), infos, root: PathBuf::from("/proc"), walked, ..OwnerMap::default() }
    }

    /// [`OwnerMap::from_source`] for links in parts each sorted already
    /// ([`sort_links`], on the threads that found them): merged in one
    /// pass (the stable sort finds the runs).
    pub fn from_sorted_parts(parts: Vec<Vec<Link>>, mut walked: Vec<u32>, infos: Vec<(u32, RawInfo)>) -> OwnerMap {
        let mut links = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for p in parts {
            links.extend(p);
        }
        links.sort_by_key(link_key);
        finish(&mut links);
        walked.sort_unstable();
        walked.dedup();
        OwnerMap { links, processes: walked.len(), infos, root: PathBuf::from("/proc"), walked, ..OwnerMap::default() }
    }

    /// Adds links found since (a recheck), and the pids read for them;
    /// returns how many links that added.
    pub fn add(&mut self, links: Vec<Link>, read: &[u32]) -> usize {
        let before = self.links.len();
        self.links.extend(links);
        normalize(&mut self.links);
        let new = read.iter().filter(|p| self.walked.binary_search(p).is_err()).count();
        self.processes += new;
        self.walked.extend_from_slice(read);
        self.walked.sort_unstable();
        self.walked.dedup();
        self.links.len().saturating_sub(before)
    }

    /// Whether `pid` was read (or set out to be).
    pub fn walked(&self, pid: u32) -> bool {
        self.walked.binary_search(&pid).is_ok()
    }

    /// Walks `root` (normally `/proc`) on `threads` threads.
    pub fn build(root: &Path, threads: usize) -> io::Result<OwnerMap> {
        OwnerMap::walk(root, threads, false)
    }

    /// Also reads the details of every process that holds a socket, on the
    /// walk's threads, for commands that show every owner (`conns`): read
    /// later on one thread, they are a serial step after the walk.
    pub fn build_with_details(root: &Path, threads: usize) -> io::Result<OwnerMap> {
        OwnerMap::walk(root, threads, true)
    }

    fn walk(root: &Path, threads: usize, details: bool) -> io::Result<OwnerMap> {
        let mut r = walk::walk(root, threads, details)?;
        normalize(&mut r.links);
        r.pids.sort_unstable();
        Ok(OwnerMap {
            links: r.links,
            denied: r.denied,
            errors: r.errors,
            processes: r.processes,
            infos: r.infos,
            root: root.to_path_buf(),
            walked: r.pids,
        })
    }

    /// Reads again the descriptors of `candidates`, and for the first time
    /// those of processes started since the walk listed `/proc`, adding the
    /// sockets they hold now. Returns how many links that added.
    ///
    /// The walk runs while the kernel dump does, so a socket opened by a
    /// process after the walk read that process is in the dump with no
    /// owner. The caller knows which sockets those are and which processes
    /// likely hold them (e.g. the holder of the listener that accepted
    /// them); a second full walk would double the cost of every run on a
    /// host whose kernel holds sockets of its own.
    pub fn recheck(&mut self, candidates: &[u32]) -> usize {
        let mut pids: Vec<u32> = match walk::pids(&self.root) {
            Ok(now) => now.into_iter().filter(|p| self.walked.binary_search(p).is_err()).collect(),
            Err(_) => Vec::new(),
        };
        let new = pids.len();
        pids.extend(candidates.iter().filter(|p| self.denied.binary_search(p).is_err()));
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            return 0;
        }
        let Ok(r) = walk::walk_pids(&self.root, Some(&pids), default_threads(), false) else {
            return 0;
        };
        let before = self.links.len();
        self.links.extend(r.links);
        normalize(&mut self.links);
        self.denied.extend(r.denied);
        self.denied.sort_unstable();
        self.denied.dedup();
        for (pid, e) in r.errors {
            if !self.errors.iter().any(|(p, _)| *p == pid) {
                self.errors.push((pid, e));
            }
        }
        self.processes += new;
        self.walked.extend(pids);
        self.walked.sort_unstable();
        self.walked.dedup();
        self.links.len().saturating_sub(before)
    }

    /// Every (pid, fd) holding this socket inode, by pid then fd.
    pub fn owners_of(&self, inode: u64) -> &[Link] {
        let start = self.links.partition_point(|l| l.inode < inode);
        let end = start + self.links[start..].partition_point(|l| l.inode == inode);
        &self.links[start..end]
    }

    /// The owners of every inode in `inodes`, in that order: one sort and
    /// one merge against the links, where a binary search per socket misses
    /// the cache at every step (20 ms against 5 ms at 130k sockets).
    pub fn owners_of_all(&self, inodes: &[u64]) -> Vec<&[Link]> {
        self.link_ranges(inodes.iter().copied())
            .into_iter()
            .map(|r| &self.links[r.start as usize..r.end as usize])
            .collect()
    }

    /// Where the links of every inode of `inodes` are in [`OwnerMap::links`],
    /// in that order (empty ranges for inodes no process holds; u32s keep
    /// the list at 1 MB for 130k sockets, a map never holds 4G links).
    pub fn link_ranges(&self, inodes: impl ExactSizeIterator<Item = u64> + Clone) -> Vec<std::ops::Range<u32>> {
        let mut out = vec![0..0; inodes.len()];
        let mut at = 0;
        for (inode, i) in by_inode(inodes) {
            while at < self.links.len() && self.links[at].inode < inode {
                at += 1;
            }
            let len = self.links[at..].iter().take_while(|l| l.inode == inode).count();
            out[i as usize] = at as u32..(at + len) as u32;
        }
        out
    }

    /// All links (tests, statistics).
    pub fn links(&self) -> &[Link] {
        &self.links
    }
}

/// (inode, index) for each of `inodes`, in inode order. Socket inodes are
/// 32-bit numbers (get_next_ino), so a pair packs into one u64, which sorts
/// about twice as fast as a tuple; wider ones (never seen) take the tuple.
fn by_inode(inodes: impl ExactSizeIterator<Item = u64> + Clone) -> Box<dyn Iterator<Item = (u64, u32)>> {
    if inodes.clone().all(|i| i <= u64::from(u32::MAX)) {
        let mut packed: Vec<u64> = inodes.zip(0u64..).map(|(ino, i)| ino << 32 | i).collect();
        packed.sort_unstable();
        Box::new(packed.into_iter().map(|p| (p >> 32, p as u32)))
    } else {
        let mut pairs: Vec<(u64, u32)> = inodes.zip(0u32..).collect();
        pairs.sort_unstable();
        Box::new(pairs.into_iter())
    }
}

/// Sorts links in Link's order (inode, pid, fd, then tid) and drops
/// repeats. A thread's own table starts as a copy of its process's: a link
/// from it that the process's table has too (same socket, same descriptor)
/// is the same holder, and only the process's is kept; what the thread
/// alone holds keeps its tid.
fn normalize(links: &mut Vec<Link>) {
    sort_links(links);
    finish(links);
}

/// Sorts links by (inode, pid, fd), compared as one integer: twice as fast
/// as the tuple (equal keys, a thread's copies, are ordered afterwards).
pub fn sort_links(links: &mut [Link]) {
    links.sort_unstable_by_key(link_key);
}

fn link_key(l: &Link) -> u128 {
    u128::from(l.inode) << 64 | u128::from(l.pid) << 32 | u128::from(l.fd)
}

/// The rest of [`normalize`], on links sorted by [`link_key`].
fn finish(links: &mut Vec<Link>) {
    let key = |l: &Link| (l.inode, l.pid, l.fd);
    let mut i = 0;
    while i < links.len() {
        let j = i + links[i..].iter().take_while(|l| key(l) == key(&links[i])).count();
        if j - i > 1 {
            links[i..j].sort_unstable();
        }
        i = j;
    }
    links.dedup_by(|next, kept| key(next) == key(kept) && (kept.tid == 0 || kept.tid == next.tid));
}

/// Threads for the fd walk: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A fake proc root: pid -> [(fd, link target)].
    pub(crate) fn fake_proc(procs: &[(u32, &[(u32, &str)])]) -> tempdir::TempDir {
        let dir = tempdir::TempDir::new();
        for (pid, fds) in procs {
            let fd_dir = dir.path().join(pid.to_string()).join("fd");
            fs::create_dir_all(&fd_dir).unwrap();
            for (fd, target) in fds.iter() {
                symlink(target, fd_dir.join(fd.to_string())).unwrap();
            }
        }
        // Noise the walk must ignore.
        fs::create_dir_all(dir.path().join("self")).unwrap();
        fs::write(dir.path().join("uptime"), "1 1\n").unwrap();
        dir
    }

    #[test]
    fn maps_inodes_to_every_owner() {
        let tree = fake_proc(&[
            (100, &[(0, "/dev/null"), (3, "socket:[5001]"), (4, "pipe:[77]"), (7, "socket:[5002]")]),
            // a pre-fork worker sharing the listener 5001 on fd 3
            (101, &[(3, "socket:[5001]"), (9, "socket:[5003]")]),
            (4194304, &[(12, "socket:[5001]")]),
            (200, &[]),
        ]);
        for threads in [1, 2, 8] {
            let map = OwnerMap::build(tree.path(), threads).unwrap();
            let owners: Vec<(u32, u32)> = map.owners_of(5001).iter().map(|l| (l.pid, l.fd)).collect();
            assert_eq!(owners, vec![(100, 3), (101, 3), (4194304, 12)], "threads={threads}");
            assert_eq!(map.owners_of(5002).len(), 1);
            let inodes = [5003, 77, 5001, 5003, 0, 5002];
            let batch = map.owners_of_all(&inodes);
            let one_by_one: Vec<&[Link]> = inodes.iter().map(|&i| map.owners_of(i)).collect();
            assert_eq!(batch, one_by_one);
            // An inode wider than 32 bits takes the other path.
            let wide = [5001, 1 << 40, 5003];
            let batch = map.owners_of_all(&wide);
            assert_eq!(batch, wide.iter().map(|&i| map.owners_of(i)).collect::<Vec<_>>());
            let links = map.links();
            assert!(links.windows(2).all(|w| w[0] <= w[1]), "links sorted as Link's Ord says");
            assert_eq!(map.owners_of(5003)[0].pid, 101);
            assert!(map.owners_of(77).is_empty(), "pipes are not sockets");
            assert!(map.owners_of(9999).is_empty());
            assert_eq!(map.processes, 4);
            assert_eq!(map.links().len(), 5);
            assert!(map.denied.is_empty());
        }
    }

    /// A process with more descriptors than one block is shared out
    /// between the workers: every link is found once, whatever the threads.
    #[test]
    fn big_process_is_split_between_workers() {
        let many: Vec<(u32, String)> = (0..5000).map(|fd| (fd, format!("socket:[{}]", 100_000 + fd))).collect();
        let many: Vec<(u32, &str)> = many.iter().map(|(fd, t)| (*fd, t.as_str())).collect();
        let tree = fake_proc(&[(10, &many), (11, &[(3, "socket:[100000]")]), (12, &[(0, "/dev/null")])]);
        for threads in [1, 2, 3, 8] {
            let map = OwnerMap::build(tree.path(), threads).unwrap();
            assert_eq!(map.links().len(), 5001, "threads={threads}");
            assert_eq!(map.processes, 3);
            for fd in [0u32, 1023, 1024, 2048, 4999] {
                let owners: Vec<(u32, u32)> =
                    map.owners_of(100_000 + u64::from(fd)).iter().map(|l| (l.pid, l.fd)).collect();
                let want = if fd == 0 { vec![(10, 0), (11, 3)] } else { vec![(10, fd)] };
                assert_eq!(owners, want, "threads={threads}");
            }
        }
    }

    /// `build_with_details` reads the details of socket holders only, and
    /// a process table seeded with them answers without reading again.
    #[test]
    fn details_of_socket_holders_are_read_during_the_walk() {
        let tree = fake_proc(&[(500, &[(3, "socket:[7]")]), (501, &[(0, "/dev/null")])]);
        for (pid, comm) in [(500, "web"), (501, "idle")] {
            let dir = tree.path().join(pid.to_string());
            fs::write(
                dir.join("stat"),
                format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0\n"),
            )
            .unwrap();
            fs::write(dir.join("status"), "Name:\tx\nUid:\t0\t0\t0\t0\n").unwrap();
            fs::write(dir.join("cmdline"), format!("/usr/bin/{comm}\0--flag\0")).unwrap();
        }
        let mut map = OwnerMap::build_with_details(tree.path(), 2).unwrap();
        let pids: Vec<u32> = map.infos.iter().map(|(pid, _)| *pid).collect();
        assert_eq!(pids, [500]);
        assert!(OwnerMap::build(tree.path(), 2).unwrap().infos.is_empty());
        let mut table = ProcTable::new(tree.path());
        table.seed(std::mem::take(&mut map.infos));
        // Gone from disk: the seeded record must be what answers.
        fs::remove_dir_all(tree.path().join("500")).unwrap();
        let info = table.info(500);
        assert_eq!((&*info.name, &*info.cmdline, info.start_ticks), ("web", "/usr/bin/web --flag", Some(4242)));
    }

    /// Sockets opened after the walk read their process: a recheck finds
    /// those of the candidates and of processes started since, and no
    /// others (a full second walk is what it avoids).
    #[test]
    fn recheck_reads_candidates_and_new_processes() {
        let tree = fake_proc(&[(100, &[(3, "socket:[5001]")]), (200, &[(0, "/dev/null")])]);
        let mut map = OwnerMap::build(tree.path(), 2).unwrap();
        assert_eq!(map.processes, 2);
        symlink("socket:[6001]", tree.path().join("100/fd/9")).unwrap(); // accepted by the listener's holder
        symlink("socket:[7001]", tree.path().join("200/fd/4")).unwrap(); // opened by a process not asked about
        fs::create_dir_all(tree.path().join("300/fd")).unwrap();
        symlink("socket:[8001]", tree.path().join("300/fd/3")).unwrap(); // a process started since
        assert_eq!(map.recheck(&[100]), 2);
        let owners = |map: &OwnerMap, inode| map.owners_of(inode).iter().map(|l| (l.pid, l.fd)).collect::<Vec<_>>();
        assert_eq!(owners(&map, 6001), [(100, 9)]);
        assert_eq!(owners(&map, 8001), [(300, 3)]);
        assert_eq!(owners(&map, 7001), []);
        assert_eq!(owners(&map, 5001), [(100, 3)], "a process read twice is not listed twice");
        assert!(map.links().windows(2).all(|w| w[0] < w[1]), "links stay sorted and unique");
        assert_eq!(map.processes, 3);
        // Nothing new and no candidates: nothing is read, nothing added.
        assert_eq!(map.recheck(&[]), 0);
    }

    /// A thread's table copied from its process's: a link both have is the
    /// process's; what only the thread has keeps its tid. Parts sorted on
    /// their threads merge to the same map.
    #[test]
    fn thread_copies_are_the_process_s_and_parts_merge() {
        let l = |inode, pid, fd, tid| Link { inode, pid, fd, tid, flags: 0 };
        let links = vec![l(9, 100, 3, 101), l(9, 100, 3, 0), l(8, 100, 4, 101), l(7, 100, 5, 102), l(7, 100, 5, 101)];
        let map = OwnerMap::from_links(links.clone(), vec![]);
        let got: Vec<(u64, u32)> = map.links().iter().map(|l| (l.inode, l.tid)).collect();
        // 9: the process's; 8: the thread's only; 7: two threads' own copies.
        assert_eq!(got, [(7, 101), (7, 102), (8, 101), (9, 0)]);
        let (mut a, mut b) = (links[..2].to_vec(), links[2..].to_vec());
        sort_links(&mut a);
        sort_links(&mut b);
        let merged = OwnerMap::from_sorted_parts(vec![b, a], vec![100], vec![]);
        assert_eq!(merged.links(), map.links());
    }

    #[test]
    fn unreadable_process_is_denied_not_fatal() {
        let tree = fake_proc(&[(300, &[(3, "socket:[1]")]), (301, &[(5, "socket:[2]")])]);
        let fd_dir = tree.path().join("301/fd");
        fs::set_permissions(&fd_dir, fs::Permissions::from_mode(0o000)).unwrap();
        let map = OwnerMap::build(tree.path(), 2).unwrap();
        fs::set_permissions(&fd_dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(map.owners_of(1).len(), 1);
        // root reads a 0000 directory anyway (CAP_DAC_OVERRIDE); anyone else is denied.
        if crate::sys::is_root() {
            assert_eq!(map.owners_of(2).len(), 1);
        } else {
            assert_eq!(map.denied, vec![301]);
            assert!(map.owners_of(2).is_empty());
        }
    }

    #[test]
    fn vanished_process_is_skipped_quietly() {
        // a pid directory without an fd dir: like a process gone mid-walk
        let tree = fake_proc(&[(400, &[(3, "socket:[9]")])]);
        fs::create_dir_all(tree.path().join("401")).unwrap();
        let map = OwnerMap::build(tree.path(), 1).unwrap();
        assert!(map.errors.is_empty());
        assert!(map.denied.is_empty());
        assert_eq!(map.owners_of(9).len(), 1);
    }

    #[test]
    fn live_walk_finds_our_own_socket() {
        use std::os::unix::fs::MetadataExt;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = fs::metadata(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&l))).unwrap().ino();
        let map = OwnerMap::build(Path::new("/proc"), 2).unwrap();
        let owners = map.owners_of(inode);
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].pid, std::process::id());
    }

    /// Minimal temp dir (no extra dependency for one test helper).
    pub(crate) mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempDir(PathBuf);
        static N: AtomicU32 = AtomicU32::new(0);

        impl TempDir {
            pub fn new() -> TempDir {
                let p = std::env::temp_dir().join(format!(
                    "portctl-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                TempDir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}
