//! Race-free signalling: a pidfd pins the process, so once we have checked
//! that *this* process holds the socket, the signal cannot reach a stranger
//! that reused the pid.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// An open pidfd (`pidfd_open(2)`, Linux 5.3+).
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pub pid: u32,
}

impl PidFd {
    /// Opens a pidfd; `ESRCH` when the process is gone.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        // SAFETY: pidfd_open takes a pid and flags; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(PidFd { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) }, pid })
    }

    /// `pidfd_send_signal(2)`.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
        };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Whether the process has exited (a pidfd polls readable then).
    pub fn exited(&self) -> bool {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLIN != 0
    }
}

/// Whether `pid` still has socket `inode` open as descriptor `fd`.
pub fn still_holds(proc_root: &Path, pid: u32, fd: u32, inode: u64) -> bool {
    match std::fs::read_link(proc_root.join(pid.to_string()).join("fd").join(fd.to_string())) {
        Ok(target) => target.as_os_str().as_encoded_bytes() == format!("socket:[{inode}]").as_bytes(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn own_socket_is_held_and_signal_zero_works() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd() as u32;
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let me = std::process::id();
        assert!(still_holds(Path::new("/proc"), me, fd, inode));
        assert!(!still_holds(Path::new("/proc"), me, fd, inode + 1));
        let p = PidFd::open(me).unwrap();
        p.signal(0).unwrap();
        assert!(!p.exited());
    }

    #[test]
    fn exited_child_is_seen_through_its_pidfd() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let p = PidFd::open(child.id()).unwrap();
        child.wait().unwrap();
        assert!(p.exited());
        // Signalling a reaped process through its pidfd fails with ESRCH
        // instead of hitting whoever reuses the pid.
        assert_eq!(p.signal(0).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }
}
