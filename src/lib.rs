//! portctl: who holds this port, and why.
//!
//! The flow, for every command:
//!
//! ```text
//! argv -> cli (clap) -> query (validated request)
//!      -> inventory: sock_diag dump (kernel: state mask + bytecode filter)
//!                    + owner map (/proc walk, in parallel with the dump)
//!                    + enrich (service names, interfaces)
//!      -> command logic (filter, sort, diagnose) -> render (table | json | jsonl)
//! warnings -> report (stderr), which also decides the exit status
//! ```

pub mod cli;
pub mod commands;
pub mod diagnose;
pub mod error;
pub mod filter;
pub mod intmap;
pub mod inventory;
pub mod model;
pub mod netns;
pub mod procs;
pub mod query;
pub mod render;
pub mod report;
pub mod services;
pub mod sock_diag;
pub mod timings;

use std::io::{BufWriter, Write};

use anyhow::Result;

use cli::{Cli, Command};
use report::Report;

/// Runs one command line; returns the exit status (0 matched, 1 nothing).
/// Output goes through one buffered writer; warnings go to stderr after it.
pub fn run(cli: Cli) -> Result<i32> {
    timings::start();
    let mut report = Report::default();
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let result = match &cli.command {
        Command::Listen(args) => commands::listen::run(args, &mut out, &mut report),
        Command::Who(args) => commands::who::run(args, &mut out, &mut report),
        Command::Kill(args) => commands::kill::run(args, &mut out, &mut report),
        Command::Wait(args) => commands::wait::run(args, &mut out, &mut report),
        Command::Watch(args) => commands::watch::run(args, &mut out, &mut report),
        Command::Conns(args) => commands::conns::run(args, &mut out, &mut report),
        Command::Stats(args) => commands::stats::run(args, &mut out, &mut report),
        Command::Completions(args) => commands::completions::run(args, &mut out),
        Command::Man(args) => commands::man::run(args, &mut out),
    };
    let flushed = out.flush();
    timings::mark("output flushed");
    report.flush();
    let status = result?;
    flushed?;
    Ok(status)
}
