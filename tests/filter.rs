//! ss filter expressions against `ss` itself: every example of the ss(8)
//! manual's filter section, each predicate, and a randomised differential
//! test — expressions generated over ports, addresses, prefixes, operators,
//! grouping and states, run as `ss -tuanH [state ...] EXPR` and as
//! `portctl conns --json [state ...] EXPR` on the kernel path and on the
//! /proc/net fallback, on the population of `common::population`. And bad
//! expressions: one line, exit 2.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::population::Population;
use common::*;
use portctl::model::{Endpoint, Proto, Socket};

/// What both tools say about one socket; `state` is empty when ss left
/// its State column out (a filter naming one state).
type Key = (Proto, Endpoint, Option<Endpoint>, String);

/// `ss -tuanH WORDS` in the namespace; `state all` first when the words
/// name no state (ss's default hides listeners).
fn ss_keys(pop: &Population, words: &[String]) -> Result<BTreeSet<Key>, String> {
    let mut cmd = pop.ns.command("ss");
    cmd.arg("-tuanH");
    if !words.iter().any(|w| w == "state" || w == "exclude") {
        cmd.args(["state", "all"]);
    }
    cmd.args(words);
    let run = output(&mut cmd);
    if run.code() != 0 || !run.stderr.trim().is_empty() {
        return Err(format!("ss {words:?} failed: {}", run.dump()));
    }
    Ok(parse_ss(&run.stdout).into_iter().map(|s| (s.proto, s.local, s.peer, s.state)).collect())
}

/// `portctl conns --json --no-owners WORDS` in the namespace, on sock_diag
/// or /proc/net (the owners do not take part in filtering; the /proc walk
/// would only make every run slower).
fn portctl_run(pop: &Population, words: &[String], procnet: bool) -> Run {
    let mut p = Portctl::new(["conns", "--json", "--no-owners"]);
    if !words.iter().any(|w| w == "state" || w == "exclude") {
        p = p.args(["state", "all"]);
    }
    p = p.args(words).netns(&pop.ns);
    if procnet {
        p = p.env("PORTCTL_SOURCE", "proc");
    }
    p.run()
}

fn keys_of(sockets: &[Socket], with_state: bool) -> BTreeSet<Key> {
    sockets
        .iter()
        .map(|s| {
            let state = if with_state { s.state.label().to_string() } else { String::new() };
            (s.proto, s.local_ip().unwrap(), s.remote_ip(), state)
        })
        .collect()
}

/// portctl's sockets as keys comparable with ss's (`ss` decides whether
/// states are part of them).
fn portctl_keys(
    pop: &Population,
    words: &[String],
    procnet: bool,
    ss: &BTreeSet<Key>,
) -> Result<BTreeSet<Key>, String> {
    let run = portctl_run(pop, words, procnet);
    match run.code() {
        0 | 1 => {}
        _ => return Err(format!("portctl {words:?} (procnet: {procnet}) failed: {}", run.dump())),
    }
    let sockets = run.sockets();
    if (run.code() == 0) == sockets.is_empty() {
        return Err(format!("exit status {} with {} sockets", run.code(), sockets.len()));
    }
    let with_state = ss.iter().all(|k| !k.3.is_empty());
    Ok(keys_of(&sockets, with_state))
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// The sockets (proto, local, remote) that `ss` lists unfiltered.
fn snapshot(pop: &Population) -> BTreeSet<(Proto, Endpoint, Option<Endpoint>)> {
    let all = ss_keys(pop, &[]).unwrap_or_else(|e| panic!("{e}"));
    all.into_iter().map(|k| (k.0, k.1, k.2)).collect()
}

/// `got` and `want` restricted to the sockets that existed all along:
/// TIME_WAIT sockets expire after 60 s, possibly between two of the runs.
fn stable(
    set: &BTreeSet<Key>,
    before: &BTreeSet<(Proto, Endpoint, Option<Endpoint>)>,
    after: &BTreeSet<(Proto, Endpoint, Option<Endpoint>)>,
) -> BTreeSet<Key> {
    set.iter().filter(|k| before.contains(&(k.0, k.1, k.2)) && after.contains(&(k.0, k.1, k.2))).cloned().collect()
}

/// Runs one expression both ways (kernel and /proc/net) and compares with
/// ss; the number of sockets matched.
fn agree(pop: &Population, expr: &str) -> usize {
    let w = words(expr);
    let before = snapshot(pop);
    let want = ss_keys(pop, &w).unwrap_or_else(|e| panic!("{e}"));
    // /proc/net shows no device, mark, cgroup or how a port was bound.
    let diag_only = w.iter().any(|x| ["dev", "fwmark", "cgroup", "autobound"].contains(&x.as_str()));
    if diag_only {
        let run = portctl_run(pop, &w, true);
        run.expect_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{expr}: {}", run.dump());
        assert!(run.stderr.contains("cannot be tested on sockets read from /proc/net"), "{expr}: {}", run.dump());
    }
    let paths: &[bool] = if diag_only { &[false] } else { &[false, true] };
    let got: Vec<(bool, BTreeSet<Key>)> = paths
        .iter()
        .map(|&procnet| (procnet, portctl_keys(pop, &w, procnet, &want).unwrap_or_else(|e| panic!("{expr}: {e}"))))
        .collect();
    let after = snapshot(pop);
    let want = stable(&want, &before, &after);
    for (procnet, got) in got {
        let got = stable(&got, &before, &after);
        assert_eq!(
            got,
            want,
            "{expr} (procnet: {procnet}): portctl and ss differ\nonly portctl: {:?}\nonly ss: {:?}",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>()
        );
    }
    want.len()
}

/// Every example of the filter section of ss(8), with ss's own words (the
/// options that only change what ss prints, -o, are left out: portctl is
/// compared on which sockets it lists). `ss -x src /tmp/.X11-unix/*` is a
/// unix socket filter: portctl says so, in one line.
#[test]
#[ignore = "needs root"]
fn ss_manual_filter_examples() {
    require_root();
    let pop = Population::new();
    // ss -o state established '( dport = :ssh or sport = :ssh )'
    assert_eq!(agree(&pop, "state established ( dport = :ssh or sport = :ssh )"), 4);
    // The same with the parentheses in one argument, as a shell passes them.
    let quoted = vec!["state".to_string(), "established".into(), "( dport = :ssh or sport = :ssh )".into()];
    let want = ss_keys(&pop, &quoted).unwrap();
    assert_eq!(portctl_keys(&pop, &quoted, false, &want).unwrap(), want);
    // ss -o state fin-wait-1 '( sport = :http or sport = :https )' dst 193.233.7/24
    assert_eq!(agree(&pop, "state fin-wait-1 ( sport = :http or sport = :https ) dst 193.233.7/24"), 2);
    // The predicates of the section, each in the spellings it lists.
    let predicates = [
        "dst 10.0.0.5",
        "src = 10.0.0.0/8",
        "dst [fd00::5]",
        "dst [::1]:8080",
        "sport = :22",
        "dport != :80",
        "sport < :1024",
        "sport <= :443",
        "sport > :5432",
        "sport >= :5432",
        "dport eq :443",
        "dport ne :443",
        "dport neq :443",
        "sport lt :80",
        "sport le :80",
        "sport gt :9000",
        "sport ge :9000",
        "sport geq :9000",
        "sport leq :9000",
        "sport == :22",
        "dst inet:10.0.0.5",
        "dport = inet::5432",
        "src 127.0.0.1:22",
        "dst *:443",
        "src [::ffff:127.0.0.1]:443",
        "dev lo",
        "dev = lo",
        "dev != lo and sport = :7000",
        "fwmark = 0x01/0x03",
        "fwmark = 0x2",
        "fwmark != 0x3",
        // ss's autobound: the kernel's AUTO and a port in the ephemeral range.
        "autobound",
        "not autobound and sport = :7000",
        // Operators and their aliases, implicit and.
        "sport = :22 or sport = :443",
        "sport = :22 | sport = :443",
        "sport = :22 || sport = :443",
        "src 10.0.0.6 and dport = :5432",
        "src 10.0.0.6 & dport = :5432",
        "src 10.0.0.6 && dport = :5432",
        "src 10.0.0.6 dport = :5432",
        "not src 127.0.0.0/8",
        "! src 127.0.0.0/8",
        // Grouping as ss does it: left to right, one precedence.
        "sport = :22 or sport = :443 and src 127.0.0.1",
        "sport = :22 and src 127.0.0.1 or sport = :443",
        "( sport = :22 or sport = :443 ) and not src 127.0.0.1",
        // Host names from /etc/hosts.
        "dst localhost",
        // State groups and exclude.
        "state connected",
        "state synchronized",
        "state bucket",
        "state big",
        "state closed",
        "state listening",
        "state time-wait",
        "state close-wait",
        "state fin-wait-2",
        "exclude listening",
        "exclude established exclude time-wait",
        "state all exclude connected",
    ];
    let mut matched = 0;
    let mut pop = pop;
    for p in predicates {
        // New TIME_WAIT sockets before the old ones expire (a slow machine).
        if pop.built.elapsed() > Duration::from_secs(50) {
            drop(pop);
            pop = Population::new();
        }
        let n = agree(&pop, p);
        matched += usize::from(n > 0);
    }
    assert!(matched >= predicates.len() - 2, "most predicates select something: {matched} of {}", predicates.len());
    // `ss -x src /tmp/.X11-unix/*`: a unix filter.
    let run = Portctl::new(["conns", "src", "/tmp/.X11-unix/*"]).run();
    run.expect_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.dump());
    assert!(run.stderr.contains("'/tmp/.X11-unix/*' (word 2) is a unix socket name"), "{}", run.dump());
}

/// `cgroup PATH` against ss: a socket created by a process in a cgroup of
/// the test's own (cgroup v2), and none outside it. portctl is run with
/// --netns: `ip netns exec` remounts /sys, where cgroup v2 lives.
#[test]
#[ignore = "needs root"]
fn cgroup_predicate_against_ss() {
    use std::os::unix::process::CommandExt;
    require_root();
    let pop = Population::new();
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(str::to_string))?
        })
        .expect("cgroup v2 is mounted");
    let name = unique_name();
    let dir = std::path::Path::new(&mount).join(&name);
    std::fs::create_dir(&dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    // The child joins the cgroup and the namespace, then makes the socket.
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    let ns_file = std::fs::File::open(format!("/run/netns/{}", pop.ns.name())).unwrap();
    let ns_fd = std::os::fd::AsRawFd::as_raw_fd(&ns_file);
    let mut cmd = Command::new("sleep");
    cmd.arg("100000").stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls (open, write, close, setns,
    // socket, bind, listen) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 6000u16.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([10, 0, 0, 5]).to_be() },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if s < 0 || libc::bind(s, (&sin as *const libc::sockaddr_in).cast(), len) != 0 || libc::listen(s, 8) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    let path = format!("/{name}");
    // ss too runs in the host's mount namespace (nsenter --net), where
    // cgroup v2 is mounted.
    let ss_here = |w: &[String]| -> BTreeSet<Key> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", pop.ns.name())).args(["ss", "-tuanH", "state", "all"]).args(w);
        let run = output(&mut cmd);
        run.expect_code(0);
        assert!(run.stderr.is_empty(), "{}", run.dump());
        parse_ss(&run.stdout).into_iter().map(|s| (s.proto, s.local, s.peer, s.state)).collect()
    };
    for expr in [format!("cgroup {path}"), format!("cgroup != {path} and sport > :5999 and sport < :7001")] {
        let w = words(&expr);
        let want = ss_here(&w);
        let run = Portctl::new(["conns", "--json", "--netns", pop.ns.name(), "state", "all"]).args(&w).run();
        let got = keys_of(&run.sockets(), true);
        assert_eq!(got, want, "{expr}\n{}", run.dump());
        assert_eq!(got.len(), 1, "{expr}: {got:?}");
    }
    // `ip netns exec` remounts /sys, and cgroup v2 with it: said so.
    let run = Portctl::new(["conns", "cgroup", &path]).netns(&pop.ns).run();
    run.expect_code(2);
    assert!(run.stderr.contains("cgroup v2 is not mounted here"), "{}", run.dump());
    drop(child);
}

/// A tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const PORTS: [&str; 16] = [
    ":22", ":80", ":443", ":5432", ":8080", ":9090", ":53", ":5353", ":123", ":161", ":7000", ":30000", ":0", ":1024",
    ":40000", ":65535",
];
const NAMED_PORTS: [&str; 3] = [":ssh", ":http", ":https"];
const PORT_OPS: [&str; 19] =
    ["", "=", "==", "!=", "<", "<=", ">", ">=", "eq", "ne", "neq", "lt", "le", "leq", "gt", "ge", "geq", "=", "="];
/// Addresses, networks and ends. Left out: prefixes of all zeros
/// (`0.0.0.0`, `0.0.0.0/0`, `[::]`, `::/0`). ss shows what both its kernel
/// program and its user-space check accept, and the user-space check
/// ignores the family: `0.0.0.0/0` "matches" IPv6 sockets there, so `not
/// src 0.0.0.0/0` shows nothing in ss, where the kernel's answer (and
/// portctl's) is every native IPv6 socket. Where ss disagrees with itself
/// there is nothing to compare with.
const HOSTS: [&str; 25] = [
    "127.0.0.1",
    "10.0.0.5",
    "10.0.0.6",
    "193.233.7.10",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "10.0.0.4/31",
    "10.0.0.6/31",
    "193.233.7/24",
    "193.233.0.0/16",
    "192.168.0.0/16",
    "10/8",
    "10.0.0.5:5432",
    "127.0.0.1:22",
    "10.0.0.0/8:5432",
    "[::1]",
    "[fd00::5]",
    "[::ffff:127.0.0.1]",
    "fd00::/16",
    "[fd00::/16]",
    "[::1]:8080",
    "[fd00::5]:9090",
    "[::ffff:127.0.0.0/104]:443",
    "*:443",
    "*",
];
const STATES: [&str; 13] = [
    "established",
    "listening",
    "time-wait",
    "close-wait",
    "fin-wait-1",
    "fin-wait-2",
    "closed",
    "connected",
    "synchronized",
    "bucket",
    "big",
    "all",
    "syn-sent",
];

fn predicate(rng: &mut Rng) -> String {
    match rng.below(25) {
        0..=10 => {
            let side = rng.pick(&["sport", "dport"]);
            let op = rng.pick(&PORT_OPS);
            let port = if rng.below(8) == 0 { rng.pick(&NAMED_PORTS) } else { rng.pick(&PORTS) };
            // ss takes the port without its colon too.
            let port = if rng.below(5) == 0 { port.trim_start_matches(':') } else { port };
            if op.is_empty() { format!("{side} {port}") } else { format!("{side} {op} {port}") }
        }
        11..=23 => {
            let side = rng.pick(&["src", "dst"]);
            let op = rng.pick(&["", "", "=", "==", "eq"]);
            let host = rng.pick(&HOSTS);
            if op.is_empty() { format!("{side} {host}") } else { format!("{side} {op} {host}") }
        }
        _ => format!("fwmark {}", rng.pick(&["= 0x1", "= 0x2/0x2", "!= 0x3", "0x0/0x1", "= 0x01/0x03"])),
    }
}

fn expression(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.below(3) == 0 {
        return predicate(rng);
    }
    let op = |rng: &mut Rng| rng.pick(&["and", "or", "&&", "||", "&", "|", "", "and", "or"]).to_string();
    match rng.below(4) {
        0 => format!("{} {}", rng.pick(&["not", "!"]), expression(rng, depth - 1)),
        1 => format!("( {} {} {} )", expression(rng, depth - 1), op(rng), expression(rng, depth - 1)),
        // Without parentheses: ss groups left to right.
        _ => format!("{} {} {}", expression(rng, depth - 1), op(rng), expression(rng, depth - 1)),
    }
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

fn states_prefix(rng: &mut Rng) -> String {
    let mut out = Vec::new();
    for _ in 0..rng.below(3) {
        let kw = if rng.below(4) == 0 { "exclude" } else { "state" };
        out.push(format!("{kw} {}", rng.pick(&STATES)));
    }
    out.join(" ")
}

/// The randomised differential test: generated filters, each run by ss
/// and by portctl on the kernel path and on the /proc/net fallback, on a
/// population of 60-odd sockets in every state the kernel keeps for more
/// than an instant. The seed is printed (and taken from
/// PORTCTL_FILTER_SEED to replay a failure). The population is rebuilt
/// before its TIME_WAIT sockets expire.
#[test]
#[ignore = "needs root"]
fn random_filters_agree_with_ss_on_both_paths() {
    require_root();
    let seed: u64 = std::env::var("PORTCTL_FILTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let total: usize = std::env::var("PORTCTL_FILTER_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(250);
    eprintln!("random filters: seed {seed} (PORTCTL_FILTER_SEED={seed} replays it), {total} filters");
    let mut rng = Rng(seed);
    let mut pop = Population::new();
    let (mut done, mut nonempty, mut empty, mut untestable, mut no_state) = (0, 0, 0, 0, 0);
    let mut sizes = BTreeSet::new();
    while done < total {
        // New TIME_WAIT sockets before the old ones expire.
        if pop.built.elapsed() > Duration::from_secs(50) {
            drop(pop);
            pop = Population::new();
        }
        let mut f = states_prefix(&mut rng);
        let depth = 1 + rng.below(4) as u32;
        if rng.below(10) != 0 || f.is_empty() {
            f = format!("{f} {}", expression(&mut rng, depth)).trim().to_string();
        }
        let w = words(&f);
        // A state filter that ends up empty: ss drops it silently (and shows
        // its defaults); portctl says so.
        let refused = portctl_run(&pop, &w, false);
        if refused.code() == 2 && refused.stderr.contains("leaves no state") {
            assert_eq!(refused.stderr_lines().len(), 1, "{f}: {}", refused.dump());
            no_state += 1;
            done += 1;
            continue;
        }
        let before = snapshot(&pop);
        let want = match ss_keys(&pop, &w) {
            Ok(k) => k,
            Err(e) => panic!("seed {seed}, filter {f:?}: {e}"),
        };
        let kernel = portctl_keys(&pop, &w, false, &want).unwrap_or_else(|e| panic!("seed {seed}, {f:?}: {e}"));
        // A mark cannot be tested on /proc/net: a clear error, unless the
        // expression does not depend on it (`fwmark = 1 or sport < :0` and
        // the like fold away).
        let on_proc = portctl_run(&pop, &w, true);
        let procnet = if on_proc.code() == 2 {
            assert!(w.iter().any(|x| x == "fwmark"), "{f}: {}", on_proc.dump());
            assert!(
                on_proc.stderr.contains("cannot be tested on sockets read from /proc/net"),
                "{f}: {}",
                on_proc.dump()
            );
            assert_eq!(on_proc.stderr_lines().len(), 1, "{f}: {}", on_proc.dump());
            untestable += 1;
            None
        } else {
            Some(portctl_keys(&pop, &w, true, &want).unwrap_or_else(|e| panic!("seed {seed}, {f:?}: {e}")))
        };
        let after = snapshot(&pop);
        let want = stable(&want, &before, &after);
        // Kernel path: the same sockets as ss.
        let got = stable(&kernel, &before, &after);
        assert_eq!(
            got,
            want,
            "seed {seed}, filter {f:?} (sock_diag)\nonly portctl: {:?}\nonly ss: {:?}",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>()
        );
        // /proc/net: the same, or, for what /proc/net does not show, a clear error.
        if let Some(got) = procnet {
            let got = stable(&got, &before, &after);
            assert_eq!(
                got,
                want,
                "seed {seed}, filter {f:?} (/proc/net)\nonly portctl: {:?}\nonly ss: {:?}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            );
        }
        if want.is_empty() {
            empty += 1;
        } else {
            nonempty += 1;
        }
        sizes.insert(want.len());
        done += 1;
    }
    eprintln!(
        "random filters: {done} filters (seed {seed}): {nonempty} matched sockets and {empty} none, alike in ss, portctl and portctl on /proc/net ({untestable} with fwmark refused on /proc/net); {no_state} whose states cancel out refused; {} distinct result sizes",
        sizes.len()
    );
    assert!(nonempty * 4 >= done, "too few filters matched anything ({nonempty} of {done}): the generator is off");
    assert!(sizes.len() >= 10, "too few distinct results: {sizes:?}");
}

/// Bad expressions: one line naming the token and its word, exit 2, on
/// every command that takes one.
#[test]
fn bad_expressions_are_one_line_and_exit_2() {
    let cases: [(&[&str], &str); 12] = [
        (&["(", "sport", "=", ":80"], "filter: '(' (word 1) is never closed"),
        (&["sport = :80 )"], "filter: ')' (word 4) has no matching '('"),
        (&["frob", "=", "1"], "filter: 'frob' (word 1) is not a keyword"),
        (&["sprot", "=", ":80"], "did you mean 'sport'?"),
        (&["sport", "=", ":70000"], "filter: ':70000' (word 3) has port 70000, out of range (0-65535)"),
        (&["src", "10.0.0.0/33"], "filter: '10.0.0.0/33' (word 2) has prefix /33, out of range for 10.0.0.0 (0-32)"),
        (&["sport", "=", ":80", "and"], "filter: 'and' (word 4) needs an expression after it"),
        (&["or", "sport", "=", ":80"], "filter: 'or' (word 1) needs an expression before it"),
        (&["dst", "no-such-host.invalid"], "names no host in /etc/hosts"),
        (&["sport", "=", ":no-such-service"], "names an unknown service 'no-such-service'"),
        (&["state", "estab1ished"], "unknown state 'estab1ished' (did you mean 'established'?)"),
        (&["not"], "filter: 'not' (word 1) needs an expression after it"),
    ];
    for cmd in [&["conns"][..], &["listen"], &["stats"], &["close", "--dry-run"], &["watch", "--count", "1", "conns"]] {
        for (expr, want) in cases {
            let run = Portctl::new(cmd).args(expr).run();
            run.expect_code(2);
            let lines = run.stderr_lines();
            assert_eq!(lines.len(), 1, "{cmd:?} {expr:?}: {}", run.dump());
            assert!(lines[0].starts_with("portctl: error: "), "{cmd:?} {expr:?}: {}", run.dump());
            assert!(lines[0].contains(want), "{cmd:?} {expr:?}: want {want:?}\n{}", run.dump());
            assert!(run.stdout.is_empty(), "{cmd:?} {expr:?}: {}", run.dump());
        }
    }
}

/// Expressions on listen, stats and watch conns select the same sockets as
/// conns does (listen: listening and bound only).
#[test]
#[ignore = "needs root"]
fn expressions_on_listen_stats_and_watch() {
    require_root();
    let pop = Population::new();
    let listen =
        Portctl::new(["listen", "--json", "src", "10.0.0.0/8", "or", "sport", "=", ":22"]).netns(&pop.ns).run();
    listen.expect_code(0);
    let got: BTreeSet<(Proto, u16)> = listen.sockets().iter().map(|s| (s.proto, s.port())).collect();
    // The connected UDP socket on 10.0.0.6 is no listener.
    let want: BTreeSet<(Proto, u16)> =
        [(Proto::Tcp, 22), (Proto::Tcp, 5432), (Proto::Tcp, 7000), (Proto::Udp, 123), (Proto::Udp, 161)].into();
    assert_eq!(got, want, "{}", listen.dump());
    // listen's own states narrowed by the filter's.
    let tcp_only = Portctl::new(["listen", "--json", "state", "listening"]).netns(&pop.ns).run();
    assert!(tcp_only.sockets().iter().all(|s| s.proto == Proto::Tcp), "{}", tcp_only.dump());
    // stats counts what the filter keeps.
    let stats = Portctl::new(["stats", "--json", "--no-owners", "state", "time-wait"]).netns(&pop.ns).run();
    stats.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["total"], 3, "three TIME_WAIT sockets: {}", stats.stdout);
    // watch conns with an expression: the first frame lists what conns does.
    let watch =
        Portctl::new(["watch", "--count", "1", "conns", "state", "all", "dport", "=", ":5432"]).netns(&pop.ns).run();
    watch.expect_code(0);
    let rows: Vec<&str> = watch.stdout.lines().filter(|l| l.contains(":5432")).collect();
    assert_eq!(rows.len(), 2, "{}", watch.dump());
    assert!(
        rows.iter().any(|r| r.contains("ESTAB")) && rows.iter().any(|r| r.contains("FIN-WAIT-2")),
        "{}",
        watch.dump()
    );
}
