//! Port <-> service names: `/etc/services` when present, plus an embedded
//! table of common ports (containers and minimal images often lack the file,
//! and it does not know many modern defaults such as 6443 or 9090).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::intmap::IntMap;
use crate::model::Proto;

/// Common ports /etc/services may lack. (port, name); TCP and UDP alike.
const EMBEDDED: &[(u16, &str)] = &[
    (20, "ftp-data"),
    (21, "ftp"),
    (22, "ssh"),
    (23, "telnet"),
    (25, "smtp"),
    (53, "domain"),
    (67, "bootps"),
    (68, "bootpc"),
    (69, "tftp"),
    (80, "http"),
    (110, "pop3"),
    (111, "sunrpc"),
    (123, "ntp"),
    (137, "netbios-ns"),
    (143, "imap2"),
    (161, "snmp"),
    (389, "ldap"),
    (443, "https"),
    (445, "microsoft-ds"),
    (465, "submissions"),
    (514, "syslog"),
    (546, "dhcpv6-client"),
    (547, "dhcpv6-server"),
    (587, "submission"),
    (631, "ipp"),
    (636, "ldaps"),
    (853, "domain-s"),
    (873, "rsync"),
    (993, "imaps"),
    (995, "pop3s"),
    (1433, "ms-sql-s"),
    (1883, "mqtt"),
    (2049, "nfs"),
    (2375, "docker"),
    (2376, "docker-s"),
    (2379, "etcd-client"),
    (2380, "etcd-server"),
    (3000, "grafana"),
    (3306, "mysql"),
    (3389, "ms-wbt-server"),
    (4369, "epmd"),
    (5060, "sip"),
    (5353, "mdns"),
    (5432, "postgresql"),
    (5672, "amqp"),
    (5900, "vnc"),
    (6379, "redis"),
    (6443, "kube-apiserver"),
    (8080, "http-alt"),
    (8443, "https-alt"),
    (9000, "cslistener"),
    (9090, "prometheus"),
    (9092, "kafka"),
    (9100, "node-exporter"),
    (9200, "elasticsearch"),
    (10250, "kubelet"),
    (11211, "memcache"),
    (27017, "mongodb"),
];

struct Table {
    by_port: IntMap<(Proto, u16), String>,
    by_name: HashMap<String, u16>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        build(&text)
    })
}

fn build(etc_services: &str) -> Table {
    let mut t = Table { by_port: IntMap::default(), by_name: HashMap::new() };
    for &(port, name) in EMBEDDED {
        for proto in [Proto::Tcp, Proto::Udp] {
            t.by_port.insert((proto, port), name.to_string());
        }
        t.by_name.insert(name.to_string(), port);
    }
    // /etc/services wins over the embedded table, for names as for ports: it
    // is the admin's word. Within the file, the first line for a port (or a
    // name) wins, as getservbyport(3) and getservbyname(3) find it.
    let mut seen = std::collections::HashSet::new();
    let mut named = std::collections::HashSet::new();
    for line in etc_services.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let (Some(name), Some(pp)) = (f.next(), f.next()) else { continue };
        let Some((port, proto)) = pp.split_once('/') else { continue };
        let Ok(port) = port.parse::<u16>() else { continue };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => continue,
        };
        // The first name listed for a port is its canonical one.
        if seen.insert((proto, port)) {
            t.by_port.insert((proto, port), name.to_string());
        }
        for n in std::iter::once(name).chain(f) {
            if named.insert(n.to_string()) {
                t.by_name.insert(n.to_string(), port);
            }
        }
    }
    t
}

/// The service name of a port, if known.
pub fn name(proto: Proto, port: u16) -> Option<&'static str> {
    table().by_port.get(&(proto, port)).map(String::as_str)
}

/// The port of a service name (`postgresql` -> 5432).
pub fn port(name: &str) -> Option<u16> {
    table().by_name.get(name).copied().or_else(|| table().by_name.get(&name.to_ascii_lowercase()).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# comment
ssh		22/tcp				# SSH Remote Login Protocol
http		80/tcp		www		# WorldWideWeb HTTP
domain		53/tcp				# Domain Name Server
domain		53/udp
postgresql	5432/tcp	postgres	# PostgreSQL Database
custom		8080/tcp
grafana		3001/tcp
grafana		3002/tcp
broken line
sctp-only	9999/sctp
";

    #[test]
    fn etc_services_overrides_and_aliases() {
        let t = build(SAMPLE);
        assert_eq!(t.by_port[&(Proto::Tcp, 8080)], "custom");
        assert_eq!(t.by_port[&(Proto::Udp, 8080)], "http-alt");
        assert_eq!(t.by_port[&(Proto::Udp, 53)], "domain");
        assert_eq!(t.by_name["www"], 80);
        assert_eq!(t.by_name["postgres"], 5432);
        assert_eq!(t.by_name["redis"], 6379);
        // the file's name wins over the embedded one (3000), its first line over later ones
        assert_eq!(t.by_name["grafana"], 3001);
        assert!(!t.by_port.contains_key(&(Proto::Tcp, 9999)));
    }

    #[test]
    fn embedded_only() {
        let t = build("");
        assert_eq!(t.by_port[&(Proto::Tcp, 22)], "ssh");
        assert_eq!(t.by_name["https"], 443);
        assert!(!t.by_port.contains_key(&(Proto::Tcp, 1)));
    }

    proptest::proptest! {
        /// /etc/services is a file anyone with root may have edited.
        #[test]
        fn random_services_files_never_panic(text in "\\PC{0,400}") {
            let _ = build(&text);
        }
    }
}
