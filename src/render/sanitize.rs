//! Terminal safety for attacker-controlled text (process names, command
//! lines): control characters and bidirectional overrides are escaped, so a
//! process cannot forge table rows, move the cursor or reorder what you read.

use std::borrow::Cow;

/// Escapes C0/C1 controls, DEL and Unicode bidi controls as `\n`, `\x1b`,
/// `\u{202e}`. Text with none of them is returned as is.
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

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Unicode bidirectional formatting characters (the "Trojan Source" set).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
            ("ünïcödé ✓", "ünïcödé ✓"),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
