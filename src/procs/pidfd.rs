//! Race-free signalling: a pidfd pins the process, so once we have checked
//! that *this* process holds the socket, the signal cannot reach a stranger
//! that reused the pid.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags};

/// An open pidfd (`pidfd_open(2)`, Linux 5.3+).
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pub pid: u32,
}

impl PidFd {
    /// Opens a pidfd; `ESRCH` when the process is gone.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        let id = Pid::from_raw(raw).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        Ok(PidFd { fd: rustix::process::pidfd_open(id, PidfdFlags::empty())?, pid })
    }

    /// `pidfd_send_signal(2)`; signal 0 checks without delivering.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        crate::sys::pidfd_send_signal(self.fd.as_fd(), sig)
    }

    /// Whether the process has exited (a pidfd polls readable then).
    pub fn exited(&self) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(1)) && fds[0].revents().contains(PollFlags::IN)
    }
}

/// What came of signalling one holder.
#[derive(Debug)]
pub enum Delivery {
    /// Delivered; the pidfd, for waiting on the process and escalating.
    Signalled(PidFd),
    /// The process exited, or no longer holds any of the sockets: nothing
    /// was sent (a recycled pid is a stranger).
    Gone(&'static str),
    /// The kernel refused (another user's process, not root), and why.
    NotPermitted(String),
}

/// A descriptor a process holds a socket by: in its own table, or in the
/// table of one of its threads (`tid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub tid: Option<u32>,
    pub fd: u32,
    pub inode: u64,
}

/// Signals one holder, race-free: pin the process with a pidfd, then check
/// that it still holds one of the sockets (`links`), and only then signal
/// through the pidfd.
pub fn signal_holder(proc_root: &Path, pid: u32, links: &[Held], sig: i32) -> Delivery {
    const EXITED: &str = "exited before it could be signalled";
    let pidfd = match PidFd::open(pid) {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Delivery::Gone(EXITED),
        Err(e) => return Delivery::NotPermitted(format!("pidfd_open: {e}")),
    };
    if !links.iter().any(|h| still_holds(proc_root, pid, h)) {
        return Delivery::Gone("no longer holds the socket");
    }
    match pidfd.signal(sig) {
        Ok(()) => Delivery::Signalled(pidfd),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Delivery::Gone(EXITED),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            Delivery::NotPermitted("not permitted: run as its user or as root".into())
        }
        Err(e) => Delivery::NotPermitted(e.to_string()),
    }
}

/// Whether `pid` still has socket `h.inode` open as descriptor `h.fd` (of
/// thread `h.tid`'s own table, when it has one).
pub fn still_holds(proc_root: &Path, pid: u32, h: &Held) -> bool {
    let dir = proc_root.join(pid.to_string());
    let dir = match h.tid {
        Some(tid) => dir.join("task").join(tid.to_string()),
        None => dir,
    };
    match std::fs::read_link(dir.join("fd").join(h.fd.to_string())) {
        Ok(target) => target.as_os_str().as_encoded_bytes() == format!("socket:[{}]", h.inode).as_bytes(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn own_socket_is_held_and_signal_zero_works() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd() as u32;
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        let me = std::process::id();
        assert!(still_holds(Path::new("/proc"), me, &Held { tid: None, fd, inode }));
        assert!(!still_holds(Path::new("/proc"), me, &Held { tid: None, fd, inode: inode + 1 }));
        let p = PidFd::open(me).unwrap();
        p.signal(0).unwrap();
        assert!(!p.exited());
    }

    #[test]
    fn exited_process_is_reported_gone_not_crashed_on() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let d = signal_holder(Path::new("/proc"), pid, &[Held { tid: None, fd: 3, inode: 12345 }], libc::SIGTERM);
        assert!(matches!(d, Delivery::Gone(why) if why.contains("exited")), "{d:?}");
    }

    #[test]
    fn process_no_longer_holding_the_socket_is_not_signalled() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        // sleep holds no socket: as if the pid had been recycled.
        let d = signal_holder(
            Path::new("/proc"),
            child.id(),
            &[Held { tid: None, fd: 3, inode: 999_999_999 }],
            libc::SIGKILL,
        );
        assert!(matches!(d, Delivery::Gone(why) if why.contains("no longer holds")), "{d:?}");
        assert!(child.try_wait().unwrap().is_none(), "the unrelated process was not signalled");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn holder_is_signalled() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = l.as_raw_fd() as u32;
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino();
        // Signal 0: every check, no effect.
        let d = signal_holder(Path::new("/proc"), std::process::id(), &[Held { tid: None, fd, inode }], 0);
        assert!(matches!(d, Delivery::Signalled(_)), "{d:?}");
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
