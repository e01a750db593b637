//! `trybind` — one real bind() with the socket options given, for the tests
//! that check `portctl who`'s verdicts against the kernel (tests/who.rs),
//! including as another user (`setpriv --reuid N trybind ...`).
//!
//! ```text
//! trybind [--reuseaddr] [--reuseport] [--v6only] [--device IFNAME] [--listen] [--hold [--thread-table]] tcp|udp ADDR:PORT
//! ```
//!
//! Prints `ok` or `errno N` (the bind's, or listen()'s with `--listen`) and
//! exits 0 either way (2 on a usage error). With `--hold` and a successful
//! bind it prints `ok inode N uid U tid T fd F` instead and keeps the socket
//! until stdin reaches EOF. With `--thread-table` the socket is made by a
//! thread that first gave itself a descriptor table of its own
//! (`unshare(CLONE_FILES)`): only `/proc/PID/task/T/fd` shows it (portctl
//! must report pid and tid). Only `std` and `libc`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = |name: &str| {
        let at = args.iter().position(|a| a == name);
        at.map(|i| args.remove(i)).is_some()
    };
    let (reuseaddr, reuseport, v6only, listen, hold, thread_table) = (
        flag("--reuseaddr"),
        flag("--reuseport"),
        flag("--v6only"),
        flag("--listen"),
        flag("--hold"),
        flag("--thread-table"),
    );
    let device = args.iter().position(|a| a == "--device").map(|i| {
        args.remove(i);
        if i < args.len() { args.remove(i) } else { usage() }
    });
    let [proto, addr] = args.as_slice() else { usage() };
    let ty = match proto.as_str() {
        "tcp" => libc::SOCK_STREAM,
        "udp" => libc::SOCK_DGRAM,
        _ => usage(),
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else { usage() };
    if thread_table && !hold {
        usage();
    }
    if !hold {
        match bind(ty, addr, reuseaddr, reuseport, v6only, device.as_deref(), listen) {
            Ok(_) => println!("ok"),
            Err(e) => println!("errno {e}"),
        }
        return;
    }
    let make = move || {
        let fd = bind(ty, addr, reuseaddr, reuseport, v6only, device.as_deref(), listen)?;
        // SAFETY: gettid and geteuid have no preconditions.
        let (tid, uid) = unsafe { (libc::gettid(), libc::geteuid()) };
        // This thread's own table, whichever it is.
        let meta =
            std::fs::metadata(format!("/proc/thread-self/fd/{fd}")).map_err(|e| e.raw_os_error().unwrap_or(0))?;
        Ok::<_, i32>(format!("ok inode {} uid {uid} tid {tid} fd {fd}", meta.ino()))
    };
    let (ready, done) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let (ready_tx, ready_rx) = ready;
    let (done_tx, done_rx) = done;
    let holder = std::thread::spawn(move || {
        if thread_table {
            // SAFETY: unshare on this thread only; it then uses only the
            // descriptors it makes itself.
            if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
                let _ = ready_tx.send(Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)));
                return;
            }
        }
        let _ = ready_tx.send(make());
        // Hold the socket (in this thread's table) until told to stop.
        let _ = done_rx.recv();
    });
    match ready_rx.recv() {
        Ok(Ok(line)) => println!("{line}"),
        Ok(Err(e)) => println!("errno {e}"),
        Err(_) => println!("errno 0"),
    }
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    let _ = done_tx.send(());
    let _ = holder.join();
}

fn usage() -> ! {
    eprintln!(
        "usage: trybind [--reuseaddr] [--reuseport] [--v6only] [--device IF] [--listen] [--hold] tcp|udp ADDR:PORT"
    );
    std::process::exit(2)
}

/// The socket, bound (and listening): its descriptor, or the errno.
fn bind(
    ty: libc::c_int,
    addr: SocketAddr,
    reuseaddr: bool,
    reuseport: bool,
    v6only: bool,
    device: Option<&str>,
    listen: bool,
) -> Result<libc::c_int, i32> {
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain syscalls on a descriptor this function owns until it
    // returns it; every pointer is valid for its call and sized as passed.
    unsafe {
        let fd = libc::socket(family, ty, 0);
        if fd < 0 {
            return Err(errno());
        }
        let int = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let set = |level, name, v: libc::c_int| {
            if libc::setsockopt(fd, level, name, (&v as *const libc::c_int).cast(), int) != 0 {
                Err(errno())
            } else {
                Ok(())
            }
        };
        if reuseaddr {
            set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        }
        if reuseport {
            set(libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        if addr.is_ipv6() {
            set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, libc::c_int::from(v6only))?;
        }
        if let Some(dev) = device
            && libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_ptr().cast(), dev.len() as u32) != 0
        {
            return Err(errno());
        }
        let rc = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                    sin_zero: [0; 8],
                };
                libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sin) as u32)
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as u16,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: 0,
                };
                libc::bind(fd, (&sin6 as *const libc::sockaddr_in6).cast(), std::mem::size_of_val(&sin6) as u32)
            }
        };
        if rc != 0 {
            return Err(errno());
        }
        if listen && ty == libc::SOCK_STREAM && libc::listen(fd, 16) != 0 {
            return Err(errno());
        }
        Ok(fd)
    }
}
