//! Which sockets a command keeps: protocol and family selection (what the
//! kernel could not filter), and the owner filters (`--pid`, `--process`,
//! `--process-regex`, `--user`), which the kernel cannot know.

use std::collections::BTreeSet;

use regex::Regex;

use crate::error::UserError;
use crate::model::{Family, Proto, Socket};
use crate::procs::ProcTable;

/// Protocols and families from `--tcp/--udp/--unix/--raw/--packet/-4/-6`
/// (no protocol given: TCP and UDP; no family: both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    /// `-4` alone: also keep dual-stack `[::]` sockets, which accept IPv4.
    pub v4_with_dual_stack: bool,
}

impl Default for Selection {
    /// TCP and UDP, IPv4 and IPv6.
    fn default() -> Selection {
        Selection::new(false, false, false, false)
    }
}

impl Selection {
    pub fn new(tcp: bool, udp: bool, ipv4: bool, ipv6: bool) -> Selection {
        Selection::with_kinds(tcp, udp, false, false, false, ipv4, ipv6)
    }

    /// As `ss`: the kinds given (`-t -u -x -w -0`), or TCP and UDP when none
    /// is. `raw` takes ICMP ("ping") sockets too. `-4`/`-6` choose among the
    /// IP kinds and leave unix and packet sockets alone.
    pub fn with_kinds(tcp: bool, udp: bool, unix: bool, raw: bool, packet: bool, ipv4: bool, ipv6: bool) -> Selection {
        let mut protos = Vec::new();
        for (on, p) in [(tcp, Proto::Tcp), (udp, Proto::Udp), (raw, Proto::Raw), (raw, Proto::Icmp)] {
            if on {
                protos.push(p);
            }
        }
        if unix {
            protos.push(Proto::Unix);
        }
        if packet {
            protos.push(Proto::Packet);
        }
        if protos.is_empty() {
            protos = vec![Proto::Tcp, Proto::Udp];
        }
        let (families, v4_with_dual_stack) = match (ipv4, ipv6) {
            // Dual-stack IPv6 wildcard sockets take IPv4 too: ask for IPv6 as
            // well and keep only those.
            (true, false) => (Family::IP.to_vec(), true),
            (false, true) => (vec![Family::Ipv6], false),
            _ => (Family::IP.to_vec(), false),
        };
        Selection { protos, families, v4_with_dual_stack }
    }

    /// Sockets the kernel returned that the selection still excludes.
    /// With `-4`, an IPv6 wildcard socket whose v6only is unknown (read from
    /// /proc/net) is kept too: it may well take IPv4.
    pub fn keeps(&self, s: &Socket) -> bool {
        !self.v4_with_dual_stack
            || !s.proto.is_ip()
            || s.family == Family::Ipv4
            || s.is_dual_stack()
            || (s.v6only.is_none() && s.local_ip().is_some_and(|e| e.is_wildcard()))
    }
}

/// A socket passes when one of its owners satisfies every flag given (values
/// of one flag are alternatives). No owner flags: everything passes.
#[derive(Debug, Default, Clone)]
pub struct OwnerFilter {
    pids: BTreeSet<u32>,
    /// `--children`: a pid also takes its descendants.
    children: bool,
    names: Vec<String>,
    regex: Option<Regex>,
    uids: BTreeSet<u32>,
    /// `--unit`: systemd units (and slices) in the owner's cgroup path.
    units: Vec<String>,
    /// `--container`: a container's name or the start of its id.
    containers: Vec<String>,
}

impl OwnerFilter {
    /// Validates the regex (an error now, not an empty result later); `uids`
    /// are resolved already.
    pub fn new(pids: &[u32], names: &[String], regex: Option<&str>, uids: &[u32]) -> Result<OwnerFilter, UserError> {
        OwnerFilter::with_context(pids, false, names, regex, uids, &[], &[])
    }

    /// [`OwnerFilter::new`] with `--children`, `--unit` and `--container`.
    pub fn with_context(
        pids: &[u32],
        children: bool,
        names: &[String],
        regex: Option<&str>,
        uids: &[u32],
        units: &[String],
        containers: &[String],
    ) -> Result<OwnerFilter, UserError> {
        for u in units.iter().chain(containers) {
            if u.is_empty() || u.contains('/') || u.chars().any(char::is_control) {
                return Err(UserError::new(format!("'{u}' is not a unit or container name")));
            }
        }
        let regex = regex
            .map(|r| {
                Regex::new(r).map_err(|e| {
                    // The regex crate's messages span several lines (the
                    // pattern, a caret); keep the last, which says what is wrong.
                    let text = e.to_string();
                    let why = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
                    let why = why.trim().trim_start_matches("error: ");
                    UserError::new(format!("invalid --process-regex '{r}': {why}"))
                })
            })
            .transpose()?;
        Ok(OwnerFilter {
            pids: pids.iter().copied().collect(),
            children,
            names: names.to_vec(),
            regex,
            uids: uids.iter().copied().collect(),
            units: units.to_vec(),
            containers: containers.to_vec(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
            && self.names.is_empty()
            && self.regex.is_none()
            && self.uids.is_empty()
            && self.units.is_empty()
            && self.containers.is_empty()
    }

    /// Whether the filter reads the owners' cgroups (`--unit`, `--container`).
    pub fn needs_context(&self) -> bool {
        !self.units.is_empty() || !self.containers.is_empty()
    }

    pub fn matches(&self, s: &Socket, procs: &mut ProcTable) -> bool {
        if self.is_empty() {
            return true;
        }
        let by_owner = s.owners.iter().any(|o| self.owner_matches(o.pid, &o.name, &o.cmdline, procs));
        // Owners we may not see (another user's process, not root): the
        // kernel still knows who created the socket, which answers --user.
        let by_socket_uid = s.owners.is_empty()
            && !s.is_unowned_by_nature()
            && self.pids.is_empty()
            && self.names.is_empty()
            && self.regex.is_none()
            && self.units.is_empty()
            && self.containers.is_empty()
            && self.uids.contains(&s.uid);
        by_owner || by_socket_uid
    }

    /// Whether one process satisfies every flag given.
    pub fn owner_matches(&self, pid: u32, name: &str, cmdline: &str, procs: &mut ProcTable) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid) || (self.children && self.has_ancestor_in_pids(pid, procs)))
            && (self.names.is_empty() || self.names.iter().any(|n| name_is(n, name, cmdline)))
            && self.regex.as_ref().is_none_or(|re| re.is_match(name) || re.is_match(argv0(cmdline)))
            && (self.uids.is_empty() || procs.info(pid).uid.is_some_and(|u| self.uids.contains(&u)))
            && (self.units.is_empty() || self.unit_matches(pid, procs))
            && (self.containers.is_empty() || self.container_matches(pid, procs))
    }

    /// `--children`: one of the pid's ancestors (parent, grandparent, ...)
    /// is a `--pid`. Bounded: a ppid loop (impossible, but /proc is read
    /// piecemeal) stops after 4096 steps.
    fn has_ancestor_in_pids(&self, pid: u32, procs: &mut ProcTable) -> bool {
        let mut at = pid;
        for _ in 0..4096 {
            match procs.info(at).ppid {
                Some(pp) if pp != 0 && pp != at => {
                    if self.pids.contains(&pp) {
                        return true;
                    }
                    at = pp;
                }
                _ => return false,
            }
        }
        false
    }

    /// A unit (or slice) in the owner's cgroup path: `nginx` stands for
    /// `nginx.service`.
    fn unit_matches(&self, pid: u32, procs: &mut ProcTable) -> bool {
        let Some(ctx) = procs.context(pid) else { return false };
        self.units.iter().any(|want| unit_in_path(want, &ctx.cgroup))
    }

    fn container_matches(&self, pid: u32, procs: &mut ProcTable) -> bool {
        let Some(c) = procs.context(pid).and_then(|c| c.container) else { return false };
        self.containers.iter().any(|want| container_is(want, &c))
    }
}

/// Whether `want` names one of the units or slices in a cgroup path
/// (`/system.slice/nginx.service`: `nginx`, `nginx.service`,
/// `system.slice`).
pub fn unit_in_path(want: &str, cgroup: &str) -> bool {
    cgroup.split('/').any(|c| {
        c == want
            || (c.strip_suffix(".service") == Some(want))
            || (!want.contains('.') && c.strip_suffix(".scope") == Some(want))
    })
}

/// A container by its name, or its id or a prefix of it (at least 4
/// characters: `docker ps` shows 12).
pub fn container_is(want: &str, c: &crate::model::Container) -> bool {
    c.name.as_deref() == Some(want) || c.id == want || (want.len() >= 4 && c.id.starts_with(want))
}

/// `--process NAME`: the kernel's `comm` (at most 15 bytes), or the base name
/// of argv[0], so names longer than `comm` still match exactly.
fn name_is(want: &str, comm: &str, cmdline: &str) -> bool {
    want == comm || want == argv0(cmdline)
}

/// Base name of the first word of a command line.
fn argv0(cmdline: &str) -> &str {
    let first = cmdline.split(' ').next().unwrap_or("");
    first.rsplit('/').next().unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Owner, State};
    use std::sync::Arc;

    fn sock(local: u16, owners: &[(u32, &str, &str)]) -> Socket {
        let mut s =
            Socket::sample(Proto::Tcp, State::Established, &format!("127.0.0.1:{local}"), Some("127.0.0.1:1"), 1000);
        s.uid = 4242;
        s.owners = owners
            .iter()
            .map(|&(pid, name, cmdline)| Owner {
                pid,
                name: Arc::from(name),
                user: Arc::from("?"),
                fd: 3,
                tid: None,
                cmdline: Arc::from(cmdline),
                context: None,
            })
            .collect();
        s
    }

    fn procs() -> ProcTable {
        ProcTable::new(std::path::Path::new("/nonexistent-proc"))
    }

    #[test]
    fn owner_filters() {
        let nginx = sock(80, &[(10, "nginx", "/usr/sbin/nginx -g daemon off;")]);
        let long = sock(81, &[(11, "very-long-proce", "/opt/very-long-process-name --x")]);
        let shared = sock(82, &[(12, "sshd", "sshd"), (13, "bash", "-bash")]);
        let none = sock(83, &[]);
        let mut p = procs();
        let f = |pids: &[u32], names: &[&str], re: Option<&str>| {
            OwnerFilter::new(pids, &names.iter().map(|s| s.to_string()).collect::<Vec<_>>(), re, &[]).unwrap()
        };
        let all = f(&[], &[], None);
        assert!(all.is_empty());
        assert!([&nginx, &long, &shared, &none].iter().all(|s| all.matches(s, &mut p)));

        let by_pid = f(&[13], &[], None);
        assert!(by_pid.matches(&shared, &mut p) && !by_pid.matches(&nginx, &mut p) && !by_pid.matches(&none, &mut p));

        let by_name = f(&[], &["nginx", "very-long-process-name"], None);
        assert!(by_name.matches(&nginx, &mut p) && by_name.matches(&long, &mut p));
        assert!(!by_name.matches(&shared, &mut p));
        assert!(!f(&[], &["ngin"], None).matches(&nginx, &mut p), "names match exactly");

        let re = f(&[], &[], Some("^ss|ngi"));
        assert!(re.matches(&nginx, &mut p) && re.matches(&shared, &mut p) && !re.matches(&long, &mut p));

        // flags combine on one owner: pid 13 is bash, not sshd
        assert!(!f(&[13], &["sshd"], None).matches(&shared, &mut p));
        assert!(f(&[12], &["sshd"], None).matches(&shared, &mut p));
    }

    #[test]
    fn user_filter_falls_back_to_the_socket_uid_when_owners_are_unknown() {
        let mut p = procs();
        let f = OwnerFilter::new(&[], &[], None, &[4242]).unwrap();
        let hidden = sock(80, &[]);
        assert!(f.matches(&hidden, &mut p));
        let mut tw = hidden.clone();
        tw.state = State::TimeWait;
        tw.inode = 0;
        assert!(!f.matches(&tw, &mut p), "TIME_WAIT has no owner, whatever its uid says");
        let other = OwnerFilter::new(&[], &[], None, &[4243]).unwrap();
        assert!(!other.matches(&hidden, &mut p));
    }

    /// `--children` follows the ppid chain of the owner; `--unit` and
    /// `--container` read its cgroup. From a fake /proc.
    #[test]
    fn children_units_and_containers() {
        let id = "4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
        let root = std::env::temp_dir().join(format!("portctl-sel-{}", std::process::id()));
        let procs_dir = root.join("proc");
        // 1 -> 100 (nginx master) -> 101 (worker); 200 in a docker container; 300 alone.
        let tree = [
            (1, 0, "systemd", "0::/init.scope\n".to_string()),
            (100, 1, "nginx", "0::/system.slice/nginx.service\n".to_string()),
            (101, 100, "nginx", "0::/system.slice/nginx.service\n".to_string()),
            (200, 1, "redis", format!("0::/system.slice/docker-{id}.scope\n")),
            (300, 1, "sh", "0::/user.slice/user-1000.slice/session-3.scope\n".to_string()),
        ];
        for (pid, ppid, comm, cgroup) in &tree {
            let d = procs_dir.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0\n"),
            )
            .unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
        }
        let mut p = ProcTable::new(&procs_dir);
        let f = |pids: &[u32], children: bool, units: &[&str], containers: &[&str]| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            OwnerFilter::with_context(pids, children, &[], None, &[], &s(units), &s(containers)).unwrap()
        };
        let m = |flt: &OwnerFilter, pid: u32, p: &mut ProcTable| flt.owner_matches(pid, "x", "x", p);
        let kids = f(&[100], true, &[], &[]);
        assert!(m(&kids, 100, &mut p) && m(&kids, 101, &mut p) && !m(&kids, 200, &mut p) && !m(&kids, 1, &mut p));
        let only = f(&[100], false, &[], &[]);
        assert!(m(&only, 100, &mut p) && !m(&only, 101, &mut p));
        let from_init = f(&[1], true, &[], &[]);
        assert!([100, 101, 200, 300].iter().all(|&pid| m(&from_init, pid, &mut p)));
        for want in ["nginx", "nginx.service", "system.slice"] {
            let u = f(&[], false, &[want], &[]);
            assert!(m(&u, 101, &mut p), "{want}");
            assert!(!m(&u, 300, &mut p), "{want}");
        }
        assert!(m(&f(&[], false, &["session-3"], &[]), 300, &mut p));
        assert!(!m(&f(&[], false, &["ngin"], &[]), 100, &mut p));
        let c = f(&[], false, &[], &["4f1c0a4e"]);
        assert!(m(&c, 200, &mut p) && !m(&c, 100, &mut p));
        assert!(!m(&f(&[], false, &[], &["4f1"]), 200, &mut p), "id prefixes are at least 4 characters");
        assert!(m(&f(&[], false, &[], &[id]), 200, &mut p));
        // Flags combine on one owner.
        assert!(!m(&f(&[100], true, &["redis"], &[]), 101, &mut p));
        assert!(OwnerFilter::with_context(&[], false, &[], None, &[], &["a/b".into()], &[]).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_regex_is_one_line() {
        let e = OwnerFilter::new(&[], &[], Some("ngin(x"), &[]).unwrap_err();
        assert!(e.msg.starts_with("invalid --process-regex 'ngin(x': "), "{}", e.msg);
        assert!(!e.msg.contains('\n'), "{}", e.msg);
        assert!(e.msg.contains("unclosed group"), "{}", e.msg);
    }

    #[test]
    fn selection_from_flags() {
        let s = Selection::new(true, false, false, true);
        assert_eq!((s.protos, s.families, s.v4_with_dual_stack), (vec![Proto::Tcp], vec![Family::Ipv6], false));
        let s = Selection::new(false, false, true, false);
        assert_eq!((s.families.len(), s.v4_with_dual_stack), (2, true));
        assert_eq!(Selection::default().protos, vec![Proto::Tcp, Proto::Udp]);
        let s = Selection::with_kinds(false, false, true, true, true, true, false);
        assert_eq!(s.protos, vec![Proto::Raw, Proto::Icmp, Proto::Unix, Proto::Packet]);
        let unix = Socket::new(
            Proto::Unix,
            Family::Unix,
            crate::model::State::Listen,
            crate::model::Addr::from_unix(crate::model::UnixName::path("/run/x")),
            None,
        );
        assert!(s.keeps(&unix), "-4 leaves unix sockets alone");
        assert_eq!(
            Selection::with_kinds(false, true, true, false, false, false, false).protos,
            [Proto::Udp, Proto::Unix]
        );
    }
}
