//! The socket record, encoded by hand: byte for byte what serde_json makes of
//! [`Socket`] (a test holds the two together), about three times faster.
//!
//! At 130k sockets `conns --json` writes 70 MB, and serde's derived encoder
//! was the largest user-space cost left (60 ms of wall time on two cores):
//! it escapes every key, formats addresses through `Display` and escapes the
//! same owner's 200-byte command line once per socket. Here keys are
//! constants, IPv4 addresses and numbers are formatted in place, and each
//! owner's name, user and command line are escaped once per process and
//! copied after that. Strings still go through serde_json, so escaping is
//! serde_json's own; rare nested parts (timer, tcp_info, skmem, netns, context)
//! too.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::Encoder;
use crate::intmap::IntMap;
use crate::model::{Addr, Endpoint, Owner, Socket};

/// Encodes sockets; caches each process's encoded owner fields.
#[derive(Default)]
pub struct SocketEncoder {
    owners: IntMap<u32, OwnerFields>,
}

/// `{"pid":P,"name":N,"user":U,"fd":` and `,"cmdline":C`, for the owner
/// strings they were made from (the same `Arc`s for every socket of one
/// process, since they come from one process table).
struct OwnerFields {
    name: Arc<str>,
    user: Arc<str>,
    cmdline: Arc<str>,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl OwnerFields {
    fn new(o: &Owner) -> OwnerFields {
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(b"{\"pid\":");
        number(&mut head, o.pid.into());
        head.extend_from_slice(b",\"name\":");
        string(&mut head, &o.name);
        head.extend_from_slice(b",\"user\":");
        string(&mut head, &o.user);
        head.extend_from_slice(b",\"fd\":");
        let mut tail = Vec::with_capacity(o.cmdline.len() + 16);
        tail.extend_from_slice(b",\"cmdline\":");
        string(&mut tail, &o.cmdline);
        OwnerFields { name: o.name.clone(), user: o.user.clone(), cmdline: o.cmdline.clone(), head, tail }
    }

    fn is_for(&self, o: &Owner) -> bool {
        Arc::ptr_eq(&self.name, &o.name) && Arc::ptr_eq(&self.user, &o.user) && Arc::ptr_eq(&self.cmdline, &o.cmdline)
    }
}

impl Encoder<Socket> for SocketEncoder {
    fn encode(&mut self, out: &mut Vec<u8>, s: &Socket) {
        out.extend_from_slice(b"{\"proto\":\"");
        out.extend_from_slice(s.proto.as_str().as_bytes());
        out.extend_from_slice(b"\",\"family\":\"");
        out.extend_from_slice(s.family.as_str().as_bytes());
        out.extend_from_slice(b"\",\"state\":\"");
        out.extend_from_slice(s.state.as_str().as_bytes());
        out.extend_from_slice(b"\",\"local\":");
        addr(out, &s.local);
        out.extend_from_slice(b",\"remote\":");
        match &s.remote {
            Some(r) => addr(out, r),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"inode\":");
        number(out, s.inode);
        out.extend_from_slice(b",\"uid\":");
        number(out, s.uid.into());
        out.extend_from_slice(b",\"v6only\":");
        optional_bool(out, s.v6only);
        out.extend_from_slice(b",\"reuseaddr\":");
        optional_bool(out, s.reuseaddr);
        out.extend_from_slice(b",\"reuseport\":");
        optional_bool(out, s.reuseport);
        out.extend_from_slice(b",\"exposure\":\"");
        out.extend_from_slice(s.exposure.as_str().as_bytes());
        out.extend_from_slice(b"\",\"interface\":");
        optional_string(out, s.interface.as_deref());
        out.extend_from_slice(b",\"bound_ifindex\":");
        match s.bound_ifindex {
            Some(i) => number(out, i.into()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"service\":");
        optional_string(out, s.service.as_deref());
        out.extend_from_slice(b",\"recv_q\":");
        number(out, s.recv_q.into());
        out.extend_from_slice(b",\"send_q\":");
        number(out, s.send_q.into());
        out.extend_from_slice(b",\"timer\":");
        serde(out, &s.timer);
        out.extend_from_slice(b",\"owners\":[");
        for (i, o) in s.owners.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.owner(out, o);
        }
        out.extend_from_slice(if s.owners_hidden { b"],\"owners_hidden\":true" } else { b"],\"owners_hidden\":false" });
        out.extend_from_slice(b",\"unheld\":");
        match s.unheld {
            Some(u) => {
                out.push(b'"');
                out.extend_from_slice(u.as_str().as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        if let Some(e) = &s.ext {
            if let Some(q) = &e.accept_queue {
                out.extend_from_slice(b",\"accept_queue\":{\"queued\":");
                number(out, q.queued.into());
                out.extend_from_slice(b",\"backlog\":");
                number(out, q.backlog.into());
                out.extend_from_slice(if q.full { b",\"full\":true" } else { b",\"full\":false" });
                out.extend_from_slice(if q.near_full { b",\"near_full\":true}" } else { b",\"near_full\":false}" });
            }
            if let Some(t) = &e.tcp_info {
                out.extend_from_slice(b",\"tcp_info\":");
                serde(out, t);
            }
            if let Some(m) = &e.skmem {
                out.extend_from_slice(b",\"skmem\":");
                serde(out, m);
            }
        }
        if let Some(n) = &s.netns {
            out.extend_from_slice(b",\"netns\":");
            serde(out, n);
        }
        out.push(b'}');
    }
}

impl SocketEncoder {
    fn owner(&mut self, out: &mut Vec<u8>, o: &Owner) {
        let fields = self.owners.entry(o.pid).or_insert_with(|| OwnerFields::new(o));
        if !fields.is_for(o) {
            *fields = OwnerFields::new(o);
        }
        out.extend_from_slice(&fields.head);
        number(out, o.fd.into());
        out.extend_from_slice(b",\"tid\":");
        match o.tid {
            Some(t) => number(out, t.into()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(&fields.tail);
        if let Some(c) = &o.context {
            out.extend_from_slice(b",\"context\":");
            serde(out, c);
        }
        out.push(b'}');
    }
}

/// IP ends by hand, the rarer kinds through serde.
fn addr(out: &mut Vec<u8>, a: &Addr) {
    match a {
        Addr::Ip(e) => endpoint(out, e),
        other => serde(out, other),
    }
}

fn endpoint(out: &mut Vec<u8>, e: &Endpoint) {
    out.extend_from_slice(b"{\"addr\":\"");
    match e.addr {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, octet.into());
            }
        }
        // Display output never needs escaping (hex digits, ':' and '.').
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
    out.extend_from_slice(b"\",\"port\":");
    number(out, e.port.into());
    out.push(b'}');
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn string(out: &mut Vec<u8>, s: &str) {
    serde(out, s);
}

fn optional_bool(out: &mut Vec<u8>, b: Option<bool>) {
    out.extend_from_slice(match b {
        None => b"null",
        Some(true) => b"true",
        Some(false) => b"false",
    });
}

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail; serialising our types cannot either.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{
        AcceptQueue, Container, Context, Exposure, Family, LinkAddr, NetnsRef, Proto, SkMem, State, TcpInfo, Timer,
        TimerKind, Unheld, UnixName,
    };

    fn owner(pid: u32, name: &str, cmdline: &str) -> Owner {
        Owner {
            pid,
            name: Arc::from(name),
            user: Arc::from("root"),
            fd: pid % 7,
            tid: None,
            cmdline: Arc::from(cmdline),
            context: None,
        }
    }

    /// Sockets that between them take every variant and every optional
    /// field, with strings that need escaping.
    fn sockets() -> Vec<Socket> {
        let mut base = Socket::sample(Proto::Tcp, State::Established, "127.0.0.1:8080", Some("10.255.0.9:0"), u64::MAX);
        base.uid = u32::MAX;
        base.send_q = 4_294_967_295;
        let mut out = Vec::new();
        for (i, state) in State::TCP.iter().chain([&State::Unconn]).enumerate() {
            let mut s = base.clone();
            s.state = *state;
            s.inode = i as u64;
            out.push(s);
        }
        let weird = owner(4_194_304, "a\"b\\c\n\u{1}\u{7f}é", "/bin/x --name=\"q\" \t tab \u{2028} \u{10ffff}");
        let mut with_ctx = owner(7, "nginx", "nginx: worker process");
        with_ctx.context = Some(Box::new(Context {
            cgroup: "/system.slice/docker-abc.scope".into(),
            unit: Some("docker-abc.scope".into()),
            container: Some(Container {
                runtime: "docker".into(),
                id: "abc".into(),
                pod_uid: None,
                name: Some("web".into()),
            }),
        }));
        let mut v6 = base.clone();
        v6.proto = Proto::Udp;
        v6.family = Family::Ipv6;
        v6.local = Endpoint { addr: "::".parse().unwrap(), port: 53 }.into();
        v6.remote = None;
        v6.v6only = Some(false);
        v6.exposure = Exposure::Wildcard;
        v6.service = Some("domain".into());
        v6.owners = vec![weird.clone(), with_ctx.clone(), weird.clone()];
        out.push(v6.clone());
        for (addr, only) in [("fe80::1:2", Some(true)), ("::ffff:127.0.0.1", None), ("2001:db8::", Some(false))] {
            let mut s = v6.clone();
            s.local = Endpoint { addr: addr.parse().unwrap(), port: 53 }.into();
            s.remote = Some(Endpoint { addr: "::1".parse().unwrap(), port: 65535 }.into());
            s.v6only = only;
            s.exposure = Exposure::Address;
            s.interface = Some("eth\"0".into());
            out.push(s);
        }
        // The options read by BPF, a thread's own table, each reason a
        // socket has no holder.
        let mut opts = base.clone();
        opts.reuseaddr = Some(true);
        opts.reuseport = Some(false);
        opts.bound_ifindex = Some(3);
        let mut threaded = owner(77, "java", "java -jar x");
        threaded.tid = Some(78);
        opts.owners = vec![threaded, owner(77, "java", "java -jar x")];
        out.push(opts.clone());
        for u in [Unheld::Kernel, Unheld::InFlight, Unheld::NoProcess] {
            let mut s = opts.clone();
            s.owners.clear();
            s.unheld = Some(u);
            s.reuseport = Some(true);
            s.reuseaddr = None;
            s.bound_ifindex = Some(0);
            out.push(s);
        }
        let mut full = base.clone();
        full.owners_hidden = true;
        full.timer = Some(Timer { kind: TimerKind::TimeWait, expires_ms: 59_999, retrans: 3 });
        full.ext_mut().tcp_info = Some(TcpInfo {
            rtt_us: 1,
            rttvar_us: 2,
            retransmits: 3,
            total_retrans: 4,
            snd_cwnd: 10,
            bytes_sent: Some(u64::MAX),
            bytes_received: None,
            congestion: Some("cu\"bic".into()),
            snd_mss: 1448,
            rcv_mss: 536,
            unacked: 5,
            lost: 6,
            reordering: 3,
            pacing_rate: None,
            delivery_rate: Some(1_000_000),
            busy_time_us: Some(7),
            rwnd_limited_us: None,
            sndbuf_limited_us: Some(u64::MAX),
        });
        full.ext_mut().skmem = Some(SkMem { rcvbuf: 2304, drops: u32::MAX, ..SkMem::default() });
        full.netns = Some(Box::new(NetnsRef { inode: 4_026_531_840, name: Some("blue".into()) }));
        out.push(full.clone());
        full.netns = Some(Box::new(NetnsRef { inode: 1, name: None }));
        full.ext_mut().tcp_info = None;
        full.owners = vec![owner(1, "systemd", "")];
        out.push(full.clone());
        // A listener: its accept queue, full, near full and neither.
        let mut listener = Socket::sample(Proto::Tcp, State::Listen, "0.0.0.0:80", None, 77);
        for (queued, backlog) in [(2, 1), (9, 10), (0, 4096), (u32::MAX, u32::MAX)] {
            listener.ext_mut().accept_queue = Some(AcceptQueue::new(queued, backlog));
            out.push(listener.clone());
        }
        full.ext = None;
        out.push(full);
        let name =
            |n: Option<&str>, is_abstract| Addr::Unix(Box::new(UnixName { name: n.map(Into::into), is_abstract }));
        let mut unix = Socket::new(Proto::Unix, Family::Unix, State::Listen, name(Some("/run/a\"b.sock"), false), None);
        unix.owners = vec![owner(9, "dockerd", "/usr/bin/dockerd")];
        out.push(unix.clone());
        unix.local = name(Some("\0bus\u{1}"), true);
        unix.remote = Some(name(None, false));
        out.push(unix);
        let link = Addr::Link(LinkAddr { ifindex: 2, protocol: 0x0003 });
        out.push(Socket::new(Proto::Packet, Family::Packet, State::Unconn, link, None));
        out
    }

    #[test]
    fn same_bytes_as_serde() {
        let mut enc = SocketEncoder::default();
        for s in sockets() {
            let mut ours = Vec::new();
            enc.encode(&mut ours, &s);
            let theirs = serde_json::to_vec(&s).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs.clone()).unwrap());
            // And back, through the contract's flat record.
            let back: Socket = serde_json::from_slice(&theirs).unwrap();
            assert_eq!(back, s);
        }
    }

    /// A cached owner is not reused for a different process table's strings
    /// (same pid, new name: `watch` refreshes, a pid reused).
    #[test]
    fn cache_follows_the_owner_strings() {
        let mut enc = SocketEncoder::default();
        let mut s = sockets().remove(0);
        for name in ["first", "second"] {
            s.owners = vec![owner(42, name, name)];
            let mut ours = Vec::new();
            enc.encode(&mut ours, &s);
            assert_eq!(ours, serde_json::to_vec(&s).unwrap());
        }
    }

    /// Random sockets for the property tests: every kind of address, every
    /// optional part, and strings from the whole of Unicode (controls,
    /// quotes, backslashes, astral planes).
    pub(crate) mod arb {
        use super::*;
        use proptest::prelude::*;
        use std::net::{Ipv4Addr, Ipv6Addr};

        fn text() -> impl Strategy<Value = String> {
            prop_oneof!["\\PC{0,12}", "[\"\\\\\\x00-\\x1f\\u{7f}-\\u{a0}\\u{2028}\\u{10ffff}a]{0,6}"]
        }

        fn ip() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
                Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            ]
        }

        fn addr() -> impl Strategy<Value = Addr> {
            prop_oneof![
                4 => (ip(), any::<u16>()).prop_map(|(addr, port)| Addr::Ip(Endpoint { addr, port })),
                1 => (proptest::option::of(text()), any::<bool>())
                    .prop_map(|(n, a)| Addr::Unix(Box::new(UnixName { name: n.map(Into::into), is_abstract: a }))),
                1 => (any::<u32>(), any::<u16>()).prop_map(|(i, p)| Addr::Link(LinkAddr { ifindex: i, protocol: p })),
            ]
        }

        prop_compose! {
            fn owner()(pid in 0u32..20, name in text(), user in text(), fd in any::<u32>(), tid in proptest::option::of(any::<u32>()), cmdline in text(),
                       ctx in proptest::option::of((text(), proptest::option::of(text()), proptest::option::of((text(), text(), proptest::option::of(text()), proptest::option::of(text())))))) -> Owner {
                Owner {
                    pid,
                    name: Arc::from(name.as_str()),
                    user: Arc::from(user.as_str()),
                    fd,
                    tid,
                    cmdline: Arc::from(cmdline.as_str()),
                    context: ctx.map(|(cgroup, unit, c)| Box::new(Context {
                        cgroup,
                        unit,
                        container: c.map(|(runtime, id, pod_uid, name)| Container { runtime, id, pod_uid, name }),
                    })),
                }
            }
        }

        prop_compose! {
            fn tcp_info()(
                n in any::<[u32; 10]>(),
                r in any::<[Option<u64>; 7]>(),
                congestion in proptest::option::of(text()),
            ) -> TcpInfo {
                TcpInfo {
                    rtt_us: n[0], rttvar_us: n[1], retransmits: n[2], total_retrans: n[3], snd_cwnd: n[4],
                    bytes_sent: r[5], bytes_received: r[6],
                    congestion: congestion.map(Into::into),
                    snd_mss: n[5], rcv_mss: n[6], unacked: n[7], lost: n[8], reordering: n[9],
                    pacing_rate: r[0], delivery_rate: r[1], busy_time_us: r[2], rwnd_limited_us: r[3], sndbuf_limited_us: r[4],
                }
            }
        }

        prop_compose! {
            fn ext()(
                tcp_info in proptest::option::of(tcp_info()),
                queue in proptest::option::of(any::<(u32, u32)>()),
                m in proptest::option::of(any::<[u32; 9]>()),
            ) -> crate::model::SocketExt {
                crate::model::SocketExt {
                    accept_queue: queue.map(|(q, b)| AcceptQueue::new(q, b)),
                    tcp_info,
                    skmem: m.map(|m| SkMem {
                        rmem_alloc: m[0], rcvbuf: m[1], wmem_alloc: m[2], sndbuf: m[3], fwd_alloc: m[4],
                        wmem_queued: m[5], optmem: m[6], backlog: m[7], drops: m[8],
                    }),
                }
            }
        }

        prop_compose! {
            fn base()(
                proto in prop_oneof![Just(Proto::Tcp), Just(Proto::Udp), Just(Proto::Raw), Just(Proto::Unix), Just(Proto::Packet)],
                family in prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6), Just(Family::Unix), Just(Family::Packet)],
                state in proptest::sample::select(State::TCP.iter().copied().chain([State::Unconn]).collect::<Vec<_>>()),
                local in addr(),
                remote in proptest::option::of(addr()),
                numbers in (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()),
                v6only in proptest::option::of(any::<bool>()),
                exposure in prop_oneof![Just(Exposure::Loopback), Just(Exposure::Wildcard), Just(Exposure::Address)],
                interface in proptest::option::of(text()),
                service in proptest::option::of(text()),
                timer in proptest::option::of((prop_oneof![Just(TimerKind::Retransmit), Just(TimerKind::Keepalive), Just(TimerKind::TimeWait), Just(TimerKind::Probe)], any::<u32>(), any::<u8>())),
            ) -> Socket {
                let mut s = Socket::new(proto, family, state, local, remote);
                (s.inode, s.uid, s.recv_q, s.send_q) = numbers;
                s.v6only = v6only;
                s.exposure = exposure;
                s.interface = interface.map(Into::into);
                s.service = service.map(Into::into);
                s.timer = timer.map(|(kind, expires_ms, retrans)| Timer { kind, expires_ms, retrans });
                s
            }
        }

        prop_compose! {
            pub(crate) fn socket()(
                base in base(),
                owners in proptest::collection::vec(owner(), 0..4),
                marks in (any::<bool>(), proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()), proptest::option::of(any::<u32>()), proptest::option::of(prop_oneof![Just(Unheld::Kernel), Just(Unheld::InFlight), Just(Unheld::NoProcess)])),
                ext in proptest::option::of(ext()),
                netns in proptest::option::of((any::<u64>(), proptest::option::of(text()))),
            ) -> Socket {
                let mut s = base;
                s.owners = owners;
                (s.owners_hidden, s.reuseaddr, s.reuseport, s.bound_ifindex, s.unheld) = marks;
                s.ext = ext.map(Box::new);
                s.netns = netns.map(|(inode, name)| Box::new(NetnsRef { inode, name }));
                s
            }
        }
    }

    proptest::proptest! {
        /// The hand-written encoder writes exactly what serde writes, for
        /// any socket record (one encoder, so owner caching is exercised
        /// across records too).
        #[test]
        fn encoder_equals_serde_on_random_sockets(v in proptest::collection::vec(arb::socket(), 1..8)) {
            let mut enc = SocketEncoder::default();
            for s in &v {
                let mut ours = Vec::new();
                enc.encode(&mut ours, s);
                proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(s).unwrap());
            }
        }
    }
}
