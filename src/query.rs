//! From command-line types to a validated request: defaults, cross-flag
//! checks, and what can be pushed into the kernel. Clap types stop here.

use std::io::IsTerminal;

use crate::cli::{ColorChoice, OutputArgs, SelectArgs};
use crate::error::UserError;
use crate::filter::{PortRange, PortRef, PortSpec};
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
    /// With `-4`, an IPv6 wildcard socket whose v6only is unknown (read from
    /// /proc/net) is kept too: it may well take IPv4.
    pub fn keeps(&self, s: &Socket) -> bool {
        !self.v4_with_dual_stack
            || s.family == Family::Ipv4
            || s.is_dual_stack()
            || (s.v6only.is_none() && s.local.is_wildcard())
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

/// `--state` values merged; none given: `default`.
pub fn states(specs: &[crate::filter::StateSpec], default: StateSet) -> StateSet {
    if specs.is_empty() { default } else { specs.iter().fold(StateSet::EMPTY, |acc, s| acc.union(s.0)) }
}

/// `conns`' port and address flags as one kernel filter: different flags AND
/// together, repeated values of one flag OR; `--port` matches either end.
pub fn endpoint_filter(
    port: &[PortRange],
    sport: &[PortRange],
    dport: &[PortRange],
    src: &[crate::filter::Cidr],
    dst: &[crate::filter::Cidr],
) -> Option<Expr> {
    let either = any_of(
        port.iter()
            .flat_map(|r| [Cond::SPort { lo: r.lo, hi: r.hi }, Cond::DPort { lo: r.lo, hi: r.hi }])
            .map(Expr::Cond)
            .collect(),
    );
    let srcs = any_of(src.iter().map(|c| Expr::Cond(Cond::Src { addr: c.addr, prefix: c.prefix })).collect());
    let dsts = any_of(dst.iter().map(|c| Expr::Cond(Cond::Dst { addr: c.addr, prefix: c.prefix })).collect());
    all_of([either, local_ports_filter(sport), remote_ports_filter(dport), srcs, dsts].into_iter().flatten().collect())
}

/// The kernel query for `conns`: the selection, the state mask and the
/// endpoint filter, all applied in the kernel.
pub fn conns_query(sel: &Selection, states: StateSet, filter: Option<Expr>, tcp_info: bool) -> sock_diag::Query {
    sock_diag::Query {
        protos: sel.protos.clone(),
        families: sel.families.clone(),
        states,
        filter,
        tcp_info,
        bound_inactive: false,
        source: source(),
    }
}

/// The kernel query for `stats`: every TCP and UDP socket, as `ss -tuan`
/// sees them (so counts can be checked against it).
pub fn stats_query() -> sock_diag::Query {
    sock_diag::Query {
        protos: vec![Proto::Tcp, Proto::Udp],
        families: vec![Family::Ipv4, Family::Ipv6],
        states: StateSet::all(),
        filter: None,
        tcp_info: false,
        bound_inactive: false,
        source: source(),
    }
}

/// A `--user` value as a uid. A name must exist (NSS, like `id NAME`); a
/// number is taken as is (containers run uids without names).
pub fn resolve_user(spec: &crate::filter::UserSpec) -> Result<u32, crate::error::UserError> {
    use crate::filter::UserSpec;
    match spec {
        UserSpec::Uid(u) => Ok(*u),
        UserSpec::Name(n) => uid_of(n).ok_or_else(|| {
            crate::error::UserError::new(format!("unknown user '{n}' (not in the user database; give a name or a uid)"))
        }),
    }
}

/// `getpwnam_r`, so NSS sources (LDAP, sssd) work.
fn uid_of(name: &str) -> Option<u32> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: zeroed passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    for _ in 0..4 {
        // SAFETY: all pointers are valid for the call; buf outlives its use.
        let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(pwd.pw_uid);
    }
    None
}

/// The port of a `who`/`kill`/`wait` spec, resolving service names.
pub fn resolve_port(spec: &PortSpec) -> Result<u16, UserError> {
    match &spec.port {
        PortRef::Number(n) => Ok(*n),
        PortRef::Service(name) => crate::services::port(name).ok_or_else(|| {
            UserError::new(format!("unknown service name '{name}' (not in /etc/services nor portctl's table)"))
        }),
    }
}

/// The protocols a spec names (none: both).
pub fn spec_protos(spec: &PortSpec) -> Vec<Proto> {
    spec.proto.map_or_else(|| vec![Proto::Tcp, Proto::Udp], |p| vec![p])
}

/// Sockets whose local port is `port`, in `states`, both families: the
/// port goes to the kernel as bytecode.
pub fn port_query(port: u16, protos: &[Proto], states: StateSet, bound_inactive: bool) -> sock_diag::Query {
    sock_diag::Query {
        protos: protos.to_vec(),
        families: vec![Family::Ipv4, Family::Ipv6],
        states,
        filter: Some(Expr::Cond(Cond::SPort { lo: port, hi: port })),
        tcp_info: false,
        bound_inactive,
        source: source(),
    }
}

/// The namespaces `--netns` / `--all-netns` name. Namespaces that cannot be
/// opened during discovery are reported, not fatal.
pub fn scope(
    a: &crate::cli::NetnsArgs,
    report: &mut crate::report::Report,
) -> Result<crate::inventory::Scope, UserError> {
    use crate::inventory::Scope;
    use crate::netns::{Netns, discover};
    if let Some(spec) = &a.netns {
        return Ok(Scope::One(Netns::open(spec)?));
    }
    if !a.all_netns {
        return Ok(Scope::Current);
    }
    let (all, denied) = discover();
    if !denied.is_empty() {
        report.warn(format!(
            "{} network namespace{} could not be opened (run as root to see them): {}",
            denied.len(),
            if denied.len() == 1 { "" } else { "s" },
            denied.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    Ok(Scope::All(all))
}
