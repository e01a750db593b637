//! The hot loop: every `/proc/PID/fd/*` link, read with `getdents64` and
//! `readlinkat` relative to the fd directory (rustix's `RawDir` and
//! `readlinkat_raw`, which take caller buffers), into a flat list of
//! (socket inode, pid, fd).
//!
//! Why not `std::fs::read_dir` + `read_link`: those allocate a `CString`, a
//! `DirEntry` and a `PathBuf` per fd, and build absolute paths the kernel must
//! walk again. Here nothing is allocated per fd: descriptor numbers are
//! collected from the getdents buffer, and names and links live in stack
//! buffers. The fd walk is almost all kernel time, so it is shared out over
//! all cores: pids one at a time, and a big process's descriptors in blocks.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, RawDir};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::RawInfo;

/// One socket reference: inode, pid, fd, and the thread when the
/// descriptor is in a thread's own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub inode: u64,
    pub pid: u32,
    pub fd: u32,
    /// 0 for the process's table; else the thread (it called
    /// `unshare(CLONE_FILES)`) whose table holds `fd`.
    pub tid: u32,
    /// What the source read of the socket itself ([`super::flags`]); 0:
    /// nothing (the /proc walk).
    pub flags: u8,
}

impl Link {
    /// The thread of a thread-private table.
    pub fn thread(&self) -> Option<u32> {
        (self.tid != 0).then_some(self.tid)
    }
}

/// What one walk saw.
#[derive(Debug, Default)]
pub struct WalkResult {
    pub links: Vec<Link>,
    /// Processes whose fds we may not read (EACCES/EPERM).
    pub denied: Vec<u32>,
    /// Processes looked at.
    pub processes: usize,
    /// Other errors, one per process at most (for a warning).
    pub errors: Vec<(u32, io::Error)>,
    /// Details of processes holding sockets (when asked).
    pub infos: Vec<(u32, RawInfo)>,
    /// The pids the walk set out to read, in the order it listed them.
    pub pids: Vec<u32>,
}

/// Descriptors of one process that one worker reads in a row, at most. A
/// process with more (a busy server: 100k sockets in one process is common)
/// is cut into blocks that every worker takes from, so that one big process
/// does not leave the walk on one core.
const BLOCK: usize = 1024;

/// Part of a big process's descriptors, for any worker to read.
struct Block {
    pid: u32,
    dir: Arc<OwnedFd>,
    fds: Vec<u32>,
}

/// Work shared by the walk's threads: pids in /proc order, then blocks.
struct Work<'a> {
    root: &'a OwnedFd,
    /// Where details are read from, when they are.
    details: Option<&'a Path>,
    pids: &'a [u32],
    next: AtomicUsize,
    blocks: Mutex<Vec<Block>>,
    /// Workers between taking a pid and publishing its blocks: while one
    /// is, an idle worker waits for blocks instead of ending.
    listing: AtomicUsize,
}

/// Walks `<root>/*/fd` (root is `/proc`, or a fake tree in tests); with
/// `details`, also reads the details of each process found holding a socket.
pub fn walk(root: &Path, threads: usize, details: bool) -> io::Result<WalkResult> {
    walk_pids(root, None, threads, details)
}

/// The pids under `root` now, in directory order.
pub fn pids(root: &Path) -> io::Result<Vec<u32>> {
    list_pids(&open_dir(rustix::fs::CWD, &path_cstring(root)?)?)
}

/// Walks the fd directories of `only` (those still there), or of every
/// process under `root` when `None`. `WalkResult::pids` is what was walked.
pub fn walk_pids(root: &Path, only: Option<&[u32]>, threads: usize, details: bool) -> io::Result<WalkResult> {
    let root_fd = open_dir(rustix::fs::CWD, &path_cstring(root)?)?;
    let pids = match only {
        Some(p) => p.to_vec(),
        None => list_pids(&root_fd)?,
    };
    let work = Work {
        root: &root_fd,
        details: details.then_some(root),
        pids: &pids,
        next: AtomicUsize::new(0),
        blocks: Mutex::new(Vec::new()),
        listing: AtomicUsize::new(0),
    };
    let threads = threads.clamp(1, pids.len().max(1));
    let mut result = if threads == 1 {
        work.run()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..threads).map(|_| s.spawn(|| work.run())).collect();
            let mut first = work.run();
            for h in handles {
                // A worker panicking would be a bug; keep what the others found.
                if let Ok(r) = h.join() {
                    first.links.extend(r.links);
                    first.denied.extend(r.denied);
                    first.errors.extend(r.errors);
                    first.processes += r.processes;
                    first.infos.extend(r.infos);
                }
            }
            first
        })
    };
    // A process cut into blocks may be denied by several workers.
    result.denied.sort_unstable();
    result.denied.dedup();
    result.pids = pids;
    Ok(result)
}

impl Work<'_> {
    /// One worker: blocks first (each holds a directory open), then the
    /// next pid, until neither is left.
    fn run(&self) -> WalkResult {
        let mut out = WalkResult::default();
        let mut dents = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
        let mut fds = Vec::new();
        loop {
            let block = self.blocks.lock().unwrap_or_else(PoisonError::into_inner).pop();
            if let Some(b) = block {
                read_links(&b.dir, b.pid, &b.fds, &mut out);
                continue;
            }
            // Counted as listing before taking a pid: a worker that finds
            // none left then knows whether blocks may still come.
            self.listing.fetch_add(1, Ordering::AcqRel);
            let Some(&pid) = self.pids.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                self.listing.fetch_sub(1, Ordering::AcqRel);
                if self.listing.load(Ordering::Acquire) == 0
                    && self.blocks.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
                {
                    break;
                }
                std::thread::yield_now();
                continue;
            };
            out.processes += 1;
            let dir = list_fds(self.root, pid, &mut dents, &mut fds, &mut out);
            let Some(dir) = dir else {
                self.listing.fetch_sub(1, Ordering::AcqRel);
                continue;
            };
            if fds.len() <= BLOCK {
                self.listing.fetch_sub(1, Ordering::AcqRel);
                let before = out.links.len();
                read_links(&dir, pid, &fds, &mut out);
                thread_tables(self.root, pid, &mut dents, &mut fds, &mut out);
                if out.links.len() > before {
                    self.read_details(pid, &mut out);
                }
                continue;
            }
            let dir = Arc::new(dir);
            {
                let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
                for part in fds[BLOCK..].chunks(BLOCK) {
                    blocks.push(Block { pid, dir: dir.clone(), fds: part.to_vec() });
                }
            }
            self.listing.fetch_sub(1, Ordering::AcqRel);
            read_links(&dir, pid, &fds[..BLOCK], &mut out);
            let mut more = Vec::new();
            thread_tables(self.root, pid, &mut dents, &mut more, &mut out);
            // Sockets may be in any block: a big process gets its details
            // read either way.
            self.read_details(pid, &mut out);
        }
        out
    }

    fn read_details(&self, pid: u32, out: &mut WalkResult) {
        if let Some(root) = self.details {
            out.infos.push((pid, RawInfo::read(&root.join(pid.to_string()))));
        }
    }
}

/// Opens `PID/fd` and reads its descriptor numbers into `fds`; `None` when
/// the process is gone or may not be read (recorded in `out`).
fn list_fds(
    root: &OwnedFd,
    pid: u32,
    dents: &mut [MaybeUninit<u8>],
    fds: &mut Vec<u32>,
    out: &mut WalkResult,
) -> Option<OwnedFd> {
    let mut path = [0u8; 24];
    let n = write_pid_fd_path(&mut path, pid);
    let c = CStr::from_bytes_with_nul(&path[..=n]).ok()?;
    list_fd_dir(root, c, pid, dents, fds, out)
}

/// Opens an fd directory (`PID/fd`, `PID/task/TID/fd`) and reads its
/// descriptor numbers into `fds`; `None` when gone or denied (recorded in
/// `out` under `pid`).
fn list_fd_dir(
    root: &OwnedFd,
    c: &CStr,
    pid: u32,
    dents: &mut [MaybeUninit<u8>],
    fds: &mut Vec<u32>,
    out: &mut WalkResult,
) -> Option<OwnedFd> {
    fds.clear();
    let dir = match open_dir(root, c) {
        Ok(fd) => fd,
        Err(e) => {
            match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => out.denied.push(pid),
                // Gone since we listed it, or a kernel thread being reaped.
                Some(libc::ENOENT) | Some(libc::ESRCH) => {}
                _ => out.errors.push((pid, e)),
            }
            return None;
        }
    };
    // An error mid-listing (the process died: ENOENT) ends the list.
    let _ = each_number_entry(&dir, dents, |fd| fds.push(fd));
    Some(dir)
}

/// The descriptor tables of `pid`'s threads that are not the process's
/// own (a thread that called `unshare(CLONE_FILES)`), walked like it, their
/// links tagged with the thread. Cheap for everyone else: one `stat` of
/// `PID/task` tells the thread count (its link count is 2 + threads), and
/// only a multi-threaded process has its threads compared with
/// `kcmp(KCMP_FILES)`.
fn thread_tables(root: &OwnedFd, pid: u32, dents: &mut [MaybeUninit<u8>], fds: &mut Vec<u32>, out: &mut WalkResult) {
    let mut path = [0u8; 48];
    let n = write_decimal(&mut path, pid);
    path[n..n + 5].copy_from_slice(b"/task");
    path[n + 5] = 0;
    let Ok(task) = CStr::from_bytes_with_nul(&path[..=n + 5]) else { return };
    match rustix::fs::statat(root, task, rustix::fs::AtFlags::empty()) {
        Ok(st) if st.st_nlink > 3 => {}
        _ => return,
    }
    let Ok(dir) = open_dir(root, task) else { return };
    let mut tids = Vec::new();
    let _ = each_number_entry(&dir, dents, |tid| tids.push(tid));
    for tid in tids.into_iter().filter(|&t| t != pid) {
        match crate::sys::same_fd_table(pid, tid) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
                out.denied.push(pid);
                return;
            }
            Err(_) => continue, // the thread ended
        }
        // PID/task/TID/fd
        let mut m = n + 5;
        path[m] = b'/';
        m += 1;
        m += write_decimal(&mut path[m..], tid);
        path[m..m + 3].copy_from_slice(b"/fd");
        path[m + 3] = 0;
        let Ok(c) = CStr::from_bytes_with_nul(&path[..=m + 3]) else { continue };
        if let Some(fd_dir) = list_fd_dir(root, c, pid, dents, fds, out) {
            let before = out.links.len();
            read_links(&fd_dir, pid, fds, out);
            for l in &mut out.links[before..] {
                l.tid = tid;
            }
        }
    }
}

/// Reads the links of `fds` in the fd directory `dir`, keeping sockets.
fn read_links(dir: &OwnedFd, pid: u32, fds: &[u32], out: &mut WalkResult) {
    let mut name = [0u8; 12];
    let mut link = [0u8; 64];
    let mut denied = false;
    for &fd in fds {
        let n = write_decimal(&mut name, fd);
        let Ok(cname) = CStr::from_bytes_with_nul(&name[..=n]) else { continue };
        match rustix::fs::readlinkat_raw(dir, cname, &mut link[..]) {
            Ok(len) => {
                if let Some(inode) = socket_inode(&link[..len.min(link.len())]) {
                    out.links.push(Link { inode, pid, fd, tid: 0, flags: 0 });
                }
            }
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => denied = true,
            Err(_) => {} // fd closed meanwhile: normal
        }
    }
    if denied {
        out.denied.push(pid);
    }
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?;
    let digits = rest.strip_suffix(b"]")?;
    parse_decimal(digits)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as u64;
    }
    Some(n)
}

/// Writes `n` in decimal and a NUL into buf; returns the index of the NUL.
fn write_decimal(buf: &mut [u8], n: u32) -> usize {
    let mut digits = itoa::Buffer::new();
    let d = digits.format(n).as_bytes();
    buf[..d.len()].copy_from_slice(d);
    buf[d.len()] = 0;
    d.len()
}

/// Writes `PID/fd\0` into buf, returns the index of the NUL.
fn write_pid_fd_path(buf: &mut [u8; 24], pid: u32) -> usize {
    let n = write_decimal(buf, pid);
    buf[n..n + 3].copy_from_slice(b"/fd");
    buf[n + 3] = 0;
    n + 3
}

fn list_pids(root: &OwnedFd) -> io::Result<Vec<u32>> {
    // A second descriptor: getdents moves the offset of the one it reads.
    let dir = open_dir(root, c".")?;
    let mut pids = Vec::with_capacity(1024);
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
    each_number_entry(&dir, &mut buf, |pid| pids.push(pid))?;
    Ok(pids)
}

/// Calls `f` with every directory entry of `dir` whose name is a number
/// (a pid in /proc, a descriptor in /proc/PID/fd); other names are
/// skipped. Stops at the first error and returns it.
fn each_number_entry(dir: &OwnedFd, buf: &mut [MaybeUninit<u8>], mut f: impl FnMut(u32)) -> io::Result<()> {
    let mut entries = RawDir::new(dir.as_fd(), buf);
    while let Some(entry) = entries.next() {
        if let Some(n) = parse_number_name(entry?.file_name()) {
            f(n);
        }
    }
    Ok(())
}

/// A directory entry name that is a decimal number fitting in u32.
fn parse_number_name(name: &CStr) -> Option<u32> {
    parse_decimal(name.to_bytes()).and_then(|n| u32::try_from(n).ok())
}

fn open_dir(at: impl AsFd, path: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(at, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

fn path_cstring(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"pipe:[99]"), None);
        assert_eq!(socket_inode(b"anon_inode:[eventpoll]"), None);
    }

    #[test]
    fn fd_names() {
        assert_eq!(parse_number_name(c"17"), Some(17));
        assert_eq!(parse_number_name(c"."), None);
        assert_eq!(parse_number_name(c".."), None);
        assert_eq!(parse_number_name(c"self"), None);
        assert_eq!(parse_number_name(c"99999999999"), None); // wider than u32
    }

    #[test]
    fn pid_path() {
        let mut b = [0u8; 24];
        let n = write_pid_fd_path(&mut b, 4194304);
        assert_eq!(&b[..=n], b"4194304/fd\0");
        let n = write_pid_fd_path(&mut b, 0);
        assert_eq!(&b[..=n], b"0/fd\0");
        let mut b = [0u8; 12];
        let n = write_decimal(&mut b, u32::MAX);
        assert_eq!(&b[..=n], b"4294967295\0");
    }

    proptest::proptest! {
        /// Link targets are whatever the process opened (a path can be
        /// anything): only `socket:[N]` is a socket.
        #[test]
        fn random_links_never_panic(link in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Some(inode) = socket_inode(&link) {
                proptest::prop_assert_eq!(format!("socket:[{inode}]").into_bytes(), link);
            }
        }
    }
}
