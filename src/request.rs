//! From the command line to one request: defaults, cross-flag checks and
//! name lookups (users, services) happen here, once, before the kernel is
//! asked anything. Clap types stop here: everything below takes these
//! requests (plain domain types, which tests build without argv).

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{self, Cli, ColorChoice, Command, ListenFormat, NetnsArgs, OutputArgs, ReportArgs, StatsFormat};
use crate::domain::select::{OwnerFilter, Selection};
use crate::domain::who::Target;
use crate::error::UserError;
use crate::filter::{Cidr, PortRef, PortSpec, SignalSpec, StateSpec, TargetSpec, UnixSpec, UserSpec};
use crate::model::{Family, PortRange, Proto, State, StateSet};
pub use crate::procs::OwnersFrom;
use crate::render::{Format, Output};
use crate::sock_diag::{self, Cond, Expr, Source};

/// One command line, validated.
#[derive(Debug)]
pub enum Request {
    Listen(ListenRequest),
    Conns(ConnsRequest),
    Who(WhoRequest),
    Kill(KillRequest),
    Wait(WaitRequest),
    Watch(WatchRequest),
    Stats(StatsRequest),
    Completions(cli::Shell),
    Man(ManRequest),
}

/// What `who`, `kill` and `wait` are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A port (service names resolved), protocols, maybe an address.
    Port(Target),
    /// A unix socket: a path (looked up in the filesystem when asked about,
    /// it may come and go) or an abstract name.
    Unix(UnixSpec),
}

impl Subject {
    /// `port 8080`, `8080/tcp`, `/run/app.sock`, `@name`: for messages.
    pub fn label(&self) -> String {
        match self {
            Subject::Port(t) => t.label(),
            Subject::Unix(u) => u.label(),
        }
    }
}

/// Which network namespaces to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Namespaces {
    /// The one portctl runs in.
    #[default]
    Current,
    /// `--netns NAME|PATH|pid:PID`.
    Named(String),
    /// `--all-netns`.
    All,
}

/// `portctl listen`.
#[derive(Debug, Clone)]
pub struct ListenRequest {
    pub namespaces: Namespaces,
    pub select: Selection,
    /// Only these local ports (none: all).
    pub ports: Vec<PortRange>,
    /// Add the owners' systemd unit and container.
    pub context: bool,
    /// Also the ports NAT rules publish (`--no-nat`: not).
    pub nat: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

impl ListenRequest {
    /// Every listener and bound UDP socket, and the ports NAT rules
    /// publish, as a table for stdout.
    pub fn new(out: Output) -> ListenRequest {
        ListenRequest {
            namespaces: Namespaces::Current,
            select: Selection::default(),
            ports: Vec::new(),
            context: false,
            nat: true,
            owners_from: OwnersFrom::Auto,
            out,
        }
    }

    /// Whether a NAT record is one the selection keeps: its protocol (any
    /// protocol counts as both), family and ports.
    pub fn keeps_nat(&self, r: &crate::nat::NatRule) -> bool {
        // SCTP, DCCP...: shown unless -t or -u narrowed the protocols.
        let all = self.select.protos.len() >= 2;
        let proto_ok = r
            .proto
            .as_deref()
            .is_none_or(|p| self.select.protos.iter().any(|s| s.as_str() == p) || (all && !matches!(p, "tcp" | "udp")));
        let family_ok = r.family.is_none_or(|f| self.select.families.contains(&f));
        let ports_ok = self.ports.is_empty()
            || r.ports.is_none_or(|range| self.ports.iter().any(|want| want.lo <= range.hi && range.lo <= want.hi));
        proto_ok && family_ok && ports_ok
    }

    /// What the kernel is asked for: listeners and bound UDP sockets on the
    /// ports, in the kernel.
    pub fn query(&self) -> sock_diag::Query {
        sock_diag::Query {
            protos: self.select.protos.clone(),
            families: self.select.families.clone(),
            states: StateSet::of(&[State::Listen, State::Unconn]),
            filter: any_of(self.ports.iter().map(|r| Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi })).collect()),
            tcp_info: false,
            skmem: vec![Proto::Udp],
            bound_inactive: false,
            any_state_raw: true,
            source: source(),
        }
    }
}

/// `portctl conns`.
#[derive(Debug)]
pub struct ConnsRequest {
    pub namespaces: Namespaces,
    pub select: Selection,
    pub states: StateSet,
    /// Ports and addresses, evaluated in the kernel.
    pub filter: Option<Expr>,
    /// Owners, evaluated after the /proc walk.
    pub owners: OwnerFilter,
    /// tcp_info essentials.
    pub extended: bool,
    /// A PEER column in the TCP/UDP table.
    pub peers: bool,
    /// `--state` was given: raw and packet sockets are filtered by it too.
    pub explicit_states: bool,
    pub context: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

impl ConnsRequest {
    /// Established TCP and UDP connections, as a table for stdout.
    pub fn new(out: Output) -> ConnsRequest {
        ConnsRequest {
            namespaces: Namespaces::Current,
            select: Selection::default(),
            states: StateSet::of(&[State::Established]),
            filter: None,
            owners: OwnerFilter::default(),
            extended: false,
            peers: false,
            explicit_states: false,
            context: false,
            owners_from: OwnersFrom::Auto,
            out,
        }
    }

    /// The selection, the state mask and the endpoint filter, all applied in
    /// the kernel.
    pub fn query(&self) -> sock_diag::Query {
        sock_diag::Query {
            protos: self.select.protos.clone(),
            families: self.select.families.clone(),
            states: self.states,
            filter: self.filter.clone(),
            tcp_info: self.extended,
            skmem: if self.extended { self.select.protos.clone() } else { Vec::new() },
            bound_inactive: false,
            any_state_raw: !self.explicit_states,
            source: source(),
        }
    }
}

/// `portctl who SPEC`.
#[derive(Debug, Clone)]
pub struct WhoRequest {
    pub target: Subject,
    /// The namespace asked about (`--netns`); the current one when `None`.
    pub netns: Option<String>,
    /// Read the NAT rules (`--no-nat`: not).
    pub nat: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

/// `portctl kill SPEC`.
#[derive(Debug, Clone)]
pub struct KillRequest {
    pub target: Subject,
    pub signal: SignalSpec,
    pub dry_run: bool,
    /// Do not ask.
    pub yes: bool,
    /// Also pid 1 and portctl's ancestry.
    pub force: bool,
    /// Wait this long for the port to be free.
    pub wait: Option<Duration>,
    /// After the wait, SIGKILL what is left.
    pub then_kill: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

/// `portctl wait SPEC`.
#[derive(Debug, Clone)]
pub struct WaitRequest {
    pub target: Subject,
    /// Until no listener remains, instead of until one appears.
    pub free: bool,
    pub timeout: Duration,
    pub interval: Duration,
}

/// `portctl watch [listen|conns ...]`.
#[derive(Debug)]
pub struct WatchRequest {
    pub interval: Duration,
    /// JSON lines per change instead of a table.
    pub events: bool,
    /// Stop after this many refreshes.
    pub count: Option<u64>,
    pub what: Watched,
}

/// What `watch` re-runs.
#[derive(Debug)]
pub enum Watched {
    Listen(ListenRequest),
    Conns(ConnsRequest),
}

impl Watched {
    pub fn out(&self) -> &Output {
        match self {
            Watched::Listen(r) => &r.out,
            Watched::Conns(r) => &r.out,
        }
    }
}

/// `portctl stats`.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    pub namespaces: Namespaces,
    /// Walk /proc for the CLOSE_WAIT-by-process section.
    pub owners: bool,
    /// Rows in the ranked lists.
    pub top: usize,
    /// Read the kernel's counters twice, this far apart (`--interval`).
    pub interval: Option<Duration>,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

/// `portctl man`.
#[derive(Debug, Clone)]
pub struct ManRequest {
    pub command: Option<String>,
    pub out_dir: Option<PathBuf>,
}

/// What the kernel is asked about every TCP and UDP socket, as `ss -tuan`
/// sees them (so `stats` can be checked against it).
pub fn stats_query() -> sock_diag::Query {
    sock_diag::Query {
        protos: vec![Proto::Tcp, Proto::Udp],
        families: Family::IP.to_vec(),
        states: StateSet::all(),
        filter: None,
        tcp_info: false,
        skmem: vec![Proto::Udp],
        bound_inactive: false,
        any_state_raw: false,
        source: source(),
    }
}

/// Every unix socket, or those in `states` (`stats`, `who PATH`, `wait PATH`).
pub fn unix_query(states: StateSet) -> sock_diag::Query {
    sock_diag::Query {
        protos: vec![Proto::Unix],
        families: Vec::new(),
        states,
        filter: None,
        tcp_info: false,
        skmem: Vec::new(),
        bound_inactive: false,
        any_state_raw: false,
        source: source(),
    }
}

/// Sockets whose local port is the target's, in `states`, both families,
/// the port filtered in the kernel.
pub fn port_query(target: &Target, states: StateSet, bound_inactive: bool) -> sock_diag::Query {
    sock_diag::Query {
        protos: target.protos(),
        families: Family::IP.to_vec(),
        states,
        filter: Some(Expr::Cond(Cond::SPort { lo: target.port, hi: target.port })),
        tcp_info: false,
        skmem: vec![Proto::Udp],
        bound_inactive,
        any_state_raw: false,
        source: source(),
    }
}

/// The data source: sock_diag unless `PORTCTL_SOURCE=proc` forces the
/// /proc/net fallback (used by tests of that path).
fn source() -> Source {
    match std::env::var("PORTCTL_SOURCE").as_deref() {
        Ok("proc") => Source::ProcNet,
        _ => Source::Auto,
    }
}

impl Request {
    /// The request a command line makes. Bad values clap could not see
    /// (unknown users and services, regexes) are errors here.
    pub fn from_cli(cli: Cli) -> Result<Request, UserError> {
        let from = owners_from(cli.global.owners_from);
        Ok(match cli.command {
            Command::Listen(a) => Request::Listen(listen(a, from)?),
            Command::Conns(a) => Request::Conns(conns(a, from)?),
            Command::Who(a) => Request::Who(WhoRequest {
                target: subject(&a.spec)?,
                netns: a.ns.netns,
                nat: !a.no_nat,
                owners_from: from,
                out: report_output(&a.out, None),
            }),
            Command::Kill(a) => Request::Kill(KillRequest {
                target: subject(&a.spec)?,
                signal: a.signal,
                dry_run: a.dry_run,
                yes: a.yes,
                force: a.force,
                wait: a.wait.map(|d| d.0),
                then_kill: a.then_kill,
                owners_from: from,
                out: report_output(&a.out, None),
            }),
            Command::Wait(a) => Request::Wait(WaitRequest {
                target: subject(&a.spec)?,
                free: a.free,
                timeout: a.timeout.0,
                interval: a.interval.0,
            }),
            Command::Watch(a) => {
                let what = match a.what {
                    Some(cli::WatchWhat::Listen(l)) => Watched::Listen(listen(l, from)?),
                    Some(cli::WatchWhat::Conns(c)) => Watched::Conns(conns(*c, from)?),
                    None => Watched::Listen(ListenRequest {
                        owners_from: from,
                        ..ListenRequest::new(Output::new(Format::Table, true, None))
                    }),
                };
                if what.out().format != Format::Table {
                    return Err(UserError::new("watch shows a table; for JSON use `portctl watch --events ...`"));
                }
                Request::Watch(WatchRequest { interval: a.interval.0, events: a.events, count: a.count, what })
            }
            Command::Stats(a) => {
                let format = match a.format {
                    Some(StatsFormat::Prometheus) => Some(Format::Prometheus),
                    Some(StatsFormat::Json) => Some(Format::Json),
                    Some(StatsFormat::Table) | None => None,
                };
                if a.interval.is_some() && format == Some(Format::Prometheus) {
                    return Err(UserError::new(
                        "--interval does not go with --format prometheus: the metrics are totals (`_total` counters), and Prometheus computes their rates (rate())",
                    ));
                }
                Request::Stats(StatsRequest {
                    namespaces: namespaces(&a.ns),
                    owners: !a.no_owners,
                    top: a.top,
                    interval: a.interval.map(|d| d.0),
                    owners_from: from,
                    out: report_output(&a.out, format),
                })
            }
            Command::Completions(a) => Request::Completions(a.shell),
            Command::Man(a) => Request::Man(ManRequest { command: a.command, out_dir: a.out_dir }),
        })
    }
}

/// `--owners-from` (or `PORTCTL_OWNERS`) as the domain's choice.
pub fn owners_from(a: cli::OwnersFromArg) -> OwnersFrom {
    match a {
        cli::OwnersFromArg::Auto => OwnersFrom::Auto,
        cli::OwnersFromArg::Bpf => OwnersFrom::Bpf,
        cli::OwnersFromArg::Proc => OwnersFrom::Proc,
    }
}

fn listen(a: cli::ListenArgs, owners_from: OwnersFrom) -> Result<ListenRequest, UserError> {
    let format = match a.format {
        Some(ListenFormat::Prometheus) => Some(Format::Prometheus),
        Some(ListenFormat::Json) => Some(Format::Json),
        Some(ListenFormat::Jsonl) => Some(Format::Jsonl),
        Some(ListenFormat::Table) | None => None,
    };
    let select = selection(&a.sel);
    if !a.port.is_empty() && !select.protos.iter().any(|p| p.is_ip()) {
        return Err(UserError::new("--port selects IP sockets: unix and packet sockets have no ports"));
    }
    Ok(ListenRequest {
        namespaces: namespaces(&a.ns),
        select,
        ports: a.port,
        context: a.context,
        nat: !a.no_nat,
        owners_from,
        out: listing_output(&a.out, format),
    })
}

fn conns(a: cli::ConnsArgs, owners_from: OwnersFrom) -> Result<ConnsRequest, UserError> {
    // Every value the user typed is checked before the kernel is asked.
    let uids = a.user.iter().map(resolve_user).collect::<Result<Vec<u32>, _>>()?;
    let owners = OwnerFilter::new(&a.pid, &a.process, a.process_regex.as_deref(), &uids)?;
    let select = selection(&a.sel);
    let filter = endpoint_filter(&a.port, &a.sport, &a.dport, &a.src, &a.dst);
    if filter.is_some() && !select.protos.iter().any(|p| p.is_ip()) {
        return Err(UserError::new(
            "--port, --sport, --dport, --src and --dst select IP sockets: unix and packet sockets have no ports or addresses",
        ));
    }
    Ok(ConnsRequest {
        namespaces: namespaces(&a.ns),
        select,
        states: states(&a.state, StateSet::of(&[State::Established])),
        filter,
        owners,
        extended: a.extended,
        peers: a.peers,
        explicit_states: !a.state.is_empty(),
        context: a.context,
        owners_from,
        out: listing_output(&a.out, None),
    })
}

fn selection(a: &cli::SelectArgs) -> Selection {
    Selection::with_kinds(a.tcp, a.udp, a.unix, a.raw, a.packet, a.ipv4, a.ipv6)
}

fn namespaces(a: &NetnsArgs) -> Namespaces {
    match (&a.netns, a.all_netns) {
        (Some(n), _) => Namespaces::Named(n.clone()),
        (None, true) => Namespaces::All,
        (None, false) => Namespaces::Current,
    }
}

fn color(c: ColorChoice) -> Option<bool> {
    match c {
        ColorChoice::Always => Some(true),
        ColorChoice::Never => Some(false),
        ColorChoice::Auto => None,
    }
}

/// listen/conns: `--json`, `--jsonl`, `--no-header`, `--color`, and a
/// `--format` that overrides them.
fn listing_output(a: &OutputArgs, format: Option<Format>) -> Output {
    let flags = if a.json {
        Format::Json
    } else if a.jsonl {
        Format::Jsonl
    } else {
        Format::Table
    };
    Output::new(format.unwrap_or(flags), !a.no_header, color(a.color.color))
}

/// who/stats/kill: `--json`, `--color`, and a `--format`.
fn report_output(a: &ReportArgs, format: Option<Format>) -> Output {
    let flags = if a.json { Format::Json } else { Format::Table };
    Output::new(format.unwrap_or(flags), true, color(a.color.color))
}

/// A `who`/`kill`/`wait` spec, service names resolved.
pub fn subject(spec: &TargetSpec) -> Result<Subject, UserError> {
    match spec {
        TargetSpec::Port(p) => target(p).map(Subject::Port),
        TargetSpec::Unix(u) => Ok(Subject::Unix(u.clone())),
    }
}

/// A port spec with its service name resolved.
pub fn target(spec: &PortSpec) -> Result<Target, UserError> {
    let port = match &spec.port {
        PortRef::Number(n) => *n,
        PortRef::Service(name) => crate::services::port(name).ok_or_else(|| {
            UserError::new(format!("unknown service name '{name}' (not in /etc/services nor portctl's table)"))
        })?,
    };
    Ok(Target { port, proto: spec.proto, addr: spec.addr })
}

/// `--state` values merged; none given: `default`.
pub fn states(specs: &[StateSpec], default: StateSet) -> StateSet {
    if specs.is_empty() { default } else { specs.iter().fold(StateSet::EMPTY, |acc, s| acc.union(s.0)) }
}

/// `conns`' port and address flags as one kernel filter: different flags AND
/// together, repeated values of one flag OR; `--port` matches either end.
pub fn endpoint_filter(
    port: &[PortRange],
    sport: &[PortRange],
    dport: &[PortRange],
    src: &[Cidr],
    dst: &[Cidr],
) -> Option<Expr> {
    let either = any_of(
        port.iter()
            .flat_map(|r| [Cond::SPort { lo: r.lo, hi: r.hi }, Cond::DPort { lo: r.lo, hi: r.hi }])
            .map(Expr::Cond)
            .collect(),
    );
    let sports = any_of(sport.iter().map(|r| Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi })).collect());
    let dports = any_of(dport.iter().map(|r| Expr::Cond(Cond::DPort { lo: r.lo, hi: r.hi })).collect());
    let srcs = any_of(src.iter().map(|c| Expr::Cond(Cond::Src { addr: c.addr, prefix: c.prefix })).collect());
    let dsts = any_of(dst.iter().map(|c| Expr::Cond(Cond::Dst { addr: c.addr, prefix: c.prefix })).collect());
    all_of([either, sports, dports, srcs, dsts].into_iter().flatten().collect())
}

fn any_of(mut v: Vec<Expr>) -> Option<Expr> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Expr::Or(v)),
    }
}

fn all_of(mut v: Vec<Expr>) -> Option<Expr> {
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Expr::And(v)),
    }
}

/// A `--user` value as a uid. A name must exist (NSS, like `id NAME`); a
/// number is taken as is (containers run uids without names).
pub fn resolve_user(spec: &UserSpec) -> Result<u32, UserError> {
    match spec {
        UserSpec::Uid(u) => Ok(*u),
        UserSpec::Name(n) => crate::sys::uid_of(n).ok_or_else(|| {
            UserError::new(format!("unknown user '{n}' (not in the user database; give a name or a uid)"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn request(args: &[&str]) -> Result<Request, UserError> {
        Request::from_cli(Cli::try_parse_from(std::iter::once("portctl").chain(args.iter().copied())).unwrap())
    }

    #[test]
    fn port_and_address_filters_go_to_the_kernel() {
        let r = |lo, hi| PortRange { lo, hi };
        let sp = |lo, hi| Expr::Cond(Cond::SPort { lo, hi });
        let dp = |lo, hi| Expr::Cond(Cond::DPort { lo, hi });
        assert_eq!(endpoint_filter(&[], &[], &[], &[], &[]), None);
        // --port is either end
        assert_eq!(endpoint_filter(&[r(80, 80)], &[], &[], &[], &[]), Some(Expr::Or(vec![sp(80, 80), dp(80, 80)])));
        // values of one flag OR, flags AND
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        let f = endpoint_filter(&[], &[r(1, 2), r(5, 5)], &[r(9, 9)], &[], &[net]);
        let dst = Expr::Cond(Cond::Dst { addr: net.addr, prefix: 8 });
        assert_eq!(f, Some(Expr::And(vec![Expr::Or(vec![sp(1, 2), sp(5, 5)]), dp(9, 9), dst])));
        // the filter and the state mask are in the request the kernel gets
        let Ok(Request::Conns(c)) = request(&[
            "conns",
            "-t",
            "-e",
            "-s",
            "time-wait",
            "-s",
            "close-wait",
            "--sport",
            "1-2",
            "--sport",
            "5",
            "--dport",
            "9",
            "--dst",
            "10.0.0.0/8",
        ]) else {
            panic!("a conns request")
        };
        let q = c.query();
        assert_eq!(q.filter, f);
        assert_eq!(q.states.kernel_mask(Proto::Tcp), (1 << 6) | (1 << 8));
        assert!(q.tcp_info);
        assert_eq!(q.protos, vec![Proto::Tcp]);
        let est = states(&[], StateSet::of(&[State::Established]));
        assert_eq!(est.kernel_mask(Proto::Tcp), 1 << 1);
    }

    /// Requests are plain data: tests (and `watch`) build them without argv.
    #[test]
    fn requests_without_argv() {
        let l = ListenRequest::new(Output::plain(Format::Json));
        let q = l.query();
        assert_eq!(q.states, StateSet::of(&[State::Listen, State::Unconn]));
        assert_eq!((q.filter, q.protos.len(), q.families.len()), (None, 2, 2));
        let mut l = l;
        l.ports = vec![PortRange { lo: 80, hi: 81 }];
        assert_eq!(l.query().filter, Some(Expr::Cond(Cond::SPort { lo: 80, hi: 81 })));
        let c = ConnsRequest::new(Output::plain(Format::Table));
        assert_eq!(c.query().states, StateSet::of(&[State::Established]));
    }

    #[test]
    fn command_lines_become_requests() {
        let Ok(Request::Listen(l)) = request(&["listen", "--format", "prometheus", "-t", "-p", "80"]) else { panic!() };
        assert_eq!((l.out.format, l.select.protos.clone(), l.ports.len()), (Format::Prometheus, vec![Proto::Tcp], 1));
        let Ok(Request::Stats(s)) = request(&["stats", "--format", "json", "--no-owners"]) else { panic!() };
        assert_eq!((s.out.format, s.owners, s.interval), (Format::Json, false, None));
        let Ok(Request::Stats(s)) = request(&["stats", "--interval", "500ms"]) else { panic!() };
        assert_eq!(s.interval, Some(Duration::from_millis(500)));
        assert!(request(&["stats", "-i", "1s", "--format", "prometheus"]).unwrap_err().msg.contains("rate()"));
        let Ok(Request::Who(w)) = request(&["who", "https/tcp", "--json", "--netns", "blue"]) else { panic!() };
        let Subject::Port(t) = &w.target else { panic!("a port") };
        assert_eq!(
            (t.port, t.proto, w.out.format, w.netns.as_deref()),
            (443, Some(Proto::Tcp), Format::Json, Some("blue"))
        );
        let Ok(Request::Kill(k)) = request(&["kill", "@bus", "--dry-run"]) else { panic!() };
        assert_eq!(k.target, Subject::Unix(UnixSpec::Abstract("bus".into())));
        let Ok(Request::Conns(c)) = request(&["conns", "-x", "-w"]) else { panic!() };
        assert_eq!(c.select.protos, [Proto::Raw, Proto::Icmp, Proto::Unix]);
        assert!(c.query().any_state_raw && !c.explicit_states);
        let e = request(&["conns", "-x", "--port", "80"]).unwrap_err();
        assert!(e.msg.contains("select IP sockets"), "{}", e.msg);
        assert!(request(&["conns", "-x", "-t", "--port", "80"]).is_ok(), "TCP sockets have ports");
        assert!(request(&["listen", "-0", "--port", "80"]).is_err());
        let Ok(Request::Watch(w)) = request(&["watch", "--count", "2"]) else { panic!() };
        assert!(matches!(w.what, Watched::Listen(ref l) if l.out.format == Format::Table));
        assert!(request(&["watch", "listen", "--json"]).unwrap_err().msg.contains("--events"));
        assert!(request(&["who", "no-such-service-xyz"]).unwrap_err().msg.contains("unknown service name"));
    }

    #[test]
    fn users_resolve_up_front() {
        assert_eq!(resolve_user(&UserSpec::Name("root".into())).unwrap(), 0);
        assert_eq!(resolve_user(&UserSpec::Uid(4_000_000)).unwrap(), 4_000_000);
        let e = resolve_user(&UserSpec::Name("nosuchuser-portctl".into())).unwrap_err();
        assert!(e.msg.contains("unknown user 'nosuchuser-portctl'"), "{}", e.msg);
        assert!(request(&["conns", "--user", "nosuchuser-portctl"]).is_err());
    }
}
