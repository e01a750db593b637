//! Compiler from a small filter expression to Linux `inet_diag` bytecode.
//!
//! The output goes into an `INET_DIAG_REQ_BYTECODE` (1) rtattr placed after
//! the `inet_diag_req_v2` of a `SOCK_DIAG_BY_FAMILY` dump request. The kernel
//! checks it once with `inet_diag_bc_audit()` (any defect makes the whole
//! request fail with `EINVAL`) and then runs it against every socket with
//! `inet_diag_bc_run()` (`net/ipv4/inet_diag.c`), the way iproute2's `ss` does
//! for filters such as `sport = :443` or `dst 10.0.0.0/8`.
//!
//! # Program model
//!
//! A program is a sequence of ops, each starting with
//! `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }` in host byte order,
//! possibly followed by an argument. When the op's test holds the interpreter
//! moves `yes` bytes forward, otherwise `no` bytes. The socket is accepted
//! when execution lands exactly on the end of the program; landing anywhere
//! past it (this compiler always uses end + 4) rejects it.
//!
//! The audit imposes the shape of every program this module emits:
//!
//! * It walks the program by following `yes` offsets only, checking each op it
//!   lands on, and every `no` offset must land on an op of that walk
//!   (`valid_cc`), on the end, or on end + 4. So an op skipped by a `yes` jump
//!   is never validated, and no jump may target it. Every op here therefore
//!   has `yes` equal to its own length ("fall through when true") and all
//!   branching is done through `no`.
//! * `no` is a `u16` and must be a multiple of 4, at least the op's length and
//!   at most the remaining length + 4. That bounds programs to
//!   [`MAX_PROGRAM_LEN`] bytes, which also fits the `u16` rtattr length.
//! * "Jump to X when the test holds" is written as the test, whose `no` skips
//!   an unconditional `JMP` (code 1, which always takes its `no`) to X. This is
//!   also how `ss` compiles `or` and `not`.
//!
//! # Code generation
//!
//! Code is generated backwards, from the end of the program towards its
//! start, with two continuation labels per sub-expression: where to go when
//! it is true and where to go when it is false. Labels are positions already
//! emitted (or the accept/reject points past the end), so every jump is
//! forward and already resolved when the op is written; `Not` just swaps the
//! labels, `And`/`Or` chain them, and no sub-program is ever duplicated, so
//! the output grows linearly with the expression.
//!
//! # Opcodes used
//!
//! `JMP` (1), `S_GE` (2), `S_LE` (3), `D_GE` (4), `D_LE` (5), `S_COND` (7) and
//! `D_COND` (8): the original set, also present in kernels that predate
//! `S_EQ`/`D_EQ` (see the note on equality below).

use std::error::Error;
use std::fmt;
use std::net::IpAddr;

/// Largest program [`compile`] produces, in bytes.
///
/// The rtattr length is a `u16` that includes its own 4-byte header, so the
/// payload is at most 65531 bytes; programs are a whole number of 4-byte ops.
pub const MAX_PROGRAM_LEN: usize = 65528;

// Opcodes from include/uapi/linux/inet_diag.h (only the ones emitted here).
// Equality is compiled as a `*_GE` + `*_LE` pair rather than with
// `INET_DIAG_BC_S_EQ` (11) / `INET_DIAG_BC_D_EQ` (12): those exist only on
// newer kernels, and an older kernel's audit rejects an unknown opcode with
// EINVAL for the whole request, so using them would need a probe and a
// fallback. The pair is 16 bytes, the same size as `ss`'s own encoding of
// `sport = :N` (an `S_COND` with an `AF_UNSPEC` hostcond carrying the port),
// works on every kernel, and shares the code path with ranges.
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_D_GE: u8 = 4;
const BC_D_LE: u8 = 5;
const BC_S_COND: u8 = 7;
const BC_D_COND: u8 = 8;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Size of `struct inet_diag_bc_op`.
const OP_LEN: usize = 4;

/// One condition the kernel can test.
///
/// Address conditions follow the family of `addr`, as in `ss`:
///
/// * an IPv4 prefix matches IPv4 sockets and also IPv6 sockets whose address
///   is IPv4-mapped (`::ffff:a.b.c.d`, e.g. connections accepted on a
///   dual-stack `[::]` listener). The kernel implements this itself for an
///   `AF_INET` host condition run on an `AF_INET6` socket, so one op covers
///   both;
/// * an IPv6 prefix matches IPv6 sockets only. An IPv4-mapped IPv6 prefix
///   (`::ffff:10.0.0.0/104`) therefore matches mapped IPv6 sockets but not
///   plain IPv4 sockets; write the IPv4 form to get both;
/// * prefix 0 matches every socket of that family: `0.0.0.0/0` means "any
///   IPv4 address, including mapped ones", `::/0` means "any IPv6 socket".
///
/// Port ranges are inclusive; an empty range (`lo > hi`) matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cond {
    /// Local port within `lo..=hi` (`lo == hi` for equality).
    SPort {
        /// Lowest matching port.
        lo: u16,
        /// Highest matching port.
        hi: u16,
    },
    /// Remote port within `lo..=hi`.
    DPort {
        /// Lowest matching port.
        lo: u16,
        /// Highest matching port.
        hi: u16,
    },
    /// Local address within `addr/prefix` (IPv4 or IPv6). An IPv4 prefix
    /// also matches IPv4-mapped IPv6 sockets (`::ffff:a.b.c.d`), like `ss`.
    Src {
        /// Network address; bits past `prefix` are ignored.
        addr: IpAddr,
        /// Prefix length: at most 32 for IPv4, 128 for IPv6.
        prefix: u8,
    },
    /// Remote address within `addr/prefix` (same IPv4-mapped rule).
    Dst {
        /// Network address; bits past `prefix` are ignored.
        addr: IpAddr,
        /// Prefix length: at most 32 for IPv4, 128 for IPv6.
        prefix: u8,
    },
}

/// A boolean combination of [`Cond`]s.
///
/// `And(vec![])` is true and `Or(vec![])` is false.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expr {
    /// A single condition.
    Cond(Cond),
    /// True when every element is true.
    And(Vec<Expr>),
    /// True when at least one element is true.
    Or(Vec<Expr>),
    /// True when the inner expression is false.
    Not(Box<Expr>),
}

impl Expr {
    /// The expression's meaning, evaluated in user space on one socket's
    /// ends (`local`, `remote`: address and port; an unconnected socket's
    /// remote end is the unspecified address of its family, port 0). The
    /// compiled program makes the kernel decide the same (the tests hold the
    /// two together), so sockets read from /proc/net are filtered alike.
    pub fn matches(&self, local: (IpAddr, u16), remote: (IpAddr, u16)) -> bool {
        match self {
            Expr::Cond(c) => c.matches(local, remote),
            Expr::And(v) => v.iter().all(|e| e.matches(local, remote)),
            Expr::Or(v) => v.iter().any(|e| e.matches(local, remote)),
            Expr::Not(e) => !e.matches(local, remote),
        }
    }
}

impl Expr {
    /// The same test with the two ends swapped (source for destination):
    /// what the other end of each matching connection matches. `conns`
    /// dumps it to find the peers of what a one-sided filter selected.
    pub fn mirrored(&self) -> Expr {
        match self {
            Expr::Cond(c) => Expr::Cond(c.mirrored()),
            Expr::And(v) => Expr::And(v.iter().map(Expr::mirrored).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(Expr::mirrored).collect()),
            Expr::Not(e) => Expr::Not(Box::new(e.mirrored())),
        }
    }

    /// The same test with the operands of every `And` and `Or` in one
    /// order: two expressions that differ only in that order are equal
    /// once canonical (`sport 80 or dport 80` mirrored is itself).
    pub fn canonical(&self) -> Expr {
        let sorted = |v: &[Expr]| {
            let mut v: Vec<Expr> = v.iter().map(Expr::canonical).collect();
            v.sort();
            v
        };
        match self {
            Expr::Cond(c) => Expr::Cond(*c),
            Expr::And(v) => Expr::And(sorted(v)),
            Expr::Or(v) => Expr::Or(sorted(v)),
            Expr::Not(e) => Expr::Not(Box::new(e.canonical())),
        }
    }
}

impl Cond {
    /// Local for remote and remote for local.
    pub fn mirrored(&self) -> Cond {
        match *self {
            Cond::SPort { lo, hi } => Cond::DPort { lo, hi },
            Cond::DPort { lo, hi } => Cond::SPort { lo, hi },
            Cond::Src { addr, prefix } => Cond::Dst { addr, prefix },
            Cond::Dst { addr, prefix } => Cond::Src { addr, prefix },
        }
    }

    /// See [`Expr::matches`].
    pub fn matches(&self, local: (IpAddr, u16), remote: (IpAddr, u16)) -> bool {
        match *self {
            Cond::SPort { lo, hi } => (lo..=hi).contains(&local.1),
            Cond::DPort { lo, hi } => (lo..=hi).contains(&remote.1),
            Cond::Src { addr, prefix } => prefix_contains(addr, prefix, local.0),
            Cond::Dst { addr, prefix } => prefix_contains(addr, prefix, remote.0),
        }
    }
}

/// Whether `addr` is in `net/prefix`: the same family, and an IPv4 prefix
/// also takes IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3` is in
/// `10.0.0.0/8`), as the kernel's host conditions do.
pub fn prefix_contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
        let full = usize::from(bits / 8).min(a.len());
        if a[..full] != b[..full] {
            return false;
        }
        let rest = bits % 8;
        rest == 0 || full >= a.len() || {
            let mask = 0xffu8 << (8 - rest);
            a[full] & mask == b[full] & mask
        }
    }
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
        (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
        (IpAddr::V4(n), IpAddr::V6(a)) => {
            a.to_ipv4_mapped().is_some_and(|m| same_prefix(&n.octets(), &m.octets(), prefix))
        }
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
    }
}

impl From<Cond> for Expr {
    fn from(cond: Cond) -> Self {
        Expr::Cond(cond)
    }
}

/// Why an expression cannot be turned into a program the kernel accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// A `Src`/`Dst` prefix is longer than its address (more than 32 bits for
    /// IPv4 or 128 for IPv6); the kernel's audit would reject it.
    PrefixTooLong {
        /// The address the prefix applies to.
        addr: IpAddr,
        /// The offending prefix length.
        prefix: u8,
    },
    /// The program would be longer than [`MAX_PROGRAM_LEN`] bytes, beyond the
    /// reach of the kernel's 16-bit jump offsets and attribute length.
    TooLarge {
        /// Length reached when compilation stopped, in bytes.
        len: usize,
    },
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::PrefixTooLong { addr, prefix } => {
                write!(f, "prefix length {prefix} is too long for address {addr}")
            }
            CompileError::TooLarge { len } => {
                write!(f, "filter too large for the kernel: {len} bytes of bytecode, at most {MAX_PROGRAM_LEN}")
            }
        }
    }
}

impl Error for CompileError {}

/// Compile to the byte program; the caller puts it in an
/// `INET_DIAG_REQ_BYTECODE` rtattr.
///
/// The program is never empty: an expression that is always true compiles to
/// a single jump to the end.
///
/// # Panics
///
/// Panics when [`try_compile`] would fail: a prefix longer than its address,
/// or a filter too large for the kernel. Use [`try_compile`] for expressions
/// built from unchecked input.
#[must_use]
pub fn compile(expr: &Expr) -> Vec<u8> {
    try_compile(expr).unwrap_or_else(|e| panic!("cannot compile socket filter: {e}"))
}

/// Compile to the byte program, reporting expressions the kernel would
/// refuse instead of panicking.
///
/// # Errors
///
/// [`CompileError::PrefixTooLong`] for a `Src`/`Dst` prefix longer than its
/// address, [`CompileError::TooLarge`] when the program would exceed
/// [`MAX_PROGRAM_LEN`].
pub fn try_compile(expr: &Expr) -> Result<Vec<u8>, CompileError> {
    let mut cg = Codegen::default();
    cg.expr(expr, ACCEPT, REJECT)?;
    if cg.len == 0 {
        // The kernel refuses an empty program; "always true" is a jump to the end.
        cg.jump(ACCEPT)?;
    }
    Ok(cg.finish())
}

/// A jump target, as the distance from it to end + 4 of the program, so that
/// labels stay valid while code is prepended.
type Label = usize;

/// Landing exactly on the end of the program accepts the socket.
const ACCEPT: Label = 4;
/// Landing on end + 4 rejects it.
const REJECT: Label = 0;

/// One emitted op: its code, its `no` offset and the bytes following the
/// 4-byte header (its `yes` is always its own length).
struct Op {
    code: u8,
    no: usize,
    arg: Vec<u8>,
}

/// Backwards code generator: `ops` holds the program's ops in reverse order
/// and `len` their total size.
#[derive(Default)]
struct Codegen {
    ops: Vec<Op>,
    len: usize,
}

impl Codegen {
    /// Label of the first op emitted so far (the code that follows whatever is
    /// emitted next).
    fn head(&self) -> Label {
        self.len + 4
    }

    /// Prepends an op that falls through when its test holds and jumps to
    /// `no_target` otherwise.
    fn push(&mut self, code: u8, no_target: Label, arg: Vec<u8>) -> Result<(), CompileError> {
        let size = OP_LEN + arg.len();
        self.len += size;
        if self.len > MAX_PROGRAM_LEN {
            return Err(CompileError::TooLarge { len: self.len });
        }
        // Both labels count back from end + 4, so the forward distance from
        // this op's start to the target is the difference.
        let no = self.head() - no_target;
        self.ops.push(Op { code, no, arg });
        Ok(())
    }

    /// Prepends an unconditional jump to `target`.
    fn jump(&mut self, target: Label) -> Result<(), CompileError> {
        self.push(BC_JMP, target, Vec::new())
    }

    /// Makes control reach `target`: nothing if it is the code that follows,
    /// a jump otherwise.
    fn goto(&mut self, target: Label) -> Result<(), CompileError> {
        if target == self.head() { Ok(()) } else { self.jump(target) }
    }

    /// Prepends code that continues at `t` when `e` is true and at `f` when it
    /// is false.
    fn expr(&mut self, e: &Expr, t: Label, f: Label) -> Result<(), CompileError> {
        match e {
            Expr::Cond(c) => self.cond(c, t, f),
            Expr::Not(inner) => self.expr(inner, f, t),
            Expr::And(items) => {
                if items.is_empty() {
                    return self.goto(t);
                }
                // Each item falls into the next one when true; any false item
                // goes to `f`. Built last item first.
                let mut next = t;
                for item in items.iter().rev() {
                    self.expr(item, next, f)?;
                    next = self.head();
                }
                Ok(())
            }
            Expr::Or(items) => {
                if items.is_empty() {
                    return self.goto(f);
                }
                // Each item goes to `t` when true and into the next one when false.
                let mut next = f;
                for item in items.iter().rev() {
                    self.expr(item, t, next)?;
                    next = self.head();
                }
                Ok(())
            }
        }
    }

    /// A condition is a conjunction of at most two kernel tests, each falling
    /// through when it holds and jumping to `f` when it does not; after the
    /// last one, control goes to `t`.
    fn cond(&mut self, c: &Cond, t: Label, f: Label) -> Result<(), CompileError> {
        let mut tests: Vec<(u8, Vec<u8>)> = Vec::with_capacity(2);
        match *c {
            Cond::SPort { lo, hi } | Cond::DPort { lo, hi } => {
                if lo > hi {
                    return self.goto(f);
                }
                let (ge, le) = match c {
                    Cond::SPort { .. } => (BC_S_GE, BC_S_LE),
                    _ => (BC_D_GE, BC_D_LE),
                };
                // A bound at the edge of the port space always holds; skip it.
                if lo > 0 {
                    tests.push((ge, port_arg(lo)));
                }
                if hi < u16::MAX {
                    tests.push((le, port_arg(hi)));
                }
            }
            Cond::Src { addr, prefix } => tests.push((BC_S_COND, hostcond_arg(addr, prefix)?)),
            Cond::Dst { addr, prefix } => tests.push((BC_D_COND, hostcond_arg(addr, prefix)?)),
        }
        self.goto(t)?;
        for (code, arg) in tests.into_iter().rev() {
            self.push(code, f, arg)?;
        }
        Ok(())
    }

    /// Serializes the ops in program order.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for op in self.ops.iter().rev() {
            let size = OP_LEN + op.arg.len();
            // Op sizes are 4, 8, 16 or 28 bytes and `push` kept the program
            // within MAX_PROGRAM_LEN, so every jump is at most 65532.
            let yes = u8::try_from(size).expect("op size fits in u8");
            let no = u16::try_from(op.no).expect("jump offset fits in u16");
            out.push(op.code);
            out.push(yes);
            out.extend_from_slice(&no.to_ne_bytes());
            out.extend_from_slice(&op.arg);
        }
        debug_assert_eq!(out.len(), self.len);
        out
    }
}

/// Argument of a port comparison: a second `inet_diag_bc_op` whose `no` field
/// holds the port (host byte order); its code and yes are unused.
fn port_arg(port: u16) -> Vec<u8> {
    let mut arg = vec![0, 0];
    arg.extend_from_slice(&port.to_ne_bytes());
    arg
}

/// `struct inet_diag_hostcond { u8 family; u8 prefix_len; int port; __be32 addr[]; }`:
/// 2 bytes of padding before `port` (host byte order, -1 = any port), then
/// the address in network byte order.
fn hostcond_arg(addr: IpAddr, prefix: u8) -> Result<Vec<u8>, CompileError> {
    let (family, bytes): (u8, Vec<u8>) = match addr {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    if usize::from(prefix) > 8 * bytes.len() {
        return Err(CompileError::PrefixTooLong { addr, prefix });
    }
    let mut arg = vec![family, prefix, 0, 0];
    arg.extend_from_slice(&(-1i32).to_ne_bytes());
    arg.extend_from_slice(&bytes);
    Ok(arg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    // ----- expression helpers -------------------------------------------

    fn sport(lo: u16, hi: u16) -> Expr {
        Expr::Cond(Cond::SPort { lo, hi })
    }

    fn dport(lo: u16, hi: u16) -> Expr {
        Expr::Cond(Cond::DPort { lo, hi })
    }

    fn src(net: &str) -> Expr {
        let (addr, prefix) = cidr(net);
        Expr::Cond(Cond::Src { addr, prefix })
    }

    /// The mirror of a filter selects the other ends of what the filter
    /// selects; `--port` (either end) is its own mirror.
    #[test]
    fn mirrored_filters_swap_the_ends() {
        let l: IpAddr = "10.0.0.1".parse().unwrap();
        let r: IpAddr = "10.0.0.2".parse().unwrap();
        let f = Expr::And(vec![sport(80, 80), src("10.0.0.0/24")]);
        assert!(f.matches((l, 80), (r, 5000)));
        assert!(!f.matches((r, 5000), (l, 80)));
        assert!(f.mirrored().matches((r, 5000), (l, 80)), "the other end matches the mirror");
        let either = Expr::Or(vec![sport(80, 80), dport(80, 80)]);
        assert_ne!(either.mirrored(), either);
        assert_eq!(either.mirrored().canonical(), either.canonical());
        assert_ne!(f.mirrored().canonical(), f.canonical());
    }

    fn dst(net: &str) -> Expr {
        let (addr, prefix) = cidr(net);
        Expr::Cond(Cond::Dst { addr, prefix })
    }

    fn cidr(net: &str) -> (IpAddr, u8) {
        let (a, p) = net.split_once('/').expect("addr/prefix");
        (a.parse().expect("address"), p.parse().expect("prefix"))
    }

    fn not(e: Expr) -> Expr {
        Expr::Not(Box::new(e))
    }

    fn and(v: Vec<Expr>) -> Expr {
        Expr::And(v)
    }

    fn or(v: Vec<Expr>) -> Expr {
        Expr::Or(v)
    }

    // ----- a mirror of the kernel's audit and interpreter ---------------
    //
    // Written from net/ipv4/inet_diag.c (inet_diag_bc_audit, valid_cc,
    // valid_hostcond, valid_port_comparison, inet_diag_bc_run,
    // bitstring_match), including opcodes this module never emits, so that
    // it judges the compiler's output rather than assuming it.

    const NOP: u8 = 0;
    const JMP: u8 = 1;
    const S_GE: u8 = 2;
    const S_LE: u8 = 3;
    const D_GE: u8 = 4;
    const D_LE: u8 = 5;
    const AUTO: u8 = 6;
    const S_COND: u8 = 7;
    const D_COND: u8 = 8;
    const DEV_COND: u8 = 9;
    const MARK_COND: u8 = 10;
    const S_EQ: u8 = 11;
    const D_EQ: u8 = 12;

    fn op_at(bc: &[u8], off: usize) -> Option<(u8, usize, usize)> {
        let b = bc.get(off..off + 4)?;
        Some((b[0], usize::from(b[1]), usize::from(u16::from_ne_bytes([b[2], b[3]]))))
    }

    /// `valid_cc`: is `cc` (a remaining length) the start of an op on the
    /// walk that follows `yes` from the beginning?
    fn valid_cc(bc: &[u8], cc: usize) -> bool {
        let mut len = bc.len();
        let mut off = 0;
        loop {
            if cc > len {
                return false;
            }
            if cc == len {
                return true;
            }
            let Some((_, yes, _)) = op_at(bc, off) else {
                return false;
            };
            if yes < 4 || yes & 3 != 0 || yes > len {
                return false;
            }
            len -= yes;
            off += yes;
        }
    }

    /// `inet_diag_bc_audit` (as a CAP_NET_ADMIN caller, so MARK_COND passes).
    fn audit(bc: &[u8]) -> Result<(), String> {
        if bc.len() < 4 {
            return Err("shorter than one op".into());
        }
        let mut len = bc.len() as isize;
        let mut off = 0usize;
        while len > 0 {
            let (code, yes, no) = op_at(bc, off).ok_or(format!("truncated op at {off}"))?;
            let ulen = len as usize;
            let mut min_len = 4usize;
            match code {
                S_COND | D_COND => {
                    min_len += 8;
                    if ulen < min_len {
                        return Err(format!("hostcond truncated at {off}"));
                    }
                    let alen = match bc[off + 4] {
                        0 => 0,
                        2 => 4,
                        10 => 16,
                        fam => return Err(format!("bad family {fam} at {off}")),
                    };
                    min_len += alen;
                    if ulen < min_len {
                        return Err(format!("address truncated at {off}"));
                    }
                    if usize::from(bc[off + 5]) > 8 * alen {
                        return Err(format!("prefix too long at {off}"));
                    }
                }
                DEV_COND => min_len += 4,
                S_EQ | S_GE | S_LE | D_EQ | D_GE | D_LE => min_len += 4,
                MARK_COND => min_len += 8,
                AUTO | JMP | NOP => {}
                _ => return Err(format!("unknown opcode {code} at {off}")),
            }
            if ulen < min_len {
                return Err(format!("op truncated at {off}"));
            }
            if code != NOP {
                if no < min_len || no > ulen + 4 || no & 3 != 0 {
                    return Err(format!("bad no={no} at {off}"));
                }
                if no < ulen && !valid_cc(bc, ulen - no) {
                    return Err(format!("no={no} at {off} lands inside an op"));
                }
            }
            if yes < min_len || yes > ulen + 4 || yes & 3 != 0 {
                return Err(format!("bad yes={yes} at {off}"));
            }
            off += yes;
            len -= yes as isize;
        }
        if len == 0 { Ok(()) } else { Err("walk overshoots the end".into()) }
    }

    /// What `inet_diag_bc_sk` feeds the interpreter.
    #[derive(Debug, Clone)]
    struct Entry {
        family: u8,
        saddr: Vec<u8>,
        daddr: Vec<u8>,
        sport: u16,
        dport: u16,
    }

    /// `bitstring_match`: compare the first `bits` bits, word by word.
    fn bitstring_match(a1: &[u8], a2: &[u8], bits: usize) -> bool {
        let words = bits >> 5;
        let bits = bits & 0x1f;
        if a1[..words * 4] != a2[..words * 4] {
            return false;
        }
        if bits != 0 {
            let w = |a: &[u8]| u32::from_be_bytes(a[words * 4..words * 4 + 4].try_into().unwrap());
            let mask = 0xffff_ffffu32 << (32 - bits);
            if (w(a1) ^ w(a2)) & mask != 0 {
                return false;
            }
        }
        true
    }

    /// `inet_diag_bc_run`. Only call on audited programs.
    fn run(bc: &[u8], e: &Entry) -> bool {
        let mut len = bc.len() as isize;
        let mut off = 0usize;
        while len > 0 {
            let (code, yes, no) = op_at(bc, off).expect("audited program");
            let port_arg = || usize::from(u16::from_ne_bytes([bc[off + 6], bc[off + 7]]));
            let hit = match code {
                NOP => true,
                JMP => false,
                S_EQ => usize::from(e.sport) == port_arg(),
                S_GE => usize::from(e.sport) >= port_arg(),
                S_LE => usize::from(e.sport) <= port_arg(),
                D_EQ => usize::from(e.dport) == port_arg(),
                D_GE => usize::from(e.dport) >= port_arg(),
                D_LE => usize::from(e.dport) <= port_arg(),
                S_COND | D_COND => {
                    let family = bc[off + 4];
                    let prefix = usize::from(bc[off + 5]);
                    let port = i32::from_ne_bytes(bc[off + 8..off + 12].try_into().unwrap());
                    let cond_addr = &bc[off + 12..];
                    let (addr, sk_port) = if code == S_COND { (&e.saddr, e.sport) } else { (&e.daddr, e.dport) };
                    if port != -1 && port != i32::from(sk_port) {
                        false
                    } else if family != 0 && family != e.family {
                        e.family == 10
                            && family == 2
                            && addr[..10].iter().all(|&b| b == 0)
                            && addr[10..12] == [0xff, 0xff]
                            && bitstring_match(&addr[12..], cond_addr, prefix)
                    } else {
                        prefix == 0 || bitstring_match(addr, cond_addr, prefix)
                    }
                }
                _ => panic!("opcode {code} not modelled"),
            };
            let step = if hit { yes } else { no };
            off += step;
            len -= step as isize;
        }
        len == 0
    }

    // ----- reference semantics, independent of the byte level ------------

    /// A socket as user space sees it: both addresses share its family.
    #[derive(Debug, Clone, Copy)]
    struct Sock {
        local: IpAddr,
        sport: u16,
        remote: IpAddr,
        dport: u16,
    }

    impl Sock {
        fn new(local: &str, sport: u16, remote: &str, dport: u16) -> Sock {
            let s = Sock { local: local.parse().unwrap(), sport, remote: remote.parse().unwrap(), dport };
            assert_eq!(s.local.is_ipv4(), s.remote.is_ipv4());
            s
        }

        fn entry(&self) -> Entry {
            let bytes = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            Entry {
                family: if self.local.is_ipv4() { 2 } else { 10 },
                saddr: bytes(self.local),
                daddr: bytes(self.remote),
                sport: self.sport,
                dport: self.dport,
            }
        }
    }

    /// The product's user-space evaluation, which the compiled program must
    /// agree with.
    fn eval(e: &Expr, s: &Sock) -> bool {
        e.matches((s.local, s.sport), (s.remote, s.dport))
    }

    /// Compiles, audits, and checks the program against the reference
    /// semantics on every sample socket.
    fn check_truth(e: &Expr, socks: &[Sock]) {
        let bc = compile(e);
        if let Err(why) = audit(&bc) {
            panic!("audit rejects {e:?}: {why}\n{bc:02x?}");
        }
        for s in socks {
            assert_eq!(run(&bc, &s.entry()), eval(e, s), "{e:?} on {s:?}\n{bc:02x?}");
        }
    }

    fn sample_socks() -> Vec<Sock> {
        let v4 = ["10.1.2.3", "10.200.0.1", "11.0.0.1", "127.0.0.1", "192.168.1.5", "0.0.0.0"];
        let v6 = [
            "::1",
            "::",
            "fd00:1::5",
            "fd00:2::1",
            "2001:db8::1",
            "::ffff:10.1.2.3",
            "::ffff:127.0.0.1",
            "::ffff:192.168.1.5",
            "::10.1.2.3",
        ];
        let ports = [0u16, 1, 22, 80, 443, 1023, 1024, 8080, 50000, 65535];
        let mut out = Vec::new();
        let mut k = 0usize;
        for group in [&v4[..], &v6[..]] {
            for (i, l) in group.iter().enumerate() {
                for (j, r) in group.iter().enumerate() {
                    if (i + j) % 2 == 0 {
                        k += 1;
                        let sp = ports[k % ports.len()];
                        let dp = ports[(k * 7 + 3) % ports.len()];
                        out.push(Sock::new(l, sp, r, dp));
                    }
                }
            }
        }
        out
    }

    // ----- emitted bytes --------------------------------------------------
    //
    // The byte tables spell out host-endian fields as they are laid out on a
    // little-endian machine (u16 `no` and port fields low byte first,
    // hostcond port -1 = ff ff ff ff); addresses are always big-endian.

    #[cfg(target_endian = "little")]
    #[test]
    fn emitted_bytes() {
        #[rustfmt::skip]
        let table: Vec<(&str, Expr, Vec<u8>)> = vec![
            (
                "sport = :443",
                sport(443, 443),
                vec![
                    0x02, 0x08, 0x14, 0x00, // S_GE, yes 8 (next op), no 20 = end + 4: reject
                    0x00, 0x00, 0xbb, 0x01, //   port word: no = 443
                    0x03, 0x08, 0x0c, 0x00, // S_LE, yes 8 -> end: accept, no 12 -> end + 4
                    0x00, 0x00, 0xbb, 0x01, //   port word: no = 443
                ],
            ),
            (
                // Byte-identical to what ss 6.1 sends for
                // 'sport >= :1024 and sport <= :2000'.
                "sport 1024..=2000",
                sport(1024, 2000),
                vec![
                    0x02, 0x08, 0x14, 0x00, // S_GE, yes 8, no 20 -> reject
                    0x00, 0x00, 0x00, 0x04, //   port 1024
                    0x03, 0x08, 0x0c, 0x00, // S_LE, yes 8 -> accept, no 12 -> reject
                    0x00, 0x00, 0xd0, 0x07, //   port 2000
                ],
            ),
            (
                "sport >= :1024 (upper bound 65535 is implied)",
                sport(1024, u16::MAX),
                vec![
                    0x02, 0x08, 0x0c, 0x00, // S_GE, yes 8 -> accept, no 12 -> reject
                    0x00, 0x00, 0x00, 0x04, //   port 1024
                ],
            ),
            (
                "not sport = :22",
                not(sport(22, 22)),
                vec![
                    0x02, 0x08, 0x14, 0x00, // S_GE 22, no 20 -> offset 20 = end: accept
                    0x00, 0x00, 0x16, 0x00, //   port 22
                    0x03, 0x08, 0x0c, 0x00, // S_LE 22, no 12 -> offset 20 = end: accept
                    0x00, 0x00, 0x16, 0x00, //   port 22
                    0x01, 0x04, 0x08, 0x00, // JMP (always takes no), no 8 -> end + 4: reject
                ],
            ),
            (
                "sport = :80 or dport = :443",
                or(vec![sport(80, 80), dport(443, 443)]),
                vec![
                    0x02, 0x08, 0x14, 0x00, // S_GE 80, no 20 -> offset 20: second branch
                    0x00, 0x00, 0x50, 0x00, //   port 80
                    0x03, 0x08, 0x0c, 0x00, // S_LE 80, no 12 -> offset 20: second branch
                    0x00, 0x00, 0x50, 0x00, //   port 80
                    0x01, 0x04, 0x14, 0x00, // JMP, no 20 -> offset 36 = end: accept
                    0x04, 0x08, 0x14, 0x00, // D_GE 443, no 20 -> offset 40 = end + 4: reject
                    0x00, 0x00, 0xbb, 0x01, //   port 443
                    0x05, 0x08, 0x0c, 0x00, // D_LE 443, yes -> end: accept, no 12 -> reject
                    0x00, 0x00, 0xbb, 0x01, //   port 443
                ],
            ),
            (
                "dport >= :1024 and not dport = :8080",
                and(vec![dport(1024, u16::MAX), not(dport(8080, 8080))]),
                vec![
                    0x04, 0x08, 0x20, 0x00, // D_GE 1024, no 32 -> offset 32 = end + 4: reject
                    0x00, 0x00, 0x00, 0x04, //   port 1024
                    0x04, 0x08, 0x14, 0x00, // D_GE 8080, no 20 -> offset 28 = end: accept
                    0x00, 0x00, 0x90, 0x1f, //   port 8080
                    0x05, 0x08, 0x0c, 0x00, // D_LE 8080, no 12 -> offset 28 = end: accept
                    0x00, 0x00, 0x90, 0x1f, //   port 8080
                    0x01, 0x04, 0x08, 0x00, // JMP, no 8 -> offset 32 = end + 4: reject
                ],
            ),
            (
                // Byte-identical to what ss 6.1 sends for 'dst 10.0.0.0/8'.
                "dst 10.0.0.0/8",
                dst("10.0.0.0/8"),
                vec![
                    0x08, 0x10, 0x14, 0x00, // D_COND, yes 16 -> accept, no 20 -> reject
                    0x02, 0x08, 0x00, 0x00, //   family AF_INET, prefix_len 8, padding
                    0xff, 0xff, 0xff, 0xff, //   port -1: any port
                    0x0a, 0x00, 0x00, 0x00, //   addr 10.0.0.0
                ],
            ),
            (
                "src fd00:1::/64",
                src("fd00:1::/64"),
                vec![
                    0x07, 0x1c, 0x20, 0x00, // S_COND, yes 28 -> accept, no 32 -> reject
                    0x0a, 0x40, 0x00, 0x00, //   family AF_INET6, prefix_len 64, padding
                    0xff, 0xff, 0xff, 0xff, //   port -1: any port
                    0xfd, 0x00, 0x00, 0x01, //   addr fd00:1::
                    0x00, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00,
                ],
            ),
            (
                "src 127.0.0.0/8 and sport = :22000 (v4 prefix, v4-mapped sockets included)",
                and(vec![src("127.0.0.0/8"), sport(22000, 22000)]),
                vec![
                    0x07, 0x10, 0x24, 0x00, // S_COND, no 36 -> offset 36 = end + 4: reject
                    0x02, 0x08, 0x00, 0x00, //   AF_INET /8
                    0xff, 0xff, 0xff, 0xff, //   any port
                    0x7f, 0x00, 0x00, 0x00, //   127.0.0.0
                    0x02, 0x08, 0x14, 0x00, // S_GE 22000, no 20 -> offset 36: reject
                    0x00, 0x00, 0xf0, 0x55, //   port 22000
                    0x03, 0x08, 0x0c, 0x00, // S_LE 22000, yes -> end: accept, no 12 -> reject
                    0x00, 0x00, 0xf0, 0x55, //   port 22000
                ],
            ),
            (
                "always true: and()",
                and(vec![]),
                vec![0x01, 0x04, 0x04, 0x00], // JMP, no 4 -> end: accept
            ),
            (
                "always false: or()",
                or(vec![]),
                vec![0x01, 0x04, 0x08, 0x00], // JMP, no 8 -> end + 4: reject
            ),
            (
                "empty range matches nothing",
                sport(2000, 1000),
                vec![0x01, 0x04, 0x08, 0x00], // JMP -> reject
            ),
            (
                "full range matches everything",
                dport(0, u16::MAX),
                vec![0x01, 0x04, 0x04, 0x00], // JMP -> accept
            ),
        ];
        for (name, expr, want) in &table {
            let got = compile(expr);
            assert_eq!(&got, want, "{name}");
            assert_eq!(audit(&got), Ok(()), "{name}");
        }
    }

    /// Programs dumped from the live-kernel check (Linux 6.18, a scratch
    /// network namespace holding 531 TCP sockets), where the kernel accepted
    /// them and returned the same sockets as `ss -tan` with the equivalent
    /// filter and as the reference semantics above.
    #[cfg(target_endian = "little")]
    #[test]
    fn live_kernel_fixtures() {
        #[rustfmt::skip]
        let table: Vec<(&str, Expr, Vec<u8>)> = vec![
            (
                // 3 of 531 sockets: the listeners 127.0.0.1:20007/20042/20133.
                "sport = :20007 or sport = :20042 or sport = :20133",
                or(vec![sport(20007, 20007), sport(20042, 20042), sport(20133, 20133)]),
                vec![
                    0x02, 0x08, 0x14, 0x00, //  0: S_GE, no 20 -> 20 (second alternative)
                    0x00, 0x00, 0x27, 0x4e, //     port 20007
                    0x03, 0x08, 0x0c, 0x00, //  8: S_LE, no 12 -> 20
                    0x00, 0x00, 0x27, 0x4e, //     port 20007
                    0x01, 0x04, 0x28, 0x00, // 16: JMP, no 40 -> 56 = end: accept
                    0x02, 0x08, 0x14, 0x00, // 20: S_GE, no 20 -> 40 (third alternative)
                    0x00, 0x00, 0x4a, 0x4e, //     port 20042
                    0x03, 0x08, 0x0c, 0x00, // 28: S_LE, no 12 -> 40
                    0x00, 0x00, 0x4a, 0x4e, //     port 20042
                    0x01, 0x04, 0x14, 0x00, // 36: JMP, no 20 -> 56: accept
                    0x02, 0x08, 0x14, 0x00, // 40: S_GE, no 20 -> 60 = end + 4: reject
                    0x00, 0x00, 0xa5, 0x4e, //     port 20133
                    0x03, 0x08, 0x0c, 0x00, // 48: S_LE, yes -> 56: accept, no 12 -> 60: reject
                    0x00, 0x00, 0xa5, 0x4e, //     port 20133
                ],
            ),
            (
                // The 20 sockets accepted on a dual-stack [::]:22000 listener:
                // AF_INET6 with peer ::ffff:127.0.0.1, matched by the IPv4 prefix.
                "dst 127.0.0.0/8 and sport = :22000",
                and(vec![dst("127.0.0.0/8"), sport(22000, 22000)]),
                vec![
                    0x08, 0x10, 0x24, 0x00, //  0: D_COND, yes 16, no 36 -> 36 = end + 4: reject
                    0x02, 0x08, 0x00, 0x00, //     AF_INET, prefix_len 8, padding
                    0xff, 0xff, 0xff, 0xff, //     port -1: any
                    0x7f, 0x00, 0x00, 0x00, //     127.0.0.0
                    0x02, 0x08, 0x14, 0x00, // 16: S_GE, no 20 -> 36: reject
                    0x00, 0x00, 0xf0, 0x55, //     port 22000
                    0x03, 0x08, 0x0c, 0x00, // 24: S_LE, yes -> 32 = end: accept, no 12 -> 36
                    0x00, 0x00, 0xf0, 0x55, //     port 22000
                ],
            ),
            (
                // 100 of 531 sockets.
                "(sport 20000..=20049 or src fd00:1::/64) and not dst 10.0.0.0/8",
                and(vec![
                    or(vec![sport(20000, 20049), src("fd00:1::/64")]),
                    not(dst("10.0.0.0/8")),
                ]),
                vec![
                    0x02, 0x08, 0x14, 0x00, //  0: S_GE, no 20 -> 20 (the S_COND alternative)
                    0x00, 0x00, 0x20, 0x4e, //     port 20000
                    0x03, 0x08, 0x0c, 0x00, //  8: S_LE, no 12 -> 20
                    0x00, 0x00, 0x51, 0x4e, //     port 20049
                    0x01, 0x04, 0x20, 0x00, // 16: JMP, no 32 -> 48 (the `not dst` part)
                    0x07, 0x1c, 0x34, 0x00, // 20: S_COND, yes 28 -> 48, no 52 -> 72 = end + 4: reject
                    0x0a, 0x40, 0x00, 0x00, //     AF_INET6, prefix_len 64, padding
                    0xff, 0xff, 0xff, 0xff, //     port -1: any
                    0xfd, 0x00, 0x00, 0x01, //     fd00:1::
                    0x00, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00,
                    0x08, 0x10, 0x14, 0x00, // 48: D_COND, yes 16 -> 64, no 20 -> 68 = end: accept
                    0x02, 0x08, 0x00, 0x00, //     AF_INET, prefix_len 8, padding
                    0xff, 0xff, 0xff, 0xff, //     port -1: any
                    0x0a, 0x00, 0x00, 0x00, //     10.0.0.0
                    0x01, 0x04, 0x08, 0x00, // 64: JMP, no 8 -> 72 = end + 4: reject
                ],
            ),
        ];
        for (name, expr, want) in &table {
            let got = compile(expr);
            assert_eq!(&got, want, "{name}");
            assert_eq!(audit(&got), Ok(()), "{name}");
        }
    }

    // ----- truth of compiled programs -------------------------------------

    #[test]
    fn handwritten_truth_cases() {
        let socks = sample_socks();
        let cases = vec![
            sport(443, 443),
            sport(0, 1023),
            dport(1024, 65535),
            not(sport(22, 22)),
            or(vec![sport(22, 22), sport(80, 80), sport(443, 443)]),
            and(vec![sport(1, 1024), not(dport(0, 0))]),
            not(and(vec![src("10.0.0.0/8"), not(or(vec![dport(80, 80), dst("::1/128")]))])),
            or(vec![and(vec![]), sport(1, 1)]),
            and(vec![or(vec![]), sport(1, 1)]),
            not(not(not(dst("127.0.0.0/8")))),
            src("0.0.0.0/0"),
            src("::/0"),
            not(src("::/0")),
            dst("::ffff:10.0.0.0/104"),
            src("10.1.2.3/32"),
            src("10.1.2.3/31"),
            src("fd00::/8"),
            dst("fd00:1::/64"),
            and(vec![src("0.0.0.0/0"), src("::/0")]),
        ];
        for e in &cases {
            check_truth(e, &socks);
        }
    }

    #[test]
    fn ipv4_prefix_matches_mapped_ipv6_sockets() {
        let mapped = Sock::new("::ffff:127.0.0.1", 22000, "::ffff:127.0.0.1", 40000);
        let plain4 = Sock::new("127.0.0.1", 40000, "127.0.0.1", 22000);
        let native6 = Sock::new("::1", 22000, "::1", 40000);
        let wildcard6 = Sock::new("::", 22000, "::", 0);
        let e = dst("127.0.0.0/8");
        let bc = compile(&e);
        assert!(run(&bc, &mapped.entry()));
        assert!(run(&bc, &plain4.entry()));
        assert!(!run(&bc, &native6.entry()));
        assert!(!run(&bc, &wildcard6.entry()));
        // One op covers both families: the kernel does the mapped check.
        assert_eq!(bc.len(), 16);
        // 0.0.0.0/0 is "any IPv4 address", mapped ones included.
        let any4 = compile(&src("0.0.0.0/0"));
        assert!(run(&any4, &mapped.entry()) && run(&any4, &plain4.entry()));
        assert!(!run(&any4, &native6.entry()) && !run(&any4, &wildcard6.entry()));
        // An IPv4-mapped IPv6 prefix selects mapped IPv6 sockets only.
        let m = compile(&dst("::ffff:127.0.0.0/104"));
        assert!(run(&m, &mapped.entry()));
        assert!(!run(&m, &plain4.entry()));
    }

    /// Tiny deterministic PRNG (xorshift64*), so tests need no crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_cond(rng: &mut Rng) -> Expr {
        const PORTS: [u16; 10] = [0, 1, 22, 80, 443, 1023, 1024, 8080, 50000, 65535];
        const NETS: [&str; 16] = [
            "10.0.0.0/8",
            "10.1.2.3/32",
            "10.1.2.2/31",
            "127.0.0.0/8",
            "0.0.0.0/0",
            "192.168.0.0/16",
            "8.0.0.0/7",
            "::1/128",
            "::/0",
            "fd00::/8",
            "fd00:1::/64",
            "fd00:1::5/127",
            "2001:db8::/32",
            "::ffff:10.0.0.0/104",
            "::ffff:0:0/96",
            "::/96",
        ];
        let port = |rng: &mut Rng| PORTS[rng.below(PORTS.len())];
        match rng.below(4) {
            0 => sport(port(rng), port(rng)),
            1 => dport(port(rng), port(rng)),
            2 => src(NETS[rng.below(NETS.len())]),
            _ => dst(NETS[rng.below(NETS.len())]),
        }
    }

    fn random_expr(rng: &mut Rng, depth: u32) -> Expr {
        if depth == 0 || rng.below(3) == 0 {
            return random_cond(rng);
        }
        match rng.below(3) {
            0 => not(random_expr(rng, depth - 1)),
            k => {
                let n = rng.below(4);
                let items = (0..n).map(|_| random_expr(rng, depth - 1)).collect();
                if k == 1 { and(items) } else { or(items) }
            }
        }
    }

    #[test]
    fn random_nested_expressions_agree_with_reference() {
        let socks = sample_socks();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for _ in 0..3000 {
            let e = random_expr(&mut rng, 5);
            check_truth(&e, &socks);
        }
    }

    // ----- limits and the audit mirror itself ---------------------------------

    #[test]
    fn prefix_longer_than_address_is_an_error() {
        let e = and(vec![sport(1, 2), src("10.0.0.0/33")]);
        assert!(matches!(try_compile(&e), Err(CompileError::PrefixTooLong { prefix: 33, .. })));
        assert!(try_compile(&dst("::/129")).is_err());
        assert!(try_compile(&dst("::/128")).is_ok());
        assert!(try_compile(&dst("1.2.3.4/32")).is_ok());
    }

    #[test]
    #[should_panic(expected = "prefix length 40 is too long")]
    fn compile_panics_on_invalid_prefix() {
        let _ = compile(&src("10.0.0.0/40"));
    }

    #[test]
    fn program_size_limit() {
        // 28-byte IPv6 conditions plus a 4-byte JMP between each: 32 bytes
        // per alternative, so 2047 of them fit (65520 bytes) and 2048 do not.
        let alts = |n: usize| or((0..n).map(|_| src("fd00::/8")).collect());
        let big = try_compile(&alts(2047)).unwrap();
        assert_eq!(big.len(), 2047 * 32 - 4);
        assert_eq!(audit(&big), Ok(()));
        assert!(matches!(try_compile(&alts(2048)), Err(CompileError::TooLarge { .. })));
        // The first op's `no` reaches the far end of a maximal program.
        let s = Sock::new("::1", 1, "::1", 1);
        assert!(!run(&big, &s.entry()));
        let f = Sock::new("fd00::1", 1, "::1", 1);
        assert!(run(&big, &f.entry()));
    }

    #[test]
    fn audit_mirror_rejects_malformed_programs() {
        let ok = compile(&sport(443, 443));
        assert_eq!(audit(&ok), Ok(()));
        // `no` landing on the port word of the first op.
        let mut bad = ok.clone();
        bad[2] = 4;
        assert!(audit(&bad).is_err());
        // A `yes` that skips an op takes it off the audited walk, so `no`
        // jumps to it are refused: here the JMP at offset 16 skips the D_GE
        // at offset 20 that both S_GE and S_LE jump to.
        let mut skip = compile(&or(vec![sport(80, 80), dport(443, 443)]));
        assert_eq!(audit(&skip), Ok(()));
        skip[17] = 8;
        assert!(audit(&skip).is_err());
        // ...while a skipped op that nothing jumps to is never even looked at.
        let mut unseen = compile(&not(sport(22, 22)));
        unseen[1] = 16;
        unseen[8] = 42;
        assert_eq!(audit(&unseen), Ok(()));
        // Jumping past end + 4.
        let mut far = ok.clone();
        far[2] = 24;
        assert!(audit(&far).is_err());
        // Unknown opcode.
        let mut unknown = ok;
        unknown[0] = 42;
        assert!(audit(&unknown).is_err());
        // Empty program.
        assert!(audit(&[]).is_err());
    }
}
