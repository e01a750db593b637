//! One file per subcommand. Each builds a query, runs the shared inventory
//! pipeline, and renders; none repeats the pipeline.

pub mod conns;
pub mod kill;
pub mod listen;
pub mod stats;
pub mod wait;
pub mod who;
