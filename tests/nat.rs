//! Ports published by NAT rules (issue 17), on real rules: each test makes a
//! network namespace, installs the exact layout of Docker, podman
//! (netavark), the CNI portmap plugin, kube-proxy or a hand-written one with
//! the fixture scripts of tests/fixtures/nat (`nft` and `iptables` in the
//! namespace, the way each project's source and tests install them), and
//! checks `who`, `listen` and `kill` against the rules as `nft -a` and
//! `iptables --line-numbers` show them. Container names come from fake
//! runtime metadata (a Docker data root and Podman's containers.json in a
//! temporary directory, through PORTCTL_DOCKER_ROOT / PORTCTL_PODMAN_ROOT).
//!
//! Every test needs root (namespaces, netfilter) and the tools
//! scripts/test.sh installs (nftables, iptables).

mod common;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use common::{Netns, Portctl, Run, TempDir, in_netns, output, require_root, spawn, tcp_listener, unused_port};
use portctl::domain::kill::KillReport;
use portctl::domain::who::WhoReport;
use portctl::model::Socket;
use portctl::nat::{NatExposure, NatRule, RuleSource, Status};

const DOCKER_WEB: &str = "4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
const DOCKER_DB: &str = "7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b";
const PODMAN_API: &str = "f922ffdda5718b26ea585a500d5ad05191da5461b06d6f62e4d1f66ca901a253";

/// The tools the fixtures and portctl need: a missing one fails the test
/// (scripts/test.sh installs them), it does not skip it.
fn require_tools() {
    require_root();
    for t in ["nft", "iptables-nft", "iptables-nft-save", "iptables-legacy", "ip6tables-nft"] {
        let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].iter().any(|d| Path::new(d).join(t).exists());
        assert!(found, "{t} is not installed: scripts/test.sh installs nftables and iptables");
    }
}

/// A namespace with a fixture installed.
fn namespace_with(fixtures: &[(&str, &[(&str, &str)])]) -> Netns {
    require_tools();
    let ns = Netns::new();
    for (script, env) in fixtures {
        install(&ns, script, env);
    }
    ns
}

fn install(ns: &Netns, script: &str, env: &[(&str, &str)]) {
    common::nat_fixture(ns, script, env);
}

/// `ip netns exec NS TOOL ARGS` output.
fn tool(ns: &Netns, args: &[&str]) -> String {
    let run = output(ns.command(args[0]).args(&args[1..]));
    assert!(run.status.success(), "{args:?} failed\n{}", run.dump());
    run.stdout
}

/// Fake runtime metadata: Docker containers `web` (172.17.0.2) and `db`
/// (172.17.0.3), Podman container `api`.
struct Runtimes {
    dir: TempDir,
}

impl Runtimes {
    fn new() -> Runtimes {
        let dir = TempDir::new();
        for (id, name, ip) in [(DOCKER_WEB, "web", "172.17.0.2"), (DOCKER_DB, "db", "172.17.0.3")] {
            let c = dir.path().join("docker/containers").join(id);
            std::fs::create_dir_all(&c).unwrap();
            let config = format!(
                r#"{{"ID":"{id}","Name":"/{name}","NetworkSettings":{{"Networks":{{"bridge":{{"IPAddress":"{ip}"}}}}}}}}"#
            );
            std::fs::write(c.join("config.v2.json"), config).unwrap();
        }
        let p = dir.path().join("podman/overlay-containers");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("containers.json"), format!(r#"[{{"id":"{PODMAN_API}","names":["api"]}}]"#)).unwrap();
        Runtimes { dir }
    }

    fn apply(&self, p: Portctl) -> Portctl {
        p.env("PORTCTL_DOCKER_ROOT", self.dir.path().join("docker"))
            .env("PORTCTL_PODMAN_ROOT", self.dir.path().join("podman"))
    }
}

fn who(ns: &Netns, rt: &Runtimes, spec: &str) -> (Run, WhoReport) {
    let run = rt.apply(Portctl::new(["who", spec, "--json"]).netns(ns)).run();
    let r: WhoReport = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("who {spec} --json is not a WhoReport: {e}\n{}", run.dump()));
    (run, r)
}

/// `listen --json`: the socket records, then the NAT records.
fn listen(p: Portctl) -> (Run, Vec<Socket>, Vec<NatRule>) {
    let run = p.run();
    let values: Vec<serde_json::Value> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not a JSON array: {e}\n{}", run.dump()));
    let (mut sockets, mut nat) = (Vec::new(), Vec::new());
    for v in values {
        if v.get("kind").and_then(|k| k.as_str()) == Some("nat") {
            nat.push(serde_json::from_value(v).unwrap_or_else(|e| panic!("not a NAT record: {e}\n{}", run.dump())));
        } else {
            assert!(nat.is_empty(), "socket records come first\n{}", run.dump());
            sockets
                .push(serde_json::from_value(v).unwrap_or_else(|e| panic!("not a socket record: {e}\n{}", run.dump())));
        }
    }
    (run, sockets, nat)
}

/// The 1-based position of the rule of `chain` whose text contains `needle`,
/// as `iptables -t TABLE -S CHAIN` lists them (the oracle for `position`).
fn iptables_position(ns: &Netns, tool_name: &str, table: &str, chain: &str, needle: &str) -> u64 {
    let text = tool(ns, &[tool_name, "-w", "-t", table, "-S", chain]);
    let rules: Vec<&str> = text.lines().filter(|l| l.starts_with("-A ")).collect();
    let i = rules.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{text}"));
    i as u64 + 1
}

/// The handle of the rule of `chain` whose text contains `needle`, as
/// `nft -a list chain` shows it.
fn nft_handle(ns: &Netns, family: &str, table: &str, chain: &str, needle: &str) -> u64 {
    let text = tool(ns, &["nft", "-a", "list", "chain", family, table, chain]);
    let line = text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{text}"));
    line.rsplit("# handle ").next().unwrap().trim().parse().unwrap()
}

fn one<'a>(rules: &'a [NatRule], proto: &str, port: u16) -> &'a NatRule {
    let v: Vec<&NatRule> = rules.iter().filter(|r| r.covers(proto, port)).collect();
    assert_eq!(v.len(), 1, "one rule for {port}/{proto}: {v:#?}");
    v[0]
}

#[test]
#[ignore = "needs root"]
fn docker_without_userland_proxy_who_names_the_container() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let rt = Runtimes::new();
    let (run, r) = who(&ns, &rt, "8080/tcp");
    run.expect_code(0);
    assert!(r.verdict.published && !r.verdict.in_use, "{r:#?}");
    assert_eq!(r.verdict.summary, ["8080/tcp is published by NAT: DNAT to 172.17.0.2:80 (container web, docker)"]);
    assert_eq!(r.nat.status, Status::Ok);
    let rule = one(&r.nat.rules, "tcp", 8080);
    assert_eq!(
        (rule.source, rule.rule.table.as_str(), rule.rule.chain.as_str()),
        (RuleSource::IptablesNft, "ip nat", "DOCKER")
    );
    let pos = iptables_position(&ns, "iptables-nft", "nat", "DOCKER", "--to-destination 172.17.0.2:80");
    assert_eq!(rule.rule.position, Some(pos));
    assert_eq!(rule.exposure, NatExposure::Wildcard);
    assert!(rule.matches.dst_local && rule.matches.iif_not.is_empty(), "hairpin mode: no `! -i docker0`");
    assert!(rule.remote && rule.local, "userland-proxy=false: OUTPUT reaches it too");
    let c = rule.container.as_ref().unwrap();
    assert_eq!((c.name.as_deref(), c.id.as_deref()), (Some("web"), Some(DOCKER_WEB)));
    // The bind verdict stays ok, with the note that the rule catches the traffic.
    assert!(r.verdict.binds.iter().all(|b| b.plain() == portctl::domain::bind::Outcome::Ok));
    assert!(r.hints.iter().any(|h| h.contains("succeeds, but the NAT rule ip nat DOCKER #")), "{:?}", r.hints);
    assert!(r.hints.iter().any(|h| h == "stop the container with `docker stop web`"), "{:?}", r.hints);

    // The text says the same.
    let run = rt.apply(Portctl::new(["who", "8080"]).netns(&ns)).run();
    run.expect_code(0);
    assert!(
        run.stdout.starts_with(
            "8080/tcp is published by NAT: DNAT to 172.17.0.2:80 (container web, docker)\n8080/udp is free\n"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("    rule     ip nat DOCKER #{pos} (iptables-nft), via PREROUTING #")),
        "{}",
        run.stdout
    );

    // 127.0.0.1:5432 -> db: remote only (its OUTPUT jump excludes 127.0.0.0/8 in
    // proxy mode; in hairpin mode OUTPUT reaches it).
    let (_, r) = who(&ns, &rt, "5432/tcp");
    let db = one(&r.nat.rules, "tcp", 5432);
    assert_eq!((db.exposure, db.matches.dst.as_slice()), (NatExposure::Loopback, &["127.0.0.1/32".to_string()][..]));
    assert_eq!(db.served_by().as_deref(), Some("container db, docker"));
    // Nothing on 8081: exit 1, and no NAT rule.
    let (run, r) = who(&ns, &rt, "8081");
    run.expect_code(1);
    assert!(r.nat.rules.is_empty() && !r.verdict.published);
}

#[test]
#[ignore = "needs root"]
fn docker_with_userland_proxy_and_a_listener_on_the_port() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "true")])]);
    let rt = Runtimes::new();
    // A listener on 8080 in the namespace: in use, and the rule still catches
    // remote clients before it.
    let l = in_netns(&ns, || tcp_listener("0.0.0.0:8080".parse().unwrap(), None, 8));
    let (run, r) = who(&ns, &rt, "8080/tcp");
    run.expect_code(0);
    assert!(r.verdict.in_use && r.verdict.published);
    assert!(r.verdict.summary[0].starts_with("8080/tcp is in use: "), "{:?}", r.verdict.summary);
    let rule = one(&r.nat.rules, "tcp", 8080);
    assert_eq!(rule.matches.iif_not, ["docker0"], "proxy mode: `! -i docker0`");
    assert_eq!(rule.local_match.as_ref().map(|m| m.dst_not.clone()), Some(vec!["127.0.0.0/8".to_string()]));
    assert!(
        r.hints.iter().any(|h| h.contains("catches traffic for port 8080 before the listener does")),
        "{:?}",
        r.hints
    );
    drop(l);
}

#[test]
#[ignore = "needs root"]
fn docker_legacy_backend_and_no_legacy_table_created() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("IPT_BACKEND", "legacy"), ("USERLAND_PROXY", "false")])]);
    let rt = Runtimes::new();
    let (run, r) = who(&ns, &rt, "8080/tcp");
    run.expect_code(0);
    let rule = one(&r.nat.rules, "tcp", 8080);
    assert_eq!(rule.source, RuleSource::IptablesLegacy);
    assert_eq!(rule.rule.position, Some(iptables_position(&ns, "iptables-legacy", "nat", "DOCKER", "172.17.0.2:80")));
    assert_eq!(rule.served_by().as_deref(), Some("container web, docker"));

    // A namespace without legacy tables keeps none: portctl never runs
    // iptables-legacy-save "just in case" (it would create the nat table).
    let empty = namespace_with(&[]);
    let names = || tool(&empty, &["cat", "/proc/net/ip_tables_names"]);
    assert_eq!(names(), "");
    Portctl::new(["listen", "-v"]).netns(&empty).run();
    Portctl::new(["who", "8080"]).netns(&empty).run().expect_code(1);
    assert_eq!(names(), "", "portctl created a legacy table");
    assert_eq!(tool(&empty, &["nft", "list", "tables"]), "", "portctl created an nftables table");
}

#[test]
#[ignore = "needs root"]
fn docker_nftables_backend_rule_handles() {
    let ns = namespace_with(&[("docker-nftables.sh", &[("USERLAND_PROXY", "false")])]);
    let rt = Runtimes::new();
    let (run, r) = who(&ns, &rt, "8080/tcp");
    run.expect_code(0);
    let rule = one(&r.nat.rules, "tcp", 8080);
    assert_eq!(rule.source, RuleSource::Nft);
    assert_eq!(
        (rule.rule.table.as_str(), rule.rule.chain.as_str()),
        ("ip docker-bridges", "nat-prerouting-and-output")
    );
    let handle = nft_handle(&ns, "ip", "docker-bridges", "nat-prerouting-and-output", "dnat to 172.17.0.2:80");
    assert_eq!(rule.rule.handle, Some(handle));
    assert_eq!(rule.comment.as_deref(), Some("DNAT"));
    assert_eq!(rule.served_by().as_deref(), Some("container web, docker"));
    assert_eq!(rule.path[0].chain, "nat-PREROUTING");
    let (_, r) = who(&ns, &rt, "5353/udp");
    assert_eq!(one(&r.nat.rules, "udp", 5353).target(), "172.17.0.2:53");
}

#[test]
#[ignore = "needs root"]
fn podman_netavark_iptables_and_nftables() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("netavark-iptables.sh", &[])]);
    let (run, r) = who(&ns, &rt, "8080/tcp");
    run.expect_code(0);
    let rule = one(&r.nat.rules, "tcp", 8080);
    assert_eq!(rule.owner.as_deref(), Some("podman"));
    assert_eq!(
        rule.served_by().as_deref(),
        Some("container api, podman"),
        "the id of the comment, named by containers.json"
    );
    assert!(r.hints.iter().any(|h| h == "stop the container with `podman stop api`"), "{:?}", r.hints);
    // udp 9000-9002 is one rule with a port range
    let (_, r) = who(&ns, &rt, "9001/udp");
    let range = one(&r.nat.rules, "udp", 9001);
    assert_eq!(range.ports.map(|p| (p.lo, p.hi)), Some((9000, 9002)));

    let ns = namespace_with(&[("netavark-nftables.sh", &[])]);
    let (run, r) = who(&ns, &rt, "9001/udp");
    run.expect_code(0);
    let rule = one(&r.nat.rules, "udp", 9001);
    assert_eq!(rule.target(), "10.88.0.2:9001");
    assert_eq!(
        rule.rule.handle,
        Some(nft_handle(&ns, "inet", "netavark", "nv_2f259bab_10_88_0_0_nm16_dnat", "dnat ip to 10.88.0.2:9001"))
    );
    assert_eq!(r.verdict.summary[0], "9001/udp is published by NAT: DNAT to 10.88.0.2:9001 (a podman container)");
    // aardvark-dns on the bridge address
    let (_, r) = who(&ns, &rt, "53/udp");
    let dns = one(&r.nat.rules, "udp", 53);
    assert_eq!((dns.exposure, dns.interface.as_deref()), (NatExposure::Address, Some("podman0")));
}

#[test]
#[ignore = "needs root"]
fn cni_portmap_both_backends() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("cni-portmap.sh", &[("CNI_BACKEND", "both")])]);
    let (run, r) = who(&ns, &rt, "8081/tcp");
    run.expect_code(0);
    let rule = one(&r.nat.rules, "tcp", 8081);
    assert_eq!((rule.source, rule.owner.as_deref()), (RuleSource::IptablesNft, Some("cni")));
    assert!(rule.comment.as_deref().unwrap().starts_with("dnat name: \"bridge\" id: \""));
    assert_eq!(rule.served_by().as_deref(), Some("container 5d2b5a0e6d4b"));
    let (_, r) = who(&ns, &rt, "8082/tcp");
    let rule = one(&r.nat.rules, "tcp", 8082);
    assert_eq!((rule.source, rule.rule.table.as_str()), (RuleSource::Nft, "ip cni_hostport"));
}

#[test]
#[ignore = "needs root"]
fn kube_proxy_iptables_nodeport_and_cluster_ips() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("kube-proxy-iptables.sh", &[])]);
    let (run, r) = who(&ns, &rt, "30080");
    run.expect_code(0);
    assert_eq!(
        r.verdict.summary[0],
        "30080/tcp is published by NAT: DNAT to 10.180.0.10:8080, 10.180.0.11:8080 (Kubernetes service shop/web:http)"
    );
    assert_eq!(r.nat.rules.len(), 2, "two endpoints: {:#?}", r.nat.rules);
    for rule in &r.nat.rules {
        assert_eq!((rule.service.as_deref(), rule.exposure), (Some("shop/web:http"), NatExposure::Wildcard));
        assert!(rule.rule.chain.starts_with("KUBE-SEP-"));
        let pos = iptables_position(&ns, "iptables-nft", "nat", &rule.rule.chain, "-j DNAT");
        assert_eq!(rule.rule.position, Some(pos));
    }
    assert!(r.hints.iter().any(|h| h.contains("kubectl -n shop get service web")), "{:?}", r.hints);
    // Port 80: ClusterIPs and external IPs that are not this host's: shown,
    // not a published port here (exit 1).
    let (run, r) = who(&ns, &rt, "80/tcp");
    run.expect_code(1);
    assert!(!r.verdict.published);
    assert!(
        r.nat
            .rules
            .iter()
            .any(|x| x.matches.dst == ["172.30.0.50/32"] && x.service.as_deref() == Some("shop/web:http"))
    );
    assert!(r.nat.rules.iter().all(|x| x.exposure == NatExposure::NotLocal));
    let run = rt.apply(Portctl::new(["who", "80/tcp"]).netns(&ns)).run();
    assert!(run.stdout.contains("NAT rules for other destinations on port 80\n"), "{}", run.stdout);
}

#[test]
#[ignore = "needs root"]
fn kube_proxy_nftables_nodeport() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("kube-proxy-nftables.sh", &[])]);
    let (run, r) = who(&ns, &rt, "30080/tcp");
    run.expect_code(0);
    let v4: Vec<&NatRule> = r.nat.rules.iter().filter(|x| x.family == Some(portctl::model::Family::Ipv4)).collect();
    assert_eq!(v4.len(), 2, "{:#?}", r.nat.rules);
    for rule in &v4 {
        assert_eq!(rule.service.as_deref(), Some("shop/web:http"));
        assert_eq!(
            (rule.exposure, rule.interface.as_deref()),
            (NatExposure::Address, Some("eth0")),
            "@nodeport-ips = 192.168.0.2"
        );
        assert_eq!(rule.path[0].chain, "nat-prerouting");
        let handle = nft_handle(&ns, "ip", "kube-proxy", &rule.rule.chain, "dnat to");
        assert_eq!(rule.rule.handle, Some(handle));
    }
}

#[test]
#[ignore = "needs root"]
fn handwritten_rules() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("handwritten.sh", &[])]);
    let (_, r) = who(&ns, &rt, "2222/tcp");
    let rule = one(&r.nat.rules, "tcp", 2222);
    assert_eq!(rule.matches.iif, ["eth0"]);
    assert!(r.hints.iter().any(|h| h.contains("delete it with `iptables -t nat -D PREROUTING ")), "{:?}", r.hints);
    let (_, r) = who(&ns, &rt, "9443/tcp");
    let tp = one(&r.nat.rules, "tcp", 9443);
    assert_eq!(
        (tp.action, tp.target().as_str(), tp.rule.table.as_str()),
        (portctl::nat::NatAction::Tproxy, "127.0.0.1:19443", "ip mangle")
    );
    let (_, r) = who(&ns, &rt, "7002/tcp");
    assert_eq!(one(&r.nat.rules, "tcp", 7002).target(), "10.0.0.13:80", "through a verdict map");
    let (_, r) = who(&ns, &rt, "10443/tcp");
    assert_eq!(one(&r.nat.rules, "tcp", 10443).target(), "10.0.0.10:443", "dnat through a map");
    let (_, r) = who(&ns, &rt, "443/tcp");
    let set = one(&r.nat.rules, "tcp", 443);
    assert_eq!((set.exposure, set.interface.as_deref()), (NatExposure::Address, Some("eth0")));
    assert!(r.hints.iter().any(|h| h.contains("nft delete rule inet handmade prerouting handle ")), "{:?}", r.hints);
    let (_, r) = who(&ns, &rt, "[fd00::1]:8888");
    assert_eq!(one(&r.nat.rules, "tcp", 8888).target(), "[fd00::5]:80", "ip6tables");
    // An OUTPUT-only redirect: local connections only.
    let (_, r) = who(&ns, &rt, "81/tcp");
    let out = one(&r.nat.rules, "tcp", 81);
    assert!(!out.remote && out.local);
}

/// listen shows NAT rows of their own, `--no-nat` hides them, the table
/// has them among the sockets by port; `-v` says what was read.
#[test]
#[ignore = "needs root"]
fn listen_rows_json_and_no_nat() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")]), ("kube-proxy-iptables.sh", &[])]);
    let l = in_netns(&ns, || tcp_listener("127.0.0.1:9999".parse().unwrap(), None, 8));
    let (run, sockets, nat) = listen(rt.apply(Portctl::new(["listen", "--json"]).netns(&ns)));
    run.expect_code(0);
    assert_eq!(sockets.len(), 1);
    assert!(nat.iter().all(|r| r.on_this_host()), "ClusterIPs are not listed");
    let web = one(&nat, "tcp", 8080);
    assert_eq!(web.served_by().as_deref(), Some("container web, docker"));
    assert_eq!(nat.iter().filter(|r| r.covers("tcp", 30080)).count(), 2);
    // Filters apply to NAT records too.
    let (_, _, udp) = listen(rt.apply(Portctl::new(["listen", "--json", "-u"]).netns(&ns)));
    assert!(!udp.is_empty() && udp.iter().all(|r| r.proto.as_deref() == Some("udp")), "{udp:#?}");
    let (_, _, p) = listen(rt.apply(Portctl::new(["listen", "--json", "--port", "30000-30100"]).netns(&ns)));
    assert!(p.iter().all(|r| r.covers("tcp", 30080)) && p.len() == 2, "{p:#?}");
    // --no-nat: sockets only, and no tool is run.
    let (run, sockets, nat) = listen(Portctl::new(["listen", "--json", "--no-nat", "-v"]).netns(&ns));
    assert!(nat.is_empty() && sockets.len() == 1);
    assert!(!run.stderr.contains("NAT"), "{}", run.stderr);
    // The table.
    let run = rt.apply(Portctl::new(["listen", "-v"]).netns(&ns)).run();
    run.expect_code(0);
    let (header, rows) = run.table();
    assert_eq!(header, ["PROTO", "LOCAL", "PORT", "SERVICE", "EXPOSURE", "PID", "PROCESS", "USER"]);
    let row = rows.iter().find(|r| r[2] == "8080").unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(row, &["tcp", "*", "8080", "http-alt", "wildcard", "nat", "dnat->172.17.0.2:80", "docker:web"]);
    let row = rows.iter().find(|r| r[2] == "30080").unwrap();
    assert_eq!(row[6], "dnat->10.180.0.10:8080,10.180.0.11:8080");
    assert_eq!(row[7], "k8s:shop/web:http");
    let ports: Vec<u32> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(ports.windows(2).all(|w| w[0] <= w[1]), "rows by port: {ports:?}");
    assert!(run.stderr.contains("portctl: note: NAT: iptables-nft-save -t nat: ok in "), "{}", run.stderr);
    assert!(run.stderr.contains("rules for destinations that are not addresses of this host"), "{}", run.stderr);
    drop(l);
}

/// Rule shapes portctl does not interpret never break who or listen; `-v`
/// names them.
#[test]
#[ignore = "needs root"]
fn odd_shapes_are_skipped_and_named() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[]);
    let script = r#"
table ip odd {
    chain pre {
        type nat hook prerouting priority dstnat; policy accept;
        tcp dport 8090 osf name "Linux" dnat to 10.9.9.7:80
        tcp dport 8091 socket transparent 1 dnat to 10.9.9.6:80
        tcp dport 8092 ip dscp set cs1 counter quota 10 mbytes dnat to 10.9.9.5:80
        tcp dport 8093 dnat to numgen inc mod 2 map { 0 : 10.9.9.1, 1 : 10.9.9.2 }
        tcp dport 8094 dnat to jhash ip saddr mod 2 map { 0 : 10.9.9.3, 1 : 10.9.9.4 }
        jump nowhere_yet
    }
    chain nowhere_yet {
        meta l4proto tcp tcp dport 8096 dnat to 10.9.9.9 comment "\u{1b}[2Jnot a terminal command"
    }
}
"#;
    let file = TempDir::new();
    let path = file.path().join("odd.nft");
    std::fs::write(&path, script.replace("\\u{1b}", "\u{1b}")).unwrap();
    let loaded = output(ns.command("nft").arg("-f").arg(&path));
    assert!(loaded.status.success(), "{}", loaded.dump());
    tool(
        &ns,
        &[
            "iptables-nft",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "--dport",
            "8088",
            "-m",
            "string",
            "--algo",
            "bm",
            "--string",
            "GET",
            "-j",
            "DNAT",
            "--to-destination",
            "10.9.9.9:80",
        ],
    );
    for port in [8088, 8090, 8091, 8092, 8093, 8094, 8096] {
        let (run, r) = who(&ns, &rt, &format!("{port}/tcp"));
        run.expect_code(0);
        assert!(r.verdict.published, "{port}: {r:#?}");
    }
    let (_, r) = who(&ns, &rt, "8093/tcp");
    let mut targets: Vec<String> = r.nat.rules.iter().map(|x| x.target()).collect();
    targets.sort();
    assert_eq!(targets, ["10.9.9.1", "10.9.9.2"]);
    let (run, _, nat) = listen(rt.apply(Portctl::new(["listen", "--json", "-v"]).netns(&ns)));
    run.expect_code(0);
    assert!(nat.len() >= 7, "{nat:#?}");
    let skipped = run
        .stderr
        .lines()
        .find(|l| l.contains("skipped what portctl does not interpret"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    for what in ["iptables-match:string", "nft-match:osf", "nft-match:socket"] {
        assert!(skipped.contains(what), "{what} in {skipped}");
    }
    // The comment's escape sequence is escaped in text, raw in JSON.
    let run = rt.apply(Portctl::new(["who", "8096"]).netns(&ns)).run();
    assert!(!run.stdout.contains('\u{1b}') && run.stdout.contains("\\x1b[2Jnot a terminal command"), "{}", run.stdout);
    assert!(nat.iter().any(|x| x.comment.as_deref().is_some_and(|c| c.starts_with('\u{1b}'))));
}

/// 5,000 unrelated rules (nft filter, iptables-nft nat) change nothing.
#[test]
#[ignore = "needs root"]
fn five_thousand_unrelated_rules() {
    let rt = Runtimes::new();
    let base = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")]), ("netavark-nftables.sh", &[])]);
    let noisy = namespace_with(&[
        ("docker-iptables.sh", &[("USERLAND_PROXY", "false")]),
        ("netavark-nftables.sh", &[]),
        ("noise-5000.sh", &[("NOISE_BACKEND", "nft")]),
        ("noise-5000.sh", &[("NOISE_BACKEND", "iptables-nft"), ("NOISE_TABLE", "nat")]),
    ]);
    assert!(
        tool(&noisy, &["iptables-nft-save", "-t", "nat"]).lines().filter(|l| l.starts_with("-A NOISE")).count() == 5000
    );
    let strip = |v: Vec<NatRule>| -> Vec<String> {
        let mut v: Vec<String> =
            v.into_iter().map(|r| format!("{:?} {:?} {} {:?}", r.proto, r.ports, r.target(), r.rule.chain)).collect();
        v.sort();
        v
    };
    let (_, _, a) = listen(rt.apply(Portctl::new(["listen", "--json"]).netns(&base)));
    let (run, _, b) = listen(rt.apply(Portctl::new(["listen", "--json", "-v"]).netns(&noisy)));
    assert!(!a.is_empty());
    assert_eq!(strip(a), strip(b));
    let read: u64 = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("portctl: note: NAT: ")?.split(" rules read").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rules-read note: {}", run.stderr));
    assert!(read > 5000, "the iptables-nft noise is read (the nft filter table is not listed): {read}");
    assert!(!run.stderr.contains("conntrack"), "ACCEPT rules are not lowered, so not skipped: {}", run.stderr);
    assert!(!run.stderr.contains("list table inet noise"), "a table without NAT hooks is not listed: {}", run.stderr);
    let (run, r) = who(&noisy, &rt, "8080/tcp");
    run.expect_code(0);
    assert_eq!(r.nat.rules.len(), 2, "docker and podman on 8080: {:#?}", r.nat.rules);
}

/// Without CAP_NET_ADMIN nothing is guessed: the rules could not be read.
#[test]
#[ignore = "needs root"]
fn without_cap_net_admin_the_rules_could_not_be_read() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let (bin, _keep) = common::portctl_for_others();
    let run = Portctl::new(["who", "8080/tcp", "--json"]).netns(&ns).as_user(65534, 65534, &bin).run();
    run.expect_code(1);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(r.nat.status, Status::NotPermitted);
    assert!(!r.verdict.published && r.nat.rules.is_empty());
    assert!(r.hints.iter().any(|h| h.contains("NAT rules could not be read without CAP_NET_ADMIN")), "{:?}", r.hints);
    let run = Portctl::new(["listen"]).netns(&ns).as_user(65534, 65534, &bin).run();
    assert!(
        run.stderr.contains("portctl: note: NAT rules could not be read: portctl lacks CAP_NET_ADMIN"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().filter(|l| l.contains("NAT")).count(), 1, "one line: {}", run.stderr);
}

/// `--netns` and `--all-netns` read the rules inside each namespace.
#[test]
#[ignore = "needs root"]
fn other_namespaces() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let run = rt.apply(Portctl::new(["who", "8080/tcp", "--json", "--netns", ns.name()])).run();
    run.expect_code(0);
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert!(r.verdict.published, "{r:#?}");
    let (_, _, nat) = listen(rt.apply(Portctl::new(["listen", "--json", "--netns", ns.name()])));
    let web = one(&nat, "tcp", 8080);
    assert_eq!(web.netns.as_ref().and_then(|n| n.name.as_deref()), Some(ns.name()));
    let (run, _, nat) = listen(rt.apply(Portctl::new(["listen", "--json", "--all-netns"])));
    run.expect_code(0);
    let mine: Vec<&NatRule> =
        nat.iter().filter(|r| r.netns.as_ref().and_then(|n| n.name.as_deref()) == Some(ns.name())).collect();
    assert_eq!(mine.len(), 3, "{mine:#?}");
    // The table of several namespaces has a NETNS column for NAT rows too.
    let run = rt.apply(Portctl::new(["listen", "--all-netns"])).run();
    let row = run.stdout.lines().find(|l| l.starts_with(ns.name()) && l.contains("dnat->172.17.0.2:80"));
    assert!(row.is_some(), "{}", run.stdout);
}

/// A reading past its deadline is given up: one line on stderr, the
/// sockets are still listed.
#[test]
#[ignore = "needs root"]
fn a_slow_reading_is_given_up() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let l = in_netns(&ns, || tcp_listener("127.0.0.1:9999".parse().unwrap(), None, 8));
    let (run, sockets, _) = listen(Portctl::new(["listen", "--json"]).netns(&ns).env("PORTCTL_NAT_TIMEOUT_MS", "0"));
    run.expect_code(0);
    assert_eq!(sockets.len(), 1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("portctl: warning: NAT rules: gave up after 0ms"), "{}", run.stderr);
    let run = Portctl::new(["who", "8080/tcp", "--json"]).netns(&ns).env("PORTCTL_NAT_TIMEOUT_MS", "0").run();
    let r: WhoReport = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(r.nat.status, Status::TimedOut);
    drop(l);
}

#[test]
#[ignore = "needs root"]
fn prometheus_series() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let run = rt.apply(Portctl::new(["listen", "--format", "prometheus"]).netns(&ns)).run();
    run.expect_code(0);
    let want = "portctl_nat_published_info{proto=\"tcp\",family=\"ipv4\",addr=\"\",port=\"8080\",exposure=\"wildcard\",action=\"dnat\",target=\"172.17.0.2:80\",owner=\"docker\",container=\"web\",service=\"\",netns=\"\"} 1";
    assert!(run.stdout.lines().any(|l| l == want), "{}", run.stdout);
    assert!(run.stdout.lines().any(|l| l == "portctl_nat_rules_read{netns=\"\"} 1"), "{}", run.stdout);
    let mut check = Command::new("promtool");
    check.args(["check", "metrics"]).stdin(std::process::Stdio::piped());
    let mut child = spawn(&mut check);
    use std::io::Write;
    child.child_mut().stdin.take().unwrap().write_all(run.stdout.as_bytes()).unwrap();
    assert!(child.wait().success(), "promtool rejected\n{}", run.stdout);
}

/// `kill` on a port only a NAT rule serves: nothing to signal, and what
/// stops it.
#[test]
#[ignore = "needs root"]
fn kill_a_nat_published_port() {
    let rt = Runtimes::new();
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let run = rt.apply(Portctl::new(["kill", "8080/tcp", "--yes", "--json"]).netns(&ns)).run();
    run.expect_code(1);
    let r: KillReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert!(r.targets.is_empty());
    assert_eq!(
        r.message,
        "nothing to kill: no process on this host holds 8080/tcp; it is published by NAT: DNAT to 172.17.0.2:80 (container web, docker)"
    );
    assert_eq!(r.hints, ["stop the container with `docker stop web`"]);
    assert_eq!(r.nat.rules.len(), 1);
}

/// A docker-proxy holder is signalled only with --force.
#[test]
fn kill_refuses_docker_proxy_without_force() {
    let rt = Runtimes::new();
    let port = unused_port();
    let l = tcp_listener(SocketAddr::new("127.0.0.1".parse().unwrap(), port), None, 8);
    let fd = l.as_raw_fd();
    // A process named docker-proxy with docker-proxy's command line, holding
    // the listener: sh blocked in its `read` builtin (no child of its own)
    // until the pipe on its stdin closes.
    let dir = TempDir::new();
    let link = dir.path().join("docker-proxy");
    std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
    // SAFETY: fcntl on a descriptor we own: let the child inherit it.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let mut cmd = Command::new(&link);
    cmd.args([
        "-c",
        "read x",
        "docker-proxy",
        "-proto",
        "tcp",
        "-host-ip",
        "127.0.0.1",
        "-host-port",
        &port.to_string(),
    ])
    .args(["-container-ip", "172.17.0.2", "-container-port", "80"])
    .stdin(std::process::Stdio::piped());
    let child = spawn(&mut cmd);
    drop(l);
    let pid = child.pid();
    common::wait_until("docker-proxy holds the port", || {
        let ss = common::ss("-tulnpH", None);
        ss.iter().any(|s| s.local.port == port && s.pids().contains(&pid))
    });
    let run = rt.apply(Portctl::new(["kill", &format!("{port}/tcp"), "--yes", "--json"])).run();
    run.expect_code(2);
    let r: KillReport = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.dump()));
    assert_eq!(r.targets.len(), 1, "{:?}", r.targets);
    let t = &r.targets[0];
    assert_eq!((t.pid, t.result.as_str()), (pid, "refused"));
    assert!(t.reason.as_deref().unwrap().contains("stop the container with `docker stop web`"), "{t:?}");
    assert!(r.hints.iter().any(|h| h.contains("`docker stop web`")), "{:?}", r.hints);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "not signalled");
    // The text says so too, and `who` gives the same advice.
    let run = rt.apply(Portctl::new(["who", &format!("{port}/tcp")])).run();
    assert!(run.stdout.contains("hint: docker-proxy (pid "), "{}", run.stdout);
    // --force signals it.
    let run = rt.apply(Portctl::new(["kill", &format!("{port}/tcp"), "--yes", "--force", "--json"])).run();
    run.expect_code(0);
    let status = child.wait();
    assert!(!status.success(), "{status:?}");
}

/// The tools' outputs are kept while the namespace's nftables generation
/// stands: the second `listen` runs no tool; a rule added (a new
/// generation) is read at once.
#[test]
#[ignore = "needs root"]
fn rules_are_read_again_only_when_the_ruleset_changed() {
    let ns = namespace_with(&[("docker-iptables.sh", &[("USERLAND_PROXY", "false")])]);
    let dir = Path::new("/run/portctl");
    let existed = dir.exists();
    let before: Vec<std::ffi::OsString> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    let ran =
        |run: &Run, what: &str| run.stderr.lines().any(|l| l.starts_with("portctl: note: NAT: ") && l.contains(what));
    let on = |p: Portctl| p.netns(&ns).env("PORTCTL_NAT_CACHE", "1");
    let (first, _, a) = listen(on(Portctl::new(["listen", "--json", "-v"])));
    assert!(ran(&first, "iptables-nft-save"), "the first run reads: {}", first.stderr);
    let (second, _, b) = listen(on(Portctl::new(["listen", "--json", "-v"])));
    assert!(ran(&second, "/run/portctl/ (nftables generation"), "the second one does not: {}", second.stderr);
    assert!(!ran(&second, "iptables-nft-save"), "{}", second.stderr);
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "the same records");
    tool(
        &ns,
        &[
            "iptables-nft",
            "-w",
            "-t",
            "nat",
            "-A",
            "DOCKER",
            "-p",
            "tcp",
            "--dport",
            "9444",
            "-j",
            "DNAT",
            "--to-destination",
            "172.17.0.9:443",
        ],
    );
    let (third, _, c) = listen(on(Portctl::new(["listen", "--json", "-v"])));
    assert!(ran(&third, "iptables-nft-save"), "a new generation is read: {}", third.stderr);
    one(&c, "tcp", 9444);
    // PORTCTL_NAT_CACHE=0 (the test runner's default): always read.
    let off = Portctl::new(["listen", "--json", "-v"]).netns(&ns).run();
    assert!(ran(&off, "iptables-nft-save"), "{}", off.stderr);
    // What this test kept goes with it.
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten().filter(|e| !before.contains(&e.file_name())) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if !existed {
        let _ = std::fs::remove_dir(dir);
    }
}
