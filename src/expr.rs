//! ss(8) filter expressions, as `ss` takes them after its options:
//!
//! ```text
//! FILTER := [ state STATE | exclude STATE ]... [ EXPRESSION ]
//! EXPRESSION := PRED | ( EXPRESSION ) | not EXPRESSION | EXPRESSION [and|or] EXPRESSION
//! PRED := {src|dst} [=|!=] HOST | {sport|dport} [OP] [FAMILY:]:PORT
//!       | dev [=|!=] DEVICE | fwmark [=|!=] MARK[/MASK] | cgroup [=|!=] PATH | autobound
//! ```
//!
//! What `ss` really does, which its manual does not quite say: `and` and
//! `or` have the same precedence and group from the left (`a or b and c` is
//! `(a or b) and c`, checked against ss 6.1), `not` binds to the next
//! predicate or parenthesis, and two predicates side by side are `and`ed.
//! States are a prefix, never part of the expression; the first `state`
//! starts from none, the first `exclude` from all, and later ones add or
//! remove (`exclude` then `state` re-adds).
//!
//! Beyond ss: parentheses and `!` may touch their neighbour (`(sport`,
//! `:ssh)`, `!dport`), `src`/`dst` take `!=`, IPv6 addresses without
//! brackets when no port follows, and port numbers above 65535, prefixes
//! longer than the address and unknown names are errors rather than
//! silently matching nothing. Names come from `/etc/services` (and
//! portctl's table of common ports) and `/etc/hosts` only: no DNS.
//!
//! The result is a [`Filter`]: the state set and a sock_diag expression
//! ([`Expr`]) the kernel runs as bytecode (device names are looked up in
//! each namespace when it is dumped). Errors name the token and the word it
//! is (words are counted after splitting every argument on blanks, as ss
//! splits them), in one line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::filter::StateSpec;
use crate::model::{Family, State, StateSet};
use crate::sock_diag::bytecode::{Cond, DevRef, Expr};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// The states `state`/`exclude` chose; `None` when none was named.
    pub states: Option<StateSet>,
    /// The expression; `None` when there was none (states only, or nothing).
    pub expr: Option<Expr>,
    /// Families an `inet:`/`inet6:` prefix restricted the filter to, as
    /// ss restricts its dump.
    pub families: Option<Vec<Family>>,
    /// Things worth saying on stderr (how `and`/`or` grouped).
    pub notes: Vec<String>,
}

/// Where names are looked up; tests substitute their own.
pub trait Names {
    /// A service's port (`https` -> 443).
    fn service(&self, name: &str) -> Option<u16>;
    /// A host's addresses, from /etc/hosts.
    fn host(&self, name: &str) -> Vec<IpAddr>;
    /// A cgroup v2 path's id (its directory's inode number).
    fn cgroup(&self, path: &str) -> Result<u64, String>;
}

/// The system's names: `/etc/services` (and portctl's table), `/etc/hosts`,
/// the cgroup v2 mount.
pub struct System;

impl Names for System {
    fn service(&self, name: &str) -> Option<u16> {
        crate::services::port(name)
    }

    fn host(&self, name: &str) -> Vec<IpAddr> {
        hosts_lookup(&std::fs::read_to_string("/etc/hosts").unwrap_or_default(), name)
    }

    fn cgroup(&self, path: &str) -> Result<u64, String> {
        cgroup_id(path)
    }
}

/// The addresses /etc/hosts (its text) gives a name, case-insensitively,
/// in the file's order, each once.
pub fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let Some(addr) = f.next().and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok()) else { continue };
        if f.any(|n| n.eq_ignore_ascii_case(name)) && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// The id of a cgroup v2 directory, by its path under the cgroup2 mount
/// (`/system.slice/nginx.service`): its inode number, which is what the
/// kernel reports as the socket's cgroup id on 64-bit systems.
pub fn cgroup_id(path: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    let mount = cgroup2_mount()
        .ok_or_else(|| {
        "cgroup v2 is not mounted here (no cgroup2 in /proc/self/mountinfo; `ip netns exec` remounts /sys: use --netns instead)"
            .to_string()
    })?;
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(format!("cgroup path '{path}' may not contain '..'"));
    }
    let full = mount.join(rel);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(m.ino()),
        Ok(_) => Err(format!("{} is not a cgroup directory", full.display())),
        Err(e) => Err(format!("no cgroup '{path}' ({}: {e})", full.display())),
    }
}

/// Where cgroup v2 is mounted, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

/// One line: what is wrong, at which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ParseError {}

/// A token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    /// 1-based number of the blank-separated word it is (part of).
    word: usize,
}

impl Token {
    fn at(&self) -> String {
        format!("'{}' (word {})", self.text, self.word)
    }
}

/// Splits the arguments on blanks; a `(` or `!` at the start of a word and
/// unbalanced `)` at its end are tokens of their own.
fn tokenize(args: &[String]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = 0;
    for arg in args {
        for w in arg.split([' ', '\t', '\n']).filter(|w| !w.is_empty()) {
            word += 1;
            let mut rest = w;
            loop {
                if rest.len() > 1 && rest.starts_with('(') {
                    out.push(Token { text: "(".into(), word });
                    rest = &rest[1..];
                } else if rest.len() > 1 && rest.starts_with('!') && !rest.starts_with("!=") {
                    out.push(Token { text: "!".into(), word });
                    rest = &rest[1..];
                } else {
                    break;
                }
            }
            let mut closing = 0;
            let mut core = rest;
            while core.len() > 1 && core.ends_with(')') && core.matches(')').count() > core.matches('(').count() {
                core = &core[..core.len() - 1];
                closing += 1;
            }
            out.push(Token { text: core.to_string(), word });
            out.extend(std::iter::repeat_n(Token { text: ")".into(), word }, closing));
        }
    }
    out
}

/// Parses ss filter words (`["state", "established", "(", "dport", "=",
/// ":ssh", ")"]`, or one argument holding them all).
///
/// # Errors
///
/// One line naming the token and its word: an unknown keyword, a missing
/// or bad value, unbalanced parentheses, a dangling operator.
pub fn parse(args: &[String], names: &dyn Names) -> Result<Filter, ParseError> {
    let tokens = tokenize(args);
    let mut p = Parser { tokens, at: 0, names, families: Vec::new(), notes: Vec::new() };
    let mut states: Option<StateSet> = None;
    while let Some(t) = p.peek() {
        let include = match t.text.as_str() {
            "state" => true,
            "exclude" | "excl" => false,
            _ => break,
        };
        let kw = p.next_token().expect("peeked");
        let v = p.value(&kw, "a state or group (established, listening, time-wait, connected, all, ...)")?;
        let set = state_set(&v)?;
        let now = match (states, include) {
            (None, true) => set,
            (None, false) => minus(StateSet::all(), set),
            (Some(s), true) => s.union(set),
            (Some(s), false) => minus(s, set),
        };
        if now.is_empty() && p.peek().is_none_or(|t| !matches!(t.text.as_str(), "state")) {
            // ss quietly drops a state filter that ends up empty and shows
            // its default states instead; here it is a mistake to say.
            return Err(p.error(&v, "leaves no state (the states and excludes before it cancel out)"));
        }
        states = Some(now);
    }
    let expr = if p.peek().is_some() { Some(p.list(0)?) } else { None };
    if let Some(t) = p.peek() {
        // list(0) stops only at a ')' it cannot match.
        return Err(p.error(&t, "has no matching '('"));
    }
    let mut families = p.families.clone();
    families.sort();
    families.dedup();
    Ok(Filter {
        states,
        expr: expr.map(Expr::fold),
        families: (!families.is_empty()).then_some(families),
        notes: p.notes,
    })
}

/// `a` without the states of `b`.
fn minus(a: StateSet, b: StateSet) -> StateSet {
    let mut out = StateSet::EMPTY;
    for s in State::TCP.iter().chain(&[State::Unconn]) {
        if a.contains(*s) && !b.contains(*s) {
            out.insert(*s);
        }
    }
    out
}

fn state_set(t: &Token) -> Result<StateSet, ParseError> {
    t.text
        .parse::<StateSpec>()
        .map(|s| s.0)
        .map_err(|e| ParseError { msg: format!("filter: {} (word {}): {e}", quoted(&t.text), t.word) })
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

/// Words that end a value's place: an operator or keyword where a value
/// should be means the value is missing.
const KEYWORDS: [&str; 20] = [
    "and",
    "&",
    "&&",
    "or",
    "|",
    "||",
    "not",
    "!",
    "(",
    ")",
    "src",
    "dst",
    "sport",
    "dport",
    "dev",
    "fwmark",
    "cgroup",
    "autobound",
    "state",
    "exclude",
];

const PREDICATES: [&str; 8] = ["src", "dst", "sport", "dport", "dev", "fwmark", "cgroup", "autobound"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn op_of(t: &str) -> Option<Op> {
    Some(match t {
        "=" | "==" | "eq" => Op::Eq,
        "!=" | "ne" | "neq" => Op::Ne,
        "<" | "lt" => Op::Lt,
        "<=" | "le" | "leq" => Op::Le,
        ">" | "gt" => Op::Gt,
        ">=" | "ge" | "geq" => Op::Ge,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a dyn Names,
    families: Vec<Family>,
    notes: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.at).cloned()
    }

    fn next_token(&mut self) -> Option<Token> {
        let t = self.peek()?;
        self.at += 1;
        Some(t)
    }

    fn error(&self, t: &Token, what: &str) -> ParseError {
        ParseError { msg: format!("filter: {} {what}", t.at()) }
    }

    /// The value after `kw`; `what` says what it should be.
    fn value(&mut self, kw: &Token, what: &str) -> Result<Token, ParseError> {
        match self.peek() {
            Some(t) if !KEYWORDS.contains(&t.text.as_str()) => {
                self.at += 1;
                Ok(t)
            }
            _ => Err(self.error(kw, &format!("needs {what} after it"))),
        }
    }

    /// EXPR { [and|or] EXPR }, left to right, at parenthesis depth `depth`.
    fn list(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut acc = self.unary()?;
        let (mut ands, mut ors) = (false, false);
        while let Some(t) = self.peek() {
            let or = match t.text.as_str() {
                ")" if depth > 0 => break,
                ")" => return Err(self.error(&t, "has no matching '('")),
                "and" | "&" | "&&" => {
                    self.at += 1;
                    false
                }
                "or" | "|" | "||" => {
                    self.at += 1;
                    true
                }
                "state" | "exclude" | "excl" => {
                    return Err(self.error(&t, "must come before the expression (ss takes states first)"));
                }
                _ => false, // side by side: and
            };
            if self.peek().is_none() {
                return Err(self.error(&t, "needs an expression after it"));
            }
            let rhs = self.unary()?;
            if or {
                ors = true;
                acc = Expr::Or(vec![acc, rhs]);
            } else {
                ands = true;
                acc = Expr::And(vec![acc, rhs]);
            }
        }
        if ands && ors {
            self.notes.push(
                "the filter mixes 'and' and 'or' without parentheses: as in ss, they group from the left ('a or b and c' is '(a or b) and c')"
                    .to_string(),
            );
        }
        Ok(acc)
    }

    /// `not` EXPR | `(` LIST `)` | PRED.
    fn unary(&mut self) -> Result<Expr, ParseError> {
        let Some(t) = self.next_token() else { unreachable!("callers check that a token follows") };
        match t.text.as_str() {
            "!" | "not" => {
                if self.peek().is_none_or(|n| matches!(n.text.as_str(), ")" | "and" | "&" | "&&" | "or" | "|" | "||")) {
                    return Err(self.error(&t, "needs an expression after it"));
                }
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            "(" => {
                match self.peek() {
                    None => return Err(self.error(&t, "is never closed")),
                    Some(n) if n.text == ")" => return Err(self.error(&n, "closes empty parentheses")),
                    _ => {}
                }
                let inner = self.list(1)?;
                match self.next_token() {
                    Some(c) if c.text == ")" => Ok(inner),
                    _ => Err(self.error(&t, "is never closed")),
                }
            }
            "and" | "&" | "&&" | "or" | "|" | "||" => Err(self.error(&t, "needs an expression before it")),
            ")" => Err(self.error(&t, "has no matching '('")),
            "src" | "dst" => self.host(&t),
            "sport" | "dport" => self.port(&t),
            "dev" => self.dev(&t),
            "fwmark" => self.mark(&t),
            "cgroup" => self.cgroup(&t),
            "autobound" => Ok(Expr::Cond(Cond::AutoBound)),
            other => {
                let hint = nearest(other, &PREDICATES).map(|n| format!(" (did you mean '{n}'?)")).unwrap_or_default();
                Err(self.error(
                    &t,
                    &format!(
                        "is not a keyword{hint}: expected src, dst, sport, dport, dev, fwmark, cgroup, autobound, not, '(' (a state goes after 'state')"
                    ),
                ))
            }
        }
    }

    /// An optional operator; `None` when the next token is not one.
    fn op(&mut self) -> Option<(Op, Token)> {
        let t = self.peek()?;
        let op = op_of(&t.text)?;
        self.at += 1;
        Some((op, t))
    }

    /// `=` or `!=` (or nothing); anything else is an error naming `kw`.
    fn eq_op(&mut self, kw: &Token) -> Result<bool, ParseError> {
        match self.op() {
            None | Some((Op::Eq, _)) => Ok(true),
            Some((Op::Ne, _)) => Ok(false),
            Some((_, t)) => Err(self.error(&t, &format!("cannot compare {}: use = or !=", kw.text))),
        }
    }

    fn negate_if(positive: bool, e: Expr) -> Expr {
        if positive { e } else { Expr::Not(Box::new(e)) }
    }

    fn host(&mut self, kw: &Token) -> Result<Expr, ParseError> {
        let positive = self.eq_op(kw)?;
        let v = self.value(kw, "an address (10.0.0.1, 10.0.0.0/8, [::1]:443, *:80, localhost)")?;
        let side = if kw.text == "src" { Side::Src } else { Side::Dst };
        let e = self.hostcond(side, &v)?;
        Ok(Self::negate_if(positive, e))
    }

    /// `[FAMILY:]ADDRESS[/PREFIX][:PORT]`, `[V6]`, `[V6]:PORT`, `*:PORT`, `:PORT`, a host name.
    fn hostcond(&mut self, side: Side, v: &Token) -> Result<Expr, ParseError> {
        let (family, text) = self.family_prefix(v)?;
        if text.starts_with('/') || text.starts_with('@') {
            return Err(self.error(v, "is a unix socket name: portctl filters TCP and UDP sockets"));
        }
        // Split ADDRESS from PORT the way ss does.
        let (addr_text, port_text): (&str, Option<&str>) = if let Some(inner) = text.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return Err(self.error(v, "has a '[' without its ']'"));
            };
            let addr_in = &inner[..close];
            let after = &inner[close + 1..];
            // "", ":PORT", and beyond ss "/LEN", "/LEN:PORT" ([fe80::]/10).
            let (plen, port) = if after.is_empty() {
                (None, None)
            } else if let Some(p) = after.strip_prefix(':') {
                (None, Some(p))
            } else if let Some(rest) = after.strip_prefix('/') {
                match rest.split_once(':') {
                    Some((l, p)) => (Some(l), Some(p)),
                    None => (Some(rest), None),
                }
            } else {
                return Err(self.error(v, "has something after ']' that is not ':PORT'"));
            };
            let addr = match plen {
                Some(l) => format!("{addr_in}/{l}"),
                None => addr_in.to_string(),
            };
            return self.host_parts(side, v, family, &addr, port);
        } else if let Some(rest) = text.strip_prefix('*') {
            match rest {
                "" => ("", None),
                r if r.starts_with(':') => ("", Some(&r[1..])),
                _ => return Err(self.error(v, "is not an address: '*' is any address, '*:PORT' any address on a port")),
            }
        } else {
            let search_from = text.find('/').unwrap_or(0);
            let colons = text.matches(':').count();
            if !text.contains('/') && colons >= 2 {
                // A bare IPv6 address: no port can follow without brackets.
                (text, None)
            } else {
                match text[search_from..].rfind(':') {
                    Some(i) => (&text[..search_from + i], Some(&text[search_from + i + 1..])),
                    None => (text, None),
                }
            }
        };
        self.host_parts(side, v, family, addr_text, port_text)
    }

    fn host_parts(
        &mut self,
        side: Side,
        v: &Token,
        family: Option<Family>,
        addr_text: &str,
        port_text: Option<&str>,
    ) -> Result<Expr, ParseError> {
        let mut parts = Vec::new();
        if let Some(p) = port_text
            && let Some(port) = self.port_number(v, p)?
        {
            parts.push(Expr::Cond(match side {
                Side::Src => Cond::SPort { lo: port, hi: port },
                Side::Dst => Cond::DPort { lo: port, hi: port },
            }));
        }
        let nets = self.addresses(v, family, addr_text)?;
        if let Some(nets) = nets {
            let conds: Vec<Expr> = nets
                .into_iter()
                .map(|(addr, prefix)| {
                    Expr::Cond(match side {
                        Side::Src => Cond::Src { addr, prefix },
                        Side::Dst => Cond::Dst { addr, prefix },
                    })
                })
                .collect();
            parts.push(if conds.len() == 1 { conds.into_iter().next().expect("one") } else { Expr::Or(conds) });
        } else if let Some(f) = family {
            // `inet:*`: any address of that family (mapped ones too for IPv4, as ss's hostcond does).
            let any = match f {
                Family::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            parts.push(Expr::Cond(match side {
                Side::Src => Cond::Src { addr: any, prefix: 0 },
                Side::Dst => Cond::Dst { addr: any, prefix: 0 },
            }));
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one") } else { Expr::And(parts) })
    }

    /// `inet:`/`inet6:` (restricting the filter's families, as in ss), or
    /// a family portctl has no sockets of.
    fn family_prefix<'t>(&mut self, v: &'t Token) -> Result<(Option<Family>, &'t str), ParseError> {
        let t = v.text.as_str();
        if let Some(rest) = t.strip_prefix("inet6:") {
            self.families.push(Family::Ipv6);
            return Ok((Some(Family::Ipv6), rest));
        }
        if let Some(rest) = t.strip_prefix("inet:") {
            self.families.push(Family::Ipv4);
            return Ok((Some(Family::Ipv4), rest));
        }
        for other in ["unix:", "link:", "netlink:", "vsock:", "tipc:", "xdp:"] {
            if t.starts_with(other) {
                return Err(self.error(
                    v,
                    &format!("names a {} socket: portctl filters TCP and UDP sockets", other.trim_end_matches(':')),
                ));
            }
        }
        Ok((None, t))
    }

    /// `None`: any address.
    fn addresses(
        &self,
        v: &Token,
        family: Option<Family>,
        text: &str,
    ) -> Result<Option<Vec<(IpAddr, u8)>>, ParseError> {
        if matches!(text, "" | "*" | "any" | "all" | "default") {
            return Ok(None);
        }
        let (a, plen) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = if a.contains(':') {
            a.parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| self.error(v, &format!("'{a}' is not an IPv6 address")))?
        } else if a.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            IpAddr::V4(ipv4_abbreviated(a).ok_or_else(|| self.error(v, &format!("'{a}' is not an IPv4 address")))?)
        } else {
            // A host name, from /etc/hosts only.
            if plen.is_some() {
                return Err(self.error(v, "has a prefix length after a host name"));
            }
            let addrs: Vec<IpAddr> =
                self.names.host(a).into_iter().filter(|ip| family.is_none_or(|f| Family::of(ip) == f)).collect();
            if addrs.is_empty() {
                return Err(self.error(v, &format!("names no host in /etc/hosts ('{a}'; portctl never asks DNS)")));
            }
            return Ok(Some(addrs.into_iter().map(|ip| (ip, if ip.is_ipv4() { 32 } else { 128 })).collect()));
        };
        if let Some(f) = family
            && Family::of(&addr) != f
        {
            return Err(
                self.error(v, &format!("is not an {} address", if f == Family::Ipv4 { "IPv4" } else { "IPv6" }))
            );
        }
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match plen {
            None => max,
            Some(p) => match p.parse::<u32>() {
                Ok(n) if n <= u32::from(max) => n as u8,
                Ok(_) => return Err(self.error(v, &format!("has prefix /{p}, out of range for {a} (0-{max})"))),
                Err(_) => match mask_bits(p) {
                    Some(n) if addr.is_ipv4() => n,
                    _ => return Err(self.error(v, &format!("has prefix /{p}, not a prefix length (0-{max})"))),
                },
            },
        };
        Ok(Some(vec![(addr, prefix)]))
    }

    /// A port: a number 0-65535, a service name, or `*`/nothing (`None`: any).
    fn port_number(&self, v: &Token, p: &str) -> Result<Option<u16>, ParseError> {
        if p.is_empty() || p == "*" {
            return Ok(None);
        }
        if p.bytes().all(|b| b.is_ascii_digit()) {
            return match p.parse::<u32>() {
                Ok(n) if n <= 65535 => Ok(Some(n as u16)),
                _ => Err(self.error(v, &format!("has port {p}, out of range (0-65535)"))),
            };
        }
        if p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return self.names.service(p).map(Some).ok_or_else(|| {
                self.error(v, &format!("names an unknown service '{p}' (not in /etc/services nor portctl's table)"))
            });
        }
        Err(self.error(v, &format!("'{p}' is not a port number or service name")))
    }

    fn port(&mut self, kw: &Token) -> Result<Expr, ParseError> {
        let op = self.op();
        let v = self.value(kw, "a port (:443, :https, 8080)")?;
        let (_, text) = self.family_prefix(&v)?;
        let text = text.strip_prefix(':').unwrap_or(text);
        if text.contains(':') || text.contains('/') || text.contains('[') {
            return Err(self.error(
                &v,
                &format!(
                    "is not a port: {} takes a port (:443); for an address use {}",
                    kw.text,
                    if kw.text == "sport" { "src" } else { "dst" }
                ),
            ));
        }
        let port = self.port_number(&v, text)?;
        let range = |lo: u16, hi: u16| {
            Expr::Cond(if kw.text == "sport" { Cond::SPort { lo, hi } } else { Cond::DPort { lo, hi } })
        };
        let op = op.map_or(Op::Eq, |(o, _)| o);
        let Some(n) = port else {
            return match op {
                Op::Eq => Ok(Expr::And(Vec::new())),
                Op::Ne => Ok(Expr::Or(Vec::new())),
                _ => Err(self.error(&v, "is no number to compare with")),
            };
        };
        Ok(match op {
            Op::Eq => range(n, n),
            Op::Ne => Expr::Not(Box::new(range(n, n))),
            Op::Ge => range(n, u16::MAX),
            Op::Le => range(0, n),
            // ss: `> N` is "not <= N", `< N` "not >= N": the same sets.
            Op::Gt if n == u16::MAX => Expr::Or(Vec::new()),
            Op::Gt => range(n + 1, u16::MAX),
            Op::Lt if n == 0 => Expr::Or(Vec::new()),
            Op::Lt => range(0, n - 1),
        })
    }

    fn dev(&mut self, kw: &Token) -> Result<Expr, ParseError> {
        let positive = self.eq_op(kw)?;
        let v = self.value(kw, "a device name or interface index")?;
        let d = match c_integer(&v.text) {
            Some(n) => DevRef::Index(u32::try_from(n).map_err(|_| self.error(&v, "is not an interface index"))?),
            None => {
                let ok = v.text.len() < 16 && !v.text.contains('/') && !v.text.contains(':');
                if !ok {
                    return Err(self.error(&v, "is not a device name"));
                }
                DevRef::Name(Arc::from(v.text.as_str()))
            }
        };
        Ok(Self::negate_if(positive, Expr::Cond(Cond::Dev(d))))
    }

    fn mark(&mut self, kw: &Token) -> Result<Expr, ParseError> {
        let positive = self.eq_op(kw)?;
        let v = self.value(kw, "a mark (0x1, or 0x1/0x3 with a mask)")?;
        let num = |s: &str| c_integer(s).and_then(|n| u32::try_from(n).ok());
        let (mark, mask) = match v.text.split_once('/') {
            Some((m, k)) => (num(m), num(k)),
            None => (num(&v.text), Some(u32::MAX)),
        };
        let (Some(mark), Some(mask)) = (mark, mask) else {
            return Err(self.error(&v, "is not a mark: a number (decimal, 0x hex) or MARK/MASK"));
        };
        Ok(Self::negate_if(positive, Expr::Cond(Cond::Mark { mark, mask })))
    }

    fn cgroup(&mut self, kw: &Token) -> Result<Expr, ParseError> {
        let positive = self.eq_op(kw)?;
        let v = self.value(kw, "a cgroup path (/system.slice/nginx.service)")?;
        let id = self.names.cgroup(&v.text).map_err(|e| self.error(&v, &format!("is not a cgroup: {e}")))?;
        Ok(Self::negate_if(positive, Expr::Cond(Cond::Cgroup(id))))
    }
}

/// `193.233.7` is `193.233.7.0`, as ss (inet_aton style, decimal only):
/// one to four dotted parts, each 0-255.
fn ipv4_abbreviated(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut b = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        b[i] = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(b))
}

/// A dotted netmask (`255.255.0.0`) as a prefix length, if contiguous.
fn mask_bits(s: &str) -> Option<u8> {
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let bits = m.leading_ones();
    (m.checked_shl(bits).unwrap_or(0) == 0).then_some(bits as u8)
}

/// A C integer literal as `strtoul(s, 0)` and `%i` read it: decimal, `0x`
/// hex, leading-zero octal.
fn c_integer(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    if s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

/// The closest keyword, for a "did you mean" hint.
fn nearest<'k>(word: &str, keys: &[&'k str]) -> Option<&'k str> {
    keys.iter()
        .map(|k| (crate::filter::edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names for tests: a few services and hosts, cgroups by a fixed table.
    struct Fake;

    impl Names for Fake {
        fn service(&self, name: &str) -> Option<u16> {
            match name {
                "ssh" => Some(22),
                "http" => Some(80),
                "https" => Some(443),
                "postgresql" => Some(5432),
                _ => None,
            }
        }

        fn host(&self, name: &str) -> Vec<IpAddr> {
            hosts_lookup(
                "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.5 db.internal db # the database\n",
                name,
            )
        }

        fn cgroup(&self, path: &str) -> Result<u64, String> {
            match path {
                "/system.slice/nginx.service" => Ok(4242),
                _ => Err(format!("no cgroup '{path}'")),
            }
        }
    }

    fn p(s: &str) -> Result<Filter, ParseError> {
        parse(&[s.to_string()], &Fake)
    }

    fn e(s: &str) -> Expr {
        p(s).unwrap_or_else(|err| panic!("{s}: {err}")).expr.unwrap_or_else(|| panic!("{s}: no expression"))
    }

    fn sp(lo: u16, hi: u16) -> Expr {
        Expr::Cond(Cond::SPort { lo, hi })
    }

    fn dp(lo: u16, hi: u16) -> Expr {
        Expr::Cond(Cond::DPort { lo, hi })
    }

    fn src(a: &str, prefix: u8) -> Expr {
        Expr::Cond(Cond::Src { addr: a.parse().unwrap(), prefix })
    }

    fn dst(a: &str, prefix: u8) -> Expr {
        Expr::Cond(Cond::Dst { addr: a.parse().unwrap(), prefix })
    }

    fn not(x: Expr) -> Expr {
        Expr::Not(Box::new(x))
    }

    fn and(v: Vec<Expr>) -> Expr {
        Expr::And(v)
    }

    fn or(v: Vec<Expr>) -> Expr {
        Expr::Or(v)
    }

    #[test]
    fn predicates() {
        let table: Vec<(&str, Expr)> = vec![
            ("sport = :443", sp(443, 443)),
            ("sport == :443", sp(443, 443)),
            ("sport eq 443", sp(443, 443)),
            ("sport :443", sp(443, 443)),
            ("sport = :https", sp(443, 443)),
            ("dport = https", dp(443, 443)),
            ("dport != :80", not(dp(80, 80))),
            ("dport ne :80", not(dp(80, 80))),
            ("dport neq :80", not(dp(80, 80))),
            ("sport < :1024", sp(0, 1023)),
            ("sport lt :1024", sp(0, 1023)),
            ("sport <= :1024", sp(0, 1024)),
            ("sport le :1024", sp(0, 1024)),
            ("sport leq :1024", sp(0, 1024)),
            ("sport > :1024", sp(1025, 65535)),
            ("sport gt :1024", sp(1025, 65535)),
            ("sport >= :1024", sp(1024, 65535)),
            ("sport ge :1024", sp(1024, 65535)),
            ("sport geq :1024", sp(1024, 65535)),
            ("sport > :65535", or(vec![])),
            ("sport < :0", or(vec![])),
            ("dport = :0", dp(0, 0)),
            ("sport = :*", and(vec![])),
            ("sport != *", or(vec![])),
            ("src 10.0.0.1", src("10.0.0.1", 32)),
            ("src = 10.0.0.0/8", src("10.0.0.0", 8)),
            ("dst == 10.0.0.0/8", dst("10.0.0.0", 8)),
            ("dst 193.233.7/24", dst("193.233.7.0", 24)),
            ("dst 10/8", dst("10.0.0.0", 8)),
            ("dst 10.0.0.0/255.0.0.0", dst("10.0.0.0", 8)),
            ("src 10.0.0.1:80", and(vec![sp(80, 80), src("10.0.0.1", 32)])),
            ("src 10.0.0.0/8:80", and(vec![sp(80, 80), src("10.0.0.0", 8)])),
            ("dst [::1]", dst("::1", 128)),
            ("dst [::1]:443", and(vec![dp(443, 443), dst("::1", 128)])),
            ("dst [fe80::/10]:443", and(vec![dp(443, 443), dst("fe80::", 10)])),
            ("dst [fe80::]/10", dst("fe80::", 10)),
            ("dst fe80::/10", dst("fe80::", 10)),
            ("dst ::1", dst("::1", 128)),
            ("dst *:443", dp(443, 443)),
            ("dst :443", dp(443, 443)),
            ("dst *", and(vec![])),
            ("dst any", and(vec![])),
            ("src 10.0.0.1:https", and(vec![sp(443, 443), src("10.0.0.1", 32)])),
            ("dst localhost", or(vec![dst("127.0.0.1", 32), dst("::1", 128)])),
            ("dst localhost:5432", and(vec![dp(5432, 5432), or(vec![dst("127.0.0.1", 32), dst("::1", 128)])])),
            ("dst inet:localhost", dst("127.0.0.1", 32)),
            ("dst DB", dst("10.0.0.5", 32)),
            ("src != 127.0.0.0/8", not(src("127.0.0.0", 8))),
            ("src inet6:*", src("::", 0)),
            ("dev lo", Expr::Cond(Cond::Dev(DevRef::Name(Arc::from("lo"))))),
            ("dev = 2", Expr::Cond(Cond::Dev(DevRef::Index(2)))),
            ("dev != 0x2", not(Expr::Cond(Cond::Dev(DevRef::Index(2))))),
            ("fwmark = 0x01/0x03", Expr::Cond(Cond::Mark { mark: 1, mask: 3 })),
            ("fwmark 7", Expr::Cond(Cond::Mark { mark: 7, mask: u32::MAX })),
            ("fwmark != 010", not(Expr::Cond(Cond::Mark { mark: 8, mask: u32::MAX }))),
            ("cgroup /system.slice/nginx.service", Expr::Cond(Cond::Cgroup(4242))),
            ("cgroup != /system.slice/nginx.service", not(Expr::Cond(Cond::Cgroup(4242)))),
            ("autobound", Expr::Cond(Cond::AutoBound)),
        ];
        for (s, want) in table {
            assert_eq!(e(s), want, "{s}");
        }
    }

    #[test]
    fn grouping_follows_ss() {
        let a = || sp(1, 1);
        let b = || sp(2, 2);
        let c = || sp(3, 3);
        let table: Vec<(&str, Expr)> = vec![
            // Left to right, one precedence: what ss 6.1 does.
            ("sport = :1 or sport = :2 and sport = :3", and(vec![or(vec![a(), b()]), c()])),
            ("sport = :1 and sport = :2 or sport = :3", or(vec![and(vec![a(), b()]), c()])),
            ("sport = :1 sport = :2", and(vec![a(), b()])),
            ("sport = :1 && sport = :2 || sport = :3", or(vec![and(vec![a(), b()]), c()])),
            ("sport = :1 & sport = :2 | sport = :3", or(vec![and(vec![a(), b()]), c()])),
            ("not sport = :1 and sport = :2", and(vec![not(a()), b()])),
            ("! sport = :1", not(a())),
            ("!sport = :1", not(a())),
            ("! ! sport = :1", not(not(a()))),
            ("sport = :1 or ( sport = :2 and sport = :3 )", or(vec![a(), and(vec![b(), c()])])),
            ("sport = :1 or (sport = :2 and sport = :3)", or(vec![a(), and(vec![b(), c()])])),
            ("not ( sport = :1 or sport = :2 )", not(or(vec![a(), b()]))),
            ("!(sport = :1)", not(a())),
            ("( ( sport = :1 ) )", a()),
        ];
        for (s, want) in table {
            assert_eq!(e(s), want.fold(), "{s}");
        }
        assert_eq!(p("sport = :1 or sport = :2 and sport = :3").unwrap().notes.len(), 1);
        assert!(p("sport = :1 or ( sport = :2 and sport = :3 )").unwrap().notes.is_empty());
    }

    #[test]
    fn words_split_like_ss() {
        // One argument with blanks, or one argument per word: the same.
        let words: Vec<String> =
            ["(", "dport", "=", ":ssh", "or", "sport", "=", ":ssh", ")"].map(String::from).to_vec();
        let one = p("( dport = :ssh or sport = :ssh )").unwrap();
        assert_eq!(parse(&words, &Fake).unwrap(), one);
        assert_eq!(one.expr, Some(or(vec![dp(22, 22), sp(22, 22)])));
    }

    #[test]
    fn states() {
        let st = |s: &str| p(s).unwrap().states;
        let set = |v: &[State]| Some(StateSet::of(v));
        assert_eq!(st(""), None);
        assert_eq!(st("state established"), set(&[State::Established]));
        assert_eq!(st("state established state syn-sent"), set(&[State::Established, State::SynSent]));
        assert_eq!(st("state listening"), set(&[State::Listen]));
        assert_eq!(st("state closed"), set(&[State::Close, State::Unconn]));
        assert_eq!(st("state unconnected"), set(&[State::Close, State::Unconn]));
        assert_eq!(st("state all"), Some(StateSet::all()));
        let all_but = |out: &[State]| {
            let mut s = StateSet::EMPTY;
            for x in State::TCP.iter().chain(&[State::Unconn]) {
                if !out.contains(x) {
                    s.insert(*x);
                }
            }
            Some(s)
        };
        assert_eq!(st("exclude listening"), all_but(&[State::Listen]));
        assert_eq!(st("excl time-wait exclude listening"), all_but(&[State::TimeWait, State::Listen]));
        assert_eq!(st("exclude listening state listening"), Some(StateSet::all()));
        // ss's groups, TIME_WAIT included in connected.
        assert_eq!(st("state connected"), all_but(&[State::Listen, State::Close, State::Unconn]));
        assert_eq!(st("state synchronized"), all_but(&[State::Listen, State::Close, State::Unconn, State::SynSent]));
        assert_eq!(st("state bucket"), set(&[State::SynRecv, State::TimeWait]));
        assert_eq!(st("state big"), all_but(&[State::SynRecv, State::TimeWait]));
        let f = p("state fin-wait-1 ( sport = :http or sport = :https ) dst 193.233.7/24").unwrap();
        assert_eq!(f.states, set(&[State::FinWait1]));
        assert_eq!(f.expr, Some(and(vec![or(vec![sp(80, 80), sp(443, 443)]), dst("193.233.7.0", 24)])));
    }

    #[test]
    fn families_from_prefixes() {
        assert_eq!(p("src inet:10.0.0.1").unwrap().families, Some(vec![Family::Ipv4]));
        assert_eq!(p("sport = inet6::80").unwrap().families, Some(vec![Family::Ipv6]));
        assert_eq!(p("src 10.0.0.1").unwrap().families, None);
    }

    /// Every bad expression: one line naming the token and its word.
    #[test]
    fn errors_name_the_token_and_word() {
        let table = [
            ("( sport = :80", "'(' (word 1) is never closed"),
            ("( sport = :80 or ( dport = :1 )", "'(' (word 1) is never closed"),
            ("sport = :80 )", "')' (word 4) has no matching '('"),
            ("( )", "')' (word 2) closes empty parentheses"),
            ("sprot = :80", "'sprot' (word 1) is not a keyword (did you mean 'sport'?)"),
            ("frob", "'frob' (word 1) is not a keyword: expected src"),
            ("sport = :70000", "':70000' (word 3) has port 70000, out of range (0-65535)"),
            ("src 10.0.0.0/33", "'10.0.0.0/33' (word 2) has prefix /33, out of range for 10.0.0.0 (0-32)"),
            ("dst ::/129", "'::/129' (word 2) has prefix /129, out of range"),
            ("sport = :80 and", "'and' (word 4) needs an expression after it"),
            ("sport = :80 or", "'or' (word 4) needs an expression after it"),
            ("and sport = :80", "'and' (word 1) needs an expression before it"),
            ("not", "'not' (word 1) needs an expression after it"),
            ("sport = :80 and not", "'not' (word 5) needs an expression after it"),
            ("sport =", "'sport' (word 1) needs a port"),
            ("sport = and", "'sport' (word 1) needs a port"),
            ("src", "'src' (word 1) needs an address"),
            ("sport = :nosuchsvc", "names an unknown service 'nosuchsvc'"),
            ("sport = 10.0.0.1:80", "is not a port: sport takes a port (:443); for an address use src"),
            ("sport > *", "'*' (word 3) is no number to compare with"),
            ("src > 10.0.0.1", "'>' (word 2) cannot compare src: use = or !="),
            ("dst nosuchhost", "names no host in /etc/hosts ('nosuchhost'; portctl never asks DNS)"),
            ("dst 10.0.0.300", "'10.0.0.300' is not an IPv4 address"),
            ("dst [::1", "has a '[' without its ']'"),
            ("dst [::1]x", "has something after ']' that is not ':PORT'"),
            ("dst zz::1", "'zz::1' is not an IPv6 address"),
            ("dst inet6:10.0.0.1", "is not an IPv6 address"),
            ("src /tmp/.X11-unix/*", "is a unix socket name"),
            ("src unix:/tmp/x", "names a unix socket"),
            ("fwmark = zz", "'zz' (word 3) is not a mark"),
            ("fwmark = 0x1/0xz", "is not a mark"),
            ("cgroup /nope", "'/nope' (word 2) is not a cgroup: no cgroup '/nope'"),
            ("dev a/b", "is not a device name"),
            ("state", "'state' (word 1) needs a state or group"),
            ("state estab1ished", "did you mean 'established'"),
            ("sport = :80 state listening", "'state' (word 4) must come before the expression"),
            ("sport = :1 sport", "'sport' (word 4) needs a port"),
            ("state bucket exclude all", "'all' (word 4) leaves no state"),
            ("exclude all", "'all' (word 2) leaves no state"),
        ];
        for (s, want) in table {
            let err = p(s).expect_err(s);
            assert!(err.msg.starts_with("filter: "), "{s}: {err}");
            assert!(err.msg.contains(want), "{s}: got {err}, want {want}");
            assert!(!err.msg.contains('\n'), "{s}: {err}");
        }
    }

    #[test]
    fn tokens_keep_their_word_numbers() {
        let t = tokenize(&["(sport".into(), "=".into(), ":ssh)".into(), "!dport".into(), "!=".into(), ":1".into()]);
        let got: Vec<(&str, usize)> = t.iter().map(|t| (t.text.as_str(), t.word)).collect();
        assert_eq!(
            got,
            [("(", 1), ("sport", 1), ("=", 2), (":ssh", 3), (")", 3), ("!", 4), ("dport", 4), ("!=", 5), (":1", 6)]
        );
        // Balanced parentheses inside a value stay in it (cgroup paths).
        let t = tokenize(&["cgroup /a(b)".into()]);
        assert_eq!(t[1].text, "/a(b)");
    }

    #[test]
    fn hosts_file() {
        let text =
            "# c\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\nfe80::1%eth0 router\nbad line\n10.0.0.5 DB db\n";
        assert_eq!(hosts_lookup(text, "LOCALHOST"), ["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(hosts_lookup(text, "router"), ["fe80::1".parse::<IpAddr>().unwrap()]);
        assert_eq!(hosts_lookup(text, "db"), ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(hosts_lookup(text, "line").is_empty());
    }

    #[test]
    fn numbers_as_ss_reads_them() {
        assert_eq!(c_integer("0x10"), Some(16));
        assert_eq!(c_integer("010"), Some(8));
        assert_eq!(c_integer("10"), Some(10));
        assert_eq!(c_integer("0"), Some(0));
        assert_eq!(c_integer("lo"), None);
        assert_eq!(c_integer("08"), None);
        assert_eq!(ipv4_abbreviated("127"), Some(Ipv4Addr::new(127, 0, 0, 0)));
        assert_eq!(ipv4_abbreviated("1.2.3.4.5"), None);
        assert_eq!(ipv4_abbreviated("1..2"), None);
        assert_eq!(mask_bits("255.255.255.0"), Some(24));
        assert_eq!(mask_bits("255.0.255.0"), None);
        assert_eq!(mask_bits("0.0.0.0"), Some(0));
    }

    #[test]
    fn live_cgroup_ids_are_directory_inodes() {
        use std::os::unix::fs::MetadataExt;
        let Some(mount) = cgroup2_mount() else { return };
        let root = std::fs::metadata(&mount).unwrap().ino();
        assert_eq!(cgroup_id("/"), Ok(root));
        assert!(cgroup_id("/no-such-cgroup-portctl").unwrap_err().contains("no cgroup"));
        assert!(cgroup_id("/../etc").unwrap_err().contains(".."));
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        const WORDS: [&str; 40] = [
            "(",
            ")",
            "!",
            "not",
            "and",
            "or",
            "&&",
            "||",
            "|",
            "&",
            "src",
            "dst",
            "sport",
            "dport",
            "dev",
            "fwmark",
            "cgroup",
            "autobound",
            "state",
            "exclude",
            "=",
            "!=",
            "<",
            ">=",
            "eq",
            ":80",
            ":https",
            "*",
            "*:22",
            "10.0.0.0/8",
            "[::1]:443",
            "::1",
            "localhost",
            "0x1/0x3",
            "established",
            "all",
            "lo",
            "/",
            "[",
            ":70000",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Random sequences of filter words never panic, and what
            /// parses compiles (or says why not).
            #[test]
            fn random_words_never_panic(idx in proptest::collection::vec(0..WORDS.len(), 0..14)) {
                let words: Vec<String> = idx.iter().map(|&i| WORDS[i].to_string()).collect();
                if let Ok(f) = parse(&words, &Fake)
                    && let Some(e) = f.expr
                {
                    let e = e.resolve_devices(&|_| Some(1)).unwrap();
                    let _ = crate::sock_diag::bytecode::try_compile(&e);
                }
            }

            /// Arbitrary text never panics either.
            #[test]
            fn random_text_never_panics(s in "\\PC{0,40}") {
                let _ = parse(&[s], &Fake);
            }
        }
    }
}
