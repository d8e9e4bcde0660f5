//! The kind of answer a question asks for, and whether a taught answer is
//! of that kind: "when" wants a time, "how many" a number, "who" someone,
//! "where" a place, "what does NSFW stand for" a meaning.
//!
//! A sentence vector hears the topic and not the question word: "when was
//! Minecraft released?" lands on "What is the address of the Minecraft
//! server?", and "what is a Dobsonian telescope?" on "What telescope does
//! the club own?". Neither answer has what was asked for (a date, a
//! definition), so neither is the answer, however close the topic. The
//! classes are the coarse ones of question-answering research (TREC's:
//! abbreviation and description, number, time, location, person); the
//! evidence for each is deliberately generous, since missing a kind only
//! leaves the score as it was, while a wrong mismatch costs a right answer.

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A moment or a span: when, what day, how often, since when.
    Time,
    /// How long: a span of time, or any amount.
    Duration,
    /// How many, how much, how big, how old.
    Number,
    /// Where, which channel, what address.
    Place,
    /// Who, whose.
    Person,
    /// What X means or stands for, or what a thing is.
    Meaning,
}

const WH: &[&str] = &["when", "where", "who", "whom", "whose", "what", "which", "how"];

/// Nouns after "what"/"which" that say the kind ("what day", "which channel").
const TIME_NOUNS: &[&str] = &["time", "times", "day", "days", "date", "dates", "year", "month", "hour", "weekday"];
const PLACE_NOUNS: &[&str] =
    &["channel", "place", "address", "city", "country", "location", "room", "site", "website", "url", "link"];
const NUMBER_NOUNS: &[&str] = &["number", "amount", "price", "cost", "size", "percentage", "age"];

/// The kind of answer `question` asks for, from its first question word;
/// `None` when it could be anything ("what is the name of…", "how do I…",
/// or no question word at all).
pub fn asked(question: &str) -> Option<Kind> {
    let words = words(question);
    let at = words.iter().position(|w| WH.contains(&w.as_str()))?;
    let after = |n: usize| words.get(at + n).map(String::as_str).unwrap_or("");
    let rest = &words[at + 1..];
    match words[at].as_str() {
        "when" => Some(Kind::Time),
        "where" => Some(Kind::Place),
        // "who can post links?", "who should I tell?": asks what is
        // allowed or where to go as often as for someone.
        "who" if matches!(after(1), "can" | "may" | "should" | "must" | "could" | "gets") => None,
        "who" | "whom" | "whose" => Some(Kind::Person),
        "how" => match after(1) {
            "long" => Some(Kind::Duration),
            "often" | "soon" | "early" | "late" => Some(Kind::Time),
            "many" | "much" | "big" | "large" | "far" | "tall" | "high" | "old" | "heavy" | "fast" => {
                Some(Kind::Number)
            }
            _ => None,
        },
        // "what"/"which": the kind is in what follows.
        _ => {
            let means = rest.iter().any(|w| w == "mean" || w == "meaning" || w == "definition")
                || rest.windows(2).any(|p| p[0] == "stand" && p[1] == "for");
            if means {
                return Some(Kind::Meaning);
            }
            // "what is a Dobsonian?": a thing, not one of the community's;
            // but "what is a good channel for memes?" asks for a channel.
            if matches!(after(1), "is" | "s") && matches!(after(2), "a" | "an") {
                let thing = &rest[2.min(rest.len())..];
                let plain = thing.len() <= 3
                    && !thing.iter().any(|w| {
                        let w = w.as_str();
                        TIME_NOUNS.contains(&w) || PLACE_NOUNS.contains(&w) || NUMBER_NOUNS.contains(&w)
                    })
                    && !matches!(
                        thing.first().map(String::as_str),
                        Some("good" | "nice" | "great" | "way" | "easy" | "quick" | "better")
                    );
                return if plain { Some(Kind::Meaning) } else { None };
            }
            let head = rest.iter().map(String::as_str).find(|w| !matches!(*w, "is" | "s" | "was" | "are" | "the"))?;
            if TIME_NOUNS.contains(&head) {
                Some(Kind::Time)
            } else if PLACE_NOUNS.contains(&head) {
                Some(Kind::Place)
            } else if NUMBER_NOUNS.contains(&head) {
                Some(Kind::Number)
            } else {
                None
            }
        }
    }
}

/// Whether `answer` can be an answer of `kind`.
pub fn gives(answer: &str, kind: Kind) -> bool {
    let words = words(answer);
    let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    match kind {
        Kind::Time => time(answer, &words),
        Kind::Duration => time(answer, &words) || number(answer, &words),
        Kind::Number => number(answer, &words),
        Kind::Place => {
            answer.contains('#')
                || domain(answer)
                || named(answer)
                || has(&[
                    "channel", "channels", "server", "site", "website", "page", "link", "forum", "thread", "room",
                    "voice", "category", "here", "there", "pinned", "dm", "dms", "in", "at", "on", "inside",
                ])
        }
        Kind::Person => {
            answer.contains('@')
                || named(answer)
                || has(&[
                    "moderator",
                    "moderators",
                    "mod",
                    "mods",
                    "admin",
                    "admins",
                    "administrator",
                    "administrators",
                    "staff",
                    "owner",
                    "owners",
                    "founder",
                    "founders",
                    "team",
                    "member",
                    "members",
                    "people",
                    "person",
                    "user",
                    "users",
                    "everyone",
                    "anyone",
                    "nobody",
                    "someone",
                    "volunteers",
                    "organisers",
                    "organizers",
                    "host",
                    "hosts",
                ])
        }
        Kind::Meaning => {
            has(&["means", "mean", "meaning", "refers", "abbreviation", "acronym", "definition"])
                || words.windows(2).any(|p| {
                    matches!((p[0].as_str(), p[1].as_str()), ("stands" | "short", "for") | ("is" | "are", "a" | "an"))
                        || (matches!(p[0].as_str(), "kind" | "type" | "sort") && p[1] == "of")
                })
        }
    }
}

/// Whether an entry, asked `question` and answering `answer`, answers a
/// question of `kind`: its own question asks for the same, or its answer
/// has something of the kind.
pub fn answers(question: &str, answer: &str, kind: Kind) -> bool {
    asked(question) == Some(kind) || gives(answer, kind)
}

/// Lower-case words, split at anything but letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn time(answer: &str, words: &[String]) -> bool {
    const WORDS: &[&str] = &[
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mondays",
        "tuesdays",
        "wednesdays",
        "thursdays",
        "fridays",
        "saturdays",
        "sundays",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "weekend",
        "weekends",
        "weekly",
        "daily",
        "monthly",
        "yearly",
        "annually",
        "nightly",
        "every",
        "each",
        "second",
        "seconds",
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
        "fortnight",
        "month",
        "months",
        "year",
        "years",
        "ago",
        "since",
        "until",
        "before",
        "after",
        "today",
        "tomorrow",
        "tonight",
        "yesterday",
        "morning",
        "afternoon",
        "evening",
        "night",
        "noon",
        "midnight",
        "now",
        "soon",
        "never",
        "always",
        "once",
        "twice",
        "utc",
        "gmt",
        "cet",
        "est",
        "pst",
        "am",
        "pm",
    ];
    let lower = answer.to_lowercase();
    words.iter().any(|w| WORDS.contains(&w.as_str()) || year(w) || clock(w))
        || lower.contains("a.m.")
        || lower.contains("p.m.")
}

/// A year of the last two centuries, or one to come.
fn year(word: &str) -> bool {
    word.len() == 4 && word.parse::<u32>().is_ok_and(|y| (1900..=2199).contains(&y))
}

/// "8pm", "20h": a digit glued to a time unit.
fn clock(word: &str) -> bool {
    let unit = word.trim_start_matches(|c: char| c.is_ascii_digit());
    unit.len() < word.len()
        && matches!(unit, "am" | "pm" | "h" | "s" | "min" | "mins" | "hrs" | "th" | "st" | "nd" | "rd")
}

fn number(answer: &str, words: &[String]) -> bool {
    const WORDS: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "hundreds",
        "thousand",
        "thousands",
        "million",
        "millions",
        "billion",
        "dozen",
        "dozens",
        "half",
        "once",
        "twice",
        "few",
        "several",
        "single",
        "couple",
        "none",
        "unlimited",
        "free",
        "both",
    ];
    answer.chars().any(|c| c.is_ascii_digit()) || words.iter().any(|w| WORDS.contains(&w.as_str()))
}

/// A web or server address: letters, a dot, letters ("play.example.net").
fn domain(answer: &str) -> bool {
    answer.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() >= 2 && parts.iter().all(|p| p.len() >= 2 && p.chars().all(|c| c.is_alphanumeric() || c == '-'))
    })
}

/// A capitalised word after a sentence's first: a name.
fn named(answer: &str) -> bool {
    let mut first = true;
    for raw in answer.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if !first && word.chars().next().is_some_and(char::is_uppercase) && word.chars().count() >= 2 {
            return true;
        }
        first = raw.ends_with(['.', '!', '?', ':']);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_word_says_what_is_asked() {
        for (question, kind) in [
            ("when was Minecraft released?", Some(Kind::Time)),
            ("since when has this place existed", Some(Kind::Time)),
            ("what day and hour is the weekly games session", Some(Kind::Time)),
            ("how often does the newsletter come out", Some(Kind::Time)),
            ("how long must I wait to post links", Some(Kind::Duration)),
            ("how many players can join a Terraforming Mars game?", Some(Kind::Number)),
            ("how old is this server", Some(Kind::Number)),
            ("in which channel do memes go", Some(Kind::Place)),
            ("where is the yearly meetup", Some(Kind::Place)),
            ("who drew our emblem", Some(Kind::Person)),
            // Where to go, as often as whom.
            ("I found a glitch in the bot, who should I tell", None),
            ("what does NSFW stand for?", Some(Kind::Meaning)),
            ("what's a Dobsonian telescope?", Some(Kind::Meaning)),
            // Anything can answer these.
            ("what is the name of the music bot", None),
            ("what happens when I get three warnings", None),
            ("how do I donate", None),
            ("is there a regular gaming evening each week", None),
            ("what is the best telescope for a beginner?", None),
            ("what is a good channel for memes?", None),
            ("who can post links?", None),
        ] {
            assert_eq!(asked(question), kind, "{question}");
        }
    }

    #[test]
    fn an_answer_has_what_was_asked_or_not() {
        let game_night = "Game night is every Thursday at 8 p.m. UTC in the Tabletop voice channel.";
        assert!(gives(game_night, Kind::Time) && gives(game_night, Kind::Place));
        assert!(gives("Lanternmoor was founded in March 2019.", Kind::Time));
        assert!(gives("Three warnings lead to a seven-day ban.", Kind::Number));
        assert!(gives("Lanternmoor has about 4,200 members.", Kind::Number));
        assert!(gives("Memes go in #lantern-lounge.", Kind::Place));
        assert!(gives("The Minecraft server is at play.lanternmoor.net, port 25577.", Kind::Place));
        assert!(gives("The logo was designed by Ravi Castellanos.", Kind::Person));
        assert!(gives("NSFW stands for “not safe for work”.", Kind::Meaning));

        assert!(!gives("The Minecraft server is at play.lanternmoor.net, port 25577.", Kind::Time));
        assert!(!gives("The Friday league plays Terraforming Mars.", Kind::Number));
        assert!(!gives("No. NSFW content is banned everywhere on Lanternmoor.", Kind::Meaning));
        assert!(!gives("The club owns a 10-inch Dobsonian telescope called Old Faithful.", Kind::Meaning));
        assert!(!gives("Report bugs in #bot-workshop, with the steps that reproduce them.", Kind::Person));
    }

    #[test]
    fn an_entry_asked_the_same_kind_answers_it() {
        // "How long…" asked and taught: whatever the answer's words.
        assert!(answers("How long is a ban?", "The moderators decide.", Kind::Duration));
        assert!(!answers("Which game does the Friday league play?", "Terraforming Mars.", Kind::Number));
    }
}
