//! What portctl concludes from the sockets: selection, order, bind()
//! verdicts, the `who`, `kill` and `stats` answers. Pure logic over records;
//! the one source of further facts it is handed is the process table
//! (details of owners, read once and cached).

pub mod bind;
pub mod close;
pub mod kill;
pub mod nat;
pub mod order;
pub mod peers;
pub mod process;
pub mod select;
pub mod stats;
pub mod unix;
pub mod who;
