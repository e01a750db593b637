//! Ports published by NAT rules: which records answer a port question, the
//! verdict and advice `who` and `kill` give about them, and the rows
//! `listen` shows. Pure: records in, sentences and groups out.

use serde::{Deserialize, Serialize};

use crate::domain::who::Target;
use crate::model::Proto;
use crate::nat::{NatAction, NatExposure, NatRule, RuleSource, Status};

/// What was read about the NAT rules of the namespace asked about
/// (`who --json`'s and `kill --json`'s `nat`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatAnswer {
    /// `ok`, `no_tools`, `failed`, `timed_out`, `not_permitted`.
    pub status: Status,
    /// What could not be read, and why; null when `ok`.
    pub reason: Option<String>,
    /// The rules that translate the port (every exposure, `not_local` too).
    pub rules: Vec<NatRule>,
    /// What portctl did not interpret on the way (`-v` prints it).
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skip {
    /// `nft-statement:frobnicate`, `iptables-match:statistic`...: the kind
    /// of rule part, informational.
    pub what: String,
    pub count: u64,
}

impl NatAnswer {
    /// Nothing read, nothing found (`--no-nat`, or no question asked).
    pub fn none() -> NatAnswer {
        NatAnswer { status: Status::Ok, reason: None, rules: Vec::new(), skipped: Vec::new() }
    }

    /// The rules that reach an address of this host.
    pub fn on_this_host(&self) -> impl Iterator<Item = &NatRule> {
        self.rules.iter().filter(|r| r.on_this_host())
    }

    /// Whether some rule publishes the port on this host.
    pub fn published(&self) -> bool {
        self.on_this_host().next().is_some()
    }
}

/// The records that translate what `target` asks about: its protocols, its
/// port and, with an address, the rules whose destinations include it.
pub fn for_target(rules: &[NatRule], target: &Target) -> Vec<NatRule> {
    let protos = target.protos();
    rules
        .iter()
        .filter(|r| protos.iter().any(|p| r.covers(p.as_str(), target.port)))
        .filter(|r| {
            target.addr.is_none_or(|a| {
                r.matches.dst.is_empty() || r.matches.dst.iter().any(|d| crate::nat::walk::addr_in(a, d))
            })
        })
        .cloned()
        .collect()
}

/// `DNAT to 172.17.0.2:80`, `REDIRECT to port 8080`, `TPROXY to 127.0.0.1:19443`.
pub fn action_text(r: &NatRule) -> String {
    match r.action {
        NatAction::Dnat => format!("DNAT to {}", r.target()),
        NatAction::Redirect => match r.to.port {
            Some(p) => format!("REDIRECT to port {p} of this host"),
            None => "REDIRECT to the same port of this host".to_string(),
        },
        NatAction::Tproxy => format!("TPROXY to {}", r.target()),
    }
}

/// `8080/tcp is published by NAT: DNAT to 172.17.0.2:80 (container web,
/// docker)`; None when no rule on this host translates it.
pub fn verdict_line(proto: Proto, port: u16, rules: &[NatRule]) -> Option<String> {
    let mine: Vec<&NatRule> = rules.iter().filter(|r| r.on_this_host() && r.covers(proto.as_str(), port)).collect();
    if mine.is_empty() {
        return None;
    }
    Some(format!("{port}/{proto} is published by NAT: {}", summary(&mine)))
}

/// The rules in a few words: targets of one service joined, at most three
/// groups.
pub fn summary(rules: &[&NatRule]) -> String {
    let mut groups: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    for r in rules {
        let head = match r.action {
            NatAction::Dnat => "DNAT to".to_string(),
            NatAction::Tproxy => "TPROXY to".to_string(),
            NatAction::Redirect => String::new(),
        };
        let what = if r.action == NatAction::Redirect { action_text(r) } else { r.target() };
        let by = r.served_by();
        match groups.iter_mut().find(|(h, b, _)| *h == head && *b == by) {
            Some(g) if !g.2.contains(&what) => g.2.push(what),
            Some(_) => {}
            None => groups.push((head, by, vec![what])),
        }
    }
    let n = groups.len();
    let mut parts: Vec<String> = groups
        .into_iter()
        .take(3)
        .map(|(head, by, whats)| {
            let by = by.map(|b| format!(" ({b})")).unwrap_or_default();
            let sep = if head.is_empty() { "" } else { " " };
            format!("{head}{sep}{}{by}", whats.join(", "))
        })
        .collect();
    if n > 3 {
        parts.push(format!("and {} more", n - 3));
    }
    parts.join("; ")
}

/// Where the rule applies: `any address of this host`, `192.0.2.10
/// (eth0)`, with the interface conditions.
pub fn reach_text(r: &NatRule) -> String {
    let m = &r.matches;
    let mut s = match r.exposure {
        NatExposure::Wildcard if m.dst_local => "any address of this host".to_string(),
        NatExposure::Wildcard => "any destination (forwarded traffic too)".to_string(),
        NatExposure::Loopback | NatExposure::Address => {
            let ifname = r.interface.as_deref().map(|i| format!(" ({i})")).unwrap_or_default();
            format!("{}{ifname}", m.dst.join(", "))
        }
        NatExposure::NotLocal => format!("{}, not an address of this host", m.dst.join(", ")),
    };
    if !m.dst_not.is_empty() {
        s.push_str(&format!(", except to {}", m.dst_not.join(", ")));
    }
    if !m.iif.is_empty() {
        s.push_str(&format!(", only from {}", m.iif.join(", ")));
    }
    if !m.iif_not.is_empty() {
        s.push_str(&format!(", except from {}", m.iif_not.join(", ")));
    }
    if !m.src.is_empty() {
        s.push_str(&format!(", only for sources {}", m.src.join(", ")));
    }
    if !m.src_not.is_empty() {
        s.push_str(&format!(", except sources {}", m.src_not.join(", ")));
    }
    s
}

/// Which connections the rule translates: remote ones (PREROUTING), local
/// ones (OUTPUT), with the OUTPUT path's own exclusions.
pub fn who_reaches(r: &NatRule) -> String {
    let local = r.local.then(|| match r.local_match.as_ref().map(|m| &m.dst_not) {
        Some(not) if !not.is_empty() => format!("local connections except to {}", not.join(", ")),
        _ => "local connections".to_string(),
    });
    match (r.remote, local) {
        (true, Some(l)) => format!("connections from other hosts and containers, and {l}"),
        (true, None) => "connections from other hosts and containers (not local ones)".to_string(),
        (false, Some(l)) => format!("{l} only"),
        (false, None) => "nothing (no hook reaches it)".to_string(),
    }
}

/// The command that deletes a hand-written rule.
pub fn delete_command(r: &NatRule) -> String {
    let (family, table) = r.rule.table.split_once(' ').unwrap_or(("ip", &r.rule.table));
    match (r.source, r.rule.handle, r.rule.position) {
        (RuleSource::Nft, Some(h), _) => format!("nft delete rule {family} {table} {} handle {h}", r.rule.chain),
        (src, _, Some(p)) => {
            let six = if family == "ip6" { "6" } else { "" };
            let tool = if src == RuleSource::IptablesLegacy { "-legacy" } else { "" };
            format!("ip{six}tables{tool} -t {table} -D {} {p}", r.rule.chain)
        }
        _ => format!("delete the rule in {}", r.rule),
    }
}

/// What stops the service behind a rule: `docker stop web`, the
/// Kubernetes service, or deleting the rule.
pub fn stop_hint(r: &NatRule) -> String {
    let name =
        r.container.as_ref().and_then(|c| c.name.clone().or_else(|| c.id.as_deref().map(crate::model::short_id)));
    let runtime = r.container.as_ref().and_then(|c| c.runtime.clone()).or_else(|| r.owner.clone());
    match (runtime.as_deref(), name, r.service.as_deref()) {
        (_, _, Some(svc)) => {
            let (ns, rest) = svc.split_once('/').unwrap_or(("default", svc));
            let name = rest.split(':').next().unwrap_or(rest);
            format!(
                "Kubernetes service {svc} publishes it (kube-proxy): change or delete the service (`kubectl -n {ns} get service {name}`); killing processes here does not free the port"
            )
        }
        (Some("docker"), Some(n), _) => format!("stop the container with `docker stop {n}`"),
        (Some("podman"), Some(n), _) => format!("stop the container with `podman stop {n}`"),
        (Some("docker"), None, _) => {
            format!("a Docker container publishes it: `docker ps --filter publish={}` shows which", port_text(r))
        }
        (Some("podman"), None, _) => format!(
            "a podman container at {} publishes it: `podman ps` shows which (PORTS), `podman stop` stops it",
            r.to.addr.as_deref().unwrap_or("?")
        ),
        (Some("kubernetes"), _, None) => {
            "kube-proxy publishes it for a Kubernetes service: `kubectl get services -A` shows which".to_string()
        }
        (Some("cni"), Some(n), _) | (None, Some(n), _) => format!(
            "the CNI portmap plugin publishes it for container {n}: stop that container (`nerdctl stop {n}`, or delete its Kubernetes pod)"
        ),
        (Some("cni"), None, _) => {
            "the CNI portmap plugin publishes it for a container: stop that container (or delete its pod)".to_string()
        }
        _ => format!("a NAT rule publishes it: delete it with `{}`", delete_command(r)),
    }
}

fn port_text(r: &NatRule) -> String {
    r.ports.map_or_else(|| "PORT".to_string(), |p| p.lo.to_string())
}

/// Hints for `who` about what the rules do to a new socket on the port.
pub fn who_hints(port: u16, nat: &NatAnswer, free: bool, listening: bool, root: bool) -> Vec<String> {
    let mut h = Vec::new();
    let here: Vec<&NatRule> = nat.on_this_host().collect();
    if let Some(r) = here.first() {
        let what = format!("the NAT rule {} ({})", r.rule, action_text(r));
        let sent = match (r.remote, r.local) {
            (false, false) => "it translates nothing".to_string(),
            (true, false) => "it sends away connections from other hosts and containers; local connections are not translated and reach the socket".to_string(),
            _ => format!("it sends away {}", who_reaches(r)),
        };
        if free {
            h.push(format!("a new bind() on port {port} succeeds, but {what} catches the traffic first: {sent}"));
        } else if listening {
            h.push(format!("{what} catches traffic for port {port} before the listener does: {sent}"));
        }
        let mut stops: Vec<String> = here.iter().map(|r| stop_hint(r)).collect();
        stops.dedup();
        h.extend(stops.into_iter().take(3));
    }
    match nat.status {
        Status::Ok => {}
        Status::NotPermitted if !root => h.push(format!(
            "NAT rules could not be read without CAP_NET_ADMIN: whether a NAT rule publishes port {port} (Docker, podman, Kubernetes) is unknown; run as root to see it"
        )),
        _ => {
            if let Some(why) = &nat.reason {
                h.push(format!("{why}: whether a NAT rule publishes port {port} is not fully known"));
            }
        }
    }
    h
}

/// Listen rows: records that differ only in their target (a Kubernetes
/// service's endpoints) become one row.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub first: &'a NatRule,
    /// Every record of the row, `first` first.
    pub rules: Vec<&'a NatRule>,
    pub targets: Vec<String>,
}

pub fn rows(rules: &[NatRule]) -> Vec<Row<'_>> {
    let mut out: Vec<Row<'_>> = Vec::new();
    for r in rules.iter().filter(|r| r.on_this_host()) {
        // The same service (a Kubernetes service's endpoints differ in
        // their target and in the `statistic` match that picks one).
        let same = |o: &NatRule| {
            let (a, b) = (&o.matches, &r.matches);
            o.proto == r.proto
                && o.family == r.family
                && o.ports == r.ports
                && o.exposure == r.exposure
                && o.interface == r.interface
                && (&a.dst, &a.dst_not, a.dst_local, &a.iif, &a.iif_not, &a.src, &a.src_not)
                    == (&b.dst, &b.dst_not, b.dst_local, &b.iif, &b.iif_not, &b.src, &b.src_not)
                && o.action == r.action
                && o.owner == r.owner
                && o.service == r.service
                && o.container == r.container
                && o.source == r.source
                && o.rule.table == r.rule.table
                && o.netns == r.netns
                && (o.remote, o.local) == (r.remote, r.local)
                && o.service.is_some()
        };
        match out.iter_mut().find(|row| same(row.first)) {
            Some(row) => {
                let t = r.target();
                if !row.targets.contains(&t) {
                    row.targets.push(t);
                }
                row.rules.push(r);
            }
            None => out.push(Row { first: r, rules: vec![r], targets: vec![r.target()] }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, PortRange};
    use crate::nat::{NatContainer, NatMatch, NatTo, RecordKind, RuleRef};

    fn rule(port: u16, to: &str, toport: u16) -> NatRule {
        NatRule {
            kind: RecordKind::Nat,
            proto: Some("tcp".into()),
            family: Some(Family::Ipv4),
            ports: Some(PortRange { lo: port, hi: port }),
            action: NatAction::Dnat,
            to: NatTo { addr: Some(to.into()), port: Some(PortRange { lo: toport, hi: toport }) },
            exposure: NatExposure::Wildcard,
            interface: None,
            matches: NatMatch { dst_local: true, iif_not: vec!["docker0".into()], ..Default::default() },
            remote: true,
            local: true,
            local_match: Some(NatMatch { dst_not: vec!["127.0.0.0/8".into()], dst_local: true, ..Default::default() }),
            rule: RuleRef { table: "ip nat".into(), chain: "DOCKER".into(), handle: None, position: Some(1) },
            source: RuleSource::IptablesNft,
            comment: None,
            path: vec![],
            owner: Some("docker".into()),
            service: None,
            container: Some(NatContainer {
                runtime: Some("docker".into()),
                id: Some("4f1c0a4e3b7d2e9f".into()),
                name: Some("web".into()),
            }),
            netns: None,
        }
    }

    #[test]
    fn verdicts_and_advice() {
        let web = rule(8080, "172.17.0.2", 80);
        assert_eq!(
            verdict_line(Proto::Tcp, 8080, std::slice::from_ref(&web)).as_deref(),
            Some("8080/tcp is published by NAT: DNAT to 172.17.0.2:80 (container web, docker)")
        );
        assert_eq!(verdict_line(Proto::Udp, 8080, std::slice::from_ref(&web)), None);
        assert_eq!(reach_text(&web), "any address of this host, except from docker0");
        assert_eq!(
            who_reaches(&web),
            "connections from other hosts and containers, and local connections except to 127.0.0.0/8"
        );
        assert_eq!(stop_hint(&web), "stop the container with `docker stop web`");

        let mut a = rule(30080, "10.180.0.10", 8080);
        a.container = None;
        a.owner = Some("kubernetes".into());
        a.service = Some("shop/web:http".into());
        let mut b = a.clone();
        b.to.addr = Some("10.180.0.11".into());
        let both = [a.clone(), b];
        assert_eq!(
            verdict_line(Proto::Tcp, 30080, &both).as_deref(),
            Some(
                "30080/tcp is published by NAT: DNAT to 10.180.0.10:8080, 10.180.0.11:8080 (Kubernetes service shop/web:http)"
            )
        );
        assert!(stop_hint(&a).contains("kubectl -n shop get service web"), "{}", stop_hint(&a));
        assert_eq!(rows(&both).len(), 1, "endpoints of one service are one row");
        assert_eq!(rows(&both)[0].targets.len(), 2);

        let mut hand = rule(2222, "10.0.0.5", 22);
        hand.container = None;
        hand.owner = None;
        hand.rule = RuleRef { table: "ip nat".into(), chain: "PREROUTING".into(), handle: None, position: Some(3) };
        assert_eq!(stop_hint(&hand), "a NAT rule publishes it: delete it with `iptables -t nat -D PREROUTING 3`");
        hand.source = RuleSource::Nft;
        hand.rule =
            RuleRef { table: "inet handmade".into(), chain: "prerouting".into(), handle: Some(11), position: None };
        assert_eq!(delete_command(&hand), "nft delete rule inet handmade prerouting handle 11");

        let mut cip = rule(80, "10.180.0.1", 80);
        cip.exposure = NatExposure::NotLocal;
        cip.matches.dst = vec!["172.30.0.41/32".into()];
        assert_eq!(
            verdict_line(Proto::Tcp, 80, std::slice::from_ref(&cip)),
            None,
            "a ClusterIP is not this host's port"
        );
        assert!(rows(std::slice::from_ref(&cip)).is_empty());
    }

    #[test]
    fn rules_for_a_target() {
        let mut lo = rule(5432, "172.17.0.3", 5432);
        lo.matches.dst = vec!["127.0.0.1/32".into()];
        let web = rule(8080, "172.17.0.2", 80);
        let all = [lo, web];
        let t = |port, addr: Option<&str>| Target { port, proto: None, addr: addr.map(|a| a.parse().unwrap()) };
        assert_eq!(for_target(&all, &t(5432, None)).len(), 1);
        assert_eq!(for_target(&all, &t(5432, Some("127.0.0.1"))).len(), 1);
        assert_eq!(for_target(&all, &t(5432, Some("192.0.2.1"))).len(), 0, "the rule is for 127.0.0.1 only");
        assert_eq!(for_target(&all, &t(8080, Some("192.0.2.1"))).len(), 1);
        let udp = Target { port: 8080, proto: Some(Proto::Udp), addr: None };
        assert!(for_target(&all, &udp).is_empty());
    }
}
