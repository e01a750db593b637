//! The C library calls rustix has no safe wrapper for, in one place: the
//! user database through NSS (`getpwuid_r`, `getpwnam_r`, so LDAP and sssd
//! users resolve as `ls -l` and `id` resolve them), interface addresses and
//! names (`getifaddrs`, `if_indextoname`), `pidfd_send_signal` with any
//! signal number (rustix's `Signal` cannot carry 0 or real-time signals),
//! and `kcmp(2)`, to tell a thread's own descriptor table from its
//! process's.
//!
//! Every other system call goes through rustix; `bpf(2)`, which it lacks
//! too, is in [`bpf`].

pub mod bpf;

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Runs a `getpw*_r` call with a buffer that grows on ERANGE; the closure
/// gets (out-struct, buffer, result pointer) and returns the call's code.
fn with_passwd<T>(
    call: impl Fn(&mut libc::passwd, &mut [libc::c_char], &mut *mut libc::passwd) -> libc::c_int,
    read: impl FnOnce(&libc::passwd) -> T,
) -> Option<T> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid value
    // for an out-parameter the call overwrites.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    for _ in 0..4 {
        let rc = call(&mut pwd, &mut buf, &mut result);
        if rc == libc::ERANGE {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then(|| read(&pwd));
    }
    None
}

/// The name of a uid, `None` when the user database has none.
pub fn user_name(uid: u32) -> Option<String> {
    with_passwd(
        // SAFETY: every pointer is valid for the call and the buffer's
        // length is passed with it; the buffer outlives the call.
        |pwd, buf, result| unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) },
        // SAFETY: on success pw_name points into the buffer, which is still
        // alive here, and is NUL-terminated.
        |pwd| unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned(),
    )
}

/// The uid of a user name, `None` when there is no such user.
pub fn uid_of(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    with_passwd(
        // SAFETY: as in `user_name`; cname is NUL-terminated and alive.
        |pwd, buf, result| unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) },
        |pwd| pwd.pw_uid,
    )
}

/// Local address -> interface name, from getifaddrs(3), of the calling
/// thread's network namespace.
pub fn interface_addresses() -> HashMap<IpAddr, String> {
    let mut out = HashMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose real
        // size is the one its sa_family declares, checked before each cast.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            }
        };
        // SAFETY: ifa_name is non-null and NUL-terminated.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        out.entry(addr).or_insert(name);
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The name of an interface index in the calling thread's network
/// namespace, `None` when there is no such interface (any more).
pub fn interface_name(index: u32) -> Option<String> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, name.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let cstr = unsafe { CStr::from_ptr(name.as_ptr()) };
    Some(cstr.to_string_lossy().into_owned())
}

/// The interface index of a name in the calling thread's network
/// namespace, `None` when there is no such interface.
pub fn interface_index(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: cname is NUL-terminated and outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    (index != 0).then_some(index)
}

/// `pidfd_send_signal(2)` with any signal number, 0 (a check that delivers
/// nothing) included.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number the kernel checks, no siginfo,
    // no flags.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `kcmp(2)` with `KCMP_FILES`: whether two tasks (thread ids, or a
/// process and one of its threads) share one file descriptor table. Needs
/// the right to ptrace both (EPERM otherwise); ESRCH when one is gone.
pub fn same_fd_table(a: u32, b: u32) -> io::Result<bool> {
    const KCMP_FILES: libc::c_int = 2;
    let (a, b) = (libc::pid_t::try_from(a), libc::pid_t::try_from(b));
    let (Ok(a), Ok(b)) = (a, b) else { return Err(io::Error::from_raw_os_error(libc::ESRCH)) };
    // SAFETY: kcmp takes two pids, a type and two unused numbers; no
    // memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_FILES, 0usize, 0usize) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc == 0) }
}

/// The calling thread's network namespace's cookie (`SO_NETNS_COOKIE`,
/// Linux 5.14+): unique among the namespaces since boot, where inodes are
/// reused.
pub fn netns_cookie() -> io::Result<u64> {
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let sock = rustix::net::socket(rustix::net::AddressFamily::UNIX, rustix::net::SocketType::DGRAM, None)?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `sock` is an open socket; the kernel writes at most `len`
    // bytes into `cookie`, a u64 of that size, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(cookie) }
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_database_both_ways() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(user_name(4_000_000_000), None);
        assert_eq!(uid_of("nosuchuser-portctl"), None);
        assert_eq!(uid_of("nul\0inside"), None);
    }

    /// Threads share their process's table until one unshares it.
    #[test]
    fn kcmp_tells_tables_apart() {
        let me = std::process::id();
        assert!(same_fd_table(me, me).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32).unwrap();
            let _ = done_rx.recv();
        });
        let tid = rx.recv().unwrap();
        assert!(same_fd_table(me, tid).unwrap(), "a thread shares the table");
        let private = std::thread::spawn(|| {
            // SAFETY: this thread uses no descriptor after unsharing.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES) }.unwrap();
            let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
            same_fd_table(std::process::id(), tid).unwrap()
        });
        assert!(!private.join().unwrap(), "after unshare(CLONE_FILES) it has its own");
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(same_fd_table(me, u32::MAX).is_err());
    }

    #[test]
    fn loopback_has_a_name_and_an_address() {
        assert_eq!(interface_name(1).as_deref(), Some("lo"));
        assert_eq!(interface_index("lo"), Some(1));
        assert_eq!(interface_index("no-such-if0"), None);
        assert_eq!(interface_index("nul\0"), None);
        assert_eq!(interface_name(u32::MAX), None);
        assert_eq!(interface_addresses().get(&IpAddr::from([127, 0, 0, 1])).map(String::as_str), Some("lo"));
    }
}
