//! Argument splitting with quotes, the way people type in chat.

use std::fmt;

/// Why a line of arguments could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// A `"` or `'` was opened and never closed.
    UnclosedQuote(char),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::UnclosedQuote(q) => write!(f, "A quote ({q}) is never closed."),
        }
    }
}

impl std::error::Error for ArgsError {}

/// Splits on whitespace; `"double"` and `'single'` quotes group words, and
/// a backslash escapes the next character outside single quotes.
///
/// `a "b c" 'd\e'` → `["a", "b c", "d\e"]`.
pub fn split_args(line: &str) -> Result<Vec<String>, ArgsError> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => current.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                in_word = true;
                quote = Some(c);
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(ArgsError::UnclosedQuote(q));
    }
    if in_word {
        args.push(current);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any line: split or refused, never a panic.
        #[test]
        fn fuzz_split_args_takes_any_line(line in "\\PC*") {
            let _ = split_args(&line);
        }

        /// Plain words come back as typed, whatever the spacing.
        #[test]
        fn fuzz_split_args_keeps_plain_words(words in proptest::collection::vec("[a-zA-Z0-9_.-]{1,12}", 0..8), gap in "[ \t]{1,3}") {
            let line = words.join(&gap);
            proptest::prop_assert_eq!(split_args(&line).unwrap(), words);
        }

        /// A quoted group is one argument, spaces and all.
        #[test]
        fn fuzz_split_args_groups_quotes(inner in "[a-z ]{0,20}") {
            proptest::prop_assert_eq!(split_args(&format!("x \"{inner}\" y")).unwrap(), vec!["x".to_string(), inner, "y".to_string()]);
        }
    }

    #[test]
    fn splits_words_and_quotes() {
        assert_eq!(split_args(r#"a "b c" 'd\e'"#).unwrap(), vec!["a", "b c", r"d\e"]);
        assert_eq!(split_args("  one   two ").unwrap(), vec!["one", "two"]);
        assert_eq!(split_args(r#"x\ y"#).unwrap(), vec!["x y"]);
        assert_eq!(split_args(r#""""#).unwrap(), vec![""]);
        assert!(split_args("").unwrap().is_empty());
    }

    #[test]
    fn refuses_unclosed_quote() {
        assert_eq!(split_args(r#"a "b"#), Err(ArgsError::UnclosedQuote('"')));
    }
}
