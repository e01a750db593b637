//! One file per subcommand. Each builds a query, runs the shared inventory
//! pipeline, and renders; none repeats the pipeline.

pub mod listen;
pub mod who;
