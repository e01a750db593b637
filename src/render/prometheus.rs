//! Prometheus text exposition format (0.0.4), for node_exporter's textfile
//! collector: `listen --format prometheus` and `stats --format prometheus`.
//! The metrics and their labels are documented in docs/prometheus.md; every
//! family is a gauge, or a counter named `_total` (the kernel's counters),
//! written with HELP and TYPE lines, without timestamps (the textfile
//! collector rejects them).
//!
//! Label values are escaped as the format requires (`\`, `"` and newline);
//! process names are otherwise written as the kernel reports them.

use std::collections::HashSet;
use std::io::{self, Write};

use crate::domain::stats::{Stats, WATCHED};
use crate::model::{Family, Proto, Socket, State};

/// Labels of one sample, in order.
type Labels = Vec<(&'static str, String)>;

/// Writes one gauge family: HELP, TYPE gauge, then the samples.
fn family(w: &mut impl Write, name: &str, help: &str, samples: &[(Labels, String)]) -> io::Result<()> {
    typed_family(w, name, "gauge", help, samples)
}

/// Writes one metric family of a type (`gauge`, `counter`).
fn typed_family(
    w: &mut impl Write,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Labels, String)],
) -> io::Result<()> {
    writeln!(w, "# HELP {name} {}", escape_help(help))?;
    writeln!(w, "# TYPE {name} {kind}")?;
    for (labels, value) in samples {
        w.write_all(name.as_bytes())?;
        if !labels.is_empty() {
            w.write_all(b"{")?;
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                write!(w, "{k}=\"{}\"", escape_label(v))?;
            }
            w.write_all(b"}")?;
        }
        writeln!(w, " {value}")?;
    }
    Ok(())
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn family_label(f: Family) -> &'static str {
    f.as_str()
}

/// The `netns` label: the namespace's name (or `net:[INODE]`) with
/// `--netns`/`--all-netns`, empty for portctl's own namespace.
fn netns_label(s: &Socket) -> String {
    s.netns.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// `portctl_listen_info`, one series per (listening socket, process name,
/// user): a pre-fork server's workers share one series, and pids are left
/// out (they change on every restart). Sockets identical in every label
/// (SO_REUSEPORT groups) share one series too. No visible owner: process and
/// user are empty, and `portctl_listen_owners_hidden` counts the sockets whose
/// owners were hidden from us.
pub fn listen(w: &mut impl Write, sockets: &[Socket]) -> io::Result<()> {
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut info: Vec<(Labels, String)> = Vec::new();
    // (netns, hidden count), in order of appearance; the current namespace always.
    let mut hidden: Vec<(String, usize)> = Vec::new();
    for s in sockets {
        let netns = netns_label(s);
        let slot = match hidden.iter().position(|(n, _)| *n == netns) {
            Some(i) => i,
            None => {
                hidden.push((netns.clone(), 0));
                hidden.len() - 1
            }
        };
        if s.owners_hidden {
            hidden[slot].1 += 1;
        }
        let mut owners: Vec<(&str, &str)> = Vec::new();
        for o in s.owners.iter() {
            if !owners.contains(&(&*o.name, &*o.user)) {
                owners.push((&o.name, &o.user));
            }
        }
        if owners.is_empty() {
            owners.push(("", ""));
        }
        for (process, user) in owners {
            let labels: Labels = vec![
                ("proto", s.proto.as_str().to_string()),
                ("family", family_label(s.family).to_string()),
                // Unix sockets: the path, or `@name` (NULs as `@`, as ss shows them).
                ("addr", s.local_ip().map_or_else(|| s.local.to_string(), |e| e.addr.to_string())),
                ("port", s.local_ip().map_or_else(String::new, |e| e.port.to_string())),
                ("exposure", s.exposure.as_str().to_string()),
                ("process", process.to_string()),
                ("user", user.to_string()),
                ("netns", netns.clone()),
            ];
            if seen.insert(labels.clone()) {
                info.push((labels, "1".to_string()));
            }
        }
    }
    if hidden.is_empty() {
        hidden.push((String::new(), 0));
    }
    family(
        w,
        "portctl_listen_info",
        "A TCP listener, bound UDP socket or unix listener (listen -x) and a process holding it: one series \
         per socket, process name and user (process and user are empty when no holder is visible). Always 1.",
        &info,
    )?;
    let hidden: Vec<(Labels, String)> = hidden.into_iter().map(|(n, c)| (vec![("netns", n)], c.to_string())).collect();
    family(
        w,
        "portctl_listen_owners_hidden",
        "Listening sockets whose holders portctl could not see (not root: grant CAP_DAC_READ_SEARCH and \
         CAP_SYS_PTRACE, or run as root).",
        &hidden,
    )?;
    listen_queues(w, sockets)
}

/// The labels of a socket for the per-socket families (no process: one
/// series per socket, not per holder).
fn socket_labels(s: &Socket) -> Labels {
    vec![
        ("proto", s.proto.as_str().to_string()),
        ("family", family_label(s.family).to_string()),
        ("addr", s.local_ip().map_or_else(|| s.local.to_string(), |e| e.addr.to_string())),
        ("port", s.local_ip().map_or_else(String::new, |e| e.port.to_string())),
        ("netns", netns_label(s)),
    ]
}

/// Adds `value` to the sample with these labels, or appends one: sockets
/// identical in every label (SO_REUSEPORT groups) are summed.
fn add(samples: &mut Vec<(Labels, u64)>, labels: Labels, value: u64) {
    match samples.iter_mut().find(|(l, _)| *l == labels) {
        Some((_, v)) => *v = v.saturating_add(value),
        None => samples.push((labels, value)),
    }
}

/// `portctl_listen_accept_queue_length` and `_backlog` per TCP listener,
/// and `portctl_udp_socket_drops_total` per UDP socket.
fn listen_queues(w: &mut impl Write, sockets: &[Socket]) -> io::Result<()> {
    let mut queued = Vec::new();
    let mut backlog = Vec::new();
    let mut drops = Vec::new();
    for s in sockets {
        if let Some(q) = s.accept_queue().filter(|_| s.proto == Proto::Tcp && s.state == State::Listen) {
            add(&mut queued, socket_labels(s), q.queued.into());
            add(&mut backlog, socket_labels(s), q.backlog.into());
        }
        if let Some(m) = s.skmem().filter(|_| s.proto == Proto::Udp) {
            add(&mut drops, socket_labels(s), m.drops.into());
        }
    }
    let text =
        |v: Vec<(Labels, u64)>| -> Vec<(Labels, String)> { v.into_iter().map(|(l, n)| (l, n.to_string())).collect() };
    family(
        w,
        "portctl_listen_accept_queue_length",
        "Connections waiting in a TCP listener's accept queue (ss Recv-Q); above the backlog the kernel drops new \
         connections. SO_REUSEPORT listeners with the same labels are summed.",
        &text(queued),
    )?;
    family(
        w,
        "portctl_listen_accept_queue_backlog",
        "A TCP listener's backlog (ss Send-Q): listen()'s, capped by net.core.somaxconn. SO_REUSEPORT listeners \
         with the same labels are summed.",
        &text(backlog),
    )?;
    typed_family(
        w,
        "portctl_udp_socket_drops_total",
        "counter",
        "Datagrams a bound UDP socket dropped since it was opened (its receive buffer was full: the process reads \
         too slowly).",
        &text(drops),
    )
}

/// `portctl_nat_published_info`, one series per NAT record (a port range a
/// rule publishes on this host, and where it sends it), and
/// `portctl_nat_rules_read` per namespace: 1 when every rule could be
/// read, 0 when some could not (no CAP_NET_ADMIN, a tool missing or slow),
/// so that an empty `portctl_nat_published_info` can be told from an
/// unknown one.
pub fn nat(w: &mut impl Write, rules: &[crate::nat::NatRule], read: &[(String, bool)]) -> io::Result<()> {
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut info: Vec<(Labels, String)> = Vec::new();
    for r in rules.iter().filter(|r| r.on_this_host()) {
        let container = r
            .container
            .as_ref()
            .and_then(|c| c.name.clone().or_else(|| c.id.as_deref().map(crate::model::short_id)))
            .unwrap_or_default();
        let labels: Labels = vec![
            ("proto", r.proto.clone().unwrap_or_default()),
            ("family", r.family.map(|f| f.as_str().to_string()).unwrap_or_default()),
            ("addr", r.matches.dst.join(",")),
            ("port", r.ports.map(|p| p.to_string()).unwrap_or_default()),
            ("exposure", r.exposure.as_str().to_string()),
            ("action", r.action.as_str().to_string()),
            ("target", r.target()),
            ("owner", r.owner.clone().unwrap_or_default()),
            ("container", container),
            ("service", r.service.clone().unwrap_or_default()),
            ("netns", r.netns.as_ref().map(ToString::to_string).unwrap_or_default()),
        ];
        if seen.insert(labels.clone()) {
            info.push((labels, "1".to_string()));
        }
    }
    family(
        w,
        "portctl_nat_published_info",
        "A port range a NAT rule publishes on this host (DNAT, REDIRECT, TPROXY: Docker, podman, \
         Kubernetes, hand-written) and where it sends the connections. Always 1.",
        &info,
    )?;
    let read: Vec<(Labels, String)> =
        read.iter().map(|(n, ok)| (vec![("netns", n.clone())], if *ok { "1" } else { "0" }.to_string())).collect();
    family(
        w,
        "portctl_nat_rules_read",
        "1 when portctl could read every NAT rule of the namespace, 0 when it could not (no CAP_NET_ADMIN, \
         nft or iptables missing or too slow): then portctl_nat_published_info may be incomplete.",
        &read,
    )
}

/// `portctl_sockets`, `portctl_ephemeral_ports_usable`,
/// `portctl_ephemeral_ports_used_ratio` and `portctl_close_wait_sockets`
/// from the numbers `stats` computed. Families whose data is missing (sysctls
/// unreadable, `--no-owners`) have HELP and TYPE but no samples.
pub fn stats(w: &mut impl Write, st: &Stats) -> io::Result<()> {
    let mut sockets = Vec::new();
    for c in &st.states {
        for (fam, n) in [(Family::Ipv4, c.ipv4), (Family::Ipv6, c.ipv6)] {
            let labels = vec![
                ("proto", c.proto.as_str().to_string()),
                ("family", family_label(fam).to_string()),
                ("state", c.state.as_str().to_string()),
            ];
            sockets.push((labels, n.to_string()));
        }
    }
    family(
        w,
        "portctl_sockets",
        "TCP and UDP sockets per protocol, family and state (every state, zeros included).",
        &sockets,
    )?;

    let (usable, ratios) = match &st.ephemeral {
        None => (Vec::new(), Vec::new()),
        Some(e) => {
            let ratios = e
                .busiest
                .iter()
                .map(|d| {
                    let ratio = if e.usable == 0 { 1.0 } else { f64::from(d.ports) / f64::from(e.usable) };
                    let labels = vec![
                        ("proto", d.proto.as_str().to_string()),
                        ("remote_addr", d.remote.addr.to_string()),
                        ("remote_port", d.remote.port.to_string()),
                    ];
                    (labels, ratio.to_string())
                })
                .collect();
            (vec![(Vec::new(), e.usable.to_string())], ratios)
        }
    };
    family(
        w,
        "portctl_ephemeral_ports_usable",
        "Local ports connect() may pick: net.ipv4.ip_local_port_range less ip_local_reserved_ports.",
        &usable,
    )?;
    family(
        w,
        "portctl_ephemeral_ports_used_ratio",
        "Share of the usable ephemeral ports that sockets to one destination hold (TIME_WAIT included); \
         the busiest destinations only (stats --top, default 10).",
        &ratios,
    )?;

    let mut close_wait: Vec<(Labels, String)> = Vec::new();
    if let Some(cw) = &st.close_wait {
        // Per process name and user (pids churn); a socket shared by several
        // processes counts for each, as in `stats --json`.
        let mut by: Vec<((&str, &str), usize)> = Vec::new();
        for p in &cw.processes {
            match by.iter_mut().find(|(k, _)| *k == (p.name.as_str(), p.user.as_str())) {
                Some((_, n)) => *n += p.count,
                None => by.push(((&p.name, &p.user), p.count)),
            }
        }
        if cw.unowned > 0 {
            by.push((("", ""), cw.unowned));
        }
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        close_wait = by
            .into_iter()
            .map(|((process, user), n)| {
                (vec![("process", process.to_string()), ("user", user.to_string())], n.to_string())
            })
            .collect();
    }
    family(
        w,
        "portctl_close_wait_sockets",
        "CLOSE_WAIT sockets per holding process name and user (the peer closed, the process has not): a \
         steady rise is a descriptor leak. process=\"\" counts those with no visible holder.",
        &close_wait,
    )?;
    let unix: Vec<(Labels, String)> = st
        .unix
        .iter()
        .flat_map(|u| &u.states)
        .map(|c| {
            (vec![("type", c.kind.as_str().to_string()), ("state", c.state.as_str().to_string())], c.count.to_string())
        })
        .collect();
    family(
        w,
        "portctl_unix_sockets",
        "Unix sockets per type (stream, dgram, seqpacket) and state (every pair, zeros included).",
        &unix,
    )?;
    kernel(w, st)
}

/// The kernel's counters of [`WATCHED`] as `_total` counters (UDP's with
/// a `family` label: Udp is IPv4, Udp6 IPv6), and socket memory gauges.
/// Without counters (unreadable), each family has HELP and TYPE only.
fn kernel(w: &mut impl Write, st: &Stats) -> io::Result<()> {
    let k = st.kernel.as_ref();
    for watched in WATCHED {
        let mut samples = Vec::new();
        for group in watched.groups {
            let Some(v) = k.and_then(|k| k.counters.get(group, watched.name)) else { continue };
            let labels = match *group {
                "Udp" => vec![("family", "ipv4".to_string())],
                "Udp6" => vec![("family", "ipv6".to_string())],
                _ => Vec::new(),
            };
            samples.push((labels, v.max(0).to_string()));
        }
        let help = format!("{} {}: {}.", watched.groups.join("/"), watched.name, watched.means);
        typed_family(w, watched.metric, "counter", &help, &samples)?;
    }
    let s = k.map(|k| &k.sockstat);
    let one =
        |v: Option<u64>| -> Vec<(Labels, String)> { v.map(|v| (Vec::new(), v.to_string())).into_iter().collect() };
    family(
        w,
        "portctl_tcp_memory_pages",
        "Pages of memory TCP uses, host-wide (/proc/net/sockstat).",
        &one(s.and_then(|s| s.tcp_mem_pages)),
    )?;
    let limits: Vec<(Labels, String)> = k
        .and_then(|k| k.tcp_mem)
        .map(|m| {
            [("min", m.min), ("pressure", m.pressure), ("max", m.max)]
                .into_iter()
                .map(|(name, v)| (vec![("limit", name.to_string())], v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    family(
        w,
        "portctl_tcp_memory_limit_pages",
        "net.ipv4.tcp_mem in pages: above pressure TCP shrinks buffers, at max it drops data and resets connections.",
        &limits,
    )?;
    family(
        w,
        "portctl_tcp_memory_pressure",
        "1 when the kernel says TCP is under memory pressure (/proc/net/protocols), else 0.",
        &one(s.and_then(|s| s.tcp_memory_pressure).map(u64::from)),
    )?;
    family(
        w,
        "portctl_tcp_orphan_sockets",
        "TCP sockets no process holds that are still closing, host-wide.",
        &one(s.and_then(|s| s.tcp_orphan)),
    )?;
    family(
        w,
        "portctl_tcp_orphan_sockets_limit",
        "net.ipv4.tcp_max_orphans: past it the kernel resets orphaned connections.",
        &one(k.and_then(|k| k.tcp_max_orphans)),
    )?;
    family(
        w,
        "portctl_tcp_time_wait_sockets_limit",
        "net.ipv4.tcp_max_tw_buckets: past it connections close without TIME_WAIT (TCPTimeWaitOverflow).",
        &one(k.and_then(|k| k.tcp_max_tw_buckets)),
    )?;
    family(
        w,
        "portctl_udp_memory_pages",
        "Pages of memory UDP uses, host-wide (/proc/net/sockstat).",
        &one(s.and_then(|s| s.udp_mem_pages)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::stats::{CloseWait, ProcessCount};

    fn socket(json: &str) -> Socket {
        serde_json::from_str(json).unwrap()
    }

    const DB: &str = r#"{"proto":"tcp","family":"ipv4","state":"listen","local":{"addr":"0.0.0.0","port":5432},
        "remote":null,"inode":1,"uid":0,"v6only":null,"exposure":"wildcard","interface":null,"service":"postgresql",
        "recv_q":0,"send_q":128,"timer":null,"owners":[
          {"pid":10,"name":"postgres","user":"postgres","fd":5,"cmdline":"postgres"},
          {"pid":11,"name":"postgres","user":"postgres","fd":5,"cmdline":"postgres"},
          {"pid":12,"name":"we\"ird\\na\nme","user":"root","fd":7,"cmdline":"x"}],
        "owners_hidden":false}"#;

    const HIDDEN: &str = r#"{"proto":"udp","family":"ipv6","state":"unconn","local":{"addr":"::1","port":53},
        "remote":null,"inode":2,"uid":0,"v6only":true,"exposure":"loopback","interface":null,"service":null,
        "recv_q":0,"send_q":0,"timer":null,"owners":[],"owners_hidden":true}"#;

    #[test]
    fn label_escaping() {
        for (raw, want) in [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
            ("\\n", "\\\\n"),
            ("ü\t", "ü\t"),
        ] {
            assert_eq!(escape_label(raw), want, "{raw:?}");
        }
        assert_eq!(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
    }

    #[test]
    fn listen_series_per_process_name_and_hidden_owners() {
        let db = socket(DB);
        // the same socket twice (as a SO_REUSEPORT twin) adds no series
        let v = vec![db.clone(), db, socket(HIDDEN)];
        let mut out = Vec::new();
        listen(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "\
portctl_listen_info{proto=\"tcp\",family=\"ipv4\",addr=\"0.0.0.0\",port=\"5432\",exposure=\"wildcard\",process=\"postgres\",user=\"postgres\",netns=\"\"} 1
portctl_listen_info{proto=\"tcp\",family=\"ipv4\",addr=\"0.0.0.0\",port=\"5432\",exposure=\"wildcard\",process=\"we\\\"ird\\\\na\\nme\",user=\"root\",netns=\"\"} 1
portctl_listen_info{proto=\"udp\",family=\"ipv6\",addr=\"::1\",port=\"53\",exposure=\"loopback\",process=\"\",user=\"\",netns=\"\"} 1
";
        let samples: String =
            text.lines().filter(|l| l.starts_with("portctl_listen_info")).map(|l| format!("{l}\n")).collect();
        assert_eq!(samples, want);
        assert!(text.contains("# TYPE portctl_listen_info gauge\n"));
        assert!(text.contains("\nportctl_listen_owners_hidden{netns=\"\"} 1\n"), "{text}");
    }

    #[test]
    fn empty_listen_still_says_nothing_is_hidden() {
        let mut out = Vec::new();
        listen(&mut out, &[]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("# TYPE portctl_listen_owners_hidden gauge\nportctl_listen_owners_hidden{netns=\"\"} 0\n#"),
            "{text}"
        );
        // The per-socket families are there, empty.
        for f in ["portctl_listen_accept_queue_length", "portctl_listen_accept_queue_backlog"] {
            assert!(text.contains(&format!("# TYPE {f} gauge\n")), "{text}");
        }
        assert!(text.ends_with("# TYPE portctl_udp_socket_drops_total counter\n"), "{text}");
    }

    #[test]
    fn stats_families() {
        use crate::domain::stats::{counts, ephemeral_usage, time_wait_peers, time_wait_top};
        use crate::model::PortRange;
        let mut v = vec![socket(HIDDEN)];
        let mut tw = socket(DB);
        tw.state = crate::model::State::TimeWait;
        tw.local = crate::model::Endpoint { addr: "0.0.0.0".parse().unwrap(), port: 40000 }.into();
        tw.remote = Some(crate::model::Endpoint { addr: "10.0.0.9".parse().unwrap(), port: 443 }.into());
        v.push(tw);
        let (protocols, states) = counts(&v);
        let sys = crate::sysctl::Sysctls::unknown("test".into());
        let st = Stats {
            schema_version: 1,
            total: v.len(),
            protocols,
            states,
            ephemeral: Some(ephemeral_usage(&v, PortRange { lo: 40000, hi: 40003 }, &[], 10)),
            time_wait_top: time_wait_top(&v, 10),
            time_wait_peers: time_wait_peers(&v, PortRange { lo: 40000, hi: 40003 }, 10),
            listeners: crate::domain::stats::listen_queues(&v, &sys, |_| None),
            udp_drops: Vec::new(),
            kernel: None,
            close_wait: Some(CloseWait {
                total: 4,
                unowned: 1,
                processes: vec![
                    ProcessCount { pid: 1, name: "app".into(), user: "u".into(), count: 2 },
                    ProcessCount { pid: 2, name: "app".into(), user: "u".into(), count: 1 },
                ],
            }),
            unix: Some(crate::domain::stats::unix_counts(&[unix_listener()])),
        };
        let mut out = Vec::new();
        stats(&mut out, &st).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "portctl_sockets{proto=\"tcp\",family=\"ipv4\",state=\"time_wait\"} 1",
            "portctl_sockets{proto=\"udp\",family=\"ipv6\",state=\"unconn\"} 1",
            "portctl_sockets{proto=\"tcp\",family=\"ipv6\",state=\"listen\"} 0",
            "portctl_ephemeral_ports_usable 4",
            "portctl_ephemeral_ports_used_ratio{proto=\"tcp\",remote_addr=\"10.0.0.9\",remote_port=\"443\"} 0.25",
            "portctl_close_wait_sockets{process=\"app\",user=\"u\"} 3",
            "portctl_close_wait_sockets{process=\"\",user=\"\"} 1",
            "portctl_unix_sockets{type=\"stream\",state=\"listen\"} 1",
            "portctl_unix_sockets{type=\"dgram\",state=\"unconn\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("portctl_sockets{")).count(), 26);
        assert_eq!(text.lines().filter(|l| l.starts_with("portctl_unix_sockets{")).count(), 12);
    }

    fn unix_listener() -> Socket {
        use crate::model::{Addr, Detail, Family, Proto, State, UnixDetail, UnixName, UnixType};
        let mut s = Socket::new(
            Proto::Unix,
            Family::Unix,
            State::Listen,
            Addr::from_unix(UnixName::path("/run/a\"b.sock")),
            None,
        );
        s.inode = 5;
        s.detail = Some(Box::new(Detail::Unix(UnixDetail { kind: UnixType::Stream, vfs: None, pending: vec![] })));
        s
    }

    #[test]
    fn unix_listeners_are_listen_info_series() {
        let mut s = unix_listener();
        s.owners = vec![crate::model::Owner {
            pid: 3,
            name: "dockerd".into(),
            user: "root".into(),
            fd: 4,
            tid: None,
            cmdline: "dockerd".into(),
            context: None,
        }]
        .into();
        let mut abs = unix_listener();
        abs.local = crate::model::Addr::from_unix(crate::model::UnixName::abstract_name("bus\0x"));
        let mut out = Vec::new();
        listen(&mut out, &[s, abs]).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "portctl_listen_info{proto=\"unix\",family=\"unix\",addr=\"/run/a\\\"b.sock\",port=\"\",exposure=\"loopback\",process=\"dockerd\",user=\"root\",netns=\"\"} 1",
            "portctl_listen_info{proto=\"unix\",family=\"unix\",addr=\"@bus@x\",port=\"\",exposure=\"loopback\",process=\"\",user=\"\",netns=\"\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn listen_queue_gauges_sum_reuseport_twins_and_udp_drops_count() {
        let mut v = crate::domain::stats::tests::queues();
        let twin = v[3].clone(); // 0.0.0.0:443, 3 of 8: an SO_REUSEPORT twin
        v.push(twin);
        let mut out = Vec::new();
        listen(&mut out, &v).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "portctl_listen_accept_queue_length{proto=\"tcp\",family=\"ipv4\",addr=\"127.0.0.1\",port=\"8080\",netns=\"\"} 2",
            "portctl_listen_accept_queue_backlog{proto=\"tcp\",family=\"ipv4\",addr=\"127.0.0.1\",port=\"8080\",netns=\"\"} 1",
            "portctl_listen_accept_queue_length{proto=\"tcp\",family=\"ipv4\",addr=\"0.0.0.0\",port=\"443\",netns=\"\"} 6",
            "portctl_listen_accept_queue_backlog{proto=\"tcp\",family=\"ipv4\",addr=\"0.0.0.0\",port=\"443\",netns=\"\"} 16",
            "portctl_udp_socket_drops_total{proto=\"udp\",family=\"ipv4\",addr=\"127.0.0.1\",port=\"5353\",netns=\"\"} 19",
            "portctl_udp_socket_drops_total{proto=\"udp\",family=\"ipv4\",addr=\"0.0.0.0\",port=\"53\",netns=\"\"} 0",
            "# TYPE portctl_udp_socket_drops_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("portctl_listen_accept_queue_length{")).count(), 4);
        assert_eq!(text.lines().filter(|l| l.starts_with("portctl_udp_socket_drops_total{")).count(), 3);
    }

    #[test]
    fn kernel_counters_are_total_counters() {
        let sys = crate::sysctl::Sysctls::unknown("test".into());
        let mut st = crate::domain::stats::summarise(&[], &sys, 10);
        // Unreadable counters: every family still has HELP and TYPE.
        let mut out = Vec::new();
        stats(&mut out, &st).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("# TYPE portctl_tcp_listen_overflows_total counter\n# HELP"), "{text}");
        assert!(!text.contains("\nportctl_tcp_listen_overflows_total "), "{text}");
        let counters = crate::counters::tests::recorded();
        let sockstat = crate::counters::parse_sockstat(crate::counters::tests::SOCKSTAT);
        st.kernel = Some(crate::domain::stats::kernel(counters, None, sockstat, &sys));
        let mut out = Vec::new();
        stats(&mut out, &st).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "# HELP portctl_tcp_listen_overflows_total TcpExt ListenOverflows: a listener's accept queue was full: connections were dropped (the process does not accept() fast enough).",
            "# TYPE portctl_tcp_listen_overflows_total counter",
            "portctl_tcp_listen_overflows_total 20",
            "portctl_tcp_listen_drops_total 21",
            "portctl_tcp_out_rsts_total 36",
            "portctl_udp_rcvbuf_errors_total{family=\"ipv4\"} 19",
            "portctl_udp_rcvbuf_errors_total{family=\"ipv6\"} 7",
            "portctl_tcp_memory_pages 221",
            "portctl_tcp_orphan_sockets 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        // Every counter family ends in _total; no gauge does.
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[2].ends_with("_total"), f[3] == "counter", "{l}");
        }
    }
}
