//! `nft -j list table ...` output (libnftables-json(5), schema version 1)
//! lowered to [`IrTable`]s.
//!
//! It reads `serde_json::Value`s on purpose: the schema grows with every
//! nft release, and a typed model turns one unknown statement into a
//! failed parse of the whole ruleset (the `nftables` crate fails that way
//! on Docker's and kube-proxy's rulesets). Unknown statements and
//! expressions are counted in the skipped map and otherwise ignored.
//!
//! Tables holding `xt` expressions belong to iptables-nft: nft's JSON shows
//! only `{"xt": {"type": "target", "name": "DNAT"}}` there, without the
//! parameters, so they are left to `iptables-nft-save` ([`Ruleset::xt_tables`]).

use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::model::RuleSource;
use super::walk::{Action, AddrMatch, Cond, Hook, IfMatch, IrRule, IrTable, Skipped, Target, bump, one};
use crate::model::PortRange;

#[derive(Default)]
struct RawTable<'a> {
    family: String,
    name: String,
    /// Chain name and its object (for the base-chain hook).
    chains: Vec<(String, Value)>,
    /// The rules, still raw JSON: each becomes a `Value` only while it is
    /// lowered (5,000 rules as `Value`s at once take tens of MiB).
    rules: Vec<&'a RawValue>,
    sets: HashMap<String, Value>,
    has_xt: bool,
    /// Has a base chain at nat prerouting/output or filter prerouting (tproxy).
    relevant: bool,
}

/// A parsed document, grouped by table, before lowering.
#[derive(Default)]
pub struct Ruleset<'a> {
    tables: Vec<RawTable<'a>>,
    /// `json_schema_version` of the metainfo object, when there was one.
    pub schema: Option<u64>,
    /// Rules of tables portctl did not decode (no NAT hook, xt).
    pub other_rules: u64,
}

#[derive(serde::Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    nftables: Vec<HashMap<&'a str, &'a RawValue>>,
}

#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    family: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    table: std::borrow::Cow<'a, str>,
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Whether a base chain's type and hook make its table worth reading:
/// nat prerouting and output (DNAT, REDIRECT), filter prerouting (TPROXY).
pub fn relevant_hook(typ: Option<&str>, hook: Option<&str>) -> Option<Hook> {
    match (typ, hook) {
        (Some("nat"), Some("prerouting")) | (Some("filter"), Some("prerouting")) => Some(Hook::Prerouting),
        (Some("nat"), Some("output")) => Some(Hook::Output),
        _ => None,
    }
}

/// Parses one document. Two passes over borrowed raw JSON: tables and
/// chains first, then only the rules and sets of tables that have a base
/// chain worth walking become `Value`s; the rules of other tables (a
/// 5,000-rule filter table) are only counted.
pub fn parse(doc_text: &str) -> Result<Ruleset<'_>, serde_json::Error> {
    let doc: Doc = serde_json::from_str(doc_text)?;
    let mut rs = Ruleset::default();
    let mut idx: HashMap<(String, String), usize> = HashMap::new();
    for o in &doc.nftables {
        let Some((kind, raw)) = o.iter().next() else { continue };
        match *kind {
            "metainfo" => {
                let body: Value = serde_json::from_str(raw.get())?;
                rs.schema = body.get("json_schema_version").and_then(Value::as_u64);
            }
            "table" => {
                let body: Value = serde_json::from_str(raw.get())?;
                let k = (text(&body, "family"), text(&body, "name"));
                if !idx.contains_key(&k) {
                    idx.insert(k.clone(), rs.tables.len());
                    rs.tables.push(RawTable { family: k.0, name: k.1, ..Default::default() });
                }
            }
            "chain" => {
                let body: Value = serde_json::from_str(raw.get())?;
                let k = (text(&body, "family"), text(&body, "table"));
                if let Some(&i) = idx.get(&k) {
                    let typ = body.get("type").and_then(Value::as_str);
                    let hook = body.get("hook").and_then(Value::as_str);
                    if relevant_hook(typ, hook).is_some() {
                        rs.tables[i].relevant = true;
                    }
                    let name = text(&body, "name");
                    rs.tables[i].chains.push((name, body));
                }
            }
            _ => {}
        }
    }
    for o in &doc.nftables {
        let Some((kind, raw)) = o.iter().next() else { continue };
        if !matches!(*kind, "rule" | "set" | "map") {
            continue;
        }
        let h: Head = serde_json::from_str(raw.get())?;
        let Some(&i) = idx.get(&(h.family.to_string(), h.table.to_string())) else { continue };
        let t = &mut rs.tables[i];
        if !t.relevant || (*kind == "rule" && t.has_xt) {
            rs.other_rules += u64::from(*kind == "rule");
            continue;
        }
        if *kind == "rule" {
            if raw.get().contains("\"xt\"") {
                let body: Value = serde_json::from_str(raw.get())?;
                if body.get("expr").is_some_and(|e| contains_key(e, "xt", 0)) {
                    t.has_xt = true;
                    rs.other_rules += t.rules.len() as u64 + 1;
                    t.rules.clear();
                    continue;
                }
            }
            t.rules.push(raw);
        } else {
            let body: Value = serde_json::from_str(raw.get())?;
            let name = text(&body, "name");
            t.sets.insert(name, body);
        }
    }
    Ok(rs)
}

fn contains_key(v: &Value, k: &str, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match v {
        Value::Object(m) => m.contains_key(k) || m.values().any(|x| contains_key(x, k, depth + 1)),
        Value::Array(a) => a.iter().any(|x| contains_key(x, k, depth + 1)),
        _ => false,
    }
}

impl Ruleset<'_> {
    /// (family, table) of the tables iptables-nft manages (xt inside).
    pub fn xt_tables(&self) -> Vec<(String, String)> {
        self.tables.iter().filter(|t| t.has_xt).map(|t| (t.family.clone(), t.name.clone())).collect()
    }

    /// Rules read (decoded or only counted).
    pub fn rule_count(&self) -> u64 {
        self.tables.iter().map(|t| t.rules.len() as u64).sum::<u64>() + self.other_rules
    }

    /// Lowers every table worth walking (not the xt ones).
    pub fn lower(&self, skipped: &mut Skipped) -> Vec<IrTable> {
        let mut out = Vec::new();
        for t in &self.tables {
            if !t.relevant {
                continue;
            }
            if t.has_xt {
                bump(skipped, format!("nft-table-left-to-iptables-nft:{} {}", t.family, t.name));
                continue;
            }
            if !matches!(t.family.as_str(), "ip" | "ip6" | "inet") {
                bump(skipped, format!("nft-table-family:{}", t.family)); // arp, bridge, netdev
                continue;
            }
            let mut ir = IrTable::new(RuleSource::Nft, &t.family, &t.name);
            for (name, c) in &t.chains {
                ir.chains.entry(name.as_str().into()).or_default();
                let hook = relevant_hook(c.get("type").and_then(Value::as_str), c.get("hook").and_then(Value::as_str));
                if let Some(hook) = hook {
                    ir.base.push((name.clone(), hook));
                }
            }
            let mut lw = Lowerer { t, skipped: Skipped::new() };
            for raw in &t.rules {
                let Ok(r) = serde_json::from_str::<Value>(raw.get()) else {
                    bump(skipped, "nft-rule:unparsable");
                    continue;
                };
                let chain = text(&r, "chain");
                let rule = lw.rule(&r);
                match ir.chains.get_mut(chain.as_str()) {
                    Some(rules) => rules.push(rule),
                    None => {
                        ir.chains.insert(chain.into(), vec![rule]);
                    }
                }
            }
            out.push(ir);
        }
        out
    }
}

struct Lowerer<'a> {
    t: &'a RawTable<'a>,
    /// The current rule's skips.
    skipped: Skipped,
}

/// What a match's left side (or a map key part) is about.
#[derive(Clone, Debug)]
enum Field {
    /// tcp/udp/sctp/dccp dport (Some(proto)), th dport (None).
    Dport(Option<String>),
    /// meta l4proto, ip protocol, ip6 nexthdr.
    Proto,
    Daddr,
    Saddr,
    /// iif / iifname.
    Iif,
    /// fib daddr type.
    DstLocal,
    Ignore(String),
}

impl Lowerer<'_> {
    fn rule(&mut self, r: &Value) -> IrRule {
        let id = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
        let comment = r.get("comment").and_then(Value::as_str).map(str::to_string);
        let mut conds = Vec::new();
        let mut action = Action::None;
        for st in r.get("expr").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
            let Some((k, body)) = st.as_object().and_then(|m| m.iter().next()) else {
                bump(&mut self.skipped, "nft-statement:malformed");
                continue;
            };
            match k.as_str() {
                "match" => self.lower_match(body, &mut conds),
                "jump" | "goto" => {
                    if let Some(t) = body.get("target").and_then(Value::as_str) {
                        action = if k == "jump" { Action::Jump(t.into()) } else { Action::Goto(t.into()) };
                    }
                }
                "vmap" => action = self.lower_vmap(body),
                "dnat" => action = self.lower_dnat(body),
                "redirect" => {
                    let port = body.get("port").and_then(|p| self.port_range(p));
                    action = Action::Nat(Target::Redirect { port });
                }
                "tproxy" => {
                    action = Action::Nat(Target::Tproxy {
                        addr: body.get("addr").and_then(Value::as_str).map(str::to_string),
                        port: body.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()),
                    })
                }
                // Statements that do not change which port is published.
                "counter" | "log" | "limit" | "mangle" | "accept" | "drop" | "return" | "continue" | "masquerade"
                | "snat" | "reject" | "notrack" | "quota" | "set" | "ct count" | "meter" | "queue" | "dup" | "fwd"
                | "synproxy" | "flow" | "ct helper" | "ct timeout" | "ct expectation" | "secmark" => {}
                "xt" => bump(&mut self.skipped, "nft-statement:xt"),
                other => bump(&mut self.skipped, format!("nft-statement:{other}")),
            }
        }
        IrRule { conds, action, comment, id, skipped: std::mem::take(&mut self.skipped) }
    }

    fn field(&mut self, e: &Value) -> Field {
        if let Some(p) = e.get("payload") {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
            let field = p.get("field").and_then(Value::as_str).unwrap_or("");
            return match (proto, field) {
                ("th", "dport") => Field::Dport(None),
                ("tcp" | "udp" | "udplite" | "sctp" | "dccp", "dport") => Field::Dport(Some(proto.into())),
                ("ip" | "ip6", "daddr") => Field::Daddr,
                ("ip" | "ip6", "saddr") => Field::Saddr,
                ("ip", "protocol") | ("ip6", "nexthdr") => Field::Proto,
                _ => Field::Ignore(format!("{proto} {field}")),
            };
        }
        if let Some(m) = e.get("meta") {
            return match m.get("key").and_then(Value::as_str).unwrap_or("") {
                "l4proto" => Field::Proto,
                "iif" | "iifname" => Field::Iif,
                k => Field::Ignore(format!("meta {k}")),
            };
        }
        if let Some(f) = e.get("fib") {
            let daddr = f.get("flags").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "daddr"));
            if daddr && f.get("result").and_then(Value::as_str) == Some("type") {
                return Field::DstLocal;
            }
            return Field::Ignore("fib".into());
        }
        match e.as_object().and_then(|m| m.keys().next()) {
            Some(k) => Field::Ignore(k.clone()),
            None => Field::Ignore("?".into()),
        }
    }

    /// The values of a right side: a literal, `{"set": [...]}`, `"@set"`.
    fn values(&mut self, v: &Value) -> Vec<Value> {
        match v {
            Value::String(s) if s.starts_with('@') => match self.t.sets.get(&s[1..]) {
                Some(set) => set.get("elem").and_then(Value::as_array).cloned().unwrap_or_default(),
                None => vec![v.clone()],
            },
            Value::Object(m) if m.contains_key("set") => {
                m["set"].as_array().cloned().unwrap_or_else(|| vec![m["set"].clone()])
            }
            _ => vec![v.clone()],
        }
    }

    /// The condition `field op value`.
    fn cond(&mut self, f: &Field, negated: bool, right: &Value) -> Option<Cond> {
        let vals: Vec<Value> = self.values(right).into_iter().map(unwrap_elem).collect();
        match f {
            Field::Dport(_) => {
                if negated {
                    return Some(Cond::Other(format!("!dport {right}")));
                }
                let rs: Option<Vec<PortRange>> = vals.iter().map(|v| self.port_range(v)).collect();
                match rs {
                    Some(rs) => Some(Cond::Dport(rs)),
                    None => {
                        bump(&mut self.skipped, "nft-dport-value");
                        Some(Cond::Other(format!("dport {right}")))
                    }
                }
            }
            Field::Proto => {
                let ps: Vec<String> = vals.iter().filter_map(proto_name).collect();
                if negated {
                    Some(Cond::Other(format!("!l4proto {}", ps.join(","))))
                } else if ps.is_empty() {
                    None
                } else {
                    Some(Cond::Proto(ps))
                }
            }
            Field::Daddr | Field::Saddr => {
                let a = AddrMatch { negated, values: vals.iter().map(addr_text).collect() };
                Some(if matches!(f, Field::Daddr) { Cond::Daddr(a) } else { Cond::Saddr(a) })
            }
            Field::Iif => Some(Cond::Iif(IfMatch { negated, names: vals.iter().map(addr_text).collect() })),
            Field::DstLocal => {
                if vals.iter().any(|v| v.as_str() == Some("local")) {
                    Some(Cond::DstLocal(negated))
                } else {
                    Some(Cond::Other(format!("fib daddr type {right}")))
                }
            }
            Field::Ignore(name) => Some(Cond::Other(name.clone())),
        }
    }

    fn lower_match(&mut self, m: &Value, conds: &mut Vec<Cond>) {
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        let (Some(left), Some(right)) = (m.get("left"), m.get("right")) else {
            bump(&mut self.skipped, "nft-match:malformed");
            return;
        };
        let f = self.field(left);
        if let Field::Ignore(name) = &f {
            bump(&mut self.skipped, format!("nft-match:{name}"));
        }
        if !matches!(op, "==" | "!=" | "in") {
            // <, >, & (a mask)...: a restriction not modelled.
            conds.push(Cond::Other(format!("{f:?} {op}")));
            return;
        }
        let negated = op == "!=";
        if let Field::Dport(Some(p)) = &f
            && !negated
        {
            conds.push(Cond::Proto(vec![p.clone()])); // `tcp dport` implies tcp
        }
        if let Some(c) = self.cond(&f, negated, right) {
            conds.push(c);
        }
    }

    /// The fields of a map key: one expression or a concatenation.
    fn key_fields(&mut self, key: &Value) -> Vec<Field> {
        match key.get("concat").and_then(Value::as_array) {
            Some(parts) => parts.iter().map(|p| self.field(p)).collect(),
            None => vec![self.field(key)],
        }
    }

    /// The conditions one element key implies.
    fn key_conds(&mut self, fields: &[Field], k: &Value) -> Option<Vec<Cond>> {
        let k = unwrap_elem(k.clone());
        let parts: Vec<Value> = match k.get("concat").and_then(Value::as_array) {
            Some(p) if fields.len() > 1 => p.clone(),
            _ => vec![k.clone()],
        };
        if parts.len() != fields.len() {
            bump(&mut self.skipped, "nft-map-key-arity");
            return None;
        }
        let mut out = Vec::new();
        for (f, v) in fields.iter().zip(parts.iter()) {
            if let Field::Dport(Some(p)) = f {
                out.push(Cond::Proto(vec![p.clone()]));
            }
            if let Field::Ignore(_) = f {
                continue; // numgen, jhash...: which branch, not which packets
            }
            if let Some(c) = self.cond(f, false, v) {
                out.push(c);
            }
        }
        Some(out)
    }

    /// The (key, value) elements of an anonymous map or a named one.
    fn elements(&mut self, data: &Value) -> Vec<(Value, Value)> {
        let arr = match data {
            Value::String(s) if s.starts_with('@') => match self.t.sets.get(&s[1..]) {
                Some(m) => m.get("elem").and_then(Value::as_array).cloned().unwrap_or_default(),
                None => {
                    bump(&mut self.skipped, "nft-map-missing");
                    vec![]
                }
            },
            Value::Object(m) if m.contains_key("set") => m["set"].as_array().cloned().unwrap_or_default(),
            _ => {
                bump(&mut self.skipped, "nft-map-data");
                vec![]
            }
        };
        arr.into_iter()
            .filter_map(|e| match e {
                Value::Array(kv) if kv.len() == 2 => {
                    let mut it = kv.into_iter();
                    Some((it.next()?, it.next()?))
                }
                _ => None,
            })
            .collect()
    }

    fn lower_vmap(&mut self, body: &Value) -> Action {
        let (Some(key), Some(data)) = (body.get("key"), body.get("data")) else {
            bump(&mut self.skipped, "nft-vmap:malformed");
            return Action::None;
        };
        let fields = self.key_fields(key);
        let mut branches = Vec::new();
        for (k, v) in self.elements(data) {
            let target = v
                .get("jump")
                .or_else(|| v.get("goto"))
                .and_then(|j| j.get("target"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let Some(target) = target else { continue }; // accept, drop, return: nothing to follow
            if let Some(conds) = self.key_conds(&fields, &k) {
                branches.push((conds, target));
            }
        }
        Action::Branches(branches)
    }

    fn lower_dnat(&mut self, body: &Value) -> Action {
        let addr = body.get("addr");
        let port = body.get("port");
        // dnat to <key> map { k : addr [. port] }
        if let Some(m) = addr.and_then(|a| a.get("map")) {
            let (Some(key), Some(data)) = (m.get("key"), m.get("data")) else {
                bump(&mut self.skipped, "nft-dnat-map:malformed");
                return Action::None;
            };
            let fields = self.key_fields(key);
            let mut bs = Vec::new();
            for (k, v) in self.elements(data) {
                let v = unwrap_elem(v);
                let (a, p) = match v.get("concat").and_then(Value::as_array) {
                    Some(c) if c.len() == 2 => (c[0].as_str().map(str::to_string), self.port_range(&c[1])),
                    _ => (v.as_str().map(str::to_string), port.and_then(|p| self.port_range(p))),
                };
                if let Some(conds) = self.key_conds(&fields, &k) {
                    bs.push((conds, Target::Dnat { addr: a, port: p, port_base: None }));
                }
            }
            return Action::NatBranches(bs);
        }
        // dnat to 1.2.3.4 : tcp dport map { 80 : 8080 }
        if let Some(m) = port.and_then(|p| p.get("map")) {
            let (Some(key), Some(data)) = (m.get("key"), m.get("data")) else {
                bump(&mut self.skipped, "nft-dnat-map:malformed");
                return Action::None;
            };
            let fields = self.key_fields(key);
            let a = addr.and_then(Value::as_str).map(str::to_string);
            let mut bs = Vec::new();
            for (k, v) in self.elements(data) {
                let p = self.port_range(&unwrap_elem(v));
                if let Some(conds) = self.key_conds(&fields, &k) {
                    bs.push((conds, Target::Dnat { addr: a.clone(), port: p, port_base: None }));
                }
            }
            return Action::NatBranches(bs);
        }
        let a = match addr {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(m)) if m.contains_key("range") => Some(addr_text(&Value::Object(m.clone()))),
            Some(other) => {
                bump(&mut self.skipped, "nft-dnat-address-expression");
                Some(other.to_string())
            }
        };
        Action::Nat(Target::Dnat { addr: a, port: port.and_then(|p| self.port_range(p)), port_base: None })
    }

    fn port_range(&mut self, v: &Value) -> Option<PortRange> {
        port_value(v, 0)
    }
}

fn port_value(v: &Value, depth: u8) -> Option<PortRange> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()).map(one),
        Value::String(s) => s.parse::<u16>().ok().map(one).or_else(|| service_port(s)),
        Value::Object(m) if m.contains_key("range") && depth < 2 => {
            let r = m["range"].as_array()?;
            let lo = port_value(r.first()?, depth + 1)?.lo;
            let hi = port_value(r.get(1)?, depth + 1)?.hi;
            (lo <= hi).then_some(PortRange { lo, hi })
        }
        _ => None,
    }
}

/// Elements with options come wrapped: `{"elem": {"val": X, "comment": ...}}`.
fn unwrap_elem(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.contains_key("elem") => {
            let e = m.remove("elem").unwrap_or(Value::Null);
            e.get("val").cloned().unwrap_or(e)
        }
        other => other,
    }
}

fn proto_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(
            match n.as_u64()? {
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                33 => "dccp",
                136 => "udplite",
                x => return Some(x.to_string()),
            }
            .to_string(),
        ),
        _ => None,
    }
}

fn addr_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if m.contains_key("prefix") => {
            let p = &m["prefix"];
            let len = p.get("len").and_then(Value::as_u64).map_or("?".to_string(), |l| l.to_string());
            format!("{}/{len}", p.get("addr").and_then(Value::as_str).unwrap_or("?"))
        }
        Value::Object(m) if m.contains_key("range") => {
            let r = m["range"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let part = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("?").to_string();
            format!("{}-{}", part(r.first()), part(r.get(1)))
        }
        other => other.to_string(),
    }
}

/// `nft -j` prints ports as numbers unless asked for names (`-S`); a few
/// names anyway.
fn service_port(s: &str) -> Option<PortRange> {
    let p = match s {
        "http" => 80,
        "https" => 443,
        "ssh" => 22,
        "domain" => 53,
        "smtp" => 25,
        _ => return None,
    };
    Some(one(p))
}
