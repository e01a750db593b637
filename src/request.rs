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
use crate::filter::{
    Cidr, CidrArg, Column, PortArg, PortArgValue, PortRef, PortSpec, SignalSpec, SortKey, StateSpec, TargetSpec,
    UnixSpec, UserSpec,
};
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
    Close(CloseRequest),
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

/// How `listen` and `conns` show what they found (beyond the format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// `--pids`: the holders' pids only, one per line.
    pub pids: bool,
    /// `--by-process`: grouped by holder, with ancestry.
    pub by_process: bool,
    /// `-o/--columns`: these table columns; empty: the command's own.
    pub columns: Vec<Column>,
    /// `--sort`: keys after which to order; empty: the command's order.
    pub sort: Vec<SortKey>,
    pub reverse: bool,
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
    /// Listening TCP and bound UDP (or fewer, when the filter names states).
    pub states: StateSet,
    /// `--port` and the filter expression, evaluated in the kernel.
    pub filter: Option<Expr>,
    /// Owners, evaluated once the owner source has found the holders.
    pub owners: OwnerFilter,
    /// Look for the holders, from the owner source (`--no-owners`: kernel
    /// data only).
    pub resolve_owners: bool,
    /// Add the owners' systemd unit and container.
    pub context: bool,
    /// Also the ports NAT rules publish (`--no-nat`: not).
    pub nat: bool,
    pub view: View,
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
            states: StateSet::of(&[State::Listen, State::Unconn]),
            filter: None,
            owners: OwnerFilter::default(),
            resolve_owners: true,
            context: false,
            nat: true,
            view: View::default(),
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
        // The filter's port conditions (the others say nothing of a rule):
        // some port of the rule's range passes them.
        let ports_ok = match (&self.filter, r.ports) {
            (None, _) | (_, None) => true,
            (Some(f), Some(range)) => {
                let only_ports = f.relax(&|c: &Cond| !matches!(c, Cond::SPort { .. }));
                let any = std::net::IpAddr::from([0u8; 4]);
                (range.lo..=range.hi).any(|p| only_ports.matches((any, p), (any, 0)))
            }
        };
        proto_ok && family_ok && ports_ok
    }

    /// Only these local ports (a helper for requests built without argv).
    pub fn ports(mut self, ports: &[PortRange]) -> ListenRequest {
        self.filter = any_of(ports.iter().map(|r| Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi })).collect());
        self
    }

    /// What the kernel is asked for: listeners and bound UDP sockets,
    /// ports and the expression filtered in the kernel.
    pub fn query(&self) -> sock_diag::Query {
        sock_diag::Query {
            protos: self.select.protos.clone(),
            families: self.select.families.clone(),
            states: self.states,
            filter: self.filter.clone(),
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
    /// Owners, evaluated once the owner source has found the holders.
    pub owners: OwnerFilter,
    /// Look for the holders, from the owner source (`--no-owners`: kernel
    /// data only).
    pub resolve_owners: bool,
    /// tcp_info essentials.
    pub extended: bool,
    /// A PEER column in the TCP/UDP table.
    pub peers: bool,
    /// `--state` was given: raw and packet sockets are filtered by it too.
    pub explicit_states: bool,
    pub context: bool,
    pub view: View,
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
            resolve_owners: true,
            extended: false,
            peers: false,
            explicit_states: false,
            context: false,
            view: View::default(),
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

/// `portctl who SPEC...` or `who --pid PID`.
#[derive(Debug, Clone)]
pub struct WhoRequest {
    pub what: WhoWhat,
    /// The namespace asked about (`--netns`); the current one when `None`.
    pub netns: Option<String>,
    /// Read the NAT rules (`--no-nat`: not).
    pub nat: bool,
    /// `--pids`: the holders' pids only.
    pub pids: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

/// What `who` is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhoWhat {
    /// Ports and unix sockets, one answer each.
    Subjects(Vec<Subject>),
    /// What one process holds.
    Pid(u32),
}

/// `portctl kill SPEC...`.
#[derive(Debug, Clone)]
pub struct KillRequest {
    pub targets: Vec<Subject>,
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

/// `portctl wait SPEC...`.
#[derive(Debug, Clone)]
pub struct WaitRequest {
    pub targets: Vec<Subject>,
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

/// `portctl close FILTER`.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    /// `--netns`: the namespace whose sockets to close.
    pub netns: Option<String>,
    pub select: Selection,
    pub states: StateSet,
    pub filter: Option<Expr>,
    pub owners: OwnerFilter,
    pub dry_run: bool,
    /// Do not ask.
    pub yes: bool,
    /// `--owners-from`.
    pub owners_from: OwnersFrom,
    pub out: Output,
}

impl CloseRequest {
    /// What the kernel is asked for: the sockets to close.
    pub fn query(&self) -> sock_diag::Query {
        sock_diag::Query {
            protos: self.select.protos.clone(),
            families: self.select.families.clone(),
            states: self.states,
            filter: self.filter.clone(),
            tcp_info: false,
            skmem: Vec::new(),
            bound_inactive: false,
            any_state_raw: false,
            source: source(),
        }
    }
}

/// The states `close` takes without a `state` in its filter: connected
/// ones (not TIME_WAIT, which no process holds, nor SYN_RECV request
/// sockets); `--listeners` adds listening TCP and bound UDP sockets.
pub fn close_states(listeners: bool) -> StateSet {
    let mut s = StateSet::of(&[
        State::Established,
        State::SynSent,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::LastAck,
        State::Closing,
    ]);
    if listeners {
        s.insert(State::Listen);
        s.insert(State::Unconn);
    }
    s
}

/// `portctl stats`.
#[derive(Debug, Clone)]
pub struct StatsRequest {
    /// Only sockets the filter expression matches (states and the rest).
    pub states: StateSet,
    pub filter: Option<Expr>,
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
/// sees them (so `stats` can be checked against it); `who --pid` asks it
/// too.
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

impl StatsRequest {
    /// [`stats_query`] narrowed to the request's filter.
    pub fn query(&self) -> sock_diag::Query {
        sock_diag::Query { states: self.states, filter: self.filter.clone(), ..stats_query() }
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

/// [`port_query`] for several targets at once: their protocols, their
/// ports (each once) in the kernel. Callers take each target's sockets with
/// [`Target::covers`].
pub fn ports_query(targets: &[Target], states: StateSet, bound_inactive: bool) -> sock_diag::Query {
    let mut protos: Vec<Proto> = targets.iter().flat_map(Target::protos).collect();
    protos.sort();
    protos.dedup();
    let mut ports: Vec<u16> = targets.iter().map(|t| t.port).collect();
    ports.sort_unstable();
    ports.dedup();
    sock_diag::Query {
        protos,
        families: Family::IP.to_vec(),
        states,
        filter: any_of(ports.into_iter().map(|p| Expr::Cond(Cond::SPort { lo: p, hi: p })).collect()),
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
    /// (unknown users and services, regexes, filter expressions) are errors
    /// here.
    pub fn from_cli(cli: Cli) -> Result<Request, UserError> {
        Request::from_cli_noting(cli, &mut Vec::new())
    }

    /// [`Request::from_cli`], with what is worth a note on stderr (how a
    /// filter expression grouped) added to `notes`.
    pub fn from_cli_noting(cli: Cli, notes: &mut Vec<String>) -> Result<Request, UserError> {
        let from = owners_from(cli.global.owners_from);
        Ok(match cli.command {
            Command::Listen(a) => Request::Listen(listen(a, from, notes)?),
            Command::Conns(a) => Request::Conns(conns(a, from, notes)?),
            Command::Who(a) => {
                let what = match a.pid {
                    Some(pid) => WhoWhat::Pid(pid),
                    None => WhoWhat::Subjects(subjects(&a.spec)?),
                };
                Request::Who(WhoRequest {
                    what,
                    netns: a.ns.netns,
                    nat: !a.no_nat,
                    pids: a.pids,
                    owners_from: from,
                    out: report_output(&a.out, None),
                })
            }
            Command::Kill(a) => Request::Kill(KillRequest {
                targets: subjects(&a.spec)?,
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
                targets: subjects(&a.spec)?,
                free: a.free,
                timeout: a.timeout.0,
                interval: a.interval.0,
            }),
            Command::Watch(a) => {
                let what = match a.what {
                    Some(cli::WatchWhat::Listen(l)) => Watched::Listen(listen(*l, from, notes)?),
                    Some(cli::WatchWhat::Conns(c)) => Watched::Conns(conns(*c, from, notes)?),
                    None => Watched::Listen(ListenRequest {
                        owners_from: from,
                        ..ListenRequest::new(Output::new(Format::Table, true, None))
                    }),
                };
                if what.out().format != Format::Table {
                    return Err(UserError::new("watch shows a table; for JSON use `portctl watch --events ...`"));
                }
                let view = match &what {
                    Watched::Listen(r) => &r.view,
                    Watched::Conns(r) => &r.view,
                };
                if view.pids || view.by_process {
                    return Err(UserError::new(
                        "watch shows a table: --pids and --by-process are for listen and conns",
                    ));
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
                let f = filter_words(&a.filter, notes)?;
                if f.families.is_some() {
                    return Err(UserError::new("stats counts both families: drop the inet:/inet6: prefix"));
                }
                Request::Stats(StatsRequest {
                    states: f.states.unwrap_or_else(StateSet::all),
                    filter: f.expr,
                    namespaces: namespaces(&a.ns),
                    owners: !a.no_owners,
                    top: a.top,
                    interval: a.interval.map(|d| d.0),
                    owners_from: from,
                    out: report_output(&a.out, format),
                })
            }
            Command::Close(a) => Request::Close(close(a, from, notes)?),
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

/// A filter expression's words, parsed; notes go to `notes`.
fn filter_words(words: &[String], notes: &mut Vec<String>) -> Result<crate::expr::Filter, UserError> {
    let f = crate::expr::parse(words, &crate::expr::System).map_err(|e| UserError::new(e.msg))?;
    notes.extend(f.notes.iter().cloned());
    Ok(f)
}

/// The selection, narrowed to the families an `inet:`/`inet6:` prefix
/// named (as ss narrows its dump).
fn narrow_families(mut select: Selection, families: Option<&Vec<Family>>) -> Result<Selection, UserError> {
    if let Some(f) = families {
        select.families.retain(|x| f.contains(x));
        select.v4_with_dual_stack = false;
        if select.families.is_empty() {
            return Err(UserError::new("the filter's inet:/inet6: prefix and -4/-6 leave no family"));
        }
    }
    Ok(select)
}

fn listen(a: cli::ListenArgs, owners_from: OwnersFrom, notes: &mut Vec<String>) -> Result<ListenRequest, UserError> {
    let format = match a.format {
        Some(ListenFormat::Prometheus) => Some(Format::Prometheus),
        Some(ListenFormat::Json) => Some(Format::Json),
        Some(ListenFormat::Jsonl) => Some(Format::Jsonl),
        Some(ListenFormat::Table) | None => None,
    };
    let f = filter_words(&a.filter, notes)?;
    let base = StateSet::of(&[State::Listen, State::Unconn]);
    let states = match f.states {
        None => base,
        Some(s) => {
            let both = intersect(base, s);
            if both.is_empty() {
                return Err(UserError::new(
                    "listen shows listening TCP and bound UDP sockets only: the filter's states leave none (use `portctl conns` for other states)",
                ));
            }
            both
        }
    };
    let ports = ports(&a.port, "--port")?;
    let flags = flag_expr(ports.into_iter().map(|(neg, r)| (neg, Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi }))));
    let out = listing_output(&a.out, format);
    let view = view(&a.view, &out)?;
    let owner_filter = owners(&a.owner)?;
    let select = narrow_families(selection(&a.sel), f.families.as_ref())?;
    if flags.is_some() && !select.protos.iter().any(|p| p.is_ip()) {
        return Err(UserError::new("--port selects IP sockets: unix and packet sockets have no ports"));
    }
    no_owners_alone(a.no_owners, &owner_filter, &view, a.context)?;
    Ok(ListenRequest {
        namespaces: namespaces(&a.ns),
        select,
        states,
        filter: all_of([flags, f.expr].into_iter().flatten().collect()),
        owners: owner_filter,
        nat: !a.no_nat,
        resolve_owners: !a.no_owners,
        context: a.context || a.view.columns.contains(&Column::Context),
        view,
        owners_from,
        out,
    })
}

fn conns(a: cli::ConnsArgs, owners_from: OwnersFrom, notes: &mut Vec<String>) -> Result<ConnsRequest, UserError> {
    // Every value the user typed is checked before the kernel is asked.
    let owners = owners(&a.owner)?;
    let f = filter_words(&a.filter, notes)?;
    // --state and the filter's states combine with `and`; with neither,
    // established.
    let states = match (a.state.is_empty(), f.states) {
        (true, None) => StateSet::of(&[State::Established]),
        (true, Some(s)) => s,
        (false, None) => states(&a.state, StateSet::EMPTY),
        (false, Some(s)) => intersect(states(&a.state, StateSet::EMPTY), s),
    };
    let flags = endpoint_filter(
        &ports(&a.port, "--port")?,
        &ports(&a.sport, "--sport")?,
        &ports(&a.dport, "--dport")?,
        &cidrs(&a.src),
        &cidrs(&a.dst),
    );
    let select = narrow_families(selection(&a.sel), f.families.as_ref())?;
    if flags.is_some() && !select.protos.iter().any(|p| p.is_ip()) {
        return Err(UserError::new(
            "--port, --sport, --dport, --src and --dst select IP sockets: unix and packet sockets have no ports or addresses",
        ));
    }
    let out = listing_output(&a.out, None);
    let view = view(&a.view, &out)?;
    no_owners_alone(a.no_owners, &owners, &view, a.context)?;
    Ok(ConnsRequest {
        namespaces: namespaces(&a.ns),
        select,
        states,
        filter: all_of([flags, f.expr].into_iter().flatten().collect()),
        owners,
        resolve_owners: !a.no_owners,
        peers: a.peers,
        explicit_states: !a.state.is_empty() || f.states.is_some(),
        extended: a.extended
            || a.view.columns.iter().any(|c| {
                matches!(
                    c,
                    Column::Rtt
                        | Column::Retrans
                        | Column::Cwnd
                        | Column::Cc
                        | Column::Mss
                        | Column::Lost
                        | Column::Delivery
                        | Column::Sent
                        | Column::Recv
                        | Column::Rmem
                        | Column::Drops
                )
            }),
        context: a.context || a.view.columns.contains(&Column::Context),
        view,
        owners_from,
        out,
    })
}

fn selection(a: &cli::SelectArgs) -> Selection {
    Selection::with_kinds(a.tcp, a.udp, a.unix, a.raw, a.packet, a.ipv4, a.ipv6)
}

fn close(a: cli::CloseArgs, owners_from: OwnersFrom, notes: &mut Vec<String>) -> Result<CloseRequest, UserError> {
    let owners = owners(&a.owner)?;
    let f = filter_words(&a.filter, notes)?;
    if f.expr.is_none() && f.states.is_none() && owners.is_empty() {
        return Err(UserError::new(
            "close needs a filter naming what to close (`portctl close dst 10.0.0.5 dport = :5432`)",
        )
        .hint("`portctl close --dry-run FILTER` shows what would be closed"));
    }
    let states = f.states.unwrap_or_else(|| close_states(a.listeners));
    let states = if a.listeners {
        states
    } else {
        intersect(states, close_states(false).union(StateSet::of(&[State::TimeWait, State::SynRecv, State::Close])))
    };
    if states.is_empty() {
        return Err(UserError::new(
            "the filter's states are listeners only: add --listeners to close listening sockets",
        ));
    }
    Ok(CloseRequest {
        netns: a.netns,
        select: narrow_families(Selection::new(a.sel.tcp, a.sel.udp, a.sel.ipv4, a.sel.ipv6), f.families.as_ref())?,
        states,
        filter: f.expr,
        owners,
        dry_run: a.dry_run,
        yes: a.yes,
        owners_from,
        out: report_output(&a.out, None),
    })
}

/// `--no-owners` means no owner source: nothing that needs the holders.
fn no_owners_alone(no_owners: bool, owners: &OwnerFilter, view: &View, context: bool) -> Result<(), UserError> {
    if no_owners && (!owners.is_empty() || view.pids || view.by_process || context) {
        return Err(UserError::new(
            "--no-owners looks for no owners: it cannot go with owner filters, --pids, --by-process or --context",
        ));
    }
    Ok(())
}

/// The owner flags, checked (users resolved, the regex compiled).
fn owners(a: &cli::OwnerArgs) -> Result<OwnerFilter, UserError> {
    let uids = a.user.iter().map(resolve_user).collect::<Result<Vec<u32>, _>>()?;
    OwnerFilter::with_context(&a.pid, a.children, &a.process, a.process_regex.as_deref(), &uids, &a.unit, &a.container)
}

/// `--pids`, `--by-process`, `-o`, `--sort`, checked against the format.
fn view(a: &cli::ViewArgs, out: &Output) -> Result<View, UserError> {
    if (a.pids || a.by_process || !a.columns.is_empty()) && out.format == Format::Prometheus {
        return Err(UserError::new("--pids, --by-process and --columns do not apply to the Prometheus format"));
    }
    if a.pids && out.is_json() {
        return Err(UserError::new("--pids prints pids, one per line: drop --json/--jsonl"));
    }
    if a.by_process && out.format == Format::Jsonl {
        return Err(UserError::new("--by-process prints one JSON object: use --json, not --jsonl"));
    }
    if !a.columns.is_empty() && out.is_json() {
        return Err(UserError::new("--columns chooses table columns: JSON records have every field"));
    }
    let mut seen = Vec::new();
    for c in &a.columns {
        if seen.contains(c) {
            return Err(UserError::new(format!("column {} is named twice in --columns", column_name(*c))));
        }
        seen.push(*c);
    }
    Ok(View {
        pids: a.pids,
        by_process: a.by_process,
        columns: a.columns.clone(),
        sort: a.sort.clone(),
        reverse: a.reverse,
    })
}

/// A column's name as `--columns` spells it.
pub fn column_name(c: Column) -> String {
    use clap::ValueEnum;
    c.to_possible_value().map_or_else(|| format!("{c:?}"), |v| v.get_name().to_string())
}

fn intersect(a: StateSet, b: StateSet) -> StateSet {
    let mut out = StateSet::EMPTY;
    for s in State::TCP.iter().chain(&[State::Unconn]) {
        if a.contains(*s) && b.contains(*s) {
            out.insert(*s);
        }
    }
    out
}

/// Port flag values with service names resolved: (excluded, range).
fn ports(args: &[PortArg], flag: &str) -> Result<Vec<(bool, PortRange)>, UserError> {
    args.iter()
        .map(|a| match &a.value {
            PortArgValue::Range(r) => Ok((a.negated, *r)),
            PortArgValue::Service(name) => {
                crate::services::port(name).map(|p| (a.negated, PortRange { lo: p, hi: p })).ok_or_else(|| {
                    UserError::new(format!(
                        "{flag} {name}: unknown service name (not in /etc/services nor portctl's table)"
                    ))
                })
            }
        })
        .collect()
}

fn cidrs(args: &[CidrArg]) -> Vec<(bool, Cidr)> {
    args.iter().map(|a| (a.negated, a.cidr)).collect()
}

/// One flag's values as one expression: the values given plainly OR
/// together, those with `!` are each excluded.
fn flag_expr(values: impl IntoIterator<Item = (bool, Expr)>) -> Option<Expr> {
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (negated, e) in values {
        if negated { no.push(Expr::Not(Box::new(e))) } else { yes.push(e) }
    }
    all_of(any_of(yes).into_iter().chain(no).collect())
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

/// The port targets among `subjects`, in their order.
pub fn ports_of(subjects: &[Subject]) -> Vec<Target> {
    subjects
        .iter()
        .filter_map(|s| match s {
            Subject::Port(t) => Some(t.clone()),
            Subject::Unix(_) => None,
        })
        .collect()
}

/// `who`/`kill`/`wait` specs, service names resolved; each once.
pub fn subjects(specs: &[TargetSpec]) -> Result<Vec<Subject>, UserError> {
    let mut out: Vec<Subject> = Vec::new();
    for s in specs {
        let t = subject(s)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// A `who`/`kill`/`wait` spec, service names resolved.
pub fn subject(spec: &TargetSpec) -> Result<Subject, UserError> {
    match spec {
        TargetSpec::Port(p) => target(p).map(Subject::Port),
        TargetSpec::Unix(u) => Ok(Subject::Unix(u.clone())),
    }
}

/// A `who`/`kill`/`wait` spec with its service name resolved.
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
/// together, repeated values of one flag OR, values with `!` are excluded;
/// `--port` matches either end (and `!` excludes both).
pub fn endpoint_filter(
    port: &[(bool, PortRange)],
    sport: &[(bool, PortRange)],
    dport: &[(bool, PortRange)],
    src: &[(bool, Cidr)],
    dst: &[(bool, Cidr)],
) -> Option<Expr> {
    let either = flag_expr(port.iter().map(|&(n, r)| {
        let e = Expr::Or(vec![
            Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi }),
            Expr::Cond(Cond::DPort { lo: r.lo, hi: r.hi }),
        ]);
        (n, e)
    }));
    // Without exclusions, `--port A --port B` is one flat OR of both ends.
    let either = match either {
        Some(Expr::Or(v)) => {
            Some(Expr::Or(v.into_iter().flat_map(|e| if let Expr::Or(i) = e { i } else { vec![e] }).collect()))
        }
        other => other,
    };
    let sports = flag_expr(sport.iter().map(|&(n, r)| (n, Expr::Cond(Cond::SPort { lo: r.lo, hi: r.hi }))));
    let dports = flag_expr(dport.iter().map(|&(n, r)| (n, Expr::Cond(Cond::DPort { lo: r.lo, hi: r.hi }))));
    let srcs = flag_expr(src.iter().map(|&(n, c)| (n, Expr::Cond(Cond::Src { addr: c.addr, prefix: c.prefix }))));
    let dsts = flag_expr(dst.iter().map(|&(n, c)| (n, Expr::Cond(Cond::Dst { addr: c.addr, prefix: c.prefix }))));
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
        let r = |lo, hi| (false, PortRange { lo, hi });
        let sp = |lo, hi| Expr::Cond(Cond::SPort { lo, hi });
        let dp = |lo, hi| Expr::Cond(Cond::DPort { lo, hi });
        assert_eq!(endpoint_filter(&[], &[], &[], &[], &[]), None);
        // --port is either end
        assert_eq!(endpoint_filter(&[r(80, 80)], &[], &[], &[], &[]), Some(Expr::Or(vec![sp(80, 80), dp(80, 80)])));
        // values of one flag OR, flags AND
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        let f = endpoint_filter(&[], &[r(1, 2), r(5, 5)], &[r(9, 9)], &[], &[(false, net)]);
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
        let l = l.ports(&[PortRange { lo: 80, hi: 81 }]);
        assert_eq!(l.query().filter, Some(Expr::Cond(Cond::SPort { lo: 80, hi: 81 })));
        let c = ConnsRequest::new(Output::plain(Format::Table));
        assert_eq!(c.query().states, StateSet::of(&[State::Established]));
    }

    #[test]
    fn command_lines_become_requests() {
        let Ok(Request::Listen(l)) = request(&["listen", "--format", "prometheus", "-t", "-p", "80"]) else { panic!() };
        assert_eq!(
            (l.out.format, l.select.protos.clone(), l.filter),
            (Format::Prometheus, vec![Proto::Tcp], Some(Expr::Cond(Cond::SPort { lo: 80, hi: 80 })))
        );
        let Ok(Request::Stats(s)) = request(&["stats", "--format", "json", "--no-owners"]) else { panic!() };
        assert_eq!((s.out.format, s.owners, s.interval), (Format::Json, false, None));
        let Ok(Request::Stats(s)) = request(&["stats", "--interval", "500ms"]) else { panic!() };
        assert_eq!(s.interval, Some(Duration::from_millis(500)));
        assert!(request(&["stats", "-i", "1s", "--format", "prometheus"]).unwrap_err().msg.contains("rate()"));
        let Ok(Request::Who(w)) = request(&["who", "https/tcp", "--json", "--netns", "blue"]) else { panic!() };
        let WhoWhat::Subjects(t) = &w.what else { panic!() };
        let Subject::Port(t) = &t[0] else { panic!("a port") };
        assert_eq!(
            (t.port, t.proto, w.out.format, w.netns.as_deref()),
            (443, Some(Proto::Tcp), Format::Json, Some("blue"))
        );
        let Ok(Request::Kill(k)) = request(&["kill", "@bus", "--dry-run"]) else { panic!() };
        assert_eq!(k.targets, [Subject::Unix(UnixSpec::Abstract("bus".into()))]);
        let Ok(Request::Conns(c)) = request(&["conns", "-x", "-w"]) else { panic!() };
        assert_eq!(c.select.protos, [Proto::Raw, Proto::Icmp, Proto::Unix]);
        assert!(c.query().any_state_raw && !c.explicit_states);
        let e = request(&["conns", "-x", "--port", "80"]).unwrap_err();
        assert!(e.msg.contains("select IP sockets"), "{}", e.msg);
        assert!(request(&["conns", "-x", "-t", "--port", "80"]).is_ok(), "TCP sockets have ports");
        assert!(request(&["listen", "-0", "--port", "80"]).is_err());
        // Several specs, each once; or a pid.
        let Ok(Request::Kill(k)) = request(&["kill", "3000", "8080/udp", ":9090", "3000", "/run/x.sock"]) else {
            panic!()
        };
        let ports: Vec<(u16, Option<Proto>)> = k
            .targets
            .iter()
            .filter_map(|t| match t {
                Subject::Port(t) => Some((t.port, t.proto)),
                Subject::Unix(_) => None,
            })
            .collect();
        assert_eq!(ports, [(3000, None), (8080, Some(Proto::Udp)), (9090, None)]);
        assert_eq!(k.targets.len(), 4);
        let Ok(Request::Who(w)) = request(&["who", "--pid", "1"]) else { panic!() };
        assert_eq!(w.what, WhoWhat::Pid(1));
        let Ok(Request::Watch(w)) = request(&["watch", "--count", "2"]) else { panic!() };
        assert!(matches!(w.what, Watched::Listen(ref l) if l.out.format == Format::Table));
        assert!(request(&["watch", "listen", "--json"]).unwrap_err().msg.contains("--events"));
        assert!(request(&["who", "no-such-service-xyz"]).unwrap_err().msg.contains("unknown service name"));
    }

    fn conns_req(args: &[&str]) -> ConnsRequest {
        match request(&[&["conns"], args].concat()) {
            Ok(Request::Conns(c)) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// Flags and the expression combine with `and`; --state and the
    /// expression's `state` too.
    #[test]
    fn flags_and_expressions_combine_with_and() {
        let sp = |p| Expr::Cond(Cond::SPort { lo: p, hi: p });
        let dp = |p| Expr::Cond(Cond::DPort { lo: p, hi: p });
        let c = conns_req(&["--sport", "22", "dport", "=", ":443"]);
        assert_eq!(c.filter, Some(Expr::And(vec![sp(22), dp(443)])));
        let c = conns_req(&["dport = :443 and not dst 10.0.0.0/8"]);
        let net = Expr::Cond(Cond::Dst { addr: "10.0.0.0".parse().unwrap(), prefix: 8 });
        assert_eq!(c.filter, Some(Expr::And(vec![dp(443), Expr::Not(Box::new(net))])));
        assert_eq!(c.states, StateSet::of(&[State::Established]), "no state anywhere: established");
        let c = conns_req(&["state", "time-wait"]);
        assert_eq!((c.states, c.filter), (StateSet::of(&[State::TimeWait]), None));
        let c = conns_req(&["-s", "all", "state", "connected", "exclude", "established"]);
        assert!(c.states.contains(State::TimeWait) && !c.states.contains(State::Established));
        assert!(!c.states.contains(State::Listen));
        let c = conns_req(&["-s", "listen", "state", "established"]);
        assert!(c.states.is_empty(), "--state and state AND: nothing in both");
        // Service names and exclusions in flags.
        let c = conns_req(&["--dport", "https", "--dport", "!8443", "--sport", "!22"]);
        assert_eq!(
            c.filter,
            Some(Expr::And(
                vec![Expr::Not(Box::new(sp(22))), Expr::And(vec![dp(443), Expr::Not(Box::new(dp(8443)))]),]
            ))
        );
        let e = request(&["conns", "--dport", "nosuchservice-xyz"]).unwrap_err();
        assert!(e.msg.contains("--dport nosuchservice-xyz: unknown service name"), "{}", e.msg);
        // A bad expression is one line naming the token.
        let e = request(&["conns", "sport", "=", ":70000"]).unwrap_err();
        assert_eq!(e.msg, "filter: ':70000' (word 3) has port 70000, out of range (0-65535)");
        // inet: narrows the families, as in ss.
        assert_eq!(conns_req(&["src", "inet:127.0.0.1"]).select.families, vec![Family::Ipv4]);
    }

    #[test]
    fn listen_expressions_and_views() {
        let Ok(Request::Listen(l)) = request(&["listen", "--port", "https", "state", "listening", "src", "127.0.0.1"])
        else {
            panic!()
        };
        assert_eq!(l.states, StateSet::of(&[State::Listen]));
        assert_eq!(
            l.filter,
            Some(Expr::And(vec![
                Expr::Cond(Cond::SPort { lo: 443, hi: 443 }),
                Expr::Cond(Cond::Src { addr: "127.0.0.1".parse().unwrap(), prefix: 32 })
            ]))
        );
        let e = request(&["listen", "state", "established"]).unwrap_err();
        assert!(e.msg.contains("use `portctl conns`"), "{}", e.msg);
        let Ok(Request::Listen(l)) = request(&["listen", "-o", "pid,local", "--sort", "pid,port", "--reverse"]) else {
            panic!()
        };
        assert_eq!(
            (l.view.columns, l.view.sort, l.view.reverse),
            (vec![Column::Pid, Column::Local], vec![SortKey::Pid, SortKey::Port], true)
        );
        assert!(request(&["listen", "--pids", "--json"]).unwrap_err().msg.contains("--pids prints pids"));
        assert!(request(&["listen", "-o", "pid,pid"]).unwrap_err().msg.contains("named twice"));
        assert!(request(&["conns", "--by-process", "--jsonl"]).unwrap_err().msg.contains("--by-process"));
        assert!(request(&["watch", "conns", "--pids"]).unwrap_err().msg.contains("watch shows a table"));
        let Ok(Request::Conns(c)) = request(&["conns", "-o", "rtt,context"]) else { panic!() };
        assert!(c.extended && c.context, "columns that need tcp_info or context turn them on");
    }

    #[test]
    fn close_needs_a_filter_and_listeners_need_the_flag() {
        let e = request(&["close"]).unwrap_err();
        assert!(e.msg.starts_with("close needs a filter"), "{}", e.msg);
        let Ok(Request::Close(c)) = request(&["close", "dport", "=", ":5432"]) else { panic!() };
        assert!(c.states.contains(State::Established) && !c.states.contains(State::Listen));
        assert!(!c.states.contains(State::TimeWait));
        let Ok(Request::Close(c)) = request(&["close", "--listeners", "sport = :80"]) else { panic!() };
        assert!(c.states.contains(State::Listen) && c.states.contains(State::Unconn));
        let e = request(&["close", "state", "listening"]).unwrap_err();
        assert!(e.msg.contains("--listeners"), "{}", e.msg);
        let Ok(Request::Close(c)) = request(&["close", "--pid", "1"]) else { panic!() };
        assert!(!c.owners.is_empty() && c.filter.is_none());
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
