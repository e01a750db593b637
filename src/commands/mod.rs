//! One file per subcommand. Each builds a query, runs the shared inventory
//! pipeline, and renders; none repeats the pipeline.

pub mod completions;
pub mod conns;
pub mod kill;
pub mod listen;
pub mod man;
pub mod stats;
pub mod wait;
pub mod watch;
pub mod who;
