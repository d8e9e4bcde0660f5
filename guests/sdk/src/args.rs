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
