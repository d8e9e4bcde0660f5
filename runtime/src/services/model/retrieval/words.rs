//! The words side of retrieval: stemmed content words (the `bm25` crate's
//! English tokenizer: lower case, stop words out, Snowball stems), a BM25
//! ranking over them, typo-tolerant matching, and names.
//!
//! The ranking is our own postings lists rather than the `bm25` crate's
//! search engine: that one scores every document sharing any query word
//! with a linear scan of its words, about 100 ms a query at 100,000
//! entries; postings and one dense accumulator take about 1 ms.

use std::collections::{HashMap, HashSet};

use bm25::{DefaultTokenizer, Language, Tokenizer};

/// BM25's usual constants.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// The stemmed content words of `text`.
pub fn terms(text: &str) -> Vec<String> {
    DefaultTokenizer::new(Language::English).tokenize(text)
}

/// Every entry's words, and where each word occurs.
#[derive(Default)]
pub struct Lexicon {
    ids: HashMap<String, u32>,
    words: Vec<String>,
    /// By word id: (entry, occurrences).
    postings: Vec<Vec<(u32, u16)>>,
    /// By entry: its distinct word ids.
    entry_words: Vec<Vec<u32>>,
    entry_lengths: Vec<u16>,
    average_length: f32,
    /// Every word of the taught texts as written (lower case), for
    /// mending a question's typos before it is embedded.
    surface: HashSet<String>,
}

impl Lexicon {
    /// The lexicon of `texts`, one per entry.
    pub fn build<'a>(texts: impl Iterator<Item = &'a str>) -> Lexicon {
        let tokenizer = DefaultTokenizer::new(Language::English);
        let mut lexicon = Lexicon::default();
        let mut total = 0usize;
        for (entry, text) in texts.enumerate() {
            lexicon.surface.extend(
                text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 5).map(str::to_lowercase),
            );
            let tokens = tokenizer.tokenize(text);
            total += tokens.len();
            lexicon.entry_lengths.push(tokens.len().min(u16::MAX as usize) as u16);
            let mut counts: HashMap<u32, u16> = HashMap::new();
            for token in tokens {
                let id = match lexicon.ids.get(&token) {
                    Some(&id) => id,
                    None => {
                        let id = lexicon.words.len() as u32;
                        lexicon.ids.insert(token.clone(), id);
                        lexicon.words.push(token);
                        lexicon.postings.push(Vec::new());
                        id
                    }
                };
                *counts.entry(id).or_default() += 1;
            }
            let mut ids: Vec<u32> = counts.keys().copied().collect();
            ids.sort_unstable();
            for &id in &ids {
                lexicon.postings[id as usize].push((entry as u32, counts[&id]));
            }
            lexicon.entry_words.push(ids);
        }
        lexicon.average_length = total as f32 / lexicon.entry_lengths.len().max(1) as f32;
        lexicon
    }

    fn entries(&self) -> usize {
        self.entry_words.len()
    }

    /// Whether any entry has the (stemmed) word.
    pub fn knows(&self, term: &str) -> bool {
        self.ids.contains_key(term)
    }

    /// How much a word tells: rare words more (BM25's IDF).
    pub fn weight(&self, term: &str) -> f32 {
        let n = self.entries() as f32;
        let df = self.ids.get(term).map_or(0, |&id| self.postings[id as usize].len()) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The `k` entries with the highest BM25 score for `query_terms`.
    pub fn top(&self, query_terms: &[String], k: usize) -> Vec<(usize, f32)> {
        let mut scores = vec![0f32; self.entries()];
        let mut touched: Vec<u32> = Vec::new();
        for term in query_terms {
            let Some(&id) = self.ids.get(term) else { continue };
            let idf = self.weight(term);
            for &(entry, tf) in &self.postings[id as usize] {
                let tf = tf as f32;
                let length = self.entry_lengths[entry as usize] as f32 / self.average_length.max(1.0);
                let score = &mut scores[entry as usize];
                if *score == 0.0 {
                    touched.push(entry);
                }
                *score += idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length));
            }
        }
        let mut top: Vec<(usize, f32)> = touched.into_iter().map(|e| (e as usize, scores[e as usize])).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(k);
        top
    }

    /// Entry `i` has `term`, or a word one typo away, or the longer form of
    /// an abbreviation ("mod" for "moder").
    pub fn has(&self, i: usize, term: &str) -> bool {
        self.ids.get(term).is_some_and(|id| self.entry_words[i].binary_search(id).is_ok())
            || self.entry_words[i].iter().any(|&id| close(&self.words[id as usize], term))
    }

    /// `text` with each long word that no dictionary knows replaced by the
    /// taught word it is one typo from ("lanternmor" → "lanternmoor"): a
    /// sentence vector takes a misspelt name for another word.
    pub fn mend(&self, text: &str, dictionary: &HashSet<String>) -> String {
        text.split_inclusive(|c: char| !c.is_alphanumeric())
            .map(|piece| {
                let word = piece.trim_end_matches(|c: char| !c.is_alphanumeric());
                let lower = word.to_lowercase();
                if lower.chars().count() < 5 || dictionary.contains(&lower) || self.surface.contains(&lower) {
                    return piece.to_string();
                }
                let allowed = if lower.chars().count() >= 8 { 2 } else { 1 };
                match self.surface.iter().find(|t| edit_distance(t, &lower, allowed) <= allowed) {
                    Some(taught) => format!("{taught}{}", &piece[word.len()..]),
                    None => piece.to_string(),
                }
            })
            .collect()
    }

    /// The share of `query_terms` (weighted by rarity) that entry `i` has.
    pub fn shared(&self, query_terms: &[String], i: usize) -> f32 {
        let (mut total, mut shared) = (0.0, 0.0);
        for term in query_terms {
            let w = self.weight(term);
            total += w;
            if self.has(i, term) {
                shared += w;
            }
        }
        if total > 0.0 {
            shared / total
        } else {
            0.0
        }
    }
}

/// `term` is among `terms`, or one of them differs only by a typo, or one
/// is the other's abbreviation.
pub fn contains_term(terms: &HashSet<String>, term: &str) -> bool {
    terms.contains(term) || terms.iter().any(|t| close(t, term))
}

fn close(a: &str, b: &str) -> bool {
    let (short, long) = if a.chars().count() <= b.chars().count() { (a, b) } else { (b, a) };
    let short_len = short.chars().count();
    if short_len >= 3 && long.starts_with(short) && long.chars().count() <= short_len * 2 + 1 {
        return true;
    }
    let allowed = match short_len {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    };
    allowed > 0 && edit_distance(a, b, allowed) <= allowed
}

/// Levenshtein distance with adjacent swaps, stopping early past `limit`.
fn edit_distance(a: &str, b: &str, limit: usize) -> usize {
    // Most pairs differ in length by more than the limit: say so before allocating.
    if a.chars().count().abs_diff(b.chars().count()) > limit {
        return limit + 1;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Whether `word` is one typo (a letter dropped, added, changed, or two
/// swapped) from a word of `dictionary`. Trying every variant costs a few
/// hundred lookups; comparing with every word of a 100,000-word list cost
/// milliseconds.
fn one_typo_from(word: &str, dictionary: &HashSet<String>) -> bool {
    let chars: Vec<char> = word.chars().collect();
    let mut variant = String::with_capacity(word.len() + 4);
    let mut known = |parts: &[&[char]]| {
        variant.clear();
        parts.iter().for_each(|p| variant.extend(p.iter()));
        dictionary.contains(&variant)
    };
    for i in 0..chars.len() {
        let (before, after) = (&chars[..i], &chars[i + 1..]);
        if known(&[before, after]) {
            return true;
        }
        if i + 1 < chars.len() && known(&[before, &[chars[i + 1], chars[i]], &chars[i + 2..]]) {
            return true;
        }
        for letter in 'a'..='z' {
            if letter != chars[i] && known(&[before, &[letter], after]) {
                return true;
            }
        }
    }
    (0..=chars.len()).any(|i| ('a'..='z').any(|letter| known(&[&chars[..i], &[letter], &chars[i..]])))
}

/// The names and numbers of `text`, stemmed like the index's words: words
/// capitalised after the first, acronyms, words with digits, and long words
/// that neither the dictionary nor what was taught (`taught`) knows.
pub fn names_in(text: &str, dictionary: &HashSet<String>, taught: impl Fn(&str) -> bool) -> Vec<String> {
    let tokenizer = DefaultTokenizer::new(Language::English);
    let mut names = Vec::new();
    let mut first = true;
    // Apostrophes split words too: "who's" is "who" and "s", and a
    // contraction's tail is too short to name anything.
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        if raw.is_empty() {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        let lower = raw.to_lowercase();
        // Stop words, and words of one or two letters, name nothing.
        let Some(stem) = tokenizer.tokenize(&lower).into_iter().next() else { continue };
        if lower.chars().count() < 3 && !lower.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let capitalised = raw.chars().next().is_some_and(char::is_uppercase);
        let acronym = raw.chars().filter(|c| c.is_alphabetic()).count() >= 2 && raw.chars().all(|c| !c.is_lowercase());
        let digits = raw.chars().any(|c| c.is_ascii_digit());
        // A long word nobody knows, and no typo of a known one.
        let unknown = lower.chars().count() >= 5
            && !dictionary.contains(&lower)
            && !taught(&stem)
            && !one_typo_from(&lower, dictionary);
        if digits || acronym || (capitalised && !was_first) || unknown {
            names.push(stem);
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> HashSet<String> {
        ["who", "what", "founded", "founder", "the", "server", "music", "bot", "capital"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn typos_and_abbreviations_are_close() {
        assert!(close("lanternmoor", "lanternmor"));
        assert!(close("moder", "mod"));
        assert!(close("recieve", "receive"));
        assert!(!close("stonebrook", "lanternmoor"));
        assert!(!close("cat", "car"), "short words must match exactly");
    }

    #[test]
    fn names_are_what_the_dictionary_and_the_taught_words_lack() {
        let taught = |t: &str| t == "lanternmoor";
        let found = names_in("Who founded Stonebrook in 2019, NSFW?", &dictionary(), taught);
        assert_eq!(found, ["2019", "nsfw", "stonebrook"]);
        // Lower case still counts when no dictionary knows the word.
        assert_eq!(names_in("who founded stonebrook", &dictionary(), taught), ["stonebrook"]);
        // A taught name is still a name when capitalised mid-sentence.
        assert_eq!(names_in("Who founded Lanternmoor", &dictionary(), taught), ["lanternmoor"]);
        assert!(names_in("who founded lanternmoor", &dictionary(), taught).is_empty());
        // Nor a typo of a known word, nor a short word, nor a contraction.
        assert!(names_in("whats the music bto", &dictionary(), taught).is_empty());
        assert!(names_in("who's the founder's bot? what's", &dictionary(), taught).is_empty());
        // The first word's capital says nothing.
        assert!(names_in("Server bot?", &dictionary(), taught).is_empty());
    }

    #[test]
    fn one_typo_finds_every_kind_of_slip() {
        let dictionary = dictionary();
        for typo in ["servr", "serverr", "sevrer", "sorver", "muxic", "capitol"] {
            assert!(one_typo_from(typo, &dictionary), "{typo}");
        }
        for far in ["srvr", "savers", "stonebrook"] {
            assert!(!one_typo_from(far, &dictionary), "{far}");
        }
    }

    #[test]
    fn bm25_ranks_rare_shared_words_first() {
        let lexicon = Lexicon::build(
            ["the river flows to the sea", "the mountain river is cold", "a mountain of paperwork"].into_iter(),
        );
        let top = lexicon.top(&terms("cold river"), 3);
        assert_eq!(top[0].0, 1);
        assert_eq!(top.len(), 2, "the third shares no word");
        assert!(lexicon.has(2, "paperwrk") && !lexicon.has(0, "mountain"));
        assert!((lexicon.shared(&terms("mountain river"), 1) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn typos_of_taught_words_are_mended() {
        let lexicon = Lexicon::build(["Who founded Lanternmoor?", "Who are the moderators?"].into_iter());
        let dictionary = dictionary();
        assert_eq!(
            lexicon.mend("who's the person that founded lanternmor?", &dictionary),
            "who's the person that founded lanternmoor?"
        );
        assert_eq!(lexicon.mend("who are the moderaters", &dictionary), "who are the moderators");
        // Known words and far ones stay as they are.
        assert_eq!(lexicon.mend("who founded Stonebrook", &dictionary), "who founded Stonebrook");
    }
}
