//! How the bot chooses what to say to a plain message, the same way for
//! every provider:
//!
//! 1. a taught answer close enough to the question is the answer, as is;
//! 2. greetings, thanks and other small talk go to the language model;
//! 3. taught answers near the question go to the language model as the
//!    only facts it may use, and its answer is kept only if every name
//!    and number in it comes from those facts or the question;
//! 4. otherwise the bot says it does not know yet, names the nearest
//!    taught question, and says how to teach it.
//!
//! The language model never sees its own earlier answers: the channel's
//! history holds only turns answered from what was taught.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::knowledge::{Knowledge, SmallTalk, Verdict};
use super::retrieval::{contains_term, names_in, terms};
use super::{Asked, ChannelHistory, ModelError, Progress, Scope};

/// What the bot says when nothing it learned matches.
pub const DONT_KNOW: &str = "I don't know that yet.";
/// How a user or an operator can teach it.
pub const TEACH: &str = "An operator can teach me with `!train`, and you can correct my answers with `!correct`.";

/// A language model: the local one, or a server's.
#[async_trait]
pub trait Generator: Send + Sync {
    /// A reply to `question` after the system prompt and earlier turns.
    async fn generate(&self, request: Generation) -> Result<String, ModelError>;
    /// [`generate`](Self::generate), with the reply so far in `partial`
    /// as it is written; by default, nothing before the end.
    async fn generate_streamed(&self, request: Generation, partial: Progress) -> Result<String, ModelError> {
        drop(partial);
        self.generate(request).await
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Whose teaching it answers for: a server's fine-tuned model is its own.
    pub scope: Scope,
    pub system: String,
    pub turns: Vec<(String, String)>,
    pub question: String,
}

/// What to do with a question nothing taught is near.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unknown {
    /// Say so (the default): a small model invents.
    #[default]
    Decline,
    /// Let the language model answer from what it knows.
    Generate,
}

/// The share of a grounded answer's content words that must come from the
/// facts or the question: a small model that drifts off writes words of
/// its own.
const MIN_SUPPORTED_SHARE: f32 = 0.6;

/// How an answer came about, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Taught,
    Grounded,
    SmallTalk,
    Generated,
    Unknown,
}

pub struct Answerer {
    knowledge: Arc<Knowledge>,
    generator: Option<Arc<dyn Generator>>,
    history: ChannelHistory,
    system_prompt: String,
    unknown: Unknown,
}

impl Answerer {
    pub fn new(
        knowledge: Arc<Knowledge>,
        generator: Option<Arc<dyn Generator>>,
        system_prompt: String,
        context_turns: usize,
        unknown: Unknown,
    ) -> Answerer {
        Answerer { knowledge, generator, history: ChannelHistory::new(context_turns), system_prompt, unknown }
    }

    pub fn knowledge(&self) -> &Arc<Knowledge> {
        &self.knowledge
    }

    /// The answer to a user's message in `channel`, and where it came from.
    /// With `progress`, a reply the language model writes freely (small
    /// talk) shows there as it is written, whole sentences that pass the
    /// same check as the whole; answers that must be checked whole
    /// (grounded ones) show only at the end.
    pub async fn answer(
        &self,
        asked: Asked<'_>,
        prompt: &str,
        progress: Option<Progress>,
    ) -> Result<(String, Source), ModelError> {
        if prompt.trim().is_empty() {
            return Err(ModelError::Invalid("the message is empty".into()));
        }
        let channel = asked.channel;
        let (verdict, small_talk) = self.knowledge.judge(asked.scope, prompt).await?;
        tracing::debug!(?verdict, ?small_talk, "retrieval");
        let nearest = match verdict {
            Verdict::Known { answer, .. } => {
                self.history.push(channel, prompt, &answer);
                return Ok((answer, Source::Taught));
            }
            _ if small_talk.is_some() => {
                let kind = small_talk.unwrap_or(SmallTalk::Other);
                return Ok((self.small_talk(asked.scope, prompt, kind, progress).await, Source::SmallTalk));
            }
            Verdict::Near { facts, .. } => {
                if let Some(answer) = self.grounded(asked, prompt, &facts).await? {
                    return Ok((answer, Source::Grounded));
                }
                facts.into_iter().next().map(|(question, _)| question)
            }
            Verdict::Unknown { nearest, .. } => nearest,
        };
        if let (Unknown::Generate, Some(generator)) = (self.unknown, &self.generator) {
            let request = Generation {
                scope: asked.scope.clone(),
                system: self.system_prompt.clone(),
                turns: self.history.turns(channel),
                question: prompt.to_string(),
            };
            // The operator chose free answers: shown as written, unchecked.
            let answer = streamed(generator.as_ref(), request, progress, |_| true).await?;
            if !answer.trim().is_empty() {
                return Ok((answer, Source::Generated));
            }
        }
        Ok((dont_know(nearest.as_deref()), Source::Unknown))
    }

    /// A language model's answer from `facts` only, or `None` when it
    /// could not give one that sticks to them.
    async fn grounded(
        &self,
        asked: Asked<'_>,
        question: &str,
        facts: &[(String, String)],
    ) -> Result<Option<String>, ModelError> {
        let Some(generator) = &self.generator else { return Ok(None) };
        let mut system = format!(
            "{}\nAnswer the user's question using only the facts below. If they do not answer it, reply: I don't know.\n\nFacts:",
            self.system_prompt
        );
        for (q, a) in facts {
            system.push_str(&format!("\n- Q: {} A: {}", one_line(q), one_line(a)));
        }
        let request = Generation {
            scope: asked.scope.clone(),
            system,
            turns: self.history.turns(asked.channel),
            question: question.to_string(),
        };
        let answer = match generator.generate(request).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "the language model failed; answering that the bot does not know");
                return Ok(None);
            }
        };
        if declines(&answer) {
            return Ok(None);
        }
        let sources: Vec<&str> = facts.iter().flat_map(|(q, a)| [q.as_str(), a.as_str()]).chain([question]).collect();
        let invented = unsupported(&answer, &sources, self.knowledge.dictionary());
        if !invented.is_empty() {
            tracing::info!(?invented, answer, "a generated answer named what the facts do not; not sent");
            return Ok(None);
        }
        let share = supported_share(&answer, &sources);
        if share < MIN_SUPPORTED_SHARE {
            tracing::info!(share, answer, "a generated answer strays from the facts; not sent");
            return Ok(None);
        }
        Ok(Some(answer))
    }

    /// A short friendly reply. From the language model when there is one
    /// and it invents nothing; else a fixed one.
    async fn small_talk(&self, scope: &Scope, prompt: &str, kind: SmallTalk, progress: Option<Progress>) -> String {
        if let Some(generator) = &self.generator {
            let request = Generation {
                scope: scope.clone(),
                system: format!(
                    "{}\nReply in one or two short, friendly sentences. Do not state any facts.",
                    self.system_prompt
                ),
                turns: Vec::new(),
                question: prompt.to_string(),
            };
            let dictionary = self.knowledge.dictionary();
            let invents_nothing = |text: &str| unsupported(text, &[prompt], dictionary).is_empty();
            match streamed(generator.as_ref(), request, progress, invents_nothing).await {
                Ok(answer) if !answer.trim().is_empty() => {
                    let invented = unsupported(&answer, &[prompt], self.knowledge.dictionary());
                    if invented.is_empty() {
                        return answer;
                    }
                    tracing::info!(?invented, answer, "small talk named things; a fixed reply instead");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the language model failed; a fixed reply instead"),
            }
        }
        match kind {
            SmallTalk::Greeting | SmallTalk::HowAreYou => "Hello! Ask me a question, or type `!help`.",
            SmallTalk::Thanks => "You're welcome!",
            SmallTalk::Farewell => "Goodbye!",
            SmallTalk::Other => "🙂",
        }
        .to_string()
    }

    /// The output `!test` scores: the taught answer, a label, or "" when
    /// the bot would say it does not know.
    pub async fn predict(&self, scope: &Scope, input: &str) -> Result<String, ModelError> {
        Ok(self.knowledge.predict(scope, input).await?.unwrap_or_default())
    }
}

/// `generator`'s reply; with `progress`, its whole sentences are shown
/// there as they are written, as long as `fit` holds for what would be
/// shown (the first that fails stops the showing; the caller still judges
/// the complete reply).
async fn streamed(
    generator: &dyn Generator,
    request: Generation,
    progress: Option<Progress>,
    fit: impl Fn(&str) -> bool,
) -> Result<String, ModelError> {
    let Some(progress) = progress else { return generator.generate(request).await };
    let (partial, mut written) = tokio::sync::watch::channel(String::new());
    let show = async {
        while written.changed().await.is_ok() {
            let text = written.borrow_and_update().clone();
            let whole = whole_sentences(&text);
            if whole.len() > progress.borrow().len() {
                if !fit(whole) {
                    break;
                }
                progress.send_replace(whole.to_string());
            }
        }
    };
    tokio::join!(generator.generate_streamed(request, partial), show).0
}

/// `text` up to the end of its last whole sentence: a `.`, `!`, `?` or
/// line break that more text follows (a final `.` may yet be `3.5`).
pub fn whole_sentences(text: &str) -> &str {
    let mut end = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_space = chars.peek().is_some_and(|(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?' | '\n') && (next_is_space || c == '\n') && chars.peek().is_some() {
            end = i + c.len_utf8();
        }
    }
    text[..end].trim_end()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "I don't know", with the nearest taught question and how to teach.
pub fn dont_know(nearest: Option<&str>) -> String {
    match nearest {
        Some(question) => {
            format!("{DONT_KNOW} The nearest thing I was taught is “{}”. {TEACH}", question.trim())
        }
        None => format!("{DONT_KNOW} {TEACH}"),
    }
}

/// The model said, one way or another, that the facts do not answer.
fn declines(answer: &str) -> bool {
    let lower = answer.to_lowercase();
    ["don't know", "do not know", "not sure", "no information", "cannot answer", "can't answer", "not mentioned"]
        .iter()
        .any(|p| lower.contains(p))
}

/// The names and numbers of `answer` that none of `sources` contains.
pub fn unsupported(answer: &str, sources: &[&str], dictionary: &HashSet<String>) -> Vec<String> {
    let allowed: HashSet<String> = sources.iter().flat_map(|s| terms(s)).collect();
    sentences(answer)
        .flat_map(|s| names_in(s, dictionary, |_| false))
        .filter(|name| !contains_term(&allowed, name))
        .collect()
}

/// The share of `answer`'s content words (stemmed) that `sources` have.
fn supported_share(answer: &str, sources: &[&str]) -> f32 {
    let allowed: HashSet<String> = sources.iter().flat_map(|s| terms(s)).collect();
    let said = terms(answer);
    if said.is_empty() {
        return 0.0;
    }
    let found = said.iter().filter(|w| contains_term(&allowed, w)).count();
    found as f32 / said.len() as f32
}

/// Sentences, so that each one's first word is read as a sentence's.
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['.', '!', '?', '\n', ':']).filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> HashSet<String> {
        ["the", "club", "was", "founded", "by", "in", "paris", "capital", "france", "is", "hello"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn invented_names_and_numbers_are_caught() {
        let facts = ["Who founded Lanternmoor?", "Lanternmoor was founded by Ysolde Varga in 2019."];
        assert!(unsupported("Ysolde Varga founded it in 2019.", &facts, &dictionary()).is_empty());
        assert_eq!(
            unsupported("Lanternmoor was founded by Dr. Elena Martinez in 1998.", &facts, &dictionary()),
            ["1998", "elena", "martinez"]
        );
        // The first word of a sentence is not a name for its capital alone.
        assert!(unsupported("The club was founded by Ysolde Varga.", &facts, &dictionary()).is_empty());
    }

    #[test]
    fn answers_that_stray_from_the_facts_are_told_apart() {
        let facts = ["Is NSFW content allowed?", "No. NSFW content is banned everywhere on Lanternmoor."];
        assert!(supported_share("No, NSFW content is banned on Lanternmoor.", &facts) >= MIN_SUPPORTED_SHARE);
        let drift = "I'm sorry for your loss! Please do not use any of my personal information unless allowed.";
        assert!(supported_share(drift, &facts) < MIN_SUPPORTED_SHARE);
    }

    #[test]
    fn only_whole_sentences_are_shown() {
        assert_eq!(whole_sentences("Hello there"), "");
        assert_eq!(whole_sentences("Hello there."), "", "the last `.` may be a decimal point");
        assert_eq!(whole_sentences("Hello there. How"), "Hello there.");
        assert_eq!(whole_sentences("It costs 3.5 euros! Then"), "It costs 3.5 euros!");
        assert_eq!(whole_sentences("One.\nTwo"), "One.");
        assert_eq!(whole_sentences("Ça va? Oui"), "Ça va?");
    }

    #[test]
    fn declining_is_recognised() {
        assert!(declines("I'm sorry, I don't know."));
        assert!(declines("The facts do not answer that; I am not sure."));
        assert!(!declines("Paris is the capital of France."));
    }

    #[test]
    fn dont_know_names_the_nearest_question() {
        assert_eq!(
            dont_know(Some("Who founded Lanternmoor? ")),
            format!("{DONT_KNOW} The nearest thing I was taught is “Who founded Lanternmoor?”. {TEACH}")
        );
        assert!(dont_know(None).starts_with("I don't know that yet. An operator"));
    }
}
