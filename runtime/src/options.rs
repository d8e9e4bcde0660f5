//! Typed options (`sandbot:bot@0.2.0`): Discord's rules for declaring
//! them, checking the values a slash command brings, and reading the same
//! options from a prefix command's text.

use std::collections::HashSet;

use crate::bindings::types::{CommandInfo, CommandOption, GivenOption, OptionKind, OptionValue};
use crate::platform::{Attachment, OptionInput};

/// Discord's limits on application commands.
const MAX_NAME: usize = 32;
const MAX_DESCRIPTION: usize = 100;
const MAX_OPTIONS: usize = 25;
const MAX_CHOICES: usize = 25;
const MAX_TOTAL_CHARS: usize = 4000;

/// Whether `name` is a valid command or option name on Discord: 1–32
/// characters, each a letter, a digit, `-`, `_` or `'` (or a Devanagari or
/// Thai sign), and lower case wherever a letter has a lower case.
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME).contains(&count)
        && name.chars().all(|c| {
            let allowed = c.is_alphanumeric()
                || matches!(c, '-' | '_' | '\'')
                || ('\u{0900}'..='\u{097F}').contains(&c)
                || ('\u{0E00}'..='\u{0E7F}').contains(&c);
            allowed && c.to_lowercase().eq(std::iter::once(c))
        })
}

/// Checks a command's slash form against Discord's rules: what `sandbot
/// check` and loading a 0.2.0 component refuse. `name` is the name it is
/// configured (and registered) under.
pub fn check_slash(name: &str, info: &CommandInfo) -> Result<(), String> {
    if !valid_name(name) {
        return Err(format!("`{name}` is not a slash command name (lower case letters, digits, - or _, at most 32)"));
    }
    let description = info.summary.chars().count();
    if !(1..=MAX_DESCRIPTION).contains(&description) {
        return Err(format!("a summary of {description} characters; a slash command's is 1 to {MAX_DESCRIPTION}"));
    }
    if info.options.len() > MAX_OPTIONS {
        return Err(format!("{} options; at most {MAX_OPTIONS}", info.options.len()));
    }
    let mut seen = HashSet::new();
    let mut optional_seen = false;
    let mut total = name.chars().count() + description;
    for option in &info.options {
        let what = format!("option `{}`", option.name);
        if !valid_name(&option.name) {
            return Err(format!("{what}: not an option name (lower case letters, digits, - or _, at most 32)"));
        }
        if !seen.insert(option.name.as_str()) {
            return Err(format!("{what} is declared twice"));
        }
        let description = option.description.chars().count();
        if !(1..=MAX_DESCRIPTION).contains(&description) {
            return Err(format!("{what}: a description of {description} characters; 1 to {MAX_DESCRIPTION}"));
        }
        if option.required && optional_seen {
            return Err(format!("{what} is required but comes after an optional one"));
        }
        optional_seen |= !option.required;
        total += option.name.chars().count() + description;
        if option.choices.len() > MAX_CHOICES {
            return Err(format!("{what}: {} choices; at most {MAX_CHOICES}", option.choices.len()));
        }
        if !option.choices.is_empty()
            && !matches!(option.kind, OptionKind::String | OptionKind::Integer | OptionKind::Number)
        {
            return Err(format!("{what}: only string, integer and number options have choices"));
        }
        for choice in &option.choices {
            let chars = choice.name.chars().count();
            if !(1..=MAX_DESCRIPTION).contains(&chars) {
                return Err(format!("{what}: a choice name of {chars} characters; 1 to {MAX_DESCRIPTION}"));
            }
            let fits = match (&choice.value, option.kind) {
                (OptionValue::String(s), OptionKind::String) => (1..=MAX_DESCRIPTION).contains(&s.chars().count()),
                (OptionValue::Integer(_), OptionKind::Integer) => true,
                (OptionValue::Number(n), OptionKind::Number) => n.is_finite(),
                _ => false,
            };
            if !fits {
                return Err(format!("{what}: the choice `{}` is not a value of the option's kind", choice.name));
            }
            total += chars + text_of(&choice.value).chars().count();
        }
    }
    if total > MAX_TOTAL_CHARS {
        return Err(format!("{total} characters of names, descriptions and choices; at most {MAX_TOTAL_CHARS}"));
    }
    Ok(())
}

/// A value as text: what `args` holds for a slash command.
pub fn text_of(value: &OptionValue) -> String {
    match value {
        OptionValue::String(s) | OptionValue::User(s) | OptionValue::Channel(s) | OptionValue::Role(s) => s.clone(),
        OptionValue::Integer(i) => i.to_string(),
        OptionValue::Number(n) => n.to_string(),
        OptionValue::Boolean(b) => b.to_string(),
        OptionValue::Attachment(a) => a.filename.clone(),
    }
}

/// The argument text of a slash command: the values in declared order,
/// as a prefix command would have typed them. Files are not text: they are
/// the message's attachments, as with a prefix command.
pub fn args_text(declared: &[CommandOption], given: &[GivenOption]) -> String {
    declared
        .iter()
        .filter_map(|d| given.iter().find(|g| g.name == d.name))
        .filter(|g| !matches!(g.value, OptionValue::Attachment(_)))
        .map(|g| text_of(&g.value))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the user typed, as a slash command reads in the chat:
/// `/getfile path:hello.txt`.
pub fn slash_content(name: &str, given: &[GivenOption]) -> String {
    let mut content = format!("/{name}");
    for option in given {
        content.push_str(&format!(" {}:{}", option.name, text_of(&option.value)));
    }
    content
}

/// Checks a slash command's values against the declaration: every name
/// declared, every value of its kind (a string of digits for an integer
/// is taken as the integer), every required option there, choices kept.
/// `Err` is a short reply for the user.
pub fn from_slash(declared: &[CommandOption], given: Vec<(String, OptionInput)>) -> Result<Vec<GivenOption>, String> {
    let mut values = Vec::with_capacity(given.len());
    for (name, input) in given {
        let Some(option) = declared.iter().find(|o| o.name == name) else {
            return Err(format!("this command has no option `{name}`"));
        };
        if values.iter().any(|v: &GivenOption| v.name == name) {
            return Err(format!("the option `{name}` is given twice"));
        }
        let value = typed(option.kind, input).ok_or_else(|| format!("`{name}` takes {}", kind_phrase(option.kind)))?;
        if !option.choices.is_empty() && !option.choices.iter().any(|c| c.value == value) {
            let names: Vec<&str> = option.choices.iter().map(|c| c.name.as_str()).collect();
            return Err(format!("`{name}` is one of: {}", names.join(", ")));
        }
        values.push(GivenOption { name, value });
    }
    if let Some(missing) = declared.iter().find(|o| o.required && !values.iter().any(|v| v.name == o.name)) {
        return Err(format!("`{}` is required", missing.name));
    }
    Ok(values)
}

fn typed(kind: OptionKind, input: OptionInput) -> Option<OptionValue> {
    Some(match (kind, input) {
        (OptionKind::String, OptionInput::String(s)) => OptionValue::String(s),
        (OptionKind::Integer, OptionInput::Integer(i)) => OptionValue::Integer(i),
        (OptionKind::Integer, OptionInput::String(s)) => OptionValue::Integer(s.trim().parse().ok()?),
        (OptionKind::Number, OptionInput::Number(n)) if n.is_finite() => OptionValue::Number(n),
        (OptionKind::Number, OptionInput::Integer(i)) => OptionValue::Number(i as f64),
        (OptionKind::Number, OptionInput::String(s)) => OptionValue::Number(finite(s.trim().parse().ok()?)?),
        (OptionKind::Boolean, OptionInput::Boolean(b)) => OptionValue::Boolean(b),
        (OptionKind::Boolean, OptionInput::String(s)) => OptionValue::Boolean(s.trim().parse().ok()?),
        (OptionKind::User, OptionInput::String(s) | OptionInput::Mention(s)) => OptionValue::User(id(&s, "@")?),
        (OptionKind::Channel, OptionInput::String(s) | OptionInput::Mention(s)) => OptionValue::Channel(id(&s, "#")?),
        (OptionKind::Role, OptionInput::String(s) | OptionInput::Mention(s)) => OptionValue::Role(id(&s, "@&")?),
        (OptionKind::Attachment, OptionInput::Attachment(a)) => OptionValue::Attachment(wit_attachment(a)),
        _ => return None,
    })
}

fn finite(n: f64) -> Option<f64> {
    n.is_finite().then_some(n)
}

/// An id, bare or in a mention (`<@123>`, `<@!123>`, `<#123>`, `<@&123>`).
fn id(text: &str, sigil: &str) -> Option<String> {
    let text = text.trim();
    let inner = match text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        Some(inner) => {
            let inner = inner.strip_prefix(sigil)?;
            // `<@!id>` is the old nickname mention; `<@&id>` is a role's.
            if sigil == "@" {
                inner.strip_prefix('!').unwrap_or(inner)
            } else {
                inner
            }
        }
        None => text,
    };
    (!inner.is_empty() && inner.len() <= 20 && inner.chars().all(|c| c.is_ascii_digit())).then(|| inner.to_string())
}

fn kind_phrase(kind: OptionKind) -> &'static str {
    match kind {
        OptionKind::String => "text",
        OptionKind::Integer => "a whole number",
        OptionKind::Number => "a number",
        OptionKind::Boolean => "true or false",
        OptionKind::User => "a user",
        OptionKind::Channel => "a channel",
        OptionKind::Role => "a role",
        OptionKind::Attachment => "a file",
    }
}

fn wit_attachment(a: Attachment) -> crate::bindings::types::Attachment {
    crate::bindings::types::Attachment { id: a.id, filename: a.filename, content_type: a.content_type, size: a.size }
}

/// The options a prefix command's text gives, where the host can read
/// them: words in declared order (the last string option takes the rest
/// of the line), each parsed as its kind and matched against its choices
/// (by name or value, any case); reading stops at the first word that does
/// not fit. Attachment options take the message's files in order.
pub fn from_text(declared: &[CommandOption], args: &str, attachments: &[Attachment]) -> Vec<GivenOption> {
    let mut given = Vec::new();
    let mut files = attachments.iter();
    for option in declared.iter().filter(|o| o.kind == OptionKind::Attachment) {
        let Some(file) = files.next() else { break };
        given.push(GivenOption {
            name: option.name.clone(),
            value: OptionValue::Attachment(wit_attachment(file.clone())),
        });
    }
    let textual: Vec<&CommandOption> = declared.iter().filter(|o| o.kind != OptionKind::Attachment).collect();
    let mut rest = args.trim();
    for (i, option) in textual.iter().enumerate() {
        if rest.is_empty() {
            break;
        }
        let last = i + 1 == textual.len();
        let (word, after) = if last && option.kind == OptionKind::String {
            (rest, "")
        } else {
            match rest.split_once(char::is_whitespace) {
                Some((word, after)) => (word, after.trim_start()),
                None => (rest, ""),
            }
        };
        let Some(value) = from_word(option, word) else { break };
        given.push(GivenOption { name: option.name.clone(), value });
        rest = after;
    }
    given
}

/// One word as the value of `option`, or `None` when it does not fit.
fn from_word(option: &CommandOption, word: &str) -> Option<OptionValue> {
    if !option.choices.is_empty() {
        return option
            .choices
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(word) || text_of(&c.value).eq_ignore_ascii_case(word))
            .map(|c| c.value.clone());
    }
    let input = match option.kind {
        OptionKind::Boolean => match word.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => OptionInput::Boolean(true),
            "false" | "no" | "off" => OptionInput::Boolean(false),
            _ => return None,
        },
        OptionKind::User | OptionKind::Channel | OptionKind::Role => OptionInput::Mention(word.to_string()),
        _ => OptionInput::String(word.to_string()),
    };
    typed(option.kind, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::OptionChoice;

    fn option(name: &str, kind: OptionKind, required: bool) -> CommandOption {
        CommandOption { name: name.into(), description: format!("The {name}"), kind, required, choices: Vec::new() }
    }

    fn info(options: Vec<CommandOption>) -> CommandInfo {
        CommandInfo { name: "x".into(), summary: "Does x.".into(), usage: "x".into(), needs: Vec::new(), options }
    }

    #[test]
    fn names_follow_discords_rules() {
        for good in ["hi", "select_dataset", "get-file", "día", "なまえ", "x2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Hi", "get file", "a!", &"a".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn declarations_that_discord_refuses_are_refused() {
        assert!(check_slash("x", &info(vec![option("a", OptionKind::String, true)])).is_ok());
        let order = check_slash(
            "x",
            &info(vec![option("a", OptionKind::String, false), option("b", OptionKind::Integer, true)]),
        );
        assert!(order.unwrap_err().contains("after an optional"));
        assert!(check_slash("X", &info(vec![])).is_err());
        let mut long = info(vec![]);
        long.summary = "s".repeat(101);
        assert!(check_slash("x", &long).unwrap_err().contains("summary"));
        let mut choices = option("n", OptionKind::Integer, true);
        choices.choices = vec![OptionChoice { name: "one".into(), value: OptionValue::String("1".into()) }];
        assert!(check_slash("x", &info(vec![choices])).unwrap_err().contains("kind"));
        let twice =
            check_slash("x", &info(vec![option("a", OptionKind::String, true), option("a", OptionKind::User, true)]));
        assert!(twice.unwrap_err().contains("twice"));
    }

    #[test]
    fn slash_values_are_checked_against_the_declaration() {
        let declared = vec![option("id", OptionKind::Integer, true), option("text", OptionKind::String, false)];
        let ok = from_slash(&declared, vec![("id".into(), OptionInput::String("42".into()))]).unwrap();
        assert_eq!(ok[0].value, OptionValue::Integer(42));
        assert!(from_slash(&declared, vec![("id".into(), OptionInput::String("x".into()))])
            .unwrap_err()
            .contains("whole number"));
        assert!(from_slash(&declared, vec![]).unwrap_err().contains("required"));
        assert!(from_slash(&declared, vec![("nope".into(), OptionInput::Boolean(true))])
            .unwrap_err()
            .contains("no option"));
    }

    #[test]
    fn prefix_text_fills_the_options_it_can() {
        let declared = vec![option("message-id", OptionKind::Integer, true), option("text", OptionKind::String, true)];
        let given = from_text(&declared, "  123   a better answer ", &[]);
        assert_eq!(given.len(), 2);
        assert_eq!(given[0].value, OptionValue::Integer(123));
        assert_eq!(given[1].value, OptionValue::String("a better answer".into()));
        // The first word that does not fit ends the reading.
        assert!(from_text(&declared, "abc a better answer", &[]).is_empty());
        let mut mode = option("mode", OptionKind::String, false);
        mode.choices = vec![OptionChoice { name: "Fast".into(), value: OptionValue::String("fast".into()) }];
        let people = vec![mode, option("who", OptionKind::User, false), option("file", OptionKind::Attachment, false)];
        let file = Attachment { id: "9".into(), filename: "a.txt".into(), content_type: None, size: 3 };
        let given = from_text(&people, "FAST <@!77>", std::slice::from_ref(&file));
        assert_eq!(given.len(), 3);
        assert!(given.iter().any(|g| g.value == OptionValue::String("fast".into())));
        assert!(given.iter().any(|g| g.value == OptionValue::User("77".into())));
        assert_eq!(args_text(&people, &given), "fast 77");
    }
}
