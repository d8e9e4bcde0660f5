//! Recorded speech with its transcripts, and the word error rate.
//!
//! The voices are Debian's `pocketsphinx-testdata` (installed by
//! `scripts/setup.sh`): five Librivox sentences read aloud (3–7 s) and five
//! spoken card names (1–3.5 s), 16 kHz mono WAV.

use std::path::{Path, PathBuf};

pub const SPOKEN: &str = "/usr/share/pocketsphinx/test/data";

/// A recording and what is said in it.
pub struct Clip {
    pub path: PathBuf,
    pub transcript: String,
}

/// Every transcribed recording of the package, in a stable order.
pub fn recorded() -> Vec<Clip> {
    let mut clips = Vec::new();
    for (folder, list) in [("librivox", "transcription"), ("cards", "cards.transcription")] {
        let dir = Path::new(SPOKEN).join(folder);
        let text = std::fs::read_to_string(dir.join(list))
            .unwrap_or_else(|e| panic!("{}: {e} (make test installs pocketsphinx-testdata)", dir.display()));
        // `<s> words </s> (file-id)` per line.
        for line in text.lines() {
            let (Some(open), Some(close)) = (line.rfind('('), line.rfind(')')) else { continue };
            let words = line[..open].replace("<s>", "").replace("</s>", "");
            clips.push(Clip {
                path: dir.join(format!("{}.wav", &line[open + 1..close])),
                transcript: words.trim().to_string(),
            });
        }
    }
    assert_eq!(clips.len(), 10, "the package's transcripts changed");
    clips
}

/// Lower-case words without punctuation; numbers up to twenty spelled
/// out, since Whisper writes "10 of clubs" for "ten of clubs".
pub fn normalised(text: &str) -> Vec<String> {
    const NUMBERS: [&str; 21] = [
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
    ];
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .map(|w| match w.parse::<usize>() {
            Ok(n) if n < NUMBERS.len() => NUMBERS[n].to_string(),
            _ => w,
        })
        .collect()
}

/// Word edits (substitutions, insertions, deletions) from `reference` to
/// `heard`, and the reference's word count.
pub fn word_errors(reference: &str, heard: &str) -> (usize, usize) {
    let (want, got) = (normalised(reference), normalised(heard));
    let mut row: Vec<usize> = (0..=got.len()).collect();
    for (i, w) in want.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, g) in got.iter().enumerate() {
            let next = (diagonal + usize::from(w != g)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    (row[got.len()], want.len())
}
