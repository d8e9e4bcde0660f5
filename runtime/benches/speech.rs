//! Embedded speech: Whisper tiny.en on the CPU beside faster-whisper, and
//! espeak-ng.
//!
//! Side by side, in one run, on the same clips and the same model folder:
//! espeak-ng sentences of about 1, 3, 5 and 10 s, and the recorded voices
//! of `pocketsphinx-testdata`. For ours, the encoder on a padded 30-second
//! window and fitted to the clip with several margins (word error rates),
//! and the time per clip (median of three) for the padded and the default
//! window; for faster-whisper (greedy, two CPU threads, float32, via
//! `scripts/peers/speech_peer.py`) its time and word error rate. Then
//! espeak-ng's time per sentence, and end to end through the real `sandbot
//! console`: a text question in, to its answer out; an Ogg Opus voice
//! message in, from an author in a voice channel, to the spoken answer's
//! clip out.
//!
//! `make build && scripts/peers/install.sh && cargo bench -p sandbot --bench speech`

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use sandbot::services::speech::audio;
use sandbot::services::speech::tts::{Espeak, TtsSettings};
use sandbot::services::speech::whisper::{WhisperModel, Window};
use sandbot::services::speech::Synthesizer;
use serde_json::{json, Value};
use support::spoken::{recorded, word_errors};
use support::{workspace, Setup};

/// Spoken by espeak-ng: about 1, 3, 5 and 10 seconds.
const SENTENCES: &[&str] = &[
    "Good morning.",
    "Could you tell me when the next meeting starts?",
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest to sleep.",
    "Tomorrow the community will meet in the main hall at seven in the evening to talk about the new rules, \
     the summer trip, and who will look after the music bot.",
];

struct Clip {
    path: PathBuf,
    transcript: String,
    pcm: Vec<f32>,
    synthetic: bool,
}

impl Clip {
    fn seconds(&self) -> f64 {
        self.pcm.len() as f64 / 16_000.0
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let model_dir = workspace().join("models/whisper-tiny.en");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut clips: Vec<Clip> = Vec::new();
    for (i, text) in SENTENCES.iter().enumerate() {
        let path = dir.path().join(format!("espeak-{i}.wav"));
        let status = Command::new("espeak-ng").arg("-w").arg(&path).arg(text).status().expect("espeak-ng");
        assert!(status.success());
        clips.push(Clip { path, transcript: text.to_string(), pcm: Vec::new(), synthetic: true });
    }
    clips.extend(recorded().into_iter().map(|c| Clip {
        path: c.path,
        transcript: c.transcript,
        pcm: Vec::new(),
        synthetic: false,
    }));
    for clip in &mut clips {
        clip.pcm = audio::decode_mono_16k(std::fs::read(&clip.path).expect("read a clip"), 120).expect("decode");
    }

    let started = Instant::now();
    let mut model = WhisperModel::load(&model_dir).expect("make build fetches the model");
    println!("speech/load the model: {:.2} s", started.elapsed().as_secs_f64());
    let never = AtomicBool::new(false);
    let hear = |model: &mut WhisperModel, pcm: &[f32]| model.transcribe(pcm, &never).expect("transcribe");
    hear(&mut model, &clips[0].pcm);

    // Accuracy and time by window: one pass each. A small window makes
    // more decodings run away and go again on the padded window.
    let windows = [
        Window::Padded,
        Window::Fitted { margin: 64, min: 0 },
        Window::Fitted { margin: 64, min: 250 },
        Window::Fitted { margin: 32, min: 500 },
        Window::Fitted { margin: 64, min: 500 },
        Window::Fitted { margin: 128, min: 750 },
    ];
    for window in windows {
        model.set_window(window);
        let (before, started) = (model.decoder_work(), Instant::now());
        let heard: Vec<String> = clips.iter().map(|c| hear(&mut model, &c.pcm)).collect();
        let (seconds, again) = (started.elapsed().as_secs_f64(), model.decoder_work().starts - before.starts);
        println!(
            "speech/{window:?}: {}; {seconds:.2} s, {} decoded again",
            error_rates(&clips, &heard),
            again - clips.len()
        );
    }

    // Time by clip, ours (padded and default) beside the peer's.
    let median = |model: &mut WhisperModel, window: Window, clip: &Clip| {
        model.set_window(window);
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let started = Instant::now();
                hear(model, &clip.pcm);
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[1]
    };
    let ours: Vec<(f64, f64)> = clips
        .iter()
        .map(|clip| (median(&mut model, Window::Padded, clip), median(&mut model, Window::DEFAULT, clip)))
        .collect();
    model.set_window(Window::DEFAULT);
    let ours_heard: Vec<String> = clips.iter().map(|c| hear(&mut model, &c.pcm)).collect();
    let peer = faster_whisper(&model_dir, &clips);
    println!("speech/clip | seconds | ours padded | ours fitted (RTF) | faster-whisper (RTF)");
    for (i, clip) in clips.iter().enumerate() {
        let name = clip.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (padded, fitted) = ours[i];
        let theirs = peer.as_ref().map(|p| format!("{:.3} s ({:.2})", p[i].0, p[i].0 / clip.seconds()));
        println!(
            "speech/{name} | {:.1} | {padded:.3} s | {fitted:.3} s ({:.2}) | {}",
            clip.seconds(),
            fitted / clip.seconds(),
            theirs.unwrap_or_else(|| "—".into())
        );
    }
    let audio: f64 = clips.iter().map(Clip::seconds).sum();
    let (padded, fitted): (f64, f64) = (ours.iter().map(|t| t.0).sum(), ours.iter().map(|t| t.1).sum());
    println!(
        "speech/total, {audio:.1} s of audio: ours padded {padded:.2} s, ours fitted {fitted:.2} s (RTF {:.3})",
        fitted / audio
    );
    println!("speech/ours fitted: {}", error_rates(&clips, &ours_heard));
    if let Some(peer) = &peer {
        let theirs: f64 = peer.iter().map(|p| p.0).sum();
        let heard: Vec<String> = peer.iter().map(|p| p.1.clone()).collect();
        println!(
            "speech/total, faster-whisper: {theirs:.2} s (RTF {:.3}); ours/theirs {:.2}×",
            theirs / audio,
            fitted / theirs
        );
        println!("speech/faster-whisper: {}", error_rates(&clips, &heard));
    }

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

    end_to_end();
}

/// Word error rates over the synthetic and the recorded clips.
fn error_rates(clips: &[Clip], heard: &[String]) -> String {
    let rate = |synthetic: bool| {
        let (errors, words) = clips
            .iter()
            .zip(heard)
            .filter(|(c, _)| c.synthetic == synthetic)
            .map(|(c, h)| word_errors(&c.transcript, h))
            .fold((0, 0), |(e, n), (de, dn)| (e + de, n + dn));
        format!("{:.1}% ({errors}/{words})", 100.0 * errors as f64 / words as f64)
    };
    format!("WER espeak-ng {}, recorded {}", rate(true), rate(false))
}

/// faster-whisper's (median seconds, text) per clip, or `None` with a
/// reason when its venv is missing.
fn faster_whisper(model_dir: &Path, clips: &[Clip]) -> Option<Vec<(f64, String)>> {
    let python = workspace().join("target/peers/bin/python");
    if !python.exists() {
        println!("speech/faster-whisper: not installed; run scripts/peers/install.sh");
        return None;
    }
    let out = Command::new(python)
        .arg(workspace().join("scripts/peers/speech_peer.py"))
        .arg(model_dir)
        .args(clips.iter().map(|c| &c.path))
        .output()
        .expect("run the faster-whisper peer");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), clips.len());
    Some(
        lines
            .iter()
            .map(|l| (l["seconds"].as_f64().unwrap_or(f64::NAN), l["text"].as_str().unwrap_or("").to_string()))
            .collect(),
    )
}

/// A question in → the first words out, through the console: the time
/// from writing the input line to the first written reply or `audio`
/// effect (the clip that would start playing), and to the complete answer.
/// Generated answers stream: the first sentence goes out at once.
/// Text and voice, each with an answer taught by `!train` (retrieval) and
/// one written by the embedded SmolLM2.
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
    // A taught question, and small talk, which SmolLM2 answers (an open
    // question gets "I don't know" since issue 12).
    let (taught_text, open_text) = ("What is the capital of France?", "Good morning, how is your day going?");
    let taught = voice_message(taught_text, "taught");
    let open = voice_message(open_text, "open");
    let mut bot = setup.spawn();
    bot.send(&json!({"content": "!train What is the capital of France? | Paris is the capital of France."}));
    bot.read_until_done(0);
    let mut input = 0;
    let cases = [
        ("text, taught answer", json!({"content": taught_text}), "message"),
        ("text, SmolLM2 answer", json!({"content": open_text}), "message"),
        (
            "voice message, taught answer",
            json!({"content": "", "attachments": [taught], "voice_channel": "General"}),
            "audio",
        ),
        (
            "voice message, SmolLM2 answer",
            json!({"content": "", "attachments": [open], "voice_channel": "General"}),
            "audio",
        ),
    ];
    for (label, message, effect) in cases {
        let mut first_words: Vec<Duration> = Vec::new();
        let mut whole: Vec<Duration> = Vec::new();
        for _ in 0..6 {
            input += 1;
            let started = Instant::now();
            bot.send(&message);
            let mut first = None;
            loop {
                let mut line = String::new();
                assert!(bot.stdout_mut().read_line(&mut line).expect("read") > 0, "sandbot stopped");
                let value: Value = serde_json::from_str(&line).expect("JSON");
                if value["type"] == effect && first.is_none() {
                    first = Some(started.elapsed());
                }
                if value["type"] == "done" && value["input"] == input {
                    break;
                }
            }
            first_words.push(first.unwrap_or_else(|| panic!("no {effect} for {label}")));
            whole.push(started.elapsed());
        }
        // The first of each warms the model up.
        for times in [&mut first_words, &mut whole] {
            times.remove(0);
            times.sort();
        }
        println!(
            "speech/{label} → first words: median {:.2} s, min {:.2} s; answer complete: median {:.2} s",
            first_words[first_words.len() / 2].as_secs_f64(),
            first_words[0].as_secs_f64(),
            whole[whole.len() / 2].as_secs_f64(),
        );
    }
    drop(bot.finish());
}
