//! `watch`'s frame: the table of the command it re-runs with a leading mark
//! column (`+` new since the last refresh, `~` changed state, `-` gone, shown
//! once), under a heading line.

use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, Styled};
use super::{Output, Style};
use crate::model::Socket;

/// Which table to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table<'a> {
    Listen {
        context: bool,
    },
    Conns {
        extended: bool,
        context: bool,
    },
    /// `-o/--columns`: these columns.
    Columns(&'a [crate::filter::Column]),
}

/// What changed for one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Same,
    Added,
    Changed,
    Gone,
}

impl Mark {
    fn text(self) -> &'static str {
        match self {
            Mark::Same => "",
            Mark::Added => "+",
            Mark::Changed => "~",
            Mark::Gone => "-",
        }
    }

    fn color(self) -> Option<Color> {
        match self {
            Mark::Same => None,
            Mark::Added => Some(Color::Green),
            Mark::Changed => Some(Color::Yellow),
            Mark::Gone => Some(Color::Red),
        }
    }
}

/// One refresh: `heading` then the rows (`rows[i]` marked `marks[i]`). On a
/// terminal the screen is cleared first, so the table stays in place; piped,
/// refreshes follow each other.
pub fn frame(
    w: &mut impl Write,
    what: Table<'_>,
    rows: &[Socket],
    marks: &[Mark],
    heading: &str,
    out: &Output,
) -> io::Result<()> {
    let (mut columns, cells) = match what {
        Table::Listen { context } => super::listen::rows(rows, context),
        Table::Conns { extended, context } => super::conns::rows(rows, extended, context),
        Table::Columns(cols) => super::columns::rows(rows, cols),
    };
    columns.insert(0, table::col(" "));
    let cells: Vec<Vec<Styled>> = cells
        .into_iter()
        .zip(marks)
        .map(|(mut row, &m)| {
            if let Some(c) = m.color() {
                for cell in row.iter_mut() {
                    cell.color = Some(c);
                }
            }
            row.insert(0, Styled { text: m.text().to_string(), color: m.color() });
            row
        })
        .collect();
    if out.terminal {
        write!(w, "\x1b[H\x1b[2J")?;
    }
    Style { color: false }.line(w, heading)?;
    if cells.is_empty() {
        return writeln!(w, "(none)");
    }
    table::write(w, &columns, cells, out)
}
