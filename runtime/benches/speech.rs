//! Embedded speech-to-text: Whisper tiny.en on the CPU, on sentences that
//! espeak-ng speaks. Prints the load time, and per clip the audio length,
//! the transcription time and the real-time factor (time / audio length).
//!
//! `cargo bench -p sandbot --bench speech` (after `make build`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sandbot::services::speech::tts::{Espeak, TtsSettings};
use sandbot::services::speech::{audio, SpeechSettings, SpeechToText};

const SENTENCES: &[&str] = &[
    "Hello.",
    "What is the capital of France?",
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest to sleep.",
];

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let whisper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/whisper-tiny.en");
    let speech = SpeechToText::new(SpeechSettings { whisper: Some(whisper), max_seconds: 120, tts: None });
    let dir = tempfile::tempdir().expect("temp dir");
    let clips: Vec<Vec<u8>> = SENTENCES
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.path().join(format!("{i}.wav"));
            let status = Command::new("espeak-ng").arg("-w").arg(&path).arg(text).status().expect("espeak-ng");
            assert!(status.success());
            std::fs::read(&path).expect("read the clip")
        })
        .collect();

    let started = Instant::now();
    speech.transcribe_blocking(clips[0].clone()).expect("first transcription");
    println!("speech/first call (loads the model): {:.2} s", started.elapsed().as_secs_f64());

    let espeak = Espeak::new(TtsSettings { program: "espeak-ng".into(), voice: "en".into() });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for text in SENTENCES {
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                runtime.block_on(espeak.synthesize(text)).expect("synthesize");
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("speech/espeak-ng, {} words: median {:.0} ms", text.split_whitespace().count(), times[2] * 1000.0);
    }

    for (text, clip) in SENTENCES.iter().zip(&clips) {
        let seconds = audio::decode_mono_16k(clip.clone(), 120).expect("decode").len() as f64 / 16_000.0;
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let started = Instant::now();
                speech.transcribe_blocking(clip.clone()).expect("transcribe");
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[1];
        println!(
            "speech/{:.1} s of speech ({} words): median {:.2} s, real-time factor {:.2}",
            seconds,
            text.split_whitespace().count(),
            median,
            median / seconds
        );
    }
}
