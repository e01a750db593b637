//! Linux bind() semantics: would a new socket bound to ADDR:PORT conflict
//! with the sockets already on that port? Pure logic over socket records.
//!
//! The address rules mirror the kernel's `inet_rcv_saddr_equal` (checked
//! against real bind() calls on Linux 6.18, see tests/who.rs):
//! - IPv4 (and IPv4-mapped IPv6) addresses overlap when equal or when either
//!   is 0.0.0.0;
//! - `[::]` overlaps every IPv6 address, and every IPv4 address too unless
//!   that `[::]` socket is IPV6_V6ONLY;
//! - other IPv6 addresses overlap only when equal.
//!
//! The reuse rules mirror `inet_bind_conflict` (TCP, with the `relax`
//! and `reuseport_ok` that bind() and listen() pass) and
//! `udp_lib_lport_inuse` (UDP), checked against real bind() calls with the
//! options set (tests/who.rs). For a new socket and an existing one whose
//! addresses overlap:
//! - TCP: no conflict when both set SO_REUSEADDR and the existing one is
//!   not listening (TIME_WAIT sockets keep the flag of the socket they
//!   were), or when both set SO_REUSEPORT and the existing one is in
//!   TIME_WAIT or belongs to the same user (`sk_uid`);
//! - UDP: no conflict when both set SO_REUSEADDR, or both SO_REUSEPORT and
//!   the same user;
//! - SO_BINDTODEVICE: sockets bound to two different devices never
//!   conflict, but a socket bound to no device conflicts with all of them:
//!   a new socket bound to none (what the verdicts are for) is blocked by
//!   device-bound ones as by any other.
//!
//! sock_diag does not report SO_REUSEADDR or SO_REUSEPORT; the BPF
//! iterators read them (`Socket::reuseaddr`, `reuseport`). Without them the
//! verdicts that depend on the existing socket's flags are "only if theirs
//! had it too".

use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::model::{Proto, Socket, State};
use crate::text::plural;

/// An address as the kernel compares it for bind conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindAddr {
    /// IPv4, or IPv4-mapped IPv6 (`0.0.0.0` is the wildcard).
    V4(std::net::Ipv4Addr),
    /// `[::]`, dual-stack unless v6only.
    V6Any { v6only: bool },
    /// A specific IPv6 address.
    V6(Ipv6Addr),
}

impl BindAddr {
    fn new(addr: IpAddr, v6only: bool) -> BindAddr {
        match crate::model::unmapped(addr) {
            IpAddr::V4(a) => BindAddr::V4(a),
            IpAddr::V6(a) if a.is_unspecified() => BindAddr::V6Any { v6only },
            IpAddr::V6(a) => BindAddr::V6(a),
        }
    }

    /// `None` for sockets without an IP address (they never conflict).
    fn of(s: &Socket) -> Option<BindAddr> {
        Some(BindAddr::new(s.local_ip()?.addr, s.v6only.unwrap_or(false)))
    }
}

/// Whether two bound addresses collide (the relation is symmetric).
fn overlaps(a: BindAddr, b: BindAddr) -> bool {
    use BindAddr::*;
    match (a, b) {
        (V4(x), V4(y)) => x == y || x.is_unspecified() || y.is_unspecified(),
        (V4(_), V6Any { v6only }) | (V6Any { v6only }, V4(_)) => !v6only,
        (V4(_), V6(_)) | (V6(_), V4(_)) => false,
        (V6Any { .. }, V6Any { .. }) | (V6Any { .. }, V6(_)) | (V6(_), V6Any { .. }) => true,
        (V6(x), V6(y)) => x == y,
    }
}

/// Whether a socket bound to `addr` (v6only as given, for `[::]`) would
/// collide with `s`'s local address. Same test as a bind conflict, which is
/// also "would `s` receive traffic for `addr`" for listeners.
pub fn addresses_overlap(addr: IpAddr, v6only: bool, s: &Socket) -> bool {
    BindAddr::of(s).is_some_and(|theirs| overlaps(BindAddr::new(addr, v6only), theirs))
}

/// What a bind() would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The bind succeeds.
    Ok,
    /// EADDRINUSE.
    Fails,
    /// Succeeds only if every conflicting socket had the same option set
    /// (their options are unknown: sock_diag does not report them).
    OnlyIfTheirsToo,
    /// Succeeds only for a process of one user (`BindCheck::reuseport_uid`):
    /// SO_REUSEPORT sharing needs the same uid.
    OnlyAsUid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fails => "fails",
            Outcome::OnlyIfTheirsToo => "only if theirs had it too",
            Outcome::OnlyAsUid => "only as the same user",
        }
    }
}

/// The verdict for one candidate address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindCheck {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    /// For `[::]`: whether the new socket would be v6only (the system default
    /// from net.ipv6.bindv6only).
    pub v6only: Option<bool>,
    /// bind() without socket options.
    pub plain: Outcome,
    /// bind() with SO_REUSEADDR.
    pub reuseaddr: Outcome,
    /// bind() with SO_REUSEPORT (schema 3).
    pub reuseport: Outcome,
    /// The user a SO_REUSEPORT bind must run as (`reuseport` is
    /// `only_as_uid`, or `only_if_theirs_too` with owners of one uid).
    pub reuseport_uid: Option<u32>,
    /// Inodes of the sockets that conflict (0 for TIME_WAIT).
    pub blocked_by: Vec<u64>,
    /// One line: why.
    pub reason: String,
}

/// The options of the new socket a verdict is for.
#[derive(Debug, Clone, Copy)]
struct New {
    reuseaddr: bool,
    reuseport: bool,
}

/// How one existing socket meets a new bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meet {
    /// No conflict, whoever binds.
    Shares,
    /// No conflict for this uid only.
    SharesAs(u32),
    /// EADDRINUSE.
    Conflicts,
    /// Depends on its options, which are unknown; if they allow it, for
    /// this uid only (SO_REUSEPORT) or anyone.
    Unknown(Option<u32>),
}

/// The kernel's rule for one overlapping socket `b` (same protocol, port
/// and address space).
fn meet(proto: Proto, b: &Socket, new: New) -> Meet {
    let listening = b.state == State::Listen;
    // SO_REUSEADDR: both set it, and (TCP) the existing one is not listening.
    let by_addr = match (new.reuseaddr, b.reuseaddr) {
        (false, _) => Some(false),
        (true, _) if proto == Proto::Tcp && listening => Some(false),
        (true, known) => known,
    };
    // SO_REUSEPORT: both set it, and the same user (TCP: or TIME_WAIT).
    let uid_free = proto == Proto::Tcp && b.state == State::TimeWait;
    let by_port = match (new.reuseport, b.reuseport) {
        (false, _) => Some(false),
        (true, known) => known,
    };
    match (by_addr, by_port) {
        (Some(true), _) => Meet::Shares,
        (_, Some(true)) if uid_free => Meet::Shares,
        (_, Some(true)) => Meet::SharesAs(b.uid),
        (Some(false), Some(false)) => Meet::Conflicts,
        // Something depends on an unknown flag.
        (None, _) => Meet::Unknown(None),
        (_, None) => Meet::Unknown((!uid_free).then_some(b.uid)),
    }
}

/// What a bind with `new`'s options gets against `blockers`, and the uid
/// it must have (SO_REUSEPORT).
fn outcome(proto: Proto, blockers: &[&Socket], new: New) -> (Outcome, Option<u32>) {
    let mut uids = Vec::new();
    let mut unknown = false;
    for b in blockers {
        match meet(proto, b, new) {
            Meet::Conflicts => return (Outcome::Fails, None),
            Meet::Shares => {}
            Meet::SharesAs(u) => uids.push(u),
            Meet::Unknown(u) => {
                unknown = true;
                uids.extend(u);
            }
        }
    }
    uids.sort_unstable();
    uids.dedup();
    match (unknown, uids.as_slice()) {
        // Two users cannot both be the binder.
        (_, [_, _, ..]) => (Outcome::Fails, None),
        (true, u) => (Outcome::OnlyIfTheirsToo, u.first().copied()),
        (false, [u]) => (Outcome::OnlyAsUid, Some(*u)),
        (false, []) => (Outcome::Ok, None),
    }
}

/// Checks a bind of `addr:port` for `proto` against `sockets` (all sockets on
/// the port, any state, any protocol; other protocols never conflict). The
/// new socket is bound to no device.
pub fn check(proto: Proto, addr: IpAddr, port: u16, new_v6only: bool, sockets: &[Socket]) -> BindCheck {
    let me = BindAddr::new(addr, new_v6only);
    let blockers = blockers(proto, addr, port, new_v6only, sockets);
    let (plain, _) = outcome(proto, &blockers, New { reuseaddr: false, reuseport: false });
    let (reuseaddr, _) = outcome(proto, &blockers, New { reuseaddr: true, reuseport: false });
    let (reuseport, reuseport_uid) = outcome(proto, &blockers, New { reuseaddr: false, reuseport: true });
    let reason = reason(proto, &blockers);
    BindCheck {
        proto,
        addr,
        port,
        v6only: matches!(me, BindAddr::V6Any { .. }).then_some(new_v6only),
        plain,
        reuseaddr,
        reuseport,
        reuseport_uid,
        blocked_by: blockers.iter().map(|s| s.inode).collect(),
        reason,
    }
}

fn reason(proto: Proto, blockers: &[&Socket]) -> String {
    let Some(first) = blockers.iter().find(|s| s.state == State::Listen).or(blockers.first()) else {
        return "nothing bound there conflicts".to_string();
    };
    let what = match first.state {
        State::Listen => "listener",
        State::TimeWait => "TIME_WAIT socket",
        State::Close if proto == Proto::Tcp => "bound, not listening socket",
        State::Unconn => "bound socket",
        _ => "connection",
    };
    let more = blockers.len() - 1;
    let dual = if first.is_dual_stack() { " (dual-stack: takes IPv4 too)" } else { "" };
    let device = match (first.bound_ifindex, &first.interface) {
        (Some(i), Some(name)) if i > 0 => format!(" (SO_BINDTODEVICE {name})"),
        (Some(i), None) if i > 0 => format!(" (SO_BINDTODEVICE #{i})"),
        _ => String::new(),
    };
    let opts = match (first.reuseaddr, first.reuseport) {
        (Some(a), Some(p)) => {
            let set: Vec<&str> =
                [(a, "SO_REUSEADDR"), (p, "SO_REUSEPORT")].iter().filter(|x| x.0).map(|x| x.1).collect();
            if set.is_empty() {
                " without SO_REUSEADDR or SO_REUSEPORT".to_string()
            } else {
                format!(" with {}", set.join(" and "))
            }
        }
        _ => String::new(),
    };
    let who = first.owners.first().map(|o| format!(", {} pid {}", o.name, o.pid)).unwrap_or_default();
    let more = if more > 0 { format!(" and {more} more socket{}", plural(more)) } else { String::new() };
    format!("{what} on {}{dual}{device}{opts}{who}{more}", first.local)
}

/// Whether every socket of `blockers` is bound to a device, and their
/// devices (names or `#index`): a new socket bound to another device would
/// not conflict with them.
pub fn devices_only(blockers: &[&Socket]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for b in blockers {
        match b.bound_ifindex {
            Some(i) if i > 0 => {
                let n = b.interface.as_deref().map_or_else(|| format!("#{i}"), str::to_string);
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            _ => return None,
        }
    }
    (!names.is_empty()).then_some(names)
}

/// The sockets of `sockets` a bind of `addr:port` for `proto` would meet:
/// same protocol and port, overlapping addresses.
pub fn blockers(proto: Proto, addr: IpAddr, port: u16, new_v6only: bool, sockets: &[Socket]) -> Vec<&Socket> {
    let me = BindAddr::new(addr, new_v6only);
    sockets
        .iter()
        .filter(|s| s.proto == proto && s.port() == port && BindAddr::of(s).is_some_and(|b| overlaps(me, b)))
        .collect()
}

/// A SO_REUSEPORT group: listening (TCP) or bound (UDP) sockets sharing
/// an address and port.
#[derive(Debug)]
pub struct ReuseportGroup<'a> {
    pub members: Vec<&'a Socket>,
    /// From the sockets' own flag (BPF), rather than inferred.
    pub known: bool,
}

/// SO_REUSEPORT groups. With the sockets' flags known, the kernel's own
/// grouping: sockets with SO_REUSEPORT set on the same protocol, address,
/// device and user — a group of one too, which a new socket could join.
/// Without them, inferred: several listening or bound sockets on one
/// address and port can only exist with SO_REUSEPORT.
pub fn reuseport_groups(sockets: &[Socket]) -> Vec<ReuseportGroup<'_>> {
    let mut groups: Vec<ReuseportGroup> = Vec::new();
    let same = |a: &Socket, b: &Socket| a.proto == b.proto && a.local == b.local && a.inode != b.inode;
    for s in sockets.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)) {
        let known = s.reuseport.is_some();
        if s.reuseport == Some(false) {
            continue;
        }
        let slot = groups.iter_mut().find(|g| {
            let first = g.members[0];
            g.known == known
                && same(first, s)
                && (!known
                    || (first.uid == s.uid && first.bound_ifindex == s.bound_ifindex && first.v6only == s.v6only))
        });
        match slot {
            Some(g) => g.members.push(s),
            None => groups.push(ReuseportGroup { members: vec![s], known }),
        }
    }
    groups.retain(|g| g.known || g.members.len() > 1);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    fn sock(proto: Proto, state: State, addr: &str, v6only: Option<bool>) -> Socket {
        let addr: IpAddr = addr.parse().unwrap();
        let mut s = Socket::sample(proto, state, &Endpoint { addr, port: 7000 }.to_string(), None, 1);
        s.v6only = v6only;
        s
    }

    /// The matrix observed with real bind() calls on Linux 6.18: existing
    /// listener x new bind, `true` = EADDRINUSE. (None = IPv4, Some = v6only.)
    #[test]
    fn address_overlap_matches_the_kernel() {
        let addrs: [(&str, Option<bool>); 8] = [
            ("0.0.0.0", None),
            ("127.0.0.1", None),
            ("10.9.9.9", None),
            ("::", Some(false)),
            ("::", Some(true)),
            ("::1", Some(false)),
            ("::1", Some(true)),
            ("::ffff:127.0.0.1", Some(false)),
        ];
        #[rustfmt::skip]
        let observed: [[bool; 8]; 8] = [
            // new:  0.0.0.0 127.0.0.1 10.9.9.9 [::]  [::]v6 ::1  ::1v6 mapped   existing:
            [true,  true,  true,  true,  false, false, false, true ], // 0.0.0.0
            [true,  true,  false, true,  false, false, false, true ], // 127.0.0.1
            [true,  false, true,  true,  false, false, false, false], // 10.9.9.9
            [true,  true,  true,  true,  true,  true,  true,  true ], // [::] dual
            [false, false, false, true,  true,  true,  true,  false], // [::] v6only
            [false, false, false, true,  true,  true,  true,  false], // ::1
            [false, false, false, true,  true,  true,  true,  false], // ::1 v6only
            [true,  true,  false, true,  false, false, false, true ], // ::ffff:127.0.0.1
        ];
        for (i, (ea, ev)) in addrs.iter().enumerate() {
            let existing = [sock(Proto::Tcp, State::Listen, ea, *ev)];
            for (j, (na, nv)) in addrs.iter().enumerate() {
                let c = check(Proto::Tcp, na.parse().unwrap(), 7000, nv.unwrap_or(false), &existing);
                assert_eq!(c.plain == Outcome::Fails, observed[i][j], "existing {ea}/{ev:?}, new {na}/{nv:?}");
            }
        }
    }

    #[test]
    fn reuse_rules() {
        let any = "0.0.0.0".parse().unwrap();
        // A listener: SO_REUSEADDR never helps.
        let c = check(Proto::Tcp, any, 7000, false, &[sock(Proto::Tcp, State::Listen, "0.0.0.0", None)]);
        assert_eq!((c.plain, c.reuseaddr), (Outcome::Fails, Outcome::Fails));
        assert!(c.reason.contains("listener on 0.0.0.0:7000"), "{}", c.reason);
        // Only TIME_WAIT: helps only if the old socket had it.
        let c = check(Proto::Tcp, any, 7000, false, &[sock(Proto::Tcp, State::TimeWait, "127.0.0.1", None)]);
        assert_eq!((c.plain, c.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo));
        assert!(c.reason.contains("TIME_WAIT"), "{}", c.reason);
        // An established connection using the port locally: same rule.
        let c = check(Proto::Tcp, any, 7000, false, &[sock(Proto::Tcp, State::Established, "127.0.0.1", None)]);
        assert_eq!((c.plain, c.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo));
        // UDP: no listener exception, and TCP sockets never block UDP.
        let c = check(Proto::Udp, any, 7000, false, &[sock(Proto::Udp, State::Unconn, "0.0.0.0", None)]);
        assert_eq!((c.plain, c.reuseaddr), (Outcome::Fails, Outcome::OnlyIfTheirsToo));
        let c = check(Proto::Udp, any, 7000, false, &[sock(Proto::Tcp, State::Listen, "0.0.0.0", None)]);
        assert_eq!((c.plain, c.reuseaddr), (Outcome::Ok, Outcome::Ok));
        // Nothing there.
        let c = check(Proto::Tcp, any, 7000, false, &[]);
        assert_eq!((c.plain, c.reuseaddr, c.blocked_by.len()), (Outcome::Ok, Outcome::Ok, 0));
    }

    #[test]
    fn reuseport_group_detection() {
        let mut a = sock(Proto::Tcp, State::Listen, "0.0.0.0", None);
        let mut b = a.clone();
        a.inode = 10;
        b.inode = 11;
        let mut other = sock(Proto::Tcp, State::Listen, "127.0.0.1", None);
        other.inode = 12;
        let all = [a.clone(), b.clone(), other.clone()];
        let groups = reuseport_groups(&all);
        assert_eq!(groups.len(), 1);
        assert!(!groups[0].known);
        assert_eq!(groups[0].members.iter().map(|s| s.inode).collect::<Vec<_>>(), vec![10, 11]);
        // With the flags: only sockets that set SO_REUSEPORT, by user, and a
        // group of one counts (a new member could join it).
        let (mut a, mut b, mut other) = (a, b, other);
        for (s, port, uid) in [(&mut a, true, 1000), (&mut b, true, 1001), (&mut other, false, 1000)] {
            s.reuseaddr = Some(false);
            s.reuseport = Some(port);
            s.uid = uid;
        }
        let all = [a, b, other];
        let groups = reuseport_groups(&all);
        let got: Vec<(bool, Vec<u64>)> =
            groups.iter().map(|g| (g.known, g.members.iter().map(|s| s.inode).collect())).collect();
        assert_eq!(got, [(true, vec![10]), (true, vec![11])]);
    }

    fn with(mut s: Socket, reuseaddr: bool, reuseport: bool, uid: u32) -> Socket {
        s.reuseaddr = Some(reuseaddr);
        s.reuseport = Some(reuseport);
        s.uid = uid;
        s
    }

    /// With the existing sockets' options known, every verdict is definite
    /// (the kernel's rules; tests/who.rs checks them against real binds).
    #[test]
    fn known_options_make_definite_verdicts() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let v = |proto, s: Socket| {
            let c = check(proto, any, 7000, false, &[s]);
            (c.plain, c.reuseaddr, c.reuseport, c.reuseport_uid)
        };
        use Outcome::*;
        let tcp = |state| sock(Proto::Tcp, state, "127.0.0.1", None);
        // TIME_WAIT keeps its socket's flags; SO_REUSEPORT passes it whoever binds.
        assert_eq!(v(Proto::Tcp, with(tcp(State::TimeWait), true, false, 0)), (Fails, Ok, Fails, None));
        assert_eq!(v(Proto::Tcp, with(tcp(State::TimeWait), false, false, 0)), (Fails, Fails, Fails, None));
        assert_eq!(v(Proto::Tcp, with(tcp(State::TimeWait), false, true, 0)), (Fails, Fails, Ok, None));
        // A listener: SO_REUSEADDR never; SO_REUSEPORT for its user only.
        assert_eq!(v(Proto::Tcp, with(tcp(State::Listen), true, true, 1000)), (Fails, Fails, OnlyAsUid, Some(1000)));
        assert_eq!(v(Proto::Tcp, with(tcp(State::Listen), true, false, 1000)), (Fails, Fails, Fails, None));
        // A connection with SO_REUSEADDR lets a SO_REUSEADDR bind through.
        assert_eq!(v(Proto::Tcp, with(tcp(State::Established), true, false, 0)), (Fails, Ok, Fails, None));
        // UDP: SO_REUSEADDR on both sides shares, bound or not.
        let udp = with(sock(Proto::Udp, State::Unconn, "0.0.0.0", None), true, true, 7);
        assert_eq!(v(Proto::Udp, udp), (Fails, Ok, OnlyAsUid, Some(7)));
        // Two users in one group: nobody can be both.
        let a = with(tcp(State::Listen), false, true, 1);
        let mut b = with(tcp(State::Listen), false, true, 2);
        b.inode = 2;
        let c = check(Proto::Tcp, any, 7000, false, &[a.clone(), b]);
        assert_eq!((c.reuseport, c.reuseport_uid), (Fails, None));
        // Unknown options: conditional, with the uid SO_REUSEPORT would need.
        let mut unknown = a;
        unknown.reuseaddr = None;
        unknown.reuseport = None;
        assert_eq!(v(Proto::Tcp, unknown), (Fails, Fails, OnlyIfTheirsToo, Some(1)));
    }
}
