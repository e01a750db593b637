//! Output: each format is a function from records to a writer; nothing here
//! gathers data. Terminal output (tables, text) is escaped here and only
//! here ([`table`] escapes every cell, [`Style`] every line); JSON carries
//! raw strings.

pub mod by_process;
pub mod close;
pub mod columns;
pub mod conns;
pub mod json;
pub mod kill;
pub mod listen;
pub mod prometheus;
pub mod sanitize;
pub mod stats;
pub mod table;
pub mod watch;
pub mod who;

use std::collections::BTreeSet;
use std::io::{self, IsTerminal, Write};

use comfy_table::Color;

use crate::model::{Owner, Socket};

pub use crate::text::duration_ms;

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    /// One JSON array (socket lists) or one object (`who`, `stats`, `kill`).
    Json,
    /// One JSON record per line.
    Jsonl,
    /// The Prometheus text exposition format (`listen`, `stats`).
    Prometheus,
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    /// Tables: the header row.
    pub header: bool,
    /// Bold and colour on terminal output.
    pub color: bool,
    /// Stdout is a terminal: tables may use its width.
    pub terminal: bool,
}

impl Output {
    /// For stdout as it is: `color` None is "auto" (a terminal, and no
    /// `NO_COLOR` in the environment).
    pub fn new(format: Format, header: bool, color: Option<bool>) -> Output {
        let terminal = std::io::stdout().is_terminal();
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = color.unwrap_or(terminal && !no_color_env);
        Output { format, header, color, terminal }
    }

    /// A plain table, not on a terminal (tests, fixtures).
    pub fn plain(format: Format) -> Output {
        Output { format, header: true, color: false, terminal: false }
    }

    pub fn is_json(&self) -> bool {
        matches!(self.format, Format::Json | Format::Jsonl)
    }

    pub fn style(&self) -> Style {
        Style { color: self.color }
    }
}

/// How text for people (`who`, `stats`, `kill`, `watch` headings, stderr)
/// is written: every line escaped for the terminal, headings bold when
/// colour is on.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Writes one line, escaped.
    pub fn line(&self, w: &mut dyn Write, text: &str) -> io::Result<()> {
        writeln!(w, "{}", sanitize::escape(text))
    }

    /// Writes one heading line: escaped, bold when colour is on.
    pub fn heading(&self, w: &mut dyn Write, text: &str) -> io::Result<()> {
        writeln!(w, "{}", self.bold(text))
    }

    /// `text` escaped and, when colour is on, bold.
    pub fn bold(&self, text: &str) -> String {
        let t = sanitize::escape(text);
        if self.color { format!("\x1b[1m{t}\x1b[0m") } else { t.into_owned() }
    }

    /// `text` escaped and, when colour is on, in `color`.
    pub fn paint(&self, text: &str, color: Color) -> String {
        let t = sanitize::escape(text);
        if self.color { format!("\x1b[{}m{t}\x1b[39m", table::ansi(color)) } else { t.into_owned() }
    }
}

/// `--pids`: one pid a line, nothing else.
pub fn pids(w: &mut impl Write, pids: &[u32]) -> io::Result<()> {
    let mut buf = itoa::Buffer::new();
    for &p in pids {
        w.write_all(buf.format(p).as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Address column text: `127.0.0.1`, `[::]`, `[::ffff:10.0.0.1]`; unix
/// names and packet ends as [`crate::model::Addr`] shows them.
pub fn addr(a: &crate::model::Addr) -> String {
    match a.ip() {
        Some(e) => match e.addr {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        },
        None => a.to_string(),
    }
}

/// `tcp`, `tcp6`, or `tcp46` for a dual-stack `[::]` socket that takes IPv4
/// too (the BSD netstat convention); `mptcp` for an MPTCP subflow; unix and
/// packet sockets by type as `ss` names them (`u_str`, `u_dgr`, `u_seq`,
/// `p_raw`, `p_dgr`).
pub fn proto_label(s: &Socket) -> String {
    use crate::model::{PacketType, Proto};
    match s.proto {
        Proto::Unix => return s.unix().map_or("unix", |u| u.kind.ss_name()).to_string(),
        Proto::Packet => {
            return match s.packet().map(|p| p.kind) {
                Some(PacketType::Dgram) => "p_dgr",
                _ => "p_raw",
            }
            .to_string();
        }
        _ => {}
    }
    let suffix = match s.family {
        crate::model::Family::Ipv6 if s.is_dual_stack() => "46",
        crate::model::Family::Ipv6 => "6",
        _ => "",
    };
    let name = if s.is_mptcp() { "mptcp" } else { s.proto.as_str() };
    format!("{name}{suffix}")
}

/// A descriptor as text: `3`, or `3 of thread 6042` when it is in the table
/// of a thread that has its own (`unshare(CLONE_FILES)`).
pub fn fd_label(o: &Owner) -> String {
    match o.tid {
        Some(t) => format!("{} of thread {t}", o.fd),
        None => o.fd.to_string(),
    }
}

/// Owner columns (pid list, process names, users), de-duplicated. Hidden or
/// absent owners print as `-`.
pub fn owner_columns(s: &Socket) -> (String, String, String) {
    if s.owners.is_empty() {
        // Why nobody: hidden from portctl, or held by no process.
        let why = if s.owners_hidden { "(hidden)" } else { s.unheld.map_or("-", |u| u.label()) };
        return ("-".into(), why.into(), "-".into());
    }
    // A descriptor in a thread's own table names the thread too.
    let pids: BTreeSet<(u32, Option<u32>)> = s.owners.iter().map(|o| (o.pid, o.tid)).collect();
    let pids: Vec<String> = pids
        .iter()
        .filter(|(pid, tid)| tid.is_none() || !pids.contains(&(*pid, None)))
        .map(|(pid, tid)| match tid {
            Some(t) => format!("{pid}(tid {t})"),
            None => pid.to_string(),
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    let mut users: Vec<&str> = Vec::new();
    for o in s.owners.iter() {
        if !names.contains(&&*o.name) {
            names.push(&o.name);
        }
        if !users.contains(&&*o.user) {
            users.push(&o.user);
        }
    }
    (pids.join(","), names.join(","), users.join(","))
}

/// Adds an ACCEPT-Q column (`queued/backlog`, `full` or `near full`) when
/// some TCP listener's accept queue is full or nearly: tables stay as they
/// were until it matters. Other listeners show their numbers, other sockets
/// `-`.
pub fn accept_queue_column(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[&Socket]) {
    if !wants_accept_queue(sockets.iter().copied()) {
        return;
    }
    columns.push(table::col("ACCEPT-Q"));
    for (row, s) in rows.iter_mut().zip(sockets) {
        row.push(accept_queue_cell(s));
    }
}

/// Whether some socket's accept queue is worth a column.
pub fn wants_accept_queue<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> bool {
    sockets.into_iter().any(|s| s.accept_queue().is_some_and(|q| q.is_alarming()))
}

/// Whether some UDP socket dropped datagrams (a DROPS column).
pub fn wants_drops<'a>(sockets: impl IntoIterator<Item = &'a Socket>) -> bool {
    sockets.into_iter().any(|s| s.proto == crate::model::Proto::Udp && s.drops() > 0)
}

/// The ACCEPT-Q cell of a socket.
pub fn accept_queue_cell(s: &Socket) -> table::Styled {
    match s.accept_queue() {
        None => "-".into(),
        Some(q) => {
            let n = format!("{}/{}", q.queued, q.backlog);
            if q.full {
                table::colored(format!("{n} full"), Color::Red)
            } else if q.near_full {
                table::colored(format!("{n} near full"), Color::Yellow)
            } else {
                n.into()
            }
        }
    }
}

/// The DROPS cell of a socket.
pub fn drops_cell(s: &Socket) -> table::Styled {
    match s.skmem() {
        Some(m) if s.proto == crate::model::Proto::Udp => conns::drops_cell(m.drops),
        _ => "-".into(),
    }
}

/// Adds a DROPS column (datagrams the socket dropped, its receive buffer
/// full) when some UDP socket has dropped any; quiet otherwise.
pub fn drops_column(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[&Socket]) {
    if !wants_drops(sockets.iter().copied()) {
        return;
    }
    columns.push(table::num("DROPS"));
    for (row, s) in rows.iter_mut().zip(sockets) {
        row.push(drops_cell(s));
    }
}

/// Which table a socket goes in: each kind of socket has columns of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// TCP and UDP.
    Ip,
    /// Raw and ICMP sockets: addresses, a protocol, no port.
    Raw,
    Unix,
    Packet,
}

impl Group {
    pub fn of(s: &Socket) -> Group {
        use crate::model::Proto;
        match s.proto {
            Proto::Tcp | Proto::Udp => Group::Ip,
            Proto::Raw | Proto::Icmp => Group::Raw,
            Proto::Unix => Group::Unix,
            Proto::Packet => Group::Packet,
        }
    }
}

/// The sockets of each group present, in group order (each group in the
/// sockets' order).
pub fn groups(sockets: &[Socket]) -> Vec<(Group, Vec<&Socket>)> {
    let mut out: Vec<(Group, Vec<&Socket>)> = Vec::new();
    for s in sockets {
        let g = Group::of(s);
        match out.iter_mut().find(|(x, _)| *x == g) {
            Some((_, v)) => v.push(s),
            None => out.push((g, vec![s])),
        }
    }
    out.sort_by_key(|(g, _)| *g);
    out
}

/// The IP protocol of a raw socket by name (`/etc/protocols`' names).
pub fn ip_protocol(n: u8) -> String {
    let name = match n {
        1 => "icmp",
        2 => "igmp",
        4 => "ipencap",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        255 => "raw",
        _ => return n.to_string(),
    };
    name.to_string()
}

/// A packet socket's Ethernet protocol by name (`ETH_P_*`).
pub fn ether_protocol(p: u16) -> String {
    let name = match p {
        0x0000 => "none",
        0x0003 => "all",
        0x0004 => "802.2",
        0x0800 => "ip",
        0x0806 => "arp",
        0x86dd => "ipv6",
        0x8100 => "802.1q",
        0x8863 => "pppoe-disc",
        0x8864 => "pppoe",
        0x888e => "eapol",
        0x88cc => "lldp",
        0x88f7 => "ptp",
        _ => return format!("{p:#06x}"),
    };
    name.to_string()
}

/// The process at the other end: `curl(900)`, `nginx(812,813)`; `hidden`
/// when its holders could not be read, `-` when it is not on this host or
/// no process holds it.
pub fn peer_cell(s: &Socket) -> table::Styled {
    let Some(p) = &s.peer else { return "-".into() };
    if p.owners.is_empty() {
        return if p.owners_hidden { "hidden".into() } else { "-".into() };
    }
    let mut by_name: Vec<(&str, Vec<u32>)> = Vec::new();
    for o in p.owners.iter() {
        match by_name.iter_mut().find(|(n, _)| *n == &*o.name) {
            Some((_, pids)) => {
                if !pids.contains(&o.pid) {
                    pids.push(o.pid);
                }
            }
            None => by_name.push((&o.name, vec![o.pid])),
        }
    }
    let text: Vec<String> = by_name
        .into_iter()
        .map(|(n, pids)| format!("{n}({})", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    let ns = p.netns.as_ref().map(|n| format!("@{n}")).unwrap_or_default();
    format!("{}{ns}", text.join(",")).into()
}

/// Raw and ICMP sockets: `listen` shows where they are bound, `conns`
/// also their state and peer address.
pub fn raw_rows(sockets: &[&Socket], conns: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    use table::col;
    let mut columns = vec![col("PROTO")];
    if conns {
        columns.push(col("STATE"));
    }
    columns.push(col("LOCAL"));
    if conns {
        columns.push(col("REMOTE"));
    }
    columns.extend([col("PROTOCOL"), col("PID"), col("PROCESS"), col("USER")]);
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            let mut row: Vec<table::Styled> = vec![proto_label(s).into()];
            if conns {
                row.push(s.state.label().into());
            }
            let local = match &s.interface {
                Some(i) => format!("{}%{i}", addr(&s.local)),
                None => addr(&s.local),
            };
            row.push(local.into());
            if conns {
                row.push(s.remote.as_ref().map_or_else(|| "*".to_string(), addr).into());
            }
            row.extend([
                s.raw_protocol().map_or_else(|| "-".to_string(), ip_protocol).into(),
                pids.into(),
                names.into(),
                users.into(),
            ]);
            row
        })
        .collect();
    (columns, rows)
}

/// Packet sockets: the interface (`*`: all), the Ethernet protocol, whether
/// they made the interface promiscuous, their PACKET_MMAP rings.
pub fn packet_rows(sockets: &[&Socket]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    use table::col;
    let columns = vec![
        col("TYPE"),
        col("INTERFACE"),
        col("PROTOCOL"),
        col("PROMISC"),
        col("RINGS"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
    ];
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            let link = s.local.link();
            let iface = match (link.map_or(0, |l| l.ifindex), &s.interface) {
                (0, _) => "*".to_string(),
                (_, Some(n)) => n.to_string(),
                (i, None) => format!("if{i}"),
            };
            let p = s.packet();
            let promisc = match p {
                Some(p) if p.promiscuous => table::colored("yes", comfy_table::Color::Yellow),
                Some(_) => "no".into(),
                None => "-".into(),
            };
            let rings = p.map_or_else(
                || "-".to_string(),
                |p| {
                    let r: Vec<&str> = [(p.rx_ring.is_some(), "rx"), (p.tx_ring.is_some(), "tx")]
                        .into_iter()
                        .filter_map(|(on, n)| on.then_some(n))
                        .collect();
                    if r.is_empty() { "-".to_string() } else { format!("v{}:{}", p.version, r.join("+")) }
                },
            );
            vec![
                proto_label(s).into(),
                iface.into(),
                link.map_or_else(|| "-".to_string(), |l| ether_protocol(l.protocol)).into(),
                promisc,
                rings.into(),
                pids.into(),
                names.into(),
                users.into(),
            ]
        })
        .collect();
    (columns, rows)
}

/// Adds a leading NETNS column when the sockets span more than one network
/// namespace, and a trailing CONTEXT column when asked (`--context`).
pub fn decorate(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[&Socket], context: bool) {
    let namespaces: BTreeSet<u64> = sockets.iter().filter_map(|s| s.netns_inode()).collect();
    if namespaces.len() > 1 {
        columns.insert(0, table::col("NETNS"));
        for (row, s) in rows.iter_mut().zip(sockets) {
            let ns = s.netns.as_ref().map_or("-".to_string(), |n| n.to_string());
            row.insert(0, ns.into());
        }
    }
    if context {
        columns.push(table::col("CONTEXT"));
        for (row, s) in rows.iter_mut().zip(sockets) {
            row.push(context_text(s).into());
        }
    }
}

/// `nginx.service`, `docker:web`, `containerd:4f1c0a4e3b7d` for the first
/// owner that has a context.
pub fn context_text(s: &Socket) -> String {
    let Some(c) = s.owners.iter().find_map(|o| o.context.as_ref()) else { return "-".into() };
    match (&c.container, &c.unit) {
        (Some(ct), _) => {
            format!("{}:{}", ct.runtime, ct.name.clone().unwrap_or_else(|| crate::model::short_id(&ct.id)))
        }
        (None, Some(u)) => u.clone(),
        (None, None) => "-".into(),
    }
}
