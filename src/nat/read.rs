//! Reading the NAT rules of the calling thread's network namespace with the
//! system's own tools, within a deadline.
//!
//! Why the tools and not netlink: no maintained, MIT-compatible crate
//! decodes nftables rule expressions (nat, redir, tproxy, fib, numgen,
//! verdict maps); `nft -j` and `iptables-save` do, for every kernel and
//! every iptables flavour, in 3-15 ms on an ordinary host. The order keeps
//! the cost down and has no side effects:
//!
//! 1. `nft -j list chains` (no rules, no set elements: 3-15 ms even with
//!    15,000 rules) and `/proc/thread-self/net/ip{,6}_tables_names`.
//! 2. For the tables with a nat prerouting/output base chain (or a filter
//!    prerouting one, for TPROXY): `iptables-nft-save -t nat|mangle` for
//!    iptables-nft's classic tables (nft's JSON shows their DNAT targets as
//!    bare `xt` objects, without parameters), `nft -j list table F T` for
//!    the others, one process each (nft 1.0.6 cannot list two tables in
//!    one run), all at once; `iptables-legacy-save -t T` only for the
//!    tables the kernel lists as legacy (running it otherwise *creates*
//!    the legacy table).
//! 3. `nft -j list table` for a classic-named table iptables-nft-save
//!    calls incompatible (a hand-written `table ip nat`).
//!
//! A child inherits the namespaces of the thread that forks it, so the
//! caller enters the namespace on a thread of its own and calls [`read`]
//! there ([`crate::netns::Netns::run`]).

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Inputs, RuleSource};

/// How the reading went, the worst problem first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything there was to read was read.
    Ok,
    /// A tool that would be needed is not installed (nft, iptables).
    NoTools,
    /// A tool failed.
    Failed,
    /// The deadline passed; what was read by then is used.
    TimedOut,
    /// portctl lacks CAP_NET_ADMIN: nothing could be read.
    NotPermitted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NoTools => "no_tools",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::NotPermitted => "not_permitted",
        }
    }
}

/// One tool run, for `-v`.
#[derive(Debug, Clone)]
pub struct ToolRun {
    pub command: String,
    pub elapsed: Duration,
    /// `ok`, `exit 1: <first stderr line>`, `timed out`, ...
    pub outcome: String,
}

/// The outputs of one namespace's tools and how they went.
#[derive(Debug, Clone)]
pub struct Reading {
    pub status: Status,
    /// One line: what could not be read and why (None when `Ok`).
    pub problem: Option<String>,
    pub inputs: Inputs,
    /// The namespace's addresses and their interfaces (for the exposure).
    pub local: HashMap<IpAddr, String>,
    pub runs: Vec<ToolRun>,
}

impl Reading {
    fn new() -> Reading {
        Reading {
            status: Status::Ok,
            problem: None,
            inputs: Inputs::default(),
            local: HashMap::new(),
            runs: Vec::new(),
        }
    }

    /// A reading that did not happen (the namespace could not be entered).
    pub fn failed(problem: String) -> Reading {
        let mut r = Reading::new();
        r.status = Status::Failed;
        r.problem = Some(problem);
        r
    }

    /// Keeps the worst status and its problem.
    fn problem(&mut self, status: Status, text: String) {
        if status > self.status || self.problem.is_none() {
            self.status = self.status.max(status);
            self.problem = Some(text);
        }
    }
}

/// How long reading may take by default (kube-proxy's nftables table at
/// 4,000 services takes about 1.1 s to list); `PORTCTL_NAT_TIMEOUT_MS`
/// overrides it.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(3);

pub fn budget() -> Duration {
    std::env::var("PORTCTL_NAT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_BUDGET, Duration::from_millis)
}

/// iptables' own table names: on the nf_tables backend, tables of these
/// names in `ip`/`ip6` are normally iptables-nft's.
const CLASSIC: [&str; 5] = ["nat", "mangle", "filter", "raw", "security"];
/// The classic tables that can hold NAT (nat) or TPROXY (mangle).
const WANTED: [&str; 2] = ["nat", "mangle"];

/// Reads the NAT rules of the calling thread's network namespace, giving
/// up at `budget`.
pub fn read(budget: Duration) -> Reading {
    let deadline = Deadline { at: Instant::now() + budget, budget };
    let mut r = Reading::new();
    if !has_net_admin() {
        r.problem(Status::NotPermitted, "NAT rules could not be read: portctl lacks CAP_NET_ADMIN".to_string());
        return r;
    }
    r.local = crate::sys::interface_addresses();
    let tools = Tools::find();
    let legacy = |f: &str| std::fs::read_to_string(format!("/proc/thread-self/net/{f}"));
    let legacy4 = legacy("ip_tables_names");
    let legacy6 = legacy("ip6_tables_names");
    // The outputs of an earlier run at this ruleset generation, when no
    // legacy table (which bumps no generation) can hold NAT rules.
    let any_legacy =
        [&legacy4, &legacy6].iter().any(|n| n.as_ref().is_ok_and(|t| t.lines().any(|l| WANTED.contains(&l.trim()))));
    let started = Instant::now();
    let key = if any_legacy { None } else { super::cache::Key::here() };
    if let Some(k) = key
        && let Some(inputs) = k.load(Path::new(super::cache::DIR))
    {
        r.inputs = inputs;
        r.runs.push(ToolRun {
            command: format!(
                "{}/ (nftables generation {}, unchanged since it was read)",
                super::cache::DIR,
                k.generation
            ),
            elapsed: started.elapsed(),
            outcome: "ok".to_string(),
        });
        return r;
    }

    // 1. The chains: which tables have hooks worth reading.
    let mut relevant: Vec<(String, String)> = Vec::new();
    if let Some(nft) = &tools.nft {
        let out = run_all(vec![Tool::new(nft, &["-j", "list", "chains"])], deadline, &mut r);
        match out.into_iter().next() {
            Some(Some(text)) => relevant = relevant_tables(&text),
            _ if r.status >= Status::TimedOut => return r,
            // nft failed (too old for -j, say): iptables-nft's own tables
            // can still be read.
            _ => relevant = classic_tables(),
        }
    } else if tools.ipt_nft.is_some() {
        // Without nft, iptables-nft still reads its own tables; reading
        // creates none.
        relevant = classic_tables();
        r.problem(
            Status::NoTools,
            "nft is not installed: nftables rules other than iptables-nft's could not be read".to_string(),
        );
    } else {
        r.problem(Status::NoTools, "NAT rules could not be read: neither nft nor iptables is installed".to_string());
    }

    // 2. Everything else, at once.
    let mut jobs: Vec<(Job, Tool)> = Vec::new();
    for (fam, name) in &relevant {
        let classic = matches!(fam.as_str(), "ip" | "ip6") && CLASSIC.contains(&name.as_str());
        if classic {
            if !WANTED.contains(&name.as_str()) {
                continue; // iptables has no NAT or TPROXY in filter, raw, security
            }
            let save = if fam == "ip" { &tools.ipt_nft } else { &tools.ip6t_nft };
            match save {
                Some(t) => jobs.push((
                    Job::Save(if fam == "ip" { "ip" } else { "ip6" }, RuleSource::IptablesNft, name.clone()),
                    t.with(&["-t", name]),
                )),
                None => r.problem(
                    Status::NoTools,
                    format!("{fam} table {name} could not be read: iptables-nft is not installed"),
                ),
            }
        } else if let Some(nft) = &tools.nft {
            jobs.push((Job::Nft, Tool::new(nft, &["-j", "list", "table", fam, name])));
        }
    }
    for (fam, names, save) in [("ip", &legacy4, &tools.ipt_legacy), ("ip6", &legacy6, &tools.ip6t_legacy)] {
        match names {
            Ok(names) => {
                for t in names.lines().map(str::trim).filter(|t| WANTED.contains(t)) {
                    match save {
                        Some(s) => {
                            jobs.push((Job::Save(fam, RuleSource::IptablesLegacy, t.to_string()), s.with(&["-t", t])))
                        }
                        None => r.problem(
                            Status::NoTools,
                            format!("legacy {fam} table {t} could not be read: iptables-legacy is not installed"),
                        ),
                    }
                }
            }
            // Absent: no legacy iptables in this kernel (or no such family).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => r.problem(
                Status::Failed,
                format!("could not tell whether legacy iptables rules exist: /proc/net/{fam}_tables_names: {e}"),
            ),
        }
    }
    let (what, tools_run): (Vec<Job>, Vec<Tool>) = jobs.into_iter().unzip();
    let outs = run_all(tools_run, deadline, &mut r);
    let mut again: Vec<(String, String)> = Vec::new();
    for (job, out) in what.into_iter().zip(outs) {
        let Some(text) = out else { continue };
        match job {
            Job::Nft => r.inputs.nft.push(text),
            Job::Save(fam, source, table) => {
                if source == RuleSource::IptablesNft && save_says_incompatible(&text, &table) {
                    again.push((fam.to_string(), table));
                }
                r.inputs.iptables.push((fam, source, text));
            }
        }
    }
    // 3. Classic names that are native nftables tables.
    if let (Some(nft), false) = (&tools.nft, again.is_empty()) {
        let runs = again.iter().map(|(f, t)| Tool::new(nft, &["-j", "list", "table", f, t])).collect();
        let docs = run_all(runs, deadline, &mut r);
        r.inputs.nft.extend(docs.into_iter().flatten());
    }
    // Kept for the next run, when everything was read and nothing changed
    // meanwhile.
    if let Some(k) = key
        && r.status == Status::Ok
        && super::cache::Key::here() == Some(k)
    {
        k.store(Path::new(super::cache::DIR), &r.inputs);
    }
    r
}

/// The tables iptables-nft reads without nft's help: nat and mangle of
/// both families (reading creates none).
fn classic_tables() -> Vec<(String, String)> {
    ["ip", "ip6"].iter().flat_map(|f| WANTED.iter().map(move |t| (f.to_string(), t.to_string()))).collect()
}

enum Job {
    Nft,
    Save(&'static str, RuleSource, String),
}

/// Whether iptables-save said it cannot show `table`.
fn save_says_incompatible(text: &str, table: &str) -> bool {
    text.lines().any(|l| l.starts_with("# Table `") && l.contains("incompatible") && l.contains(&format!("`{table}'")))
}

/// The (family, table) pairs of `nft -j list chains` output that have a
/// base chain worth reading.
pub fn relevant_tables(text: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for o in v.get("nftables").and_then(|x| x.as_array()).into_iter().flatten() {
        let Some(ch) = o.get("chain") else { continue };
        let s = |k: &str| ch.get(k).and_then(|x| x.as_str());
        if super::nft::relevant_hook(s("type"), s("hook")).is_none() {
            continue;
        }
        let key = (s("family").unwrap_or("").to_string(), s("table").unwrap_or("").to_string());
        if matches!(key.0.as_str(), "ip" | "ip6" | "inet") && !key.1.is_empty() && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// Whether this thread has CAP_NET_ADMIN (bit 12 of CapEff), which
/// listing netfilter rules needs.
fn has_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else { return true };
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim);
    eff.and_then(|h| u64::from_str_radix(h, 16).ok()).is_none_or(|caps| caps & (1 << 12) != 0)
}

/// The tools, by absolute path.
#[derive(Debug, Default)]
struct Tools {
    nft: Option<Tool>,
    ipt_nft: Option<Tool>,
    ip6t_nft: Option<Tool>,
    ipt_legacy: Option<Tool>,
    ip6t_legacy: Option<Tool>,
}

impl Tools {
    fn find() -> Tools {
        let multi =
            |multi: &str, applet: &str| find(multi).map(|p| Tool::new(&Tool { path: p, args: vec![] }, &[applet]));
        let one = |name: &str| find(name).map(|p| Tool { path: p, args: vec![] });
        Tools {
            nft: one("nft"),
            ipt_nft: one("iptables-nft-save").or_else(|| multi("xtables-nft-multi", "iptables-save")),
            ip6t_nft: one("ip6tables-nft-save").or_else(|| multi("xtables-nft-multi", "ip6tables-save")),
            ipt_legacy: one("iptables-legacy-save").or_else(|| multi("xtables-legacy-multi", "iptables-save")),
            ip6t_legacy: one("ip6tables-legacy-save").or_else(|| multi("xtables-legacy-multi", "ip6tables-save")),
        }
    }
}

/// The system directories first (portctl runs as root: a PATH entry a
/// user controls is not trusted), then PATH.
fn find(name: &str) -> Option<PathBuf> {
    let system = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from);
    let path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let candidates = system.into_iter().chain(if crate::sys::is_root() { Vec::new() } else { path });
    candidates.map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[derive(Debug, Clone)]
struct Tool {
    path: PathBuf,
    args: Vec<String>,
}

impl Tool {
    fn new(base: &Tool, args: &[&str]) -> Tool {
        let mut t = base.clone();
        t.args.extend(args.iter().map(|a| a.to_string()));
        t
    }

    fn with(&self, args: &[&str]) -> Tool {
        Tool::new(self, args)
    }

    fn describe(&self) -> String {
        let name =
            self.path.file_name().map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned());
        std::iter::once(name).chain(self.args.iter().cloned()).collect::<Vec<_>>().join(" ")
    }
}

/// What a reader thread sends back: index, stdout, stderr.
type Finished = (usize, Vec<u8>, Vec<u8>);

/// Runs the tools at once and collects their standard output (None for
/// each that failed or was still running at `deadline`, which is then
/// killed: it is our child, not yet reaped, so its pid is still its own).
fn run_all(tools: Vec<Tool>, deadline: Deadline, r: &mut Reading) -> Vec<Option<String>> {
    let n = tools.len();
    let mut out: Vec<Option<String>> = vec![None; n];
    if n == 0 {
        return out;
    }
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Finished>();
    let mut children: Vec<Option<Child>> = Vec::with_capacity(n);
    let mut readers = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let spawned = Command::new(&t.path)
            .args(&t.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(mut c) => {
                let (mut so, mut se) = (c.stdout.take(), c.stderr.take());
                let tx = tx.clone();
                readers.push(std::thread::spawn(move || {
                    let mut o = Vec::new();
                    let mut e = Vec::new();
                    // stderr on a thread of its own: a tool that fills
                    // its stderr pipe before closing stdout would
                    // otherwise wait for us forever.
                    let err = se.take().map(|mut se| {
                        std::thread::spawn(move || {
                            let mut e = Vec::new();
                            let _ = se.by_ref().take(64 * 1024).read_to_end(&mut e);
                            let _ = std::io::copy(&mut se, &mut std::io::sink());
                            e
                        })
                    });
                    if let Some(so) = so.as_mut() {
                        let _ = so.read_to_end(&mut o);
                    }
                    if let Some(h) = err {
                        e = h.join().unwrap_or_default();
                    }
                    let _ = tx.send((i, o, e));
                }));
                children.push(Some(c));
            }
            Err(e) => {
                children.push(None);
                r.runs.push(ToolRun {
                    command: t.describe(),
                    elapsed: Duration::ZERO,
                    outcome: format!("not run: {e}"),
                });
                r.problem(Status::Failed, format!("NAT rules: could not run {}: {e}", t.describe()));
            }
        }
    }
    drop(tx);
    let mut pending: Vec<bool> = children.iter().map(Option::is_some).collect();
    while pending.iter().any(|&p| p) {
        let now = Instant::now();
        let Some(left) = deadline.at.checked_duration_since(now).filter(|d| !d.is_zero()) else { break };
        match rx.recv_timeout(left) {
            Ok((i, stdout, stderr)) => {
                pending[i] = false;
                let status = children[i].as_mut().and_then(|c| c.wait().ok());
                let t = &tools[i];
                let elapsed = started.elapsed();
                let first_err = String::from_utf8_lossy(&stderr)
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                match status {
                    Some(s) if s.success() => {
                        r.runs.push(ToolRun { command: t.describe(), elapsed, outcome: "ok".into() });
                        out[i] = Some(String::from_utf8_lossy(&stdout).into_owned());
                    }
                    s => {
                        let code = s.and_then(|s| s.code()).map_or("a signal".to_string(), |c| format!("exit {c}"));
                        r.runs.push(ToolRun {
                            command: t.describe(),
                            elapsed,
                            outcome: format!("{code}: {first_err}"),
                        });
                        let lower = first_err.to_ascii_lowercase();
                        if lower.contains("permission denied") || lower.contains("operation not permitted") {
                            r.problem(
                                Status::NotPermitted,
                                format!(
                                    "NAT rules could not be read: {} was not permitted ({first_err})",
                                    t.describe()
                                ),
                            );
                        } else {
                            r.problem(
                                Status::Failed,
                                format!("NAT rules: {} failed ({code}: {first_err})", t.describe()),
                            );
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let late: Vec<usize> = (0..n).filter(|&i| pending[i]).collect();
    for &i in &late {
        if let Some(c) = children[i].as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        r.runs.push(ToolRun {
            command: tools[i].describe(),
            elapsed: started.elapsed(),
            outcome: "timed out: killed".into(),
        });
    }
    if let Some(&i) = late.first() {
        r.problem(
            Status::TimedOut,
            format!(
                "NAT rules: gave up after {} ({} still running); ports it publishes are not shown",
                crate::text::duration_ms(u32::try_from(deadline.budget.as_millis()).unwrap_or(u32::MAX)),
                tools[i].describe()
            ),
        );
    }
    for h in readers {
        let _ = h.join();
    }
    out
}

/// When to give up, and the whole budget (for the message).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_listing_names_the_tables_to_read() {
        let text = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
 {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "ip", "table": "nat", "name": "DOCKER", "handle": 5}},
 {"chain": {"family": "inet", "table": "noise", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "netavark", "name": "OUTPUT", "handle": 2, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "bridge", "table": "b", "name": "p", "handle": 2, "type": "filter", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "netavark", "name": "PREROUTING", "handle": 3, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}]}"#;
        assert_eq!(
            relevant_tables(text),
            [("ip".to_string(), "nat".to_string()), ("inet".to_string(), "netavark".to_string())]
        );
        assert!(relevant_tables("not json").is_empty());
    }

    #[test]
    fn incompatible_note_is_per_table() {
        let t = "# Table `nat' is incompatible, use 'nft' tool.\n";
        assert!(save_says_incompatible(t, "nat"));
        assert!(!save_says_incompatible(t, "mangle"));
    }

    #[test]
    fn a_tool_past_the_deadline_is_killed_and_reported() {
        let sleep = find("sleep").expect("sleep(1)");
        let mut r = Reading::new();
        let t = Tool { path: sleep, args: vec!["30".into()] };
        let started = Instant::now();
        let soon = Deadline { at: Instant::now() + Duration::from_millis(50), budget: Duration::from_millis(50) };
        let out = run_all(vec![t], soon, &mut r);
        assert!(started.elapsed() < Duration::from_secs(10), "killed, not waited for");
        assert_eq!(out, [None]);
        assert_eq!(r.status, Status::TimedOut, "{r:?}");
        assert!(r.problem.as_deref().unwrap().contains("sleep 30 still running"), "{r:?}");
    }

    #[test]
    fn failures_are_kept_with_the_first_stderr_line() {
        let sh = find("sh").expect("sh");
        let mut r = Reading::new();
        let fail = Tool {
            path: sh.clone(),
            args: vec!["-c".into(), "echo 'Error: Operation not permitted' >&2; exit 1".into()],
        };
        let ok = Tool { path: sh, args: vec!["-c".into(), "echo hello".into()] };
        let later = Deadline { at: Instant::now() + Duration::from_secs(20), budget: Duration::from_secs(20) };
        let out = run_all(vec![fail, ok], later, &mut r);
        assert_eq!(out, [None, Some("hello\n".to_string())]);
        assert_eq!(r.status, Status::NotPermitted);
        assert_eq!(r.runs.len(), 2);
    }
}
