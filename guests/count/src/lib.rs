//! `!count <text>` — counts the words of a text and names the most common
//! one. The same command as `guests/python/wordcount` and
//! `guests/javascript/wordcount`, so the three languages can be compared
//! on the same message (`cargo bench -p sandbot --bench languages`).
//!
//! ```text
//! !count <text…>
//! ```

use sandbot_sdk::{command, log_debug, reply, Command, CommandInfo, CommandOption, Error, Invocation};

struct Count;

impl Command for Count {
    fn describe() -> CommandInfo {
        CommandInfo::new("count", "Counts the words of a text.", "count <text…>")
            .needs(&["chat.send-message"])
            .option(CommandOption::string("text", "The text to count").required())
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let words: Vec<String> = invocation
            .args
            .split_whitespace()
            .map(|w| w.trim_matches(|c| ".,;:!?\"'()".contains(c)).to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(Self::usage_error(&invocation, "Give me some text to count."));
        }
        // The first word to reach the highest count, as the Python and
        // JavaScript versions pick it.
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for word in &words {
            match counts.iter_mut().find(|(w, _)| w == word) {
                Some((_, n)) => *n += 1,
                None => counts.push((word, 1)),
            }
        }
        let (word, times) = counts.iter().fold(counts[0], |best, next| if next.1 > best.1 { *next } else { best });
        log_debug(format!("counted {} words", words.len()));
        reply(format!("{} words; the most common is “{word}” ({times}×).", words.len()))?;
        Ok(())
    }
}

command!(Count);

#[cfg(test)]
mod tests {
    use sandbot_sdk::testing::{invocation, FakeHost};

    use super::Count;

    #[test]
    fn counts_words_and_names_the_most_common() {
        let done = FakeHost::new().run::<Count>(invocation("count", "The cat and the hat, and THE bat."));
        assert_eq!(done.replies, ["8 words; the most common is “the” (3×)."]);
        assert_eq!(done.logs.len(), 1);
    }

    #[test]
    fn nothing_to_count_says_how() {
        let done = FakeHost::new().run::<Count>(invocation("count", " ... "));
        assert_eq!(done.result, Err("Give me some text to count.\nUsage: `!count <text…>`".into()));
    }
}
