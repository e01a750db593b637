//! Wording shared by the sentences portctl writes (verdicts, hints,
//! warnings) and its tables.

/// `s` when `n` is not one: `format!("{n} socket{}", plural(n))`.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Milliseconds as a short duration: `350ms`, `59s`, `1m02s`.
pub fn duration_ms(ms: u32) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_plurals() {
        assert_eq!(duration_ms(350), "350ms");
        assert_eq!(duration_ms(59_999), "59s");
        assert_eq!(duration_ms(62_000), "1m02s");
        assert_eq!((plural(0), plural(1), plural(2)), ("s", "", "s"));
    }
}
