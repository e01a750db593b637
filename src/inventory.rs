//! The pipeline every command shares: kernel dump -> owners -> enrich, and
//! the gathering each listing command does with it (also what `watch`
//! re-runs).
//!
//! The owner source (the /proc walk) runs on its own threads while this
//! thread reads the kernel's dump, so the two costs overlap instead of
//! adding up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bpf::records;
use crate::domain::nat::{NatAnswer, Skip};
use crate::domain::order;
use crate::domain::unix::{FileState, Lookup};
use crate::error::UserError;
use crate::filter::UnixSpec;
use crate::model::{Exposure, NetnsRef, Owner, Proto, Socket, State, StateSet, Unheld, Vfs, unmapped};
use crate::nat::{self, NatRule, walk::Skipped};
use crate::netns::Netns;
use crate::procs::{Chosen, Job, OwnerMap, OwnerSource, ProcTable, SocketQuery, flags};
use crate::report::Report;
use crate::request::{ConnsRequest, ListenRequest, Namespaces};
use crate::services;
use crate::sock_diag::{self, Expr};
use crate::text::plural;
use crate::timings;

/// Whether a command needs to know who holds the sockets, and from where.
#[derive(Clone, Copy)]
pub enum Owners<'a> {
    /// Ask the source and attach owners; details of the owners are read
    /// when first asked for.
    Resolve(&'a dyn OwnerSource),
    /// The same, with every owner's details read while the map is built
    /// (`conns`, which shows them all).
    ResolveAll(&'a dyn OwnerSource),
    /// Kernel data only (stats, wait).
    Skip,
}

/// Sockets with owners, plus the process table (for commands that want more
/// details about the owners).
pub struct Inventory {
    pub sockets: Vec<Socket>,
    pub procs: ProcTable,
    pub map: Option<OwnerMap>,
    /// Namespaces that could not be entered (`Scope::WithOthers` only).
    pub unreadable_netns: Vec<String>,
}

/// Which network namespaces to read.
#[derive(Debug)]
pub enum Scope {
    /// The one portctl runs in; sockets carry no `netns` field.
    Current,
    /// `--netns X`: that one; failing to enter it is an error.
    One(Netns),
    /// `--all-netns`: every one found; those that cannot be entered are
    /// reported and skipped.
    All(Vec<Netns>),
    /// `who`: one namespace that matters (tagged only when it is not the
    /// current one) and the others for context, asked for listeners and
    /// bound sockets only; those that cannot be entered are listed in
    /// `Inventory::unreadable_netns`, not warned about.
    WithOthers(Netns, Vec<Netns>),
}

impl Scope {
    /// Opens the namespaces a request names. With `--all-netns`, those that
    /// cannot be opened are reported, not fatal.
    pub fn open(ns: &Namespaces, report: &mut Report) -> Result<Scope, UserError> {
        match ns {
            Namespaces::Current => Ok(Scope::Current),
            Namespaces::Named(spec) => Ok(Scope::One(Netns::open(spec)?)),
            Namespaces::All => {
                let (all, denied) = crate::netns::discover();
                if !denied.is_empty() {
                    report.warn(format!(
                        "{} network namespace{} could not be opened (run as root to see them): {}",
                        denied.len(),
                        plural(denied.len()),
                        denied.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                    ));
                }
                Ok(Scope::All(all))
            }
        }
    }

    /// The one namespace the scope is about: `--netns X`, or `who`'s.
    pub fn main(&self) -> Option<&Netns> {
        match self {
            Scope::One(n) | Scope::WithOthers(n, _) => Some(n),
            Scope::Current | Scope::All(_) => None,
        }
    }

    pub fn namespaces(&self) -> Vec<Option<&Netns>> {
        match self {
            Scope::Current => vec![None],
            Scope::One(n) => vec![Some(n)],
            Scope::All(v) => v.iter().map(Some).collect(),
            Scope::WithOthers(main, others) => std::iter::once(main).chain(others).map(Some).collect(),
        }
    }
}

/// How a command wants its sockets ordered. The sort runs on the main
/// thread while the /proc walk is still going (it needs no owners), instead
/// of after it.
pub type Order = fn(&mut [Socket]);

/// Runs the query in the current namespace and attaches owners.
pub fn collect(query: &sock_diag::Query, owners: Owners<'_>, report: &mut Report) -> Result<Inventory> {
    collect_in(&Scope::Current, query, owners, None, report)
}

/// How to find the other ends of a dump's connections when the dump itself
/// may not hold them.
#[derive(Debug, Clone)]
pub struct PeerPlan {
    /// The query to run: the command's, with a one-sided filter (`--sport
    /// 80`: the peers have remote port 80) widened to its mirror, so that one
    /// walk of the kernel's tables finds both ends.
    pub query: sock_diag::Query,
    /// The command's own filter, when widened: what the widened dump holds
    /// beyond it are peer candidates only, not listed.
    pub keep: Option<Expr>,
    /// Further queries for candidates: the mirrored filter alone when the
    /// states asked for would not hold the peers (CLOSE_WAIT's are
    /// FIN_WAIT2), and unix listeners (whose accept queues name the clients
    /// still waiting in them) when the query has none.
    pub extra: Vec<sock_diag::Query>,
}

/// The [`PeerPlan`] of a listing query.
pub fn peer_plan(query: sock_diag::Query) -> PeerPlan {
    let mut plan = PeerPlan { query, keep: None, extra: Vec::new() };
    // Only a filter on the two ends can be mirrored and evaluated again on
    // the widened dump (the others need facts the records do not keep).
    if let Some(f) = plan.query.filter.clone().filter(|f| f.needs().is_empty()) {
        let mirrored = f.mirrored();
        if mirrored.canonical() != f.canonical() && plan.query.protos.iter().any(|p| p.has_ports()) {
            // A connection's two ends are in the same state when it is
            // established (or gone: TIME_WAIT has no peer anyway).
            let symmetric = plan.query.states == StateSet::all()
                || [State::Established, State::Listen, State::Unconn, State::TimeWait, State::Close]
                    .iter()
                    .fold(plan.query.states, |set, &st| StateSet::of(&[st]).union(set))
                    == StateSet::of(&[State::Established, State::Listen, State::Unconn, State::TimeWait, State::Close]);
            if symmetric {
                plan.query.filter = Some(Expr::Or(vec![f.clone(), mirrored]));
                plan.keep = Some(f);
            } else {
                // Sockets with a peer: connected, with a file (not TIME_WAIT).
                let connected: Vec<State> =
                    State::TCP.into_iter().filter(|s| !matches!(s, State::Listen | State::TimeWait)).collect();
                plan.extra.push(sock_diag::Query {
                    protos: plan.query.protos.iter().copied().filter(|p| p.has_ports()).collect(),
                    filter: Some(mirrored),
                    states: StateSet::of(&connected),
                    tcp_info: false,
                    bound_inactive: false,
                    ..plan.query.clone()
                });
            }
        }
    }
    let q = &plan.query;
    if q.protos.contains(&Proto::Unix) && q.filter.is_none() && !q.states.contains(State::Listen) {
        plan.extra.push(sock_diag::Query {
            protos: vec![Proto::Unix],
            states: StateSet::of(&[State::Listen]),
            tcp_info: false,
            bound_inactive: false,
            ..q.clone()
        });
    }
    plan
}

/// The sockets `listen` shows, sorted (also one refresh of `watch listen`).
pub fn listen(req: &ListenRequest, report: &mut Report) -> Result<Vec<Socket>> {
    listen_with_procs(req, report).map(|(sockets, _)| sockets)
}

/// [`listen`] with the process table, for views that read more about the
/// holders (`--by-process`).
pub fn listen_with_procs(req: &ListenRequest, report: &mut Report) -> Result<(Vec<Socket>, ProcTable)> {
    let scope = Scope::open(&req.namespaces, report)?;
    listening(req, &scope, report)
}

/// The sockets `listen` shows in `scope`, selected (kinds, owners), with
/// the process table their owners came from.
fn listening(req: &ListenRequest, scope: &Scope, report: &mut Report) -> Result<(Vec<Socket>, ProcTable)> {
    let source = Chosen::new(req.owners_from);
    let owners = if req.resolve_owners { Owners::Resolve(&source) } else { Owners::Skip };
    let mut inv = collect_in(scope, &req.query(), owners, Some(order::listen), report)?;
    let procs = &mut inv.procs;
    let mut sockets = std::mem::take(&mut inv.sockets);
    sockets.retain(|s| req.select.keeps(s) && req.owners.matches(s, procs));
    if req.context {
        attach_context(&mut sockets, &mut inv.procs);
    }
    Ok((sockets, inv.procs))
}

/// What `listen` shows: the sockets, and the ports NAT rules publish.
pub struct Listing {
    pub sockets: Vec<Socket>,
    pub nat: Vec<NatRule>,
    /// Per namespace read (tag, as on its records), whether every rule
    /// could be read.
    pub nat_read: Vec<(Option<NetnsRef>, bool)>,
}

/// The sockets `listen` shows and, unless `--no-nat`, the NAT rules of
/// every namespace of the scope, read on a thread of their own while the
/// kernel is dumped and the owners read.
pub fn listen_with_nat(req: &ListenRequest, report: &mut Report) -> Result<Listing> {
    let scope = Scope::open(&req.namespaces, report)?;
    let gather = |report: &mut Report| listening(req, &scope, report).map(|(sockets, _)| sockets);
    // An owner filter (--pid, --process, --user...) selects processes: a NAT
    // rule has none.
    if !req.nat || !req.owners.is_empty() {
        return Ok(Listing { sockets: gather(report)?, nat: Vec::new(), nat_read: Vec::new() });
    }
    let (sockets, scans) = std::thread::scope(|s| {
        let reader = s.spawn(|| scan_scope(&scope, None));
        let sockets = gather(report);
        let scans = reader.join().unwrap_or_else(|_| Vec::new());
        (sockets, scans)
    });
    let sockets = sockets?;
    report_nat(&scans, report);
    let elsewhere = scans.iter().flat_map(|s| &s.rules).filter(|r| !r.on_this_host()).count();
    if report.verbose && elsewhere > 0 {
        report.note(format!(
            "NAT: {elsewhere} rule{} for destinations that are not addresses of this host (service IPs) not listed; `portctl who PORT` shows them",
            plural(elsewhere)
        ));
    }
    let nat_read = scans.iter().map(|s| (s.netns.clone(), s.status == nat::Status::Ok)).collect();
    let mut rules: Vec<NatRule> = scans.into_iter().flat_map(|s| s.rules).filter(|r| req.keeps_nat(r)).collect();
    nat::name_containers(&mut rules, &crate::procs::context::Runtimes::detect());
    rules.sort_by(|a, b| {
        let key = |r: &NatRule| (r.netns.clone(), r.ports.map(|p| (p.lo, p.hi)), r.proto.clone(), r.family);
        key(a).cmp(&key(b))
    });
    timings::mark("nat rules");
    Ok(Listing { sockets, nat: rules, nat_read })
}

/// The NAT rules of one namespace, as records.
#[derive(Debug)]
pub struct NatScan {
    /// The namespace, when its records are tagged with it.
    pub netns: Option<NetnsRef>,
    pub status: nat::Status,
    pub problem: Option<String>,
    pub rules: Vec<NatRule>,
    pub skipped: Skipped,
    pub runs: Vec<nat::read::ToolRun>,
    /// Rules the tools printed, walked or not.
    pub rules_read: u64,
}

impl NatScan {
    /// A scan that did not happen (`--no-nat`).
    pub fn skipped() -> NatScan {
        NatScan {
            netns: None,
            status: nat::Status::Ok,
            problem: None,
            rules: Vec::new(),
            skipped: Skipped::new(),
            runs: Vec::new(),
            rules_read: 0,
        }
    }

    /// What `who` and `kill` say about the rules: those that translate
    /// `target`, with the names of their containers.
    pub fn answer(&self, target: &crate::domain::who::Target, procs: &mut ProcTable) -> NatAnswer {
        let mut rules = crate::domain::nat::for_target(&self.rules, target);
        nat::name_containers(&mut rules, procs.runtimes());
        NatAnswer {
            status: self.status,
            reason: self.problem.clone(),
            rules,
            skipped: self.skipped.iter().map(|(k, n)| Skip { what: k.clone(), count: *n }).collect(),
        }
    }
}

/// Reads and analyses the NAT rules of `ns` (the current namespace when
/// None), for one port when `query` says so; records are tagged with
/// `tag`.
pub fn scan_nat(ns: Option<&Netns>, query: nat::walk::Query<'_>, tag: Option<NetnsRef>) -> NatScan {
    let budget = nat::read::budget();
    let reading = match ns {
        None => nat::read::read(budget),
        Some(n) => n.run(|| nat::read::read(budget)).unwrap_or_else(|e| nat::Reading::failed(e.msg)),
    };
    let analysis = nat::analyze(&reading.inputs, query);
    let mut rules = nat::records(&analysis.entries, &reading.local);
    for r in &mut rules {
        r.netns = tag.clone();
    }
    NatScan {
        netns: tag,
        status: reading.status,
        problem: reading.problem,
        rules,
        skipped: analysis.skipped,
        runs: reading.runs,
        rules_read: analysis.rules_read,
    }
}

/// [`scan_nat`] in every namespace of the scope, one after the other,
/// tagged as the scope tags sockets.
pub fn scan_scope(scope: &Scope, query: nat::walk::Query<'_>) -> Vec<NatScan> {
    scope
        .namespaces()
        .into_iter()
        .map(|ns| {
            let tag = ns.filter(|n| !(is_main(scope, n) && n.current)).map(|n| n.id.clone());
            scan_nat(ns, query, tag)
        })
        .collect()
}

/// One stderr line per namespace whose rules could not all be read; with
/// `-v`, every tool run and what was skipped.
pub fn report_nat(scans: &[NatScan], report: &mut Report) {
    let verbose = report.verbose;
    for s in scans {
        let place = s.netns.as_ref().map(|n| format!(" (network namespace {n})")).unwrap_or_default();
        if let Some(p) = &s.problem {
            match s.status {
                nat::Status::Ok | nat::Status::NoTools if !verbose => {}
                nat::Status::Ok | nat::Status::NoTools | nat::Status::NotPermitted => {
                    report.note(format!("{p}{place}"))
                }
                nat::Status::Failed | nat::Status::TimedOut => report.warn(format!("{p}{place}")),
            }
        }
        if verbose {
            for r in &s.runs {
                report.note(format!("NAT: {}{place}: {} in {} ms", r.command, r.outcome, r.elapsed.as_millis()));
            }
            if !s.runs.is_empty() {
                report.note(format!(
                    "NAT{place}: {} rule{} read, {} NAT record{}",
                    s.rules_read,
                    plural(s.rules_read as usize),
                    s.rules.len(),
                    plural(s.rules.len())
                ));
            }
            if !s.skipped.is_empty() {
                report.note(format!(
                    "NAT{place}: skipped what portctl does not interpret: {}",
                    nat::skipped_lines(&s.skipped).join(", ")
                ));
            }
        }
    }
}

/// The sockets `conns` shows, sorted (also one refresh of `watch conns`).
pub fn conns(req: &ConnsRequest, report: &mut Report) -> Result<Vec<Socket>> {
    conns_with_procs(req, report).map(|(sockets, _)| sockets)
}

/// [`conns`] with the process table (`--by-process`).
pub fn conns_with_procs(req: &ConnsRequest, report: &mut Report) -> Result<(Vec<Socket>, ProcTable)> {
    let source = Chosen::new(req.owners_from);
    // TIME_WAIT sockets have no file, so no owner: skip the owner source
    // when they are all that was asked for.
    let owners = if !req.resolve_owners || (req.states == StateSet::of(&[State::TimeWait]) && req.owners.is_empty()) {
        Owners::Skip
    } else {
        Owners::ResolveAll(&source)
    };
    let scope = Scope::open(&req.namespaces, report)?;
    let plan = peer_plan(req.query());
    let inv = collect_with_peers(&scope, &plan, owners, Some(order::conns), report)?;
    let mut procs = inv.procs;
    // In place: a filter that keeps everything moves nothing.
    let mut sockets = inv.sockets;
    sockets.retain(|s| req.select.keeps(s) && req.owners.matches(s, &mut procs));
    if req.context {
        attach_context(&mut sockets, &mut procs);
    }
    Ok((sockets, procs))
}

/// Closes each socket (SOCK_DESTROY) from inside `netns` (the current
/// namespace when `None`): the errno of each attempt, 0 for success. An
/// error is returned only when sock_diag cannot be opened there.
pub fn destroy(netns: Option<&Netns>, sockets: &[Socket]) -> Result<Vec<i32>> {
    let run = || -> Result<Vec<i32>, sock_diag::DiagError> {
        let mut r = sock_diag::Reader::new()?;
        Ok(sockets
            .iter()
            .map(|s| match r.destroy(s) {
                Ok(()) => 0,
                Err(sock_diag::DiagError::Kernel { errno, .. }) => errno,
                Err(sock_diag::DiagError::Io(e)) => e.raw_os_error().unwrap_or(libc::EIO),
                Err(_) => libc::EINVAL,
            })
            .collect())
    };
    let r = match netns {
        None => run(),
        Some(ns) => ns.run(run)?,
    };
    r.context("could not open sock_diag to close sockets")
}

/// Attaches owners to `sockets` from a fresh map of `source` (a command that
/// dumped without owners and needs them for a few: `stats`' CLOSE_WAIT),
/// and links their peers (owners from the same map).
pub fn resolve_owners(
    sockets: &mut [Socket],
    source: &dyn OwnerSource,
    procs: &mut ProcTable,
    scope: &Scope,
    report: &mut Report,
) -> std::io::Result<()> {
    let job = Job::new(false, true);
    // Their peers' inodes too (unix sockets name theirs): the peers' owners
    // come from the same map.
    let peers = sockets.iter().filter_map(|s| s.peer.as_ref().map(|p| p.inode));
    job.offer(sockets.iter().map(|s| s.inode).chain(peers).filter(|&i| i != 0).collect());
    let mut map = source.build(&job)?;
    report.info(source.describe());
    attach_owners(sockets, &mut map, source, procs, scope, report);
    link_peers(sockets, &[], None, &map, procs);
    Ok(())
}

/// Links peers (see `domain::peers`), owners of peers that are in neither
/// list from the map; the TCP and UDP pairs are found here unless given.
fn link_peers(
    sockets: &mut [Socket],
    candidates: &[Socket],
    pairs: Option<crate::domain::peers::IpPairs>,
    map: &OwnerMap,
    procs: &mut ProcTable,
) {
    let hidden = !map.denied.is_empty();
    let mut lookup = |inodes: &[u64]| -> Vec<(std::sync::Arc<[Owner]>, bool)> {
        owners_of(inodes, map, procs)
            .into_iter()
            .map(|(o, _)| {
                let h = o.is_empty() && hidden;
                (o, h)
            })
            .collect()
    };
    let pairs = pairs.unwrap_or_else(|| crate::domain::peers::ip_pairs(sockets, candidates));
    crate::domain::peers::link_paired(sockets, candidates, pairs, &mut lookup);
}

/// [`lookup_unix`] for a spec that must name a socket: a path to anything
/// else (a directory, a regular file) is an error that says what it is.
pub fn lookup_unix_socket(spec: &UnixSpec) -> Result<Lookup, UserError> {
    let lookup = lookup_unix(spec)?;
    if let Some(FileState::NotSocket(what)) = lookup.file {
        return Err(UserError::new(format!("{} is not a socket: it is {what}", spec.label())));
    }
    Ok(lookup)
}

/// What a unix spec names now: for a path, what is at it (a socket file's
/// device and inode, or nothing, or something else) and the path with its
/// directory resolved. Reads the filesystem (stat), so a path may change
/// between calls (`wait`).
pub fn lookup_unix(spec: &UnixSpec) -> Result<Lookup, UserError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let UnixSpec::Path(p) = spec else {
        return Ok(Lookup { spec: spec.clone(), file: None, canonical: None });
    };
    let path = std::path::Path::new(p);
    let kind = |t: std::fs::FileType| -> &'static str {
        if t.is_dir() {
            "a directory"
        } else if t.is_file() {
            "a regular file"
        } else if t.is_symlink() {
            "a symbolic link to nothing"
        } else if t.is_fifo() {
            "a named pipe"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a socket"
        }
    };
    let file = match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => FileState::Socket(Vfs { dev: m.dev(), ino: m.ino() }),
        Ok(m) => FileState::NotSocket(kind(m.file_type())),
        Err(e) => match std::fs::symlink_metadata(path) {
            // A dangling symbolic link: bind() still finds the name taken.
            Ok(m) => FileState::NotSocket(kind(m.file_type())),
            Err(_) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                FileState::Missing { dir_exists: path.parent().is_some_and(|d| d.is_dir()) }
            }
            Err(_) => {
                return Err(UserError::new(format!("cannot look at {p}: {e}"))
                    .hint("portctl needs to see the path to tell which socket is bound to it"));
            }
        },
    };
    let canonical = match (path.parent().and_then(|d| std::fs::canonicalize(d).ok()), path.file_name()) {
        (Some(dir), Some(name)) => dir.join(name).to_str().map(str::to_string).filter(|c| c != p),
        _ => None,
    };
    Ok(Lookup { spec: spec.clone(), file: Some(file), canonical })
}

/// Polls the kernel (listeners only, no owners: microseconds a poll) until a
/// listener on `query`'s port that `keep` accepts is present (`want_present`)
/// or absent; false on timeout.
pub fn poll_listeners(
    query: &sock_diag::Query,
    keep: impl Fn(&Socket) -> bool,
    want_present: bool,
    timeout: Duration,
    interval: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let present = sock_diag::dump(query)?.sockets.iter().any(&keep);
        if present == want_present {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// Whether a listener (or bound socket) has the unix name now. A path is
/// looked up again at every call (its file may be created, removed or
/// replaced meanwhile) and matched in every namespace portctl can enter; an
/// abstract name in this one.
pub struct UnixProbe {
    query: sock_diag::Query,
    others: Vec<Netns>,
}

impl UnixProbe {
    pub fn new(spec: &UnixSpec) -> UnixProbe {
        let query = crate::request::unix_query(StateSet::of(&[State::Listen, State::Unconn]));
        let others: Vec<Netns> = match spec {
            UnixSpec::Path(_) => {
                let own = crate::netns::current_inode();
                crate::netns::discover().0.into_iter().filter(|n| Some(n.id.inode) != own).collect()
            }
            UnixSpec::Abstract(_) => Vec::new(),
        };
        UnixProbe { query, others }
    }

    /// One look: is the name bound?
    pub fn present(&self, spec: &UnixSpec) -> Result<bool> {
        let lookup = lookup_unix_socket(spec)?;
        let mut sockets = sock_diag::dump(&self.query)?.sockets;
        for ns in &self.others {
            // A namespace that went away meanwhile has nothing bound.
            if let Ok(Ok(d)) = ns.run(|| sock_diag::dump(&self.query)) {
                sockets.extend(d.sockets);
            }
        }
        Ok(lookup.sockets(&sockets).iter().any(|s| crate::domain::unix::binds_name(s)))
    }
}

/// [`poll_listeners`] for a unix name: polls [`UnixProbe::present`] until a
/// listener (or bound socket) has it, or none has.
pub fn poll_unix(spec: &UnixSpec, want_present: bool, timeout: Duration, interval: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    let probe = UnixProbe::new(spec);
    loop {
        if probe.present(spec)? == want_present {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// Runs the query in every namespace of `scope` (each on a thread that has
/// entered it) while one /proc walk, on other threads, maps inodes to
/// owners: socket inodes are unique host-wide, so one walk serves all.
/// Sockets come back in `order` (the kernel's order when `None`). Notes and
/// warnings go to `report`.
pub fn collect_in(
    scope: &Scope,
    query: &sock_diag::Query,
    owners: Owners<'_>,
    order: Option<Order>,
    report: &mut Report,
) -> Result<Inventory> {
    let plan = PeerPlan { query: query.clone(), keep: None, extra: Vec::new() };
    collect_with_peers(scope, &plan, owners, order, report)
}

/// [`collect_in`] by a [`PeerPlan`]: the sockets its widened query found
/// beyond its own filter, and those of its extra queries, are candidates for
/// the other end of the connections, not in the inventory.
pub fn collect_with_peers(
    scope: &Scope,
    plan: &PeerPlan,
    owners: Owners<'_>,
    order: Option<Order>,
    report: &mut Report,
) -> Result<Inventory> {
    let query = &plan.query;
    // Set once the dump is done: what the walker's core may do meanwhile.
    let dumped = std::sync::atomic::AtomicBool::new(false);
    // Everything up to the sort runs while the walk does.
    let kernel_side = |report: &mut Report| -> Result<(Vec<Socket>, Vec<String>, Vec<Socket>)> {
        let dumps = dump_all(scope, query, false);
        dumped.store(true, std::sync::atomic::Ordering::Relaxed);
        timings::mark("kernel dump");
        let (mut sockets, failed) = merge(scope, dumps, report)?;
        let mut candidates = Vec::new();
        if let Some(f) = &plan.keep {
            // The kernel evaluated `f or mirror(f)`; `matches` is the same
            // evaluation, in user space.
            let (keep, other): (Vec<Socket>, Vec<Socket>) = sockets.into_iter().partition(|s| sock_diag::matches(f, s));
            sockets = keep;
            candidates = other;
        }
        if let Some(sort) = order {
            sort(&mut sockets);
            timings::mark("sorted");
        }
        // Namespaces that failed were reported with the main query.
        for q in &plan.extra {
            candidates.extend(
                merge(scope, dump_all(scope, q, true), &mut Report::default()).map(|(c, _)| c).unwrap_or_default(),
            );
        }
        Ok((sockets, failed, candidates))
    };
    let (source, details) = match owners {
        Owners::Resolve(src) => (Some(src), false),
        Owners::ResolveAll(src) => (Some(src), true),
        Owners::Skip => (None, false),
    };
    // A command that shows every owner's details (conns) wants them all;
    // the others want the owners of the few sockets dumped, which a source
    // may filter for in the kernel.
    let job = Job::new(details, !details);
    let (sockets, map, ahead) = match source {
        Some(src) => std::thread::scope(|s| {
            let walker = s.spawn(|| {
                let mut map = src.build(&job);
                timings::mark("owner map");
                // A map ready before the dump (BPF's usually is): this core
                // builds the owner lists of every socket it holds meanwhile,
                // when every one may be shown (conns).
                let ahead = match &mut map {
                    Ok(m) if details && !dumped.load(std::sync::atomic::Ordering::Relaxed) => {
                        let mut procs = ProcTable::new(std::path::Path::new("/proc"));
                        procs.seed(std::mem::take(&mut m.infos));
                        let lists = owner_lists(m, &mut procs);
                        timings::mark("owner lists built ahead");
                        Some((procs, lists))
                    }
                    _ => None,
                };
                (map, ahead)
            });
            let sockets = kernel_side(report);
            // The candidates for peers too: their owners are the peers' owners.
            if let Ok((socks, _, candidates)) = &sockets {
                // And the peers unix sockets name (perhaps not dumped).
                let peers = socks.iter().filter_map(|s| s.peer.as_ref().map(|p| p.inode));
                job.offer(socks.iter().chain(candidates).map(|s| s.inode).chain(peers).filter(|&i| i != 0).collect());
            } else {
                job.offer(Vec::new());
            }
            src.help(&job);
            let (map, ahead) =
                walker.join().unwrap_or_else(|_| (Err(std::io::Error::other("the owner source panicked")), None));
            (sockets, Some(map), ahead)
        }),
        None => (kernel_side(report), None, None),
    };
    let (mut sockets, failed, mut candidates) = sockets?;
    let mut unreadable_netns = Vec::new();
    if matches!(scope, Scope::WithOthers(..)) {
        unreadable_netns = failed;
    } else if !failed.is_empty() {
        report.warn(format!(
            "could not look into {} network namespace{}: {}",
            failed.len(),
            plural(failed.len()),
            failed.join("; ")
        ));
    }
    let mut map = match map {
        Some(m) => Some(m.map_err(owners_error)?),
        None => None,
    };
    let (mut procs, lists) = match ahead {
        Some((procs, lists)) => (procs, Some(lists)),
        None => (ProcTable::new(std::path::Path::new("/proc")), None),
    };
    if let (Some(map), Some(src)) = (&mut map, source) {
        report.info(src.describe());
        procs.seed(std::mem::take(&mut map.infos));
        if !candidates.is_empty() {
            // A socket both dumps found is one socket, not two candidates.
            let shown: std::collections::HashSet<(Option<u64>, u64)> =
                sockets.iter().map(|s| (s.netns_inode(), s.inode)).collect();
            candidates.retain(|c| !shown.contains(&(c.netns_inode(), c.inode)));
        }
        // Which connections have both ends here needs addresses only: it is
        // worked out on another core while the owners are looked up.
        let (found, pairs) = std::thread::scope(|s| {
            let pairs = s.spawn(|| crate::domain::peers::ip_pairs(&sockets, &candidates));
            let inodes = sockets.iter().map(|s| s.inode);
            let found = match lists {
                Some(lists) => {
                    let found = looked_up(inodes, map, &lists);
                    // While the pairs are still being found.
                    drop(lists);
                    found
                }
                None => owners_of(&inodes.collect::<Vec<_>>(), map, &mut procs),
            };
            (found, pairs.join())
        });
        let pairs = pairs.unwrap_or_else(|_| crate::domain::peers::ip_pairs(&sockets, &candidates));
        attach_found(&mut sockets, found, map, src, &mut procs, scope, report);
        timings::mark("owners attached");
        fill_owners(&mut candidates, None, map, &mut procs);
        link_peers(&mut sockets, &candidates, Some(pairs), map, &mut procs);
        timings::mark("peers linked");
    }
    Ok(Inventory { sockets, procs, map, unreadable_netns })
}

/// A failed owner source: `--owners-from bpf` saying why BPF is not
/// available is the user's error as it stands; anything else failed to
/// walk /proc.
fn owners_error(e: std::io::Error) -> anyhow::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<UserError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(user) = inner.downcast::<UserError>()
        {
            return anyhow::Error::new(*user);
        }
        return anyhow::anyhow!("the owner source failed");
    }
    anyhow::Error::new(e).context("could not walk /proc")
}

/// The dumps of all namespaces as one list, each socket tagged with its
/// namespace when that is not the current one. Namespaces that failed and
/// may be skipped come back as descriptions; others are an error.
fn merge(
    scope: &Scope,
    dumps: Vec<(Option<&Netns>, Result<sock_diag::Dump>)>,
    report: &mut Report,
) -> Result<(Vec<Socket>, Vec<String>)> {
    let mut sockets = Vec::new();
    let mut failed = Vec::new();
    for (ns, dump) in dumps {
        let dump = match dump {
            Ok(d) => d,
            Err(e) if tolerates_failure(scope, ns) => {
                failed.push(format!("{}: {e:#}", ns.map_or("?".to_string(), |n| n.describe())));
                continue;
            }
            Err(e) => return Err(e),
        };
        for n in dump.notes {
            report.note(n);
        }
        let mut socks = dump.sockets;
        if let Some(ns) = ns.filter(|n| !(is_main(scope, n) && n.current)) {
            for s in &mut socks {
                s.netns = Some(Box::new(ns.id.clone()));
            }
        }
        if sockets.is_empty() {
            // One namespace (the usual case): no copy of 20 MB of sockets.
            sockets = socks;
        } else {
            sockets.extend(socks);
        }
    }
    Ok((sockets, failed))
}

/// A namespace that cannot be read is skipped (and reported) only when the
/// user did not name it: with --all-netns, or as one of `who`'s others.
fn tolerates_failure(scope: &Scope, ns: Option<&Netns>) -> bool {
    match scope {
        Scope::All(_) => true,
        Scope::WithOthers(..) => ns.is_some_and(|n| !is_main(scope, n)),
        Scope::Current | Scope::One(_) => false,
    }
}

fn is_main(scope: &Scope, n: &Netns) -> bool {
    matches!(scope, Scope::WithOthers(main, _) if main.id.inode == n.id.inode)
}

/// One dump per namespace, each enriched (interface names) from inside it.
///
/// `who`'s other namespaces are asked for listeners and bound UDP sockets
/// only: the kernel keeps one established hash and one bind hash for all
/// namespaces and walks all of it for any dump that wants those states
/// (50 ms at 130k sockets), while listeners have a small table of their own.
fn dump_all<'a>(
    scope: &'a Scope,
    query: &sock_diag::Query,
    main_only: bool,
) -> Vec<(Option<&'a Netns>, Result<sock_diag::Dump>)> {
    // Unix sockets have a table per namespace: no need to spare the others.
    let others = if query.protos.iter().any(|p| p.has_ports()) {
        sock_diag::Query {
            states: StateSet::of(&[State::Listen, State::Unconn]),
            bound_inactive: false,
            any_state_raw: false,
            ..query.clone()
        }
    } else {
        query.clone()
    };
    let one = |q: &sock_diag::Query| -> Result<sock_diag::Dump> {
        let mut d = match sock_diag::dump(q) {
            Ok(d) => d,
            // What the user asked cannot be answered here: their error, not the kernel's.
            Err(sock_diag::DiagError::Untestable(msg)) => return Err(UserError::new(msg).into()),
            Err(e) => return Err(anyhow::Error::from(e).context("could not read the kernel's socket table")),
        };
        enrich(&mut d.sockets);
        Ok(d)
    };
    scope
        .namespaces()
        .into_iter()
        .filter(|ns| !main_only || !matches!((scope, ns), (Scope::WithOthers(..), Some(n)) if !is_main(scope, n)))
        .map(|ns| {
            let q = match (scope, ns) {
                (Scope::WithOthers(..), Some(n)) if !is_main(scope, n) => &others,
                _ => query,
            };
            let r = match ns {
                None => one(q),
                Some(n) => n.run(|| one(q)).map_err(anyhow::Error::from).and_then(|r| r),
            };
            (ns, r)
        })
        .collect()
}

/// Fills `owners` / `owners_hidden` / `unheld` (and, from a source that
/// read the sockets, `reuseaddr` / `reuseport`), and tells the report what
/// stayed unknown.
///
/// A socket the walk found no holder for may have been opened after the
/// walk read its process (the walk and the dump run at once): its likely
/// holders, and processes started since, are read once more before the
/// socket is called hidden or unheld. When every process could be read, a
/// socket nobody holds is in flight in a unix socket message or the
/// kernel's own; a source with socket iterators (BPF) tells which.
pub fn attach_owners(
    sockets: &mut [Socket],
    map: &mut OwnerMap,
    source: &dyn OwnerSource,
    procs: &mut ProcTable,
    scope: &Scope,
    report: &mut Report,
) {
    let inodes: Vec<u64> = sockets.iter().map(|s| s.inode).collect();
    let found = owners_of(&inodes, map, procs);
    attach_found(sockets, found, map, source, procs, scope, report);
}

/// [`attach_owners`] with every socket's owners looked up already
/// ([`owners_of`] their inodes, in order).
fn attach_found(
    sockets: &mut [Socket],
    found: Vec<(std::sync::Arc<[Owner]>, Option<u8>)>,
    map: &mut OwnerMap,
    source: &dyn OwnerSource,
    procs: &mut ProcTable,
    scope: &Scope,
    report: &mut Report,
) {
    apply_owners(sockets, None, found);
    let mut missed = unheld(sockets, 0..sockets.len());
    if !missed.is_empty() && source.recheck(map, &likely_holders(sockets, &missed)) > 0 {
        fill_owners(sockets, Some(&missed), map, procs);
        missed = unheld(sockets, missed);
    }
    if !missed.is_empty() {
        // What the kernel's socket tables say (BPF): a socket no file
        // refers to is the kernel's, whoever could not be read; one with a
        // file but no descriptor portctl saw is in flight — unless a
        // process it could not read holds it.
        classify(sockets, &missed, source, scope);
        let denied = !map.denied.is_empty();
        let mut hidden = 0usize;
        let mut counts: Vec<(Unheld, usize)> = Vec::new();
        for &i in &missed {
            let s = &mut sockets[i];
            let why = s.unheld.unwrap_or(Unheld::NoProcess);
            if denied && why != Unheld::Kernel {
                s.owners_hidden = true;
                if why == Unheld::NoProcess {
                    s.unheld = None;
                }
                hidden += 1;
                continue;
            }
            match counts.iter_mut().find(|(u, _)| *u == why) {
                Some((_, n)) => *n += 1,
                None => counts.push((why, 1)),
            }
        }
        for (why, n) in counts {
            let what = if own_pid_namespace() || why == Unheld::Kernel {
                why.explain().to_string()
            } else {
                "held by no process visible in portctl's PID namespace".to_string()
            };
            report.note(format!("{n} socket{} {what}", plural(n)));
        }
        if hidden > 0 {
            let named: Vec<String> =
                map.denied.iter().take(3).map(|&pid| format!("{pid} ({})", procs.info(pid).name)).collect();
            let more = map.denied.len().saturating_sub(named.len());
            let processes = format!(
                "process{} {}{}",
                if map.denied.len() == 1 { "" } else { "es" },
                named.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() },
            );
            if crate::sys::is_root() {
                // Not a matter of permissions: root read everything it may.
                report.warn(format!(
                    "{hidden} socket{} held by no process portctl could read: in flight in a unix socket message, kept by the kernel, or held by {processes}, hidden by a sandbox or LSM even from root",
                    plural(hidden)
                ));
            } else {
                report.warn(format!(
                    "owners of {hidden} socket{} are hidden: could not read the descriptors of {processes}{}",
                    plural(hidden),
                    permission_hint()
                ));
            }
        }
    }
    for (pid, e) in map.errors.iter().take(3) {
        report.warn(format!("could not read /proc/{pid}/fd: {e}"));
    }
}

/// Why each socket of `missed` (every process read, no holder) has none:
/// what the socket iterators say, per namespace, or "no process" when the
/// source has none.
fn classify(sockets: &mut [Socket], missed: &[usize], source: &dyn OwnerSource, scope: &Scope) {
    let mut by_ns: Vec<(Option<u64>, Vec<usize>)> = Vec::new();
    for &i in missed {
        sockets[i].unheld = Some(Unheld::NoProcess);
        let ns = sockets[i].netns_inode();
        match by_ns.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, v)) => v.push(i),
            None => by_ns.push((ns, vec![i])),
        }
    }
    for (ns, which) in by_ns {
        let netns = match ns {
            None => None,
            Some(inode) => match scope.namespaces().into_iter().flatten().find(|n| n.id.inode == inode) {
                Some(n) => Some(n),
                None => continue,
            },
        };
        let q = SocketQuery {
            tcp: which.iter().any(|&i| sockets[i].proto == Proto::Tcp),
            udp: which.iter().any(|&i| sockets[i].proto == Proto::Udp),
            port: None,
            inodes: which.iter().map(|&i| sockets[i].inode).collect(),
            netns,
        };
        let Some(Ok(recs)) = source.kernel_sockets(&q) else { continue };
        for &i in &which {
            let s = &mut sockets[i];
            if let Some(r) = recs.iter().find(|r| r.inode == s.inode && r.udp == (s.proto == Proto::Udp)) {
                s.unheld = Some(if r.bits & (records::NO_FILE | records::KERNEL) != 0 {
                    Unheld::Kernel
                } else {
                    Unheld::InFlight
                });
                set_flags(s, crate::procs::bpf::socket_flags(r.bits));
            }
        }
    }
}

/// Whether portctl runs in the initial PID namespace, where every process
/// is visible in /proc.
fn own_pid_namespace() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("NSpid:")).map(|ids| ids.split_whitespace().count() == 1))
        .unwrap_or(true)
}

/// SO_REUSEADDR / SO_REUSEPORT from a source's [`crate::procs::flags`].
fn set_flags(s: &mut Socket, f: u8) {
    if f & flags::KNOWN != 0 && s.proto.has_ports() {
        s.reuseaddr = Some(f & flags::REUSEADDR != 0);
        s.reuseport = Some(f & flags::REUSEPORT != 0);
    }
}

/// The socket options of the sockets on `port` in `netns` that no
/// descriptor shows (TIME_WAIT, orphans: inode 0), matched by their
/// addresses, from the source's socket iterators (BPF); those with an inode
/// got theirs with the owners. Returns whether the source could tell.
pub fn kernel_flags(sockets: &mut [Socket], source: &dyn OwnerSource, port: u16, netns: Option<&Netns>) -> bool {
    let want: Vec<usize> =
        (0..sockets.len()).filter(|&i| sockets[i].reuseaddr.is_none() && sockets[i].port() == port).collect();
    if want.is_empty() {
        return true;
    }
    let q = SocketQuery {
        tcp: want.iter().any(|&i| sockets[i].proto == Proto::Tcp),
        udp: want.iter().any(|&i| sockets[i].proto == Proto::Udp),
        port: Some(port),
        inodes: Vec::new(),
        netns,
    };
    let Some(Ok(recs)) = source.kernel_sockets(&q) else { return false };
    for i in want {
        let s = &mut sockets[i];
        let (Some(local), remote) = (s.local_ip(), s.remote_ip()) else { continue };
        let same = |r: &&records::SockRec| {
            r.udp == (s.proto == Proto::Udp)
                && (if s.inode != 0 { r.inode == s.inode } else { r.inode == 0 })
                && crate::model::unmapped(r.local) == crate::model::unmapped(local.addr)
                && r.sport == local.port
                && remote.is_none_or(|e| {
                    crate::model::unmapped(r.remote) == crate::model::unmapped(e.addr) && r.dport == e.port
                })
        };
        if let Some(r) = recs.iter().find(same) {
            set_flags(s, crate::procs::bpf::socket_flags(r.bits));
        }
    }
    true
}

/// Sets the owners of the sockets at `which` (of every one when `None`)
/// from the map.
fn fill_owners(sockets: &mut [Socket], which: Option<&[usize]>, map: &OwnerMap, procs: &mut ProcTable) {
    let inodes: Vec<u64> = match which {
        Some(w) => w.iter().map(|&i| sockets[i].inode).collect(),
        None => sockets.iter().map(|s| s.inode).collect(),
    };
    let found = owners_of(&inodes, map, procs);
    apply_owners(sockets, which, found);
}

/// Writes the owners (and flags) looked up for `which` sockets (all when
/// `None`), in that order.
fn apply_owners(sockets: &mut [Socket], which: Option<&[usize]>, found: Vec<(std::sync::Arc<[Owner]>, Option<u8>)>) {
    for (n, (owners, flags)) in found.into_iter().enumerate() {
        let i = which.map_or(n, |w| w[n]);
        if let Some(f) = flags {
            set_flags(&mut sockets[i], f);
        }
        sockets[i].owners = owners;
    }
}

/// The owners of each inode, from the map, and the socket's flags as the
/// first descriptor's link carries them.
fn owners_of(inodes: &[u64], map: &OwnerMap, procs: &mut ProcTable) -> Vec<(std::sync::Arc<[Owner]>, Option<u8>)> {
    // Sockets of one process tend to come together: skip the table lookup.
    let mut last: Option<std::sync::Arc<crate::procs::ProcInfo>> = None;
    let links = map.owners_of_all(inodes);
    links
        .into_iter()
        .map(|links| match links.first() {
            None => (crate::model::no_owners(), None),
            Some(first) => (owner_list(links, &mut last, procs), Some(first.flags)),
        })
        .collect()
}

/// One socket's owners: a holder per link (one inode's links).
fn owner_list(
    links: &[crate::procs::Link],
    last: &mut Option<std::sync::Arc<crate::procs::ProcInfo>>,
    procs: &mut ProcTable,
) -> std::sync::Arc<[Owner]> {
    links
        .iter()
        .map(|l| {
            let p = match last.as_ref() {
                Some(p) if p.pid == l.pid => p.clone(),
                _ => {
                    let p = procs.info(l.pid);
                    *last = Some(p.clone());
                    p
                }
            };
            Owner {
                pid: l.pid,
                name: p.name.clone(),
                user: p.user.clone(),
                fd: l.fd,
                tid: l.thread(),
                cmdline: p.cmdline.clone(),
                context: None,
            }
        })
        .collect()
}

/// Every inode's owners as [`owners_of`] gives them, for all the sockets
/// the map knows: by the index in [`OwnerMap::links`] of each inode's first
/// link.
type OwnerLists = Vec<Option<std::sync::Arc<[Owner]>>>;

fn owner_lists(map: &OwnerMap, procs: &mut ProcTable) -> OwnerLists {
    let mut last = None;
    let mut lists = vec![None; map.links().len()];
    let mut at = 0;
    for links in map.links().chunk_by(|a, b| a.inode == b.inode) {
        lists[at] = Some(owner_list(links, &mut last, procs));
        at += links.len();
    }
    lists
}

/// [`owners_of`] from lists built ahead (of the same map).
fn looked_up(
    inodes: impl ExactSizeIterator<Item = u64> + Clone,
    map: &OwnerMap,
    lists: &OwnerLists,
) -> Vec<(std::sync::Arc<[Owner]>, Option<u8>)> {
    map.link_ranges(inodes)
        .into_iter()
        .map(|r| match lists.get(r.start as usize).and_then(Option::as_ref).filter(|_| !r.is_empty()) {
            Some(owners) => (owners.clone(), Some(map.links()[r.start as usize].flags)),
            None => (crate::model::no_owners(), None),
        })
        .collect()
}

/// Those of `which` that have a file (so some process holds them) but no
/// owner found.
fn unheld(sockets: &[Socket], which: impl IntoIterator<Item = usize>) -> Vec<usize> {
    which.into_iter().filter(|&i| sockets[i].owners.is_empty() && !sockets[i].is_unowned_by_nature()).collect()
}

/// The processes likely to hold the sockets in `missed`: those holding
/// another socket, in the same namespace, on the same local port (a server
/// holds the connections its listener accepted) or to the same remote
/// endpoint (a client's connection pool).
fn likely_holders(sockets: &[Socket], missed: &[usize]) -> Vec<u32> {
    use std::collections::HashSet;
    let port = |s: &Socket| (s.netns_inode(), s.proto, s.port());
    let peer = |s: &Socket| s.remote_ip().map(|r| (s.netns_inode(), s.proto, r));
    let ports: HashSet<_> = missed.iter().map(|&i| port(&sockets[i])).collect();
    let peers: HashSet<_> = missed.iter().filter_map(|&i| peer(&sockets[i])).collect();
    let mut pids: Vec<u32> = sockets
        .iter()
        .filter(|s| !s.owners.is_empty() && (ports.contains(&port(s)) || peer(s).is_some_and(|p| peers.contains(&p))))
        .flat_map(|s| s.owners.iter().map(|o| o.pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// `--context`: each owner's systemd unit and container.
pub fn attach_context(sockets: &mut [Socket], procs: &mut ProcTable) {
    for s in sockets.iter_mut() {
        s.owners = with_context(&s.owners, procs);
        if let Some(p) = s.peer.as_mut() {
            p.owners = with_context(&p.owners, procs);
        }
    }
}

fn with_context(owners: &[Owner], procs: &mut ProcTable) -> std::sync::Arc<[Owner]> {
    owners.iter().map(|o| Owner { context: procs.context(o.pid).map(Box::new), ..o.clone() }).collect()
}

/// What a user who is not root can do about hidden owners.
fn permission_hint() -> &'static str {
    "; run with sudo, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (or CAP_BPF and CAP_PERFMON)"
}

/// Service names and interface names.
pub fn enrich(sockets: &mut [Socket]) {
    let mut ifaces: Option<HashMap<IpAddr, crate::model::IfName>> = None;
    for s in sockets.iter_mut() {
        let Some(local) = s.local_ip() else { continue };
        if s.exposure == Exposure::Address && s.interface.is_none() {
            let map = ifaces.get_or_insert_with(|| {
                crate::sys::interface_addresses().into_iter().map(|(a, n)| (a, n.into())).collect()
            });
            s.interface = map.get(&unmapped(local.addr)).cloned();
        }
        if !s.proto.has_ports() {
            continue;
        }
        let local_name = services::name(s.proto, local.port);
        let listening = matches!(s.state, State::Listen | State::Unconn);
        s.service = match (listening, local_name) {
            (true, n) | (false, n @ Some(_)) => n,
            (false, None) => s.remote_ip().and_then(|r| services::name(s.proto, r.port)),
        }
        .map(std::borrow::Cow::Borrowed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;
    use crate::procs::ProcWalk;
    use crate::procs::tests::fake_proc;

    proptest::proptest! {
        /// The owner lists built ahead (while the dump runs) give what the
        /// lookup after it gives: the same holders, descriptors, threads and
        /// flags for every inode, held or not, repeated or not.
        #[test]
        fn lists_built_ahead_match_the_lookup(
            links in proptest::collection::vec((1u64..60, 1u32..6, 3u32..9, 0u32..2, 0u8..8), 0..120),
            inodes in proptest::collection::vec(0u64..70, 0..80),
        ) {
            let links = links
                .into_iter()
                .map(|(inode, pid, fd, tid, flags)| crate::procs::Link { inode, pid, fd, tid: tid * (pid + 100), flags })
                .collect();
            let map = OwnerMap::from_links(links, Vec::new());
            // No such processes: their details are unknown, alike both ways.
            let mut procs = ProcTable::new(std::path::Path::new("/nonexistent/portctl-test-proc"));
            let lists = owner_lists(&map, &mut procs);
            let ahead = looked_up(inodes.iter().copied(), &map, &lists);
            let after = owners_of(&inodes, &map, &mut procs);
            // (pid, fd, tid) of each holder, and the flags.
            type Seen = (Vec<(u32, u32, Option<u32>)>, Option<u8>);
            let view = |v: &[(std::sync::Arc<[Owner]>, Option<u8>)]| -> Vec<Seen> {
                v.iter().map(|(o, f)| (o.iter().map(|o| (o.pid, o.fd, o.tid)).collect(), *f)).collect()
            };
            proptest::prop_assert_eq!(view(&ahead), view(&after));
        }
    }

    /// The walk and the dump run at once: a connection a server accepted,
    /// or a client opened, after the walk read that process shows up in the
    /// dump with no holder. It gets its owner from the recheck, not
    /// "hidden" or "no process".
    #[test]
    fn socket_opened_after_the_walk_gets_its_owner() {
        let tree = fake_proc(&[(100, &[(3, "socket:[5001]")]), (200, &[(3, "socket:[7001]")]), (300, &[])]);
        for (pid, comm) in [(100, "server"), (200, "client"), (300, "idle")] {
            let stat = format!("{pid} ({comm}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0\n");
            std::fs::write(tree.path().join(format!("{pid}/stat")), stat).unwrap();
        }
        let source = ProcWalk { root: tree.path().to_path_buf(), threads: 2 };
        let mut map = source.build(&Job::default()).unwrap();
        std::os::unix::fs::symlink("socket:[6001]", tree.path().join("100/fd/7")).unwrap();
        std::os::unix::fs::symlink("socket:[7002]", tree.path().join("200/fd/8")).unwrap();
        let tcp = |state, local, remote, inode| Socket::sample(Proto::Tcp, state, local, remote, inode);
        let mut sockets = vec![
            tcp(State::Listen, "127.0.0.1:8080", None, 5001),
            tcp(State::Established, "127.0.0.1:8080", Some("127.0.0.1:40000"), 6001),
            tcp(State::Established, "127.0.0.1:50000", Some("10.0.0.9:443"), 7001),
            tcp(State::Established, "127.0.0.1:50001", Some("10.0.0.9:443"), 7002),
            tcp(State::Established, "127.0.0.1:9090", Some("127.0.0.1:40001"), 6002),
            tcp(State::TimeWait, "127.0.0.1:8080", Some("127.0.0.1:40002"), 0),
        ];
        let mut procs = ProcTable::new(tree.path());
        let mut report = Report::default();
        attach_owners(&mut sockets, &mut map, &source, &mut procs, &Scope::Current, &mut report);
        let owners: Vec<Vec<(u32, u32, &str)>> =
            sockets.iter().map(|s| s.owners.iter().map(|o| (o.pid, o.fd, &*o.name)).collect()).collect();
        assert_eq!(
            owners,
            [
                vec![(100, 3, "server")],
                vec![(100, 7, "server")],
                vec![(200, 3, "client")],
                vec![(200, 8, "client")],
                vec![],
                vec![]
            ]
        );
        assert!(sockets.iter().all(|s| !s.owners_hidden));
        // The one socket nobody holds (every process was read): a note,
        // counted once, that says what that means; TIME_WAIT is unheld by
        // nature and not counted.
        assert_eq!(sockets[4].unheld, Some(Unheld::NoProcess));
        assert_eq!(sockets[5].unheld, None);
        assert_eq!(report.lines().len(), 1, "{:?}", report.lines());
        assert_eq!(
            report.lines()[0],
            "portctl: note: 1 socket held by no process: in flight in a unix socket message, or by the kernel"
        );
    }

    /// A source that is not the /proc walk: fixed links, a process it could
    /// not read, and a second look that finds one more link. The inventory
    /// attaches what any source finds, rechecks through the source, and
    /// says "hidden" only when the source could not read everything.
    struct Fake {
        links: Vec<crate::procs::Link>,
        denied: Vec<u32>,
        late: Option<crate::procs::Link>,
    }

    impl OwnerSource for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn build(&self, _job: &Job) -> std::io::Result<OwnerMap> {
            Ok(OwnerMap::from_links(self.links.clone(), self.denied.clone()))
        }

        fn recheck(&self, map: &mut OwnerMap, _candidates: &[u32]) -> usize {
            match self.late {
                Some(l) => {
                    let mut links = map.links().to_vec();
                    links.push(l);
                    *map = OwnerMap::from_links(links, map.denied.clone());
                    1
                }
                None => 0,
            }
        }
    }

    #[test]
    fn any_owner_source_plugs_in() {
        use crate::procs::Link;
        let tcp = |local, inode| Socket::sample(Proto::Tcp, State::Listen, local, None, inode);
        let mut sockets = vec![tcp("127.0.0.1:80", 11), tcp("127.0.0.1:81", 12), tcp("127.0.0.1:82", 13)];
        let source = Fake {
            links: vec![
                Link { inode: 11, pid: 900, fd: 3, tid: 0, flags: 0 },
                Link { inode: 11, pid: 901, fd: 3, tid: 0, flags: 0 },
            ],
            denied: vec![],
            late: Some(Link { inode: 12, pid: 902, fd: 4, tid: 0, flags: 0 }),
        };
        let mut procs = ProcTable::new(std::path::Path::new("/nonexistent-proc"));
        let mut report = Report::default();
        let mut map = source.build(&Job::default()).unwrap();
        attach_owners(&mut sockets, &mut map, &source, &mut procs, &Scope::Current, &mut report);
        let pids: Vec<Vec<u32>> = sockets.iter().map(|s| s.owners.iter().map(|o| o.pid).collect()).collect();
        assert_eq!(pids, [vec![900, 901], vec![902], vec![]]);
        assert!(!sockets[2].owners_hidden, "everything was read: unheld, not hidden");
        assert!(report.lines()[0].contains("1 socket held by no process"), "{:?}", report.lines());

        let denied = Fake { links: vec![], denied: vec![1], late: None };
        let mut map = denied.build(&Job::default()).unwrap();
        let mut report = Report::default();
        let mut one = vec![tcp("127.0.0.1:83", 14)];
        attach_owners(&mut one, &mut map, &denied, &mut procs, &Scope::Current, &mut report);
        assert!(one[0].owners_hidden, "a process the source could not read may hold it");
        // Root is not told to use sudo: what could not be read is named.
        let want = if crate::sys::is_root() {
            "1 socket held by no process portctl could read"
        } else {
            "owners of 1 socket are hidden"
        };
        assert!(report.lines()[0].contains(want), "{:?}", report.lines());
    }
}
