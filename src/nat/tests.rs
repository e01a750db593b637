//! The analysis on real tool outputs: tests/fixtures/nat/captures/<case>/
//! holds what `nft -j list ruleset`, `iptables-nft-save`,
//! `ip6tables-nft-save` and `iptables-legacy-save` printed (nftables 1.0.6,
//! iptables 1.8.9, Linux 6.18) for each fixture script of
//! tests/fixtures/nat (tests/fixtures/nat/capture.sh writes them again).

use std::collections::HashMap;
use std::net::IpAddr;

use super::walk::{AddrMatch, Entry, IfMatch, Target, one};
use super::*;

fn inputs(case: &str) -> Inputs {
    let d = format!("{}/tests/fixtures/nat/captures/{case}", env!("CARGO_MANIFEST_DIR"));
    let r = |f: &str| std::fs::read_to_string(format!("{d}/{f}")).ok();
    let mut i = Inputs::default();
    if let Some(j) = r("nft.json") {
        i.nft.push(j);
    }
    for (file, fam, src) in [
        ("iptables-nft-save.txt", "ip", RuleSource::IptablesNft),
        ("ip6tables-nft-save.txt", "ip6", RuleSource::IptablesNft),
        ("iptables-legacy-save.txt", "ip", RuleSource::IptablesLegacy),
        ("ip6tables-legacy-save.txt", "ip6", RuleSource::IptablesLegacy),
    ] {
        if let Some(t) = r(file) {
            i.iptables.push((fam, src, t));
        }
    }
    assert!(!i.nft.is_empty() || !i.iptables.is_empty(), "no capture files in {d}");
    i
}

fn run(case: &str) -> Analysis {
    analyze(&inputs(case), None)
}

fn lookup<'a>(a: &'a Analysis, proto: &str, port: u16) -> Vec<&'a Entry> {
    a.entries.iter().filter(|e| e.covers(proto, port)).collect()
}

fn only<'a>(a: &'a Analysis, proto: &str, port: u16) -> &'a Entry {
    let v = lookup(a, proto, port);
    assert_eq!(v.len(), 1, "expected exactly one entry for {port}/{proto}, got {v:#?}");
    v[0]
}

fn dnat(addr: &str, port: u16) -> Target {
    Target::Dnat { addr: Some(addr.into()), port: Some(one(port)), port_base: None }
}

fn chains(e: &Entry) -> Vec<String> {
    e.path.iter().map(|h| h.chain.to_string()).collect()
}

fn am(negated: bool, v: &str) -> AddrMatch {
    AddrMatch { negated, values: vec![v.into()] }
}

#[test]
fn docker_iptables_nft_backend() {
    let r = run("docker-iptables");
    assert_eq!(r.entries.len(), 3);
    let p = only(&r, "tcp", 8080);
    assert_eq!(p.source, RuleSource::IptablesNft);
    assert_eq!(p.target, dnat("172.17.0.2", 80));
    assert_eq!(p.matches.iif, vec![IfMatch { negated: true, names: vec!["docker0".into()] }]);
    assert!(p.matches.dst_local);
    assert!(p.matches.daddr.is_empty());
    assert_eq!(chains(p), ["PREROUTING", "DOCKER"]);
    assert_eq!(p.path[1].rule, 1);
    assert_eq!(p.owner, Some("docker"));
    // Local connections: the OUTPUT jump has `! -d 127.0.0.0/8`.
    assert!(p.prerouting && p.output);
    assert_eq!(p.output_matches.as_ref().expect("the OUTPUT path differs").daddr, vec![am(true, "127.0.0.0/8")]);
    // A 127.0.0.1-bound port: OUTPUT cannot reach it (docker-proxy takes local clients).
    let p = only(&r, "tcp", 5432);
    assert_eq!(p.matches.daddr, vec![am(false, "127.0.0.1/32")]);
    assert!(!p.output);
    assert_eq!(only(&r, "udp", 5353).target, dnat("172.17.0.2", 53));
    assert!(lookup(&r, "tcp", 5353).is_empty());
    // The iptables-nft tables are not decoded from nft's JSON (xt objects).
    assert_eq!(r.skipped.get("nft-table-left-to-iptables-nft:ip nat"), Some(&1));
}

#[test]
fn docker_iptables_hairpin_userland_proxy_off() {
    let r = run("docker-iptables-hairpin");
    let p = only(&r, "tcp", 8080);
    assert!(p.matches.iif.is_empty(), "no `! -i docker0` without the userland proxy");
    assert!(p.output);
    assert!(p.output_matches.is_none(), "no `! -d 127.0.0.0/8` on the OUTPUT jump in hairpin mode");
    assert!(only(&r, "tcp", 5432).output);
}

#[test]
fn docker_iptables_legacy_backend() {
    let r = run("docker-iptables-legacy");
    assert_eq!(r.entries.len(), 3);
    assert!(r.entries.iter().all(|p| p.source == RuleSource::IptablesLegacy));
    assert_eq!(only(&r, "tcp", 8080).target, dnat("172.17.0.2", 80));
}

#[test]
fn docker_nftables_backend() {
    let r = run("docker-nftables");
    assert_eq!(r.entries.len(), 3);
    let p = only(&r, "tcp", 8080);
    assert_eq!((p.source, p.family.as_str()), (RuleSource::Nft, "ip"));
    assert_eq!(p.comment.as_deref(), Some("DNAT"));
    let last = p.path.last().unwrap();
    assert_eq!((&*last.table, &*last.chain), ("ip docker-bridges", "nat-prerouting-and-output"));
    assert!(last.rule > 0, "an nft handle");
    assert!(p.matches.dst_local);
    assert_eq!(p.matches.iif[0], IfMatch { negated: true, names: vec!["docker0".into()] });
    assert!(p.output);
    assert_eq!(p.output_matches.as_ref().unwrap().daddr, vec![am(true, "127.0.0.0/8")]);
    assert!(!only(&r, "tcp", 5432).output);
    assert!(
        r.skipped.is_empty(),
        "the ct and oifname matches of the forward chains are not on the way: {:?}",
        r.skipped
    );
}

#[test]
fn netavark_iptables_ranges_and_comment() {
    let r = run("netavark-iptables");
    let p = only(&r, "udp", 9001);
    assert_eq!(p.ports, Some(vec![PortRange { lo: 9000, hi: 9002 }]));
    assert_eq!(
        p.target,
        Target::Dnat {
            addr: Some("10.88.0.2".into()),
            port: Some(PortRange { lo: 9000, hi: 9002 }),
            port_base: Some(9000)
        }
    );
    let p = only(&r, "tcp", 8080);
    let cid = "f922ffdda5718b26ea585a500d5ad05191da5461b06d6f62e4d1f66ca901a253";
    assert_eq!(p.owner, Some("podman"));
    assert_eq!(p.comment.as_deref(), Some(format!("dnat name: podman id: {cid}").as_str()));
    assert_eq!(p.container_id.as_deref(), Some(cid));
    assert_eq!(chains(p), ["PREROUTING", "NETAVARK-HOSTPORT-DNAT", "NETAVARK-DN-1D8721804F16F"]);
    assert!(p.output);
    assert_eq!(only(&r, "tcp", 8443).matches.daddr[0].values, vec!["127.0.0.1/32"]);
}

#[test]
fn netavark_nftables_per_port_rules_and_dns() {
    let r = run("netavark-nftables");
    assert_eq!(r.entries.len(), 7);
    for (i, port) in (9000..=9002).enumerate() {
        let p = only(&r, "udp", port);
        assert_eq!(p.target, dnat("10.88.0.2", 9000 + i as u16));
        assert_eq!(p.family, "inet");
        assert_eq!(chains(p), ["PREROUTING", "NETAVARK-HOSTPORT-DNAT", "nv_2f259bab_10_88_0_0_nm16_dnat"]);
        assert_eq!(p.owner, Some("podman"));
    }
    // aardvark-dns: `ip daddr 10.88.0.1 meta l4proto { tcp, udp } th dport 53 dnat ip to ...:40053`
    for proto in ["tcp", "udp"] {
        let p = only(&r, proto, 53);
        assert_eq!(p.target, dnat("10.88.0.1", 40053));
        assert_eq!(p.matches.daddr[0].values, vec!["10.88.0.1"]);
    }
}

#[test]
fn cni_portmap_iptables_and_nftables() {
    let r = run("cni-portmap");
    let cid = "5d2b5a0e6d4b1f0c8a7e3f21c9b8a7d6e5f40312a1b2c3d4e5f60718293a4b5c";
    let p = only(&r, "tcp", 8081);
    assert_eq!(p.source, RuleSource::IptablesNft);
    assert_eq!(p.target, dnat("10.4.0.2", 80));
    // `--comment "dnat name: \"bridge\" id: \"...\""`, unescaped
    assert_eq!(p.comment.as_deref(), Some(format!("dnat name: \"bridge\" id: \"{cid}\"").as_str()));
    assert_eq!((p.owner, p.container_id.as_deref()), (Some("cni"), Some(cid)));
    assert_eq!(&*p.path[1].chain, "CNI-HOSTPORT-DNAT");
    assert!(p.path[2].chain.starts_with("CNI-DN-") && p.path[2].chain.len() == 28);
    let p = only(&r, "tcp", 8082);
    assert_eq!(p.source, RuleSource::Nft);
    assert_eq!(p.comment.as_deref(), Some(cid));
    assert_eq!(p.container_id.as_deref(), Some(cid));
    assert_eq!(only(&r, "tcp", 6380).matches.daddr[0].values, vec!["127.0.0.1"]);
    assert_eq!(only(&r, "udp", 5000).target, dnat("10.4.0.2", 5000));
}

#[test]
fn kube_proxy_iptables_nodeport() {
    for case in ["kube-proxy-iptables", "kube-proxy-iptables-legacy"] {
        let r = run(case);
        let v = lookup(&r, "tcp", 30080);
        // Two endpoints; the `-d 127.0.0.0/8 ... -m nfacct` twin rule is subsumed.
        assert_eq!(v.len(), 2, "{case}: {v:#?}");
        let mut targets: Vec<_> = v.iter().map(|p| format!("{:?}", p.target)).collect();
        targets.sort();
        assert_eq!(targets, [format!("{:?}", dnat("10.180.0.10", 8080)), format!("{:?}", dnat("10.180.0.11", 8080))]);
        for p in v {
            assert_eq!(p.comment.as_deref(), Some("shop/web:http"));
            assert_eq!((p.owner, p.service.as_deref()), (Some("kubernetes"), Some("shop/web:http")));
            assert!(p.matches.dst_local && p.matches.daddr.is_empty());
            assert!(p.output);
            let c = chains(p);
            assert_eq!(&c[..3], ["PREROUTING", "KUBE-SERVICES", "KUBE-NODEPORTS"]);
            assert!(c[3].starts_with("KUBE-EXT-") && c[4].starts_with("KUBE-SVC-") && c[5].starts_with("KUBE-SEP-"));
        }
        // ClusterIPs and external IPs come with their destination.
        let with = |d: &str| {
            lookup(&r, "tcp", 80).into_iter().filter(|p| p.matches.daddr.iter().any(|m| m.values == [d])).count()
        };
        assert_eq!(with("172.30.0.50/32"), 2);
        assert_eq!(with("192.168.99.22/32"), 1);
    }
}

#[test]
fn kube_proxy_nftables_verdict_maps() {
    let r = run("kube-proxy-nftables");
    let v: Vec<_> = lookup(&r, "tcp", 30080).into_iter().filter(|p| p.family == "ip").collect();
    assert_eq!(v.len(), 2, "{v:#?}");
    for p in &v {
        assert_eq!(p.service.as_deref(), Some("shop/web:http"));
        // `ip daddr @nodeport-ips`, expanded from the set
        assert_eq!(p.matches.daddr[0].values, vec!["192.168.0.2"]);
        let c = chains(p);
        assert_eq!(&c[..2], ["nat-prerouting", "services"]);
        assert!(c[2].starts_with("external-") && c[3].starts_with("service-") && c[4].starts_with("endpoint-"));
        assert!(p.output);
    }
    let p6 = lookup(&r, "tcp", 30080).into_iter().find(|p| p.family == "ip6").expect("ip6 kube-proxy");
    assert_eq!(p6.target, dnat("fd00:10::10", 8080));
    assert_eq!(p6.matches.daddr[0].values, vec!["2001:db8::1"]);
    // service-ips: cluster IP . tcp . 80, two endpoints through a numgen vmap
    let c: Vec<_> = lookup(&r, "tcp", 80)
        .into_iter()
        .filter(|p| p.matches.daddr.iter().any(|d| d.values == ["172.30.0.44"]))
        .collect();
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|p| p.service.as_deref() == Some("ns4/svc4:p80")));
    // Services without endpoints (drop / reject verdicts) publish nothing.
    assert!(lookup(&r, "tcp", 80).iter().all(|p| !p.matches.daddr.iter().any(|d| d.values == ["172.30.0.46"])));
    assert!(r.skipped.keys().all(|k| k.starts_with("nft-match:")), "{:?}", r.skipped);
}

#[test]
fn handwritten_shapes() {
    let r = run("handwritten");
    let p = only(&r, "tcp", 443);
    assert_eq!(p.ports, Some(vec![one(80), one(443)]), "anonymous set {{ 80, 443 }}");
    assert_eq!(p.matches.daddr[0].values, vec!["192.0.2.10"]);
    assert_eq!(p.target, Target::Dnat { addr: Some("10.0.0.7".into()), port: None, port_base: None });
    let p = only(&r, "tcp", 6005);
    assert_eq!(p.ports, Some(vec![PortRange { lo: 6000, hi: 6010 }]));
    assert_eq!(p.matches.iif, vec![IfMatch { negated: false, names: vec!["eth0".into()] }]);
    let v = lookup(&r, "udp", 5353);
    assert_eq!(v.len(), 2, "nft `iifname eth0 udp dport 5353` and iptables multiport 53,5353");
    let p = v.iter().find(|p| p.source == RuleSource::Nft).unwrap();
    assert_eq!(p.target, Target::Redirect { port: Some(one(15353)) });
    assert_eq!(only(&r, "tcp", 8001).target, Target::Redirect { port: None }, "named set @webports");
    assert_eq!(only(&r, "tcp", 10080).target, dnat("10.0.0.10", 80), "dnat through the map @fwd4");
    assert_eq!(only(&r, "tcp", 10443).target, dnat("10.0.0.10", 443));
    assert_eq!(only(&r, "tcp", 7002).target, dnat("10.0.0.13", 80), "a verdict map jump");
    assert_eq!(only(&r, "tcp", 8443).target, dnat("fd00::5", 443));
    let p = only(&r, "tcp", 9999);
    assert_eq!(p.target, Target::Tproxy { addr: Some("127.0.0.1".into()), port: Some(19999) });
    assert_eq!(&*p.path[0].chain, "mangle_pre");
    assert_eq!(only(&r, "udp", 9998).target, Target::Tproxy { addr: None, port: Some(19998) });
    let p = only(&r, "tcp", 81);
    assert!(!p.prerouting && p.output, "an OUTPUT-only redirect");
    let p = only(&r, "tcp", 2223);
    assert!(!p.prerouting && p.output && p.matches.dst_local);
    assert_eq!(p.comment.as_deref(), Some("ssh jump"));
    assert_eq!(only(&r, "tcp", 2526).matches.iif, vec![IfMatch { negated: true, names: vec!["eth0".into()] }]);
    // the iptables side
    let p = only(&r, "tcp", 2222);
    assert_eq!(p.source, RuleSource::IptablesNft);
    assert_eq!(p.matches.iif[0].names, vec!["eth0"]);
    let ipt: Vec<_> = lookup(&r, "tcp", 80).into_iter().filter(|p| p.source == RuleSource::IptablesNft).collect();
    assert_eq!(ipt.len(), 2, "PREROUTING redirect + OUTPUT -o lo redirect");
    assert!(ipt.iter().any(|p| p.prerouting && !p.output));
    assert!(ipt.iter().any(|p| !p.prerouting && p.output && p.matches.other.contains(&"oif lo".to_string())));
    let p = only(&r, "udp", 53);
    assert_eq!(p.ports, Some(vec![one(53), one(5353)]), "multiport");
    assert!(p.matches.iif[0].negated);
    assert_eq!(
        only(&r, "tcp", 5005).target,
        Target::Dnat { addr: Some("10.0.0.6".into()), port: None, port_base: None }
    );
    let p = only(&r, "tcp", 3389);
    assert_eq!(p.comment.as_deref(), Some("rdp to vm"));
    assert!(p.matches.dst_local);
    let p = only(&r, "tcp", 9443);
    assert_eq!(p.target, Target::Tproxy { addr: Some("127.0.0.1".into()), port: Some(19443) });
    assert_eq!(&*p.path[0].table, "ip mangle");
    let p = only(&r, "tcp", 8888);
    assert_eq!((p.family.as_str(), &p.target), ("ip6", &dnat("fd00::5", 80)));
    // The RETURN rule in HW-PORTFWD publishes nothing.
    assert!(lookup(&r, "tcp", 1234).is_empty());
}

#[test]
fn legacy_and_nft_backends_read_the_same() {
    let a = run("handwritten-legacy");
    let b = run("handwritten");
    let key = |p: &Entry| format!("{} {:?} {:?} {:?} {:?}", p.family, p.proto, p.ports, p.target, p.matches);
    let mut ka: Vec<_> = a.entries.iter().map(key).collect();
    let mut kb: Vec<_> = b.entries.iter().filter(|p| p.source == RuleSource::IptablesNft).map(key).collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
}

#[test]
fn empty_namespace() {
    let r = run("empty");
    assert!(r.entries.is_empty());
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
}

#[test]
fn every_source_in_the_combined_capture() {
    let r = run("all");
    for s in [RuleSource::Nft, RuleSource::IptablesNft, RuleSource::IptablesLegacy] {
        assert!(r.entries.iter().any(|p| p.source == s), "{s:?}");
    }
}

/// 5,000 unrelated rules (the shapes of tests/fixtures/nat/noise-5000.sh)
/// add nothing and are counted.
#[test]
fn noise_adds_nothing() {
    let base = run("all");
    let mut i = inputs("all");
    let mut ipt = String::from("*nat\n:PREROUTING ACCEPT [0:0]\n:NOISE - [0:0]\n-A PREROUTING -j NOISE\n");
    let mut nft = String::from(
        r#"{"nftables": [{"table": {"family": "inet", "name": "noise", "handle": 9}}, {"chain": {"family": "inet", "table": "noise", "name": "noise", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}"#,
    );
    for n in 0..5000 {
        ipt.push_str(&format!(
            "-A NOISE -s 198.18.{}.{}/32 -p tcp -m tcp --dport {} -m conntrack --ctstate NEW -j ACCEPT\n",
            n / 250 % 256,
            n % 250 + 1,
            20000 + n
        ));
        nft.push_str(&format!(
            r#", {{"rule": {{"family": "inet", "table": "noise", "chain": "noise", "handle": {}, "expr": [{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "tcp", "field": "dport"}}}}, "right": {{"set": [{}, {}]}}}}}}, {{"accept": null}}]}}}}"#,
            n + 10,
            1000 + n,
            7000 + n
        ));
    }
    ipt.push_str("COMMIT\n");
    nft.push_str("]}");
    // The noise goes into the legacy view here, which has a nat table already.
    i.iptables.push(("ip6", RuleSource::IptablesLegacy, ipt.replace("198.18.", "2001:db8::").replace("/32", "/128")));
    i.nft.push(nft);
    let noisy = analyze(&i, None);
    assert_eq!(base.entries.len(), noisy.entries.len());
    assert!(noisy.rules_read >= base.rules_read + 10_000, "{} {}", noisy.rules_read, base.rules_read);
    // ACCEPT rules are not lowered: their conntrack matches are not
    // "skipped", they never matter.
    assert_eq!(noisy.skipped, base.skipped);
}

#[test]
fn unknown_shapes_are_skipped_and_counted() {
    let j = r#"{"nftables": [
      {"metainfo": {"version": "9.9", "json_schema_version": 1}},
      {"table": {"family": "ip", "name": "t", "handle": 1}},
      {"chain": {"family": "ip", "table": "t", "name": "pre", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 2, "expr": [
          {"frobnicate": {"x": 1}},
          {"match": {"op": "==", "left": {"osf": {"key": "name"}}, "right": "Linux"}},
          {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
          {"dnat": {"addr": "10.1.1.1", "port": 80}}]}},
      {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 3, "expr": [
          {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8081}},
          {"dnat": {"addr": {"symhash": {"mod": 2}}, "port": 80}}]}},
      {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 4, "expr": [{"jump": {"target": "nowhere"}}]}},
      {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 5, "expr": "not a list"}},
      {"rule": {"family": "ip", "table": "t", "chain": "pre", "handle": 6, "expr": [17, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [9000, "x"]}}}, {"redirect": {}}]}},
      {"flowtable": {"family": "ip", "table": "t", "name": "f"}},
      {"rule": {"family": "bogus", "table": "zz", "chain": "c", "expr": []}}
    ]}"#;
    let r = analyze(&Inputs { nft: vec![j.to_string()], iptables: vec![] }, None);
    // Handle 6's port value is unreadable: its redirect counts for every
    // port (over-reported, never missed).
    let v = lookup(&r, "tcp", 8080);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v.iter().any(|p| p.target == Target::Redirect { port: None } && p.ports.is_none()));
    let p = v.iter().find(|p| p.target == dnat("10.1.1.1", 80)).expect("the dnat of handle 2");
    assert!(p.matches.other.iter().any(|o| o == "osf"));
    assert_eq!(r.skipped.get("nft-statement:frobnicate"), Some(&1));
    assert_eq!(r.skipped.get("nft-dnat-address-expression"), Some(&1));
    assert_eq!(r.skipped.get("missing-chain:ip t nowhere"), Some(&1));
    assert_eq!(r.skipped.get("nft-statement:malformed"), Some(&1));
    assert_eq!(r.skipped.get("nft-dport-value"), Some(&1));
    assert_eq!(lookup(&r, "tcp", 8081).len(), 2, "an unknown address expression still reports the port");
    let r = analyze(&Inputs { nft: vec!["{not json".into()], iptables: vec![] }, None);
    assert_eq!(r.skipped.get("nft-json-unparsable"), Some(&1));
    let ipt = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m weird --weird-opt 3 -m tcp --dport 99 -j DNAT --to-destination 10.2.2.2:9\n-A PREROUTING bogus -j DNAT\n-A\n-A PREROUTING -p tcp --dport 70000 -j REDIRECT\nCOMMIT\n";
    let r = analyze(&Inputs { nft: vec![], iptables: vec![("ip", RuleSource::IptablesLegacy, ipt.into())] }, None);
    let v = lookup(&r, "tcp", 99);
    assert_eq!(v.len(), 2, "the DNAT, and the REDIRECT whose port is unreadable (so any port)");
    assert!(v.iter().any(|p| p.target == dnat("10.2.2.2", 9)));
    assert_eq!(r.skipped.get("iptables-match:weird"), Some(&1));
    assert_eq!(r.skipped.get("iptables-token:bogus"), Some(&1));
    assert_eq!(r.skipped.get("iptables-dnat-without-destination"), Some(&1));
    assert_eq!(r.skipped.get("iptables-port-value"), Some(&1));
}

#[test]
fn a_native_table_named_nat_is_read_once() {
    let j = r#"{"nftables": [
      {"table": {"family": "ip", "name": "nat", "handle": 1}},
      {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "handle": 2, "expr": [
          {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
          {"dnat": {"addr": "10.1.1.1", "port": 80}}]}}]}"#;
    let ipt = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.1.1:80\nCOMMIT\n";
    let i = Inputs { nft: vec![j.into()], iptables: vec![("ip", RuleSource::IptablesNft, ipt.into())] };
    let r = analyze(&i, None);
    assert_eq!(only(&r, "tcp", 8080).source, RuleSource::Nft);
}

#[test]
fn query_mode_gives_the_same_answer() {
    for case in ["all", "kube-proxy-nftables", "handwritten", "docker-iptables", "netavark-iptables"] {
        let i = inputs(case);
        let full = analyze(&i, None);
        for (proto, port) in [("tcp", 30080), ("tcp", 8080), ("tcp", 80), ("udp", 9001), ("tcp", 443), ("udp", 53)] {
            let q = analyze(&i, Some((&[proto], port)));
            let show = |p: &Entry| format!("{:?} {:?} {:?} {:?} {:?}", p.proto, p.ports, p.target, p.matches, p.output);
            let mut a: Vec<String> = lookup(&full, proto, port).into_iter().map(show).collect();
            let mut b: Vec<String> = q.entries.iter().map(show).collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{case} {port}/{proto}");
        }
    }
}

fn addrs(v: &[(&str, &str)]) -> HashMap<IpAddr, String> {
    v.iter().map(|(a, n)| (a.parse().unwrap(), n.to_string())).collect()
}

#[test]
fn records_carry_exposure_rule_and_owner() {
    let local = addrs(&[("127.0.0.1", "lo"), ("192.168.0.2", "eth0"), ("172.17.0.1", "docker0")]);
    let r = records(&run("docker-iptables").entries, &local);
    let web = r.iter().find(|x| x.covers("tcp", 8080)).unwrap();
    assert_eq!((web.exposure, web.interface.as_deref()), (NatExposure::Wildcard, None));
    assert_eq!(web.target(), "172.17.0.2:80");
    assert_eq!(web.rule.to_string(), "ip nat DOCKER #1");
    assert_eq!(web.matches.iif_not, ["docker0"]);
    assert!(web.matches.dst_local && web.remote && web.local);
    assert_eq!(web.local_match.as_ref().unwrap().dst_not, ["127.0.0.0/8"]);
    assert_eq!(web.family, Some(crate::model::Family::Ipv4));
    let db = r.iter().find(|x| x.covers("tcp", 5432)).unwrap();
    assert_eq!((db.exposure, db.interface.as_deref()), (NatExposure::Loopback, Some("lo")));
    assert!(db.remote && !db.local);

    let r = records(&run("kube-proxy-iptables").entries, &local);
    let ports80: Vec<_> = r.iter().filter(|x| x.covers("tcp", 80)).collect();
    assert!(
        ports80.iter().all(|x| x.exposure == NatExposure::NotLocal),
        "ClusterIPs and external IPs are not this host's"
    );
    let np: Vec<_> = r.iter().filter(|x| x.covers("tcp", 30080)).collect();
    assert_eq!(np.len(), 2);
    assert!(np.iter().all(|x| x.exposure == NatExposure::Wildcard && x.service.as_deref() == Some("shop/web:http")));
    assert_eq!(np[0].served_by().as_deref(), Some("Kubernetes service shop/web:http"));

    let r = records(&run("kube-proxy-nftables").entries, &local);
    let np = r.iter().find(|x| x.covers("tcp", 30080) && x.family == Some(crate::model::Family::Ipv4)).unwrap();
    assert_eq!((np.exposure, np.interface.as_deref()), (NatExposure::Address, Some("eth0")));
    assert!(np.rule.handle.is_some() && np.rule.position.is_none());

    // A set of ports is one record per range; an inet rule's family is its target's.
    let r = records(&run("handwritten").entries, &addrs(&[("192.0.2.10", "eth0")]));
    let set: Vec<_> = r.iter().filter(|x| x.to.addr.as_deref() == Some("10.0.0.7")).collect();
    assert_eq!(set.iter().map(|x| x.ports.unwrap().lo).collect::<Vec<_>>(), [80, 443]);
    assert!(set.iter().all(|x| x.exposure == NatExposure::Address && x.interface.as_deref() == Some("eth0")));
    assert_eq!(set[0].family, Some(crate::model::Family::Ipv4));
    let v6 = r.iter().find(|x| x.covers("tcp", 8443) && x.source == RuleSource::Nft).unwrap();
    assert_eq!((v6.family, v6.target().as_str()), (Some(crate::model::Family::Ipv6), "[fd00::5]:443"));
    let any = r.iter().find(|x| x.covers("tcp", 8000)).unwrap();
    assert_eq!((any.action, any.target().as_str(), any.family), (NatAction::Redirect, "(unchanged)", None));
}

#[test]
fn containers_are_named_from_fake_runtime_metadata() {
    use crate::procs::context::Runtimes;
    let root = std::env::temp_dir().join(format!("portctl-nat-rt-{}", std::process::id()));
    let docker_id = "4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
    let cdir = root.join("docker/containers").join(docker_id);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("config.v2.json"),
        r#"{"Name":"/web","NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#,
    )
    .unwrap();
    let podman_id = "f922ffdda5718b26ea585a500d5ad05191da5461b06d6f62e4d1f66ca901a253";
    let pdir = root.join("podman/overlay-containers");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("containers.json"), format!(r#"[{{"id":"{podman_id}","names":["api"]}}]"#)).unwrap();
    let rt = Runtimes { docker: root.join("docker"), podman: root.join("podman") };

    let mut r = records(&run("docker-iptables").entries, &HashMap::new());
    name_containers(&mut r, &rt);
    let web = r.iter().find(|x| x.covers("tcp", 8080)).unwrap();
    let c = web.container.as_ref().unwrap();
    assert_eq!(
        (c.runtime.as_deref(), c.id.as_deref(), c.name.as_deref()),
        (Some("docker"), Some(docker_id), Some("web"))
    );
    assert_eq!(web.served_by().as_deref(), Some("container web, docker"));
    assert!(r.iter().find(|x| x.covers("tcp", 5432)).unwrap().container.is_none(), "172.17.0.3 is no container here");

    let mut r = records(&run("netavark-iptables").entries, &HashMap::new());
    name_containers(&mut r, &rt);
    let api = r.iter().find(|x| x.covers("tcp", 8080)).unwrap();
    assert_eq!(api.served_by().as_deref(), Some("container api, podman"));
    let mut r = records(&run("cni-portmap").entries, &HashMap::new());
    name_containers(&mut r, &rt);
    let cni = r.iter().find(|x| x.covers("tcp", 8081)).unwrap();
    assert_eq!(cni.served_by().as_deref(), Some("container 5d2b5a0e6d4b"), "runtime unknown, id from the comment");
    std::fs::remove_dir_all(&root).unwrap();
}

mod props {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        /// Random bytes and random rule lines never panic either front end.
        #[test]
        fn garbage_never_panics(text in ".{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            for t in [text.clone(), lossy, format!("*nat\n-A PREROUTING {text}\nCOMMIT\n")] {
                let i = Inputs { nft: vec![t.clone()], iptables: vec![("ip", RuleSource::IptablesNft, t)] };
                let a = analyze(&i, None);
                let _ = records(&a.entries, &Default::default());
            }
        }

        /// Rule lines of real shapes with random values.
        #[test]
        fn random_iptables_rules(
            args in proptest::collection::vec(
                prop_oneof![
                    Just("-p".to_string()), Just("tcp".to_string()), Just("--dport".to_string()),
                    Just("-j".to_string()), Just("DNAT".to_string()), Just("--to-destination".to_string()),
                    Just("!".to_string()), Just("-m".to_string()), Just("-d".to_string()), Just("REDIRECT".to_string()),
                    Just("--to-ports".to_string()), Just("X".to_string()), Just("\"a \\\" b\"".to_string()),
                    "[0-9:.\\-/\\[\\]a-f]{0,20}",
                ],
                0..20,
            )
        ) {
            let text = format!("*nat\n:PREROUTING ACCEPT\n:X -\n-A PREROUTING {}\n-A X {}\nCOMMIT\n", args.join(" "), args.join(" "));
            let i = Inputs { nft: vec![], iptables: vec![("ip", RuleSource::IptablesLegacy, text)] };
            let _ = analyze(&i, Some((&["tcp", "udp"], 80)));
            let _ = analyze(&i, None);
        }

        /// nft documents of real shapes with random values.
        #[test]
        fn random_nft_rules(port in any::<i64>(), addr in "[0-9a-z:./]{0,20}", key in "[a-z]{1,8}", op in "[=!<>a-z]{1,3}") {
            let j = format!(r#"{{"nftables": [
              {{"table": {{"family": "inet", "name": "t"}}}},
              {{"chain": {{"family": "inet", "table": "t", "name": "p", "type": "nat", "hook": "prerouting"}}}},
              {{"rule": {{"family": "inet", "table": "t", "chain": "p", "handle": 1, "expr": [
                {{"match": {{"op": "{op}", "left": {{"payload": {{"protocol": "tcp", "field": "dport"}}}}, "right": {port}}}}},
                {{"match": {{"op": "==", "left": {{"meta": {{"key": "{key}"}}}}, "right": "{addr}"}}}},
                {{"vmap": {{"key": {{"concat": [{{"payload": {{"protocol": "ip", "field": "daddr"}}}}, {{"{key}": {{}}}}]}}, "data": {{"set": [[{{"concat": ["{addr}", {port}]}}, {{"jump": {{"target": "p"}}}}], [1, 2], "x"]}}}}}},
                {{"dnat": {{"addr": {{"map": {{"key": {{"{key}": 1}}, "data": {{"set": [["{addr}", {{"concat": ["{addr}", {port}]}}]]}}}}}}, "port": {port}}}}}
              ]}}}}]}}"#);
            let i = Inputs { nft: vec![j], iptables: vec![] };
            let a = analyze(&i, None);
            let _ = records(&a.entries, &Default::default());
        }
    }
}
