//! The pipeline every command shares: kernel dump -> owners -> enrich.
//!
//! The /proc walk runs on its own threads while this thread reads the
//! kernel's dump, so the two costs overlap instead of adding up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};

use crate::model::{Exposure, Owner, Socket, State};
use crate::procs::{OwnerMap, ProcTable};
use crate::report::Report;
use crate::services;
use crate::sock_diag;

/// Whether a command needs to know who holds the sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Walk /proc and attach owners.
    Resolve,
    /// Kernel data only (stats --no-owners, wait).
    Skip,
}

/// Sockets with owners, plus the process table (for commands that want more
/// details about the owners).
pub struct Inventory {
    pub sockets: Vec<Socket>,
    pub procs: ProcTable,
    pub map: Option<OwnerMap>,
}

/// Runs the query and attaches owners. Notes and warnings go to `report`.
pub fn collect(query: &sock_diag::Query, owners: Owners, report: &mut Report) -> Result<Inventory> {
    let proc_root = Path::new("/proc");
    let (dump, map) = if owners == Owners::Resolve {
        std::thread::scope(|s| {
            let walker = s.spawn(|| OwnerMap::build(proc_root, crate::procs::default_threads()));
            let dump = sock_diag::dump(query);
            let map = walker.join().unwrap_or_else(|_| Err(std::io::Error::other("the /proc walk panicked")));
            (dump, Some(map))
        })
    } else {
        (sock_diag::dump(query), None)
    };
    let dump = dump.context("could not read the kernel's socket table")?;
    for n in dump.notes {
        report.note(n);
    }
    let map = match map {
        Some(m) => Some(m.context("could not walk /proc")?),
        None => None,
    };
    let mut procs = ProcTable::new(proc_root);
    let mut sockets = dump.sockets;
    if let Some(map) = &map {
        attach_owners(&mut sockets, map, &mut procs, report);
    }
    enrich(&mut sockets);
    Ok(Inventory { sockets, procs, map })
}

/// Fills `owners` / `owners_hidden`, and tells the report what stayed unknown.
pub fn attach_owners(sockets: &mut [Socket], map: &OwnerMap, procs: &mut ProcTable, report: &mut Report) {
    let mut hidden = 0usize;
    let mut not_found = 0usize;
    for s in sockets.iter_mut() {
        let links = if s.inode == 0 { &[][..] } else { map.owners_of(s.inode) };
        s.owners = links
            .iter()
            .map(|l| {
                let p = procs.info(l.pid);
                Owner { pid: l.pid, name: p.name.clone(), user: p.user.clone(), fd: l.fd, cmdline: p.cmdline.clone() }
            })
            .collect();
        if s.owners.is_empty() && !s.is_unowned_by_nature() {
            if map.denied.is_empty() {
                not_found += 1;
            } else {
                s.owners_hidden = true;
                hidden += 1;
            }
        }
    }
    if hidden > 0 {
        let named: Vec<String> = map
            .denied
            .iter()
            .take(3)
            .map(|&pid| format!("{pid} ({})", crate::render::sanitize::escape(&procs.info(pid).name)))
            .collect();
        let more = map.denied.len().saturating_sub(named.len());
        report.warn(format!(
            "owners of {hidden} socket{} are hidden: could not read the descriptors of process{} {}{}{}",
            plural(hidden),
            if map.denied.len() == 1 { "" } else { "es" },
            named.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            permission_hint()
        ));
    }
    if not_found > 0 {
        report.note(format!(
            "{not_found} socket{} held by no process visible here (another PID namespace, or the kernel)",
            plural(not_found)
        ));
    }
    for (pid, e) in map.errors.iter().take(3) {
        report.warn(format!("could not read /proc/{pid}/fd: {e}"));
    }
}

fn permission_hint() -> &'static str {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        " (even as root: a sandbox or LSM restricts /proc)"
    } else {
        "; run with sudo, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Service names and interface names.
pub fn enrich(sockets: &mut [Socket]) {
    let mut ifaces: Option<HashMap<IpAddr, String>> = None;
    for s in sockets.iter_mut() {
        let local_name = services::name(s.proto, s.local.port);
        let listening = matches!(s.state, State::Listen | State::Unconn);
        s.service = match (listening, local_name) {
            (true, n) | (false, n @ Some(_)) => n,
            (false, None) => s.remote.and_then(|r| services::name(s.proto, r.port)),
        }
        .map(std::borrow::Cow::Borrowed);
        if s.exposure == Exposure::Address && s.interface.is_none() {
            let map = ifaces.get_or_insert_with(interface_addresses);
            let addr = match s.local.addr {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(s.local.addr, IpAddr::V4),
                a => a,
            };
            s.interface = map.get(&addr).cloned();
        }
    }
}

/// Address -> interface name, from getifaddrs(3).
pub fn interface_addresses() -> HashMap<IpAddr, String> {
    let mut out = HashMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it declares.
        let addr = unsafe {
            match (*ifa.ifa_addr).sa_family as i32 {
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
        // SAFETY: ifa_name is a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        out.entry(addr).or_insert(name);
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}
