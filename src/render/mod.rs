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
/// too (the BSD netstat convention).
pub fn proto_label(s: &Socket) -> String {
    let suffix = match s.family {
        crate::model::Family::Ipv6 if s.is_dual_stack() => "46",
        crate::model::Family::Ipv6 => "6",
        _ => "",
    };
    format!("{}{suffix}", s.proto)
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
    for o in &s.owners {
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
pub fn accept_queue_column(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[Socket]) {
    if !sockets.iter().any(|s| s.accept_queue().is_some_and(|q| q.is_alarming())) {
        return;
    }
    columns.push(table::col("ACCEPT-Q"));
    for (row, s) in rows.iter_mut().zip(sockets) {
        row.push(match s.accept_queue() {
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
        });
    }
}

/// Adds a DROPS column (datagrams the socket dropped, its receive buffer
/// full) when some UDP socket has dropped any; quiet otherwise.
pub fn drops_column(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[Socket]) {
    if !sockets.iter().any(|s| s.proto == crate::model::Proto::Udp && s.drops() > 0) {
        return;
    }
    columns.push(table::num("DROPS"));
    for (row, s) in rows.iter_mut().zip(sockets) {
        row.push(match s.skmem() {
            Some(m) if s.proto == crate::model::Proto::Udp => conns::drops_cell(m.drops),
            _ => "-".into(),
        });
    }
}

/// Adds a leading NETNS column when the sockets span more than one network
/// namespace, and a trailing CONTEXT column when asked (`--context`).
pub fn decorate(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[Socket], context: bool) {
    let namespaces: BTreeSet<u64> = sockets.iter().filter_map(Socket::netns_inode).collect();
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
