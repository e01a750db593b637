//! Compiler from a small filter expression to Linux `inet_diag` bytecode.
//!
//! The output goes into an `INET_DIAG_REQ_BYTECODE` (1) rtattr placed after
//! the `inet_diag_req_v2` of a `SOCK_DIAG_BY_FAMILY` dump request (or after
//! the `inet_diag_req` of a `TCPDIAG_GETSOCK` one, TCP of both families in
//! one walk, which the kernel filters alike). The kernel
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
//! | op | code | argument | kernel |
//! |---|---|---|---|
//! | `JMP` | 1 | – | every |
//! | `S_GE`, `S_LE`, `D_GE`, `D_LE` | 2–5 | a second 4-byte op whose `no` is the port | every |
//! | `AUTO` | 6 | – (port not bound explicitly: `SOCK_BINDPORT_LOCK` clear) | every |
//! | `S_COND`, `D_COND` | 7, 8 | `inet_diag_hostcond` + address | every |
//! | `DEV_COND` | 9 | `u32` ifindex (`sk_bound_dev_if`) | Linux 4.8 |
//! | `MARK_COND` | 10 | `inet_diag_markcond { u32 mark, mask }` | Linux 4.9; the audit answers `EPERM` without `CAP_NET_ADMIN` |
//! | `CGROUP_COND` | 13 | `u64` cgroup v2 id, unaligned | Linux 5.9, `CONFIG_SOCK_CGROUP_DATA` (else `EINVAL`) |
//!
//! All arguments are in host byte order except addresses (network order).
//! `S_EQ`/`D_EQ` (11, 12) are not used (see the note on equality below).
//! An opcode the kernel does not know makes its audit refuse the whole
//! request with `EINVAL`; the dump then retries without the newer
//! conditions ([`Expr::relax`]) and evaluates the expression in user space
//! on the records ([`Expr::eval`]), or says what could not be tested.
//!
//! Which socket fields the kernel tests (`inet_diag_bc_sk`): `sport` is
//! `inet_num`, `dport` the peer port (0 when unconnected), the addresses
//! `rcv_saddr`/`daddr`, `ifindex` the bound device, `mark` `sk_mark`
//! (TIME_WAIT: `tw_mark`), `cgroup` the socket's cgroup for full sockets
//! (0 for TIME_WAIT and request sockets), and `AUTO` reads `sk_userlocks`,
//! 0 for TIME_WAIT and request sockets, which are therefore "autobound".

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
const BC_AUTO: u8 = 6;
const BC_S_COND: u8 = 7;
const BC_D_COND: u8 = 8;
const BC_DEV_COND: u8 = 9;
const BC_MARK_COND: u8 = 10;
const BC_CGROUP_COND: u8 = 13;

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
///
/// The other conditions test what `ss` calls `dev`, `fwmark`, `cgroup` and
/// `autobound` (see the opcode table in the module documentation for the
/// kernels that know them).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Bound to this device (SO_BINDTODEVICE); index 0 means "bound to no
    /// device". A name is looked up in the namespace dumped
    /// ([`Expr::resolve_devices`]) before compiling.
    Dev(DevRef),
    /// `(mark & mask) == mark` for the socket's mark (SO_MARK). As in the
    /// kernel, a `mark` with bits outside `mask` matches nothing.
    Mark {
        /// The value the masked mark must equal.
        mark: u32,
        /// Which bits of the socket's mark to compare.
        mask: u32,
    },
    /// Created in this cgroup (v2 id: the cgroup directory's inode number).
    Cgroup(u64),
    /// The port was not bound explicitly (`SOCK_BINDPORT_LOCK` clear):
    /// the kernel's `AUTO` test alone, which also holds for connections a
    /// listener accepted (they do not inherit the lock) and TIME_WAIT.
    /// ss's `autobound`, and portctl's, add "and the port is in
    /// `ip_local_port_range`" ([`Expr::expand_autobound`]).
    AutoBound,
}

/// A network device, by interface index or by name (interface indexes
/// belong to a network namespace: a name is looked up in each one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DevRef {
    /// An interface index.
    Index(u32),
    /// An interface name, not looked up yet.
    Name(std::sync::Arc<str>),
}

/// What the kernel's interpreter sees of one socket (`struct
/// inet_diag_entry`), as user space knows it: the ends always; the rest
/// when the source reports it (`None`: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Local address and port.
    pub local: (IpAddr, u16),
    /// Remote address and port; the unspecified address of the socket's
    /// family and port 0 when it is not connected.
    pub remote: (IpAddr, u16),
    /// Bound device (0: none); `None` when unknown (`/proc/net`).
    pub ifindex: Option<u32>,
    /// Socket mark (reported to CAP_NET_ADMIN only).
    pub mark: Option<u32>,
    /// cgroup v2 id of the socket (Linux 5.9+).
    pub cgroup: Option<u64>,
    /// Port chosen by the kernel: never reported, only the kernel's
    /// filter can test it.
    pub autobound: Option<bool>,
}

impl Entry {
    /// The two ends, nothing else known.
    pub fn ends(local: (IpAddr, u16), remote: (IpAddr, u16)) -> Entry {
        Entry { local, remote, ifindex: None, mark: None, cgroup: None, autobound: None }
    }
}

/// A socket fact beyond its two ends that an expression needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// `dev`: the bound device.
    Device,
    /// `fwmark`: the socket mark.
    Mark,
    /// `cgroup`: the socket's cgroup.
    Cgroup,
    /// `autobound`: whether the port was bound explicitly.
    AutoBound,
}

impl Fact {
    /// The expression keyword that needs it.
    pub fn keyword(self) -> &'static str {
        match self {
            Fact::Device => "dev",
            Fact::Mark => "fwmark",
            Fact::Cgroup => "cgroup",
            Fact::AutoBound => "autobound",
        }
    }
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
    /// The expression's meaning, evaluated in user space on one socket
    /// ([`Entry`]). The compiled program makes the kernel decide the same
    /// (the tests hold the two together), so sockets read from /proc/net,
    /// or dumped without a program, are filtered alike.
    ///
    /// # Errors
    ///
    /// The first [`Fact`] the expression needs and the entry does not have
    /// (see [`Expr::needs`] to check before evaluating anything).
    pub fn eval(&self, e: &Entry) -> Result<bool, Fact> {
        Ok(match self {
            Expr::Cond(c) => c.eval(e)?,
            Expr::And(v) => {
                for x in v {
                    if !x.eval(e)? {
                        return Ok(false);
                    }
                }
                true
            }
            Expr::Or(v) => {
                for x in v {
                    if x.eval(e)? {
                        return Ok(true);
                    }
                }
                false
            }
            Expr::Not(x) => !x.eval(e)?,
        })
    }

    /// [`Expr::eval`] on the two ends alone, for expressions that test
    /// nothing else (a condition on another fact is false).
    pub fn matches(&self, local: (IpAddr, u16), remote: (IpAddr, u16)) -> bool {
        self.eval(&Entry::ends(local, remote)).unwrap_or(false)
    }

    /// The facts beyond the two ends that evaluating it needs, sorted.
    pub fn needs(&self) -> Vec<Fact> {
        let mut out = Vec::new();
        self.visit(&mut |c| {
            let f = match c {
                Cond::Dev(_) => Fact::Device,
                Cond::Mark { .. } => Fact::Mark,
                Cond::Cgroup(_) => Fact::Cgroup,
                Cond::AutoBound => Fact::AutoBound,
                _ => return,
            };
            if !out.contains(&f) {
                out.push(f);
            }
        });
        out.sort();
        out
    }

    /// The expression with every device name replaced by its index, as
    /// `lookup` (run in the namespace to dump) gives it.
    ///
    /// # Errors
    ///
    /// The first name `lookup` does not know.
    pub fn resolve_devices(&self, lookup: &impl Fn(&str) -> Option<u32>) -> Result<Expr, String> {
        Ok(match self {
            Expr::Cond(Cond::Dev(DevRef::Name(n))) => {
                Expr::Cond(Cond::Dev(DevRef::Index(lookup(n).ok_or_else(|| n.to_string())?)))
            }
            Expr::Cond(c) => Expr::Cond(c.clone()),
            Expr::And(v) => Expr::And(v.iter().map(|x| x.resolve_devices(lookup)).collect::<Result<_, _>>()?),
            Expr::Or(v) => Expr::Or(v.iter().map(|x| x.resolve_devices(lookup)).collect::<Result<_, _>>()?),
            Expr::Not(x) => Expr::Not(Box::new(x.resolve_devices(lookup)?)),
        })
    }

    /// The expression with each [`Cond::AutoBound`] also requiring the
    /// local port to be in `lo..=hi` (the namespace's ephemeral range), as
    /// `ss` tests `autobound`: its kernel program asks `AUTO` and its
    /// user-space check asks the range, and it shows what passes both.
    pub fn expand_autobound(&self, lo: u16, hi: u16) -> Expr {
        match self {
            Expr::Cond(Cond::AutoBound) => {
                Expr::And(vec![Expr::Cond(Cond::AutoBound), Expr::Cond(Cond::SPort { lo, hi })])
            }
            Expr::Cond(c) => Expr::Cond(c.clone()),
            Expr::And(v) => Expr::And(v.iter().map(|x| x.expand_autobound(lo, hi)).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(|x| x.expand_autobound(lo, hi)).collect()),
            Expr::Not(x) => Expr::Not(Box::new(x.expand_autobound(lo, hi))),
        }
    }

    /// Whether it names a device that [`Expr::resolve_devices`] must look up.
    pub fn has_device_names(&self) -> bool {
        let mut named = false;
        self.visit(&mut |c| named |= matches!(c, Cond::Dev(DevRef::Name(_))));
        named
    }

    /// Calls `f` on every condition.
    pub fn visit(&self, f: &mut impl FnMut(&Cond)) {
        match self {
            Expr::Cond(c) => f(c),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| x.visit(f)),
            Expr::Not(x) => x.visit(f),
        }
    }

    /// An expression without the conditions `drop` names that accepts at
    /// least every socket this one accepts: each dropped condition becomes
    /// "true" where it counts for a match and "false" under an odd number
    /// of `Not`s. The kernel can run the result as a pre-filter, and
    /// [`Expr::eval`] of the original on what it returns gives the exact
    /// answer. Constant parts are folded away.
    pub fn relax(&self, drop: &(impl Fn(&Cond) -> bool + ?Sized)) -> Expr {
        self.relax_in(drop, true).fold()
    }

    fn relax_in(&self, drop: &(impl Fn(&Cond) -> bool + ?Sized), positive: bool) -> Expr {
        match self {
            Expr::Cond(c) if drop(c) => {
                if positive {
                    Expr::And(Vec::new())
                } else {
                    Expr::Or(Vec::new())
                }
            }
            Expr::Cond(c) => Expr::Cond(c.clone()),
            Expr::And(v) => Expr::And(v.iter().map(|x| x.relax_in(drop, positive)).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(|x| x.relax_in(drop, positive)).collect()),
            Expr::Not(x) => Expr::Not(Box::new(x.relax_in(drop, !positive))),
        }
    }

    /// Always true (`Some(true)`), always false, or neither, syntactically.
    fn constant(&self) -> Option<bool> {
        match self {
            Expr::And(v) if v.is_empty() => Some(true),
            Expr::Or(v) if v.is_empty() => Some(false),
            _ => None,
        }
    }

    /// Folds constants: `And` with a false item is false, true items
    /// vanish; `Or` alike; `Not` of a constant is the other; single-item
    /// `And`/`Or` is the item. The meaning is unchanged.
    pub fn fold(self) -> Expr {
        match self {
            Expr::Cond(_) => self,
            Expr::Not(x) => match x.fold() {
                e if e.constant() == Some(true) => Expr::Or(Vec::new()),
                e if e.constant() == Some(false) => Expr::And(Vec::new()),
                e => Expr::Not(Box::new(e)),
            },
            Expr::And(v) => {
                let mut items = Vec::with_capacity(v.len());
                for x in v {
                    match x.fold() {
                        e if e.constant() == Some(true) => {}
                        e if e.constant() == Some(false) => return Expr::Or(Vec::new()),
                        Expr::And(inner) => items.extend(inner),
                        e => items.push(e),
                    }
                }
                if items.len() == 1 { items.pop().unwrap_or(Expr::And(Vec::new())) } else { Expr::And(items) }
            }
            Expr::Or(v) => {
                let mut items = Vec::with_capacity(v.len());
                for x in v {
                    match x.fold() {
                        e if e.constant() == Some(false) => {}
                        e if e.constant() == Some(true) => return Expr::And(Vec::new()),
                        Expr::Or(inner) => items.extend(inner),
                        e => items.push(e),
                    }
                }
                if items.len() == 1 { items.pop().unwrap_or(Expr::Or(Vec::new())) } else { Expr::Or(items) }
            }
        }
    }
}

impl Expr {
    /// The same test with the two ends swapped (source for destination):
    /// what the other end of each matching connection matches. `conns`
    /// dumps it to find the peers of what a one-sided filter selected.
    pub fn mirrored(&self) -> Expr {
        // A condition on the socket itself (its device, mark, cgroup) says
        // nothing of the other end's: relaxed away (true where it counts).
        self.relax(&|c: &Cond| !c.is_on_ends()).swap_ends()
    }

    fn swap_ends(&self) -> Expr {
        match self {
            Expr::Cond(c) => Expr::Cond(c.mirrored()),
            Expr::And(v) => Expr::And(v.iter().map(Expr::swap_ends).collect()),
            Expr::Or(v) => Expr::Or(v.iter().map(Expr::swap_ends).collect()),
            Expr::Not(e) => Expr::Not(Box::new(e.swap_ends())),
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
            Expr::Cond(c) => Expr::Cond(c.clone()),
            Expr::And(v) => Expr::And(sorted(v)),
            Expr::Or(v) => Expr::Or(sorted(v)),
            Expr::Not(e) => Expr::Not(Box::new(e.canonical())),
        }
    }
}

impl Cond {
    /// Local for remote and remote for local; a condition on the socket
    /// itself (device, mark, cgroup, autobound) is left as it is.
    pub fn mirrored(&self) -> Cond {
        match *self {
            Cond::SPort { lo, hi } => Cond::DPort { lo, hi },
            Cond::DPort { lo, hi } => Cond::SPort { lo, hi },
            Cond::Src { addr, prefix } => Cond::Dst { addr, prefix },
            Cond::Dst { addr, prefix } => Cond::Src { addr, prefix },
            ref other => other.clone(),
        }
    }

    /// Whether it tests one of the two ends (ports and addresses) only.
    pub fn is_on_ends(&self) -> bool {
        matches!(self, Cond::SPort { .. } | Cond::DPort { .. } | Cond::Src { .. } | Cond::Dst { .. })
    }

    /// See [`Expr::eval`].
    ///
    /// # Errors
    ///
    /// The fact the condition tests when the entry does not have it.
    pub fn eval(&self, e: &Entry) -> Result<bool, Fact> {
        let (local, remote) = (e.local, e.remote);
        Ok(match *self {
            Cond::SPort { lo, hi } => (lo..=hi).contains(&local.1),
            Cond::DPort { lo, hi } => (lo..=hi).contains(&remote.1),
            Cond::Src { addr, prefix } => prefix_contains(addr, prefix, local.0),
            Cond::Dst { addr, prefix } => prefix_contains(addr, prefix, remote.0),
            // An unresolved name is bound by no socket.
            Cond::Dev(ref d) => match d {
                DevRef::Index(i) => e.ifindex.ok_or(Fact::Device)? == *i,
                DevRef::Name(_) => false,
            },
            Cond::Mark { mark, mask } => e.mark.ok_or(Fact::Mark)? & mask == mark,
            Cond::Cgroup(id) => e.cgroup.ok_or(Fact::Cgroup)? == id,
            Cond::AutoBound => e.autobound.ok_or(Fact::AutoBound)?,
        })
    }

    /// [`Cond::eval`] on the two ends alone (a condition on another fact
    /// is false).
    pub fn matches(&self, local: (IpAddr, u16), remote: (IpAddr, u16)) -> bool {
        self.eval(&Entry::ends(local, remote)).unwrap_or(false)
    }

    /// Conditions older kernels refuse (`EINVAL` from the audit, or
    /// `EPERM` for a mark without CAP_NET_ADMIN): everything but ports,
    /// addresses and `AUTO`.
    pub fn is_newer_opcode(&self) -> bool {
        matches!(self, Cond::Dev(_) | Cond::Mark { .. } | Cond::Cgroup(_))
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
    /// A device given by name that was not looked up
    /// ([`Expr::resolve_devices`]).
    UnresolvedDevice(String),
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
            CompileError::UnresolvedDevice(name) => write!(f, "device '{name}' was not looked up"),
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
            Cond::Dev(DevRef::Index(ifindex)) => tests.push((BC_DEV_COND, ifindex.to_ne_bytes().to_vec())),
            Cond::Dev(DevRef::Name(ref name)) => return Err(CompileError::UnresolvedDevice(name.to_string())),
            Cond::Mark { mark, mask } => {
                let mut arg = mark.to_ne_bytes().to_vec();
                arg.extend_from_slice(&mask.to_ne_bytes());
                tests.push((BC_MARK_COND, arg));
            }
            // The kernel reads it with get_unaligned: 8 bytes right after the op.
            Cond::Cgroup(id) => tests.push((BC_CGROUP_COND, id.to_ne_bytes().to_vec())),
            Cond::AutoBound => tests.push((BC_AUTO, Vec::new())),
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
            // Op sizes are 4, 8, 12, 16 or 28 bytes and `push` kept the program
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
    const CGROUP_COND: u8 = 13;
    /// `SOCK_BINDPORT_LOCK` in `sk_userlocks`.
    const BINDPORT_LOCK: u16 = 4;

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
                CGROUP_COND => min_len += 8,
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
    struct KEntry {
        family: u8,
        saddr: Vec<u8>,
        daddr: Vec<u8>,
        sport: u16,
        dport: u16,
        ifindex: u32,
        userlocks: u16,
        mark: u32,
        cgroup_id: u64,
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
    fn run(bc: &[u8], e: &KEntry) -> bool {
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
                AUTO => e.userlocks & BINDPORT_LOCK == 0,
                DEV_COND => u32::from_ne_bytes(bc[off + 4..off + 8].try_into().unwrap()) == e.ifindex,
                MARK_COND => {
                    let mark = u32::from_ne_bytes(bc[off + 4..off + 8].try_into().unwrap());
                    let mask = u32::from_ne_bytes(bc[off + 8..off + 12].try_into().unwrap());
                    e.mark & mask == mark
                }
                CGROUP_COND => u64::from_ne_bytes(bc[off + 4..off + 12].try_into().unwrap()) == e.cgroup_id,
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
        ifindex: u32,
        mark: u32,
        cgroup: u64,
        autobound: bool,
    }

    impl Sock {
        fn new(local: &str, sport: u16, remote: &str, dport: u16) -> Sock {
            let s = Sock {
                local: local.parse().unwrap(),
                sport,
                remote: remote.parse().unwrap(),
                dport,
                ifindex: 0,
                mark: 0,
                cgroup: 0,
                autobound: false,
            };
            assert_eq!(s.local.is_ipv4(), s.remote.is_ipv4());
            s
        }

        fn entry(&self) -> KEntry {
            let bytes = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            KEntry {
                family: if self.local.is_ipv4() { 2 } else { 10 },
                saddr: bytes(self.local),
                daddr: bytes(self.remote),
                sport: self.sport,
                dport: self.dport,
                ifindex: self.ifindex,
                userlocks: if self.autobound { 0 } else { BINDPORT_LOCK | 1 },
                mark: self.mark,
                cgroup_id: self.cgroup,
            }
        }

        /// Everything user space may know of it.
        fn facts(&self) -> Entry {
            Entry {
                local: (self.local, self.sport),
                remote: (self.remote, self.dport),
                ifindex: Some(self.ifindex),
                mark: Some(self.mark),
                cgroup: Some(self.cgroup),
                autobound: Some(self.autobound),
            }
        }
    }

    /// The product's user-space evaluation, which the compiled program must
    /// agree with.
    fn eval(e: &Expr, s: &Sock) -> bool {
        e.eval(&s.facts()).expect("every fact is known")
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

    const IFINDEXES: [u32; 4] = [0, 1, 2, 0x7fff_ffff];
    const MARKS: [u32; 5] = [0, 1, 3, 0x10, 0xffff_ffff];
    const CGROUPS: [u64; 4] = [0, 1, 0x1234_5678_9abc, u64::MAX];

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
                        let mut s = Sock::new(l, sp, r, dp);
                        s.ifindex = IFINDEXES[k % IFINDEXES.len()];
                        s.mark = MARKS[(k * 3) % MARKS.len()];
                        s.cgroup = CGROUPS[(k * 5) % CGROUPS.len()];
                        s.autobound = k.is_multiple_of(3);
                        out.push(s);
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
        match rng.below(8) {
            0 => sport(port(rng), port(rng)),
            1 => dport(port(rng), port(rng)),
            2 => src(NETS[rng.below(NETS.len())]),
            3 => dst(NETS[rng.below(NETS.len())]),
            4 => Expr::Cond(Cond::Dev(DevRef::Index(IFINDEXES[rng.below(IFINDEXES.len())]))),
            5 => {
                let mask = MARKS[rng.below(MARKS.len())];
                Expr::Cond(Cond::Mark { mark: MARKS[rng.below(MARKS.len())] & mask, mask })
            }
            6 => Expr::Cond(Cond::Cgroup(CGROUPS[rng.below(CGROUPS.len())])),
            _ => Expr::Cond(Cond::AutoBound),
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

    /// The conditions beyond ports and addresses, byte by byte as the
    /// kernel reads them (and as ss 6.1 sends `fwmark`, `cgroup` and
    /// `autobound`).
    #[cfg(target_endian = "little")]
    #[test]
    fn emitted_bytes_of_the_other_conditions() {
        #[rustfmt::skip]
        let table: Vec<(&str, Expr, Vec<u8>)> = vec![
            (
                "autobound",
                Expr::Cond(Cond::AutoBound),
                vec![0x06, 0x04, 0x08, 0x00], // AUTO, yes 4 -> accept, no 8 -> reject
            ),
            (
                "dev 2",
                Expr::Cond(Cond::Dev(DevRef::Index(2))),
                vec![
                    0x09, 0x08, 0x0c, 0x00, // DEV_COND, yes 8 -> accept, no 12 -> reject
                    0x02, 0x00, 0x00, 0x00, //   ifindex 2
                ],
            ),
            (
                "fwmark = 0x1/0x3",
                Expr::Cond(Cond::Mark { mark: 1, mask: 3 }),
                vec![
                    0x0a, 0x0c, 0x10, 0x00, // MARK_COND, yes 12 -> accept, no 16 -> reject
                    0x01, 0x00, 0x00, 0x00, //   mark 1
                    0x03, 0x00, 0x00, 0x00, //   mask 3
                ],
            ),
            (
                "cgroup id 0x1122334455667788",
                Expr::Cond(Cond::Cgroup(0x1122_3344_5566_7788)),
                vec![
                    0x0d, 0x0c, 0x10, 0x00, // CGROUP_COND, yes 12 -> accept, no 16 -> reject
                    0x88, 0x77, 0x66, 0x55, //   id, low word first
                    0x44, 0x33, 0x22, 0x11,
                ],
            ),
            (
                "not dev 1 and not autobound",
                and(vec![not(Expr::Cond(Cond::Dev(DevRef::Index(1)))), not(Expr::Cond(Cond::AutoBound))]),
                vec![
                    0x09, 0x08, 0x0c, 0x00, // DEV_COND 1, no 12 -> offset 12 (next test)
                    0x01, 0x00, 0x00, 0x00,
                    0x01, 0x04, 0x10, 0x00, // JMP, no 16 -> offset 24 = end + 4: reject
                    0x06, 0x04, 0x08, 0x00, // AUTO, no 8 -> offset 20 = end: accept
                    0x01, 0x04, 0x08, 0x00, // JMP, no 8 -> end + 4: reject
                ],
            ),
        ];
        for (name, expr, want) in &table {
            let got = compile(expr);
            assert_eq!(&got, want, "{name}");
            assert_eq!(audit(&got), Ok(()), "{name}");
        }
    }

    /// A relaxed expression is a superset of the original (what the kernel
    /// returns with it, filtered by `eval` of the original, is exact), and
    /// tests none of what was dropped.
    #[test]
    fn relaxed_expressions_accept_a_superset() {
        let socks = sample_socks();
        let mut rng = Rng(0x00c0_ffee_0000_0018);
        let drops: [&dyn Fn(&Cond) -> bool; 3] =
            [&|c| c.is_newer_opcode(), &|c| matches!(c, Cond::AutoBound), &|_| true];
        for _ in 0..2000 {
            let e = random_expr(&mut rng, 5);
            for drop in drops {
                let r = e.relax(drop);
                let mut leftover = false;
                r.visit(&mut |c| leftover |= drop(c));
                assert!(!leftover, "{e:?} relaxed to {r:?}");
                check_truth(&r, &socks);
                for s in &socks {
                    assert!(!eval(&e, s) || eval(&r, s), "{e:?} accepts {s:?} but {r:?} does not");
                }
            }
            // Folding never changes the meaning.
            let f = e.clone().fold();
            for s in &socks {
                assert_eq!(eval(&e, s), eval(&f, s), "{e:?} folded to {f:?}");
            }
        }
        // Dropping everything from a negation-free expression leaves "true".
        let e = and(vec![src("10.0.0.0/8"), or(vec![Expr::Cond(Cond::Dev(DevRef::Index(3))), sport(1, 2)])]);
        assert_eq!(e.relax(&|_| true), and(vec![]));
        assert_eq!(not(Expr::Cond(Cond::Dev(DevRef::Index(3)))).relax(&|c| c.is_newer_opcode()), and(vec![]));
    }

    #[test]
    fn missing_facts_are_named() {
        let s = Sock::new("10.1.2.3", 80, "10.0.0.1", 5000);
        let ends = Entry::ends((s.local, s.sport), (s.remote, s.dport));
        let e = and(vec![sport(80, 80), Expr::Cond(Cond::Mark { mark: 1, mask: 1 })]);
        assert_eq!(e.eval(&ends), Err(Fact::Mark));
        assert_eq!(e.needs(), vec![Fact::Mark]);
        // Short-circuit: a false port test decides before the mark is read.
        let e = and(vec![sport(81, 81), Expr::Cond(Cond::Mark { mark: 1, mask: 1 })]);
        assert_eq!(e.eval(&ends), Ok(false));
        let all = or(vec![
            Expr::Cond(Cond::AutoBound),
            Expr::Cond(Cond::Cgroup(1)),
            not(Expr::Cond(Cond::Dev(DevRef::Index(1)))),
            Expr::Cond(Cond::Mark { mark: 0, mask: 0 }),
        ]);
        assert_eq!(all.needs(), vec![Fact::Device, Fact::Mark, Fact::Cgroup, Fact::AutoBound]);
        assert!(sport(1, 9).needs().is_empty());
        assert_eq!(Fact::Device.keyword(), "dev");
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
