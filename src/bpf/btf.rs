//! The kernel's BTF, cut down to the types portctl's programs touch.
//!
//! CO-RE relocation looks up each type a program accesses by name in the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`, 5.5 MB and ~150k types
//! on Linux 6.18) and recomputes the offsets. Parsing all of it (what a
//! general loader does: aya's `Btf::parse` takes 17 ms and 18 MB here) would
//! be most of portctl's run time and memory, for a dozen structs. So this
//! module walks the raw records once without decoding them (the file is
//! mapped, not read, on kernels that allow it), picks out the structs the
//! programs name ([`TYPES`]), and writes a BTF of its own holding only those
//! structs, with only the members used — at the kernel's offsets and sizes —
//! and the types of those members. aya-obj relocates against that as it would
//! against the whole: a relocation names a type and a path of member names,
//! and resolves to offsets and sizes the kernel's records state explicitly.
//! (A test relocates the programs both ways and compares the instructions.)
//!
//! The record format is the kernel's `include/uapi/linux/btf.h`. Every read
//! is bounds-checked: a malformed file is an error, never a panic.

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// The structs and unions the programs in `bpf/portctl.bpf.c` access, each
/// with the names of the members used — through anonymous members at any
/// depth, which is how the kernel nests `skc_daddr` or `bpf_iter__tcp`'s
/// `meta`. Keep in step with the C source (a test compares relocations
/// against the full BTF, so a name missing here fails it).
pub const TYPES: &[(&str, &[&str])] = &[
    ("bpf_iter_meta", &["seq", "seq_num"]),
    ("bpf_iter__task_file", &["meta", "task", "fd", "file"]),
    ("bpf_iter__tcp", &["meta", "sk_common"]),
    ("bpf_iter__udp", &["meta", "udp_sk"]),
    ("task_struct", &["pid", "tgid", "group_leader", "files"]),
    ("file", &["f_inode"]),
    ("inode", &["i_ino"]),
    ("in6_addr", &["in6_u", "u6_addr32"]),
    (
        "sock_common",
        &[
            "skc_daddr",
            "skc_rcv_saddr",
            "skc_dport",
            "skc_num",
            "skc_family",
            "skc_state",
            "skc_reuse",
            "skc_reuseport",
            "skc_v6_daddr",
            "skc_v6_rcv_saddr",
        ],
    ),
    ("sock", &["__sk_common", "sk_socket", "sk_kern_sock"]),
    ("socket", &["file", "sk"]),
    ("socket_alloc", &["socket", "vfs_inode"]),
];

/// The iterator targets the programs attach to: the kernel function
/// `bpf_iter_<target>` whose BTF id a program load names.
pub const ITERATORS: [&str; 3] = ["task_file", "tcp", "udp"];

/// What the programs need from the running kernel's BTF.
pub struct KernelBtf {
    /// The subset, as a BTF of its own, for aya-obj's CO-RE relocation.
    pub target: aya_obj::btf::Btf,
    /// The kernel's type id of `bpf_iter_<target>` for each of
    /// [`ITERATORS`], `None` when the kernel has no such iterator.
    pub iterators: [Option<u32>; 3],
    /// Types in the kernel's BTF, and in the subset.
    pub counts: (usize, usize),
}

impl KernelBtf {
    /// The running kernel's (`/sys/kernel/btf/vmlinux`; `PORTCTL_BTF`
    /// names another file, for tests that play an older kernel).
    pub fn running() -> io::Result<KernelBtf> {
        KernelBtf::read(&path())
    }

    /// A BTF file: mapped when the kernel allows it (Linux 6.16 maps
    /// vmlinux's BTF without copying), read otherwise.
    pub fn read(path: &Path) -> io::Result<KernelBtf> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len() as usize;
        match Mapped::new(&file, len) {
            Some(m) => KernelBtf::parse(m.bytes()),
            None => {
                let mut data = Vec::with_capacity(len);
                io::Read::read_to_end(&mut &file, &mut data)?;
                KernelBtf::parse(&data)
            }
        }
    }

    /// The subset of a BTF blob.
    pub fn parse(data: &[u8]) -> io::Result<KernelBtf> {
        let raw = Raw::new(data).ok_or_else(|| bad("not a BTF blob of this machine's byte order"))?;
        let mut b = Builder::new(&raw);
        let mut iterators = [None; 3];
        for id in 1..=raw.count() as u32 {
            let Some(r) = raw.record(id) else { continue };
            match r.kind {
                STRUCT | UNION if r.name_off != 0 => {
                    if let Some(list) = TYPES.iter().position(|(n, _)| raw.name_is(r.name_off, n)) {
                        b.include(id, Ctx { list: Some(list), pointee: false }, 0)?;
                    }
                }
                FUNC if r.name_off != 0 => {
                    for (slot, target) in iterators.iter_mut().zip(ITERATORS) {
                        if raw.name_is_iter(r.name_off, target) {
                            *slot = Some(id);
                        }
                    }
                }
                _ => {}
            }
        }
        let blob = b.finish();
        let target = aya_obj::btf::Btf::parse(&blob, object::Endianness::default())
            .map_err(|e| bad(&format!("the subset does not parse: {e}")))?;
        Ok(KernelBtf { target, iterators, counts: (raw.count(), b.records.len()) })
    }
}

/// Where Linux publishes its BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The BTF file read: [`VMLINUX`], or `PORTCTL_BTF`.
pub fn path() -> std::path::PathBuf {
    std::env::var_os("PORTCTL_BTF").map_or_else(|| VMLINUX.into(), Into::into)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("kernel BTF: {what}"))
}

/// A read-only private mapping of a file, unmapped on drop.
struct Mapped {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

impl Mapped {
    fn new(file: &std::fs::File, len: usize) -> Option<Mapped> {
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh mapping of `len` bytes of an open file, read-only;
        // nothing else refers to the address range.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                file,
                0,
            )
        }
        .ok()?;
        Some(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as
        // self; the file behind it (the kernel's own BTF) does not change.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in `new`, unmapped once.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

// BTF kinds (BTF_KIND_*).
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// How deep types may nest (typedef chains, anonymous members) before the
/// blob is called malformed.
const MAX_DEPTH: u32 = 32;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

/// One type record: the common 12 bytes, decoded, and where it is.
#[derive(Clone, Copy)]
struct Rec {
    name_off: u32,
    info: u32,
    /// `size` or `type`, by kind.
    size_type: u32,
    kind: u32,
    vlen: usize,
    /// Start and length of the whole record in the type section.
    at: usize,
    len: usize,
}

/// The raw blob: type and string sections, and where each type starts.
struct Raw<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset of type id `i` at `offsets[i - 1]`.
    offsets: Vec<u32>,
}

impl<'a> Raw<'a> {
    fn new(data: &'a [u8]) -> Option<Raw<'a>> {
        let magic = u16::from_ne_bytes(data.get(0..2)?.try_into().ok()?);
        if magic != 0xeb9f {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut offsets = Vec::with_capacity(type_len / 24);
        let mut at = 0usize;
        while at < types.len() {
            offsets.push(u32::try_from(at).ok()?);
            at = at.checked_add(record_len(types, at)?)?;
        }
        (at == types.len()).then_some(Raw { types, strings, offsets })
    }

    fn count(&self) -> usize {
        self.offsets.len()
    }

    fn record(&self, id: u32) -> Option<Rec> {
        let at = *self.offsets.get((id as usize).checked_sub(1)?)? as usize;
        let info = u32_at(self.types, at + 4)?;
        Some(Rec {
            name_off: u32_at(self.types, at)?,
            info,
            size_type: u32_at(self.types, at + 8)?,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            at,
            len: record_len(self.types, at)?,
        })
    }

    /// The NUL-terminated string at `off`.
    fn name(&self, off: u32) -> Option<&'a [u8]> {
        let rest = self.strings.get(off as usize..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    }

    fn name_is(&self, off: u32, want: &str) -> bool {
        let want = want.as_bytes();
        self.strings
            .get(off as usize..off as usize + want.len() + 1)
            .is_some_and(|s| s[..want.len()] == *want && s[want.len()] == 0)
    }

    /// `bpf_iter_<target>`.
    fn name_is_iter(&self, off: u32, target: &str) -> bool {
        self.strings.get(off as usize..off as usize + 9).is_some_and(|s| s == b"bpf_iter_")
            && self.name_is(off + 9, target)
    }

    /// Member `i` of a struct or union record: (name_off, type, offset).
    fn member(&self, r: &Rec, i: usize) -> Option<(u32, u32, u32)> {
        let at = r.at + 12 + i * 12;
        Some((u32_at(self.types, at)?, u32_at(self.types, at + 4)?, u32_at(self.types, at + 8)?))
    }
}

/// The length of the record at `at`, by its kind's trailing data.
fn record_len(types: &[u8], at: usize) -> Option<usize> {
    let info = u32_at(types, at.checked_add(4)?)?;
    let vlen = (info & 0xffff) as usize;
    let extra = match (info >> 24) & 0x1f {
        INT | VAR | DECL_TAG => 4,
        ARRAY => 12,
        STRUCT | UNION | DATASEC | ENUM64 => vlen * 12,
        ENUM | FUNC_PROTO => vlen * 8,
        PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
        _ => return None,
    };
    let len = 12 + extra;
    (at.checked_add(len)? <= types.len()).then_some(len)
}

/// How a type is reached: the member list it is pruned to (anonymous
/// aggregates inherit their parent's), and whether through a pointer (then a
/// struct portctl does not look into is only named: a forward declaration).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Ctx {
    list: Option<usize>,
    pointee: bool,
}

/// Writes the subset: records in id order (a struct gets its id before its
/// members' types are written, for types that point to themselves).
struct Builder<'r, 'a> {
    raw: &'r Raw<'a>,
    records: Vec<Vec<u8>>,
    strings: Vec<u8>,
    string_ids: HashMap<Vec<u8>, u32>,
    done: HashMap<(u32, Ctx), u32>,
}

impl<'r, 'a> Builder<'r, 'a> {
    fn new(raw: &'r Raw<'a>) -> Builder<'r, 'a> {
        Builder { raw, records: Vec::new(), strings: vec![0], string_ids: HashMap::new(), done: HashMap::new() }
    }

    /// The offset of a copy of the kernel string at `off` in the new
    /// string section.
    fn string(&mut self, off: u32) -> io::Result<u32> {
        if off == 0 {
            return Ok(0);
        }
        let s = self.raw.name(off).ok_or_else(|| bad("a name outside the string section"))?;
        if let Some(&id) = self.string_ids.get(s) {
            return Ok(id);
        }
        let id = self.strings.len() as u32;
        self.strings.extend_from_slice(s);
        self.strings.push(0);
        self.string_ids.insert(s.to_vec(), id);
        Ok(id)
    }

    fn header(&mut self, name_off: u32, info: u32, size_type: u32) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&self.string(name_off)?.to_ne_bytes());
        out.extend_from_slice(&info.to_ne_bytes());
        out.extend_from_slice(&size_type.to_ne_bytes());
        Ok(out)
    }

    fn reserve(&mut self, key: (u32, Ctx)) -> u32 {
        self.records.push(Vec::new());
        let id = self.records.len() as u32;
        self.done.insert(key, id);
        id
    }

    /// The new id of kernel type `id` reached as `ctx`, writing it (and
    /// what it needs) on first use.
    fn include(&mut self, id: u32, ctx: Ctx, depth: u32) -> io::Result<u32> {
        if id == 0 {
            return Ok(0);
        }
        if depth > MAX_DEPTH {
            return Err(bad("types nest too deep"));
        }
        let r = self.raw.record(id).ok_or_else(|| bad("a type id out of range"))?;
        // Only what leads to an aggregate depends on how it is reached; a
        // named aggregate of TYPES always takes its own list.
        let plain = Ctx { list: None, pointee: false };
        let ctx = match r.kind {
            STRUCT | UNION if r.name_off != 0 => {
                match TYPES.iter().position(|(n, _)| self.raw.name_is(r.name_off, n)) {
                    Some(l) => Ctx { list: Some(l), pointee: false },
                    None => Ctx { list: None, pointee: ctx.pointee },
                }
            }
            STRUCT | UNION | TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG | ARRAY => ctx,
            _ => plain,
        };
        if let Some(&new) = self.done.get(&(id, ctx)) {
            return Ok(new);
        }
        match r.kind {
            INT | FLOAT | FWD | ENUM | ENUM64 => {
                let new = self.reserve((id, ctx));
                let mut out = self.header(r.name_off, r.info, r.size_type)?;
                let tail = &self.raw.types[r.at + 12..r.at + r.len];
                match r.kind {
                    ENUM | ENUM64 => {
                        let step = if r.kind == ENUM { 8 } else { 12 };
                        for v in tail.chunks_exact(step) {
                            out.extend_from_slice(&self.string(u32_at(v, 0).unwrap_or(0))?.to_ne_bytes());
                            out.extend_from_slice(&v[4..]);
                        }
                    }
                    _ => out.extend_from_slice(tail),
                }
                self.records[new as usize - 1] = out;
                Ok(new)
            }
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => {
                let new = self.reserve((id, ctx));
                let inner = self.include(r.size_type, ctx, depth + 1)?;
                self.records[new as usize - 1] = self.header(r.name_off, r.info, inner)?;
                Ok(new)
            }
            PTR => {
                let new = self.reserve((id, ctx));
                let inner = self.include(r.size_type, Ctx { list: None, pointee: true }, depth + 1)?;
                self.records[new as usize - 1] = self.header(0, r.info, inner)?;
                Ok(new)
            }
            ARRAY => {
                let new = self.reserve((id, ctx));
                let at = r.at + 12;
                let elem = u32_at(self.raw.types, at).ok_or_else(|| bad("a short array"))?;
                let index = u32_at(self.raw.types, at + 4).ok_or_else(|| bad("a short array"))?;
                let nelems = u32_at(self.raw.types, at + 8).ok_or_else(|| bad("a short array"))?;
                let elem = self.include(elem, ctx, depth + 1)?;
                let index = self.include(index, Ctx { list: None, pointee: false }, depth + 1)?;
                let mut out = self.header(0, r.info, 0)?;
                for v in [elem, index, nelems] {
                    out.extend_from_slice(&v.to_ne_bytes());
                }
                self.records[new as usize - 1] = out;
                Ok(new)
            }
            STRUCT | UNION => self.aggregate(id, r, ctx, depth),
            // A pointer to a function, say: nothing the programs read.
            FUNC_PROTO if ctx.pointee => Ok(0),
            FUNC | FUNC_PROTO | VAR | DATASEC | DECL_TAG => Err(bad("a member of an unexpected kind")),
            _ => Err(bad("an unknown kind")),
        }
    }

    /// A struct or union: pruned to the members of its list (named ones
    /// in [`TYPES`] use their own), or, reached through a pointer and not
    /// in the list, a forward declaration.
    fn aggregate(&mut self, id: u32, r: Rec, ctx: Ctx, depth: u32) -> io::Result<u32> {
        if ctx.pointee && r.name_off != 0 {
            let new = self.reserve((id, ctx));
            let union_flag = if r.kind == UNION { 1 << 31 } else { 0 };
            self.records[new as usize - 1] = self.header(r.name_off, FWD << 24 | union_flag, 0)?;
            return Ok(new);
        }
        let list = ctx.list;
        let new = self.reserve((id, ctx));
        let mut members = Vec::new();
        for i in 0..r.vlen {
            let (name, ty, offset) = self.raw.member(&r, i).ok_or_else(|| bad("a short struct"))?;
            let keep = match list {
                None => false,
                Some(l) if name != 0 => TYPES[l].1.iter().any(|n| self.raw.name_is(name, n)),
                Some(l) => self.contains(ty, l, depth + 1),
            };
            if keep {
                let ty = self.include(ty, Ctx { list, pointee: false }, depth + 1)?;
                members.push((self.string(name)?, ty, offset));
            }
        }
        let info = (r.info & !0xffff) | members.len() as u32;
        let mut out = self.header(r.name_off, info, r.size_type)?;
        for (name, ty, offset) in members {
            for v in [name, ty, offset] {
                out.extend_from_slice(&v.to_ne_bytes());
            }
        }
        self.records[new as usize - 1] = out;
        Ok(new)
    }

    /// Whether an anonymous member's type holds, at any depth, a member
    /// named in list `l`.
    fn contains(&self, id: u32, l: usize, depth: u32) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let Some(r) = self.raw.record(id) else { return false };
        match r.kind {
            TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => self.contains(r.size_type, l, depth + 1),
            STRUCT | UNION => (0..r.vlen).any(|i| match self.raw.member(&r, i) {
                Some((0, ty, _)) => self.contains(ty, l, depth + 1),
                Some((name, _, _)) => TYPES[l].1.iter().any(|n| self.raw.name_is(name, n)),
                None => false,
            }),
            _ => false,
        }
    }

    fn finish(&self) -> Vec<u8> {
        let type_len: usize = self.records.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(24 + type_len + self.strings.len());
        out.extend_from_slice(&0xeb9f_u16.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [24, 0, type_len as u32, type_len as u32, self.strings.len() as u32] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        for r in &self.records {
            out.extend_from_slice(r);
        }
        out.extend_from_slice(&self.strings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A tiny BTF by hand: int, a struct with a wanted and an unwanted
    /// member, a pointer to itself, and an iterator function.
    fn sample() -> Vec<u8> {
        let mut strings = b"\0int\0task_struct\0pid\0comm\0group_leader\0bpf_iter_tcp\0".to_vec();
        let off = |s: &str, strings: &[u8]| {
            let pat = [s.as_bytes(), b"\0"].concat();
            strings.windows(pat.len()).position(|w| w == pat.as_slice()).unwrap() as u32
        };
        let mut types = Vec::new();
        let mut rec = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_ne_bytes()));
        // 1: int (4 bytes, signed)
        rec(&[off("int", &strings), INT << 24, 4, (1 << 24) | 32]);
        // 2: struct task_struct { int pid @0; int comm @32; task_struct *group_leader @64 }
        rec(&[off("task_struct", &strings), STRUCT << 24 | 3, 16]);
        rec(&[off("pid", &strings), 1, 0]);
        rec(&[off("comm", &strings), 1, 32]);
        rec(&[off("group_leader", &strings), 3, 64]);
        // 3: pointer to 2
        rec(&[0, PTR << 24, 2]);
        // 4: func bpf_iter_tcp
        rec(&[off("bpf_iter_tcp", &strings), FUNC << 24, 0]);
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9f_u16.to_ne_bytes());
        out.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        out.extend_from_slice(&types);
        out.append(&mut strings);
        out
    }

    #[test]
    fn keeps_wanted_members_and_finds_iterators() {
        let k = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(k.iterators, [None, Some(4), None]);
        // int, task_struct, its pointer: comm is gone.
        assert_eq!(k.counts, (4, 3));
        let id = k.target.id_by_type_name_kind("task_struct", aya_obj::btf::BtfKind::Struct).unwrap();
        assert_eq!(id, 1, "the root comes first");
    }

    #[test]
    fn rejects_what_is_not_btf() {
        assert!(KernelBtf::parse(b"").is_err());
        assert!(KernelBtf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
        let mut truncated = sample();
        truncated.truncate(60);
        assert!(KernelBtf::parse(&truncated).is_err());
    }

    proptest! {
        /// Kernel data is parsed defensively: random bytes, and random
        /// damage to a valid blob, are errors or subsets, never a panic.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = KernelBtf::parse(&data);
        }

        #[test]
        fn damaged_blobs_never_panic(at in 0usize..200, byte in any::<u8>()) {
            let mut data = sample();
            let i = at % data.len();
            data[i] = byte;
            let _ = KernelBtf::parse(&data);
        }
    }
}
