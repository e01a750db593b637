//! How each command orders its sockets. The sorts run on the main thread
//! while the /proc walk is still going (they need no owners).

use std::cmp::Ordering;

use crate::model::{Addr, Endpoint, Socket};

/// `listen`, `who`: by port, then address, then protocol; sockets without
/// ports (unix, packet) after the IP ones, by name.
pub fn listen(sockets: &mut [Socket]) {
    sockets.sort_by(|a, b| listen_key(a).cmp(&listen_key(b)));
}

fn listen_key(s: &Socket) -> (bool, u16, &Addr, crate::model::Proto) {
    (!s.proto.has_ports(), s.port(), &s.local, s.proto)
}

/// `conns`: by local port, then remote end; the rest only makes the order
/// total.
pub fn conns(sockets: &mut [Socket]) {
    // A sort of small (u64, index) keys, ordered by a prefix of the full
    // order packed into the u64, with the full comparison only for ties;
    // then each socket record moves once. At 130k sockets this costs ~10 ms
    // where sort_by_cached_key on the tuple cost ~35 ms.
    let prefix = |s: &Socket| -> u64 {
        let remote = match &s.remote {
            None => 0,
            Some(Addr::Ip(Endpoint { addr: std::net::IpAddr::V4(a), port })) => {
                1 << 46 | u64::from(a.to_bits()) << 14 | u64::from(port >> 2)
            }
            Some(Addr::Ip(Endpoint { addr: std::net::IpAddr::V6(a), .. })) => 2 << 46 | (a.to_bits() >> 82) as u64,
            Some(_) => 3 << 46,
        };
        u64::from(s.port()) << 48 | remote
    };
    fn full(s: &Socket) -> (u16, &Option<Addr>, &Addr, crate::model::Proto, crate::model::State, u64) {
        (s.port(), &s.remote, &s.local, s.proto, s.state, s.inode)
    }
    sort_by_prefix(sockets, prefix, |a, b| full(a).cmp(&full(b)));
}

/// `--sort KEY,...`: a stable sort by the keys in order (ties keep the
/// command's own order), descending with `reverse`. Owner keys look at the
/// first holder; sockets without one sort after those with one.
pub fn by_keys(sockets: &mut [Socket], keys: &[crate::filter::SortKey], reverse: bool) {
    if keys.is_empty() {
        return;
    }
    sockets.sort_by(|a, b| compare_keys(a, b, keys, reverse));
}

/// The order [`by_keys`] sorts in.
pub fn compare_keys(a: &Socket, b: &Socket, keys: &[crate::filter::SortKey], reverse: bool) -> Ordering {
    let o = keys.iter().fold(Ordering::Equal, |o, k| o.then_with(|| compare(a, b, *k)));
    if reverse { o.reverse() } else { o }
}

fn compare(a: &Socket, b: &Socket, key: crate::filter::SortKey) -> Ordering {
    use crate::filter::SortKey as K;
    // Present values first, then absent ones (a socket with no owner).
    fn opt<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
        match (a, b) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    let owner = |s: &Socket| s.owners.iter().min_by_key(|o| o.pid).cloned();
    match key {
        K::Port => a.port().cmp(&b.port()),
        K::Local => a.local.cmp(&b.local),
        K::Remote => a.remote.cmp(&b.remote),
        K::Rport => opt(a.remote_ip().map(|e| e.port), b.remote_ip().map(|e| e.port)),
        K::State => a.state.cmp(&b.state),
        K::Proto => (a.proto, a.family).cmp(&(b.proto, b.family)),
        K::Pid => opt(owner(a).map(|o| o.pid), owner(b).map(|o| o.pid)),
        K::Process => opt(owner(a).map(|o| o.name), owner(b).map(|o| o.name)),
        K::User => opt(owner(a).map(|o| o.user), owner(b).map(|o| o.user)),
        K::RecvQ => a.recv_q.cmp(&b.recv_q),
        K::SendQ => a.send_q.cmp(&b.send_q),
        K::Inode => a.inode.cmp(&b.inode),
        K::Uid => a.uid.cmp(&b.uid),
    }
}

/// Sorts by `full`, stable, where `prefix` is monotone in it (a < b by
/// `full` implies prefix(a) <= prefix(b)).
fn sort_by_prefix<T>(items: &mut [T], prefix: impl Fn(&T) -> u64, full: impl Fn(&T, &T) -> Ordering) {
    // Plain integer pairs sort fastest: by prefix, then by index.
    let mut keys: Vec<(u64, u32)> = items.iter().zip(0u32..).map(|(it, i)| (prefix(it), i)).collect();
    keys.sort_unstable();
    // Runs of equal prefixes (rare) are put in full order; the sort is
    // stable and each run is in index order already.
    for run in keys.chunk_by_mut(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        run.sort_by(|a, b| full(&items[a.1 as usize], &items[b.1 as usize]));
    }
    let mut order: Vec<u32> = keys.into_iter().map(|(_, i)| i).collect();
    permute(items, &mut order);
}

/// Rearranges `items` so that position k holds what was at `order[k]`,
/// following each cycle of the permutation (no second buffer): the
/// cycle's first item is set aside and every other one moves once, where
/// swaps moved each three times (a socket record is ~180 bytes).
/// `order` is left as the identity. Panics, before moving anything, when
/// `order` is not a permutation of the indices.
fn permute<T>(items: &mut [T], order: &mut [u32]) {
    let n = items.len();
    let mut seen = vec![false; n];
    assert!(
        order.len() == n && order.iter().all(|&i| (i as usize) < n && !std::mem::replace(&mut seen[i as usize], true)),
        "not a permutation of the items"
    );
    let base = items.as_mut_ptr();
    for start in 0..n {
        if order[start] as usize == start {
            continue;
        }
        // SAFETY: `order` is a permutation of 0..n (checked above), so every
        // pointer is in bounds and the cycle from `start` comes back to it.
        // The item read out of `start` is written into the cycle's last slot
        // and each other item of the cycle moves once, to a slot whose item
        // has moved on: at the end each item is in exactly one slot. Nothing
        // in between can panic (the indices were checked).
        unsafe {
            let held = std::ptr::read(base.add(start));
            let mut at = start;
            loop {
                let from = *order.get_unchecked(at) as usize;
                *order.get_unchecked_mut(at) = at as u32;
                if from == start {
                    break;
                }
                std::ptr::copy_nonoverlapping(base.add(from), base.add(at), 1);
                at = from;
            }
            std::ptr::write(base.add(at), held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Proto, State};

    fn sock(local: u16, remote: Option<(&str, u16)>) -> Socket {
        let remote = remote.map(|(a, p)| if a.contains(':') { format!("[{a}]:{p}") } else { format!("{a}:{p}") });
        Socket::sample(Proto::Tcp, State::Established, &format!("127.0.0.1:{local}"), remote.as_deref(), 1000)
    }

    fn remote_text(s: &Socket) -> String {
        s.remote.as_ref().map_or("*".into(), |r| r.to_string())
    }

    #[test]
    fn conns_by_local_port_then_remote() {
        let mut v = vec![
            sock(9000, Some(("127.0.0.2", 1))),
            sock(80, Some(("127.0.0.1", 5000))),
            sock(9000, Some(("127.0.0.1", 7))),
            sock(80, Some(("127.0.0.1", 4000))),
            sock(80, None),
        ];
        conns(&mut v);
        let got: Vec<String> = v.iter().map(|s| format!("{} {}", s.port(), remote_text(s))).collect();
        assert_eq!(got, ["80 *", "80 127.0.0.1:4000", "80 127.0.0.1:5000", "9000 127.0.0.1:7", "9000 127.0.0.2:1"]);
    }

    /// The packed-prefix sort agrees with a plain stable sort on the full
    /// key, over sockets made to collide in the prefix (same port, remote
    /// ports equal but for the low bits, v4 and v6, no remote).
    #[test]
    fn prefix_sort_equals_full_sort() {
        let mut v = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = match x % 4 {
                0 => format!("127.0.0.{}", x % 3),
                1 => format!("::ffff:127.0.0.{}", x % 2),
                2 => format!("fe80::{:x}", x % 5),
                _ => String::new(),
            };
            let remote = (!addr.is_empty()).then_some((addr.as_str(), (x >> 20) as u16 % 8));
            let mut s = sock([80, 443, 8080][(x >> 40) as usize % 3], remote);
            s.inode = u64::from(i % 7);
            s.state = if x >> 50 & 1 == 0 { State::Established } else { State::TimeWait };
            v.push(s);
        }
        let mut want = v.clone();
        want.sort_by(|a, b| {
            (a.port(), a.remote_ip(), a.local_ip().map(|e| e.addr), a.proto, a.state, a.inode).cmp(&(
                b.port(),
                b.remote_ip(),
                b.local_ip().map(|e| e.addr),
                b.proto,
                b.state,
                b.inode,
            ))
        });
        conns(&mut v);
        let show =
            |v: &[Socket]| v.iter().map(|s| format!("{} {} {}", s.port(), remote_text(s), s.inode)).collect::<Vec<_>>();
        assert_eq!(show(&v), show(&want));
    }

    #[test]
    fn permutation_follows_every_cycle() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e', 'f'];
        let mut order = vec![3, 0, 4, 1, 2, 5];
        permute(&mut items, &mut order);
        assert_eq!(items, ['d', 'a', 'e', 'b', 'c', 'f']);
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    proptest::proptest! {
        /// Items that own memory (a moved-twice or dropped-twice one would
        /// show, under Miri or ASan, and as a wrong string here) end where
        /// the order says, for any permutation.
        #[test]
        fn permutation_moves_each_item_once(seed in proptest::collection::vec(0u32..1000, 0..200)) {
            let n = seed.len();
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by_key(|&i| (seed[i as usize], i));
            let mut items: Vec<String> = (0..n).map(|i| format!("item {i}")).collect();
            let want: Vec<String> = order.iter().map(|&i| items[i as usize].clone()).collect();
            permute(&mut items, &mut order.clone());
            proptest::prop_assert_eq!(items, want);
        }
    }

    #[test]
    #[should_panic(expected = "not a permutation")]
    fn a_repeated_index_is_refused_before_anything_moves() {
        let mut items = vec![String::from("a"), String::from("b")];
        permute(&mut items, &mut [0, 0]);
    }

    #[test]
    fn sort_keys_in_order_and_reversed() {
        use crate::filter::SortKey;
        use crate::model::Owner;
        let mut v = vec![
            sock(80, Some(("127.0.0.1", 5))),
            sock(22, Some(("127.0.0.1", 9))),
            sock(80, Some(("127.0.0.1", 1))),
            sock(443, None),
        ];
        v[0].recv_q = 7;
        v[1].recv_q = 7;
        v[2].recv_q = 1;
        v[3].owners = vec![Owner {
            pid: 5,
            name: "a".into(),
            user: "u".into(),
            fd: 3,
            tid: None,
            cmdline: "a".into(),
            context: None,
        }]
        .into();
        let ports = |v: &[Socket]| v.iter().map(|s| (s.port(), remote_text(s))).collect::<Vec<_>>();
        by_keys(&mut v, &[SortKey::RecvQ, SortKey::Rport], false);
        assert_eq!(ports(&v)[0], (443, "*".to_string()), "recv_q 0 first");
        assert_eq!(ports(&v)[1], (80, "127.0.0.1:1".to_string()));
        assert_eq!(ports(&v)[2], (80, "127.0.0.1:5".to_string()), "tie on recv_q broken by remote port");
        by_keys(&mut v, &[SortKey::Pid], false);
        assert_eq!(v[0].port(), 443, "the one socket with an owner first");
        by_keys(&mut v, &[SortKey::Port], true);
        assert_eq!(v.iter().map(Socket::port).collect::<Vec<_>>(), [443, 80, 80, 22]);
        let before: Vec<u16> = v.iter().map(Socket::port).collect();
        by_keys(&mut v, &[], false);
        assert_eq!(v.iter().map(Socket::port).collect::<Vec<_>>(), before);
    }

    #[test]
    fn listen_by_port_then_address() {
        let mut v = vec![
            Socket::sample(Proto::Udp, State::Unconn, "0.0.0.0:53", None, 1),
            Socket::sample(Proto::Tcp, State::Listen, "[::]:22", None, 2),
            Socket::sample(Proto::Tcp, State::Listen, "0.0.0.0:22", None, 3),
        ];
        listen(&mut v);
        assert_eq!(v.iter().map(|s| s.inode).collect::<Vec<_>>(), [3, 2, 1]);
    }
}
