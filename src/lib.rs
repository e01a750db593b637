//! portctl: who holds this port, and why.
//!
//! The flow, for every command:
//!
//! ```text
//! argv -> cli (clap types) -> request (domain types, built once)
//!      -> inventory: sock_diag dumps (kernel: state mask + bytecode filter)
//!                    + owner source (inode -> owners: the /proc walk,
//!                      in parallel with the dump)
//!                    + enrich (service names, interfaces)
//!      -> domain (select, order, bind verdicts, who/kill/stats answers)
//!      -> render (table | text | json | prometheus)
//! warnings -> report (stderr), which also decides the exit status
//! ```

pub mod bpf;
pub mod cli;
pub mod commands;
pub mod counters;
pub mod domain;
pub mod error;
pub mod expr;
pub mod filter;
pub mod intmap;
pub mod inventory;
pub mod model;
pub mod nat;
pub mod netns;
pub mod procs;
pub mod render;
pub mod report;
pub mod request;
pub mod services;
pub mod sock_diag;
pub mod sys;
pub mod sysctl;
pub mod text;
pub mod timings;

use std::io::{BufWriter, Write};

use anyhow::Result;

use cli::Cli;
use report::Report;
use request::Request;

/// Runs one command line; returns the exit status (0 matched, 1 nothing).
/// Output goes through one buffered writer; warnings go to stderr after it.
pub fn run(cli: Cli) -> Result<i32> {
    timings::start();
    let verbose = cli.global.verbose;
    let mut notes = Vec::new();
    let request = Request::from_cli_noting(cli, &mut notes)?;
    let mut report = Report::verbose(verbose);
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let result = match &request {
        Request::Listen(r) => commands::listen::run(r, &mut out, &mut report),
        Request::Conns(r) => commands::conns::run(r, &mut out, &mut report),
        Request::Who(r) => commands::who::run(r, &mut out, &mut report),
        Request::Kill(r) => commands::kill::run(r, &mut out, &mut report),
        Request::Wait(r) => commands::wait::run(r, &mut out, &mut report),
        Request::Watch(r) => commands::watch::run(r, &mut out, &mut report),
        Request::Stats(r) => commands::stats::run(r, &mut out, &mut report),
        Request::Close(r) => commands::close::run(r, &mut out, &mut report),
        Request::Completions(shell) => commands::completions::run(*shell, &mut out),
        Request::Man(r) => commands::man::run(r, &mut out),
    };
    let flushed = out.flush();
    timings::mark("output flushed");
    // How the filter was read is worth saying when it was used; an error
    // is said in one line.
    if result.is_ok() {
        for n in notes {
            report.note(n);
        }
    }
    report.flush();
    let status = result?;
    flushed?;
    Ok(status)
}
