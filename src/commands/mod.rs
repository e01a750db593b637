//! One file per subcommand: glue from a request to the inventory, the domain
//! and a renderer. Commands do not import each other, and nothing below them
//! imports a command: what two commands share lives in `inventory`,
//! `domain` or `render`.

pub mod close;
pub mod completions;
pub mod conns;
pub mod kill;
pub mod listen;
pub mod man;
pub mod stats;
pub mod wait;
pub mod watch;
pub mod who;
