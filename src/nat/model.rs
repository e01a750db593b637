//! The NAT record: one rule that publishes ports without a socket. It is
//! `listen --json`'s `"kind": "nat"` record and the entries of `who --json`'s
//! and `kill --json`'s `nat.rules` (docs/json.md, "NAT record"). Plain data.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Family, NetnsRef, PortRange};

/// The discriminator of listen's records: NAT records carry
/// `"kind": "nat"`; socket records have no `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Nat,
}

/// Where a rule was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleSource {
    /// A native nftables rule (`nft -j list table`).
    Nft,
    /// An iptables rule of the nf_tables backend (`iptables-nft-save`).
    IptablesNft,
    /// A legacy x_tables rule (`iptables-legacy-save`).
    IptablesLegacy,
}

impl RuleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::Nft => "nft",
            RuleSource::IptablesNft => "iptables-nft",
            RuleSource::IptablesLegacy => "iptables-legacy",
        }
    }
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rule does to a matching packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatAction {
    /// Destination NAT to another address (and port).
    Dnat,
    /// To a port of this host (REDIRECT, nft `redirect`).
    Redirect,
    /// Delivered unchanged to a local socket (TPROXY).
    Tproxy,
}

impl NatAction {
    pub fn as_str(self) -> &'static str {
        match self {
            NatAction::Dnat => "dnat",
            NatAction::Redirect => "redirect",
            NatAction::Tproxy => "tproxy",
        }
    }
}

/// Which destinations the rule applies to, as reach goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatExposure {
    /// Every local address (`-m addrtype --dst-type LOCAL`, `fib daddr type
    /// local`), or no destination match at all.
    Wildcard,
    /// Only loopback destinations (127.0.0.0/8, ::1).
    Loopback,
    /// One or more specific addresses of this host (see `interface`).
    Address,
    /// Only destinations that are not addresses of this network namespace
    /// (a Kubernetes ClusterIP, an external IP that lives on another node):
    /// nothing on this host's own addresses is published. `listen` leaves
    /// these out; `who` shows them apart.
    NotLocal,
}

impl NatExposure {
    pub fn as_str(self) -> &'static str {
        match self {
            NatExposure::Wildcard => "wildcard",
            NatExposure::Loopback => "loopback",
            NatExposure::Address => "address",
            NatExposure::NotLocal => "not_local",
        }
    }
}

/// Where the traffic goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatTo {
    /// DNAT: the new destination address (or `a-b` address range); TPROXY:
    /// the local address it delivers to; null: unchanged (REDIRECT is to
    /// the host itself).
    pub addr: Option<String>,
    /// The new port (range); null: unchanged.
    pub port: Option<PortRange>,
}

/// The conditions on the way to the rule (the rule's own and those of the
/// jumps that lead to it) that restrict which packets it translates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatMatch {
    /// Destination addresses or prefixes it requires (`-d`, `ip daddr`),
    /// `@name` for a set that could not be read.
    pub dst: Vec<String>,
    /// Destinations it excludes (`! -d 127.0.0.0/8`).
    pub dst_not: Vec<String>,
    /// `-m addrtype --dst-type LOCAL` / `fib daddr type local`.
    pub dst_local: bool,
    /// Input interfaces it requires (`-i eth0`, `iifname "eth0"`).
    pub iif: Vec<String>,
    /// Input interfaces it excludes (`! -i docker0`).
    pub iif_not: Vec<String>,
    /// Source addresses it requires / excludes.
    pub src: Vec<String>,
    pub src_not: Vec<String>,
    /// Conditions portctl does not interpret (statistic, mark, nfacct, ct
    /// state...), by name: they restrict the rule further.
    pub other: Vec<String>,
}

/// A rule, by where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRef {
    /// `ip nat`, `ip6 nat`, `inet netavark`: family and table.
    pub table: String,
    pub chain: String,
    /// nftables rule handle (`nft -a list ...`); null for iptables rules.
    pub handle: Option<u64>,
    /// iptables: the rule's 1-based position in its chain (`iptables -t
    /// nat -L CHAIN --line-numbers`); null for nftables rules.
    pub position: Option<u64>,
}

impl fmt::Display for RuleRef {
    /// `ip nat DOCKER #1`, `inet netavark PREROUTING handle 12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.handle, self.position) {
            (Some(h), _) => write!(f, "{} {} handle {h}", self.table, self.chain),
            (None, Some(p)) => write!(f, "{} {} #{p}", self.table, self.chain),
            (None, None) => write!(f, "{} {}", self.table, self.chain),
        }
    }
}

/// One NAT rule publishing ports (one port range per record: a rule on a
/// set of ports is one record per range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatRule {
    pub kind: RecordKind,
    /// `tcp`, `udp`, `sctp`...; null: any protocol.
    pub proto: Option<String>,
    /// null: both (an nftables `inet` rule that does not say).
    pub family: Option<Family>,
    /// The published ports; null: every port.
    pub ports: Option<PortRange>,
    pub action: NatAction,
    pub to: NatTo,
    pub exposure: NatExposure,
    /// The interface carrying the destination address (`address` exposure).
    pub interface: Option<String>,
    /// Conditions on the PREROUTING path (or the OUTPUT one for a rule
    /// only OUTPUT reaches).
    #[serde(rename = "match")]
    pub matches: NatMatch,
    /// Reached from PREROUTING: connections from other hosts and containers.
    pub remote: bool,
    /// Reached from OUTPUT: connections made on this host.
    pub local: bool,
    /// The conditions of the OUTPUT path when they differ from `match`
    /// (Docker's OUTPUT jump excludes 127.0.0.0/8).
    pub local_match: Option<NatMatch>,
    /// The rule that translates.
    pub rule: RuleRef,
    pub source: RuleSource,
    /// The rule's comment, else the nearest one on the path.
    pub comment: Option<String>,
    /// From the base chain to the rule, the rule last.
    pub path: Vec<RuleRef>,
    /// Who installed it, from the layout: `docker`, `podman` (netavark),
    /// `cni` (the CNI portmap plugin: nerdctl, Kubernetes hostPort),
    /// `kubernetes` (kube-proxy); null: not recognised (hand-written).
    pub owner: Option<String>,
    /// Kubernetes service port (`namespace/name:port`).
    pub service: Option<String>,
    /// The container the traffic goes to, when the layout or the runtime's
    /// local metadata tells.
    pub container: Option<NatContainer>,
    /// Only with `--netns`/`--all-netns`, as on socket records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsRef>,
}

impl NatRule {
    /// Whether it translates `port` for protocol `proto`.
    pub fn covers(&self, proto: &str, port: u16) -> bool {
        self.proto.as_deref().is_none_or(|p| p == proto) && self.ports.is_none_or(|r| r.contains(port))
    }

    /// Whether it reaches an address of this host (every exposure but
    /// `not_local`).
    pub fn on_this_host(&self) -> bool {
        self.exposure != NatExposure::NotLocal
    }

    /// `172.17.0.2:80`, `[fd00::5]:443`, `:8080` (REDIRECT), `10.0.0.6`.
    pub fn target(&self) -> String {
        let port = self.to.port.map(|p| p.to_string());
        match (&self.to.addr, port) {
            (Some(a), Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (Some(a), None) => a.clone(),
            (None, Some(p)) => format!(":{p}"),
            (None, None) => "(unchanged)".to_string(),
        }
    }

    /// `container web (docker)`, `Kubernetes service shop/web:http`.
    pub fn served_by(&self) -> Option<String> {
        if let Some(svc) = &self.service {
            return Some(format!("Kubernetes service {svc}"));
        }
        match (&self.container, self.owner.as_deref()) {
            (Some(c), _) => {
                let name = c.name.clone().or_else(|| c.id.as_deref().map(crate::model::short_id))?;
                Some(match &c.runtime {
                    Some(r) => format!("container {name}, {r}"),
                    None => format!("container {name}"),
                })
            }
            (None, Some(owner @ ("docker" | "podman"))) => Some(format!("a {owner} container")),
            (None, Some("cni")) => Some("a container (CNI portmap)".to_string()),
            (None, Some("kubernetes")) => Some("a Kubernetes service".to_string()),
            _ => None,
        }
    }
}

/// The container behind a NAT rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatContainer {
    /// `docker`, `podman`; null when the layout does not say (CNI portmap
    /// serves nerdctl, containerd and Kubernetes alike).
    pub runtime: Option<String>,
    /// Full id, from the rule's comment (netavark, CNI) or the runtime's
    /// metadata (Docker: the container with the target address).
    pub id: Option<String>,
    /// From the runtime's local metadata (Docker's config.v2.json,
    /// Podman's containers.json).
    pub name: Option<String>,
}
