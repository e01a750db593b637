//! `iptables-save` / `ip6tables-save` text (the nf_tables and the legacy
//! flavours) lowered to [`IrTable`]s.
//!
//! Only `*nat` (PREROUTING and OUTPUT: DNAT, REDIRECT) and `*mangle`
//! (PREROUTING: TPROXY) are lowered; other tables are counted. A rule line
//! is split the way iptables-restore splits it (double quotes, backslash
//! escapes: `--comment "dnat name: \"bridge\" id: \"..\""`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::model::RuleSource;
use super::walk::{Action, AddrMatch, Cond, Hook, IfMatch, IrRule, IrTable, Skipped, Target, bump};
use crate::model::PortRange;

/// One rule line split into arguments: borrowed from the line unless the
/// argument has quotes or escapes.
pub fn tokenize(line: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        if !word.contains(['"', '\\']) {
            out.push(Cow::Borrowed(word));
            rest = &rest[end..];
            continue;
        }
        // Quotes and escapes: the slow way, up to the unquoted whitespace.
        let mut cur = String::new();
        let mut quoted = false;
        let mut it = rest.char_indices();
        let mut stop = rest.len();
        while let Some((i, ch)) = it.next() {
            match ch {
                '\\' if quoted => {
                    if let Some((_, n)) = it.next() {
                        cur.push(n);
                    }
                }
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    stop = i;
                    break;
                }
                c => cur.push(c),
            }
        }
        out.push(Cow::Owned(cur));
        rest = &rest[stop..];
    }
    out
}

/// `80`, `5000:5010` (match syntax), `80-90` (DNAT/REDIRECT syntax), `:1024`.
fn parse_range(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once(':').or_else(|| s.split_once('-')).unwrap_or((s, s));
    let lo = if a.is_empty() { 0 } else { a.parse().ok()? };
    let hi = if b.is_empty() { 65535 } else { b.parse().ok()? };
    (lo <= hi).then_some(PortRange { lo, hi })
}

/// `--to-destination`: `1.2.3.4`, `1.2.3.4:80`, `1.2.3.4:80-90`,
/// `1.2.3.4-1.2.3.9:80`, `[fd00::5]:80`, `fd00::5`, `:80`,
/// `10.88.0.2:9000-9002/9000`.
pub fn parse_dnat_to(s: &str) -> Target {
    let (addr, rest) = if let Some(r) = s.strip_prefix('[') {
        match r.split_once(']') {
            Some((a, rest)) => (a.to_string(), rest.strip_prefix(':').map(str::to_string)),
            None => (r.to_string(), None),
        }
    } else if s.matches(':').count() > 1 {
        (s.to_string(), None) // a bare IPv6 address: no port
    } else {
        match s.split_once(':') {
            Some((a, p)) => (a.to_string(), Some(p.to_string())),
            None => (s.to_string(), None),
        }
    };
    let (port, port_base) = match rest {
        None => (None, None),
        Some(p) => match p.split_once('/') {
            Some((p, b)) => (parse_range(p), b.parse().ok()),
            None => (parse_range(&p), None),
        },
    };
    Target::Dnat { addr: (!addr.is_empty()).then_some(addr), port, port_base }
}

/// Match modules whose options are read (the rest are restrictions by name).
const KNOWN_MODULES: [&str; 7] = ["tcp", "udp", "sctp", "dccp", "multiport", "addrtype", "comment"];

/// Targets that neither translate nor lead anywhere: a rule with one of
/// them publishes nothing, whatever it matches.
fn inert(target: &str) -> bool {
    matches!(
        target,
        "ACCEPT"
            | "DROP"
            | "RETURN"
            | "MASQUERADE"
            | "SNAT"
            | "MARK"
            | "CONNMARK"
            | "LOG"
            | "REJECT"
            | "NETMAP"
            | "CT"
            | "NOTRACK"
            | "TCPMSS"
            | "CHECKSUM"
            | "NFLOG"
            | "TRACE"
            | "NFQUEUE"
            | "DSCP"
            | "TOS"
            | "TTL"
            | "HL"
            | "CLASSIFY"
            | "SECMARK"
            | "CONNSECMARK"
            | "AUDIT"
            | "SET"
    )
}

/// Lowers one rule's arguments (after `-A CHAIN`).
fn lower_rule(args: &[Cow<'_, str>], id: u64) -> IrRule {
    let mut own = Skipped::new();
    // The target first: a rule that ends in ACCEPT, RETURN, MARK... (most
    // of a busy nat table) is not lowered further.
    let jump = args.iter().position(|a| matches!(a.as_ref(), "-j" | "--jump" | "-g" | "--goto"));
    let target: Option<&str> = jump.and_then(|j| args.get(j + 1)).map(|t| t.as_ref());
    if target.is_none_or(inert) {
        return IrRule { conds: Vec::new(), action: Action::None, comment: None, id, skipped: own };
    }
    let skipped = &mut own;
    let mut conds = Vec::new();
    let mut action = Action::None;
    let mut comment = None;
    let mut i = 0;
    let mut neg = false;
    let mut goto = false;
    let mut tparams: Vec<(&str, &str)> = Vec::new();
    let mut module: Option<&str> = None;
    let arg = |i: usize| args.get(i).map_or("", |a| a.as_ref());
    while i < args.len() {
        let a: &str = args[i].as_ref();
        match a {
            "!" => {
                neg = true;
                i += 1;
                continue;
            }
            "-p" | "--protocol" => {
                let p = arg(i + 1).to_ascii_lowercase();
                if neg {
                    conds.push(Cond::Other(format!("!proto {p}")));
                } else if p != "all" && p != "0" {
                    let p = match p.as_str() {
                        "6" => "tcp".to_string(),
                        "17" => "udp".to_string(),
                        "132" => "sctp".to_string(),
                        _ => p,
                    };
                    conds.push(Cond::Proto(vec![p]));
                }
                i += 2;
            }
            "-d" | "--destination" | "--dst" => {
                let v = arg(i + 1);
                if !is_any(v) || neg {
                    conds.push(Cond::Daddr(AddrMatch { negated: neg, values: split_list(v) }));
                }
                i += 2;
            }
            "-s" | "--source" | "--src" => {
                let v = arg(i + 1);
                if !is_any(v) || neg {
                    conds.push(Cond::Saddr(AddrMatch { negated: neg, values: split_list(v) }));
                }
                i += 2;
            }
            "-i" | "--in-interface" => {
                conds.push(Cond::Iif(IfMatch { negated: neg, names: vec![arg(i + 1).to_string()] }));
                i += 2;
            }
            "-o" | "--out-interface" => {
                conds.push(Cond::Other(format!("{}oif {}", if neg { "!" } else { "" }, arg(i + 1))));
                i += 2;
            }
            "-m" | "--match" => {
                let m = arg(i + 1);
                if !KNOWN_MODULES.contains(&m) {
                    conds.push(Cond::Other(m.to_string()));
                    bump(skipped, format!("iptables-match:{m}"));
                }
                module = Some(m);
                i += 2;
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                let v = arg(i + 1);
                let ranges: Option<Vec<PortRange>> = v.split(',').map(parse_range).collect();
                match (neg, ranges) {
                    (false, Some(r)) => conds.push(Cond::Dport(r)),
                    (true, _) => conds.push(Cond::Other(format!("!dport {v}"))),
                    (false, None) => {
                        bump(skipped, "iptables-port-value");
                        conds.push(Cond::Other(format!("dport {v}")));
                    }
                }
                i += 2;
            }
            "--dst-type" => {
                let v = arg(i + 1);
                if v.split(',').any(|t| t == "LOCAL") {
                    conds.push(Cond::DstLocal(neg));
                } else {
                    conds.push(Cond::Other(format!("dst-type {v}")));
                }
                i += 2;
            }
            "--comment" => {
                comment = Some(arg(i + 1).to_string());
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                goto = a == "-g" || a == "--goto";
                i += 2;
                // Everything after the target belongs to it.
                while i < args.len() {
                    let k: &str = args[i].as_ref();
                    if k.starts_with("--") {
                        let v = args.get(i + 1).map(|v| v.as_ref()).filter(|v: &&str| !v.starts_with("--"));
                        i += if v.is_some() { 2 } else { 1 };
                        tparams.push((k, v.unwrap_or("")));
                    } else {
                        i += 1;
                    }
                }
            }
            _ if a.starts_with("--") => {
                // An option of the current match module.
                let m = module.unwrap_or("?");
                let has_value = args.get(i + 1).is_some_and(|v| !v.starts_with('-') || v.as_ref() == "-");
                if KNOWN_MODULES.contains(&m) {
                    conds.push(Cond::Other(format!("{m} {a}")));
                    bump(skipped, format!("iptables-option:{m} {a}"));
                }
                i += if has_value { 2 } else { 1 };
            }
            _ => {
                bump(skipped, format!("iptables-token:{}", a.chars().take(32).collect::<String>()));
                i += 1;
            }
        }
        neg = false;
    }
    let param = |k: &str| tparams.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    if let Some(t) = target {
        match t {
            "DNAT" => match param("--to-destination") {
                Some(to) => action = Action::Nat(parse_dnat_to(to)),
                None => bump(skipped, "iptables-dnat-without-destination"),
            },
            "REDIRECT" => action = Action::Nat(Target::Redirect { port: param("--to-ports").and_then(parse_range) }),
            "TPROXY" => {
                action = Action::Nat(Target::Tproxy {
                    addr: param("--on-ip").map(str::to_string),
                    port: param("--on-port").and_then(|p| p.parse().ok()),
                })
            }
            chain if goto => action = Action::Goto(chain.to_string()),
            chain => action = Action::Jump(chain.to_string()),
        }
    }
    IrRule { conds, action, comment, id, skipped: own }
}

/// `0.0.0.0/0`, `::/0`, `0/0`: no restriction.
fn is_any(v: &str) -> bool {
    matches!(v, "0.0.0.0/0" | "::/0" | "0/0" | "0.0.0.0/0.0.0.0")
}

/// `-d a,b` is two rules in the kernel, shown as one by iptables-save only
/// before it splits them; take the list either way.
fn split_list(v: &str) -> Vec<String> {
    v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// What one save output gave: the tables worth walking and a rule count.
pub struct Parsed {
    pub tables: Vec<IrTable>,
    pub rules: u64,
    /// Tables iptables said it cannot show (`# Table 'nat' is incompatible,
    /// use 'nft' tool.`): native nftables tables of a classic name.
    pub incompatible: Vec<String>,
}

/// Parses a whole save output; `family` is `ip` or `ip6`.
pub fn parse(text: &str, family: &str, source: RuleSource) -> Parsed {
    let mut out = Parsed { tables: Vec::new(), rules: 0, incompatible: Vec::new() };
    let mut cur: Option<IrTable> = None;
    let mut positions: HashMap<Arc<str>, u64> = HashMap::new();
    let mut keep = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            if let Some(t) = cur.take()
                && keep
            {
                out.tables.push(t); // no COMMIT before the next table: keep what there is
            }
            keep = name == "nat" || name == "mangle";
            positions.clear();
            let mut t = IrTable::new(source, family, name);
            if name == "nat" {
                t.base = vec![("PREROUTING".into(), Hook::Prerouting), ("OUTPUT".into(), Hook::Output)];
            } else if name == "mangle" {
                t.base = vec![("PREROUTING".into(), Hook::Prerouting)];
            }
            cur = Some(t);
            continue;
        }
        if line == "COMMIT" {
            if let Some(t) = cur.take()
                && keep
            {
                out.tables.push(t);
            }
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            if let (Some(t), Some(name)) = (cur.as_mut(), decl.split_whitespace().next()) {
                t.chains.entry(name.into()).or_default();
            }
            continue;
        }
        if line.starts_with("-A ") {
            out.rules += 1;
            let Some(t) = cur.as_mut() else { continue };
            if !keep {
                continue;
            }
            let toks = tokenize(line);
            let Some(chain) = toks.get(1) else { continue };
            let chain: &str = chain.as_ref();
            let n = match positions.get_mut(chain) {
                Some(n) => n,
                None => positions.entry(chain.into()).or_default(),
            };
            *n += 1;
            let r = lower_rule(&toks[2..], *n);
            match t.chains.get_mut(chain) {
                Some(rules) => rules.push(r),
                None => {
                    t.chains.insert(chain.into(), vec![r]);
                }
            }
            continue;
        }
        // `# Table `nat' is incompatible, use 'nft' tool.`
        if line.starts_with("# Table `") && line.contains("incompatible") {
            let name = line.trim_start_matches("# Table `").split('\'').next().unwrap_or("").to_string();
            out.incompatible.push(name);
        }
    }
    if let Some(t) = cur.take()
        && keep
    {
        out.tables.push(t); // no COMMIT at the end: keep what there is
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_escaped_quotes() {
        let t = tokenize(r#"-A X -m comment --comment "dnat name: \"bridge\" id: \"abc\"" -j Y"#);
        assert_eq!(t, vec!["-A", "X", "-m", "comment", "--comment", r#"dnat name: "bridge" id: "abc""#, "-j", "Y"]);
        assert_eq!(tokenize(r#"-A X --comment """#), vec!["-A", "X", "--comment", ""]);
        assert_eq!(tokenize("  -A  X\t-j   Y  "), vec!["-A", "X", "-j", "Y"]);
        assert_eq!(tokenize(r#"-A X --comment "a b"c -j Y"#), vec!["-A", "X", "--comment", "a bc", "-j", "Y"]);
    }

    #[test]
    fn dnat_destinations() {
        let dnat = |a: &str, p: Option<(u16, u16)>, b| Target::Dnat {
            addr: Some(a.into()),
            port: p.map(|(lo, hi)| PortRange { lo, hi }),
            port_base: b,
        };
        assert_eq!(parse_dnat_to("[fd00::5]:80"), dnat("fd00::5", Some((80, 80)), None));
        assert_eq!(parse_dnat_to("10.88.0.2:9000-9002/9000"), dnat("10.88.0.2", Some((9000, 9002)), Some(9000)));
        assert_eq!(parse_dnat_to("10.0.0.6"), dnat("10.0.0.6", None, None));
        assert_eq!(parse_dnat_to("fd00::6"), dnat("fd00::6", None, None));
        assert_eq!(
            parse_dnat_to(":8080"),
            Target::Dnat { addr: None, port: Some(PortRange { lo: 8080, hi: 8080 }), port_base: None }
        );
        assert_eq!(parse_range("9000:8000"), None, "backwards");
    }

    #[test]
    fn incompatible_tables_are_named() {
        let p = parse("# Table `nat' is incompatible, use 'nft' tool.\n", "ip", RuleSource::IptablesNft);
        assert_eq!(p.incompatible, ["nat"]);
        assert!(p.tables.is_empty());
    }
}
