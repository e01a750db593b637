//! JSON output: `--json` is one array, `--jsonl` one record per line. The
//! records are the types in `model.rs`, documented in docs/json.md.

use std::io::{self, Write};

use serde::Serialize;

use crate::query::Format;

/// Writes records as a JSON array (one record per line inside it, so the
/// output is both valid JSON and greppable) or as JSON lines.
pub fn records<T: Serialize>(w: &mut impl Write, items: &[T], format: Format) -> io::Result<()> {
    match format {
        Format::Jsonl => {
            for it in items {
                serde_json::to_writer(&mut *w, it)?;
                w.write_all(b"\n")?;
            }
        }
        _ => {
            w.write_all(b"[")?;
            for (i, it) in items.iter().enumerate() {
                w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *w, it)?;
            }
            w.write_all(b"\n]\n")?;
        }
    }
    Ok(())
}

/// One object, pretty-printed (`who --json`, `stats --json`).
pub fn object<T: Serialize>(w: &mut impl Write, item: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, item)?;
    w.write_all(b"\n")
}
