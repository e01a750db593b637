//! `--format prometheus` (issue 8): real sockets on loopback, the real binary,
//! and `promtool check metrics` on its output; the example alert rules under
//! `promtool check rules` and `promtool test rules`.
//!
//! promtool comes with Debian's `prometheus` package (scripts/test.sh installs
//! it). Without it these tests fail, saying so: they never skip.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// One sample line of the exposition format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, k: &str) -> &str {
        self.labels.get(k).map_or_else(|| panic!("{self:?} has no label {k}"), String::as_str)
    }
}

/// Parses sample lines (comments skipped), unescaping label values; panics on
/// anything malformed, and on a series written twice.
fn samples(text: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    // --all-netns sees every namespace on the host, however busy: a set,
    // not a scan of what came before.
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let s = parse_line(line).unwrap_or_else(|| panic!("malformed sample line {line:?}"));
        assert!(seen.insert((s.name.clone(), s.labels.clone())), "series written twice: {line}");
        out.push(s);
    }
    out
}

/// `name{k="v",...} value`.
fn parse_line(line: &str) -> Option<Sample> {
    let (name, mut rest) = line.split_at(line.find(['{', ' '])?);
    let mut labels = BTreeMap::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            if let Some(r) = body.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = body.find("=\"")?;
            let key = body[..eq].to_string();
            let mut value = String::new();
            let mut it = body[eq + 2..].char_indices();
            let end = loop {
                match it.next()? {
                    (_, '\\') => match it.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (i, '"') => break eq + 2 + i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key, value);
            body = &body[end..];
            body = body.strip_prefix(',').unwrap_or(body);
        }
    }
    Some(Sample { name: name.to_string(), labels, value: rest.trim().parse().ok()? })
}

/// promtool from PATH; panics, saying what to install, when it is missing.
fn promtool_path() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("promtool")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "promtool is not installed: it comes with Debian's `prometheus` package \
             (apt-get install prometheus; scripts/test.sh installs it when run as root)"
        )
    })
}

/// Runs promtool with `args` and `input` on stdin; (success, stdout + stderr).
fn promtool(args: &[&str], input: &str) -> (bool, String) {
    let mut cmd = Command::new(promtool_path());
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = {
        // Forks only under the lock (see tests/common), and promtool is quick.
        let _lock = spawn_lock();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("could not start promtool: {e}"));
        child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `promtool check metrics` (parse and lint) must accept the text.
fn check_metrics(text: &str) {
    let (ok, said) = promtool(&["check", "metrics"], text);
    assert!(ok, "promtool check metrics rejected portctl's output:\n{said}\n--- the output\n{text}");
}

/// Every family has HELP and TYPE lines before its samples: counters are
/// the families named `_total`, the others gauges.
fn check_help_and_type(text: &str, families: &[&str]) {
    for f in families {
        let kind = if f.ends_with("_total") { "counter" } else { "gauge" };
        let help = text.find(&format!("# HELP {f} ")).unwrap_or_else(|| panic!("no HELP for {f}\n{text}"));
        let ty = text.find(&format!("# TYPE {f} {kind}\n")).unwrap_or_else(|| panic!("no TYPE {kind} for {f}\n{text}"));
        assert!(help < ty, "{f}: HELP after TYPE");
        if let Some(first) =
            text.lines().position(|l| l.starts_with(&format!("{f}{{")) || l.starts_with(&format!("{f} ")))
        {
            let ty_line = text.lines().position(|l| l == format!("# TYPE {f} {kind}")).unwrap();
            assert!(ty_line < first, "{f}: a sample before its TYPE line");
        }
    }
}

fn listen_info<'a>(ss: &'a [Sample], proto: &str, addr: &str, port: u16) -> Vec<&'a Sample> {
    ss.iter()
        .filter(|s| s.name == "portctl_listen_info")
        .filter(|s| s.label("proto") == proto && s.label("addr") == addr && s.label("port") == port.to_string())
        .collect()
}

fn addr_of(a: SocketAddr) -> String {
    a.ip().to_string()
}

const LISTEN_FAMILIES: [&str; 7] = [
    "portctl_listen_info",
    "portctl_listen_owners_hidden",
    "portctl_listen_accept_queue_length",
    "portctl_listen_accept_queue_backlog",
    "portctl_udp_socket_drops_total",
    "portctl_nat_published_info",
    "portctl_nat_rules_read",
];
const STATS_FAMILIES: [&str; 11] = [
    "portctl_sockets",
    "portctl_ephemeral_ports_usable",
    "portctl_ephemeral_ports_used_ratio",
    "portctl_close_wait_sockets",
    "portctl_tcp_memory_pages",
    "portctl_tcp_memory_limit_pages",
    "portctl_tcp_memory_pressure",
    "portctl_tcp_orphan_sockets",
    "portctl_tcp_orphan_sockets_limit",
    "portctl_tcp_time_wait_sockets_limit",
    "portctl_udp_memory_pages",
];

// ---------------------------------------------------------------------------
// 1. listen

#[test]
fn listen_metrics_name_our_sockets_and_pass_promtool() {
    let (comm, _) = own_comm_and_cmdline();
    let user = user_name(euid());
    let loopback = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
    let wildcard = tcp_listener(SocketAddr::new("::".parse().unwrap(), unused_port()), Some(false), 8);
    let udp = udp_socket("[::1]:0".parse().unwrap(), Some(true));
    let run = Portctl::new(["listen", "--format", "prometheus"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    check_help_and_type(&run.stdout, &LISTEN_FAMILIES);
    let ss = samples(&run.stdout);
    for (what, proto, family, local, exposure) in [
        ("loopback tcp", "tcp", "ipv4", loopback.local_addr().unwrap(), "loopback"),
        ("dual-stack wildcard tcp", "tcp", "ipv6", wildcard.local_addr().unwrap(), "wildcard"),
        ("loopback udp", "udp", "ipv6", udp.local_addr().unwrap(), "loopback"),
    ] {
        let found = listen_info(&ss, proto, &addr_of(local), local.port());
        assert_eq!(found.len(), 1, "{what}: one series (one holder)\n{}", run.dump());
        let s = found[0];
        assert_eq!(s.value, 1.0, "{what}");
        assert_eq!(
            (s.label("family"), s.label("exposure"), s.label("process"), s.label("user"), s.label("netns")),
            (family, exposure, comm.as_str(), user.as_str(), ""),
            "{what}: {s:?}"
        );
        assert_eq!(s.labels.len(), 8, "{what}: exactly the documented labels: {s:?}");
    }
    let hidden: Vec<&Sample> = ss.iter().filter(|s| s.name == "portctl_listen_owners_hidden").collect();
    assert!(hidden.iter().any(|s| s.label("netns").is_empty()), "{}", run.dump());
    if is_root() {
        // As root every holder is visible unless a sandbox hides it; a hidden
        // count must then come with the warning on stderr.
        let n: f64 = hidden.iter().map(|s| s.value).sum();
        assert!(n == 0.0 || run.stderr.contains("hidden"), "{}", run.dump());
    }
    assert!(!run.stdout.contains("warning"), "warnings go to stderr only\n{}", run.dump());
}

#[test]
fn listen_with_nothing_to_report_is_still_a_complete_snapshot() {
    let port = unused_port().to_string();
    // The table says "nothing matched" (1); the metrics are a snapshot (0),
    // so that `... > f.tmp && mv f.tmp f` replaces the previous file.
    Portctl::new(["listen", "--port", &port]).run().expect_code(1);
    let run = Portctl::new(["listen", "--port", &port, "--format", "prometheus"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    check_help_and_type(&run.stdout, &LISTEN_FAMILIES);
    let ss = samples(&run.stdout);
    assert!(!ss.iter().any(|s| s.name == "portctl_listen_info"), "{}", run.dump());
    // The NAT rules were read (as root; without CAP_NET_ADMIN they could
    // not be: 0, so an empty portctl_nat_published_info means unknown).
    let nat_read = if common::is_root() { 1.0 } else { 0.0 };
    let own = || [("netns".to_string(), String::new())].into();
    assert_eq!(
        ss,
        vec![
            Sample { name: "portctl_listen_owners_hidden".into(), labels: own(), value: 0.0 },
            Sample { name: "portctl_nat_rules_read".into(), labels: own(), value: nat_read },
        ]
    );
}

#[test]
fn hostile_process_names_are_escaped_and_pass_promtool() {
    // As in tests/listen.rs: a symlink to sleep(1) gives its process the
    // symlink's name as comm; the child inherits a listener and holds it alone.
    // Quote, backslash and newline must be escaped; other bytes pass as is.
    let name = "a\"b\\c\nd\x1be}f";
    let held = NamedHolder::start(name);
    let port = held.port;

    let run = Portctl::new(["listen", "--port", &port.to_string(), "--format", "prometheus"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    assert!(
        run.stdout.contains(r#",process="a\"b\\c\nd"#),
        "quote, backslash and newline escaped as the format says\n{}",
        run.dump()
    );
    let ss = samples(&run.stdout);
    let found = listen_info(&ss, "tcp", "127.0.0.1", port);
    assert_eq!(found.len(), 1, "{}", run.dump());
    assert_eq!(found[0].label("process"), name, "the label round-trips to the kernel's comm");
}

#[test]
fn format_flag_choices_and_conflicts() {
    // `--format json` is `--json`, `--format jsonl` is `--jsonl`, `--format
    // table` the default: compared on a listener of this test's own (other
    // tests bind sockets in parallel).
    let l = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
    let port = l.local_addr().unwrap().port().to_string();
    let listen = |args: &[&str]| Portctl::new(["listen", "--port", &port]).args(args).run();
    let a = listen(&["--json"]);
    let b = listen(&["--format", "json"]);
    assert_eq!(a.stdout, b.stdout, "{}", b.dump());
    assert_eq!(a.sockets().len(), 1, "{}", a.dump());
    assert_eq!(listen(&["--jsonl"]).stdout, listen(&["--format", "jsonl"]).stdout);
    let t = listen(&["--format", "table"]);
    assert_eq!(t.stdout, listen(&[]).stdout);
    assert!(t.stdout.starts_with("PROTO "), "{}", t.dump());
    let st = Portctl::new(["stats", "--format", "json"]).run();
    st.expect_code(0);
    serde_json::from_str::<portctl::domain::stats::Stats>(&st.stdout).unwrap();

    for args in [
        &["listen", "--format", "prometheus", "--json"][..],
        &["listen", "--format", "json", "--jsonl"],
        &["listen", "--format", "yaml"],
        &["stats", "--format", "jsonl"],
        &["stats", "--format", "prometheus", "--json"],
        &["conns", "--format", "prometheus"],
    ] {
        let run = Portctl::new(args).run();
        run.expect_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr_lines().len(), 1, "{args:?}\n{}", run.dump());
        assert!(run.stderr.starts_with("portctl: error: "), "{args:?}\n{}", run.dump());
    }
}

// ---------------------------------------------------------------------------
// 2. stats

#[test]
fn stats_metrics_count_close_wait_and_ephemeral_use() {
    let (comm, _) = own_comm_and_cmdline();
    let user = user_name(euid());
    let listener = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 8);
    let dest = listener.local_addr().unwrap();
    // Three connections whose client half-closes: the accepted ends (ours)
    // sit in CLOSE_WAIT, the clients (ours too) in FIN_WAIT2, each holding
    // one ephemeral port towards `dest`.
    let pairs: Vec<(TcpStream, TcpStream)> = {
        let _lock = spawn_lock();
        (0..3)
            .map(|_| {
                let c = TcpStream::connect(dest).unwrap();
                let (s, _) = listener.accept().unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                (c, s)
            })
            .collect()
    };
    // The FIN reaches the server end when a read sees EOF.
    for (_, s) in &pairs {
        let mut buf = [0u8; 1];
        assert_eq!(std::io::Read::read(&mut &*s, &mut buf).unwrap(), 0);
    }

    let run = Portctl::new(["stats", "--format", "prometheus", "--top", "1000000"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    check_help_and_type(&run.stdout, &STATS_FAMILIES);
    let counters: Vec<&str> = portctl::domain::stats::WATCHED.iter().map(|w| w.metric).collect();
    check_help_and_type(&run.stdout, &counters);
    let ss = samples(&run.stdout);

    let sockets: Vec<&Sample> = ss.iter().filter(|s| s.name == "portctl_sockets").collect();
    assert_eq!(sockets.len(), 26, "13 states x 2 families, zeros included");
    let count = |proto: &str, family: &str, state: &str| {
        sockets
            .iter()
            .find(|s| s.label("proto") == proto && s.label("family") == family && s.label("state") == state)
            .unwrap_or_else(|| panic!("no portctl_sockets for {proto} {family} {state}"))
            .value
    };
    assert!(count("tcp", "ipv4", "close_wait") >= 3.0, "{}", run.dump());
    assert!(count("tcp", "ipv4", "listen") >= 1.0, "{}", run.dump());

    let cw: Vec<&Sample> = ss
        .iter()
        .filter(|s| s.name == "portctl_close_wait_sockets" && s.label("process") == comm && s.label("user") == user)
        .collect();
    assert_eq!(cw.len(), 1, "one series for this test process's name\n{}", run.dump());
    assert_eq!(cw[0].value, 3.0, "{}", run.dump());

    let usable = ss.iter().find(|s| s.name == "portctl_ephemeral_ports_usable").expect("usable ports").value;
    let ratio = ss
        .iter()
        .find(|s| {
            s.name == "portctl_ephemeral_ports_used_ratio"
                && s.label("proto") == "tcp"
                && s.label("remote_addr") == "127.0.0.1"
                && s.label("remote_port") == dest.port().to_string()
        })
        .unwrap_or_else(|| panic!("no ephemeral ratio for {dest}\n{}", run.dump()));
    assert!((ratio.value - 3.0 / usable).abs() < 1e-12, "{ratio:?}, usable {usable}");
    drop(pairs);
}

#[test]
fn stats_without_owners_leaves_the_close_wait_family_empty() {
    let run = Portctl::new(["stats", "--format", "prometheus", "--no-owners", "--top", "1"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    check_help_and_type(&run.stdout, &STATS_FAMILIES);
    let ss = samples(&run.stdout);
    assert!(!ss.iter().any(|s| s.name == "portctl_close_wait_sockets"), "{}", run.dump());
    assert!(ss.iter().filter(|s| s.name == "portctl_ephemeral_ports_used_ratio").count() <= 1);
}

// ---------------------------------------------------------------------------
// 3. The example alert rules (README "Fleet", docs/prometheus.md)

#[test]
fn example_alert_rules_are_valid_and_fire_on_wildcard_databases_and_full_queues() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    let rules = dir.join("portctl-alerts.yml");
    let (ok, said) = promtool(&["check", "rules", rules.to_str().unwrap()], "");
    assert!(ok, "promtool check rules {}:\n{said}", rules.display());
    // The unit tests: the database alert fires for 0.0.0.0:5432, not for
    // 127.0.0.1:5432 or [::]:8080; the ephemeral port alert above 80%; the
    // accept queue alert for a queue over its backlog for a minute, not for
    // a one-sample burst or a queue at (not over) its backlog.
    let tests = dir.join("portctl-alerts.test.yml");
    let (ok, said) = promtool(&["test", "rules", tests.to_str().unwrap()], "");
    assert!(ok, "promtool test rules {}:\n{said}", tests.display());
}

// ---------------------------------------------------------------------------
// 4. In a namespace of the test's own: exact series

#[test]
#[ignore = "needs root"]
fn a_namespace_population_gives_one_series_per_socket_and_holder_name() {
    require_root();
    let ns = Netns::new();
    // 5 TCP and 3 UDP sockets spread over 2 holders, and one listener shared
    // by two processes (same name and user: one series).
    let pop = Sockpop::start(&["--procs", "2", "--listeners", "5", "--udp", "3", "--shared-listener"], Some(&ns));
    let run = Portctl::new(["listen", "--format", "prometheus"]).netns(&ns).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    let ss = samples(&run.stdout);
    let info: Vec<&Sample> = ss.iter().filter(|s| s.name == "portctl_listen_info").collect();
    assert_eq!(info.len(), 9, "{}", run.dump());
    for s in &info {
        assert_eq!(
            (s.label("addr"), s.label("exposure"), s.label("process"), s.label("user"), s.label("netns")),
            ("127.0.0.1", "loopback", "sockpop", "root", ""),
            "{s:?}"
        );
    }
    assert_eq!(info.iter().filter(|s| s.label("proto") == "udp").count(), 3);
    let hidden: Vec<&Sample> = ss.iter().filter(|s| s.name == "portctl_listen_owners_hidden").collect();
    assert_eq!(hidden.len(), 1);
    assert_eq!(hidden[0].value, 0.0);

    let run = Portctl::new(["stats", "--format", "prometheus"]).netns(&ns).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    let ss = samples(&run.stdout);
    let value = |state: &str, proto: &str| {
        ss.iter()
            .find(|s| {
                s.name == "portctl_sockets"
                    && s.label("proto") == proto
                    && s.label("family") == "ipv4"
                    && s.label("state") == state
            })
            .unwrap()
            .value
    };
    assert_eq!(value("listen", "tcp"), 6.0, "{}", run.dump());
    assert_eq!(value("unconn", "udp"), 3.0, "{}", run.dump());
    assert_eq!(value("established", "tcp"), 0.0, "{}", run.dump());
    drop(pop);
}

/// With --all-netns, other namespaces are labelled by name and portctl's
/// own namespace stays `netns=""`, as without the flag: no series carries
/// the host namespace's inode, which changes at every boot.
#[test]
#[ignore = "needs root"]
fn all_netns_labels_others_by_name_and_our_own_empty() {
    require_root();
    let ns = Netns::new();
    let pop = Sockpop::start(&["--procs", "1", "--listeners", "2"], Some(&ns));
    let ours = tcp_listener("127.0.0.1:0".parse().unwrap(), None, 16);
    let our_port = ours.local_addr().unwrap().port().to_string();
    let run = Portctl::new(["listen", "--all-netns", "--format", "prometheus"]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    let ss = samples(&run.stdout);
    let info = |netns: &str| -> Vec<(String, String)> {
        ss.iter()
            .filter(|s| s.name == "portctl_listen_info" && s.label("netns") == netns)
            .map(|s| (s.label("port").to_string(), s.label("process").to_string()))
            .collect()
    };
    let mine = info("");
    assert!(mine.iter().any(|(p, _)| *p == our_port), "our listener :{our_port} not under netns=\"\"\n{}", run.dump());
    let theirs = info(ns.name());
    assert_eq!(theirs.len(), 2, "{}", run.dump());
    assert!(theirs.iter().all(|(_, process)| process == "sockpop"), "{theirs:?}");
    let own_inode = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert!(!run.stdout.contains(&format!("net:[{own_inode}]")), "{}", run.dump());
    let hidden: Vec<&str> =
        ss.iter().filter(|s| s.name == "portctl_listen_owners_hidden").map(|s| s.label("netns")).collect();
    assert!(hidden.contains(&"") && hidden.contains(&ns.name()), "{hidden:?}");
    drop((pop, ours));
}

// ---------------------------------------------------------------------------
// 5. Accept queues, UDP drops and the kernel's counters (issue 16)

fn value_of(ss: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = ss
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert_eq!(hits.len(), 1, "one {name}{labels:?}, got {hits:?}");
    hits[0].value
}

#[test]
#[ignore = "needs root"]
fn accept_queue_gauges_drop_counters_and_kernel_counters_in_a_namespace() {
    require_root();
    let ns = Netns::new();
    let q = FullQueue::new(&ns, "127.0.0.1:8080", 1, 1, 6);
    let quiet = common::in_netns(&ns, || tcp_listener("127.0.0.1:9200".parse().unwrap(), None, 16));
    let udp = DroppingUdp::new(&ns, "127.0.0.1:5300", 60);
    let drops = ss_drops(&ns, "-ua", udp.addr);
    let name = ns.name().to_string();

    let run = Portctl::new(["listen", "--format", "prometheus", "--netns", &name]).run();
    run.expect_code(0);
    check_metrics(&run.stdout);
    check_help_and_type(&run.stdout, &LISTEN_FAMILIES);
    let ss = samples(&run.stdout);
    fn at<'a>(port: &'a str, netns: &'a str) -> [(&'static str, &'a str); 3] {
        [("addr", "127.0.0.1"), ("port", port), ("netns", netns)]
    }
    assert_eq!(value_of(&ss, "portctl_listen_accept_queue_length", &at("8080", &name)), 2.0);
    assert_eq!(value_of(&ss, "portctl_listen_accept_queue_backlog", &at("8080", &name)), 1.0);
    assert_eq!(value_of(&ss, "portctl_listen_accept_queue_length", &at("9200", &name)), 0.0);
    assert_eq!(value_of(&ss, "portctl_listen_accept_queue_backlog", &at("9200", &name)), 16.0);
    assert_eq!(value_of(&ss, "portctl_udp_socket_drops_total", &at("5300", &name)), f64::from(drops));
    assert!(drops > 0);
    for s in ss.iter().filter(|s| s.name.starts_with("portctl_listen_accept_queue")) {
        assert_eq!(s.labels.len(), 5, "proto, family, addr, port, netns: {s:?}");
    }

    let before = nstat(&ns);
    let run = Portctl::new(["stats", "--format", "prometheus", "--netns", &name]).run();
    let after = nstat(&ns);
    run.expect_code(0);
    check_metrics(&run.stdout);
    let counters: Vec<&str> = portctl::domain::stats::WATCHED.iter().map(|w| w.metric).collect();
    check_help_and_type(&run.stdout, &counters);
    check_help_and_type(&run.stdout, &STATS_FAMILIES);
    let ss = samples(&run.stdout);
    // Each counter is nstat's (between its reads before and after).
    for w in portctl::domain::stats::WATCHED {
        for group in w.groups {
            let labels: &[(&str, &str)] = match *group {
                "Udp" => &[("family", "ipv4")],
                "Udp6" => &[("family", "ipv6")],
                _ => &[],
            };
            let v = value_of(&ss, w.metric, labels);
            let id = format!("{group}{}", w.name);
            let (lo, hi) = (before[&id] as f64, after[&id] as f64);
            assert!(lo <= v && v <= hi, "{}{labels:?}: {v}, nstat {id} {lo} -> {hi}", w.metric);
        }
    }
    assert!(value_of(&ss, "portctl_tcp_listen_overflows_total", &[]) >= 1.0);
    assert!(value_of(&ss, "portctl_udp_rcvbuf_errors_total", &[("family", "ipv4")]) >= f64::from(drops));
    let host_mem: Vec<f64> = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem")
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(value_of(&ss, "portctl_tcp_memory_limit_pages", &[("limit", "max")]), host_mem[2]);
    assert!(run.stderr.contains("accept queue full (2 waiting, backlog 1)"), "{}", run.dump());
    assert!(!run.stdout.contains("warning"), "warnings go to stderr only");
    drop((q, quiet, udp));
}
