//! The kernel's own counters for one network namespace, as `nstat` and
//! `netstat -s` read them: `/proc/net/netstat` (TcpExt), `/proc/net/snmp`
//! (Tcp, Udp), `/proc/net/snmp6` (Udp6), and the socket counts and memory
//! of `/proc/net/sockstat`, `sockstat6` and `protocols`.
//!
//! Read through `/proc/thread-self/net`: `/proc/net` is `/proc/self/net`,
//! the namespace of the process's first thread, not of the thread that
//! entered another one. Run [`Counters::read`] and [`Sockstat::read`] inside
//! `Netns::run` for another namespace, as `Sysctls::read` is.
//!
//! The parsers take the files' text and never fail: what they cannot make
//! sense of (a line pair whose names and values disagree, a value that is
//! not a number) is left out. The text is the kernel's, but a parser of
//! /proc data must not panic on anything (property tests below).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The groups kept, in the order `nstat` lists them: TcpExt from
/// /proc/net/netstat, Tcp and Udp from /proc/net/snmp, Udp6 from
/// /proc/net/snmp6 (TCP counts both families in one place; UDP does not).
pub const GROUPS: [&str; 4] = ["TcpExt", "Tcp", "Udp", "Udp6"];

/// Where the files are read: this thread's network namespace.
const NET: &str = "/proc/thread-self/net";

/// One group of counters (`TcpExt`, `Tcp`, ...), in the kernel's order.
/// JSON: an object of the kernel's names and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub values: Vec<(String, i64)>,
}

impl Group {
    pub fn get(&self, name: &str) -> Option<i64> {
        self.values.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// The counters of one namespace: the groups of [`GROUPS`] that could be
/// read. JSON: `{"TcpExt": {"ListenOverflows": 20, ...}, "Tcp": {...}, ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub groups: Vec<Group>,
}

impl Counters {
    /// Reads the counters of the calling thread's namespace. The errors say
    /// which files could not be read (their groups are missing); a missing
    /// /proc/net/snmp6 (IPv6 disabled) is not an error.
    pub fn read() -> (Counters, Vec<String>) {
        let mut c = Counters::default();
        let mut errors = Vec::new();
        for file in ["netstat", "snmp"] {
            let path = format!("{NET}/{file}");
            match std::fs::read_to_string(&path) {
                Ok(text) => c.groups.extend(parse_pairs(&text)),
                Err(e) => errors.push(format!("could not read {path}: {e}")),
            }
        }
        if let Ok(text) = std::fs::read_to_string(format!("{NET}/snmp6")) {
            c.groups.extend(parse_snmp6(&text));
        }
        c.groups.retain(|g| GROUPS.contains(&g.name.as_str()));
        c.groups.sort_by_key(|g| GROUPS.iter().position(|n| *n == g.name));
        c.groups.dedup_by(|a, b| a.name == b.name);
        (c, errors)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// One counter: `get("TcpExt", "ListenOverflows")`.
    pub fn get(&self, group: &str, name: &str) -> Option<i64> {
        self.group(group)?.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// `self - before`, counter by counter (what rose, or fell for the few
    /// gauges among them, like Tcp CurrEstab); counters `before` lacks are
    /// left out.
    pub fn minus(&self, before: &Counters) -> Counters {
        let groups = self
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                values: g
                    .values
                    .iter()
                    .filter_map(|(n, v)| Some((n.clone(), v.wrapping_sub(before.get(&g.name, n)?))))
                    .collect(),
            })
            .collect();
        Counters { groups }
    }
}

/// A value as the kernel prints it: unsigned counters (`%lu`) and a few
/// signed ones (Tcp MaxConn is -1). Counters past i64::MAX saturate.
fn value(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().or_else(|| s.parse::<u64>().ok().map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// `/proc/net/netstat` and `/proc/net/snmp`: pairs of lines, `Group: Name
/// Name ...` then `Group: value value ...`. A pair whose lines disagree
/// (another group, another count) is skipped, and so is a value that is not
/// a number.
pub fn parse_pairs(text: &str) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some((name, names)) = header.split_once(':') else { continue };
        let Some(values) = lines.next() else { break };
        let Some((vname, values)) = values.split_once(':') else { continue };
        let (name, names, values): (&str, Vec<&str>, Vec<&str>) =
            (name.trim(), names.split_whitespace().collect(), values.split_whitespace().collect());
        if vname.trim() != name || names.len() != values.len() || name.is_empty() {
            continue;
        }
        let values = names.into_iter().zip(values).filter_map(|(n, v)| Some((n.to_string(), value(v)?))).collect();
        groups.push(Group { name: name.to_string(), values });
    }
    groups
}

/// `/proc/net/snmp6`: one `Udp6InDatagrams 12` per line. Only the Udp6
/// group is kept (without its prefix, as in /proc/net/snmp: `InDatagrams`).
pub fn parse_snmp6(text: &str) -> Vec<Group> {
    let mut udp6 = Group { name: "Udp6".into(), values: Vec::new() };
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(v), None) = (f.next(), f.next(), f.next()) else { continue };
        if let (Some(field), Some(v)) = (name.strip_prefix("Udp6"), value(v))
            && !field.is_empty()
        {
            udp6.values.push((field.to_string(), v));
        }
    }
    if udp6.values.is_empty() { Vec::new() } else { vec![udp6] }
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.values.len()))?;
        for (k, v) in &self.values {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.groups.len()))?;
        for g in &self.groups {
            m.serialize_entry(&g.name, g)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Counters, D::Error> {
        struct Groups;
        impl<'de> Visitor<'de> for Groups {
            type Value = Counters;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of counter groups")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counters, A::Error> {
                let mut groups = Vec::new();
                while let Some((name, values)) = map.next_entry::<String, OrderedValues>()? {
                    groups.push(Group { name, values: values.0 });
                }
                Ok(Counters { groups })
            }
        }
        d.deserialize_map(Groups)
    }
}

/// A JSON object read in its order.
struct OrderedValues(Vec<(String, i64)>);

impl<'de> Deserialize<'de> for OrderedValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrderedValues, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = OrderedValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of counters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedValues, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = map.next_entry::<String, i64>()? {
                    v.push(entry);
                }
                Ok(OrderedValues(v))
            }
        }
        d.deserialize_map(Values)
    }
}

/// Socket counts and memory: `/proc/net/sockstat` and `sockstat6`, and the
/// memory pressure flag of `/proc/net/protocols`. `inuse` and `tw` are the
/// namespace's; `orphan`, `alloc` and the memory (in pages) are host-wide:
/// the kernel keeps one count and one memory pool per protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sockstat {
    /// `sockets: used`: every socket of the namespace, any kind.
    pub sockets_used: Option<u64>,
    pub tcp_inuse: Option<u64>,
    pub tcp6_inuse: Option<u64>,
    /// Orphans: TCP sockets no process holds that still close (FIN_WAIT,
    /// LAST_ACK, ...); host-wide.
    pub tcp_orphan: Option<u64>,
    /// TIME_WAIT sockets.
    pub tcp_time_wait: Option<u64>,
    /// TCP sockets allocated, host-wide.
    pub tcp_alloc: Option<u64>,
    /// Pages of memory TCP uses, host-wide (compare with `tcp_mem`).
    pub tcp_mem_pages: Option<u64>,
    pub udp_inuse: Option<u64>,
    pub udp6_inuse: Option<u64>,
    pub udp_mem_pages: Option<u64>,
    /// The kernel's own flag: TCP is under memory pressure
    /// (`/proc/net/protocols`, column `press`).
    pub tcp_memory_pressure: Option<bool>,
}

impl Sockstat {
    /// Reads the calling thread's namespace; what cannot be read stays `None`.
    pub fn read() -> Sockstat {
        let read = |f: &str| std::fs::read_to_string(format!("{NET}/{f}")).unwrap_or_default();
        let mut s = parse_sockstat(&read("sockstat"));
        let six = parse_sockstat(&read("sockstat6"));
        s.tcp6_inuse = six.tcp6_inuse;
        s.udp6_inuse = six.udp6_inuse;
        s.tcp_memory_pressure = parse_protocols_pressure(&read("protocols"), "TCP");
        s
    }
}

/// `TCP: inuse 3 orphan 0 tw 5 alloc 4 mem 221` and the like: keyword and
/// number pairs after each `PROTO:`.
pub fn parse_sockstat(text: &str) -> Sockstat {
    let mut s = Sockstat::default();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.chunks(2) {
            let [key, v] = pair else { continue };
            let Ok(v) = v.parse::<u64>() else { continue };
            let slot = match (proto.trim(), *key) {
                ("sockets", "used") => &mut s.sockets_used,
                ("TCP", "inuse") => &mut s.tcp_inuse,
                ("TCP", "orphan") => &mut s.tcp_orphan,
                ("TCP", "tw") => &mut s.tcp_time_wait,
                ("TCP", "alloc") => &mut s.tcp_alloc,
                ("TCP", "mem") => &mut s.tcp_mem_pages,
                ("UDP", "inuse") => &mut s.udp_inuse,
                ("UDP", "mem") => &mut s.udp_mem_pages,
                ("TCP6", "inuse") => &mut s.tcp6_inuse,
                ("UDP6", "inuse") => &mut s.udp6_inuse,
                _ => continue,
            };
            *slot = Some(v);
        }
    }
    s
}

/// The `press` column of `/proc/net/protocols` for one protocol: `yes`,
/// `no`, or `NI` (not implemented: `None`).
pub fn parse_protocols_pressure(text: &str, proto: &str) -> Option<bool> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = header.iter().position(|h| *h == "press")?;
    let row: Vec<&str> = lines.map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|f| f.first() == Some(&proto))?;
    match *row.get(col)? {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Recorded on Linux 6.18 (the host namespace of the build machine),
    /// cut to the first fields of TcpExt and a whole snmp.
    const NETSTAT: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops
TcpExt: 0 0 0 0 0 0 0 0 0 0 3520 0 0 0 0 0 0 0 0 190 0 2 20 21
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps
IpExt: 0 0 0 0 0 0 123338363 1465980 0 0 0 0 0 26231 0 0 0 0
";

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 26231 0 0 0 0 0 26231 24718 0 0 0 0 0 0 0 0 0 24718
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
IcmpMsg: InType3
IcmpMsg: 1
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 3556 3507 0 34 0 26122 24643 0 0 36 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 108 0 19 109 19 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

    const SNMP6: &str = "\
Ip6InReceives                   \t12
Udp6InDatagrams                 \t5
Udp6NoPorts                     \t1
Udp6RcvbufErrors                \t7
UdpLite6InDatagrams             \t0
";

    pub(crate) const SOCKSTAT: &str = "\
sockets: used 15
TCP: inuse 1 orphan 0 tw 3 alloc 1 mem 221
UDP: inuse 2 mem 4
UDPLITE: inuse 0
RAW: inuse 0
FRAG: inuse 0 memory 0
";

    const PROTOCOLS: &str = "\
protocol  size sockets  memory press maxhdr  slab module     cl co di ac io in de sh ss gs se re bi br ha uh gp em
UDPv6     1472      0       0   NI       0   yes  kernel      y  y  y  n  y  y  y  n  y  y  y  y  n  n  y  y  y  n
TCPv6     2432      0     221   no     192   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y
UDP       1344      0       0   NI       0   yes  kernel      y  y  y  n  y  y  y  n  y  y  y  y  n  n  y  y  y  n
TCP       2304      1     221   yes    192   yes  kernel      y  y  y  y  y  y  y  y  y  y  y  y  n  y  y  y  y  y
";

    /// The recorded files, parsed (for other modules' tests too).
    pub(crate) fn recorded() -> Counters {
        let mut groups = parse_pairs(NETSTAT);
        groups.extend(parse_pairs(SNMP));
        groups.extend(parse_snmp6(SNMP6));
        groups.retain(|g| GROUPS.contains(&g.name.as_str()));
        Counters { groups }
    }

    #[test]
    fn recorded_files_parse() {
        let c = recorded();
        let names: Vec<&str> = c.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["TcpExt", "Tcp", "Udp", "Udp6"]);
        assert_eq!(c.get("TcpExt", "ListenOverflows"), Some(20));
        assert_eq!(c.get("TcpExt", "ListenDrops"), Some(21));
        assert_eq!(c.get("TcpExt", "TW"), Some(3520));
        assert_eq!(c.get("Tcp", "MaxConn"), Some(-1), "signed, as the kernel prints it");
        assert_eq!(c.get("Tcp", "OutRsts"), Some(36));
        assert_eq!(c.get("Udp", "RcvbufErrors"), Some(19));
        assert_eq!(c.get("Udp6", "RcvbufErrors"), Some(7));
        assert_eq!(c.get("Udp6", "InDatagrams"), Some(5));
        assert_eq!(c.group("Tcp").unwrap().values.len(), 15);
        assert_eq!(c.group("TcpExt").unwrap().values[0].0, "SyncookiesSent", "the kernel's order");
        assert_eq!(c.get("Udp", "Nope"), None);
        // IcmpMsg's one-word pair and UdpLite are read but not kept.
        assert!(parse_pairs(SNMP).iter().any(|g| g.name == "IcmpMsg" && g.get("InType3") == Some(1)));
    }

    #[test]
    fn deltas_and_json() {
        let before = recorded();
        let mut after = before.clone();
        for g in &mut after.groups {
            for (n, v) in &mut g.values {
                if n == "ListenOverflows" {
                    *v += 5;
                }
            }
        }
        after.groups[0].values.push(("New".into(), 1));
        let d = after.minus(&before);
        assert_eq!(d.get("TcpExt", "ListenOverflows"), Some(5));
        assert_eq!(d.get("TcpExt", "ListenDrops"), Some(0));
        assert_eq!(d.get("TcpExt", "New"), None, "not in the first sample");
        let json = serde_json::to_string(&before).unwrap();
        assert!(json.starts_with(r#"{"TcpExt":{"SyncookiesSent":0,"#), "{json}");
        assert!(json.contains(r#""Tcp":{"RtoAlgorithm":1,"RtoMin":200,"RtoMax":120000,"MaxConn":-1,"#), "{json}");
        let back: Counters = serde_json::from_str(&json).unwrap();
        assert_eq!(back, before, "the kernel's order survives the round trip");
    }

    #[test]
    fn malformed_pairs_are_skipped() {
        // Names and values of different lengths or groups; a value that is
        // not a number; a missing value line.
        let text = "Tcp: A B\nTcp: 1\nUdp: A B\nTcp: 1 2\nIp: A B\nIp: 1 x\nTcpExt: A\n";
        let g = parse_pairs(text);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0], Group { name: "Ip".into(), values: vec![("A".into(), 1)] });
        assert_eq!(value("18446744073709551615"), Some(i64::MAX));
        assert_eq!(value("-1"), Some(-1));
        assert!(parse_pairs("").is_empty() && parse_snmp6("").is_empty());
        assert!(parse_snmp6("Udp6 3\nUdp6X 1 2\n").is_empty());
    }

    #[test]
    fn sockstat_and_pressure() {
        let s = parse_sockstat(SOCKSTAT);
        assert_eq!(
            (s.sockets_used, s.tcp_inuse, s.tcp_orphan, s.tcp_time_wait, s.tcp_alloc, s.tcp_mem_pages),
            (Some(15), Some(1), Some(0), Some(3), Some(1), Some(221))
        );
        assert_eq!((s.udp_inuse, s.udp_mem_pages, s.tcp6_inuse), (Some(2), Some(4), None));
        let six = parse_sockstat("TCP6: inuse 4\nUDP6: inuse 5\nRAW6: inuse 0\n");
        assert_eq!((six.tcp6_inuse, six.udp6_inuse), (Some(4), Some(5)));
        assert_eq!(parse_protocols_pressure(PROTOCOLS, "TCP"), Some(true));
        assert_eq!(parse_protocols_pressure(PROTOCOLS, "TCPv6"), Some(false));
        assert_eq!(parse_protocols_pressure(PROTOCOLS, "UDP"), None, "NI");
        assert_eq!(parse_protocols_pressure(PROTOCOLS, "SCTP"), None);
        assert_eq!(parse_protocols_pressure("", "TCP"), None);
    }

    #[test]
    fn this_namespace_reads() {
        let (c, errors) = Counters::read();
        assert!(errors.is_empty(), "{errors:?}");
        for g in ["TcpExt", "Tcp", "Udp"] {
            assert!(c.group(g).is_some_and(|g| !g.values.is_empty()), "{g} in {c:?}");
        }
        assert!(c.get("TcpExt", "ListenOverflows").is_some_and(|v| v >= 0));
        let s = Sockstat::read();
        assert!(s.sockets_used.is_some() && s.tcp_inuse.is_some() && s.tcp_memory_pressure.is_some(), "{s:?}");
    }

    proptest::proptest! {
        /// Any bytes, as text: the parsers take them without panicking.
        #[test]
        fn random_text_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_pairs(&text);
            let _ = parse_snmp6(&text);
            let _ = parse_sockstat(&text);
            let _ = parse_protocols_pressure(&text, "TCP");
        }

        /// Text made of the files' own tokens (names, colons, numbers, line
        /// ends) in any order: what parses is consistent.
        #[test]
        fn shuffled_tokens_parse_consistently(tokens in proptest::collection::vec(
            proptest::sample::select(vec!["Tcp:", "TcpExt:", "Udp:", " ", "\n", "A", "B", "1", "-1", "x", "Udp6A", "7", ":", "TCP:", "inuse", "mem"]),
            0..300,
        )) {
            let text: String = tokens.concat();
            for g in parse_pairs(&text) {
                proptest::prop_assert!(!g.name.is_empty());
            }
            let _ = parse_snmp6(&text);
            let _ = parse_sockstat(&text);
        }
    }
}
