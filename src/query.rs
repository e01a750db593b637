//! From command-line types to a validated request: defaults, cross-flag
//! checks, and what can be pushed into the kernel. Clap types stop here.

use std::io::IsTerminal;

use crate::cli::{ColorChoice, OutputArgs, SelectArgs};
use crate::filter::PortRange;
use crate::model::{Family, Proto, Socket, StateSet};
use crate::sock_diag::{self, Cond, Expr, Source};

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub header: bool,
    pub color: bool,
    /// Stdout is a terminal: tables may use its width and escapes matter most.
    pub terminal: bool,
}

impl Output {
    pub fn from_args(a: &OutputArgs) -> Output {
        let terminal = std::io::stdout().is_terminal();
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let format = if a.json {
            Format::Json
        } else if a.jsonl {
            Format::Jsonl
        } else {
            Format::Table
        };
        let color = match a.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color_env,
        };
        Output { format, header: !a.no_header, color, terminal }
    }
}

/// Protocols and families from `--tcp/--udp/-4/-6` (none given: all).
#[derive(Debug, Clone)]
pub struct Selection {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    /// `-4` alone: also keep dual-stack `[::]` sockets, which accept IPv4.
    pub v4_with_dual_stack: bool,
}

impl Selection {
    pub fn from_args(a: &SelectArgs) -> Selection {
        let protos = match (a.tcp, a.udp) {
            (true, false) => vec![Proto::Tcp],
            (false, true) => vec![Proto::Udp],
            _ => vec![Proto::Tcp, Proto::Udp],
        };
        let (families, v4_with_dual_stack) = match (a.ipv4, a.ipv6) {
            // Dual-stack IPv6 wildcard sockets take IPv4 too: ask for IPv6 as
            // well and keep only those.
            (true, false) => (vec![Family::Ipv4, Family::Ipv6], true),
            (false, true) => (vec![Family::Ipv6], false),
            _ => (vec![Family::Ipv4, Family::Ipv6], false),
        };
        Selection { protos, families, v4_with_dual_stack }
    }

    /// Sockets the kernel returned that the selection still excludes.
    pub fn keeps(&self, s: &Socket) -> bool {
        !self.v4_with_dual_stack || s.family == Family::Ipv4 || s.is_dual_stack()
    }
}

/// The data source: sock_diag unless `PORTCTL_SOURCE=proc` forces the
/// /proc/net fallback (used by tests of that path).
pub fn source() -> Source {
    match std::env::var("PORTCTL_SOURCE").as_deref() {
        Ok("proc") => Source::ProcNet,
        _ => Source::Auto,
    }
}

/// `sport` in any of the ranges, as one kernel filter.
pub fn local_ports_filter(ports: &[PortRange]) -> Option<Expr> {
    any_of(ports.iter().map(|r| Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi })).collect())
}

/// `dport` in any of the ranges.
pub fn remote_ports_filter(ports: &[PortRange]) -> Option<Expr> {
    any_of(ports.iter().map(|r| Expr::Cond(Cond::DPort { lo: r.lo, hi: r.hi })).collect())
}

pub fn any_of(mut v: Vec<Expr>) -> Option<Expr> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Expr::Or(v)),
    }
}

pub fn all_of(mut v: Vec<Expr>) -> Option<Expr> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Expr::And(v)),
    }
}

/// The kernel query for `listen`.
pub fn listen_query(sel: &Selection, ports: &[PortRange]) -> sock_diag::Query {
    sock_diag::Query {
        protos: sel.protos.clone(),
        families: sel.families.clone(),
        states: StateSet::of(&[crate::model::State::Listen, crate::model::State::Unconn]),
        filter: local_ports_filter(ports),
        tcp_info: false,
        bound_inactive: false,
        source: source(),
    }
}
