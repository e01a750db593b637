//! The binary: parse, run, turn the result into an exit status.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match portctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match portctl::run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) if portctl::error::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages can carry names from the system (namespaces, paths):
            // escaped for the terminal like every other stderr line.
            for line in portctl::error::render(&e) {
                eprintln!("{}", portctl::render::sanitize::escape(&line));
            }
            ExitCode::from(portctl::report::EXIT_ERROR as u8)
        }
    }
}

/// Help and version print as clap does; usage errors become one line on
/// stderr and exit status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(portctl::report::EXIT_ERROR as u8)
        }
        _ => {
            // clap's message up to its first blank line (some span two
            // lines, e.g. missing arguments), joined into one line.
            let text = e.render().to_string();
            let msg: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("portctl: error: {}", portctl::render::sanitize::escape(msg));
            ExitCode::from(portctl::report::EXIT_ERROR as u8)
        }
    }
}
