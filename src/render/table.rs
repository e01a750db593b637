//! Tables: aligned plain columns (no borders), so `awk '{print $2}'` and
//! `column -t` work on piped output; on a terminal the width follows it.
//! Every cell is escaped for the terminal when it is made ([`Styled`]), and
//! columns are aligned by display width.

use std::io::{self, Write};

use comfy_table::{Cell, CellAlignment, Color, ColumnConstraint, ContentArrangement, Table, presets};

use super::Output;
use super::sanitize;

/// Narrower terminals get unwrapped lines (the terminal folds them) rather
/// than cells chopped into a few characters each.
const MIN_WRAP_WIDTH: u16 = 40;

/// Columns whose cells are all this short are never wrapped.
const MAX_UNWRAPPED: usize = 24;

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

/// A cell with an optional colour (used only when colour is on). Its text
/// is escaped for the terminal; empty text shows as `-`.
pub struct Styled {
    pub text: String,
    pub color: Option<Color>,
}

impl From<String> for Styled {
    fn from(text: String) -> Styled {
        let text = match sanitize::escape(&text) {
            std::borrow::Cow::Borrowed(_) if text.is_empty() => "-".into(),
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(escaped) => escaped,
        };
        Styled { text, color: None }
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

/// Tables with more rows than this are never wrapped to the terminal's
/// width: comfy-table holds its whole grid in memory (450 MiB for 130k
/// connections), and nobody reads that many rows unscrolled; the terminal
/// folds the long lines instead.
const MAX_WRAPPED_ROWS: usize = 5_000;

/// Renders rows under the given columns.
///
/// Aligned plain columns, row by row (`write_plain`), unless the output is
/// a terminal the table is too wide for: then comfy-table wraps the long
/// cells (command lines) to fit.
pub fn write(w: &mut impl Write, columns: &[Column], rows: Vec<Vec<Styled>>, out: &Output) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // The terminal's width. A width of 0 (a pty nobody sized, as under
    // `script`) or anything too narrow to wrap into is no width at all.
    let width = if out.terminal { Table::new().width().filter(|&w| w >= MIN_WRAP_WIDTH) } else { None };
    write_in(w, columns, rows, out, width)
}

/// [`write`] for a terminal `width` columns wide (`None`: not a terminal,
/// or one too narrow to wrap into).
fn write_in(
    w: &mut impl Write,
    columns: &[Column],
    rows: Vec<Vec<Styled>>,
    out: &Output,
    width: Option<u16>,
) -> io::Result<()> {
    let widths = column_widths(columns, &rows, out);
    let natural = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    match width {
        Some(width) if rows.len() <= MAX_WRAPPED_ROWS && natural > usize::from(width) => {
            write_wrapped(w, columns, rows, out, width, &widths)
        }
        _ => write_plain(w, columns, &rows, out, &widths),
    }
}

/// Each column's widest cell (the header's too when it is shown), in
/// terminal columns.
fn column_widths(columns: &[Column], rows: &[Vec<Styled>], out: &Output) -> Vec<usize> {
    let width = sanitize::width;
    let mut widths: Vec<usize> = columns.iter().map(|c| if out.header { width(c.header) } else { 0 }).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(width(&cell.text));
        }
    }
    widths
}

/// comfy-table, wrapping long cells to `width`; `widest` is each column's
/// widest cell, to keep short tokens whole.
fn write_wrapped(
    w: &mut impl Write,
    columns: &[Column],
    rows: Vec<Vec<Styled>>,
    out: &Output,
    width: u16,
    widest: &[usize],
) -> io::Result<()> {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_width(width);
    t.set_content_arrangement(ContentArrangement::Dynamic);
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
            // Numbers, addresses, states, names: never split over two lines
            // ("127.0" / ".0.1"). Only long text (command lines, long pid
            // lists, IPv6 addresses) wraps to fit the terminal.
            if c.right || widest[i] <= MAX_UNWRAPPED {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
    for line in t.lines() {
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The layout of the wrapped table without wrapping (cells padded to their
/// column's widest, two spaces apart, numbers right aligned), written row by
/// row: piped output, and terminal output that fits or is too long to wrap.
/// comfy-table builds its whole grid in memory first, which at 130k
/// connections cost 450 MiB and a second; this costs the rows we already
/// hold.
fn write_plain(
    w: &mut impl Write,
    columns: &[Column],
    rows: &[Vec<Styled>],
    out: &Output,
    widths: &[usize],
) -> io::Result<()> {
    let width = sanitize::width;
    let mut line = String::new();
    let mut emit = |w: &mut dyn Write, cells: &mut dyn Iterator<Item = (&str, Option<Color>)>, bold: bool| {
        line.clear();
        for (i, ((text, color), c)) in cells.zip(columns).enumerate() {
            let pad = widths[i].saturating_sub(width(text));
            let last = i + 1 == columns.len();
            if c.right {
                line.extend(std::iter::repeat_n(' ', pad));
            }
            match (out.color, color, bold) {
                (true, _, true) => line.push_str(&format!("\x1b[1m{text}\x1b[0m")),
                (true, Some(col), false) => line.push_str(&format!("\x1b[{}m{text}\x1b[39m", ansi(col))),
                _ => line.push_str(text),
            }
            if !c.right && !last {
                line.extend(std::iter::repeat_n(' ', pad));
            }
            if !last {
                line.push_str("  ");
            }
        }
        writeln!(w, "{}", line.trim_end())
    };
    if out.header {
        emit(w, &mut columns.iter().map(|c| (c.header, None)), true)?;
    }
    for row in rows {
        emit(w, &mut row.iter().map(|s| (s.text.as_str(), s.color)), false)?;
    }
    Ok(())
}

/// The foreground code of the colours portctl uses.
pub(crate) fn ansi(c: Color) -> u8 {
    match c {
        Color::Red => 31,
        Color::Green => 32,
        Color::Yellow => 33,
        Color::Blue => 34,
        Color::Magenta => 35,
        Color::Cyan => 36,
        _ => 39,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Format;

    fn out(terminal: bool, color: bool, header: bool) -> Output {
        Output { format: Format::Table, header, color, terminal }
    }

    #[test]
    fn plain_layout() {
        let cols = [col("PROTO"), num("PORT"), col("PROCESS")];
        let rows = vec![
            vec![Styled::from("tcp"), Styled::from("22"), Styled::from("sshd")],
            vec![Styled::from("udp"), Styled::from("5353"), Styled::from("")],
        ];
        let mut buf = Vec::new();
        write(&mut buf, &cols, rows, &out(false, false, true)).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "PROTO  PORT  PROCESS\ntcp      22  sshd\nudp    5353  -\n");
    }

    /// On a terminal, only a table wider than it is handed to comfy-table
    /// (to wrap its long cells), and only up to MAX_WRAPPED_ROWS rows.
    #[test]
    fn terminal_tables_wrap_only_when_too_wide_and_not_too_long() {
        let cols = [num("PID"), col("COMMAND")];
        let rows = |n: usize| -> Vec<Vec<Styled>> {
            (0..n)
                .map(|i| {
                    vec![
                        Styled::from(i.to_string()),
                        Styled::from(format!("/usr/bin/server --config /etc/server/{i}.toml")),
                    ]
                })
                .collect()
        };
        let render = |n: usize, width: Option<u16>| {
            let mut buf = Vec::new();
            write_in(&mut buf, &cols, rows(n), &out(true, false, true), width).unwrap();
            String::from_utf8(buf).unwrap()
        };
        let plain = |n: usize| render(n, None);
        // Fits: the plain layout.
        assert_eq!(render(3, Some(200)), plain(3));
        // Too wide: wrapped to 40 columns, every cell still there.
        let wrapped = render(3, Some(40));
        assert_ne!(wrapped, plain(3));
        assert!(wrapped.lines().all(|l| l.chars().count() <= 40), "{wrapped}");
        assert!(wrapped.lines().count() > plain(3).lines().count(), "{wrapped}");
        // Too long to wrap: the plain layout, row by row.
        let n = MAX_WRAPPED_ROWS + 1;
        assert_eq!(render(n, Some(40)), plain(n));
    }

    /// Cells are escaped when made, and aligned by display width: a wide
    /// name takes two columns a character.
    #[test]
    fn cells_are_escaped_and_aligned_by_display_width() {
        let cols = [col("NAME"), col("X")];
        let rows = vec![
            vec![Styled::from("日本"), Styled::from("a")],
            vec![Styled::from("evil\n1 root"), Styled::from("b")],
            vec![Styled::from("ab"), Styled::from("c")],
        ];
        let mut buf = Vec::new();
        write(&mut buf, &cols, rows, &out(false, false, true)).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "NAME          X\n日本          a\nevil\\n1 root  b\nab            c\n"
        );
    }

    #[test]
    fn plain_colour_only_when_asked() {
        let cols = [col("EXPOSURE"), col("X")];
        let rows = vec![vec![colored("wildcard", Color::Yellow), Styled::from("a")]];
        let mut buf = Vec::new();
        write(&mut buf, &cols, rows, &out(false, true, false)).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "\x1b[33mwildcard\x1b[39m  a\n");
    }
}
