//! The hot loop: every `/proc/PID/fd/*` link, read with raw `getdents64` and
//! `readlinkat` relative to the fd directory, into a flat list of
//! (socket inode, pid, fd).
//!
//! Why not `std::fs::read_dir` + `read_link`: those allocate a `CString`, a
//! `DirEntry` and a `PathBuf` per fd, and build absolute paths the kernel must
//! walk again. Here nothing is allocated per fd: names come straight out of
//! the getdents buffer, already NUL-terminated, and links are read into a
//! stack buffer. The fd walk is almost all kernel time, so pids are shared out
//! over all cores.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One socket reference: inode, pid, fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub inode: u64,
    pub pid: u32,
    pub fd: u32,
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
}

/// Pids handed to a worker at a time, at most: large enough that the shared
/// counter is not contended on hosts with thousands of processes.
const MAX_CHUNK: usize = 8;

/// Walks `<root>/*/fd` (root is `/proc`, or a fake tree in tests).
pub fn walk(root: &Path, threads: usize) -> io::Result<WalkResult> {
    let root_fd = open_dir(libc::AT_FDCWD, &path_cstring(root)?)?;
    let pids = list_pids(&root_fd)?;
    // About 16 chunks per thread: busy processes often have neighbouring
    // pids (a server and its workers), and one thread must not get them all.
    let chunk = (pids.len() / (threads.max(1) * 16)).clamp(1, MAX_CHUNK);
    let threads = threads.clamp(1, pids.len().div_ceil(chunk).max(1));
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = WalkResult::default();
        let mut dents = vec![0u8; 32 * 1024];
        loop {
            let start = next.fetch_add(chunk, Ordering::Relaxed);
            if start >= pids.len() {
                break;
            }
            for &pid in &pids[start..(start + chunk).min(pids.len())] {
                out.processes += 1;
                walk_pid(&root_fd, pid, &mut dents, &mut out);
            }
        }
        out
    };
    let mut result = if threads == 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
            let mut first = work();
            for h in handles {
                // A worker panicking would be a bug; keep what the others found.
                if let Ok(r) = h.join() {
                    first.links.extend(r.links);
                    first.denied.extend(r.denied);
                    first.errors.extend(r.errors);
                    first.processes += r.processes;
                }
            }
            first
        })
    };
    result.denied.sort_unstable();
    Ok(result)
}

fn walk_pid(root: &OwnedFd, pid: u32, dents: &mut [u8], out: &mut WalkResult) {
    let mut path = [0u8; 24];
    let fd_dir = {
        let n = write_pid_fd_path(&mut path, pid);
        // SAFETY: path[..=n] is NUL-terminated by write_pid_fd_path.
        let c = unsafe { CStr::from_bytes_with_nul_unchecked(&path[..=n]) };
        match open_dir(root.as_raw_fd(), c) {
            Ok(fd) => fd,
            Err(e) => {
                match e.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => out.denied.push(pid),
                    // Gone since we listed it, or a kernel thread being reaped.
                    Some(libc::ENOENT) | Some(libc::ESRCH) => {}
                    _ => out.errors.push((pid, e)),
                }
                return;
            }
        }
    };
    let mut link = [0u8; 64];
    let mut denied = false;
    loop {
        // SAFETY: dents is a valid writable buffer of the given length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd_dir.as_raw_fd(), dents.as_mut_ptr(), dents.len()) };
        if n <= 0 {
            // 0: end; <0: the process died mid-read (ENOENT) or similar.
            break;
        }
        let mut off = 0usize;
        let n = n as usize;
        while off + 19 < n {
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[]
            let reclen = u16::from_ne_bytes([dents[off + 16], dents[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            let name = &dents[off + 19..off + reclen];
            off += reclen;
            let Some(fd) = parse_fd_name(name) else { continue };
            // SAFETY: name is NUL-terminated within the record (checked by
            // parse_fd_name), link is a valid buffer.
            let len = unsafe {
                libc::readlinkat(
                    fd_dir.as_raw_fd(),
                    name.as_ptr() as *const libc::c_char,
                    link.as_mut_ptr() as *mut libc::c_char,
                    link.len(),
                )
            };
            if len < 0 {
                if matches!(io::Error::last_os_error().raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                    denied = true;
                }
                continue; // fd closed meanwhile: normal
            }
            if let Some(inode) = socket_inode(&link[..len as usize]) {
                out.links.push(Link { inode, pid, fd });
            }
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

/// A directory entry name (NUL-terminated, maybe padded) that is a number.
fn parse_fd_name(name: &[u8]) -> Option<u32> {
    let end = name.iter().position(|&b| b == 0)?;
    parse_decimal(&name[..end]).and_then(|n| u32::try_from(n).ok())
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

/// Writes `PID/fd\0` into buf, returns the index of the NUL.
fn write_pid_fd_path(buf: &mut [u8; 24], pid: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut p = pid;
    loop {
        i -= 1;
        digits[i] = b'0' + (p % 10) as u8;
        p /= 10;
        if p == 0 {
            break;
        }
    }
    let d = &digits[i..];
    buf[..d.len()].copy_from_slice(d);
    buf[d.len()..d.len() + 3].copy_from_slice(b"/fd");
    buf[d.len() + 3] = 0;
    d.len() + 3
}

fn list_pids(root: &OwnedFd) -> io::Result<Vec<u32>> {
    // A second descriptor: getdents moves the offset of the one it reads.
    let dir = open_dir(root.as_raw_fd(), c".")?;
    let mut pids = Vec::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: valid buffer and length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            if let Some(pid) = parse_fd_name(&buf[off + 19..off + reclen]) {
                pids.push(pid);
            }
            off += reclen;
        }
    }
    Ok(pids)
}

fn open_dir(at: libc::c_int, path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated; the returned fd is owned by us.
    let fd = unsafe { libc::openat(at, path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: fd is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
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
        assert_eq!(parse_fd_name(b"17\0\0\0"), Some(17));
        assert_eq!(parse_fd_name(b".\0"), None);
        assert_eq!(parse_fd_name(b"..\0"), None);
        assert_eq!(parse_fd_name(b"self\0"), None);
        assert_eq!(parse_fd_name(b"17"), None); // no NUL: not trusted
    }

    #[test]
    fn pid_path() {
        let mut b = [0u8; 24];
        let n = write_pid_fd_path(&mut b, 4194304);
        assert_eq!(&b[..=n], b"4194304/fd\0");
        let n = write_pid_fd_path(&mut b, 0);
        assert_eq!(&b[..=n], b"0/fd\0");
    }
}
