//! `watch`'s frame: the table of the command it re-runs with a leading mark
//! column (`+` new since the last refresh, `~` changed state, `-` gone, shown
//! once), under a heading line.

use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, Styled};
use super::{Group, Output, Style};
use crate::model::Socket;

/// Which table to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table<'a> {
    Listen {
        context: bool,
    },
    Conns {
        extended: bool,
        peers: bool,
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
    if out.terminal {
        write!(w, "\x1b[H\x1b[2J")?;
    }
    Style { color: false }.line(w, heading)?;
    if rows.is_empty() {
        return writeln!(w, "(none)");
    }
    if let Table::Columns(cols) = what {
        // `-o`: one table of the columns asked for, every kind in it.
        let (mut columns, cells) = super::columns::rows(rows, cols);
        columns.insert(0, table::col(" "));
        return table::write(w, &columns, marked(cells, marks.iter().copied()), out);
    }
    // One table per kind of socket, as the command itself prints them.
    let mut groups: Vec<(Group, Vec<&Socket>, Vec<Mark>)> = Vec::new();
    for (s, &m) in rows.iter().zip(marks) {
        let g = Group::of(s);
        match groups.iter_mut().find(|(x, _, _)| *x == g) {
            Some((_, v, ms)) => {
                v.push(s);
                ms.push(m);
            }
            None => groups.push((g, vec![s], vec![m])),
        }
    }
    groups.sort_by_key(|(g, _, _)| *g);
    for (i, (group, socks, ms)) in groups.into_iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let (mut columns, cells) = match what {
            Table::Listen { context } => super::listen::rows(group, &socks, context),
            Table::Conns { extended, peers, context } => super::conns::rows(group, &socks, extended, peers, context),
            // Written above, in one table.
            Table::Columns(_) => continue,
        };
        columns.insert(0, table::col(" "));
        table::write(w, &columns, marked(cells, ms), out)?;
    }
    Ok(())
}

/// The rows with their marks in a first column (and in their colour).
fn marked(cells: Vec<Vec<Styled>>, marks: impl IntoIterator<Item = Mark>) -> Vec<Vec<Styled>> {
    cells
        .into_iter()
        .zip(marks)
        .map(|(mut row, m)| {
            if let Some(c) = m.color() {
                for cell in row.iter_mut() {
                    cell.color = Some(c);
                }
            }
            row.insert(0, Styled { text: m.text().to_string(), color: m.color() });
            row
        })
        .collect()
}
