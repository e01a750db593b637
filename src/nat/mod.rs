//! Ports published by NAT rules, which have no socket on the host: Docker
//! without its userland proxy, podman (netavark), the CNI portmap plugin,
//! Kubernetes NodePorts (kube-proxy), hand-written DNAT / REDIRECT / TPROXY.
//!
//! ```text
//! read (in the namespace: nft -j list chains, nft -j list table F T,
//!       iptables-nft-save -t nat|mangle, iptables-legacy-save when the
//!       kernel has legacy tables)            -> Reading { tool outputs }
//! analyze (nft / iptables front ends -> one rule graph -> walk from the
//!          prerouting and output base chains) -> Entry per NAT statement
//! records (exposure from the namespace's own addresses) -> NatRule (JSON)
//! ```
//!
//! Everything but [`read`] is pure: recorded tool outputs in, records out.

pub mod cache;
pub mod iptables;
pub mod model;
pub mod nft;
pub mod read;
pub mod walk;

use std::collections::HashMap;
use std::net::IpAddr;

pub use model::{NatAction, NatContainer, NatExposure, NatMatch, NatRule, NatTo, RecordKind, RuleRef, RuleSource};
pub use read::{Reading, Status};
use walk::{AddrMatch, Entry, Hop, Matches, Skipped, Target, bump};

use crate::model::{Family, PortRange, is_loopback};

/// The tool outputs of one namespace.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// `nft -j list ...` documents (one per table, or one whole ruleset).
    pub nft: Vec<String>,
    /// `iptables-save` outputs: family (`ip`, `ip6`), flavour, text.
    pub iptables: Vec<(&'static str, RuleSource, String)>,
}

/// What the rules publish, and what was skipped on the way.
#[derive(Debug, Default)]
pub struct Analysis {
    pub entries: Vec<Entry>,
    pub skipped: Skipped,
    /// Rules read, decoded or not.
    pub rules_read: u64,
}

/// Every NAT statement reachable from a prerouting or output base chain;
/// with `query` = (protocols, port), only those that can translate it (the
/// walk prunes every other branch).
pub fn analyze(inputs: &Inputs, query: walk::Query<'_>) -> Analysis {
    let mut a = Analysis::default();
    let mut tables = Vec::new();
    // Tables nft decoded natively: the iptables-nft view of one (a native
    // `table ip nat`) would be the same rules again.
    let mut native: Vec<(String, String)> = Vec::new();
    for doc in &inputs.nft {
        match nft::parse(doc) {
            Ok(rs) => {
                if rs.schema.is_some_and(|v| v != 1) {
                    bump(&mut a.skipped, format!("nft-json-schema-version:{}", rs.schema.unwrap_or(0)));
                }
                a.rules_read += rs.rule_count();
                let lowered = rs.lower(&mut a.skipped);
                native.extend(lowered.iter().map(|t| (t.family.clone(), t.name.clone())));
                tables.extend(lowered);
            }
            Err(_) => bump(&mut a.skipped, "nft-json-unparsable"),
        }
    }
    for (family, source, text) in &inputs.iptables {
        let parsed = iptables::parse(text, family, *source);
        a.rules_read += parsed.rules;
        for t in parsed.tables {
            if *source == RuleSource::IptablesNft && native.iter().any(|(f, n)| f == family && *n == t.name) {
                continue;
            }
            tables.push(t);
        }
    }
    for t in &tables {
        walk::walk_table(t, query, &mut a.skipped, &mut a.entries);
    }
    a
}

/// The records of `entries`: one per published port range, with the
/// exposure `local` (this namespace's addresses and their interfaces) gives.
pub fn records(entries: &[Entry], local: &HashMap<IpAddr, String>) -> Vec<NatRule> {
    let mut out = Vec::new();
    for e in entries {
        let ranges: Vec<Option<PortRange>> = match &e.ports {
            None => vec![None],
            Some(v) => v.iter().copied().map(Some).collect(),
        };
        let (action, to) = match &e.target {
            Target::Dnat { addr, port, .. } => (NatAction::Dnat, NatTo { addr: addr.clone(), port: *port }),
            Target::Redirect { port } => (NatAction::Redirect, NatTo { addr: None, port: *port }),
            Target::Tproxy { addr, port } => {
                (NatAction::Tproxy, NatTo { addr: addr.clone(), port: port.map(walk::one) })
            }
        };
        let (exposure, interface) = exposure(&e.matches, local);
        let hop = |h: &Hop| RuleRef {
            table: h.table.to_string(),
            chain: h.chain.to_string(),
            handle: (e.source == RuleSource::Nft).then_some(h.rule),
            position: (e.source != RuleSource::Nft).then_some(h.rule),
        };
        let path: Vec<RuleRef> = e.path.iter().map(hop).collect();
        let Some(rule) = path.last().cloned() else { continue };
        let container = e.container_id.as_ref().map(|id| NatContainer {
            runtime: (e.owner == Some("podman")).then(|| "podman".to_string()),
            id: Some(id.clone()),
            name: None,
        });
        for ports in ranges {
            out.push(NatRule {
                kind: RecordKind::Nat,
                proto: e.proto.clone(),
                family: family(e),
                ports,
                action,
                to: to.clone(),
                exposure,
                interface: interface.clone(),
                matches: nat_match(&e.matches),
                remote: e.prerouting,
                local: e.output,
                local_match: e.output_matches.as_ref().map(nat_match),
                rule: rule.clone(),
                source: e.source,
                comment: e.comment.clone(),
                path: path.clone(),
                owner: e.owner.map(str::to_string),
                service: e.service.clone(),
                container: container.clone(),
                netns: None,
            });
        }
    }
    out
}

/// The family a rule applies to: its table's, or for an `inet` table the
/// one its target or destinations are of; None when it does not say.
fn family(e: &Entry) -> Option<Family> {
    match e.family.as_str() {
        "ip" => return Some(Family::Ipv4),
        "ip6" => return Some(Family::Ipv6),
        _ => {}
    }
    let target = match &e.target {
        Target::Dnat { addr, .. } | Target::Tproxy { addr, .. } => addr.as_deref(),
        Target::Redirect { .. } => None,
    };
    let of = |s: &str| walk::prefix(s.split('-').next().unwrap_or(s)).map(|(ip, _)| Family::of(&ip));
    target
        .and_then(of)
        .or_else(|| e.matches.daddr.iter().filter(|d| !d.negated).flat_map(|d| &d.values).find_map(|v| of(v)))
}

fn flat(v: &[AddrMatch], negated: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in v.iter().filter(|m| m.negated == negated) {
        for x in &m.values {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
    }
    out
}

fn nat_match(m: &Matches) -> NatMatch {
    let ifs = |negated: bool| -> Vec<String> {
        m.iif.iter().filter(|i| i.negated == negated).flat_map(|i| i.names.iter().cloned()).collect()
    };
    NatMatch {
        dst: flat(&m.daddr, false),
        dst_not: flat(&m.daddr, true),
        dst_local: m.dst_local,
        iif: ifs(false),
        iif_not: ifs(true),
        src: flat(&m.saddr, false),
        src_not: flat(&m.saddr, true),
        other: m.other.clone(),
    }
}

/// How far the rule reaches, from the destinations it requires and the
/// addresses of the namespace; with one local address, its interface.
pub fn exposure(m: &Matches, local: &HashMap<IpAddr, String>) -> (NatExposure, Option<String>) {
    let dst = flat(&m.daddr, false);
    if dst.is_empty() {
        return (NatExposure::Wildcard, None);
    }
    let mut loopback_only = true;
    let mut hits: Vec<(&IpAddr, &String)> = Vec::new();
    let mut unknown = false;
    for d in &dst {
        let Some((ip, len)) = walk::prefix(d) else {
            unknown = true; // an unread @set: cannot tell, so not "not local"
            loopback_only = false;
            continue;
        };
        let loopback_net = is_loopback(&ip) && (ip.is_ipv6() || len >= 8);
        if !loopback_net {
            loopback_only = false;
        }
        for (a, ifname) in local {
            if walk::addr_in(*a, d) && !is_loopback(a) && !hits.iter().any(|(x, _)| *x == a) {
                hits.push((a, ifname));
            }
        }
    }
    if loopback_only {
        return (NatExposure::Loopback, Some("lo".to_string()).filter(|_| local.values().any(|n| n == "lo")));
    }
    if hits.is_empty() && !unknown {
        return (NatExposure::NotLocal, None);
    }
    let mut names: Vec<&String> = hits.iter().map(|(_, n)| *n).collect();
    names.sort();
    names.dedup();
    let interface = (names.len() == 1).then(|| names[0].clone());
    (NatExposure::Address, interface)
}

/// Fills in container ids and names from the runtimes' local metadata: the
/// Docker container that has the target address, the Podman container of
/// an id the rule's comment names.
pub fn name_containers(records: &mut [NatRule], rt: &crate::procs::context::Runtimes) {
    let mut by_ip: HashMap<IpAddr, Option<(String, String)>> = HashMap::new();
    for r in records.iter_mut() {
        if let Some(c) = &mut r.container {
            if let Some(id) = c.id.clone() {
                let probe = crate::model::Container { runtime: "podman".into(), id, pod_uid: None, name: None };
                if let Some(name) = rt.name(&probe) {
                    c.runtime = Some("podman".into());
                    c.name = Some(name);
                }
            }
            continue;
        }
        if r.action != NatAction::Dnat || !matches!(r.owner.as_deref(), Some("docker") | None) {
            continue;
        }
        let Some(ip) = r.to.addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
        let found = by_ip.entry(ip).or_insert_with(|| rt.docker_by_ip(ip));
        if let Some((id, name)) = found {
            r.container = Some(NatContainer {
                runtime: Some("docker".into()),
                id: Some(id.clone()),
                name: (!name.is_empty()).then(|| name.clone()),
            });
        }
    }
}

/// What `-v` says about a reading: one line per kind of thing skipped.
pub fn skipped_lines(skipped: &Skipped) -> Vec<String> {
    skipped.iter().map(|(k, n)| format!("{k} ({n})")).collect()
}

#[cfg(test)]
mod tests;
