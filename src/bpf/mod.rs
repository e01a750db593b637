//! portctl's BPF iterators (`bpf/portctl.bpf.c`, compiled by
//! `scripts/build-bpf.sh` into the committed `bpf/portctl.bpf.o`, which is
//! embedded here): loaded with CO-RE relocations against the running
//! kernel, run, and read to the end.
//!
//! The object is parsed and relocated by aya-obj (the object and relocation
//! half of aya, pure Rust) against a subset of the kernel's BTF
//! ([`btf::KernelBtf`]); the handful of `bpf(2)` calls that load a program,
//! create its maps and open an iterator are in [`crate::sys::bpf`]. aya's
//! own loader (`EbpfLoader`, aya 0.14) parses the whole kernel BTF on every
//! construction, and once more to resolve an iterator's target: 35 ms and
//! 18 MB per run here, more than the iteration itself.
//!
//! Nothing is pinned: programs, maps, links and iterators are descriptors
//! and vanish when portctl exits.

pub mod btf;
pub mod records;

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::sys::bpf as sys;

/// The object, aligned for the ELF reader.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!("../../bpf/portctl.bpf.o"));

/// The compiled programs, as committed.
pub fn object() -> &'static [u8] {
    &OBJECT.0
}

/// Why the BPF side cannot run, in one line (`-v`, `--owners-from bpf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

fn unavailable(msg: impl Into<String>) -> Unavailable {
    Unavailable(msg.into())
}

/// The programs of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Program {
    /// Every socket descriptor of every task.
    Owners,
    /// The same, for the inodes given with [`Set::want`] only.
    OwnersWanted,
    /// TCP sockets of the namespace, filtered with [`Set::filter`].
    Tcp,
    /// UDP sockets, the same way.
    Udp,
}

impl Program {
    fn symbol(self) -> &'static str {
        match self {
            Program::Owners => "owners",
            Program::OwnersWanted => "owners_wanted",
            Program::Tcp => "tcp_socks",
            Program::Udp => "udp_socks",
        }
    }

    /// Its name in the kernel (`bpftool prog`), 15 bytes at most.
    fn kernel_name(self) -> &'static str {
        match self {
            Program::Owners => "portctl_owners",
            Program::OwnersWanted => "portctl_wanted",
            Program::Tcp => "portctl_tcp",
            Program::Udp => "portctl_udp",
        }
    }

    /// Its index in [`btf::ITERATORS`].
    fn target(self) -> usize {
        match self {
            Program::Owners | Program::OwnersWanted => 0,
            Program::Tcp => 1,
            Program::Udp => 2,
        }
    }
}

/// Capability bits (`linux/capability.h`).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The quick checks, before any work: the capabilities, and process ids
/// that mean the same to the kernel's iterator and to /proc.
pub fn check() -> Result<(), Unavailable> {
    let caps = rustix::thread::capabilities(None).map_err(|e| unavailable(format!("capget: {e}")))?;
    let has = |cap: u32| caps.effective.bits() & (1u64 << cap) != 0;
    if !(has(CAP_SYS_ADMIN) || has(CAP_BPF) && has(CAP_PERFMON)) {
        let why = if crate::sys::is_root() {
            "root without CAP_BPF and CAP_PERFMON (a restricted capability set)"
        } else {
            "it needs root, or CAP_BPF and CAP_PERFMON"
        };
        return Err(unavailable(why));
    }
    // The task iterator names processes by their ids in the initial PID
    // namespace; portctl's /proc names them in its own.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && status.lines().find_map(|l| l.strip_prefix("NSpid:")).is_some_and(|ids| ids.split_whitespace().count() > 1)
    {
        return Err(unavailable(
            "portctl runs in a PID namespace of its own, where process ids differ from the kernel's",
        ));
    }
    Ok(())
}

/// The object relocated for this kernel (CO-RE), before maps exist.
pub struct Bpf {
    obj: aya_obj::Object,
    iterators: [Option<u32>; 3],
}

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_F_NO_PREALLOC: u32 = 1;

impl Bpf {
    /// Relocates the programs for the running kernel.
    pub fn open() -> Result<Bpf, Unavailable> {
        let kernel = match btf::KernelBtf::running() {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(unavailable(format!(
                    "the kernel publishes no BTF ({} is missing: CONFIG_DEBUG_INFO_BTF)",
                    btf::path().display()
                )));
            }
            Err(e) => return Err(unavailable(format!("could not read {}: {e}", btf::path().display()))),
        };
        Bpf::open_with(&kernel)
    }

    /// Relocates the programs against `kernel` (tests: a doctored BTF).
    pub fn open_with(kernel: &btf::KernelBtf) -> Result<Bpf, Unavailable> {
        if kernel.iterators[0].is_none() {
            return Err(unavailable("the kernel has no task_file iterator (Linux 5.8 or later has)"));
        }
        let mut obj = aya_obj::Object::parse(object()).map_err(|e| unavailable(format!("the embedded object: {e}")))?;
        obj.relocate_btf(&kernel.target).map_err(|e| unavailable(format!("CO-RE relocation failed: {e}")))?;
        Ok(Bpf { obj, iterators: kernel.iterators })
    }

    /// Creates the maps — `wanted` sized for `capacity` inodes (a hash
    /// map's buckets are allocated with it: a million cost 35 ms) — and
    /// loads `programs` with them (the verifier runs here).
    pub fn load(&self, programs: &[Program], capacity: usize) -> Result<Set, Unavailable> {
        let map = |name: &str, ty: u32, key: u32, value: u32, max: u32, flags: u32| {
            sys::map_create(name, ty, key, value, max, flags)
                .map_err(|e| unavailable(format!("the kernel refused a BPF map: {e}")))
        };
        let capacity = u32::try_from(capacity.max(1)).map_err(|_| unavailable("too many inodes for a BPF map"))?;
        let wanted = map("portctl_wanted", BPF_MAP_TYPE_HASH, 8, 1, capacity, BPF_F_NO_PREALLOC)?;
        let config = map("portctl_config", BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0)?;
        let mut obj = self.obj.clone();
        let text_sections = obj.functions.keys().map(|(section, _)| *section).collect();
        let maps: Vec<(String, i32, aya_obj::Map)> = obj
            .maps
            .iter()
            .map(|(name, m)| match name.as_str() {
                "wanted" => Ok((name.clone(), wanted.as_raw_fd(), m.clone())),
                "config" => Ok((name.clone(), config.as_raw_fd(), m.clone())),
                other => Err(unavailable(format!("the embedded object has an unknown map {other}"))),
            })
            .collect::<Result<_, _>>()?;
        obj.relocate_maps(maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)), &text_sections)
            .map_err(|e| unavailable(format!("map relocation failed: {e}")))?;
        obj.relocate_calls(&text_sections).map_err(|e| unavailable(format!("call relocation failed: {e}")))?;
        let loaded = programs.iter().map(|&p| self.load_one(&obj, p)).collect::<Result<_, _>>()?;
        Ok(Set { wanted, config, capacity: capacity as usize, loaded })
    }

    fn load_one(&self, obj: &aya_obj::Object, p: Program) -> Result<Loaded, Unavailable> {
        let target = self.iterators[p.target()]
            .ok_or_else(|| unavailable(format!("the kernel has no {} iterator", btf::ITERATORS[p.target()])))?;
        let prog = obj.programs.get(p.symbol()).ok_or_else(|| unavailable("a program is missing from the object"))?;
        let function = obj
            .functions
            .get(&prog.function_key())
            .ok_or_else(|| unavailable("a program's code is missing from the object"))?;
        let mut insns = Vec::with_capacity(function.instructions.len() * 8);
        for i in &function.instructions {
            insns.push(i.code);
            #[cfg(target_endian = "little")]
            insns.push(i.dst_reg() | i.src_reg() << 4);
            #[cfg(target_endian = "big")]
            insns.push(i.dst_reg() << 4 | i.src_reg());
            insns.extend_from_slice(&i.off.to_ne_bytes());
            insns.extend_from_slice(&i.imm.to_ne_bytes());
        }
        let fd = sys::prog_load_iter(p.kernel_name(), &insns, &obj.license, target).map_err(|e| {
            let last = e.log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let detail = if last.is_empty() { String::new() } else { format!(" ({last})") };
            unavailable(format!("the kernel refused the {} program: {}{detail}", btf::ITERATORS[p.target()], e.error))
        })?;
        Ok(Loaded { fd, program: p })
    }
}

/// Loaded programs and the maps they share.
pub struct Set {
    wanted: OwnedFd,
    config: OwnedFd,
    capacity: usize,
    loaded: Vec<Loaded>,
}

impl Set {
    /// One of the programs it was loaded with.
    pub fn get(&self, p: Program) -> Option<&Loaded> {
        self.loaded.iter().find(|l| l.program == p)
    }

    /// One of the programs, the maps left to it (a loaded program keeps
    /// the maps it uses).
    pub fn take(mut self, p: Program) -> Option<Loaded> {
        let i = self.loaded.iter().position(|l| l.program == p)?;
        Some(self.loaded.swap_remove(i))
    }

    /// Fills map `wanted` (for [`Program::OwnersWanted`] and the inode
    /// filter): one call on Linux 5.6+, one per inode before.
    pub fn want(&self, inodes: &[u64]) -> io::Result<()> {
        if inodes.is_empty() {
            return Ok(());
        }
        if inodes.len() > self.capacity {
            return Err(io::Error::other("more inodes than the filter was made for"));
        }
        let keys: Vec<u8> = inodes.iter().flat_map(|i| i.to_ne_bytes()).collect();
        let values = vec![1u8; inodes.len()];
        match sys::map_update_batch(self.wanted.as_fd(), &keys, &values, inodes.len() as u32) {
            Ok(()) => Ok(()),
            Err(_) => {
                for k in keys.chunks_exact(8) {
                    sys::map_update(self.wanted.as_fd(), k, &[1])?;
                }
                Ok(())
            }
        }
    }

    /// Sets what [`Program::Tcp`] and [`Program::Udp`] report: sockets on
    /// `port` only (0: any), and only those whose inode was given to
    /// [`Set::want`].
    pub fn filter(&self, port: u16, by_inode: bool) -> io::Result<()> {
        let mut value = [0u8; 8];
        value[0..2].copy_from_slice(&port.to_ne_bytes());
        value[2] = u8::from(by_inode);
        sys::map_update(self.config.as_fd(), &0u32.to_ne_bytes(), &value)
    }
}

/// A loaded program.
pub struct Loaded {
    fd: OwnedFd,
    pub program: Program,
}

impl Loaded {
    /// Runs the iterator — over every task, or with `pid` over that
    /// process only (Linux 6.1) — and appends what it wrote to `out`.
    /// Network iterators list the namespace of the calling thread.
    pub fn read(&self, pid: Option<u32>, out: &mut Vec<u8>) -> io::Result<()> {
        let link = sys::iter_link(self.fd.as_fd(), pid)?;
        let iter = sys::iter_create(link.as_fd())?;
        std::fs::File::from(iter).read_to_end(out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed object parses and names the programs and maps the
    /// loader expects.
    #[test]
    fn embedded_object_has_the_programs() {
        let obj = aya_obj::Object::parse(object()).unwrap();
        for p in [Program::Owners, Program::OwnersWanted, Program::Tcp, Program::Udp] {
            assert!(obj.programs.contains_key(p.symbol()), "{}", p.symbol());
            assert!(p.kernel_name().len() <= 15);
        }
        let mut maps: Vec<&str> = obj.maps.keys().map(String::as_str).collect();
        maps.sort_unstable();
        assert_eq!(maps, ["config", "wanted"]);
        assert_eq!(obj.license.to_str().unwrap(), "Dual MIT/GPL");
    }

    /// (code, registers, offset, immediate) of one instruction.
    type Insn = (u8, u8, i16, i32);

    fn instructions(obj: &aya_obj::Object) -> Vec<(String, Vec<Insn>)> {
        let mut out: Vec<_> = obj
            .functions
            .values()
            .map(|f| {
                (
                    f.name.clone(),
                    f.instructions.iter().map(|i| (i.code, i.dst_reg() | i.src_reg() << 4, i.off, i.imm)).collect(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// The subset of the running kernel's BTF relocates every program to
    /// exactly what the whole BTF does: the same instructions, offsets and
    /// all (and so [`btf::TYPES`] names every member the programs touch).
    #[test]
    fn subset_relocates_like_the_whole_btf() {
        let whole = aya_obj::btf::Btf::from_sys_fs().expect("this kernel publishes BTF");
        let subset = btf::KernelBtf::running().unwrap();
        let mut a = aya_obj::Object::parse(object()).unwrap();
        let mut b = aya_obj::Object::parse(object()).unwrap();
        a.relocate_btf(&whole).unwrap();
        b.relocate_btf(&subset.target).unwrap();
        let (a, b) = (instructions(&a), instructions(&b));
        assert_eq!(a.len(), 4);
        assert_eq!(a, b);
        // And relocation changed something: the kernel's layout is not the
        // object's declaration order.
        let unrelocated = instructions(&aya_obj::Object::parse(object()).unwrap());
        assert_ne!(a, unrelocated);
        for target in btf::ITERATORS {
            let id = whole.id_by_type_name_kind(&format!("bpf_iter_{target}"), aya_obj::btf::BtfKind::Func).unwrap();
            let i = btf::ITERATORS.iter().position(|t| *t == target).unwrap();
            assert_eq!(subset.iterators[i], Some(id), "{target}");
        }
    }
}
