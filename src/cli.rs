//! Command-line definitions (clap derive) and nothing else: no I/O, so that a
//! build script can `include!` this file for completions and a man page.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::filter::{PortRange, PortSpec};

/// Who holds this port, and why: sockets, their processes and a diagnosis,
/// straight from the kernel (sock_diag).
#[derive(Debug, Parser)]
#[command(name = "portctl", version, about, max_term_width = 100)]
#[command(after_help = "Exit status: 0 something matched, 1 nothing matched, 2 error.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What is bound where: TCP listeners and bound UDP sockets, with owners
    /// and exposure.
    #[command(visible_alias = "l")]
    Listen(ListenArgs),
    /// Who holds a port, what a new bind() would get, and what to do:
    /// the answer to "address already in use".
    #[command(visible_alias = "w")]
    Who(WhoArgs),
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Only these local ports; repeatable, ranges allowed (8000-8100).
    #[arg(long, short = 'p', value_name = "PORT[-PORT]")]
    pub port: Vec<PortRange>,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WhoArgs {
    /// 8080, :8080, 8080/tcp, 8080/udp, 127.0.0.1:8080, [::1]:8080, or a
    /// service name (postgresql, https/tcp).
    #[arg(value_name = "SPEC")]
    pub spec: PortSpec,
    /// One JSON object: spec, verdict, holders, sockets, hints.
    #[arg(long)]
    pub json: bool,
    /// Colour: auto (terminal and no NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

impl WhoArgs {
    /// The shared output options this command uses.
    pub fn out_args(&self) -> OutputArgs {
        OutputArgs { json: self.json, jsonl: false, no_header: false, color: self.color }
    }
}

/// Protocol and address family selection shared by every command.
#[derive(Debug, Args, Clone, Copy)]
pub struct SelectArgs {
    /// TCP only.
    #[arg(long, short = 't')]
    pub tcp: bool,
    /// UDP only.
    #[arg(long, short = 'u')]
    pub udp: bool,
    /// IPv4 only.
    #[arg(short = '4', long = "ipv4")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
}

/// Output format options shared by every listing command.
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
