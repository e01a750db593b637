//! Tables: aligned plain columns (no borders), so `awk '{print $2}'` and
//! `column -t` work on piped output; on a terminal the width follows it.

use std::io::{self, Write};

use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table, presets};

use crate::query::Output;

/// A column: header and alignment.
pub struct Column {
    pub header: &'static str,
    pub right: bool,
}

pub const fn col(header: &'static str) -> Column {
    Column { header, right: false }
}

pub const fn num(header: &'static str) -> Column {
    Column { header, right: true }
}

/// A cell with an optional colour (used only when colour is on).
pub struct Styled {
    pub text: String,
    pub color: Option<Color>,
}

impl From<String> for Styled {
    fn from(text: String) -> Styled {
        Styled { text: if text.is_empty() { "-".into() } else { text }, color: None }
    }
}

impl From<&str> for Styled {
    fn from(text: &str) -> Styled {
        Styled::from(text.to_string())
    }
}

pub fn colored(text: impl Into<String>, color: Color) -> Styled {
    Styled { color: Some(color), ..Styled::from(text.into()) }
}

/// Renders rows under the given columns.
pub fn write(w: &mut impl Write, columns: &[Column], rows: Vec<Vec<Styled>>, out: &Output) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if out.terminal {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.set_content_arrangement(ContentArrangement::Disabled);
    }
    if !out.color {
        t.force_no_tty();
    } else {
        t.enforce_styling();
    }
    if out.header {
        t.set_header(columns.iter().map(|c| {
            let cell = Cell::new(c.header);
            if out.color { cell.add_attribute(comfy_table::Attribute::Bold) } else { cell }
        }));
    }
    for row in rows {
        t.add_row(row.into_iter().map(|s| {
            let cell = Cell::new(s.text);
            match (out.color, s.color) {
                (true, Some(c)) => cell.fg(c),
                _ => cell,
            }
        }));
    }
    let last = columns.len().saturating_sub(1);
    for (i, c) in columns.iter().enumerate() {
        if let Some(column) = t.column_mut(i) {
            column.set_padding((0, if i == last { 0 } else { 2 }));
            if c.right {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    for line in t.lines() {
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}
