//! Network namespaces: naming one (`--netns NAME|PATH|pid:PID`), finding all
//! of them (`--all-netns`), and running sock_diag inside one on a dedicated
//! thread, so the main thread's namespace never changes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::UserError;
pub use crate::model::NetnsRef;

/// An opened namespace: a handle to setns() into, and how to call it.
#[derive(Debug)]
pub struct Netns {
    pub id: NetnsRef,
    file: File,
    /// The namespace portctl runs in: no setns needed.
    pub current: bool,
}

/// `NSFS_MAGIC` from linux/magic.h.
const NSFS_MAGIC: i64 = 0x6e73_6673;

impl Netns {
    /// Opens `--netns` values: a name under /run/netns, a path to an nsfs
    /// file, or `pid:PID`.
    pub fn open(spec: &str) -> Result<Netns, UserError> {
        let (path, name) = if let Some(pid) = spec.strip_prefix("pid:") {
            let pid: u32 = pid.parse().map_err(|_| UserError::new(format!("'{spec}': pid:PID needs a process id")))?;
            (PathBuf::from(format!("/proc/{pid}/ns/net")), Some(spec.to_string()))
        } else if spec.contains('/') {
            (PathBuf::from(spec), None)
        } else {
            if spec.is_empty() || spec.starts_with('.') {
                return Err(UserError::new(format!("'{spec}' is not a namespace name")));
            }
            (Path::new("/run/netns").join(spec), Some(spec.to_string()))
        };
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if name.as_deref().is_some_and(|n| !n.starts_with("pid:")) => {
                UserError::new(format!("no network namespace named '{spec}' (looked in /run/netns)"))
                    .hint("`ip netns list` shows the named ones; --netns also takes a path or pid:PID")
            }
            io::ErrorKind::PermissionDenied => {
                UserError::new(format!("cannot open {}: permission denied", path.display()))
                    .hint("entering another network namespace needs root (CAP_SYS_ADMIN)")
            }
            _ => UserError::new(format!("cannot open network namespace {}: {e}", path.display())),
        })?;
        if !is_nsfs(&file) {
            return Err(UserError::new(format!("{} is not a network namespace (not an nsfs file)", path.display())));
        }
        let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
        let current = current_inode() == Some(inode);
        Ok(Netns { id: NetnsRef { inode, name: name.or_else(|| run_netns_name(inode)) }, file, current })
    }

    /// The namespace this process is in.
    pub fn current() -> io::Result<Netns> {
        let file = File::open("/proc/thread-self/ns/net")?;
        let inode = file.metadata()?.ino();
        Ok(Netns { id: NetnsRef { inode, name: run_netns_name(inode) }, file, current: true })
    }

    /// Runs `f` with this namespace as the network namespace, on a thread of
    /// its own (setns affects only the calling thread; the main thread and
    /// the /proc walk never move).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, UserError> {
        if self.current {
            return Ok(f());
        }
        let fd = self.file.as_fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                let entered =
                    rustix::thread::move_into_link_name_space(fd, Some(rustix::thread::LinkNameSpaceType::Network));
                if let Err(e) = entered {
                    let e = io::Error::from(e);
                    let msg = format!("cannot enter network namespace {}: {e}", self.describe());
                    return Err(if e.raw_os_error() == Some(libc::EPERM) {
                        UserError::new(msg).hint("entering another network namespace needs root (CAP_SYS_ADMIN)")
                    } else {
                        UserError::new(msg)
                    });
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(UserError::new("a namespace worker thread panicked")))
        })
    }

    pub fn describe(&self) -> String {
        match &self.id.name {
            Some(n) => format!("'{n}' (net:[{}])", self.id.inode),
            None => format!("net:[{}]", self.id.inode),
        }
    }
}

fn is_nsfs(f: &File) -> bool {
    rustix::fs::fstatfs(f).is_ok_and(|st| st.f_type == NSFS_MAGIC)
}

/// The inode of our own network namespace.
pub fn current_inode() -> Option<u64> {
    std::fs::metadata("/proc/thread-self/ns/net").ok().map(|m| m.ino())
}

/// `net:[4026531840]` -> 4026531840.
fn link_inode(link: &Path) -> Option<u64> {
    let t = std::fs::read_link(link).ok()?;
    let s = t.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn run_netns_name(inode: u64) -> Option<String> {
    named_dirs().into_iter().find_map(|(dir, prefix)| {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            (std::fs::metadata(e.path()).ok()?.ino() == inode)
                .then(|| format!("{prefix}{}", e.file_name().to_string_lossy()))
        })
    })
}

/// Where namespaces are bind-mounted under a name: `ip netns` and Docker.
fn named_dirs() -> [(&'static str, &'static str); 2] {
    [("/run/netns", ""), ("/run/docker/netns", "docker:")]
}

/// Every network namespace on the host, de-duplicated by inode: the named
/// ones (`/run/netns`, `/run/docker/netns`) and those only processes hold.
/// Returns them (current first) and what could not be opened.
pub fn discover() -> (Vec<Netns>, Vec<String>) {
    let mut found: BTreeMap<u64, Netns> = BTreeMap::new();
    let mut denied_inodes = std::collections::BTreeSet::new();
    let mut notes = Vec::new();
    let cur = current_inode();
    if let Ok(n) = Netns::current() {
        found.insert(n.id.inode, n);
    }
    for (dir, prefix) in named_dirs() {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            match File::open(e.path()) {
                Ok(file) if is_nsfs(&file) => {
                    let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
                    found.entry(inode).or_insert(Netns {
                        id: NetnsRef { inode, name: Some(name) },
                        file,
                        current: Some(inode) == cur,
                    });
                }
                Ok(_) => {}
                Err(e) => notes.push(format!("{name}: {e}")),
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let fname = e.file_name();
            let Some(pid) = fname.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else { continue };
            let link = e.path().join("ns/net");
            let Some(inode) = link_inode(&link) else { continue };
            if found.contains_key(&inode) || denied_inodes.contains(&inode) {
                continue;
            }
            match File::open(&link) {
                Ok(file) => {
                    found.insert(
                        inode,
                        Netns { id: NetnsRef { inode, name: Some(format!("pid:{pid}")) }, file, current: false },
                    );
                }
                Err(err) => {
                    denied_inodes.insert(inode);
                    notes.push(format!("net:[{inode}] of pid {pid}: {err}"));
                }
            }
        }
    }
    let mut v: Vec<Netns> = found.into_values().collect();
    v.sort_by_key(|n| (!n.current, n.id.name.is_none(), n.id.name.clone(), n.id.inode));
    (v, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_namespace_runs_inline() {
        let n = Netns::current().unwrap();
        assert!(n.current);
        assert_eq!(Some(n.id.inode), current_inode());
        assert_eq!(n.run(|| 7).unwrap(), 7);
    }

    #[test]
    fn bad_specs() {
        let e = Netns::open("no-such-namespace-xyz").unwrap_err();
        assert!(e.msg.contains("no network namespace named"), "{}", e.msg);
        assert!(Netns::open("pid:abc").unwrap_err().msg.contains("process id"));
        assert!(Netns::open("/etc/hostname").unwrap_err().msg.contains("not a network namespace"));
        assert!(Netns::open("pid:999999999").is_err());
    }

    #[test]
    fn own_pid_is_the_current_namespace() {
        let n = Netns::open(&format!("pid:{}", std::process::id())).unwrap();
        assert!(n.current);
    }

    #[test]
    fn discovery_includes_the_current_namespace_first() {
        let (all, _) = discover();
        assert!(all[0].current);
        let mut inodes: Vec<u64> = all.iter().map(|n| n.id.inode).collect();
        inodes.dedup();
        assert_eq!(inodes.len(), all.len(), "de-duplicated by inode");
    }
}
