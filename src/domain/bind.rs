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
//! The reuse rules mirror `inet_csk_bind_conflict` (TCP) and
//! `udp_lib_lport_inuse` (UDP): SO_REUSEADDR lets a bind share the port only
//! when the existing socket set SO_REUSEADDR too (TIME_WAIT sockets inherit
//! the flag) and, for TCP, is not listening. sock_diag does not show that
//! flag, so such cases are reported as "only if theirs had it too".

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
    /// Succeeds only if every conflicting socket had SO_REUSEADDR set as well
    /// (invisible to sock_diag).
    OnlyIfTheirsToo,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fails => "fails",
            Outcome::OnlyIfTheirsToo => "only if theirs had it too",
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
    /// Inodes of the sockets that conflict (0 for TIME_WAIT).
    pub blocked_by: Vec<u64>,
    /// One line: why.
    pub reason: String,
}

/// Checks a bind of `addr:port` for `proto` against `sockets` (all sockets on
/// the port, any state, any protocol; other protocols never conflict).
pub fn check(proto: Proto, addr: IpAddr, port: u16, new_v6only: bool, sockets: &[Socket]) -> BindCheck {
    let me = BindAddr::new(addr, new_v6only);
    let blockers: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.proto == proto && s.port() == port && BindAddr::of(s).is_some_and(|b| overlaps(me, b)))
        .collect();
    let listening = blockers.iter().any(|s| s.state == State::Listen);
    let (plain, reuseaddr) = if blockers.is_empty() {
        (Outcome::Ok, Outcome::Ok)
    } else if proto == Proto::Tcp && listening {
        (Outcome::Fails, Outcome::Fails)
    } else {
        (Outcome::Fails, Outcome::OnlyIfTheirsToo)
    };
    let reason = reason(proto, &blockers);
    BindCheck {
        proto,
        addr,
        port,
        v6only: matches!(me, BindAddr::V6Any { .. }).then_some(new_v6only),
        plain,
        reuseaddr,
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
    let who = first.owners.first().map(|o| format!(", {} pid {}", o.name, o.pid)).unwrap_or_default();
    let more = if more > 0 { format!(" and {more} more socket{}", plural(more)) } else { String::new() };
    format!("{what} on {}{dual}{who}{more}", first.local)
}

/// Members of SO_REUSEPORT groups: several listening (TCP) or bound (UDP)
/// sockets on the same address and port can only exist with SO_REUSEPORT.
pub fn reuseport_groups(sockets: &[Socket]) -> Vec<Vec<&Socket>> {
    let mut groups: Vec<Vec<&Socket>> = Vec::new();
    for s in sockets.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)) {
        match groups.iter_mut().find(|g| g[0].proto == s.proto && g[0].local == s.local && g[0].inode != s.inode) {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    groups.retain(|g| g.len() > 1);
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
        let all = [a, b, other];
        let groups = reuseport_groups(&all);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].iter().map(|s| s.inode).collect::<Vec<_>>(), vec![10, 11]);
    }
}
