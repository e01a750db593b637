//! The rule graph both front ends lower to, and the walk from the base
//! chains to the NAT statements.
//!
//! nftables JSON ([`super::nft`]) and iptables-save text
//! ([`super::iptables`]) become [`IrTable`]s: chains of [`IrRule`]s, each a
//! list of conditions and one action. The walk starts at every base chain
//! hooked at prerouting or output, carries the conditions met so far (a
//! `Ctx`), follows jumps, gotos and verdict-map branches, and emits an
//! [`Entry`] at each dnat / redirect / tproxy. Paths that contradict
//! themselves (dport 30080, then dport 80; `! -d 127.0.0.0/8`, then `-d
//! 127.0.0.1`) are pruned. ACCEPT or RETURN under conditions before a NAT
//! rule is not modelled: the rule after it is still reported (an
//! over-approximation, never a port missed).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::model::PortRange;

use super::model::RuleSource;

/// What portctl skipped or did not interpret, with counts (`-v` prints it).
pub type Skipped = BTreeMap<String, u64>;

pub fn bump(s: &mut Skipped, k: impl Into<String>) {
    *s.entry(k.into()).or_default() += 1;
}

/// The hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Output,
}

/// What the rule does to the packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// DNAT to `addr` (None: unchanged) and `port` (None: unchanged).
    Dnat {
        addr: Option<String>,
        port: Option<PortRange>,
        /// iptables' `--to-destination a:p1-p2/base` (a port-range shift).
        port_base: Option<u16>,
    },
    /// REDIRECT to a local port (None: the same port).
    Redirect { port: Option<PortRange> },
    /// TPROXY to a local socket.
    Tproxy { addr: Option<String>, port: Option<u16> },
}

/// `-d 127.0.0.1/32`, `ip daddr != 127.0.0.0/8`, `ip daddr @set`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddrMatch {
    pub negated: bool,
    /// Addresses or prefixes, or `@set` when the set could not be read.
    pub values: Vec<String>,
}

/// `-i eth0`, `! -i docker0`, `iif "eth0"`, `iifname != "br0"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfMatch {
    pub negated: bool,
    pub names: Vec<String>,
}

/// The restrictions met on the way to the NAT statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Matches {
    pub daddr: Vec<AddrMatch>,
    pub iif: Vec<IfMatch>,
    /// `-m addrtype --dst-type LOCAL` / `fib daddr type local` on the path.
    pub dst_local: bool,
    pub saddr: Vec<AddrMatch>,
    /// Uninterpreted restrictions, by name.
    pub other: Vec<String>,
}

/// One step of the path: a rule of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// `ip nat`, `inet netavark`.
    pub table: Arc<str>,
    pub chain: Arc<str>,
    /// nft: the rule handle; iptables: the 1-based position.
    pub rule: u64,
}

/// A NAT statement reached from a base chain, with what it takes to get
/// there.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub source: RuleSource,
    /// `ip`, `ip6`, `inet`.
    pub family: String,
    /// None: any protocol.
    pub proto: Option<String>,
    /// None: any port.
    pub ports: Option<Vec<PortRange>>,
    pub target: Target,
    pub matches: Matches,
    /// Base chain first, NAT rule last.
    pub path: Vec<Hop>,
    /// The NAT rule's comment, else the nearest on the path.
    pub comment: Option<String>,
    /// `docker`, `podman`, `cni`, `kubernetes`.
    pub owner: Option<&'static str>,
    /// Kubernetes `ns/svc:port`.
    pub service: Option<String>,
    /// A container id the layout names (netavark, CNI comments).
    pub container_id: Option<String>,
    pub prerouting: bool,
    pub output: bool,
    /// The OUTPUT path's matches when they differ from `matches`.
    pub output_matches: Option<Matches>,
}

impl Entry {
    /// Whether it translates `port` of `proto`.
    pub fn covers(&self, proto: &str, port: u16) -> bool {
        self.proto.as_deref().is_none_or(|p| p == proto)
            && self.ports.as_ref().is_none_or(|v| v.iter().any(|r| r.contains(port)))
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Layer-4 protocol in this set.
    Proto(Vec<String>),
    /// Destination port in these ranges.
    Dport(Vec<PortRange>),
    Daddr(AddrMatch),
    Saddr(AddrMatch),
    Iif(IfMatch),
    /// Destination address type LOCAL (true: negated, not local).
    DstLocal(bool),
    /// A restriction portctl does not interpret, by name.
    Other(String),
}

#[derive(Debug, Clone)]
pub enum Action {
    None,
    Jump(String),
    Goto(String),
    Nat(Target),
    /// Verdict-map branches: the conditions each key implies, and the chain.
    Branches(Vec<(Vec<Cond>, String)>),
    /// NAT through a map (`dnat to tcp dport map { 80 : 10.0.0.1 . 8080 }`).
    NatBranches(Vec<(Vec<Cond>, Target)>),
}

#[derive(Debug, Clone)]
pub struct IrRule {
    pub conds: Vec<Cond>,
    pub action: Action,
    pub comment: Option<String>,
    /// nft handle or iptables 1-based position.
    pub id: u64,
    /// What the front end could not interpret in this rule; counted when
    /// the walk reaches the rule (so `-v` names what mattered, not the
    /// filter chains no packet to a published port goes through).
    pub skipped: Skipped,
}

#[derive(Debug)]
pub struct IrTable {
    pub source: RuleSource,
    /// `ip`, `ip6`, `inet` (nft); `ip` / `ip6` for iptables.
    pub family: String,
    pub name: String,
    pub chains: HashMap<Arc<str>, Vec<IrRule>>,
    /// The base chains worth walking, with their hook.
    pub base: Vec<(String, Hook)>,
}

impl IrTable {
    pub fn new(source: RuleSource, family: &str, name: &str) -> IrTable {
        IrTable { source, family: family.to_string(), name: name.to_string(), chains: HashMap::new(), base: Vec::new() }
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.family, self.name)
    }
}

/// A port range of one port.
pub fn one(p: u16) -> PortRange {
    PortRange { lo: p, hi: p }
}

fn intersect(a: PortRange, b: PortRange) -> Option<PortRange> {
    let lo = a.lo.max(b.lo);
    let hi = a.hi.min(b.hi);
    (lo <= hi).then_some(PortRange { lo, hi })
}

#[derive(Debug, Clone, Default)]
struct Ctx {
    protos: Option<Vec<String>>,
    ports: Option<Vec<PortRange>>,
    m: Matches,
    path: Vec<Hop>,
    comments: Vec<String>,
}

impl Ctx {
    /// The context after `conds`; None if they contradict what is known.
    fn apply(&self, conds: &[Cond]) -> Option<Ctx> {
        let mut c = self.clone();
        for cond in conds {
            match cond {
                Cond::Proto(ps) => {
                    let new: Vec<String> = match &c.protos {
                        None => ps.clone(),
                        Some(old) => old.iter().filter(|p| ps.contains(p)).cloned().collect(),
                    };
                    if new.is_empty() {
                        return None;
                    }
                    c.protos = Some(new);
                }
                Cond::Dport(rs) => {
                    let new: Vec<PortRange> = match &c.ports {
                        None => rs.clone(),
                        Some(old) => {
                            old.iter().flat_map(|&a| rs.iter().filter_map(move |&b| intersect(a, b))).collect()
                        }
                    };
                    if new.is_empty() {
                        return None;
                    }
                    c.ports = Some(new);
                }
                Cond::Daddr(a) => {
                    if contradicts(&c.m.daddr, a) {
                        return None;
                    }
                    push_unique(&mut c.m.daddr, a.clone())
                }
                Cond::Saddr(a) => push_unique(&mut c.m.saddr, a.clone()),
                Cond::Iif(i) => push_unique(&mut c.m.iif, i.clone()),
                Cond::DstLocal(true) => push_unique(&mut c.m.other, "!dst-type-local".to_string()),
                Cond::DstLocal(false) => c.m.dst_local = true,
                Cond::Other(o) => push_unique(&mut c.m.other, o.clone()),
            }
        }
        Some(c)
    }
}

/// `10.0.0.0/8`, `127.0.0.1`, `fd00::5/64` -> (address, prefix length).
pub fn prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if l.is_empty() { max } else { l.parse().ok()? };
    (len <= max).then_some((ip, len))
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

/// Whether prefix `a` lies inside prefix `b`; None when they cannot be
/// compared (sets, other family, not an address).
pub fn inside(a: &str, b: &str) -> Option<bool> {
    let ((ia, la), (ib, lb)) = (prefix(a)?, prefix(b)?);
    let ((xa, wa), (xb, wb)) = (bits(ia), bits(ib));
    if wa != wb {
        return None;
    }
    if la < lb {
        return Some(false);
    }
    let shift = u32::from(wb - lb);
    Some(lb == 0 || (xa >> shift) == (xb >> shift))
}

/// Whether an address lies inside a prefix (or equals an address).
pub fn addr_in(ip: IpAddr, p: &str) -> bool {
    let Some((ib, lb)) = prefix(p) else { return false };
    let ((xa, wa), (xb, wb)) = (bits(ip), bits(ib));
    if wa != wb {
        return false;
    }
    let shift = u32::from(wb - lb);
    lb == 0 || (xa >> shift) == (xb >> shift)
}

/// Whether adding `new` to the destination matches `have` makes the path
/// impossible (Docker: OUTPUT `! -d 127.0.0.0/8`, then `-d 127.0.0.1`).
fn contradicts(have: &[AddrMatch], new: &AddrMatch) -> bool {
    let all_inside = |vals: &[String], negs: &[String]| {
        !vals.is_empty() && vals.iter().all(|v| negs.iter().any(|n| inside(v, n) == Some(true)))
    };
    let disjoint = |a: &[String], b: &[String]| {
        a.iter().all(|x| b.iter().all(|y| inside(x, y) == Some(false) && inside(y, x) == Some(false)))
    };
    have.iter().any(|h| match (h.negated, new.negated) {
        (true, false) => all_inside(&new.values, &h.values),
        (false, true) => all_inside(&h.values, &new.values),
        (false, false) => disjoint(&h.values, &new.values),
        (true, true) => false,
    })
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// An emission before PREROUTING and OUTPUT paths are merged.
struct Emit {
    hook: Hook,
    proto: Option<String>,
    ports: Option<Vec<PortRange>>,
    target: Target,
    m: Matches,
    path: Vec<Hop>,
    comment: Option<String>,
}

/// Jumps deep, and rules visited per table: beyond these the walk stops
/// (counted as skipped) instead of running away on a pathological ruleset.
const MAX_DEPTH: usize = 48;
const MAX_VISITS: u64 = 2_000_000;

struct Walk<'a> {
    t: &'a IrTable,
    query: Query<'a>,
    label: Arc<str>,
    hook: Hook,
    stack: Vec<&'a str>,
    emits: Vec<Emit>,
    visits: u64,
    max: u64,
    skipped: &'a mut Skipped,
    /// Rules whose own skips were counted already.
    counted: std::collections::HashSet<*const IrRule>,
}

/// A question about one port: the protocols and the port.
pub type Query<'q> = Option<(&'q [&'q str], u16)>;

/// Walks one table and appends what it publishes to `out`. With `query` =
/// (protocols, port), every branch that cannot match is pruned at once (a
/// 4,000-service kube-proxy map is then one branch, not 4,000).
pub fn walk_table(t: &IrTable, query: Query<'_>, skipped: &mut Skipped, out: &mut Vec<Entry>) {
    walk_limited(t, query, MAX_VISITS, skipped, out)
}

fn walk_limited(t: &IrTable, query: Query<'_>, max: u64, skipped: &mut Skipped, out: &mut Vec<Entry>) {
    let label: Arc<str> = t.label().into();
    let mut w = Walk {
        t,
        query,
        label,
        hook: Hook::Prerouting,
        stack: Vec::new(),
        emits: Vec::new(),
        visits: 0,
        max,
        skipped,
        counted: Default::default(),
    };
    // iptables' base chains are assumed (PREROUTING, OUTPUT): one that the
    // output does not declare has no rules, which is not a missing jump target.
    for (chain, hook) in t.base.iter().filter(|(c, _)| t.chains.contains_key(c.as_str())) {
        w.hook = *hook;
        w.chain(chain, &Ctx::default());
    }
    if w.visits > max {
        bump(w.skipped, format!("walk-stopped-after-{max}-rules:{}", w.label));
    }
    let emits = std::mem::take(&mut w.emits);
    merge(t, emits, out);
}

impl<'a> Walk<'a> {
    /// `ctx.apply(conds)`, None also when the result cannot match the
    /// query (the rule's own ports are kept: a range stays a range).
    fn step(&self, ctx: &Ctx, conds: &[Cond]) -> Option<Ctx> {
        let c = ctx.apply(conds)?;
        if let Some((protos, port)) = self.query {
            let proto_ok = c.protos.as_ref().is_none_or(|v| v.iter().any(|p| protos.contains(&p.as_str())));
            let port_ok = c.ports.as_ref().is_none_or(|v| v.iter().any(|r| r.contains(port)));
            if !proto_ok || !port_ok {
                return None;
            }
        }
        Some(c)
    }

    fn chain(&mut self, chain: &str, ctx: &Ctx) {
        let t = self.t;
        let Some((name, rules)) = t.chains.get_key_value(chain) else {
            bump(self.skipped, format!("missing-chain:{} {chain}", self.label));
            return;
        };
        if self.stack.len() >= MAX_DEPTH || self.stack.contains(&&**name) {
            bump(self.skipped, format!("loop-or-too-deep:{} {chain}", self.label));
            return;
        }
        self.stack.push(name);
        for r in rules {
            self.visits += 1;
            if self.visits > self.max {
                break;
            }
            if !r.skipped.is_empty() && self.counted.insert(r as *const IrRule) {
                for (k, n) in &r.skipped {
                    *self.skipped.entry(k.clone()).or_default() += n;
                }
            }
            if matches!(r.action, Action::None) {
                continue; // ACCEPT, RETURN, MARK...: nothing to follow or emit
            }
            let Some(mut c) = self.step(ctx, &r.conds) else {
                continue; // contradicts the path (or the query): unreachable from here
            };
            c.path.push(Hop { table: self.label.clone(), chain: Arc::clone(name), rule: r.id });
            if let Some(cm) = &r.comment {
                c.comments.push(cm.clone());
            }
            match &r.action {
                Action::None => {}
                Action::Jump(to) | Action::Goto(to) => self.chain(to, &c),
                Action::Branches(bs) => {
                    for (conds, to) in bs {
                        if let Some(c2) = self.step(&c, conds) {
                            self.chain(to, &c2);
                        }
                    }
                }
                Action::Nat(target) => self.emit(&c, target, r.comment.clone()),
                Action::NatBranches(bs) => {
                    for (conds, target) in bs {
                        if let Some(c2) = self.step(&c, conds) {
                            self.emit(&c2, target, r.comment.clone());
                        }
                    }
                }
            }
        }
        self.stack.pop();
    }

    fn emit(&mut self, c: &Ctx, target: &Target, own_comment: Option<String>) {
        let comment = own_comment.or_else(|| c.comments.last().cloned());
        let asked = |p: &String| self.query.is_none_or(|(q, _)| q.contains(&p.as_str()));
        let protos: Vec<Option<String>> = match &c.protos {
            None => vec![None],
            Some(v) => v.iter().filter(|p| asked(p)).cloned().map(Some).collect(),
        };
        for proto in protos {
            self.emits.push(Emit {
                hook: self.hook,
                proto,
                ports: c.ports.clone(),
                target: target.clone(),
                m: c.m.clone(),
                path: c.path.clone(),
                comment: comment.clone(),
            });
        }
    }
}

/// Whether `a` restricts no more than `b` (each restriction of `a` is in `b`).
fn general_or_equal(a: &Matches, b: &Matches) -> bool {
    a.daddr.iter().all(|x| b.daddr.contains(x))
        && a.iif.iter().all(|x| b.iif.contains(x))
        && a.saddr.iter().all(|x| b.saddr.contains(x))
        && a.other.iter().all(|x| b.other.contains(x))
        && (!a.dst_local || b.dst_local)
}

fn same_exposure(a: &Matches, b: &Matches) -> bool {
    a.daddr == b.daddr && a.iif == b.iif && a.dst_local == b.dst_local
}

type Key = (Hop, Option<String>, Option<Vec<PortRange>>, Target);

/// Merges the emissions of each NAT rule: a path subsumed by a more general
/// one to the same rule is dropped (kube-proxy's `-d 127.0.0.0/8 ... -m
/// nfacct` twin of each NodePort rule), paths of different exposure are
/// kept (ClusterIP, external IP, NodePort), and an OUTPUT path marks the
/// PREROUTING entry `output`.
fn merge(t: &IrTable, emits: Vec<Emit>, out: &mut Vec<Entry>) {
    let first = out.len();
    let mut mine: Vec<Entry> = Vec::new();
    let mut dead: Vec<bool> = Vec::new();
    let mut index: HashMap<Key, Vec<usize>> = HashMap::new();
    let entry = |e: Emit, prerouting: bool| {
        let (owner, service, container_id) = guess_owner(&e.path, e.comment.as_deref());
        Entry {
            source: t.source,
            family: t.family.clone(),
            proto: e.proto,
            ports: e.ports,
            target: e.target,
            matches: e.m,
            path: e.path,
            comment: e.comment,
            owner,
            service,
            container_id,
            prerouting,
            output: !prerouting,
            output_matches: None,
        }
    };
    // PREROUTING first, so that `matches` and `path` describe the remote case.
    let (pre, outp): (Vec<Emit>, Vec<Emit>) = emits.into_iter().partition(|e| e.hook == Hook::Prerouting);
    for e in pre {
        let Some(last) = e.path.last().cloned() else { continue };
        let slots = index.entry((last, e.proto.clone(), e.ports.clone(), e.target.clone())).or_default();
        if slots.iter().any(|&i| general_or_equal(&mine[i].matches, &e.m)) {
            continue; // a more general path to the same rule covers it
        }
        // Same exposure, other source restrictions: one entry with the
        // restrictions both paths share.
        if let Some(&i) = slots.iter().find(|&&i| same_exposure(&mine[i].matches, &e.m)) {
            let m = &mut mine[i].matches;
            m.saddr.retain(|x| e.m.saddr.contains(x));
            m.other.retain(|x| e.m.other.contains(x));
            continue;
        }
        slots.push(mine.len());
        mine.push(entry(e, true));
        dead.push(false);
    }
    // Entries the merges above made covered by a more general one.
    for slots in index.values_mut() {
        let live = slots.clone();
        for &i in &live {
            let covered = live.iter().any(|&j| {
                j != i
                    && !dead[j]
                    && general_or_equal(&mine[j].matches, &mine[i].matches)
                    && (mine[j].matches != mine[i].matches || j < i)
            });
            if covered {
                dead[i] = true;
            }
        }
        slots.retain(|&i| !dead[i]);
    }
    for e in outp {
        let Some(last) = e.path.last().cloned() else { continue };
        let slots = index.entry((last, e.proto.clone(), e.ports.clone(), e.target.clone())).or_default();
        let covered = slots.iter().any(|&i| {
            mine[i].output && general_or_equal(mine[i].output_matches.as_ref().unwrap_or(&mine[i].matches), &e.m)
        });
        if covered {
            continue;
        }
        // The PREROUTING entries with the same required destinations.
        let pos = |m: &Matches| m.daddr.iter().filter(|d| !d.negated).cloned().collect::<Vec<_>>();
        let hits: Vec<usize> = slots.iter().copied().filter(|&i| pos(&mine[i].matches) == pos(&e.m)).collect();
        if !hits.is_empty() {
            for i in hits {
                let p = &mut mine[i];
                if !p.output {
                    p.output = true;
                    if p.matches != e.m {
                        p.output_matches = Some(e.m.clone());
                    }
                } else if let Some(om) = &p.output_matches
                    && general_or_equal(&e.m, om)
                {
                    p.output_matches = (p.matches != e.m).then(|| e.m.clone());
                }
            }
            continue;
        }
        slots.push(mine.len());
        mine.push(entry(e, false));
        dead.push(false);
    }
    // OUTPUT-only entries a more general OUTPUT path of another covers.
    for slots in index.values() {
        for &i in slots {
            if mine[i].prerouting || dead[i] {
                continue;
            }
            let covered = slots.iter().any(|&j| {
                j != i
                    && mine[j].output
                    && !dead[j]
                    && general_or_equal(mine[j].output_matches.as_ref().unwrap_or(&mine[j].matches), &mine[i].matches)
            });
            if covered {
                dead[i] = true;
            }
        }
    }
    out.extend(mine.into_iter().zip(dead).filter(|(_, d)| !d).map(|(e, _)| e));
    debug_assert!(out.len() >= first);
}

/// Who installed the rule, from the well-known table and chain names and
/// comment formats: (owner, Kubernetes service, container id).
fn guess_owner(path: &[Hop], comment: Option<&str>) -> (Option<&'static str>, Option<String>, Option<String>) {
    let has = |f: &dyn Fn(&Hop) -> bool| path.iter().any(f);
    // kube-proxy nftables: chains `service-HASH8-ns/svc/proto/port`,
    // `endpoint-HASH8-ns/svc/proto/port__ip/port`, ...
    if path.iter().any(|h| h.table.ends_with(" kube-proxy")) {
        for h in path.iter().rev() {
            for pre in ["endpoint-", "service-", "external-", "local-", "firewall-"] {
                let Some(rest) = h.chain.strip_prefix(pre) else { continue };
                let svc = rest.get(9..).unwrap_or("").split("__").next().unwrap_or("");
                let parts: Vec<&str> = svc.split('/').collect();
                if parts.len() == 4 && parts.iter().all(|p| !p.is_empty()) {
                    return (Some("kubernetes"), Some(format!("{}/{}:{}", parts[0], parts[1], parts[3])), None);
                }
            }
        }
        return (Some("kubernetes"), None, None);
    }
    if has(&|h| h.chain.starts_with("KUBE-")) {
        // "ns/svc:port", "ns/svc:port cluster IP", "ns/svc:port -> 10.0.0.1:80"
        let svc = comment.map(|c| c.split(' ').next().unwrap_or(c).to_string()).filter(|s| s.contains('/'));
        return (Some("kubernetes"), svc, None);
    }
    // netavark: "dnat name: podman id: CID"; CNI: `dnat name: "bridge" id: "CID"`.
    let container_id = |c: &str| -> Option<String> {
        let i = c.find("id: ")?;
        let id = c[i + 4..].trim_matches('"');
        is_hex_id(id).then(|| id.to_string())
    };
    if has(&|h| h.chain.starts_with("NETAVARK-") || &*h.table == "inet netavark") {
        return (Some("podman"), None, comment.and_then(container_id));
    }
    if has(&|h| h.chain.starts_with("CNI-") || h.table.ends_with(" cni_hostport")) {
        let id = comment.and_then(|c| container_id(c).or_else(|| is_hex_id(c).then(|| c.to_string())));
        return (Some("cni"), None, id);
    }
    if has(&|h| &*h.chain == "DOCKER" || h.table.ends_with(" docker-bridges")) {
        return (Some("docker"), None, None);
    }
    (None, None, None)
}

fn is_hex_id(s: &str) -> bool {
    s.len() >= 12 && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn am(neg: bool, v: &[&str]) -> AddrMatch {
        AddrMatch { negated: neg, values: v.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn address_logic() {
        assert_eq!(inside("127.0.0.1/32", "127.0.0.0/8"), Some(true));
        assert_eq!(inside("10.0.0.0/8", "10.1.0.0/16"), Some(false));
        assert_eq!(inside("fd00::5", "fd00::/64"), Some(true));
        assert_eq!(inside("@set", "10.0.0.0/8"), None);
        assert_eq!(inside("0.0.0.0/0", "10.0.0.0/8"), Some(false));
        assert!(addr_in("192.0.2.10".parse().unwrap(), "192.0.2.0/24"));
        assert!(addr_in("192.0.2.10".parse().unwrap(), "0.0.0.0/0"));
        assert!(!addr_in("192.0.2.10".parse().unwrap(), "fd00::/8"));
        assert!(contradicts(&[am(true, &["127.0.0.0/8"])], &am(false, &["127.0.0.1/32"])));
        assert!(!contradicts(&[am(true, &["127.0.0.0/8"])], &am(false, &["192.0.2.1"])));
        assert!(contradicts(&[am(false, &["10.0.0.1"])], &am(false, &["192.0.2.1"])));
        assert!(!contradicts(&[am(false, &["10.0.0.0/8"])], &am(false, &["10.1.2.3"])));
        assert!(!contradicts(&[am(false, &["@svc"])], &am(false, &["10.1.2.3"])));
    }

    /// A chain that jumps to itself, a missing chain and a fan-out that
    /// would take 2^40 paths all end: counted, never a hang or a panic.
    #[test]
    fn loops_missing_chains_and_explosions_end() {
        let mut t = IrTable::new(RuleSource::Nft, "ip", "t");
        t.base.push(("pre".into(), Hook::Prerouting));
        let rule = |action| IrRule { conds: vec![], action, comment: None, id: 1, skipped: Skipped::new() };
        t.chains.insert("pre".into(), vec![rule(Action::Jump("pre".into())), rule(Action::Jump("gone".into()))]);
        for i in 0..40 {
            let next = format!("c{}", i + 1);
            t.chains.insert(format!("c{i}").into(), vec![rule(Action::Jump(next.clone())), rule(Action::Jump(next))]);
        }
        t.chains.get_mut("pre").unwrap().push(rule(Action::Jump("c0".into())));
        t.chains.insert("c40".into(), vec![rule(Action::Nat(Target::Redirect { port: Some(one(8080)) }))]);
        let mut skipped = Skipped::new();
        let mut out = Vec::new();
        walk_limited(&t, None, 10_000, &mut skipped, &mut out);
        assert!(skipped.keys().any(|k| k.starts_with("loop-or-too-deep")), "{skipped:?}");
        assert!(skipped.keys().any(|k| k.starts_with("missing-chain")), "{skipped:?}");
        assert!(skipped.keys().any(|k| k.starts_with("walk-stopped")), "{skipped:?}");
        assert_eq!(out.len(), 1, "one NAT rule, however many paths lead to it");
    }
}
