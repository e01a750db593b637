//! The JSON contract (docs/json.md), checked from the outside (issue 13).
//!
//! Every `--json` output — `listen` (`--json`, `--jsonl`, `--context`),
//! `conns` (`--state all`, `--extended`), `who`, `stats`, `kill` and
//! `watch --events`, and the `netns` object of `--netns`/`--all-netns` — is
//! deserialised into the structs of [`schema`] below. They are written here,
//! from the document, not imported from `portctl::`: a field the producer
//! adds, renames or retypes fails these tests even when its own types agree
//! with it. Every struct has `deny_unknown_fields`; a field that is always
//! there but may be `null` must be present ([`schema::nullable`]); a field
//! that only some flags add must be absent without them and not `null` with
//! them ([`schema::present`]); closed value sets are enums.
//!
//! Each test makes the sockets and processes it needs (on loopback, or in a
//! network namespace of its own), so the optional parts of each output are
//! really in it, and says so with assertions: a test that deserialised an
//! empty array would prove nothing.
//!
//! Every key of every output is also looked up in docs/json.md
//! ([`assert_documented`]): in the section of that output (`## Socket record`
//! for socket records, wherever they are nested), as a backticked name or a
//! key of a backticked `{"a", "b": ...}` list; where the section spells out a
//! nested list (`"container": {"runtime", ...}`), that list is complete.
//!
//! Tests marked `#[ignore = "needs root"]` (run them with
//! `--include-ignored`) make network namespaces, and a cgroup v2 tree whose
//! path reads as a Kubernetes container; they fail without root.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;

use common::{
    ChildGuard, Netns, Portctl, Run, UnixAddr, in_netns, own_comm_and_cmdline, require_root, socket_inode, spawn,
    spawn_lock, tcp_listener, udp_socket, unique_name, unix_accept, unix_connect, unix_pair, unix_socket, unused_port,
    wait_until,
};
use schema::*;

// ---------------------------------------------------------------------------
// The contract, as test-side types

/// The JSON outputs as docs/json.md describes them. Every field is
/// deserialised (that is the check); not every one is read by an assertion.
#[allow(dead_code)]
mod schema {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer};

    /// A field that is always present and may be `null`. (serde lets a
    /// plain `Option` field be missing; with `deserialize_with` it may not.)
    pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
        Option::<T>::deserialize(d)
    }

    /// A field only some flags add: absent (with `default`) or a value, never `null`.
    pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
        T::deserialize(d).map(Some)
    }

    /// A field only a flag adds, whose value may be `null`: `None` absent,
    /// `Some(None)` null.
    pub fn present_nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Proto {
        Tcp,
        Udp,
        Raw,
        Icmp,
        Unix,
        Packet,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Family {
        Ipv4,
        Ipv6,
        Unix,
        Packet,
    }

    /// `state`: the documented names, no others.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    pub enum State {
        #[serde(rename = "listen")]
        Listen,
        #[serde(rename = "established")]
        Established,
        #[serde(rename = "syn_sent")]
        SynSent,
        #[serde(rename = "syn_recv")]
        SynRecv,
        #[serde(rename = "fin_wait1")]
        FinWait1,
        #[serde(rename = "fin_wait2")]
        FinWait2,
        #[serde(rename = "time_wait")]
        TimeWait,
        #[serde(rename = "close")]
        Close,
        #[serde(rename = "close_wait")]
        CloseWait,
        #[serde(rename = "last_ack")]
        LastAck,
        #[serde(rename = "closing")]
        Closing,
        #[serde(rename = "unconn")]
        Unconn,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Exposure {
        Loopback,
        Wildcard,
        Address,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Endpoint {
        /// IPv6 without brackets: `IpAddr`'s parser refuses them.
        pub addr: IpAddr,
        pub port: u16,
    }

    /// A unix end: `{"name": string|null, "abstract": bool}`.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixEnd {
        #[serde(deserialize_with = "nullable")]
        pub name: Option<String>,
        #[serde(rename = "abstract")]
        pub is_abstract: bool,
    }

    /// A packet socket's end: `{"ifindex", "protocol"}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LinkEnd {
        pub ifindex: u32,
        pub protocol: u16,
    }

    /// `local` and `remote`: one of the three shapes, untagged.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(untagged)]
    pub enum End {
        Ip(Endpoint),
        Unix(UnixEnd),
        Link(LinkEnd),
    }

    impl End {
        /// The IP end; panics on another kind (tests of IP records only).
        pub fn ip(&self) -> Endpoint {
            match self {
                End::Ip(e) => *e,
                other => panic!("not an IP end: {other:?}"),
            }
        }

        pub fn unix(&self) -> &UnixEnd {
            match self {
                End::Unix(u) => u,
                other => panic!("not a unix end: {other:?}"),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum UnixType {
        Stream,
        Dgram,
        Seqpacket,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Vfs {
        pub dev: u64,
        pub ino: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixDetail {
        #[serde(rename = "type")]
        pub kind: UnixType,
        #[serde(deserialize_with = "nullable")]
        pub vfs: Option<Vfs>,
        pub pending: Vec<u64>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawDetail {
        pub protocol: u8,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum PacketType {
        Raw,
        Dgram,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ring {
        pub block_size: u32,
        pub blocks: u32,
        pub frame_size: u32,
        pub frames: u32,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Fanout {
        pub id: u16,
        pub mode: u8,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PacketDetail {
        #[serde(rename = "type")]
        pub kind: PacketType,
        pub running: bool,
        pub promiscuous: bool,
        pub version: u8,
        #[serde(deserialize_with = "nullable")]
        pub rx_ring: Option<Ring>,
        #[serde(deserialize_with = "nullable")]
        pub tx_ring: Option<Ring>,
        #[serde(deserialize_with = "nullable")]
        pub fanout: Option<Fanout>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TcpDetail {
        pub mptcp: bool,
    }

    /// `detail`: the shape its record's `proto` calls for.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(untagged)]
    pub enum Detail {
        Unix(UnixDetail),
        Packet(PacketDetail),
        Raw(RawDetail),
        Tcp(TcpDetail),
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Peer {
        pub inode: u64,
        pub owners: Vec<Owner>,
        pub owners_hidden: bool,
        #[serde(default, deserialize_with = "present")]
        pub netns: Option<NetnsRef>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum TimerKind {
        Retransmit,
        Keepalive,
        TimeWait,
        Probe,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Timer {
        pub kind: TimerKind,
        pub expires_ms: u64,
        pub retrans: u64,
    }

    /// The socket record.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Record {
        pub proto: Proto,
        pub family: Family,
        pub state: State,
        pub local: End,
        #[serde(deserialize_with = "nullable")]
        pub remote: Option<End>,
        pub inode: u64,
        pub uid: u32,
        #[serde(deserialize_with = "nullable")]
        pub v6only: Option<bool>,
        /// Version 3: `null` unless read by BPF.
        #[serde(deserialize_with = "nullable")]
        pub reuseaddr: Option<bool>,
        #[serde(deserialize_with = "nullable")]
        pub reuseport: Option<bool>,
        pub exposure: Exposure,
        #[serde(deserialize_with = "nullable")]
        pub interface: Option<String>,
        /// Version 3: `null` only from /proc/net.
        #[serde(deserialize_with = "nullable")]
        pub bound_ifindex: Option<u32>,
        #[serde(deserialize_with = "nullable")]
        pub service: Option<String>,
        pub recv_q: u64,
        pub send_q: u64,
        #[serde(deserialize_with = "nullable")]
        pub timer: Option<Timer>,
        pub owners: Vec<Owner>,
        pub owners_hidden: bool,
        /// Version 3.
        #[serde(deserialize_with = "nullable")]
        pub unheld: Option<Unheld>,
        /// TCP listeners read through sock_diag (version 3).
        #[serde(default, deserialize_with = "present")]
        pub accept_queue: Option<AcceptQueue>,
        /// Only with `conns --extended`.
        #[serde(default, deserialize_with = "present")]
        pub tcp_info: Option<TcpInfo>,
        /// `conns --extended`, and UDP records of listen and who (version 3).
        #[serde(default, deserialize_with = "present")]
        pub skmem: Option<SkMem>,
        /// Only with `--netns`/`--all-netns` (and in `who`'s `other_netns`).
        #[serde(default, deserialize_with = "present")]
        pub netns: Option<NetnsRef>,
        /// Unix, raw, ICMP, packet records, and MPTCP subflows (version 3).
        #[serde(default, deserialize_with = "present")]
        pub detail: Option<Detail>,
        /// When the other end is a socket on this host (version 3).
        #[serde(default, deserialize_with = "present")]
        pub peer: Option<Peer>,
    }

    /// `unheld`: the documented reasons, no others.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Unheld {
        Kernel,
        InFlight,
        NoProcess,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Owner {
        pub pid: u32,
        pub name: String,
        pub user: String,
        pub fd: u32,
        /// Version 3: the thread of a thread-private descriptor table.
        #[serde(deserialize_with = "nullable")]
        pub tid: Option<u32>,
        pub cmdline: String,
        /// Only with `--context`; "`{...}` or `null`".
        #[serde(default, deserialize_with = "present_nullable")]
        pub context: Option<Option<Context>>,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Context {
        pub cgroup: String,
        #[serde(deserialize_with = "nullable")]
        pub unit: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub container: Option<Container>,
    }

    /// The runtimes docs/containers.md lists.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum Runtime {
        #[serde(rename = "docker")]
        Docker,
        #[serde(rename = "containerd")]
        Containerd,
        #[serde(rename = "cri-o")]
        CriO,
        #[serde(rename = "podman")]
        Podman,
        #[serde(rename = "lxc")]
        Lxc,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Container {
        pub runtime: Runtime,
        pub id: String,
        #[serde(deserialize_with = "nullable")]
        pub pod_uid: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub name: Option<String>,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TcpInfo {
        pub rtt_us: u64,
        pub rttvar_us: u64,
        pub retransmits: u64,
        pub total_retrans: u64,
        pub snd_cwnd: u64,
        #[serde(deserialize_with = "nullable")]
        pub bytes_sent: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub bytes_received: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub congestion: Option<String>,
        pub snd_mss: u64,
        pub rcv_mss: u64,
        pub unacked: u64,
        pub lost: u64,
        pub reordering: u64,
        #[serde(deserialize_with = "nullable")]
        pub pacing_rate: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub delivery_rate: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub busy_time_us: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub rwnd_limited_us: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub sndbuf_limited_us: Option<u64>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AcceptQueue {
        pub queued: u64,
        pub backlog: u64,
        pub full: bool,
        pub near_full: bool,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SkMem {
        pub rmem_alloc: u64,
        pub rcvbuf: u64,
        pub wmem_alloc: u64,
        pub sndbuf: u64,
        pub fwd_alloc: u64,
        pub wmem_queued: u64,
        pub optmem: u64,
        pub backlog: u64,
        pub drops: u64,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NetnsRef {
        pub inode: u64,
        #[serde(deserialize_with = "nullable")]
        pub name: Option<String>,
    }

    // --- who --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Who {
        pub spec: Spec,
        pub verdict: Verdict,
        pub holders: Vec<Holder>,
        pub connected: Connected,
        pub sockets: Vec<Record>,
        pub other_netns: Vec<Record>,
        /// Version 3.
        pub nat: NatAnswer,
        pub hints: Vec<String>,
        #[serde(deserialize_with = "nullable")]
        pub listen_backlog: Option<ListenBacklog>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListenBacklog {
        #[serde(deserialize_with = "nullable")]
        pub somaxconn: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_max_syn_backlog: Option<u64>,
        pub full: Vec<u64>,
        pub clamped: Vec<u64>,
        #[serde(deserialize_with = "nullable")]
        pub listen_overflows: Option<i64>,
        #[serde(deserialize_with = "nullable")]
        pub listen_drops: Option<i64>,
        #[serde(deserialize_with = "nullable")]
        pub overflows_rise: Option<i64>,
        #[serde(deserialize_with = "nullable")]
        pub drops_rise: Option<i64>,
        #[serde(deserialize_with = "nullable")]
        pub sampled_ms: Option<u64>,
        pub notes: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Spec {
        /// `null` for a unix socket.
        #[serde(deserialize_with = "nullable")]
        pub port: Option<u16>,
        pub protos: Vec<Proto>,
        #[serde(deserialize_with = "nullable")]
        pub addr: Option<IpAddr>,
        #[serde(deserialize_with = "nullable")]
        pub service: Option<String>,
        /// Unix sockets only (version 3).
        #[serde(default, deserialize_with = "present")]
        pub unix: Option<UnixSpec>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixSpec {
        pub name: String,
        #[serde(rename = "abstract")]
        pub is_abstract: bool,
        #[serde(deserialize_with = "nullable")]
        pub file: Option<FileOut>,
    }

    #[derive(Debug, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FileOut {
        pub exists: bool,
        #[serde(deserialize_with = "nullable")]
        pub dev: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub ino: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Connected {
        pub connections: u64,
        pub peers: Vec<PeerGroup>,
        pub other: u64,
        pub pending: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PeerGroup {
        pub name: String,
        pub pids: Vec<u32>,
        pub count: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Verdict {
        pub in_use: bool,
        /// Version 3.
        pub published: bool,
        pub summary: Vec<String>,
        pub binds: Vec<AnyBind>,
    }

    /// A port bind or a unix one.
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum AnyBind {
        Ip(Bind),
        Unix(UnixBind),
    }

    impl AnyBind {
        pub fn ip(&self) -> &Bind {
            match self {
                AnyBind::Ip(b) => b,
                AnyBind::Unix(u) => panic!("not a port bind: {u:?}"),
            }
        }

        pub fn unix(&self) -> &UnixBind {
            match self {
                AnyBind::Unix(u) => u,
                AnyBind::Ip(b) => panic!("not a unix bind: {b:?}"),
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixBind {
        pub proto: Proto,
        pub name: String,
        #[serde(rename = "abstract")]
        pub is_abstract: bool,
        pub plain: Plain,
        pub reuseaddr: Plain,
        pub blocked_by: Vec<u64>,
        pub reason: String,
    }

    /// `plain`: `"ok"` or `"fails"` only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Plain {
        Ok,
        Fails,
    }

    /// `reuseaddr`: `plain`'s two, or `"only_if_theirs_too"`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Reuse {
        Ok,
        Fails,
        OnlyIfTheirsToo,
    }

    /// `reuseport` (version 3): `reuseaddr`'s three, or `"only_as_uid"`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Reuseport {
        Ok,
        Fails,
        OnlyIfTheirsToo,
        OnlyAsUid,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Bind {
        pub proto: Proto,
        pub addr: IpAddr,
        pub port: u16,
        #[serde(deserialize_with = "nullable")]
        pub v6only: Option<bool>,
        pub plain: Plain,
        pub reuseaddr: Reuse,
        pub reuseport: Reuseport,
        #[serde(deserialize_with = "nullable")]
        pub reuseport_uid: Option<u32>,
        pub blocked_by: Vec<u64>,
        pub reason: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Holder {
        pub pid: u32,
        pub name: String,
        pub user: String,
        pub cmdline: String,
        #[serde(deserialize_with = "nullable")]
        pub started: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub uptime_s: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub cwd: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub ppid: Option<u32>,
        #[serde(deserialize_with = "nullable")]
        pub parent_name: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub context: Option<Context>,
        pub sockets: Vec<u64>,
        pub notes: Vec<String>,
    }

    // --- who --pid --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WhoPid {
        pub holder: Holder,
        pub ancestry: Vec<Ancestor>,
        pub sockets: Vec<Record>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ancestor {
        pub pid: u32,
        pub name: String,
        #[serde(deserialize_with = "nullable")]
        pub unit: Option<String>,
    }

    // --- --by-process --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ByProcess {
        pub processes: Vec<ProcessGroup>,
        pub unowned: Vec<Record>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProcessGroup {
        pub pid: u32,
        pub name: String,
        pub user: String,
        pub cmdline: String,
        pub ancestry: Vec<Ancestor>,
        pub sockets: Vec<Record>,
    }

    // --- close --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Close {
        pub dry_run: bool,
        pub sockets: Vec<Closed>,
        pub message: String,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum CloseResult {
        Closed,
        WouldClose,
        Gone,
        Failed,
        NotClosed,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Closed {
        pub result: CloseResult,
        #[serde(deserialize_with = "nullable")]
        pub reason: Option<String>,
        pub socket: Record,
    }

    // --- kill --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Kill {
        #[serde(deserialize_with = "nullable")]
        pub port: Option<u16>,
        pub protos: Vec<Proto>,
        /// Unix sockets only (version 3).
        #[serde(default, deserialize_with = "present")]
        pub unix: Option<UnixEnd>,
        pub signal: String,
        pub dry_run: bool,
        pub targets: Vec<Target>,
        #[serde(deserialize_with = "nullable")]
        pub freed: Option<bool>,
        #[serde(deserialize_with = "nullable")]
        pub waited_ms: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub time_wait_left: Option<u64>,
        pub message: String,
        /// Version 3.
        pub nat: NatAnswer,
        pub hints: Vec<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum KillResult {
        Signalled,
        WouldSignal,
        Gone,
        NotPermitted,
        Refused,
        Killed,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Target {
        pub pid: u32,
        pub name: String,
        pub user: String,
        pub result: KillResult,
        #[serde(deserialize_with = "nullable")]
        pub reason: Option<String>,
        pub sockets: Vec<u64>,
    }

    // --- NAT records (version 3): listen's `"kind": "nat"` records and
    // who's and kill's `nat.rules`

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Kind {
        Nat,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum NatAction {
        Dnat,
        Redirect,
        Tproxy,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum NatExposure {
        Wildcard,
        Loopback,
        Address,
        NotLocal,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum RuleSource {
        #[serde(rename = "nft")]
        Nft,
        #[serde(rename = "iptables-nft")]
        IptablesNft,
        #[serde(rename = "iptables-legacy")]
        IptablesLegacy,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum NatStatus {
        Ok,
        NoTools,
        Failed,
        TimedOut,
        NotPermitted,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NatTo {
        #[serde(deserialize_with = "nullable")]
        pub addr: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub port: Option<Span>,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NatMatch {
        pub dst: Vec<String>,
        pub dst_not: Vec<String>,
        pub dst_local: bool,
        pub iif: Vec<String>,
        pub iif_not: Vec<String>,
        pub src: Vec<String>,
        pub src_not: Vec<String>,
        pub other: Vec<String>,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RuleRef {
        pub table: String,
        pub chain: String,
        #[serde(deserialize_with = "nullable")]
        pub handle: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub position: Option<u64>,
    }

    /// `docker` and `podman` are the runtimes a NAT record names.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum NatRuntime {
        Docker,
        Podman,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NatContainer {
        #[serde(deserialize_with = "nullable")]
        pub runtime: Option<NatRuntime>,
        #[serde(deserialize_with = "nullable")]
        pub id: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub name: Option<String>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum NatOwner {
        Docker,
        Podman,
        Cni,
        Kubernetes,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NatRecord {
        pub kind: Kind,
        #[serde(deserialize_with = "nullable")]
        pub proto: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub family: Option<Family>,
        #[serde(deserialize_with = "nullable")]
        pub ports: Option<Span>,
        pub action: NatAction,
        pub to: NatTo,
        pub exposure: NatExposure,
        #[serde(deserialize_with = "nullable")]
        pub interface: Option<String>,
        #[serde(rename = "match")]
        pub matches: NatMatch,
        pub remote: bool,
        pub local: bool,
        #[serde(deserialize_with = "nullable")]
        pub local_match: Option<NatMatch>,
        pub rule: RuleRef,
        pub source: RuleSource,
        #[serde(deserialize_with = "nullable")]
        pub comment: Option<String>,
        pub path: Vec<RuleRef>,
        #[serde(deserialize_with = "nullable")]
        pub owner: Option<NatOwner>,
        #[serde(deserialize_with = "nullable")]
        pub service: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub container: Option<NatContainer>,
        /// Only with `--netns`/`--all-netns`.
        #[serde(default, deserialize_with = "present")]
        pub netns: Option<NetnsRef>,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Skip {
        pub what: String,
        pub count: u64,
    }

    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NatAnswer {
        pub status: NatStatus,
        #[serde(deserialize_with = "nullable")]
        pub reason: Option<String>,
        pub rules: Vec<NatRecord>,
        pub skipped: Vec<Skip>,
    }

    // --- stats --json

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Stats {
        pub schema_version: u32,
        pub total: u64,
        pub protocols: Vec<ProtoCount>,
        pub states: Vec<StateCount>,
        #[serde(deserialize_with = "nullable")]
        pub ephemeral: Option<Ephemeral>,
        pub time_wait_top: Vec<Talker>,
        pub time_wait_peers: Vec<TimeWaitPeer>,
        #[serde(deserialize_with = "nullable")]
        pub close_wait: Option<CloseWait>,
        pub listeners: Listeners,
        pub udp_drops: Vec<UdpDrops>,
        #[serde(deserialize_with = "nullable")]
        pub kernel: Option<Kernel>,
        /// Version 3.
        #[serde(deserialize_with = "nullable")]
        pub unix: Option<UnixCounts>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listeners {
        #[serde(deserialize_with = "nullable")]
        pub somaxconn: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_max_syn_backlog: Option<u64>,
        pub full: Vec<QueuedListener>,
        pub clamped: Vec<QueuedListener>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProcessRef {
        pub pid: u32,
        pub name: String,
        pub user: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct QueuedListener {
        pub local: Endpoint,
        pub inode: u64,
        #[serde(deserialize_with = "nullable")]
        pub netns: Option<NetnsRef>,
        pub accept_queue: AcceptQueue,
        #[serde(deserialize_with = "nullable")]
        pub somaxconn: Option<u64>,
        pub processes: Vec<ProcessRef>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UdpDrops {
        pub local: Endpoint,
        pub inode: u64,
        #[serde(deserialize_with = "nullable")]
        pub netns: Option<NetnsRef>,
        pub drops: u64,
        pub rmem_alloc: u64,
        pub rcvbuf: u64,
        pub processes: Vec<ProcessRef>,
    }

    /// The counter groups: the kernel's names inside, any of them.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Groups {
        #[serde(rename = "TcpExt", default, deserialize_with = "present")]
        pub tcp_ext: Option<std::collections::BTreeMap<String, i64>>,
        #[serde(rename = "Tcp", default, deserialize_with = "present")]
        pub tcp: Option<std::collections::BTreeMap<String, i64>>,
        #[serde(rename = "Udp", default, deserialize_with = "present")]
        pub udp: Option<std::collections::BTreeMap<String, i64>>,
        #[serde(rename = "Udp6", default, deserialize_with = "present")]
        pub udp6: Option<std::collections::BTreeMap<String, i64>>,
    }

    impl Groups {
        pub fn get(&self, group: &str, name: &str) -> Option<i64> {
            let g = match group {
                "TcpExt" => &self.tcp_ext,
                "Tcp" => &self.tcp,
                "Udp" => &self.udp,
                "Udp6" => &self.udp6,
                _ => return None,
            };
            g.as_ref()?.get(name).copied()
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Kernel {
        pub counters: Groups,
        #[serde(deserialize_with = "nullable")]
        pub sample: Option<Sample>,
        pub problems: Vec<Problem>,
        pub sockstat: Sockstat,
        #[serde(deserialize_with = "nullable")]
        pub tcp_mem: Option<TcpMem>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_max_orphans: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_max_tw_buckets: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sample {
        pub interval_ms: u64,
        pub deltas: Groups,
    }

    /// `group`: the four groups only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum Group {
        TcpExt,
        Tcp,
        Udp,
        Udp6,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Problem {
        pub group: Group,
        pub name: String,
        pub value: i64,
        #[serde(deserialize_with = "nullable")]
        pub delta: Option<i64>,
        #[serde(deserialize_with = "nullable")]
        pub per_second: Option<f64>,
        pub means: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sockstat {
        #[serde(deserialize_with = "nullable")]
        pub sockets_used: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_inuse: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp6_inuse: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_orphan: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_time_wait: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_alloc: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_mem_pages: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub udp_inuse: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub udp6_inuse: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub udp_mem_pages: Option<u64>,
        #[serde(deserialize_with = "nullable")]
        pub tcp_memory_pressure: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TcpMem {
        pub min: u64,
        pub pressure: u64,
        pub max: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixCounts {
        pub total: u64,
        pub states: Vec<UnixStateCount>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnixStateCount {
        #[serde(rename = "type")]
        pub kind: UnixType,
        pub state: State,
        pub count: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProtoCount {
        pub proto: Proto,
        pub ipv4: u64,
        pub ipv6: u64,
        pub total: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StateCount {
        pub proto: Proto,
        pub state: State,
        pub ipv4: u64,
        pub ipv6: u64,
        pub total: u64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Span {
        pub lo: u16,
        pub hi: u16,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ephemeral {
        pub range: Span,
        pub reserved: Vec<Span>,
        pub usable: u64,
        pub warn_percent: u64,
        pub destinations: u64,
        pub busiest: Vec<Destination>,
        pub over_threshold: Vec<Destination>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Destination {
        pub proto: Proto,
        pub remote: Endpoint,
        pub ports: u64,
        pub percent: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Talker {
        pub remote: Endpoint,
        pub count: u64,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Side {
        In,
        Out,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TimeWaitPeer {
        pub side: Side,
        pub peer: IpAddr,
        pub port: u16,
        #[serde(deserialize_with = "nullable")]
        pub service: Option<String>,
        pub count: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CloseWait {
        pub total: u64,
        pub unowned: u64,
        pub processes: Vec<ProcessCount>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ProcessCount {
        pub pid: u32,
        pub name: String,
        pub user: String,
        pub count: u64,
    }

    // --- watch --events

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum EventKind {
        Added,
        Removed,
        State,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Event {
        pub event: EventKind,
        /// `state` events only: the state before.
        #[serde(default, deserialize_with = "present")]
        pub from: Option<State>,
        pub socket: Record,
    }
}

// ---------------------------------------------------------------------------
// docs/json.md: which names each section documents

const SOCKET_SECTION: &str = "Socket record";
const WHO_SECTION: &str = "`who --json`";
const KILL_SECTION: &str = "`kill --json`";
const STATS_SECTION: &str = "`stats --json`";
const WATCH_SECTION: &str = "`watch --events`";
const NAT_SECTION: &str = "NAT record";
const WHO_PID_SECTION: &str = "`who --pid --json`";
const BY_PROCESS_SECTION: &str = "`--by-process --json`";
const CLOSE_SECTION: &str = "`close --json`";

/// One JSON output: the docs/json.md section for its own keys, and where
/// socket records sit inside it (keys documented under "Socket record").
#[derive(Debug, Clone, Copy)]
enum Output {
    Sockets,
    Who,
    Kill,
    Stats,
    Watch,
    WhoPid,
    ByProcess,
    Close,
}

impl Output {
    fn section(self) -> &'static str {
        match self {
            Output::Sockets => SOCKET_SECTION,
            Output::Who => WHO_SECTION,
            Output::Kill => KILL_SECTION,
            Output::Stats => STATS_SECTION,
            Output::Watch => WATCH_SECTION,
            Output::WhoPid => WHO_PID_SECTION,
            Output::ByProcess => BY_PROCESS_SECTION,
            Output::Close => CLOSE_SECTION,
        }
    }

    /// Paths whose objects are data: the kernel's counter groups, whose
    /// keys are the kernel's names (docs/json.md says so; any name, an
    /// integer each).
    fn data_at(self) -> &'static [&'static str] {
        match self {
            Output::Stats => &[
                "kernel.counters.TcpExt",
                "kernel.counters.Tcp",
                "kernel.counters.Udp",
                "kernel.counters.Udp6",
                "kernel.sample.deltas.TcpExt",
                "kernel.sample.deltas.Tcp",
                "kernel.sample.deltas.Udp",
                "kernel.sample.deltas.Udp6",
            ],
            _ => &[],
        }
    }

    /// Paths (keys joined by `.`, arrays transparent) holding socket
    /// records or NAT records, and the section that documents them.
    fn records_at(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Output::Who => &[("sockets", SOCKET_SECTION), ("other_netns", SOCKET_SECTION), ("nat.rules", NAT_SECTION)],
            Output::Kill => &[("nat.rules", NAT_SECTION)],
            Output::Watch => &[("socket", SOCKET_SECTION)],
            Output::WhoPid => &[("sockets", SOCKET_SECTION)],
            Output::ByProcess => &[("processes.sockets", SOCKET_SECTION), ("unowned", SOCKET_SECTION)],
            Output::Close => &[("sockets.socket", SOCKET_SECTION)],
            _ => &[],
        }
    }
}

/// What docs/json.md documents, per `## ` section.
struct JsonDoc {
    /// Every field name the section mentions.
    sections: BTreeMap<String, BTreeSet<String>>,
    /// (section, key) -> the complete list of that key's fields, where the
    /// section spells it out as a nested list (`"container": {"runtime", ...}`).
    children: BTreeMap<(String, String), BTreeSet<String>>,
}

fn json_md() -> &'static JsonDoc {
    static DOC: OnceLock<JsonDoc> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        parse_json_md(&text)
    })
}

/// Splits the document at `## ` headings (fenced code blocks, the examples,
/// left out: an example does not document a field) and collects each
/// section's names: backticked identifiers (`recv_q`; `verdict.binds` gives
/// `verdict` and `binds`) and the keys of backticked brace lists
/// (`{"pid", "name": string, "started" (RFC 3339), "remote": {"addr"}}`).
fn parse_json_md(text: &str) -> JsonDoc {
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            current = title.trim().to_string();
            continue;
        }
        let body = bodies.entry(current.clone()).or_default();
        body.push_str(line);
        body.push('\n');
    }
    let mut doc = JsonDoc { sections: BTreeMap::new(), children: BTreeMap::new() };
    for (title, body) in bodies {
        let names = doc.sections.entry(title.clone()).or_default();
        // Backtick spans; a span may go on on the next line, not past a blank one.
        let mut rest = body.as_str();
        while let Some(open) = rest.find('`') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('`') else { break };
            let span = &after[..close];
            rest = &after[close + 1..];
            if span.contains("\n\n") {
                continue;
            }
            if span.contains('{') {
                for (parent, key) in brace_keys(span) {
                    if let Some(p) = parent {
                        doc.children.entry((title.clone(), p)).or_default().insert(key.clone());
                    }
                    names.insert(key);
                }
            } else if is_path(span) {
                names.extend(span.split('.').map(str::to_string));
            }
        }
    }
    doc
}

/// `recv_q`, `verdict.binds`, and the kernel's counter groups (`TcpExt`,
/// `Udp6`), which are keys of `kernel.counters`.
fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            seg.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Keys of a brace list, each with the key whose nested list it is in
/// (`"c": {"d"}`: `d` in `c`; `None` at the outer level). A key is a quoted
/// name after `{` or `,` and before `:`, `,`, `}` or `(`; quoted values
/// (`"kind": "retransmit"\|"keepalive"`, `["tcp", "udp"]`) are not keys.
fn brace_keys(span: &str) -> Vec<(Option<String>, String)> {
    let chars: Vec<char> = span.chars().collect();
    let prev = |i: usize| chars[..i].iter().rev().find(|c| !c.is_whitespace()).copied();
    let next = |i: usize| chars[i..].iter().find(|c| !c.is_whitespace()).copied();
    let mut keys = Vec::new();
    // One entry per open `{`: the key it is the value of.
    let mut nesting: Vec<Option<String>> = Vec::new();
    let mut last_key: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                let Some(len) = chars[i + 1..].iter().position(|&c| c == '"') else { break };
                let end = i + 1 + len;
                let name: String = chars[i + 1..end].iter().collect();
                if matches!(prev(i), Some('{' | ','))
                    && matches!(next(end + 1), Some(':' | ',' | '}' | '('))
                    && is_path(&name)
                {
                    keys.push((nesting.last().cloned().flatten(), name.clone()));
                    last_key = Some(name);
                }
                i = end + 1;
                continue;
            }
            '{' => nesting.push(if prev(i) == Some(':') { last_key.clone() } else { None }),
            '}' => {
                nesting.pop();
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// Every key of `v` that docs/json.md does not document where it is, as
/// `section: path`: not named in the section of its output (socket records:
/// "Socket record"), or not in the list the section gives for its parent.
/// Also how many keys there were.
fn undocumented(doc: &JsonDoc, out: Output, v: &Value) -> (usize, BTreeSet<String>) {
    struct Walk<'a> {
        doc: &'a JsonDoc,
        out: Output,
        seen: usize,
        missing: BTreeSet<String>,
    }
    impl Walk<'_> {
        fn walk(&mut self, section: &'static str, path: &str, parent: Option<&str>, v: &Value) {
            if self.out.data_at().contains(&path) {
                let Value::Object(m) = v else { panic!("{path} is not an object: {v}") };
                for (k, n) in m {
                    self.seen += 1;
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric()) && !k.is_empty(),
                        "{path}: counter name {k:?}"
                    );
                    assert!(n.is_i64(), "{path}.{k}: {n} is not an integer");
                }
                return;
            }
            match v {
                Value::Object(m) => {
                    let listed = parent.and_then(|p| self.doc.children.get(&(section.to_string(), p.to_string())));
                    for (k, child) in m {
                        self.seen += 1;
                        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                        if !self.doc.sections.get(section).is_some_and(|names| names.contains(k)) {
                            self.missing.insert(format!("{section}: {p}"));
                        } else if let Some(listed) = listed.filter(|l| !l.contains(k)) {
                            let listed = listed.iter().cloned().collect::<Vec<_>>().join(", ");
                            self.missing.insert(format!("{section}: {p} (documented there: {listed})"));
                        }
                        let next = self.out.records_at().iter().find(|(at, _)| *at == p).map_or(section, |(_, s)| *s);
                        self.walk(next, &p, Some(k), child);
                    }
                }
                Value::Array(items) => {
                    for x in items {
                        // listen's array: NAT records among the socket records.
                        let nat = path.is_empty() && x.get("kind").and_then(Value::as_str) == Some("nat");
                        self.walk(if nat { NAT_SECTION } else { section }, path, parent, x);
                    }
                }
                _ => {}
            }
        }
    }
    let mut w = Walk { doc, out, seen: 0, missing: BTreeSet::new() };
    // A `--jsonl` line of listen may be a NAT record.
    let nat = v.get("kind").and_then(Value::as_str) == Some("nat");
    w.walk(if nat { NAT_SECTION } else { out.section() }, "", None, v);
    (w.seen, w.missing)
}

/// Panics unless every key of `v` is documented in docs/json.md.
fn assert_documented(what: &str, out: Output, v: &Value) {
    let (seen, missing) = undocumented(json_md(), out, v);
    assert!(seen > 0, "{what}: no keys at all in {v}");
    assert!(missing.is_empty(), "{what}: fields missing from docs/json.md (section: path):\n  {}", {
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    });
}

// ---------------------------------------------------------------------------
// Parsing outputs

fn value(run: &Run, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: not JSON: {e}: {text}\n{}", run.what, run.dump()))
}

fn typed<T: DeserializeOwned>(run: &Run, v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| {
        panic!("{}: breaks the contract ({}): {e}\n{v:#}\n{}", run.what, std::any::type_name::<T>(), run.dump())
    })
}

/// `--json` of listen/conns: one array, one record per line inside it.
fn json_records(run: &Run) -> Vec<Record> {
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.len() >= 2 && lines[0] == "[" && lines[lines.len() - 1] == "]", "{}", run.dump());
    for (i, l) in lines[1..lines.len() - 1].iter().enumerate() {
        let l = if i + 3 < lines.len() { l.strip_suffix(',').unwrap_or_else(|| panic!("no comma: {l}")) } else { l };
        assert!(value(run, l).is_object(), "{}: one record per line: {l}", run.what);
    }
    let v = value(run, &run.stdout);
    assert_documented(&run.what, Output::Sockets, &v);
    let records: Vec<Record> = typed(run, &v);
    records.iter().for_each(check_record);
    records
}

/// `--jsonl`: one record per line.
fn jsonl_records(run: &Run) -> Vec<Record> {
    run.expect_code(0);
    let records: Vec<Record> = run
        .stdout
        .lines()
        .map(|l| {
            let v = value(run, l);
            assert_documented(&run.what, Output::Sockets, &v);
            typed(run, &v)
        })
        .collect();
    records.iter().for_each(check_record);
    records
}

/// One pretty-printed object (`who`, `stats`, `kill`).
fn object<T: DeserializeOwned>(run: &Run, out: Output) -> T {
    let v = value(run, &run.stdout);
    assert!(v.is_object(), "{}: one object\n{}", run.what, run.dump());
    assert_documented(&run.what, out, &v);
    typed(run, &v)
}

/// One JSON array of objects (`who`, `kill` with several specs).
fn array<T: DeserializeOwned>(run: &Run, out: Output) -> Vec<T> {
    let v = value(run, &run.stdout);
    assert!(
        v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
        "{}: an array of objects\n{}",
        run.what,
        run.dump()
    );
    assert_documented(&run.what, out, &v);
    typed(run, &v)
}

/// What the socket record table says beyond the types.
fn check_record(r: &Record) {
    match r.proto {
        Proto::Tcp | Proto::Udp | Proto::Raw | Proto::Icmp => check_ip_record(r),
        Proto::Unix => {
            assert_eq!((r.family, r.exposure, r.v6only), (Family::Unix, Exposure::Loopback, None), "{r:?}");
            assert!(matches!(r.local, End::Unix(_)), "a unix end: {r:?}");
            assert!(r.remote.as_ref().is_none_or(|e| matches!(e, End::Unix(_))), "{r:?}");
            assert!(
                matches!(r.state, State::Listen | State::Established | State::SynSent | State::Unconn),
                "unix states: {r:?}"
            );
            assert!(matches!(r.detail, Some(Detail::Unix(_))), "unix records carry their detail: {r:?}");
            assert!(r.tcp_info.is_none() && r.skmem.is_none() && r.timer.is_none() && r.service.is_none(), "{r:?}");
            if r.state == State::Listen {
                assert!(r.remote.is_none() && r.peer.is_none(), "a listener has no peer: {r:?}");
            }
        }
        Proto::Packet => {
            assert_eq!(
                (r.family, r.state, r.remote.as_ref(), r.v6only),
                (Family::Packet, State::Unconn, None, None),
                "{r:?}"
            );
            let End::Link(l) = &r.local else { panic!("a link end: {r:?}") };
            assert_eq!(r.exposure, if l.ifindex == 0 { Exposure::Wildcard } else { Exposure::Address }, "{r:?}");
            assert!(matches!(r.detail, Some(Detail::Packet(_))), "{r:?}");
            assert!(r.peer.is_none(), "{r:?}");
        }
    }
    if let Some(p) = &r.peer {
        assert!(p.inode != 0 && p.inode != r.inode, "a peer is another socket with a file: {r:?}");
        if p.owners_hidden {
            assert!(p.owners.is_empty(), "{r:?}");
        }
    }
    if r.state == State::TimeWait {
        assert_eq!((r.inode, r.owners.len(), r.owners_hidden), (0, 0, false), "TIME_WAIT: no owner: {r:?}");
        let t = r.timer.as_ref().unwrap_or_else(|| panic!("TIME_WAIT carries its timer: {r:?}"));
        assert_eq!(t.kind, TimerKind::TimeWait, "{r:?}");
        assert!(t.expires_ms <= 60_000, "{r:?}");
        assert!(r.peer.is_none(), "TIME_WAIT has no peer: {r:?}");
    }
    if r.inode == 0 {
        assert!(r.owners.is_empty(), "no descriptor refers to inode 0: {r:?}");
    }
    if r.owners_hidden {
        assert!(r.owners.is_empty(), "owners_hidden only when no owner was found: {r:?}");
    }
    // Every TCP listener read through sock_diag has its accept queue, and
    // nothing else has one.
    assert_eq!(r.accept_queue.is_some(), r.proto == Proto::Tcp && r.state == State::Listen, "{r:?}");
    if let Some(q) = r.accept_queue {
        assert_eq!((q.queued, q.backlog), (r.recv_q, r.send_q), "{r:?}");
        assert_eq!(q.full, q.queued > q.backlog, "{r:?}");
        assert!(!(q.full && q.near_full), "{r:?}");
    }
    if let Some(m) = r.skmem {
        assert!(m.rcvbuf > 0 && m.sndbuf > 0, "{r:?}");
    }
    if let Some(u) = r.unheld {
        assert!(r.owners.is_empty() && r.inode != 0, "unheld: no owner, an inode: {r:?}");
        assert!(u != Unheld::Kernel || !r.owners_hidden, "the kernel's socket is nobody's, hidden or not: {r:?}");
    }
    assert_eq!(r.reuseaddr.is_some(), r.reuseport.is_some(), "the options are read together: {r:?}");
    for o in &r.owners {
        assert_ne!(o.tid, Some(o.pid), "tid names a thread other than the process's table: {r:?}");
    }
}

/// TCP, UDP, raw and ICMP records.
fn check_ip_record(r: &Record) {
    let v4 = r.local.ip().addr.is_ipv4();
    assert_eq!(r.family, if v4 { Family::Ipv4 } else { Family::Ipv6 }, "family follows the address: {r:?}");
    if v4 {
        assert_eq!(r.v6only, None, "v6only is null for IPv4: {r:?}");
    }
    if let Some(remote) = &r.remote {
        assert_eq!(remote.ip().addr.is_ipv4(), v4, "both ends of one family: {r:?}");
    }
    if matches!(r.state, State::Listen | State::Unconn) {
        assert_eq!(r.remote, None, "listeners and unconnected UDP have remote null: {r:?}");
    }
    if matches!(r.proto, Proto::Udp | Proto::Raw | Proto::Icmp) {
        assert!(matches!(r.state, State::Unconn | State::Established), "UDP and raw states: {r:?}");
    }
    match r.proto {
        Proto::Raw | Proto::Icmp => {
            assert_eq!(r.local.ip().port, 0, "raw sockets have no port: {r:?}");
            assert!(matches!(r.detail, Some(Detail::Raw(_))), "raw records carry their protocol: {r:?}");
        }
        Proto::Tcp => assert!(matches!(r.detail, None | Some(Detail::Tcp(TcpDetail { mptcp: true }))), "{r:?}"),
        _ => assert!(r.detail.is_none(), "no detail on UDP records: {r:?}"),
    }
    let ip = match r.local.ip().addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(r.local.ip().addr, IpAddr::V4),
        a => a,
    };
    let exposure = if ip.is_unspecified() {
        Exposure::Wildcard
    } else if ip.is_loopback() {
        Exposure::Loopback
    } else {
        Exposure::Address
    };
    assert_eq!(r.exposure, exposure, "{r:?}");
}

/// The records of `run` on `port` (either end).
fn on_port(records: &[Record], port: u16) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| r.local.ip().port == port || r.remote.as_ref().is_some_and(|e| e.ip().port == port))
        .collect()
}

fn find<'a>(records: &'a [Record], what: &str, f: impl Fn(&Record) -> bool) -> &'a Record {
    let hits: Vec<&Record> = records.iter().filter(|r| f(r)).collect();
    assert_eq!(hits.len(), 1, "one record for {what}, got {hits:#?}\nall: {records:#?}");
    hits[0]
}

/// The owner record this process is, for a descriptor of ours.
fn assert_owned_by_me(r: &Record, fd: RawFd) {
    let (comm, cmdline) = own_comm_and_cmdline();
    let me: Vec<&Owner> = r.owners.iter().filter(|o| o.pid == std::process::id()).collect();
    assert_eq!(me.len(), 1, "held by this test process once: {r:?}");
    let o = me[0];
    assert_eq!((o.fd, o.name.as_str(), o.cmdline.as_str()), (fd as u32, comm.as_str(), cmdline.as_str()), "{r:?}");
    assert_eq!(o.user, common::user_name(common::euid()), "{r:?}");
    assert_eq!(r.inode, socket_inode(fd), "{r:?}");
    assert!(!r.owners_hidden, "{r:?}");
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------------------
// Sockets and processes

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn port_of(l: &TcpListener) -> u16 {
    l.local_addr().unwrap().port()
}

fn set_int_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: a valid int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt({level}, {name}): {}", io::Error::last_os_error());
}

/// A connection to `l`: (client, accepted server end). The caller holds
/// [`spawn_lock`], so no forked child copies the descriptors (a copy would
/// delay a close, and change which end ends up in TIME_WAIT).
fn connect(l: &TcpListener) -> (TcpStream, TcpStream) {
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// `sleep` holding these descriptors of ours (inherited: close-on-exec is
/// cleared in the child only, between fork and exec).
fn sleeper_holding(fds: &[RawFd]) -> ChildGuard {
    let fds = fds.to_vec();
    let mut cmd = Command::new("sleep");
    cmd.arg("120").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only fcntl (async-signal-safe) runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    spawn(&mut cmd)
}

/// `portctl watch ...` with its stdout read line by line on a thread.
fn watch(args: &[&str]) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Portctl::new(["watch"]).args(args).command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = spawn(&mut cmd);
    let stdout = child.child_mut().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next event line matching `f`, checked against the contract; None
/// when none came within `within`.
fn next_event(rx: &mpsc::Receiver<String>, within: Duration, f: impl Fn(&Event) -> bool) -> Option<Event> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => return None,
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("watch exited before the event came"),
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("watch --events: not JSON: {e}: {line}"));
        assert_documented("watch --events", Output::Watch, &v);
        let e: Event = serde_json::from_value(v).unwrap_or_else(|e| panic!("watch --events: {e}: {line}"));
        assert_eq!(e.from.is_some(), e.event == EventKind::State, "`from` on state events only: {line}");
        check_record(&e.socket);
        if f(&e) {
            return Some(e);
        }
    }
}

/// The first refresh of `watch --events` is a baseline and prints nothing,
/// so a change made before it is never reported. Makes a change with `make`
/// (what to keep open, and the inode of the socket it added) until an
/// `added` event for that socket arrives, waiting longer each time; then
/// everything there before the first `make` was in the baseline.
fn added_after_baseline<T>(rx: &mpsc::Receiver<String>, mut make: impl FnMut() -> (T, u64)) -> (T, Event) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(200);
    loop {
        let (kept, inode) = make();
        if let Some(e) = next_event(rx, wait, |e| e.event == EventKind::Added && e.socket.inode == inode) {
            return (kept, e);
        }
        assert!(Instant::now() < deadline, "watch --events reported no socket added after it started");
        drop(kept);
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn netns_inode(ns: &Netns) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name())).unwrap().ino()
}

fn ip_in(ns: &Netns, args: &[&str]) {
    let run = common::output(Command::new("ip").arg("-n").arg(ns.name()).args(args));
    assert!(run.status.success(), "ip -n {} {args:?}\n{}", ns.name(), run.dump());
}

fn sysctl_in(ns: &Netns, name: &str, value: &str) {
    let run = common::output(ns.command("sysctl").args(["-qw", &format!("{name}={value}")]));
    assert!(run.status.success(), "sysctl {name} in {}\n{}", ns.name(), run.dump());
}

// ---------------------------------------------------------------------------
// docs/json.md itself

#[test]
fn json_md_names_are_read_from_tables_and_brace_lists() {
    let doc = json_md();
    let has = |section: &str, name: &str| doc.sections.get(section).is_some_and(|n| n.contains(name));
    for (section, names) in [
        (SOCKET_SECTION, &["proto", "recv_q", "owners_hidden", "expires_ms", "cmdline", "rttvar_us", "pod_uid"][..]),
        (WHO_SECTION, &["verdict", "binds", "blocked_by", "parent_name", "other_netns"][..]),
        (KILL_SECTION, &["port", "protos", "dry_run", "time_wait_left"][..]),
        (STATS_SECTION, &["schema_version", "over_threshold", "unowned", "time_wait_peers"][..]),
        (WATCH_SECTION, &["event", "from", "socket"][..]),
    ] {
        for name in names {
            assert!(has(section, name), "docs/json.md section {section} should name `{name}`");
        }
    }
    // Values in brace lists are not names; examples (fenced) document nothing.
    assert!(!has(SOCKET_SECTION, "retransmit") && !has(SOCKET_SECTION, "keepalive"));
    assert!(!has(WHO_SECTION, "tcp"), "`[\"tcp\", \"udp\"]` are values");
    let keys = brace_keys(r#"{"a": "x"\|"y", "b" (note), "c": {"d", "e": {"g"}}, "f": ["g", "h"]}"#);
    let top = |k: &str| (None, k.to_string());
    let inside = |p: &str, k: &str| (Some(p.to_string()), k.to_string());
    assert_eq!(keys, [top("a"), top("b"), top("c"), inside("c", "d"), inside("c", "e"), inside("e", "g"), top("f")]);
    // A nested list in the document is the complete list of that key's fields.
    let container = doc.children.get(&(WHO_SECTION.to_string(), "container".to_string()));
    assert_eq!(container.map(|c| c.len()), Some(4), "{container:?}");
}

#[test]
fn the_documentation_check_fails_on_an_undocumented_field() {
    let v: Value = serde_json::json!({
        "spec": {"port": 1, "surprise": true},
        "sockets": [{"proto": "tcp", "owners": [{"pid": 1, "hidden_extra": 0}]}],
        "verdict": {"binds": [{"recv_q": 0}]},
        "holders": [{"context": {"container": {"id": "x", "pid": 1}}}]
    });
    let (seen, missing) = undocumented(json_md(), Output::Who, &v);
    assert_eq!(seen, 16);
    let want: BTreeSet<String> = [
        format!("{WHO_SECTION}: spec.surprise"),
        format!("{SOCKET_SECTION}: sockets.owners.hidden_extra"),
        // a socket record's field is not a who field
        format!("{WHO_SECTION}: verdict.binds.recv_q"),
        // a who field, but not one of the container's
        format!("{WHO_SECTION}: holders.context.container.pid (documented there: id, name, pod_uid, runtime)"),
    ]
    .into();
    assert_eq!(missing, want);
    // And the types refuse what the document does not allow.
    let record = r#"{"proto":"tcp","family":"ipv4","state":"listen","local":{"addr":"127.0.0.1","port":1},"remote":null,"inode":1,"uid":0,"v6only":null,"reuseaddr":null,"reuseport":null,"exposure":"loopback","interface":null,"bound_ifindex":0,"service":null,"recv_q":0,"send_q":1,"timer":null,"owners":[],"owners_hidden":false,"unheld":null}"#;
    assert!(serde_json::from_str::<Record>(record).is_ok());
    for (from, to) in [
        (r#""owners_hidden":false"#, r#""owners_hidden":false,"extra":1"#),
        (r#""remote":null,"#, ""),
        (r#""state":"listen""#, r#""state":"LISTEN""#),
        (r#""owners_hidden":false"#, r#""owners_hidden":false,"tcp_info":null"#),
        (r#""reuseaddr":null,"#, ""),
        (r#""unheld":null"#, r#""unheld":"hidden""#),
        (r#""addr":"127.0.0.1""#, r#""addr":"[::1]""#),
    ] {
        let bad = record.replace(from, to);
        assert!(serde_json::from_str::<Record>(&bad).is_err(), "accepted: {bad}");
    }
}

// ---------------------------------------------------------------------------
// listen

#[test]
fn listen_json_and_jsonl_records() {
    let v4 = tcp_listener(sa("127.0.0.1:0"), None, 37);
    let dual = tcp_listener(sa("[::]:0"), Some(false), 38);
    let v6 = tcp_listener(sa("[::1]:0"), Some(true), 39);
    let udp = udp_socket(sa("127.0.0.1:0"), None);
    let udp6 = udp_socket(sa("[::1]:0"), Some(true));
    let udp_port = udp.local_addr().unwrap().port();
    let udp6_port = udp6.local_addr().unwrap().port();
    let ports = [port_of(&v4), port_of(&dual), port_of(&v6), udp_port, udp6_port];
    let args: Vec<String> = ports.iter().flat_map(|p| ["--port".to_string(), p.to_string()]).collect();

    for format in ["--json", "--jsonl"] {
        let run = Portctl::new(["listen", format]).args(&args).run();
        let records = if format == "--json" { json_records(&run) } else { jsonl_records(&run) };
        let mine: Vec<Record> = records.into_iter().filter(|r| ports.contains(&r.local.ip().port)).collect();
        assert_eq!(mine.len(), 5, "{format}: {mine:#?}");
        let tcp = |l: &TcpListener, backlog: u64, v6only: Option<bool>, exposure: Exposure| {
            let r = find(&mine, "tcp listener", |r| r.proto == Proto::Tcp && r.local.ip().port == port_of(l));
            assert_eq!((r.state, r.send_q, r.v6only, r.exposure), (State::Listen, backlog, v6only, exposure), "{r:?}");
            assert_owned_by_me(r, l.as_raw_fd());
        };
        tcp(&v4, 37, None, Exposure::Loopback);
        tcp(&dual, 38, Some(false), Exposure::Wildcard);
        tcp(&v6, 39, Some(true), Exposure::Loopback);
        let u = find(&mine, "udp", |r| r.proto == Proto::Udp && r.local.ip().port == udp_port);
        assert_eq!((u.state, u.family, u.v6only), (State::Unconn, Family::Ipv4, None), "{u:?}");
        assert_owned_by_me(u, udp.as_raw_fd());
        let u6 = find(&mine, "udp6", |r| r.proto == Proto::Udp && r.local.ip().port == udp6_port);
        assert_eq!(
            (u6.family, u6.v6only, u6.local.ip().addr),
            (Family::Ipv6, Some(true), sa("[::1]:0").ip()),
            "{u6:?}"
        );
        assert_owned_by_me(u6, udp6.as_raw_fd());
        for r in &mine {
            assert!(r.tcp_info.is_none() && r.netns.is_none(), "no tcp_info or netns without their flags: {r:?}");
            // UDP sockets carry their memory (their drops), TCP ones not.
            assert_eq!(r.skmem.is_some(), r.proto == Proto::Udp, "{r:?}");
            assert!(r.owners.iter().all(|o| o.context.is_none()), "no context without --context: {r:?}");
        }
    }
}

#[test]
fn listen_context_json_adds_the_owner_context() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 8);
    let port = port_of(&l).to_string();
    let run = Portctl::new(["listen", "--context", "--json", "--port", &port]).run();
    let records = json_records(&run);
    let r = find(&records, "the listener", |r| r.local.ip().port == port_of(&l));
    assert_owned_by_me(r, l.as_raw_fd());
    let ctx = r.owners[0].context.as_ref().expect("--context adds `context` to each owner");
    let ctx = ctx.as_ref().expect("this process's cgroup is readable");
    assert!(ctx.cgroup.starts_with('/'), "{ctx:?}");
    let run = Portctl::new(["listen", "--context", "--jsonl", "--port", &port]).run();
    let records = jsonl_records(&run);
    assert!(records.iter().all(|r| r.owners.iter().all(|o| o.context.is_some())), "{records:?}");
}

// ---------------------------------------------------------------------------
// conns

/// A listener with, on its port: an established connection whose client has
/// SO_KEEPALIVE (a keepalive timer); a connection the client closed (the
/// server end in CLOSE_WAIT, still ours; the client end orphaned in
/// FIN_WAIT2, inode 0); one both ends closed, the client first (TIME_WAIT
/// on the client end); and a UDP socket bound to the port with another
/// connected to it.
struct ConnsFixture {
    listener: TcpListener,
    client: TcpStream,
    server: TcpStream,
    close_wait: TcpStream,
    time_wait_port: u16,
    udp_bound: UdpSocket,
    udp_connected: UdpSocket,
}

impl ConnsFixture {
    fn new() -> ConnsFixture {
        let listener = tcp_listener(sa("127.0.0.1:0"), None, 16);
        let port = port_of(&listener);
        let _lock = spawn_lock();
        let (client, server) = connect(&listener);
        set_int_opt(client.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        let (gone, close_wait) = connect(&listener);
        drop(gone);
        let (tw_client, tw_server) = connect(&listener);
        let time_wait_port = tw_client.local_addr().unwrap().port();
        drop(tw_client); // closes first: TIME_WAIT on this end
        drop(tw_server);
        let udp_bound = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let udp_connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_connected.connect(("127.0.0.1", port)).unwrap();
        ConnsFixture { listener, client, server, close_wait, time_wait_port, udp_bound, udp_connected }
    }

    fn port(&self) -> u16 {
        port_of(&self.listener)
    }
}

#[test]
fn conns_json_state_all_and_extended() {
    let f = ConnsFixture::new();
    let port = f.port().to_string();
    let args = ["conns", "--state", "all", "--port", &port, "--json"];
    let mut records = Vec::new();
    wait_until("CLOSE_WAIT and TIME_WAIT on the fixture's port", || {
        records = json_records(&Portctl::new(args).run());
        let states: BTreeSet<State> = records.iter().map(|r| r.state).collect();
        states.contains(&State::CloseWait) && states.contains(&State::TimeWait)
    });
    let p = f.port();
    let local = |s: &TcpStream| s.local_addr().unwrap().port();
    let listen = find(&records, "listener", |r| r.state == State::Listen);
    assert_owned_by_me(listen, f.listener.as_raw_fd());
    let client = find(&records, "keepalive client", |r| r.local.ip().port == local(&f.client) && r.proto == Proto::Tcp);
    assert_eq!(
        (client.state, client.remote.as_ref().map(|e| e.ip().port)),
        (State::Established, Some(p)),
        "{client:?}"
    );
    assert_owned_by_me(client, f.client.as_raw_fd());
    let timer = client.timer.as_ref().expect("SO_KEEPALIVE runs a keepalive timer");
    assert_eq!(timer.kind, TimerKind::Keepalive, "{client:?}");
    let server = find(&records, "server end", |r| r.remote.as_ref().is_some_and(|e| e.ip().port == local(&f.client)));
    assert_owned_by_me(server, f.server.as_raw_fd());
    let cw = find(&records, "CLOSE_WAIT", |r| r.state == State::CloseWait);
    assert_owned_by_me(cw, f.close_wait.as_raw_fd());
    let tw = find(&records, "TIME_WAIT", |r| r.state == State::TimeWait && r.local.ip().port == f.time_wait_port);
    assert_eq!(tw.remote.as_ref().map(|e| e.ip().port), Some(p), "{tw:?}");
    let udp = find(&records, "bound UDP", |r| r.proto == Proto::Udp && r.state == State::Unconn);
    assert_owned_by_me(udp, f.udp_bound.as_raw_fd());
    let udp = find(&records, "connected UDP", |r| r.proto == Proto::Udp && r.state == State::Established);
    assert_owned_by_me(udp, f.udp_connected.as_raw_fd());
    assert!(
        records.iter().all(|r| r.tcp_info.is_none() && r.skmem.is_none()),
        "tcp_info and skmem only with --extended"
    );

    // --extended: tcp_info on the TCP sockets that have one.
    let run = Portctl::new(args).arg("--extended").run();
    let ext = json_records(&run);
    for r in on_port(&ext, p) {
        match (r.proto, r.state) {
            (Proto::Udp, _) => assert!(r.tcp_info.is_none() && r.skmem.is_some(), "tcp_info is TCP's: {r:?}"),
            // TIME_WAIT and orphaned FIN_WAIT2 are the kernel's mini
            // sockets (inode 0), which have no tcp_info.
            (Proto::Tcp, _) if r.inode == 0 => assert!(r.tcp_info.is_none(), "{r:?}"),
            (Proto::Tcp, _) => {
                let info = r.tcp_info.as_ref().unwrap_or_else(|| panic!("--extended: no tcp_info: {r:?}"));
                assert!(info.snd_cwnd > 0, "{r:?}");
                assert!(info.congestion.as_deref().is_some_and(|c| !c.is_empty()), "{r:?}");
                assert!(info.snd_mss > 0 || r.state == State::Listen, "a connection has an mss: {r:?}");
                assert!(r.skmem.is_some(), "--extended: socket memory: {r:?}");
                assert!(info.bytes_sent.is_some() && info.bytes_received.is_some(), "Linux 4.19+: {r:?}");
            }
            (other, _) => panic!("only TCP and UDP without kind flags, got {other:?}: {r:?}"),
        }
    }
    let est = find(&ext, "keepalive client", |r| r.local.ip().port == local(&f.client) && r.proto == Proto::Tcp);
    assert!(est.tcp_info.as_ref().is_some_and(|i| i.rtt_us > 0), "an exchanged handshake has an RTT: {est:?}");

    // The default (established) and --jsonl: the same contract.
    let run = Portctl::new(["conns", "--port", &port, "--jsonl"]).run();
    let est = jsonl_records(&run);
    assert!(est.iter().all(|r| r.state == State::Established), "{est:?}");
    assert!(est.len() >= 3, "two TCP ends and a connected UDP socket: {est:?}");
}

// ---------------------------------------------------------------------------
// who

#[test]
fn who_json_verdict_binds_holders_and_sockets() {
    // A listener held by this process and by a child that inherited it; a
    // dual-stack UDP socket on the same port; a TIME_WAIT on it (server side).
    let l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = port_of(&l);
    let child = sleeper_holding(&[l.as_raw_fd()]);
    let udp = udp_socket(SocketAddr::new("::".parse().unwrap(), port), Some(false));
    {
        let _lock = spawn_lock();
        let (c, s) = connect(&l);
        drop(s); // the server closes first: TIME_WAIT on the listener's port
        drop(c);
    }
    let spec = port.to_string();
    let mut r: Option<Who> = None;
    // Owners from /proc: the options of the sockets are unknown, and the
    // verdicts that depend on them conditional.
    wait_until("a TIME_WAIT on the port", || {
        let run = Portctl::new(["who", &spec, "--json", "--owners-from", "proc"]).run();
        run.expect_code(0);
        let who: Who = object(&run, Output::Who);
        let found = who.sockets.iter().any(|s| s.state == State::TimeWait);
        r = Some(who);
        found
    });
    let r = r.unwrap();
    r.sockets.iter().for_each(check_record);
    assert_eq!((r.spec.port, r.spec.protos.as_slice(), r.spec.addr), (Some(port), &[Proto::Tcp, Proto::Udp][..], None));
    assert!(r.spec.unix.is_none(), "no unix part for a port");
    assert!(r.verdict.in_use);
    assert_eq!(r.verdict.summary.len(), 2, "one line per protocol: {:?}", r.verdict.summary);

    // binds: (protocol, candidate) pairs; v6only only for `::`.
    let l_inode = socket_inode(l.as_raw_fd());
    let candidates: Vec<IpAddr> = ["0.0.0.0", "::", "127.0.0.1"].iter().map(|a| a.parse().unwrap()).collect();
    let got: Vec<(Proto, IpAddr)> = r.verdict.binds.iter().map(|b| (b.ip().proto, b.ip().addr)).collect();
    let want: Vec<(Proto, IpAddr)> =
        [Proto::Tcp, Proto::Udp].iter().flat_map(|&p| candidates.iter().map(move |&a| (p, a))).collect();
    assert_eq!(got, want, "{:#?}", r.verdict.binds);
    for b in r.verdict.binds.iter().map(AnyBind::ip) {
        assert_eq!(b.port, port);
        assert_eq!(b.v6only.is_some(), b.addr.is_unspecified() && b.addr.is_ipv6(), "{b:?}");
        assert_eq!(b.plain, Plain::Fails, "{b:?}");
        match b.proto {
            Proto::Tcp => {
                assert_eq!(b.reuseaddr, Reuse::Fails, "a listener: {b:?}");
                assert!(b.blocked_by.contains(&l_inode), "{b:?}");
            }
            Proto::Udp => {
                assert_eq!(b.reuseaddr, Reuse::OnlyIfTheirsToo, "{b:?}");
                assert_eq!(b.blocked_by, [socket_inode(udp.as_raw_fd())], "{b:?}");
            }
            other => panic!("a port bind for {other:?}: {b:?}"),
        }
        assert_eq!((b.reuseport, b.reuseport_uid), (Reuseport::OnlyIfTheirsToo, Some(common::euid())), "{b:?}");
        assert!(!b.reason.is_empty());
    }
    assert!(r.sockets.iter().all(|s| s.reuseaddr.is_none() && s.reuseport.is_none()), "{:#?}", r.sockets);

    // holders: the child (parent: us, inherited) and us, every detail there.
    let pids: Vec<u32> = r.holders.iter().map(|h| h.pid).collect();
    let mut want = vec![child.pid(), std::process::id()];
    want.sort();
    assert_eq!(pids, want, "{:#?}", r.holders);
    for h in &r.holders {
        assert!(h.started.as_deref().is_some_and(is_rfc3339_utc), "{h:?}");
        assert!(h.uptime_s.is_some() && h.cwd.is_some() && h.ppid.is_some() && h.parent_name.is_some(), "{h:?}");
        assert!(h.context.as_ref().is_some_and(|c| c.cgroup.starts_with('/')), "{h:?}");
        assert!(h.sockets.contains(&l_inode), "{h:?}");
    }
    let kid = r.holders.iter().find(|h| h.pid == child.pid()).unwrap();
    assert_eq!((kid.name.as_str(), kid.ppid), ("sleep", Some(std::process::id())), "{kid:?}");
    assert!(kid.notes.iter().any(|n| n.contains("inherited from its parent")), "{kid:?}");
    let me = r.holders.iter().find(|h| h.pid == std::process::id()).unwrap();
    assert!(me.sockets.contains(&socket_inode(udp.as_raw_fd())), "{me:?}");
    assert!(!r.hints.is_empty());
    // A TCP listener on the port: its backlog, against the namespace's somaxconn.
    let lb = r.listen_backlog.as_ref().expect("a TCP listener: listen_backlog");
    let somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert_eq!(lb.somaxconn, Some(somaxconn));
    assert!(lb.full.is_empty() && lb.clamped.is_empty() && lb.notes.is_empty(), "{lb:?}");
    assert!(lb.listen_overflows.is_some() && lb.sampled_ms.is_none(), "{lb:?}");

    // sockets: every state on the port; each record's owners.
    let listen = find(&r.sockets, "listener", |s| s.state == State::Listen);
    let owners: BTreeSet<u32> = listen.owners.iter().map(|o| o.pid).collect();
    assert_eq!(owners, BTreeSet::from([child.pid(), std::process::id()]), "{listen:?}");
    find(&r.sockets, "UDP", |s| s.state == State::Unconn && s.v6only == Some(false));
    assert!(r.sockets.iter().all(|s| s.netns.is_none()), "no netns on this namespace's sockets");
    assert!(r.other_netns.iter().all(|s| s.netns.is_some()), "other_netns records carry netns");

    // An address in the spec: spec.addr, a fourth candidate, one protocol.
    let run = Portctl::new(["who", &format!("[::1]:{port}/udp"), "--json", "--owners-from", "proc"]).run();
    run.expect_code(0);
    let r: Who = object(&run, Output::Who);
    assert_eq!((r.spec.addr, r.spec.protos.as_slice()), (Some("::1".parse().unwrap()), &[Proto::Udp][..]));
    let addrs: Vec<String> = r.verdict.binds.iter().map(|b| b.ip().addr.to_string()).collect();
    assert_eq!(addrs, ["0.0.0.0", "::", "127.0.0.1", "::1"]);
    assert!(r.listen_backlog.is_none(), "UDP only: no listen_backlog");
    drop(child);
}

#[test]
fn who_json_names_the_service() {
    // Port 22 is `ssh` in /etc/services and in portctl's own table; whatever
    // holds it here, the spec names it.
    let run = Portctl::new(["who", "ssh/tcp", "--json"]).run();
    let r: Who = object(&run, Output::Who);
    assert_eq!((r.spec.port, r.spec.service.as_deref()), (Some(22), Some("ssh")), "{}", run.dump());
    assert_eq!(run.code(), if r.verdict.in_use { 0 } else { 1 });
}

/// `who` with several specs: one object per spec, in order, as an array.
#[test]
fn who_json_several_specs_is_an_array() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 8);
    let free = unused_port();
    let run = Portctl::new(["who", "--json", &port_of(&l).to_string(), &format!("{free}/udp")]).run();
    run.expect_code(1);
    let r: Vec<Who> = array(&run, Output::Who);
    assert_eq!(
        r.iter().map(|w| (w.spec.port, w.verdict.in_use)).collect::<Vec<_>>(),
        [(Some(port_of(&l)), true), (Some(free), false)]
    );
    r.iter().flat_map(|w| &w.sockets).for_each(check_record);
}

/// `who --pid`: the holder, its ancestry down to it, its sockets.
#[test]
fn who_pid_json() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 8);
    let child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    let run = Portctl::new(["who", "--pid", &child.pid().to_string(), "--json"]).run();
    run.expect_code(0);
    let r: WhoPid = object(&run, Output::WhoPid);
    assert_eq!(r.holder.pid, child.pid());
    assert_eq!(r.ancestry.last().map(|a| (a.pid, a.name.as_str())), Some((child.pid(), "sleep")));
    assert!(r.ancestry.iter().any(|a| a.pid == std::process::id()), "{:?}", r.ancestry);
    assert_eq!(r.sockets.len(), 1);
    r.sockets.iter().for_each(check_record);
    assert_eq!(r.holder.sockets, [r.sockets[0].inode]);
}

/// `--by-process --json` on listen and conns: holders with ancestry and
/// their records; unowned records apart.
#[test]
fn by_process_json() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 8);
    let port = port_of(&l).to_string();
    let (c, s) = {
        let _lock = spawn_lock();
        connect(&l)
    };
    let run = Portctl::new(["listen", "--by-process", "--json", "--port", &port]).run();
    run.expect_code(0);
    let g: ByProcess = object(&run, Output::ByProcess);
    assert_eq!(g.processes.len(), 1);
    assert_eq!(g.processes[0].pid, std::process::id());
    assert_eq!(g.processes[0].sockets.len(), 1);
    assert_eq!(g.processes[0].ancestry.last().map(|a| a.pid), Some(std::process::id()));
    // conns: a TIME_WAIT is unowned.
    drop(s);
    drop(c);
    let mut g: Option<ByProcess> = None;
    wait_until("a TIME_WAIT on the port", || {
        let run = Portctl::new(["conns", "--by-process", "--json", "--state", "all", "-p", &port]).run();
        run.expect_code(0);
        let got: ByProcess = object(&run, Output::ByProcess);
        let tw = got.unowned.iter().any(|r| r.state == State::TimeWait);
        g = Some(got);
        tw
    });
    let g = g.unwrap();
    g.processes.iter().flat_map(|p| &p.sockets).chain(&g.unowned).for_each(check_record);
    assert!(g.unowned.iter().all(|r| r.owners.is_empty()));
}

/// `close --json`, dry run and real, in a namespace of its own.
#[test]
#[ignore = "needs root"]
fn close_json() {
    require_root();
    let ns = Netns::new();
    let (l, c, s) = in_netns(&ns, || {
        let l = tcp_listener(sa("127.0.0.1:7000"), None, 8);
        let c = TcpStream::connect("127.0.0.1:7000").unwrap();
        let s = l.accept().unwrap().0;
        (l, c, s)
    });
    let args = ["close", "--json", "--netns", ns.name(), "dport", "=", ":7000"];
    let run = Portctl::new(args).arg("--dry-run").run();
    run.expect_code(0);
    let r: Close = object(&run, Output::Close);
    assert!(r.dry_run);
    assert_eq!(r.sockets.len(), 1);
    assert_eq!((r.sockets[0].result, r.sockets[0].reason.as_deref()), (CloseResult::WouldClose, None));
    check_record(&r.sockets[0].socket);
    assert_eq!(r.sockets[0].socket.owners[0].pid, std::process::id());
    let run = Portctl::new(args).arg("--yes").run();
    run.expect_code(0);
    let r: Close = object(&run, Output::Close);
    assert_eq!((r.dry_run, r.sockets[0].result), (false, CloseResult::Closed));
    assert!(r.message.starts_with("closed 1 of 1 socket"), "{}", r.message);
    drop((l, c, s));
}

// ---------------------------------------------------------------------------
// kill

#[test]
fn kill_json_dry_run_lists_would_signal_and_refused() {
    // The child holds a TCP listener on the port; this process (portctl's
    // parent: refused without --force) a UDP socket on it.
    let port = unused_port();
    let l = tcp_listener(SocketAddr::new("127.0.0.1".parse().unwrap(), port), None, 16);
    let mut child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    let udp = udp_socket(SocketAddr::new("127.0.0.1".parse().unwrap(), port), None);
    let run = Portctl::new(["kill", &port.to_string(), "--dry-run", "--json"]).run();
    run.expect_code(0);
    let k: Kill = object(&run, Output::Kill);
    assert_eq!(
        (k.port, k.protos.as_slice(), k.signal.as_str(), k.dry_run),
        (Some(port), &[Proto::Tcp, Proto::Udp][..], "SIGTERM", true)
    );
    assert_eq!((k.freed, k.waited_ms, k.time_wait_left), (None, None, None), "null without --wait");
    let target = |pid: u32| k.targets.iter().find(|t| t.pid == pid).unwrap_or_else(|| panic!("{pid}: {k:?}"));
    let kid = target(child.pid());
    assert_eq!((kid.result, kid.reason.as_deref(), kid.name.as_str()), (KillResult::WouldSignal, None, "sleep"));
    assert_eq!(kid.sockets.len(), 1, "{kid:?}");
    let me = target(std::process::id());
    assert_eq!(me.result, KillResult::Refused, "{me:?}");
    assert!(me.reason.as_deref().is_some_and(|r| r.contains("--force")), "{me:?}");
    assert_eq!(me.sockets, [socket_inode(udp.as_raw_fd())]);
    assert_eq!(k.targets.len(), 2, "{k:?}");
    assert!(!k.message.is_empty());
    assert!(child.child_mut().try_wait().unwrap().is_none(), "a dry run signals nothing");
}

/// `kill` with several specs: one object per spec, as an array.
#[test]
fn kill_json_several_specs_is_an_array() {
    let port = unused_port();
    let l = tcp_listener(SocketAddr::new("127.0.0.1".parse().unwrap(), port), None, 16);
    let mut child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    let free = unused_port();
    let run = Portctl::new(["kill", "--dry-run", "--json", &port.to_string(), &free.to_string()]).run();
    run.expect_code(0);
    let k: Vec<Kill> = array(&run, Output::Kill);
    assert_eq!(k.iter().map(|x| x.port).collect::<Vec<_>>(), [Some(port), Some(free)]);
    assert_eq!(k[0].targets[0].result, KillResult::WouldSignal);
    assert!(k[1].targets.is_empty() && k[1].message.contains("nothing to kill"), "{k:?}");
    assert!(child.child_mut().try_wait().unwrap().is_none());
}

#[test]
fn kill_json_signals_the_holder_and_waits() {
    let port = unused_port();
    let l = tcp_listener(SocketAddr::new("127.0.0.1".parse().unwrap(), port), None, 16);
    let inode = socket_inode(l.as_raw_fd());
    let child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    let pid = child.pid();
    let run = Portctl::new(["kill", &format!("{port}/tcp"), "--yes", "--wait=10s", "--json"]).run();
    run.expect_code(0);
    let k: Kill = object(&run, Output::Kill);
    assert_eq!((k.port, k.protos.as_slice(), k.dry_run), (Some(port), &[Proto::Tcp][..], false));
    assert_eq!(k.targets.len(), 1, "{k:?}");
    let t = &k.targets[0];
    assert_eq!(
        (t.pid, t.result, t.reason.as_deref(), t.sockets.as_slice()),
        (pid, KillResult::Signalled, None, &[inode][..])
    );
    assert_eq!((k.freed, k.time_wait_left), (Some(true), Some(0)), "{k:?}");
    assert!(k.waited_ms.is_some_and(|ms| ms < 10_000), "{k:?}");
    assert_eq!(child.wait().signal(), Some(libc::SIGTERM));
}

// ---------------------------------------------------------------------------
// stats

#[test]
fn stats_json_sections_are_filled() {
    // On the listener's port: an established connection (an ephemeral port
    // towards it), a CLOSE_WAIT of ours, TIME_WAIT on both sides.
    let l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = port_of(&l);
    let held = {
        let _lock = spawn_lock();
        let est = connect(&l);
        let (gone, close_wait) = connect(&l);
        drop(gone);
        let (c, s) = connect(&l);
        drop(c); // client closes first: TIME_WAIT "out", remote = the port
        drop(s);
        let (c, s) = connect(&l);
        drop(s); // server closes first: TIME_WAIT "in", local = the port
        drop(c);
        (est, close_wait)
    };
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let mut st: Option<Stats> = None;
    wait_until("both TIME_WAIT sides and the CLOSE_WAIT", || {
        let run = Portctl::new(["stats", "--json", "--top", "100000"]).run();
        run.expect_code(0);
        let s: Stats = object(&run, Output::Stats);
        let sides: BTreeSet<&str> = s
            .time_wait_peers
            .iter()
            .filter(|t| t.peer == loopback && t.port == port)
            .map(|t| if t.side == Side::In { "in" } else { "out" })
            .collect();
        let cw = s.close_wait.as_ref().is_some_and(|c| c.processes.iter().any(|p| p.pid == std::process::id()));
        let done = sides.len() == 2 && cw;
        st = Some(s);
        done
    });
    let st = st.unwrap();
    assert_eq!(st.schema_version, 3, "docs/json.md is schema version 3");
    // The kernel's counters of this namespace, every group there.
    let k = st.kernel.as_ref().expect("the counters are readable");
    for (g, name) in [("TcpExt", "ListenOverflows"), ("Tcp", "RetransSegs"), ("Udp", "InErrors")] {
        assert!(k.counters.get(g, name).is_some(), "{g} {name}");
    }
    assert!(k.sample.is_none(), "no sample without --interval");
    assert!(k.problems.iter().all(|p| p.value > 0 && p.delta.is_none()), "{:?}", k.problems);
    assert!(k.sockstat.sockets_used.is_some() && k.sockstat.tcp_inuse.is_some());
    // Unix sockets: every (type, state) pair, zeros included; this test
    // process holds none of its own, but the pairs are all there.
    let u = st.unix.as_ref().expect("unix sockets are counted");
    assert_eq!(u.states.len(), 12, "{u:?}");
    assert_eq!(u.total, u.states.iter().map(|c| c.count).sum::<u64>(), "{u:?}");
    let protos: Vec<Proto> = st.protocols.iter().map(|p| p.proto).collect();
    assert_eq!(protos, [Proto::Tcp, Proto::Udp]);
    assert_eq!(st.total, st.protocols.iter().map(|p| p.total).sum::<u64>());
    assert!(st.protocols.iter().all(|p| p.total == p.ipv4 + p.ipv6));
    // every state, zeros included: TCP's eleven, UDP's two
    assert_eq!(st.states.iter().filter(|s| s.proto == Proto::Tcp).count(), 11);
    let udp: Vec<State> = st.states.iter().filter(|s| s.proto == Proto::Udp).map(|s| s.state).collect();
    assert_eq!(udp, [State::Established, State::Unconn]);
    assert!(st.states.iter().all(|s| s.total == s.ipv4 + s.ipv6));
    let e = st.ephemeral.as_ref().expect("the ephemeral sysctls are readable");
    assert!(e.range.lo <= e.range.hi && e.usable > 0 && e.warn_percent > 0, "{e:?}");
    let dest = Endpoint { addr: loopback, port };
    let busy = e.busiest.iter().find(|d| d.remote == dest).unwrap_or_else(|| panic!("{dest:?} in {e:?}"));
    let share = busy.ports as f64 * 100.0 / e.usable as f64;
    assert!(busy.proto == Proto::Tcp && busy.ports >= 1, "{busy:?}");
    assert!((0.0..=100.0).contains(&busy.percent) && (busy.percent - share).abs() <= 0.1, "{busy:?} of {e:?}");
    assert!(e.destinations >= 1 && e.over_threshold.iter().all(|d| d.percent > e.warn_percent as f64));
    assert!(st.time_wait_top.iter().any(|t| t.remote == dest && t.count >= 1), "{:?}", st.time_wait_top);
    let cw = st.close_wait.as_ref().unwrap();
    let me = cw.processes.iter().find(|p| p.pid == std::process::id()).unwrap();
    assert!(me.count >= 1 && cw.total >= me.count, "{cw:?}");

    let run = Portctl::new(["stats", "--json", "--no-owners"]).run();
    run.expect_code(0);
    let st: Stats = object(&run, Output::Stats);
    assert!(st.close_wait.is_none(), "close_wait is null with --no-owners");
    drop(held);
}

// ---------------------------------------------------------------------------
// watch --events

#[test]
fn watch_events_report_a_listener_added_and_removed() {
    let old = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let (old_inode, port_of_old) = (socket_inode(old.as_raw_fd()), port_of(&old));
    let new_port = unused_port();
    let (p_old, p_new) = (port_of(&old).to_string(), new_port.to_string());
    // --count bounds the run (60 s) even if the test fails.
    let (_watch, rx) =
        watch(&["--events", "--interval", "100ms", "--count", "600", "listen", "--port", &p_old, "--port", &p_new]);
    // `old`, opened before watch started, is in the baseline once a later
    // refresh has reported a listener opened after it started.
    let (new, added) = added_after_baseline(&rx, || {
        let new = tcp_listener(SocketAddr::new("127.0.0.1".parse().unwrap(), new_port), None, 16);
        let inode = socket_inode(new.as_raw_fd());
        (new, inode)
    });
    assert_eq!((added.socket.state, added.socket.local.ip().port, added.from), (State::Listen, new_port, None));
    assert_owned_by_me(&added.socket, new.as_raw_fd());
    drop(old);
    let removed =
        next_event(&rx, Duration::from_secs(20), |e| e.event == EventKind::Removed && e.socket.inode == old_inode)
            .expect("a `removed` event for the closed listener");
    assert_eq!(
        (removed.socket.state, removed.socket.local.ip().port, removed.from),
        (State::Listen, port_of_old, None)
    );
    // The record is the one last seen, which may have been read as the
    // socket closed: in the kernel's table, gone before the /proc walk (no
    // owners then), so its owners are not checked.
    drop(new);
}

#[test]
fn watch_events_report_a_state_change_with_from() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = port_of(&l).to_string();
    let (client, server) = {
        let _lock = spawn_lock();
        connect(&l)
    };
    let server_inode = socket_inode(server.as_raw_fd());
    let (_watch, rx) =
        watch(&["--events", "--interval", "100ms", "--count", "600", "conns", "--state", "all", "--port", &port]);
    // `client` and `server` are in the baseline once a later refresh has
    // reported a connection made after watch started.
    let (extra, _) = added_after_baseline(&rx, || {
        let _lock = spawn_lock();
        let pair = connect(&l);
        let inode = socket_inode(pair.0.as_raw_fd());
        (pair, inode)
    });
    // The client shuts its side: the server end goes ESTABLISHED -> CLOSE_WAIT.
    client.shutdown(Shutdown::Write).unwrap();
    let change =
        next_event(&rx, Duration::from_secs(20), |e| e.event == EventKind::State && e.socket.inode == server_inode)
            .expect("a `state` event for the server end");
    assert_eq!((change.from, change.socket.state), (Some(State::Established), State::CloseWait), "{change:?}");
    assert_owned_by_me(&change.socket, server.as_raw_fd());
    drop((client, server, extra));
}

// ---------------------------------------------------------------------------
// Root: network namespaces (the `netns` object) and container context

/// A namespace with 198.51.100.7 on its `lo` (an `address` exposure with an
/// interface), a listener on port 80 there (a service name), a connection to
/// it, and a dual-stack UDP socket on 53; all held by this process.
struct NsFixture {
    listener: TcpListener,
    conn: (TcpStream, TcpStream),
    udp: UdpSocket,
    ns: Netns,
}

impl NsFixture {
    fn new() -> NsFixture {
        let ns = Netns::new();
        ip_in(&ns, &["addr", "add", "198.51.100.7/32", "dev", "lo"]);
        let (listener, conn, udp) = in_netns(&ns, || {
            let l = tcp_listener(sa("198.51.100.7:80"), None, 16);
            let _lock = spawn_lock();
            let conn = connect(&l);
            let udp = udp_socket(sa("[::]:53"), Some(false));
            (l, conn, udp)
        });
        NsFixture { listener, conn, udp, ns }
    }

    fn netns(&self) -> NetnsRef {
        NetnsRef { inode: netns_inode(&self.ns), name: Some(self.ns.name().to_string()) }
    }
}

#[test]
#[ignore = "needs root"]
fn netns_records_carry_the_namespace() {
    require_root();
    let f = NsFixture::new();
    let name = f.ns.name();
    let run = Portctl::new(["listen", "--json", "--netns", name]).run();
    let records = json_records(&run);
    assert_eq!(records.len(), 2, "the listener and the UDP socket: {records:#?}");
    assert!(records.iter().all(|r| r.netns.as_ref() == Some(&f.netns())), "{records:#?}");
    let l = find(&records, "listener on 80", |r| r.local.ip().port == 80);
    assert_eq!(
        (l.exposure, l.interface.as_deref(), l.service.as_deref()),
        (Exposure::Address, Some("lo"), Some("http"))
    );
    assert_owned_by_me(l, f.listener.as_raw_fd());
    let u = find(&records, "UDP on 53", |r| r.local.ip().port == 53);
    assert_eq!((u.v6only, u.exposure, u.service.as_deref()), (Some(false), Exposure::Wildcard, Some("domain")));
    assert_owned_by_me(u, f.udp.as_raw_fd());

    // --all-netns: every record has netns; this namespace's are named.
    let run = Portctl::new(["listen", "--all-netns", "--jsonl", "--port", "80"]).run();
    let records = jsonl_records(&run);
    assert!(records.iter().all(|r| r.netns.is_some()), "{records:#?}");
    let ours = find(&records, "our listener", |r| r.netns.as_ref() == Some(&f.netns()));
    assert_owned_by_me(ours, f.listener.as_raw_fd());

    // conns --netns, with tcp_info.
    let run = Portctl::new(["conns", "--netns", name, "--json", "--extended"]).run();
    let records = json_records(&run);
    assert_eq!(records.len(), 2, "both ends of the connection: {records:#?}");
    for r in &records {
        assert_eq!(r.netns.as_ref(), Some(&f.netns()), "{r:?}");
        assert!(r.tcp_info.is_some() && r.service.as_deref() == Some("http"), "{r:?}");
    }
    let server = find(&records, "server end", |r| r.local.ip().port == 80);
    assert_owned_by_me(server, f.conn.1.as_raw_fd());
    let client = find(&records, "client end", |r| r.remote.as_ref().is_some_and(|e| e.ip().port == 80));
    assert_owned_by_me(client, f.conn.0.as_raw_fd());
}

#[test]
#[ignore = "needs root"]
fn who_json_other_netns_carries_the_namespace() {
    require_root();
    let f = NsFixture::new();
    let other = Netns::new();
    let other_l = in_netns(&other, || tcp_listener(sa("0.0.0.0:80"), None, 16));
    let run = Portctl::new(["who", "http/tcp", "--json", "--netns", f.ns.name()]).run();
    run.expect_code(0);
    let r: Who = object(&run, Output::Who);
    assert_eq!((r.spec.port, r.spec.service.as_deref()), (Some(80), Some("http")));
    let here = find(&r.sockets, "listener asked about", |s| s.state == State::Listen);
    assert_owned_by_me(here, f.listener.as_raw_fd());
    assert!(r.sockets.iter().all(|s| s.netns.as_ref().is_none_or(|n| *n == f.netns())), "{:#?}", r.sockets);
    r.other_netns.iter().for_each(check_record);
    let want = NetnsRef { inode: netns_inode(&other), name: Some(other.name().to_string()) };
    let there = find(&r.other_netns, "the other namespace's listener", |s| s.netns.as_ref() == Some(&want));
    assert_owned_by_me(there, other_l.as_raw_fd());
    assert!(r.other_netns.iter().all(|s| s.netns.is_some()), "{:#?}", r.other_netns);
    assert!(r.verdict.in_use);
    drop(other_l);
}

#[test]
#[ignore = "needs root"]
fn stats_json_reserved_ports_and_over_threshold() {
    require_root();
    let ns = Netns::new();
    // 10 ports, 1 reserved: 9 usable; 8 connections to one destination use 88.9%.
    sysctl_in(&ns, "net.ipv4.ip_local_port_range", "40000 40009");
    sysctl_in(&ns, "net.ipv4.ip_local_reserved_ports", "40009");
    let held = in_netns(&ns, || {
        let l = tcp_listener(sa("127.0.0.1:9000"), None, 16);
        let _lock = spawn_lock();
        let conns: Vec<_> = (0..8).map(|_| connect(&l)).collect();
        (l, conns)
    });
    let run = Portctl::new(["stats", "--json", "--netns", ns.name()]).run();
    run.expect_code(0);
    let st: Stats = object(&run, Output::Stats);
    let e = st.ephemeral.as_ref().unwrap();
    assert_eq!(
        (e.range, e.reserved.as_slice(), e.usable),
        (Span { lo: 40000, hi: 40009 }, &[Span { lo: 40009, hi: 40009 }][..], 9)
    );
    assert_eq!(e.over_threshold.len(), 1, "{e:?}");
    let d = &e.over_threshold[0];
    assert_eq!(
        (d.proto, d.remote, d.ports, d.percent),
        (Proto::Tcp, Endpoint { addr: "127.0.0.1".parse().unwrap(), port: 9000 }, 8, 88.9)
    );
    assert_eq!(st.total, 17, "a listener and 8 connections, both ends");
    drop(held);
}

/// A cgroup v2 tree of the test's own, whose path portctl reads as a
/// Kubernetes container (containerd, with a pod uid) inside a systemd
/// service; removed on drop (declare it before the processes moved in, so
/// that they are killed and reaped first).
struct CgroupGuard {
    cgroup: common::Cgroup,
    unit: String,
    id: String,
    pod_uid: String,
}

impl CgroupGuard {
    fn new() -> CgroupGuard {
        let top = unique_name();
        let unit = format!("{top}.service");
        let pod_uid = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b".to_string();
        let id = format!("{:064x}", u128::from(std::process::id()) << 64 | 0xc0ffee);
        let comps = [
            top,
            format!("kubepods-pod{}.slice", pod_uid.replace('-', "_")),
            unit.clone(),
            format!("cri-containerd-{id}.scope"),
        ];
        CgroupGuard { cgroup: common::Cgroup::new(&comps), unit, id, pod_uid }
    }

    fn add(&self, pid: u32) {
        self.cgroup.add(pid);
    }

    fn check(&self, ctx: &Context) {
        assert_eq!(
            (ctx.cgroup.as_str(), ctx.unit.as_deref()),
            (self.cgroup.path.as_str(), Some(self.unit.as_str())),
            "{ctx:?}"
        );
        let c = ctx.container.as_ref().unwrap_or_else(|| panic!("a container: {ctx:?}"));
        assert_eq!(
            (c.runtime, c.id.as_str(), c.pod_uid.as_deref()),
            (Runtime::Containerd, self.id.as_str(), Some(self.pod_uid.as_str()))
        );
        assert_eq!(c.name, None, "CRI names live in the daemon, not read");
    }
}

#[test]
#[ignore = "needs root"]
fn context_names_the_container_in_listen_and_who() {
    require_root();
    let cgroup = CgroupGuard::new();
    let l = tcp_listener(sa("127.0.0.1:0"), None, 16);
    let port = port_of(&l);
    let inode = socket_inode(l.as_raw_fd());
    let child = sleeper_holding(&[l.as_raw_fd()]);
    drop(l);
    cgroup.add(child.pid());

    let run = Portctl::new(["listen", "--context", "--json", "--port", &port.to_string()]).run();
    let records = json_records(&run);
    let r = find(&records, "the child's listener", |r| r.inode == inode);
    assert_eq!(r.owners.iter().map(|o| o.pid).collect::<Vec<_>>(), [child.pid()], "{r:?}");
    cgroup.check(r.owners[0].context.as_ref().and_then(Option::as_ref).expect("an owner context"));

    let run = Portctl::new(["who", &format!("{port}/tcp"), "--json"]).run();
    run.expect_code(0);
    let who: Who = object(&run, Output::Who);
    assert_eq!(who.holders.len(), 1, "{:?}", who.holders);
    cgroup.check(who.holders[0].context.as_ref().expect("a holder context"));
    drop(child);
}

/// Every new part of `stats --json` and `who --json` filled (version 3): a
/// listener whose queue is full and whose backlog somaxconn capped, a UDP
/// socket that dropped, an `--interval` sample.
#[test]
#[ignore = "needs root"]
fn stats_and_who_json_queues_drops_and_kernel_counters() {
    require_root();
    let ns = Netns::new();
    sysctl_in(&ns, "net.core.somaxconn", "4");
    let q = common::FullQueue::new(&ns, "127.0.0.1:8080", 64, 4, 12);
    let udp = common::DroppingUdp::new(&ns, "127.0.0.1:5300", 40);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let knocker = common::knock_until(&ns, q.addr, stop.clone(), 2000);

    let run = Portctl::new(["stats", "--json", "--interval", "300ms", "--netns", ns.name()]).run();
    run.expect_code(0);
    let st: Stats = object(&run, Output::Stats);
    let (full, clamped) = (&st.listeners.full, &st.listeners.clamped);
    assert_eq!((full.len(), clamped.len()), (1, 1), "{:?}", st.listeners);
    for l in [&full[0], &clamped[0]] {
        assert_eq!((l.local.port, l.accept_queue.queued, l.accept_queue.backlog, l.somaxconn), (8080, 5, 4, Some(4)));
        assert!(l.accept_queue.full && l.netns.is_some(), "{l:?}");
        assert_eq!(l.processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [std::process::id()]);
    }
    assert_eq!(st.udp_drops.len(), 1);
    assert_eq!(st.udp_drops[0].drops, u64::from(common::ss_drops(&ns, "-ua", udp.addr)));
    let k = st.kernel.as_ref().unwrap();
    let s = k.sample.as_ref().expect("--interval: a sample");
    assert!(s.interval_ms >= 300 && s.deltas.get("TcpExt", "ListenOverflows").is_some_and(|d| d > 0), "{s:?}");
    let p = k.problems.iter().find(|p| p.group == Group::TcpExt && p.name == "ListenOverflows").unwrap();
    assert!(p.delta.is_some_and(|d| d > 0) && p.per_second.is_some_and(|r| r > 0.0), "{p:?}");
    assert!(k.tcp_mem.is_some() && k.tcp_max_tw_buckets.is_some() && k.sockstat.tcp_memory_pressure.is_some());

    let run = Portctl::new(["who", "8080", "--json", "--netns", ns.name()]).run();
    run.expect_code(0);
    let r: Who = object(&run, Output::Who);
    let lb = r.listen_backlog.as_ref().unwrap();
    let inode = socket_inode(q.listener.as_raw_fd());
    assert_eq!((lb.full.as_slice(), lb.clamped.as_slice(), lb.somaxconn), (&[inode][..], &[inode][..], Some(4)));
    assert!(lb.overflows_rise.is_some_and(|n| n > 0) && lb.drops_rise.is_some() && lb.sampled_ms.is_some(), "{lb:?}");
    assert_eq!(lb.notes.len(), 2, "{lb:?}");
    let rec = r.sockets.iter().find(|s| s.inode == inode).unwrap();
    assert_eq!(rec.accept_queue.map(|a| (a.queued, a.backlog, a.full)), Some((5, 4, true)));
    let run = Portctl::new(["who", "5300/udp", "--json", "--netns", ns.name()]).run();
    let r: Who = object(&run, Output::Who);
    assert!(r.sockets[0].skmem.is_some_and(|m| m.drops > 0), "{:?}", r.sockets);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    knocker.join().unwrap();
    drop((q, udp));
}

// ---------------------------------------------------------------------------
// Unix, raw, ICMP and packet records; peers (schema 3)

fn unix_detail(r: &Record) -> &UnixDetail {
    match &r.detail {
        Some(Detail::Unix(u)) => u,
        other => panic!("a unix detail: {other:?} in {r:?}"),
    }
}

fn path_end(p: &Path) -> UnixEnd {
    UnixEnd { name: Some(p.to_str().unwrap().to_string()), is_abstract: false }
}

fn unnamed() -> UnixEnd {
    UnixEnd { name: None, is_abstract: false }
}

/// The peer's inode and its owners' pids.
fn peer_of(r: &Record) -> (u64, Vec<u32>) {
    let p = r.peer.as_ref().unwrap_or_else(|| panic!("a peer: {r:?}"));
    (p.inode, p.owners.iter().map(|o| o.pid).collect())
}

#[test]
fn unix_listen_and_conns_records_with_peers() {
    let dir = common::TempDir::new();
    let path = dir.path().join("app.sock");
    let dgram_path = dir.path().join("dgram.sock");
    let name = unique_name();
    let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(9));
    let c1 = unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path));
    let a1 = unix_accept(&l);
    let waiting = unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path));
    let seq = unix_socket(libc::SOCK_SEQPACKET, UnixAddr::Abstract(name.as_bytes()), Some(3));
    let dg = unix_socket(libc::SOCK_DGRAM, UnixAddr::Path(&dgram_path), None);
    let (p1, p2) = unix_pair(libc::SOCK_STREAM);
    let ino = |fd: &std::os::fd::OwnedFd| socket_inode(fd.as_raw_fd());
    let me = std::process::id();

    // listen -x: the listeners and the bound dgram socket, each with its kind.
    let records = json_records(&Portctl::new(["listen", "-x", "--json"]).run());
    assert!(records.iter().all(|r| r.proto == Proto::Unix), "only unix sockets with -x alone");
    let lr = find(&records, "the listener", |r| r.inode == ino(&l));
    assert_owned_by_me(lr, l.as_raw_fd());
    assert_eq!((lr.state, lr.recv_q, lr.send_q, &lr.local), (State::Listen, 1, 9, &End::Unix(path_end(&path))));
    let file = std::fs::metadata(&path).unwrap();
    let u = unix_detail(lr);
    assert_eq!(
        (u.kind, u.vfs),
        (UnixType::Stream, Some(Vfs { dev: file.dev(), ino: file.ino() })),
        "stat(2)'s numbers"
    );
    assert_eq!(u.pending, [ino(&waiting)], "the client waiting to be accepted");
    let sr = find(&records, "the seqpacket listener", |r| r.inode == ino(&seq));
    assert_eq!(sr.local, End::Unix(UnixEnd { name: Some(name.clone()), is_abstract: true }));
    assert_eq!((unix_detail(sr).kind, unix_detail(sr).vfs), (UnixType::Seqpacket, None));
    let dr = find(&records, "the dgram socket", |r| r.inode == ino(&dg));
    assert_eq!((dr.state, unix_detail(dr).kind), (State::Unconn, UnixType::Dgram));
    assert!(records.iter().all(|r| r.state != State::Established), "listen shows no connections");

    // conns -x: connections, each with the process at the other end.
    let records = json_records(&Portctl::new(["conns", "-x", "--json"]).run());
    let client = find(&records, "the client", |r| r.inode == ino(&c1));
    assert_eq!((client.local.unix(), client.remote.as_ref()), (&unnamed(), Some(&End::Unix(path_end(&path)))));
    assert_eq!(peer_of(client), (ino(&a1), vec![me]));
    let server = find(&records, "the accepted end", |r| r.inode == ino(&a1));
    assert_eq!((server.local.unix(), server.remote.as_ref()), (&path_end(&path), Some(&End::Unix(unnamed()))));
    assert_eq!(unix_detail(server).vfs, unix_detail(lr).vfs, "accepted connections carry their listener's file");
    assert_eq!(peer_of(server), (ino(&c1), vec![me]));
    let w = find(&records, "the waiting client", |r| r.inode == ino(&waiting));
    assert_eq!((w.state, w.remote.as_ref()), (State::Established, Some(&End::Unix(path_end(&path)))));
    assert_eq!(peer_of(w), (ino(&l), vec![me]), "a client not accepted yet: its other end is the listener");
    assert_eq!(peer_of(find(&records, "pair end 1", |r| r.inode == ino(&p1))), (ino(&p2), vec![me]));
    assert_eq!(peer_of(find(&records, "pair end 2", |r| r.inode == ino(&p2))), (ino(&p1), vec![me]));
    assert!(records.iter().all(|r| r.state != State::Listen), "established only by default");

    // --state all: listeners too; --jsonl: the same records.
    let all = jsonl_records(&Portctl::new(["conns", "-x", "--state", "all", "--jsonl"]).run());
    find(&all, "the listener", |r| r.inode == ino(&l) && r.state == State::Listen);
    find(&all, "the client", |r| r.inode == ino(&c1));
}

#[test]
fn tcp_peers_are_the_reversed_tuple() {
    let l = tcp_listener(sa("127.0.0.1:0"), None, 8);
    let port = port_of(&l);
    let (c, s) = {
        let _lock = spawn_lock();
        connect(&l)
    };
    let child = sleeper_holding(&[c.as_raw_fd()]);
    let run = Portctl::new(["conns", "--port", &port.to_string(), "--json"]).run();
    let records = json_records(&run);
    let client = find(&records, "the client", |r| r.inode == socket_inode(c.as_raw_fd()));
    let server = find(&records, "the server end", |r| r.inode == socket_inode(s.as_raw_fd()));
    assert_eq!(peer_of(client), (server.inode, vec![std::process::id()]));
    let mut holders = peer_of(server).1;
    holders.sort();
    let mut want = vec![std::process::id(), child.pid()];
    want.sort();
    assert_eq!((peer_of(server).0, holders), (client.inode, want), "both holders of the client");
    // A one-sided filter: the peers come from a dump of the other side.
    let run = Portctl::new(["conns", "--sport", &port.to_string(), "--json"]).run();
    let records = json_records(&run);
    let server = find(&records, "the server end", |r| r.inode == socket_inode(s.as_raw_fd()));
    assert_eq!(peer_of(server).0, socket_inode(c.as_raw_fd()));
    assert!(records.iter().all(|r| r.local.ip().port == port), "the client itself is not listed");

    // who on the listener: who is connected.
    let run = Portctl::new(["who", &format!("{port}/tcp"), "--json"]).run();
    run.expect_code(0);
    let who: Who = object(&run, Output::Who);
    assert_eq!(
        (who.connected.connections, who.connected.other, who.connected.pending),
        (1, 0, 0),
        "{:?}",
        who.connected
    );
    let (comm, _) = own_comm_and_cmdline();
    let g = &who.connected.peers[0];
    assert_eq!(g.count, 1);
    assert!(g.name == comm || g.name == "sleep", "{g:?}");
    drop(child);
}

#[test]
fn who_and_kill_json_for_unix_sockets() {
    let dir = common::TempDir::new();
    let path = dir.path().join("srv.sock");
    let spec = path.to_str().unwrap().to_string();
    let l = unix_socket(libc::SOCK_STREAM, UnixAddr::Path(&path), Some(4));
    let c = unix_connect(libc::SOCK_STREAM, UnixAddr::Path(&path));
    let a = unix_accept(&l);
    let file = std::fs::metadata(&path).unwrap();

    let run = Portctl::new(["who", &spec, "--json"]).run();
    run.expect_code(0);
    let r: Who = object(&run, Output::Who);
    assert_eq!((r.spec.port, r.spec.protos.as_slice(), r.spec.addr), (None, &[Proto::Unix][..], None));
    let u = r.spec.unix.as_ref().expect("spec.unix");
    assert_eq!((u.name.as_str(), u.is_abstract), (spec.as_str(), false));
    assert_eq!(u.file, Some(FileOut { exists: true, dev: Some(file.dev()), ino: Some(file.ino()) }));
    assert!(r.verdict.in_use);
    let b = r.verdict.binds[0].unix();
    assert_eq!((b.proto, b.plain, b.reuseaddr), (Proto::Unix, Plain::Fails, Plain::Fails), "{b:?}");
    assert_eq!(b.blocked_by, [socket_inode(l.as_raw_fd())]);
    let inodes: BTreeSet<u64> = r.sockets.iter().map(|s| s.inode).collect();
    assert_eq!(inodes, BTreeSet::from([socket_inode(l.as_raw_fd()), socket_inode(a.as_raw_fd())]));
    r.sockets.iter().for_each(check_record);
    assert_eq!((r.connected.connections, r.connected.peers.len()), (1, 1), "{:?}", r.connected);
    assert_eq!(r.connected.peers[0].pids, [std::process::id()]);
    assert_eq!(r.holders.iter().map(|h| h.pid).collect::<Vec<_>>(), [std::process::id()]);

    // kill --dry-run: the server (here, this process: refused as an ancestor).
    let run = Portctl::new(["kill", &spec, "--dry-run", "--json"]).run();
    let k: Kill = object(&run, Output::Kill);
    assert_eq!((k.port, k.protos.as_slice()), (None, &[Proto::Unix][..]));
    assert_eq!(k.unix, Some(path_end(&path)));
    assert_eq!(
        k.targets.iter().map(|t| (t.pid, t.result)).collect::<Vec<_>>(),
        [(std::process::id(), KillResult::Refused)]
    );

    // The server gone, its file left behind: a stale file, not in use, and
    // a bind() there fails.
    drop((l, a, c));
    let run = Portctl::new(["who", &spec, "--json"]).run();
    run.expect_code(1);
    let r: Who = object(&run, Output::Who);
    assert!(!r.verdict.in_use && r.sockets.is_empty() && r.holders.is_empty(), "{r:?}");
    assert_eq!(r.verdict.binds[0].unix().plain, Plain::Fails);
    assert!(r.verdict.summary[0].contains("stale"), "{:?}", r.verdict.summary);

    // Abstract names: spec.unix.file is null.
    let name = unique_name();
    let abs = unix_socket(libc::SOCK_DGRAM, UnixAddr::Abstract(name.as_bytes()), None);
    let run = Portctl::new(["who", &format!("@{name}"), "--json"]).run();
    run.expect_code(0);
    let r: Who = object(&run, Output::Who);
    let u = r.spec.unix.as_ref().unwrap();
    assert_eq!((u.name.as_str(), u.is_abstract, u.file.as_ref()), (name.as_str(), true, None));
    assert_eq!(r.verdict.binds[0].unix().blocked_by, [socket_inode(abs.as_raw_fd())]);
}

#[test]
#[ignore = "needs root"]
fn raw_icmp_and_packet_records() {
    require_root();
    let ns = Netns::new();
    sysctl_in(&ns, "net.ipv4.ping_group_range", "0 2147483647");
    let (raw, ping, packet) = in_netns(&ns, || {
        let raw = common::try_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP).unwrap();
        // A ping socket is in the kernel's table (and /proc/net/icmp) once bound.
        let ping = common::try_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP).unwrap();
        let any = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        // SAFETY: `any` is a valid sockaddr_in of the size given.
        let rc = unsafe {
            libc::bind(ping.as_raw_fd(), (&any as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&any) as u32)
        };
        assert_eq!(rc, 0, "bind the ping socket: {}", io::Error::last_os_error());
        let packet = common::packet_socket(libc::SOCK_RAW, 1, libc::ETH_P_ALL as u16, true);
        (raw, ping, packet)
    });
    let run = Portctl::new(["conns", "-w", "-0", "--json"]).netns(&ns).run();
    let records = json_records(&run);
    let r = find(&records, "the raw socket", |r| r.inode == socket_inode(raw.as_raw_fd()));
    assert_eq!(
        (r.proto, r.state, &r.detail),
        (Proto::Raw, State::Unconn, &Some(Detail::Raw(RawDetail { protocol: 1 })))
    );
    assert_owned_by_me(r, raw.as_raw_fd());
    let p = find(&records, "the ping socket", |r| r.inode == socket_inode(ping.as_raw_fd()));
    assert_eq!((p.proto, &p.detail), (Proto::Icmp, &Some(Detail::Raw(RawDetail { protocol: 1 }))));
    let k = find(&records, "the packet socket", |r| r.inode == socket_inode(packet.as_raw_fd()));
    assert_eq!((k.proto, &k.local), (Proto::Packet, &End::Link(LinkEnd { ifindex: 1, protocol: 3 })));
    assert_eq!(k.interface.as_deref(), Some("lo"));
    let Some(Detail::Packet(d)) = &k.detail else { panic!("{k:?}") };
    assert_eq!((d.kind, d.running, d.promiscuous), (PacketType::Raw, true, true), "{d:?}");
    assert_owned_by_me(k, packet.as_raw_fd());
    // listen -w -0 lists them too (nothing there is connected).
    let records = json_records(&Portctl::new(["listen", "-w", "-0", "--json"]).netns(&ns).run());
    assert_eq!(records.len(), 3, "{records:#?}");
}

// NAT records (version 3)

/// listen's `"kind": "nat"` records after the socket records, in `--json`
/// and `--jsonl`; who's and kill's `nat`; on Docker's layout without the
/// userland proxy (names from a fake data root) and kube-proxy's.
#[test]
#[ignore = "needs root"]
fn nat_records_in_listen_who_and_kill() {
    require_root();
    let ns = Netns::new();
    common::nat_fixture(&ns, "docker-iptables.sh", &[("USERLAND_PROXY", "false")]);
    common::nat_fixture(&ns, "kube-proxy-iptables.sh", &[]);
    let root = common::TempDir::new();
    let id = format!("{:064x}", 0xfeed_u128);
    let c = root.path().join("containers").join(&id);
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("config.v2.json"),
        r#"{"Name":"/web","NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#,
    )
    .unwrap();
    let held = in_netns(&ns, || tcp_listener(sa("127.0.0.1:9999"), None, 8));
    let portctl = |args: &[&str]| Portctl::new(args).netns(&ns).env("PORTCTL_DOCKER_ROOT", root.path()).run();

    let run = portctl(&["listen", "--json"]);
    run.expect_code(0);
    let v = value(&run, &run.stdout);
    assert_documented(&run.what, Output::Sockets, &v);
    let items = v.as_array().unwrap();
    let first_nat = items.iter().position(|x| x.get("kind").is_some()).expect("NAT records");
    assert!(items[first_nat..].iter().all(|x| x["kind"] == "nat"), "NAT records after the sockets");
    let sockets: Vec<Record> = typed(&run, &Value::Array(items[..first_nat].to_vec()));
    assert_eq!(sockets.len(), 1);
    let nat: Vec<NatRecord> = typed(&run, &Value::Array(items[first_nat..].to_vec()));
    for line in run.stdout.lines().filter(|l| l.contains("\"kind\"")) {
        assert!(line.starts_with("{\"kind\":\"nat\","), "kind first: {line}");
    }
    let web = nat.iter().find(|r| r.ports.map(|p| p.lo) == Some(8080)).unwrap();
    assert_eq!(
        (web.action, web.exposure, web.source),
        (NatAction::Dnat, NatExposure::Wildcard, RuleSource::IptablesNft)
    );
    assert_eq!((web.to.addr.as_deref(), web.to.port.map(|p| p.lo)), (Some("172.17.0.2"), Some(80)));
    assert_eq!(web.owner, Some(NatOwner::Docker));
    let ct = web.container.as_ref().unwrap();
    assert_eq!(
        (ct.runtime, ct.id.as_deref(), ct.name.as_deref()),
        (Some(NatRuntime::Docker), Some(id.as_str()), Some("web"))
    );
    assert!(web.rule.position.is_some() && web.rule.handle.is_none());
    assert!(web.netns.is_none());
    let np: Vec<&NatRecord> = nat.iter().filter(|r| r.ports.map(|p| p.lo) == Some(30080)).collect();
    assert_eq!(np.len(), 2);
    assert!(np.iter().all(|r| r.owner == Some(NatOwner::Kubernetes) && r.service.as_deref() == Some("shop/web:http")));
    assert!(nat.iter().all(|r| r.exposure != NatExposure::NotLocal), "listen lists this host's ports only");

    let run = portctl(&["listen", "--jsonl"]);
    let lines: Vec<Value> = run.stdout.lines().map(|l| value(&run, l)).collect();
    for l in &lines {
        assert_documented(&run.what, Output::Sockets, l);
    }
    assert_eq!(lines.iter().filter(|l| l.get("kind").is_some()).count(), nat.len());

    let run = portctl(&["listen", "--json", "--netns", ns.name()]);
    let v = value(&run, &run.stdout);
    assert_documented(&run.what, Output::Sockets, &v);
    let with: Vec<NatRecord> =
        typed(&run, &Value::Array(v.as_array().unwrap().iter().filter(|x| x.get("kind").is_some()).cloned().collect()));
    assert!(with.iter().all(|r| r.netns.as_ref().is_some_and(|n| n.name.as_deref() == Some(ns.name()))));

    let run = portctl(&["who", "8080/tcp", "--json"]);
    run.expect_code(0);
    let who: Who = object(&run, Output::Who);
    assert!(who.verdict.published && !who.verdict.in_use);
    assert_eq!(who.nat.status, NatStatus::Ok);
    assert_eq!(who.nat.rules.len(), 1);
    let run = portctl(&["who", "80/tcp", "--json", "-v"]);
    run.expect_code(1);
    let who: Who = object(&run, Output::Who);
    assert!(!who.verdict.published);
    assert!(who.nat.rules.iter().all(|r| r.exposure == NatExposure::NotLocal) && !who.nat.rules.is_empty());
    assert!(!who.nat.skipped.is_empty(), "kube-proxy's statistic and nfacct matches");
    let run = portctl(&["who", "8080/tcp", "--json", "--no-nat"]);
    let who: Who = object(&run, Output::Who);
    assert!(who.nat.rules.is_empty() && !who.verdict.published);

    let run = portctl(&["kill", "8080/tcp", "--yes", "--json"]);
    run.expect_code(1);
    let k: Kill = object(&run, Output::Kill);
    assert!(k.targets.is_empty());
    assert_eq!(k.nat.rules.len(), 1);
    assert_eq!(k.hints, ["stop the container with `docker stop web`"]);
    drop(held);
}
