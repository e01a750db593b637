//! Command-line definitions (clap derive) and nothing else: no I/O, so that
//! `build.rs` can compile this file for completions and man pages. It may name
//! only `crate::filter` and `crate::model` items (build.rs compiles those two
//! alongside it).

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::filter::{CidrArg, Column, DurationArg, PortArg, SignalSpec, SortKey, StateSpec, TargetSpec, UserSpec};

/// Who holds this port, and why: sockets, their processes and a diagnosis,
/// straight from the kernel (sock_diag).
#[derive(Debug, Parser)]
#[command(name = "portctl", version = VERSION, about, max_term_width = 100)]
#[command(after_help = "Exit status: 0 something matched, 1 nothing matched, 2 error.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name.
#[derive(Debug, Args, Clone, Copy)]
pub struct GlobalArgs {
    /// Where the owners of sockets come from: `bpf` (the kernel's
    /// task_file iterator: needs root, or CAP_BPF and CAP_PERFMON, and
    /// Linux 5.11 with BTF), `proc` (walk /proc/*/fd), or `auto` (BPF when
    /// the kernel allows it, else /proc).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = OwnersFromArg::Auto,
        env = "PORTCTL_OWNERS",
        value_name = "SOURCE"
    )]
    pub owners_from: OwnersFromArg,
    /// Say on stderr how the answer was found: which owner source ran and,
    /// with `auto`, why BPF did not; how the NAT rules were read (each
    /// tool, its time) and what was skipped.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OwnersFromArg {
    Auto,
    Bpf,
    Proc,
}

/// `0.1.0 (b0b67b1 2026-11-21)`: the crate version and, when built from a git
/// checkout, the commit (set by build.rs; build.rs itself sees the fallback).
pub const VERSION: &str = match option_env!("PORTCTL_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What is bound where: TCP listeners and bound UDP sockets (unix, raw
    /// and packet sockets with -x, -w, -0), with owners and exposure.
    #[command(visible_alias = "l")]
    Listen(ListenArgs),
    /// Who holds a port or a unix socket, what a new bind() would get, and
    /// what to do: the answer to "address already in use".
    #[command(visible_alias = "w")]
    Who(WhoArgs),
    /// Free a port or a unix socket: signal the processes holding it (asks
    /// first; pidfd-safe).
    Kill(KillArgs),
    /// Block until a listener appears on a port or a unix socket (or, with
    /// --free, is gone).
    Wait(WaitArgs),
    /// A live view of `listen` (default) or `conns`: redrawn every interval,
    /// changes marked; --events prints JSON lines instead.
    Watch(WatchArgs),
    /// Connections: TCP and UDP sockets (unix, raw and packet sockets with -x,
    /// -w, -0) with their owners and the process at the other end,
    /// established by default, any state on request (the `ss -tuanp` question).
    #[command(visible_alias = "c")]
    Conns(ConnsArgs),
    /// Summary: counts per protocol, family and state; ephemeral port usage;
    /// TIME_WAIT top talkers; CLOSE_WAIT by process; accept queues, UDP
    /// drops, the kernel's counters (nstat) and socket memory.
    #[command(after_help = "Exit status: 0 (a summary always matches), 2 error.")]
    Stats(StatsArgs),
    /// Close single connections (SOCK_DESTROY, like `ss -K`): shows what it
    /// would close, asks first; the holders see ECONNABORTED, TCP peers a
    /// reset.
    #[command(after_help = FILTER_HELP_CLOSE)]
    Close(CloseArgs),
    /// Print a shell completion script: bash, zsh or fish (see docs/install.md).
    Completions(CompletionsArgs),
    /// Print a manual page (roff): `portctl man | man -l -`, `portctl man listen`.
    Man(ManArgs),
}

/// The filter expression help shown under listen, conns, stats and watch.
pub const FILTER_HELP: &str = "FILTER is an ss(8) filter: [ state STATE | exclude STATE ]... [ EXPRESSION ], \
e.g. `dport = :443 and not dst 10.0.0.0/8`, `state established '( sport = :ssh )'`. Predicates: \
src|dst ADDR[/PREFIX][:PORT], sport|dport [=|!=|<|<=|>|>=] :PORT, dev NAME, fwmark = V[/MASK], \
cgroup PATH, autobound; and, or (same precedence, left to right, as in ss), not, ( ). \
Flags and the expression combine with `and`. See docs/filters.md.\n\n\
Exit status: 0 something matched, 1 nothing matched, 2 error.";

/// `close`'s help epilogue.
pub const FILTER_HELP_CLOSE: &str = "FILTER is an ss(8) filter, as for conns (docs/filters.md): \
`portctl close dst 10.0.0.5 dport = :5432`. Without a state, connected sockets (not listeners, not \
TIME_WAIT) are closed; --listeners adds listening TCP and bound UDP sockets.\n\n\
Exit status: 0 every matching socket closed (or --dry-run), 1 nothing matched or not confirmed, \
2 a socket could not be closed, or error.";

#[derive(Debug, Args)]
#[command(after_help = FILTER_HELP)]
pub struct ListenArgs {
    #[command(flatten)]
    pub ns: NetnsArgs,
    /// Add the owners' context: systemd unit, container.
    #[arg(long)]
    pub context: bool,
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Only these local ports; repeatable: values OR, `!PORT` excludes;
    /// ranges (8000-8100) and service names (https).
    #[arg(long, short = 'p', value_name = "[!]PORT[-PORT]", allow_hyphen_values = true)]
    pub port: Vec<PortArg>,
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Kernel data only: no owners looked for (neither BPF nor /proc), as
    /// `ss -tuln` without `-p`.
    #[arg(long)]
    pub no_owners: bool,
    #[command(flatten)]
    pub view: ViewArgs,
    /// An ss filter expression (see below).
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub filter: Vec<String>,
    /// Leave out the ports NAT rules publish (Docker, podman, Kubernetes,
    /// hand-written DNAT), and do not read the rules.
    #[arg(long)]
    pub no_nat: bool,
    /// Output format; `prometheus` is the text exposition format for
    /// node_exporter's textfile collector (docs/prometheus.md). `--json` is
    /// `--format json`.
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with_all = ["json", "jsonl"])]
    pub format: Option<ListenFormat>,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListenFormat {
    Table,
    Json,
    Jsonl,
    Prometheus,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 every port asked about is in use (with --pid: the process holds a socket), \
1 one is not (or nothing was printed with --pids), 2 error.")]
pub struct WhoArgs {
    /// 8080, :8080, 8080/tcp, 8080/udp, 127.0.0.1:8080, `[::1]:8080`, a
    /// service name (postgresql, https/tcp), a unix socket's path
    /// (/run/app.sock) or an abstract name (@name); several: one answer
    /// each.
    #[arg(value_name = "SPEC", required_unless_present = "pid")]
    pub spec: Vec<TargetSpec>,
    /// Instead of a port: what this process holds (listeners and
    /// connections), with its ancestry.
    #[arg(long, value_name = "PID", conflicts_with = "spec")]
    pub pid: Option<u32>,
    /// Print the holders' pids, one per line, nothing else (like `lsof -t`).
    #[arg(long, conflicts_with = "json")]
    pub pids: bool,
    #[command(flatten)]
    pub ns: NetnsArgs,
    /// Do not read the NAT rules (ports Docker, podman or Kubernetes
    /// publish without a socket).
    #[arg(long)]
    pub no_nat: bool,
    #[command(flatten)]
    pub out: ReportArgs,
}

#[derive(Debug, Args)]
#[command(after_help = FILTER_HELP)]
pub struct ConnsArgs {
    #[command(flatten)]
    pub ns: NetnsArgs,
    /// Add the owners' context: systemd unit, container.
    #[arg(long)]
    pub context: bool,
    #[command(flatten)]
    pub sel: SelectArgs,
    /// States or groups, as ss names them (all, connected, synchronized,
    /// bucket, big); repeatable. Default: established (or the filter's
    /// `state`).
    #[arg(long, short = 's', value_name = "STATE")]
    pub state: Vec<StateSpec>,
    /// Either end's port; repeatable: values OR, `!PORT` excludes; ranges
    /// (8000-8100) and service names (https).
    #[arg(long, short = 'p', value_name = "[!]PORT[-PORT]", allow_hyphen_values = true)]
    pub port: Vec<PortArg>,
    /// Local port; as --port.
    #[arg(long, value_name = "[!]PORT[-PORT]", allow_hyphen_values = true)]
    pub sport: Vec<PortArg>,
    /// Remote port; as --port.
    #[arg(long, value_name = "[!]PORT[-PORT]", allow_hyphen_values = true)]
    pub dport: Vec<PortArg>,
    /// Local address or network (10.0.0.0/8, ::1, fe80::/10); an IPv4
    /// prefix also matches IPv4-mapped IPv6 addresses. Repeatable: values
    /// OR, `!NET` excludes.
    #[arg(long, value_name = "[!]ADDR[/PREFIX]")]
    pub src: Vec<CidrArg>,
    /// Remote address or network; as --src.
    #[arg(long, value_name = "[!]ADDR[/PREFIX]")]
    pub dst: Vec<CidrArg>,
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Kernel data only: no owners looked for (neither BPF nor /proc), as
    /// `ss -tuan` without `-p`.
    #[arg(long)]
    pub no_owners: bool,
    /// Add tcp_info (RTT, retransmits, cwnd, congestion algorithm, mss, lost,
    /// delivery rate, bytes sent and received) and socket memory (receive
    /// buffer use, drops; TCP and UDP).
    #[arg(long, short = 'e')]
    pub extended: bool,
    /// Add a PEER column to the TCP/UDP table: the process at the other end
    /// of connections local to this host (unix tables always have it; JSON
    /// always has `peer`).
    #[arg(long)]
    pub peers: bool,
    #[command(flatten)]
    pub view: ViewArgs,
    /// An ss filter expression (see below).
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Which processes' sockets (the reverse lookups): values of one flag are
/// alternatives, different flags must all hold for one owner.
#[derive(Debug, Args, Clone, Default)]
pub struct OwnerArgs {
    /// Sockets held by this process; repeatable.
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// With --pid: its descendants' sockets too.
    #[arg(long, requires = "pid")]
    pub children: bool,
    /// Sockets held by a process of exactly this name (comm or `argv[0]`'s
    /// base name); repeatable.
    #[arg(long, value_name = "NAME")]
    pub process: Vec<String>,
    /// Sockets held by a process whose name matches this regular
    /// expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub process_regex: Option<String>,
    /// Sockets held by this user's processes (name or uid); repeatable.
    #[arg(long, value_name = "USER")]
    pub user: Vec<UserSpec>,
    /// Sockets held by processes of this systemd unit (nginx.service, or
    /// nginx; a slice takes the units in it); repeatable.
    #[arg(long, value_name = "UNIT")]
    pub unit: Vec<String>,
    /// Sockets held by processes of this container (its name, or the start
    /// of its id); repeatable.
    #[arg(long, value_name = "NAME|ID")]
    pub container: Vec<String>,
}

/// How listen and conns show what they found.
#[derive(Debug, Args, Clone, Default)]
pub struct ViewArgs {
    /// Print the holders' pids, one per line, nothing else (like `lsof -t`).
    #[arg(long, conflicts_with_all = ["by_process", "columns"])]
    pub pids: bool,
    /// Group by process: each holder with its ancestry line (systemd ->
    /// nginx.service -> nginx) and its sockets.
    #[arg(long)]
    pub by_process: bool,
    /// Table columns, in this order (comma-separated).
    #[arg(long = "columns", short = 'o', value_name = "COL,...", value_delimiter = ',', value_enum)]
    pub columns: Vec<Column>,
    /// Sort by these keys, in order (comma-separated).
    #[arg(long, value_name = "KEY,...", value_delimiter = ',', value_enum)]
    pub sort: Vec<SortKey>,
    /// With --sort: descending.
    #[arg(long, requires = "sort")]
    pub reverse: bool,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// A network namespace: a name under /run/netns, an nsfs path, or pid:PID.
    #[arg(long, value_name = "NAME|PATH|pid:PID")]
    pub netns: Option<String>,
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Also close listening TCP and bound UDP sockets the filter matches.
    #[arg(long)]
    pub listeners: bool,
    #[command(flatten)]
    pub owner: OwnerArgs,
    /// Show what would be closed; close nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// What to close: an ss filter expression (required, or an owner flag).
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub out: ReportArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Summarise only the sockets this ss filter expression matches
    /// (docs/filters.md).
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub ns: NetnsArgs,
    /// Skip the CLOSE_WAIT-by-process section and the /proc walk it needs.
    #[arg(long)]
    pub no_owners: bool,
    /// Rows in the ephemeral port and TIME_WAIT lists.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Read the kernel's counters twice, this long apart, and show what
    /// rose and how fast (as `nstat` does): 1s, 500ms, 10s.
    #[arg(long, short = 'i', value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: Option<DurationArg>,
    /// Output format; `prometheus` is the text exposition format for
    /// node_exporter's textfile collector (docs/prometheus.md). `--json` is
    /// `--format json`.
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "json")]
    pub format: Option<StatsFormat>,
    #[command(flatten)]
    pub out: ReportArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Table,
    Json,
    Prometheus,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    pub fn as_str(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command's page (listen, who, ..., watch-listen); none: the main
    /// page, portctl(1).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// Write every page (portctl.1, portctl-listen.1, ...) into this
    /// directory instead of printing one.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath, conflicts_with = "command")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 every holder signalled (and with --wait every port freed), at least one; \
1 nothing to kill on any port, or not confirmed; 2 a holder could not be signalled, a port stayed held, or error.")]
pub struct KillArgs {
    /// Port specs, as for `who` (8080, 8080/tcp, 127.0.0.1:8080, postgresql,
    /// /run/app.sock, @name); several free several ports.
    #[arg(value_name = "SPEC", required = true)]
    pub spec: Vec<TargetSpec>,
    /// Signal: TERM, INT, KILL, HUP, ... or a number.
    #[arg(long, short = 's', default_value = "TERM", value_name = "SIGNAL", allow_hyphen_values = true)]
    pub signal: SignalSpec,
    /// Show what would be signalled; signal nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also signal pid 1, portctl's own ancestors, and a container
    /// runtime's userland proxy (docker-proxy).
    #[arg(long)]
    pub force: bool,
    /// Wait until the port is free (listeners gone); default 10s.
    #[arg(long, value_name = "SECS", num_args = 0..=1, require_equals = true, default_missing_value = "10s")]
    pub wait: Option<DurationArg>,
    /// With --wait: send SIGKILL to holders still alive after the wait.
    #[arg(long, requires = "wait")]
    pub then_kill: bool,
    #[command(flatten)]
    pub out: ReportArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 every port listens (with --free: none does) in time, 1 timeout, 2 error.")]
pub struct WaitArgs {
    /// Port specs, as for `who`; with an address, a wildcard listener
    /// counts. A unix socket's path: a listener bound to the file now there.
    /// Several: until all of them are ready.
    #[arg(value_name = "SPEC", required = true)]
    pub spec: Vec<TargetSpec>,
    /// Wait until no listener remains instead.
    #[arg(long)]
    pub free: bool,
    /// Give up after this long (exit 1).
    #[arg(long, short = 't', default_value = "30s", value_name = "DURATION", allow_hyphen_values = true)]
    pub timeout: DurationArg,
    /// Time between polls.
    #[arg(long, short = 'i', default_value = "100ms", value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: DurationArg,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Time between refreshes.
    #[arg(long, short = 'i', default_value = "1s", value_name = "DURATION", allow_hyphen_values = true)]
    pub interval: DurationArg,
    /// One JSON line per change: {"event": "added"|"removed"|"state", "socket": {...}}.
    #[arg(long)]
    pub events: bool,
    /// Stop after this many refreshes (default: until Ctrl-C or stdout closes).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(subcommand)]
    pub what: Option<WatchWhat>,
}

/// What `watch` re-runs.
#[derive(Debug, Subcommand)]
pub enum WatchWhat {
    /// `portctl listen` with its options.
    Listen(Box<ListenArgs>),
    /// `portctl conns` with its options.
    Conns(Box<ConnsArgs>),
}

/// Which network namespaces to look into.
#[derive(Debug, Args, Clone, Default)]
pub struct NetnsArgs {
    /// A network namespace: a name under /run/netns, an nsfs path, or pid:PID.
    #[arg(long, value_name = "NAME|PATH|pid:PID", conflicts_with = "all_netns")]
    pub netns: Option<String>,
    /// Every network namespace on the host (needs root).
    #[arg(long, short = 'A')]
    pub all_netns: bool,
}

/// Protocol and address family selection shared by every command.
#[derive(Debug, Args, Clone, Copy)]
pub struct SelectArgs {
    /// TCP. Kind flags add up; with none, TCP and UDP.
    #[arg(long, short = 't')]
    pub tcp: bool,
    /// UDP.
    #[arg(long, short = 'u')]
    pub udp: bool,
    /// Unix sockets (stream, dgram, seqpacket).
    #[arg(long, short = 'x')]
    pub unix: bool,
    /// Raw IP sockets and ICMP ("ping") sockets.
    #[arg(long, short = 'w')]
    pub raw: bool,
    /// Packet sockets (AF_PACKET: capture, DHCP, LLDP).
    #[arg(long, short = '0')]
    pub packet: bool,
    /// IPv4 only.
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
}

/// Output options shared by the listing commands (listen, conns).
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// One JSON array of socket records (see docs/json.md).
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// One JSON record per line.
    #[arg(long)]
    pub jsonl: bool,
    /// Tables without the header row.
    #[arg(long, short = 'H')]
    pub no_header: bool,
    #[command(flatten)]
    pub color: ColorArgs,
}

/// Output options shared by the commands that answer with one report
/// (who, stats, kill).
#[derive(Debug, Args, Clone, Copy)]
pub struct ReportArgs {
    /// One JSON object instead of text (see docs/json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub color: ColorArgs,
}

/// `--color`, shared by every command that writes for people.
#[derive(Debug, Args, Clone, Copy)]
pub struct ColorArgs {
    /// Colour: auto (terminal and no NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
