//! `portctl conns`: every TCP and UDP socket with its owners, established by
//! default (the `ss -tuanp` / `lsof -i` / `netstat -tanp` question).
//!
//! States and port/address filters go to the kernel (state mask and sock_diag
//! bytecode); only the owner filters (pid, process, user) run here, after the
//! /proc walk, because the kernel does not know processes.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use comfy_table::Color;
use regex::Regex;

use crate::cli::ConnsArgs;
use crate::error::UserError;
use crate::inventory::{self, Owners};
use crate::model::{Endpoint, Socket, State, StateSet, Timer, TimerKind};
use crate::procs::ProcTable;
use crate::query::{self, Format, Output, Selection};
use crate::render::{self, json, table};
use crate::report::{self, Report};

/// The sockets `conns` shows, sorted (also one refresh of `watch conns`).
pub fn gather(args: &ConnsArgs, report: &mut Report) -> Result<Vec<Socket>> {
    // Everything the user typed is checked before the kernel is asked.
    let who = OwnerFilter::new(&args.pid, &args.process, args.process_regex.as_deref(), &args.user)?;
    let sel = Selection::from_args(&args.sel);
    let states = query::states(&args.state, StateSet::of(&[State::Established]));
    let filter = query::endpoint_filter(&args.port, &args.sport, &args.dport, &args.src, &args.dst);
    let q = query::conns_query(&sel, states, filter, args.extended);
    // TIME_WAIT sockets have no file, so no owner: skip the /proc walk when
    // they are all that was asked for.
    let owners =
        if states == StateSet::of(&[State::TimeWait]) && who.is_empty() { Owners::Skip } else { Owners::ResolveAll };
    let scope = query::scope(&args.ns, report)?;
    let inv = inventory::collect_in(&scope, &q, owners, Some(sort), report)?;
    let mut procs = inv.procs;
    let mut sockets: Vec<Socket> =
        inv.sockets.into_iter().filter(|s| sel.keeps(s) && who.matches(s, &mut procs)).collect();
    if args.context {
        inventory::attach_context(&mut sockets, &mut procs);
    }
    Ok(sockets)
}

pub fn run(args: &ConnsArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let out = Output::from_args(&args.out);
    let sockets = gather(args, report)?;
    match out.format {
        Format::Json | Format::Jsonl => json::sockets(w, &sockets, out.format)?,
        Format::Table => write_table(w, &sockets, &out, args.extended, args.context)?,
    }
    crate::timings::mark("rendered");
    let status = report::status(!sockets.is_empty());
    // The process ends right after: freeing 130k records one by one would
    // cost ~10 ms for nothing; the kernel reclaims the memory at once.
    std::mem::forget(sockets);
    Ok(status)
}

/// By local port, then remote endpoint; the rest only makes the order total.
pub fn sort(sockets: &mut [Socket]) {
    // A sort of small (u64, index) keys, ordered by a prefix of the full
    // order packed into the u64, with the full comparison only for ties;
    // then each 176-byte socket moves once. At 130k sockets this costs
    // ~10 ms where sort_by_cached_key on the tuple cost ~35 ms.
    let prefix = |s: &Socket| -> u64 {
        let remote = match s.remote {
            None => 0,
            Some(Endpoint { addr: IpAddr::V4(a), port }) => {
                1 << 46 | u64::from(a.to_bits()) << 14 | u64::from(port >> 2)
            }
            Some(Endpoint { addr: IpAddr::V6(a), .. }) => 2 << 46 | (a.to_bits() >> 82) as u64,
        };
        u64::from(s.local.port) << 48 | remote
    };
    let full = |s: &Socket| (s.local.port, s.remote, s.local.addr, s.proto, s.state, s.inode);
    sort_by_prefix(sockets, prefix, |a, b| full(a).cmp(&full(b)));
}

/// Sorts by `full`, stable, where `prefix` is monotone in it (a < b by
/// `full` implies prefix(a) <= prefix(b)).
fn sort_by_prefix<T>(items: &mut [T], prefix: impl Fn(&T) -> u64, full: impl Fn(&T, &T) -> Ordering) {
    // Plain integer pairs sort fastest: by prefix, then by index.
    let mut keys: Vec<(u64, u32)> = items.iter().zip(0u32..).map(|(it, i)| (prefix(it), i)).collect();
    keys.sort_unstable();
    // Runs of equal prefixes (rare) are put in full order; the sort is
    // stable and each run is in index order already.
    for run in keys.chunk_by_mut(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
        run.sort_by(|a, b| full(&items[a.1 as usize], &items[b.1 as usize]));
    }
    let mut order: Vec<u32> = keys.into_iter().map(|(_, i)| i).collect();
    permute(items, &mut order);
}

/// Rearranges `items` so that position k holds what was at `order[k]`,
/// following each cycle of the permutation with swaps (no second buffer).
/// `order` is left as the identity.
fn permute<T>(items: &mut [T], order: &mut [u32]) {
    for start in 0..items.len() {
        let mut at = start;
        while order[at] as usize != start {
            let from = order[at] as usize;
            items.swap(at, from);
            order[at] = at as u32;
            at = from;
        }
        order[at] = at as u32;
    }
}

/// `--pid`, `--process`, `--process-regex`, `--user`: a socket passes when one
/// of its owners satisfies every flag given (values of one flag are
/// alternatives). No owner flags: everything passes.
#[derive(Debug, Default)]
pub struct OwnerFilter {
    pids: BTreeSet<u32>,
    names: Vec<String>,
    regex: Option<Regex>,
    uids: BTreeSet<u32>,
}

impl OwnerFilter {
    /// Validates the regex and resolves user names (an unknown user is an
    /// error now, not an empty result later).
    pub fn new(
        pids: &[u32],
        names: &[String],
        regex: Option<&str>,
        users: &[crate::filter::UserSpec],
    ) -> Result<OwnerFilter, UserError> {
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
        let uids = users.iter().map(query::resolve_user).collect::<Result<_, _>>()?;
        Ok(OwnerFilter { pids: pids.iter().copied().collect(), names: names.to_vec(), regex, uids })
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.names.is_empty() && self.regex.is_none() && self.uids.is_empty()
    }

    pub fn matches(&self, s: &Socket, procs: &mut ProcTable) -> bool {
        if self.is_empty() {
            return true;
        }
        let by_owner = s.owners.iter().any(|o| {
            (self.pids.is_empty() || self.pids.contains(&o.pid))
                && (self.names.is_empty() || self.names.iter().any(|n| name_is(n, &o.name, &o.cmdline)))
                && self.regex.as_ref().is_none_or(|re| re.is_match(&o.name) || re.is_match(argv0(&o.cmdline)))
                && (self.uids.is_empty() || procs.info(o.pid).uid.is_some_and(|u| self.uids.contains(&u)))
        });
        // Owners we may not see (another user's process, not root): the
        // kernel still knows who created the socket, which answers --user.
        let by_socket_uid = s.owners.is_empty()
            && !s.is_unowned_by_nature()
            && self.pids.is_empty()
            && self.names.is_empty()
            && self.regex.is_none()
            && self.uids.contains(&s.uid);
        by_owner || by_socket_uid
    }
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

fn write_table(
    w: &mut impl Write,
    sockets: &[Socket],
    out: &Output,
    extended: bool,
    context: bool,
) -> std::io::Result<()> {
    let (columns, rows) = table_rows(sockets, extended, context);
    table::write(w, &columns, rows, out)
}

/// Columns and rows of the `conns` table (also used by `watch`).
pub fn table_rows(sockets: &[Socket], extended: bool, context: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    use table::{col, num};
    let mut columns = vec![
        col("PROTO"),
        col("STATE"),
        col("LOCAL"),
        col("REMOTE"),
        num("RECV-Q"),
        num("SEND-Q"),
        col("TIMER"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
    ];
    if extended {
        columns.extend([num("RTT"), num("RETRANS"), num("CWND"), num("SENT"), num("RECV")]);
    }
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = render::owner_columns(s);
            let mut row: Vec<table::Styled> = vec![
                render::proto_label(s).into(),
                state_cell(s.state),
                s.local.to_string().into(),
                s.remote.map_or_else(|| "*".to_string(), |r| r.to_string()).into(),
                s.recv_q.to_string().into(),
                s.send_q.to_string().into(),
                s.timer.as_ref().map_or_else(|| "-".to_string(), timer_text).into(),
                pids.into(),
                names.into(),
                users.into(),
            ];
            if extended {
                row.extend(extended_cells(s));
            }
            row
        })
        .collect::<Vec<_>>();
    let mut rows = rows;
    render::decorate(&mut columns, &mut rows, sockets, context);
    (columns, rows)
}

/// `ESTAB`, `TIME-WAIT`, ...: states that point at a problem stand out.
fn state_cell(st: State) -> table::Styled {
    match st {
        State::CloseWait | State::SynSent | State::LastAck => table::colored(st.label(), Color::Yellow),
        State::Established => table::colored(st.label(), Color::Green),
        _ => st.label().into(),
    }
}

/// `time_wait 58s`, `keepalive 1m59s`, `retransmit 200ms (2 retrans)`.
pub fn timer_text(t: &Timer) -> String {
    let kind = match t.kind {
        TimerKind::Retransmit => "retransmit",
        TimerKind::Keepalive => "keepalive",
        TimerKind::TimeWait => "time_wait",
        TimerKind::Probe => "probe",
    };
    let mut s = format!("{kind} {}", render::duration_ms(t.expires_ms));
    if t.retrans > 0 {
        s.push_str(&format!(" ({} retrans)", t.retrans));
    }
    s
}

/// RTT (ms), RETRANS (now/total), CWND (segments), SENT and RECV (bytes).
fn extended_cells(s: &Socket) -> Vec<table::Styled> {
    match &s.tcp_info {
        None => (0..5).map(|_| "-".into()).collect(),
        Some(i) => vec![
            format!("{}.{:03}ms", i.rtt_us / 1000, i.rtt_us % 1000).into(),
            format!("{}/{}", i.retransmits, i.total_retrans).into(),
            i.snd_cwnd.to_string().into(),
            i.bytes_sent.map_or_else(|| "-".to_string(), |b| b.to_string()).into(),
            i.bytes_received.map_or_else(|| "-".to_string(), |b| b.to_string()).into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Exposure, Family, Owner, Proto};
    use std::sync::Arc;

    fn sock(local: u16, remote: Option<(&str, u16)>, owners: &[(u32, &str, &str)]) -> Socket {
        Socket {
            proto: Proto::Tcp,
            family: Family::Ipv4,
            state: State::Established,
            local: Endpoint { addr: "127.0.0.1".parse().unwrap(), port: local },
            remote: remote.map(|(a, p)| Endpoint { addr: a.parse().unwrap(), port: p }),
            inode: 1000 + local as u64,
            uid: 4242,
            v6only: None,
            exposure: Exposure::Loopback,
            interface: None,
            service: None,
            recv_q: 0,
            send_q: 0,
            timer: None,
            owners: owners
                .iter()
                .map(|&(pid, name, cmdline)| Owner {
                    pid,
                    name: Arc::from(name),
                    user: Arc::from("?"),
                    fd: 3,
                    cmdline: Arc::from(cmdline),
                    context: None,
                })
                .collect(),
            owners_hidden: false,
            tcp_info: None,
            netns: None,
        }
    }

    fn procs() -> ProcTable {
        ProcTable::new(std::path::Path::new("/nonexistent-proc"))
    }

    #[test]
    fn sorted_by_local_port_then_remote() {
        let mut v = vec![
            sock(9000, Some(("127.0.0.2", 1)), &[]),
            sock(80, Some(("127.0.0.1", 5000)), &[]),
            sock(9000, Some(("127.0.0.1", 7)), &[]),
            sock(80, Some(("127.0.0.1", 4000)), &[]),
            sock(80, None, &[]),
        ];
        sort(&mut v);
        let got: Vec<String> =
            v.iter().map(|s| format!("{} {}", s.local.port, s.remote.map_or("*".into(), |r| r.to_string()))).collect();
        assert_eq!(got, ["80 *", "80 127.0.0.1:4000", "80 127.0.0.1:5000", "9000 127.0.0.1:7", "9000 127.0.0.2:1"]);
    }

    /// The packed-prefix sort agrees with a plain stable sort on the full
    /// key, over sockets made to collide in the prefix (same port, remote
    /// ports equal but for the low bits, v4 and v6, no remote).
    #[test]
    fn prefix_sort_equals_full_sort() {
        let mut v = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = match x % 4 {
                0 => format!("127.0.0.{}", x % 3),
                1 => format!("::ffff:127.0.0.{}", x % 2),
                2 => format!("fe80::{:x}", x % 5),
                _ => String::new(),
            };
            let remote = (!addr.is_empty()).then_some((addr.as_str(), (x >> 20) as u16 % 8));
            let mut s = sock([80, 443, 8080][(x >> 40) as usize % 3], remote, &[]);
            s.inode = u64::from(i % 7);
            s.state = if x >> 50 & 1 == 0 { State::Established } else { State::TimeWait };
            v.push(s);
        }
        let mut want = v.clone();
        want.sort_by_key(|s| (s.local.port, s.remote, s.local.addr, s.proto, s.state, s.inode));
        sort(&mut v);
        let show =
            |v: &[Socket]| v.iter().map(|s| format!("{} {:?} {}", s.local.port, s.remote, s.inode)).collect::<Vec<_>>();
        assert_eq!(show(&v), show(&want));
    }

    #[test]
    fn permutation_follows_every_cycle() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e', 'f'];
        let mut order = vec![3, 0, 4, 1, 2, 5];
        permute(&mut items, &mut order);
        assert_eq!(items, ['d', 'a', 'e', 'b', 'c', 'f']);
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn owner_filters() {
        let nginx = sock(80, Some(("127.0.0.1", 1)), &[(10, "nginx", "/usr/sbin/nginx -g daemon off;")]);
        let long = sock(81, Some(("127.0.0.1", 1)), &[(11, "very-long-proce", "/opt/very-long-process-name --x")]);
        let shared = sock(82, Some(("127.0.0.1", 1)), &[(12, "sshd", "sshd"), (13, "bash", "-bash")]);
        let none = sock(83, Some(("127.0.0.1", 1)), &[]);
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
        let f = OwnerFilter::new(&[], &[], None, &["4242".parse().unwrap()]).unwrap();
        let hidden = sock(80, Some(("127.0.0.1", 1)), &[]);
        assert!(f.matches(&hidden, &mut p));
        let mut tw = hidden.clone();
        tw.state = State::TimeWait;
        tw.inode = 0;
        assert!(!f.matches(&tw, &mut p), "TIME_WAIT has no owner, whatever its uid says");
        let other = OwnerFilter::new(&[], &[], None, &["4243".parse().unwrap()]).unwrap();
        assert!(!other.matches(&hidden, &mut p));
    }

    #[test]
    fn bad_regex_is_one_line() {
        let e = OwnerFilter::new(&[], &[], Some("ngin(x"), &[]).unwrap_err();
        assert!(e.msg.starts_with("invalid --process-regex 'ngin(x': "), "{}", e.msg);
        assert!(!e.msg.contains('\n'), "{}", e.msg);
        assert!(e.msg.contains("unclosed group"), "{}", e.msg);
    }

    #[test]
    fn port_and_address_filters_go_to_the_kernel() {
        use crate::cli::SelectArgs;
        use crate::filter::{Cidr, PortRange};
        use crate::sock_diag::{Cond, Expr};
        let r = |lo, hi| PortRange { lo, hi };
        let sp = |lo, hi| Expr::Cond(Cond::SPort { lo, hi });
        let dp = |lo, hi| Expr::Cond(Cond::DPort { lo, hi });
        assert_eq!(query::endpoint_filter(&[], &[], &[], &[], &[]), None);
        // --port is either end
        assert_eq!(
            query::endpoint_filter(&[r(80, 80)], &[], &[], &[], &[]),
            Some(Expr::Or(vec![sp(80, 80), dp(80, 80)]))
        );
        // values of one flag OR, flags AND
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        let f = query::endpoint_filter(&[], &[r(1, 2), r(5, 5)], &[r(9, 9)], &[], &[net]);
        let dst = Expr::Cond(Cond::Dst { addr: net.addr, prefix: 8 });
        assert_eq!(f, Some(Expr::And(vec![Expr::Or(vec![sp(1, 2), sp(5, 5)]), dp(9, 9), dst])));
        // the filter and the state mask are in the request the kernel gets
        let sel = Selection::from_args(&SelectArgs { tcp: true, udp: false, ipv4: false, ipv6: false });
        let st = query::states(&["time-wait".parse().unwrap(), "close-wait".parse().unwrap()], StateSet::EMPTY);
        let q = query::conns_query(&sel, st, f.clone(), true);
        assert_eq!(q.filter, f);
        assert_eq!(q.states.kernel_mask(Proto::Tcp), (1 << 6) | (1 << 8));
        assert!(q.tcp_info);
        assert_eq!(q.protos, vec![Proto::Tcp]);
        let est = query::states(&[], StateSet::of(&[State::Established]));
        assert_eq!(est.kernel_mask(Proto::Tcp), 1 << 1);
    }

    #[test]
    fn users_resolve_up_front() {
        use crate::filter::UserSpec;
        assert_eq!(query::resolve_user(&UserSpec::Name("root".into())).unwrap(), 0);
        assert_eq!(query::resolve_user(&UserSpec::Uid(4_000_000)).unwrap(), 4_000_000);
        let e = query::resolve_user(&UserSpec::Name("nosuchuser-portctl".into())).unwrap_err();
        assert!(e.msg.contains("unknown user 'nosuchuser-portctl'"), "{}", e.msg);
        assert!(OwnerFilter::new(&[], &[], None, &[UserSpec::Name("nosuchuser-portctl".into())]).is_err());
    }

    #[test]
    fn timers() {
        let t = |kind, ms, retrans| timer_text(&Timer { kind, expires_ms: ms, retrans });
        assert_eq!(t(TimerKind::TimeWait, 58_400, 0), "time_wait 58s");
        assert_eq!(t(TimerKind::Keepalive, 119_000, 0), "keepalive 1m59s");
        assert_eq!(t(TimerKind::Retransmit, 200, 2), "retransmit 200ms (2 retrans)");
    }
}
