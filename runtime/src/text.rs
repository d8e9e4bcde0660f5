//! Splitting long answers at the platform's limit, never cutting them off;
//! showing a guest's text on a terminal or in the log without letting it
//! steer either.

/// `text` with control characters shown as escapes (`\n`, `\u{1b}`), and
/// with Unicode's direction overrides too: a guest's text on a terminal
/// could otherwise move the cursor, recolour or clear the screen, and in
/// the log it could start a line that looks like the host's own.
pub fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        let steers = c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if steers {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Splits `text` into pieces of at most `max_chars` characters, preferring
/// to break after a newline, then after whitespace, and only then inside a
/// word. Pieces are never blank, except that a blank text is one empty
/// piece (a message with only files).
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    loop {
        // Byte offset of the first character past the limit, if any.
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            let last = rest.trim_end();
            if !last.is_empty() || pieces.is_empty() {
                pieces.push(last.to_string());
            }
            return pieces;
        };
        let window = &rest[..limit];
        // Break after the last newline, else after the last whitespace; a
        // break at the very start would make an empty piece, so then cut
        // the word at the limit.
        let (cut, hard) = match window.rfind('\n').or_else(|| window.rfind(char::is_whitespace)) {
            Some(at) if at > 0 => (at + window[at..].chars().next().map_or(1, char::len_utf8), false),
            _ => (limit, true),
        };
        let piece = rest[..cut].trim_end();
        if !piece.is_empty() {
            pieces.push(piece.to_string());
        }
        rest = &rest[cut..];
        if hard {
            // The space the cut fell on is a separator, not text.
            rest = rest.trim_start();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_s_text_cannot_steer_a_terminal_or_forge_a_log_line() {
        let forged = "done\n2026-11-30T00:00:00Z  INFO sandbot: operator logged in\x1b[2J\u{202e}";
        let shown = printable(forged);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        assert_eq!(shown, "done\\n2026-11-30T00:00:00Z  INFO sandbot: operator logged in\\u{1b}[2J\\u{202e}");
        assert_eq!(printable("Привет, 世界 👋"), "Привет, 世界 👋");
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split_message("hello", 2000), vec!["hello"]);
        assert_eq!(split_message("", 2000), vec![""]);
    }

    #[test]
    fn prefers_lines_then_words() {
        assert_eq!(split_message("aaa\nbbb ccc", 8), vec!["aaa", "bbb ccc"]);
        assert_eq!(split_message("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        assert_eq!(split_message("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn never_loses_text_and_respects_the_limit() {
        let text: String = (0..3000).map(|i| format!("word{i} ")).collect::<String>() + "ñé漢字🙂";
        let pieces = split_message(&text, 2000);
        assert!(pieces.iter().all(|p| p.chars().count() <= 2000));
        let words: Vec<&str> = text.split_whitespace().collect();
        let rejoined: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
        assert_eq!(words, rejoined);
    }

    #[test]
    fn never_sends_an_empty_piece() {
        let text = format!("{} {}", "x".repeat(20), "y".repeat(25));
        let pieces = split_message(&text, 20);
        assert_eq!(pieces, ["x".repeat(20), "y".repeat(20), "y".repeat(5)]);
        let text = format!("{}\n{}", "x".repeat(20), "y".repeat(5));
        assert_eq!(split_message(&text, 20), ["x".repeat(20), "y".repeat(5)]);
        assert_eq!(split_message("   ", 2), [""]);
        assert_eq!(split_message(&format!("{} ", "x".repeat(20)), 20), ["x".repeat(20)]);
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(2000);
        assert_eq!(split_message(&text, 2000).len(), 1);
        assert_eq!(split_message(&(text + "é"), 2000).len(), 2);
    }
}
