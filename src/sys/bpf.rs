//! The `bpf(2)` commands portctl's iterators need, and nothing more: create
//! a map and fill it, load a program, attach it as an iterator (optionally
//! for one process), open the iterator. Each takes the kernel's `union
//! bpf_attr` as a struct of exactly the fields of that command (the kernel
//! zero-extends a shorter attribute).
//!
//! Every descriptor comes back as an `OwnedFd`: programs, maps and links
//! die with them, nothing is pinned.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_MAP_UPDATE_BATCH: libc::c_int = 26;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_ITER_CREATE: libc::c_int = 33;

/// `BPF_PROG_TYPE_TRACING`: iterators are tracing programs.
const BPF_PROG_TYPE_TRACING: u32 = 26;
/// `BPF_TRACE_ITER`.
const BPF_TRACE_ITER: u32 = 28;

/// A name the kernel shows for a map or program (`bpftool prog`): at most
/// 15 bytes and a NUL.
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// Runs one bpf(2) command; its result is a descriptor or 0.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised repr(C) struct laid out as the
    // kernel's attribute for `cmd`; its size is passed with it, and every
    // pointer inside it points at memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// A descriptor a bpf(2) command returned.
fn owned(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("bpf(2) returned no descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `BPF_MAP_CREATE`.
pub fn map_create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: flags,
        map_name: object_name(name),
        ..MapCreate::default()
    };
    owned(bpf(BPF_MAP_CREATE, &mut attr)?)
}

#[repr(C)]
struct MapUpdate {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_MAP_UPDATE_ELEM` of one entry; key and value must have the map's
/// sizes.
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapUpdate {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

#[repr(C)]
struct MapBatch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `BPF_MAP_UPDATE_BATCH` (Linux 5.6): `count` entries in one call; keys
/// and values are packed arrays of the map's key and value sizes. Returns
/// how many were written (all of them, unless an error is returned).
pub fn map_update_batch(map: BorrowedFd<'_>, keys: &[u8], values: &[u8], count: u32) -> io::Result<()> {
    let mut attr = MapBatch {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: map.as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_BATCH, &mut attr).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
}

/// An iterator program the kernel refused, with the verifier's log when
/// it wrote one.
#[derive(Debug)]
pub struct LoadError {
    pub error: io::Error,
    pub log: String,
}

/// `BPF_PROG_LOAD` of an iterator program (`BPF_PROG_TYPE_TRACING`,
/// `BPF_TRACE_ITER`) attached to the kernel's `bpf_iter_<target>` function
/// (`attach_btf_id`, its type id in the kernel's BTF). `insns` are 8-byte
/// instructions. On failure the load is tried again with the verifier's
/// log, for the message.
pub fn prog_load_iter(
    name: &str,
    insns: &[u8],
    license: &std::ffi::CStr,
    attach_btf_id: u32,
) -> Result<OwnedFd, LoadError> {
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: object_name(name),
        expected_attach_type: BPF_TRACE_ITER,
        attach_btf_id,
        ..ProgLoad::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr).and_then(owned) {
        Ok(fd) => Ok(fd),
        Err(error) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // A load that works with a log (it should not) is still a load.
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr).and_then(owned) {
                return Ok(fd);
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(LoadError { error, log: String::from_utf8_lossy(&log[..end]).into_owned() })
        }
    }
}

#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    _pad: u32,
}

/// `union bpf_iter_link_info`, its `task` part (Linux 6.1): iterate one
/// process (`pid`) or one thread (`tid`) instead of every task.
#[repr(C)]
#[derive(Default)]
struct IterTask {
    tid: u32,
    pid: u32,
    pid_fd: u32,
    _pad: u32,
}

/// `BPF_LINK_CREATE` of an iterator link; with `pid`, a task iterator of
/// that process only (its threads with tables of their own included).
pub fn iter_link(prog: BorrowedFd<'_>, pid: Option<u32>) -> io::Result<OwnedFd> {
    let task = IterTask { pid: pid.unwrap_or(0), ..IterTask::default() };
    let mut attr = LinkCreate {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: 0,
        attach_type: BPF_TRACE_ITER,
        flags: 0,
        iter_info: if pid.is_some() { &task as *const IterTask as u64 } else { 0 },
        iter_info_len: if pid.is_some() { std::mem::size_of::<IterTask>() as u32 } else { 0 },
        _pad: 0,
    };
    owned(bpf(BPF_LINK_CREATE, &mut attr)?)
}

#[repr(C)]
struct IterCreate {
    link_fd: u32,
    flags: u32,
}

/// `BPF_ITER_CREATE`: a new session of the iterator, read with read(2)
/// until it returns 0. Network iterators (tcp, udp) list the sockets of the
/// network namespace the calling thread is in now.
pub fn iter_create(link: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut attr = IterCreate { link_fd: link.as_raw_fd() as u32, flags: 0 };
    owned(bpf(BPF_ITER_CREATE, &mut attr)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attribute structs have the kernel's layout (include/uapi/linux/bpf.h).
    #[test]
    fn attribute_layouts() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<MapCreate>(), 44);
        assert_eq!(offset_of!(MapCreate, map_name), 28);
        assert_eq!(size_of::<MapUpdate>(), 32);
        assert_eq!((offset_of!(MapBatch, count), offset_of!(MapBatch, map_fd), size_of::<MapBatch>()), (32, 36, 56));
        assert_eq!(offset_of!(ProgLoad, prog_name), 48);
        assert_eq!(offset_of!(ProgLoad, expected_attach_type), 68);
        assert_eq!(offset_of!(ProgLoad, attach_btf_id), 108);
        assert_eq!((offset_of!(LinkCreate, iter_info), offset_of!(LinkCreate, iter_info_len)), (16, 24));
        assert_eq!(size_of::<IterTask>(), 16);
        assert_eq!(object_name("portctl_owners_wanted_long"), *b"portctl_owners_\0");
    }
}
