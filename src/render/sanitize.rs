//! Terminal safety for attacker-controlled text (process names, command
//! lines, unix socket paths, cgroup and container names): characters that
//! control the terminal or hide or reorder text are escaped, so a process
//! cannot forge table rows, move the cursor, or make what you read differ
//! from what is there. Used only for terminal output (tables, text, stderr);
//! JSON carries the raw strings.
//!
//! Widths are display widths (East Asian wide characters and emoji take two
//! columns), so tables stay aligned whatever the names hold.

use std::borrow::Cow;

use unicode_width::UnicodeWidthStr;

/// Escapes what [`needs_escape`] names as `\n`, `\x1b`, `\u{202e}`. Text
/// with none of them is returned as is (no allocation).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && needs_escape(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 controls and DEL; bidirectional formatting (embeddings,
/// overrides, isolates, marks: the "Trojan Source" set); zero-width and
/// invisible characters (U+200B-U+200F, U+2060-U+206F, U+FEFF); line and
/// paragraph separators; tag characters (U+E0000-U+E007F), which can spell
/// hidden text.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// Columns `s` takes on a terminal (after escaping, which only ever adds
/// ASCII).
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let cases = [
            ("nginx", "nginx"),
            ("a b", "a b"),
            ("evil\nroot 1 sshd", "evil\\nroot 1 sshd"),
            ("\x1b[2Jclear", "\\x1b[2Jclear"),
            ("tab\there", "tab\\there"),
            ("del\x7f", "del\\x7f"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("abc\u{202e}gpj.exe", "abc\\u{202e}gpj.exe"),
            ("iso\u{2066}late", "iso\\u{2066}late"),
            ("pdi\u{2069}", "pdi\\u{2069}"),
            ("zero\u{200b}width", "zero\\u{200b}width"),
            ("joiner\u{200d}", "joiner\\u{200d}"),
            ("word\u{2060}joiner", "word\\u{2060}joiner"),
            ("invisible\u{2064}plus", "invisible\\u{2064}plus"),
            ("bom\u{feff}", "bom\\u{feff}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("tag\u{e0041}\u{e007f}", "tag\\u{e0041}\\u{e007f}"),
            ("arabic\u{061c}mark", "arabic\\u{61c}mark"),
            ("ünïcödé ✓ 日本 🚀", "ünïcödé ✓ 日本 🚀"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn display_widths() {
        assert_eq!(width("nginx"), 5);
        assert_eq!(width("日本"), 4);
        assert_eq!(width("🚀"), 2);
        assert_eq!(width("é"), 1);
        assert_eq!(width(&escape("a\u{200b}b")), "a\\u{200b}b".len());
    }

    proptest::proptest! {
        /// Whatever the text, nothing that needs escaping survives escaping,
        /// and text that needs none is returned unchanged.
        #[test]
        fn escaped_text_is_safe(s in "\\PC{0,60}|[\\x00-\\x1f\\x7f-\\u{9f}\\u{200b}-\\u{206f}\\u{feff}\\u{e0000}-\\u{e007f} a-z]{0,30}") {
            let e = escape(&s);
            proptest::prop_assert!(!e.chars().any(needs_escape), "{:?} -> {:?}", s, e);
            if !s.chars().any(needs_escape) {
                proptest::prop_assert_eq!(e.as_ref(), s.as_str());
            }
        }
    }
}
