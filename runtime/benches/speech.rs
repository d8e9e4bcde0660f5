//! Embedded speech: Whisper tiny.en on the CPU, on sentences that
//! espeak-ng speaks. Prints the load time, per clip the audio length, the
//! transcription time and the real-time factor (time / audio length), and
//! espeak-ng's time per sentence. Then end to end, through the real
//! `sandbot console`: an Ogg Opus voice message in, from an author in a
//! voice channel, to the spoken answer's clip out.
//!
//! `cargo bench -p sandbot --bench speech` (after `make build`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sandbot::services::speech::tts::{Espeak, TtsSettings};
use sandbot::services::speech::{audio, SpeechToText, Synthesizer};
use serde_json::json;
use support::{workspace, Setup};

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
    let speech = SpeechToText::new(whisper, 120);
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

    end_to_end();
}

/// Voice message in → spoken answer out, through the console: the time
/// from writing the input line to reading the `audio` effect (the clip
/// that would start playing). Once with an answer taught by `!train`
/// (retrieval), once answered by the embedded SmolLM2.
fn end_to_end() {
    let models = workspace().join("models");
    let setup = Setup::chatty(&format!(
        "[model]\nllm = {:?}\n\n[speech]\nwhisper = {:?}\n",
        models.join("SmolLM2-135M-Instruct.Q4_1.gguf").display().to_string(),
        models.join("whisper-tiny.en").display().to_string(),
    ));
    let voice_message = |text: &str, name: &str| {
        let wav = setup.path(&format!("{name}.wav"));
        let status = Command::new("espeak-ng").arg("-w").arg(&wav).arg(text).status().expect("espeak-ng");
        assert!(status.success());
        let ogg = setup.path(&format!("{name}.ogg"));
        std::fs::write(&ogg, support::ogg_opus::from_audio(std::fs::read(&wav).expect("read"))).expect("write");
        ogg
    };
    let taught = voice_message("What is the capital of France?", "taught");
    let open = voice_message("Tell me something about the sea.", "open");
    let mut bot = setup.spawn();
    bot.send(&json!({"content": "!train What is the capital of France? | Paris is the capital of France."}));
    bot.read_until_done(0);
    let mut input = 0;
    for (label, clip) in [("taught answer", &taught), ("SmolLM2 answer", &open)] {
        let mut times: Vec<Duration> = (0..6)
            .map(|_| {
                input += 1;
                let started = Instant::now();
                bot.send(&json!({"content": "", "attachments": [clip], "voice_channel": "General"}));
                let out = bot.read_until_done(input);
                assert!(out.iter().any(|v| v["type"] == "audio"), "no spoken answer: {out:?}");
                started.elapsed()
            })
            .collect();
        // The first of each warms the model up.
        times.remove(0);
        times.sort();
        println!(
            "speech/voice message to spoken answer ({label}): median {:.2} s, min {:.2} s",
            times[times.len() / 2].as_secs_f64(),
            times[0].as_secs_f64()
        );
    }
    drop(bot.finish());
}
