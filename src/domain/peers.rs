//! The other end of every local connection: which socket in a dump is the
//! peer of which, and who holds it.
//!
//! - Unix sockets name their peer: the kernel reports the peer's inode
//!   (`UNIX_DIAG_PEER`). The peer's record, when the dump has it, gives its
//!   name (the `remote` end) and its owners; when it does not (filtered
//!   out, or in a namespace not dumped), the owners come from the owner
//!   source by inode, which is host-wide.
//! - TCP and UDP connections whose other end is on this host have a peer
//!   with the reversed 4-tuple: in the same network namespace (4-tuples
//!   are unique there), or, when the dump spans namespaces, in another one
//!   if exactly one socket there has it and the addresses are not loopback
//!   (loopback never leaves a namespace, and two namespaces may well each
//!   have the same loopback tuple).
//!
//! Sockets without a file (TIME_WAIT, inode 0) take no part: no process is
//! at that end.

use std::net::IpAddr;
use std::sync::Arc;

use crate::intmap::IntMap;
use crate::model::{Endpoint, Owner, Peer, Proto, Socket, is_loopback, unmapped_endpoint};

/// Owners of a socket inode that is not in the dump: the owners and whether
/// they were hidden (some processes could not be read).
pub type OwnersOf<'a> = &'a mut dyn FnMut(&[u64]) -> Vec<(Arc<[Owner]>, bool)>;

/// Fills `peer` (and, for unix sockets, the peer's name in `remote`) for
/// every connected socket whose other end is a socket on this host.
/// `candidates` are extra sockets that may be peers but are not shown
/// (sockets the command's filter left out; none of them also in
/// `sockets`); `owners_of` looks up the owners of unix peers found in
/// neither.
pub fn link(sockets: &mut [Socket], candidates: &[Socket], owners_of: OwnersOf<'_>) {
    let pairs = ip_pairs(sockets, candidates);
    link_paired(sockets, candidates, pairs, owners_of);
}

/// [`link`] with the TCP and UDP pairs found beforehand ([`ip_pairs`] of
/// the same lists): the peers' owners are those the records have now.
pub fn link_paired(sockets: &mut [Socket], candidates: &[Socket], pairs: IpPairs, owners_of: OwnersOf<'_>) {
    link_unix(sockets, candidates, owners_of);
    let pairs = pairs.0;
    let shown: &[Socket] = sockets;
    let build = |part: &[(u32, u32)]| -> Vec<Box<Peer>> {
        let netns = |s: &Socket| s.netns_inode().unwrap_or(0);
        part.iter()
            .map(|&(i, j)| {
                let p = get(shown, candidates, j as usize);
                Box::new(Peer {
                    inode: p.inode,
                    owners: p.owners.clone(),
                    owners_hidden: p.owners_hidden,
                    netns: (netns(p) != netns(&shown[i as usize])).then(|| p.netns.clone()).flatten(),
                })
            })
            .collect()
    };
    // The records are built from the peers' (read at random: most of the
    // time is cache misses) on two cores when there are many, then set.
    let peers = if pairs.len() >= PARALLEL_PAIRS {
        let (a, b) = pairs.split_at(pairs.len() / 2);
        let (mut first, second) = std::thread::scope(|s| {
            let second = s.spawn(|| build(b));
            (build(a), second.join())
        });
        first.extend(second.unwrap_or_else(|_| build(b)));
        first
    } else {
        build(&pairs)
    };
    for (&(i, _), peer) in pairs.iter().zip(peers) {
        sockets[i as usize].peer = Some(peer);
    }
}

/// From how many pairs [`link_paired`] builds the peer records on two
/// threads.
const PARALLEL_PAIRS: usize = 16 * 1024;

/// The TCP and UDP connections of `sockets` whose other end is a socket
/// here too: (socket, peer) indices, the peer's counting on into
/// `candidates`, in the sockets' order.
#[derive(Debug, Default)]
pub struct IpPairs(Vec<(u32, u32)>);

/// Which record an index names: one of `sockets` or of `candidates`.
fn get<'a>(sockets: &'a [Socket], candidates: &'a [Socket], i: usize) -> &'a Socket {
    if i < sockets.len() { &sockets[i] } else { &candidates[i - sockets.len()] }
}

fn link_unix(sockets: &mut [Socket], candidates: &[Socket], owners_of: OwnersOf<'_>) {
    if !sockets.iter().any(|s| s.proto == Proto::Unix) {
        return;
    }
    let mut by_inode: IntMap<u64, usize> = IntMap::default();
    // A client waiting in a listener's accept queue has no peer socket yet
    // (the kernel's embryo has no inode): its other end is the listener.
    let mut waiting: IntMap<u64, usize> = IntMap::default();
    for (i, s) in sockets.iter().chain(candidates).enumerate() {
        if s.proto == Proto::Unix && s.inode != 0 {
            by_inode.insert(s.inode, i);
            for &client in s.unix().map_or(&[][..], |u| &u.pending) {
                waiting.insert(client, i);
            }
        }
    }
    for i in 0..sockets.len() {
        let s = &sockets[i];
        if s.proto != Proto::Unix || s.peer.is_some() {
            continue;
        }
        let Some(&j) = waiting.get(&s.inode) else { continue };
        let l = get(sockets, candidates, j);
        let peer = Peer {
            inode: l.inode,
            owners: l.owners.clone(),
            owners_hidden: l.owners_hidden,
            netns: (l.netns_inode() != s.netns_inode()).then(|| l.netns.clone()).flatten(),
        };
        let remote = l.local.clone();
        sockets[i].peer = Some(Box::new(peer));
        sockets[i].remote = Some(remote);
    }
    let mut unknown: Vec<(usize, u64)> = Vec::new();
    for i in 0..sockets.len() {
        let s = &sockets[i];
        let Some(inode) = s.peer.as_ref().map(|p| p.inode).filter(|_| s.proto == Proto::Unix) else { continue };
        if s.remote.as_ref().and_then(|r| r.unix()).is_some_and(|u| u.name.is_some()) {
            continue; // linked to its listener above
        }
        match by_inode.get(&inode) {
            Some(&j) => {
                let p = get(sockets, candidates, j);
                let peer = Peer {
                    inode,
                    owners: p.owners.clone(),
                    owners_hidden: p.owners_hidden,
                    netns: (p.netns_inode() != s.netns_inode()).then(|| p.netns.clone()).flatten(),
                };
                let remote = p.local.clone();
                let s = &mut sockets[i];
                s.peer = Some(Box::new(peer));
                s.remote = Some(remote);
            }
            None => unknown.push((i, inode)),
        }
    }
    if unknown.is_empty() {
        return;
    }
    let inodes: Vec<u64> = unknown.iter().map(|&(_, inode)| inode).collect();
    for ((i, _), (owners, hidden)) in unknown.into_iter().zip(owners_of(&inodes)) {
        if let Some(p) = sockets[i].peer.as_mut() {
            p.owners = owners;
            p.owners_hidden = hidden;
        }
    }
}

/// An endpoint as one number (IPv4 as IPv4-mapped IPv6) and its port.
fn end_key(e: Endpoint) -> (u128, u16) {
    let bits = match unmapped_endpoint(e).addr {
        IpAddr::V4(a) => u128::from(a.to_bits()) | 0xffff << 32,
        IpAddr::V6(a) => a.to_bits(),
    };
    (bits, e.port)
}

/// The same number for both ends of a connection: a hash of the namespace,
/// the protocol and the two endpoints in a fixed order (either socket's
/// view of the connection gives it).
fn pair_hash(netns: u64, proto: Proto, l: Endpoint, r: Endpoint) -> u64 {
    let (a, b) = (end_key(l), end_key(r));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = (netns ^ (proto as u64) << 56).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for w in
        [lo.0 as u64, (lo.0 >> 64) as u64, u64::from(lo.1) << 16 | u64::from(hi.1), hi.0 as u64, (hi.0 >> 64) as u64]
    {
        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    h
}

/// The ends of a connected TCP or UDP socket with a file.
fn ends(s: &Socket) -> Option<(Endpoint, Endpoint)> {
    if !s.proto.has_ports() || s.inode == 0 {
        return None;
    }
    Some((s.local_ip()?, s.remote_ip()?))
}

/// Whether `b` is the other end of `a`'s connection (any namespace).
fn reversed(a: &Socket, b: &Socket) -> bool {
    match (ends(a), ends(b)) {
        (Some((al, ar)), Some((bl, br))) => {
            a.proto == b.proto && a.inode != b.inode && end_key(al) == end_key(br) && end_key(ar) == end_key(bl)
        }
        _ => false,
    }
}

/// A connected socket's 4-tuple in a fixed order, exactly, when both ends
/// are IPv4 (IPv4-mapped included: nearly every local connection), with
/// the order it sees it in; IPv6 ones are told apart by [`reversed`].
fn packed(l: Endpoint, r: Endpoint) -> Option<(u128, bool)> {
    let v4 = |e: Endpoint| match unmapped_endpoint(e).addr {
        IpAddr::V4(a) => Some((u64::from(a.to_bits()) << 16) | u64::from(e.port)),
        IpAddr::V6(_) => None,
    };
    let (a, b) = (v4(l)?, v4(r)?);
    let (lo, hi, flipped) = if a <= b { (a, b, false) } else { (b, a, true) };
    Some(((u128::from(lo) << 64) | u128::from(hi), flipped))
}

/// TCP and UDP peers. The two ends of a connection hash alike
/// (`pair_hash`): sorted by that hash they are neighbours, paired in one
/// pass over small arrays of their own (the socket records are large: a
/// pass over them in hash order missed the cache at every step). Reads
/// addresses only, not owners: it may run while they are attached.
pub fn ip_pairs(sockets: &[Socket], candidates: &[Socket]) -> IpPairs {
    let netns = |s: &Socket| s.netns_inode().unwrap_or(0);
    let n = sockets.len();
    // Per connected socket: (hash, index) to sort, and what pairing compares:
    // the packed tuple (IPv4) and (netns, proto, flipped, exact).
    let mut keys: Vec<(u64, u32)> = Vec::new();
    let mut tuples: Vec<u128> = Vec::new();
    let mut meta: Vec<(u64, u8, bool, bool)> = Vec::new();
    let mut slot: Vec<u32> = vec![u32::MAX; n + candidates.len()];
    for (i, s) in sockets.iter().chain(candidates.iter()).enumerate() {
        if let Some((l, r)) = ends(s) {
            let (tuple, flipped, exact) = match packed(l, r) {
                Some((t, f)) => (t, f, true),
                None => (0, false, false),
            };
            slot[i] = keys.len() as u32;
            keys.push((pair_hash(netns(s), s.proto, l, r), i as u32));
            tuples.push(tuple);
            meta.push((netns(s), s.proto as u8, flipped, exact));
        }
    }
    if keys.is_empty() {
        return IpPairs::default();
    }
    let reversed_at = |i: u32, j: u32| -> bool {
        let (a, b) = (slot[i as usize] as usize, slot[j as usize] as usize);
        let (ma, mb) = (meta[a], meta[b]);
        if ma.0 != mb.0 || ma.1 != mb.1 {
            return false;
        }
        if ma.3 && mb.3 {
            return tuples[a] == tuples[b] && ma.2 != mb.2;
        }
        reversed(get(sockets, candidates, i as usize), get(sockets, candidates, j as usize))
    };
    keys.sort_unstable();
    // (socket, its peer), for the sockets shown.
    let mut found: Vec<(u32, u32)> = Vec::new();
    let mut paired = vec![false; n];
    for run in keys.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        for &(_, i) in run.iter().filter(|(_, i)| (*i as usize) < n) {
            if let Some(&(_, j)) = run.iter().find(|&&(_, j)| j != i && reversed_at(i, j)) {
                found.push((i, j));
                paired[i as usize] = true;
            }
        }
    }
    drop((keys, tuples));
    // Across namespaces (a veth pair, a bridge): only when the dump spans
    // several, only off loopback, and only when exactly one socket fits.
    let first = meta.first().map(|m| m.0);
    if meta.iter().any(|m| Some(m.0) != first) {
        let mut keys: Vec<(u64, u32)> = Vec::new();
        for (i, s) in sockets.iter().chain(candidates.iter()).enumerate() {
            if let Some((l, r)) = ends(s).filter(|(l, r)| !is_loopback(&l.addr) && !is_loopback(&r.addr)) {
                keys.push((pair_hash(0, s.proto, l, r), i as u32));
            }
        }
        keys.sort_unstable();
        for run in keys.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            for &(_, i) in run.iter().filter(|(_, i)| (*i as usize) < n && !paired[*i as usize]) {
                let a = &sockets[i as usize];
                let fits: Vec<u32> = run
                    .iter()
                    .map(|&(_, j)| j)
                    .filter(|&j| {
                        let b = get(sockets, candidates, j as usize);
                        netns(a) != netns(b) && reversed(a, b)
                    })
                    .collect();
                if let [j] = fits[..] {
                    found.push((i, j));
                }
            }
        }
    }
    // In the sockets' order: each record is written once, in sequence (and
    // the peers, sorted like them, are read nearly in sequence too).
    found.sort_unstable();
    IpPairs(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Addr, Family, NetnsRef, State, UnixName};

    fn owner(pid: u32, name: &str) -> Owner {
        Owner { pid, name: name.into(), user: "root".into(), fd: 3, tid: None, cmdline: name.into(), context: None }
    }

    fn tcp(local: &str, remote: &str, inode: u64, pid: u32, name: &str) -> Socket {
        let mut s = Socket::sample(Proto::Tcp, State::Established, local, Some(remote), inode);
        s.owners = vec![owner(pid, name)].into();
        s
    }

    fn none(_: &[u64]) -> Vec<(Arc<[Owner]>, bool)> {
        panic!("no lookup expected")
    }

    /// Recorded from a loopback pair (ss -tanp): a client and the server's
    /// accepted end, one IPv4 and the other an IPv4-mapped IPv6 socket,
    /// plus a connection to another host and a TIME_WAIT remnant.
    #[test]
    fn tcp_peers_by_reversed_tuple() {
        let mut v = vec![
            tcp("127.0.0.1:40000", "127.0.0.1:8080", 11, 100, "curl"),
            tcp("[::ffff:127.0.0.1]:8080", "[::ffff:127.0.0.1]:40000", 12, 200, "nginx"),
            tcp("10.0.0.5:50000", "93.184.216.34:443", 13, 100, "curl"),
            Socket::sample(Proto::Tcp, State::TimeWait, "127.0.0.1:40001", Some("127.0.0.1:8080"), 0),
            tcp("127.0.0.1:8080", "127.0.0.1:40001", 14, 200, "nginx"),
        ];
        v[1].family = Family::Ipv6;
        link(&mut v, &[], &mut none);
        let peer = |s: &Socket| s.peer.as_ref().map(|p| (p.inode, p.owners[0].name.to_string()));
        assert_eq!(peer(&v[0]), Some((12, "nginx".into())));
        assert_eq!(peer(&v[1]), Some((11, "curl".into())));
        assert_eq!(peer(&v[2]), None, "the other end is another host");
        assert_eq!(peer(&v[3]), None, "TIME_WAIT has no file");
        assert_eq!(peer(&v[4]), None, "its peer is a TIME_WAIT socket");
        // UDP and TCP tuples never meet.
        let mut mixed = vec![
            tcp("127.0.0.1:5000", "127.0.0.1:6000", 1, 1, "a"),
            tcp("127.0.0.1:6000", "127.0.0.1:5000", 2, 2, "b"),
        ];
        mixed[1].proto = Proto::Udp;
        link(&mut mixed, &[], &mut none);
        assert!(mixed.iter().all(|s| s.peer.is_none()));
    }

    /// Enough connections for the peer records to be built on two threads:
    /// each end still gets the other's inode and owners.
    #[test]
    fn many_pairs_each_get_the_other_end() {
        let n = PARALLEL_PAIRS / 2 + 500;
        let mut v = Vec::with_capacity(2 * n);
        for k in 0..n {
            let (port, client) = (10000 + (k % 50) as u16, 30000 + (k / 50) as u16);
            let (a, b) = (format!("127.0.0.1:{client}"), format!("127.0.0.2:{port}"));
            v.push(tcp(&a, &b, 1_000_000 + k as u64, 100, "client"));
            v.push(tcp(&b, &a, 2_000_000 + k as u64, 200, "server"));
        }
        let pairs = ip_pairs(&v, &[]);
        assert!(pairs.0.len() >= PARALLEL_PAIRS, "{} pairs", pairs.0.len());
        link_paired(&mut v, &[], pairs, &mut none);
        for (k, two) in v.chunks(2).enumerate() {
            let peer = |s: &Socket| s.peer.as_ref().map(|p| (p.inode, p.owners[0].pid));
            assert_eq!(peer(&two[0]), Some((2_000_000 + k as u64, 200)), "client {k}");
            assert_eq!(peer(&two[1]), Some((1_000_000 + k as u64, 100)), "server {k}");
        }
    }

    #[test]
    fn namespaces_keep_their_loopback() {
        let ns = |s: &mut Socket, inode| s.netns = Some(Box::new(NetnsRef { inode, name: Some(format!("ns{inode}")) }));
        let mut v = vec![
            tcp("127.0.0.1:40000", "127.0.0.1:8080", 11, 100, "a"),
            tcp("127.0.0.1:8080", "127.0.0.1:40000", 12, 200, "b"),
            tcp("10.1.0.1:40000", "10.1.0.2:80", 21, 300, "client"),
            tcp("10.1.0.2:80", "10.1.0.1:40000", 22, 400, "server"),
        ];
        ns(&mut v[0], 1);
        ns(&mut v[1], 2);
        ns(&mut v[2], 1);
        ns(&mut v[3], 2);
        link(&mut v, &[], &mut none);
        assert!(v[0].peer.is_none() && v[1].peer.is_none(), "loopback in two namespaces: two connections");
        let p = v[2].peer.as_ref().expect("veth pair: the server in the other namespace");
        assert_eq!((p.inode, p.netns.as_ref().map(|n| n.inode)), (22, Some(2)));
        assert_eq!(v[3].peer.as_ref().map(|p| p.inode), Some(21));
    }

    #[test]
    fn candidates_are_peers_but_not_shown() {
        let mut shown = vec![tcp("127.0.0.1:40000", "127.0.0.1:8080", 11, 100, "curl")];
        let hidden = vec![tcp("127.0.0.1:8080", "127.0.0.1:40000", 12, 200, "nginx")];
        link(&mut shown, &hidden, &mut none);
        assert_eq!(shown[0].peer.as_ref().map(|p| p.inode), Some(12));
    }

    fn unix(name: Option<&str>, inode: u64, peer: u64, pid: u32) -> Socket {
        let n = name.map_or_else(UnixName::unnamed, UnixName::path);
        let mut s = Socket::new(Proto::Unix, Family::Unix, State::Established, Addr::from_unix(n), None);
        s.inode = inode;
        if peer != 0 {
            s.peer = Some(Box::new(Peer::inode(peer)));
            s.remote = Some(Addr::from_unix(UnixName::unnamed()));
        }
        s.owners = vec![owner(pid, &format!("p{pid}"))].into();
        s
    }

    #[test]
    fn unix_peers_by_inode() {
        // A server's accepted end (named) and its client (unnamed); a
        // socketpair; a client whose server end is not in the dump.
        let mut v = vec![
            unix(Some("/run/app.sock"), 10, 11, 1),
            unix(None, 11, 10, 2),
            unix(None, 20, 21, 3),
            unix(None, 21, 20, 3),
            unix(None, 30, 99, 4),
        ];
        let mut asked = Vec::new();
        let mut lookup = |inodes: &[u64]| {
            asked.extend_from_slice(inodes);
            inodes.iter().map(|_| (Arc::from(vec![owner(9, "elsewhere")]), false)).collect()
        };
        link(&mut v, &[], &mut lookup);
        assert_eq!(asked, [99]);
        let p = |s: &Socket| {
            let p = s.peer.as_ref().unwrap();
            (p.inode, p.owners[0].pid, s.remote.as_ref().unwrap().to_string())
        };
        assert_eq!(p(&v[0]), (11, 2, "*".into()));
        assert_eq!(p(&v[1]), (10, 1, "/run/app.sock".into()), "the client's remote end is the server's name");
        assert_eq!(p(&v[2]), (21, 3, "*".into()));
        assert_eq!(p(&v[4]), (99, 9, "*".into()));
        // A client its server has not accepted yet: the listener's pending
        // list names it, and its other end is the listener.
        let mut listener = unix(Some("/run/app.sock"), 40, 0, 1);
        listener.state = State::Listen;
        listener.detail = Some(Box::new(crate::model::Detail::Unix(crate::model::UnixDetail {
            kind: crate::model::UnixType::Stream,
            vfs: None,
            pending: vec![41],
        })));
        let mut v = vec![listener, unix(None, 41, 0, 5)];
        link(&mut v, &[], &mut none);
        assert_eq!(p(&v[1]), (40, 1, "/run/app.sock".into()));
        assert!(v[0].peer.is_none());
    }
}
