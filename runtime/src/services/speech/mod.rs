//! Speech services behind two traits, so the host does not care which
//! engine runs: [`Transcriber`] (audio → text) and [`Synthesizer`] (text →
//! audio). Embedded defaults: Whisper tiny.en on the CPU ([`whisper`], fed
//! by [`audio`]'s decoder) and espeak-ng ([`tts`]); or any
//! OpenAI-compatible server ([`openai`]).

pub mod audio;
pub mod openai;
pub mod tts;
pub mod whisper;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::CancelOnDrop;
use whisper::WhisperModel;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// Not set up (no weights) or not supported: said to users as such.
    #[error("{0}")]
    Unavailable(String),
    /// The bytes are not audio this bot reads.
    #[error("{0}")]
    BadAudio(String),
    #[error("the audio is longer than {seconds} seconds")]
    TooLong { seconds: u32 },
    #[error("the audio is over {mib} MiB")]
    TooLarge { mib: u64 },
    #[error("{0}")]
    Failed(String),
    /// The caller stopped waiting.
    #[error("the transcription was cancelled")]
    Cancelled,
}

/// Audio → text.
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// The words spoken in `audio` (WAV, MP3, Ogg Opus or Vorbis, FLAC).
    async fn transcribe(&self, audio: Vec<u8>) -> Result<String, SpeechError>;
}

/// Text → audio.
#[async_trait]
pub trait Synthesizer: Send + Sync {
    /// `text` spoken, as bytes the voice channel plays (WAV, MP3, Ogg).
    async fn synthesize(&self, text: &str) -> Result<Vec<u8>, SpeechError>;
}

/// The `[speech]` table, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechSettings {
    pub transcriber: TranscriberSettings,
    pub synthesizer: SynthesizerSettings,
    /// Longest audio transcribed.
    pub max_seconds: u32,
    /// Largest audio transcribed.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriberSettings {
    Off,
    /// The folder with Whisper's `model.bin`, `config.json`, `tokenizer.json`.
    Whisper(PathBuf),
    OpenAi(openai::OpenAiSpeechSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynthesizerSettings {
    Off,
    Espeak(tts::TtsSettings),
    OpenAi(openai::OpenAiSpeechSettings),
}

/// The configured transcriber, with the size limit; `None` when the
/// config turns it off.
pub fn transcriber(settings: &SpeechSettings) -> Result<Option<Arc<dyn Transcriber>>, SpeechError> {
    let inner: Arc<dyn Transcriber> = match &settings.transcriber {
        TranscriberSettings::Off => return Ok(None),
        TranscriberSettings::Whisper(dir) => Arc::new(SpeechToText::new(dir.clone(), settings.max_seconds)),
        TranscriberSettings::OpenAi(remote) => Arc::new(openai::OpenAiSpeech::new(remote.clone())?),
    };
    Ok(Some(Arc::new(SizeLimited { inner, max_bytes: settings.max_bytes })))
}

/// The configured synthesizer; `None` when the config turns it off.
pub fn synthesizer(settings: &SpeechSettings) -> Result<Option<Arc<dyn Synthesizer>>, SpeechError> {
    Ok(match &settings.synthesizer {
        SynthesizerSettings::Off => None,
        SynthesizerSettings::Espeak(espeak) => Some(Arc::new(tts::Espeak::new(espeak.clone()))),
        SynthesizerSettings::OpenAi(remote) => Some(Arc::new(openai::OpenAiSpeech::new(remote.clone())?)),
    })
}

/// Whatever the engine, the same size limit on what is heard.
struct SizeLimited {
    inner: Arc<dyn Transcriber>,
    max_bytes: u64,
}

#[async_trait]
impl Transcriber for SizeLimited {
    async fn transcribe(&self, audio: Vec<u8>) -> Result<String, SpeechError> {
        if audio.len() as u64 > self.max_bytes {
            return Err(SpeechError::TooLarge { mib: self.max_bytes >> 20 });
        }
        if audio.is_empty() {
            return Err(SpeechError::BadAudio("there is no audio".into()));
        }
        self.inner.transcribe(audio).await
    }
}

/// `text` trimmed, or why it cannot be spoken.
pub fn speakable(text: &str) -> Result<&str, SpeechError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SpeechError::BadAudio("there is nothing to say".into()));
    }
    if text.chars().count() > tts::MAX_CHARS {
        return Err(SpeechError::BadAudio(format!("at most {} characters are spoken at once", tts::MAX_CHARS)));
    }
    Ok(text)
}

/// How many transcriptions may wait behind the one running before more
/// are refused as busy: each holds its audio in memory, and a queue of
/// minutes helps nobody.
pub const MAX_QUEUED: usize = 8;

/// Embedded speech-to-text: Whisper tiny.en, its weights loaded on first
/// use and kept. A load that fails (no weights yet) is tried again on the
/// next call, so `make build` while the bot runs is enough.
pub struct SpeechToText {
    inner: Arc<Embedded>,
}

struct Embedded {
    dir: PathBuf,
    max_seconds: u32,
    model: Mutex<Option<Arc<Mutex<WhisperModel>>>>,
    /// The one running and those waiting.
    queue: Arc<Semaphore>,
}

impl SpeechToText {
    pub fn new(dir: PathBuf, max_seconds: u32) -> SpeechToText {
        let inner =
            Embedded { dir, max_seconds, model: Mutex::new(None), queue: Arc::new(Semaphore::new(MAX_QUEUED + 1)) };
        SpeechToText { inner: Arc::new(inner) }
    }

    /// Transcribes on the calling thread (the CLI and benchmarks).
    pub fn transcribe_blocking(&self, bytes: Vec<u8>) -> Result<String, SpeechError> {
        self.inner.transcribe_until(bytes, &AtomicBool::new(false))
    }
}

/// CPU-bound: runs on the blocking pool, one transcription at a time;
/// dropping the future stops the work at the next token.
#[async_trait]
impl Transcriber for SpeechToText {
    async fn transcribe(&self, bytes: Vec<u8>) -> Result<String, SpeechError> {
        // The place is held by the work itself, not the caller: a caller
        // that gives up does not free it before the work has stopped.
        let place = self.inner.queue.clone().try_acquire_owned().map_err(|_| {
            SpeechError::Unavailable(format!("{MAX_QUEUED} recordings are already waiting to be heard; try again soon"))
        })?;
        let inner = self.inner.clone();
        let cancel = CancelOnDrop::new();
        let flag = cancel.flag();
        let result = tokio::task::spawn_blocking(move || {
            let _place = place;
            inner.transcribe_until(bytes, &flag)
        })
        .await
        .map_err(|e| SpeechError::Failed(format!("the transcription task ended: {e}")))?;
        drop(cancel);
        result
    }
}

impl Embedded {
    fn transcribe_until(&self, bytes: Vec<u8>, cancel: &AtomicBool) -> Result<String, SpeechError> {
        let gave_up = || if cancel.load(Ordering::Relaxed) { Err(SpeechError::Cancelled) } else { Ok(()) };
        gave_up()?;
        let samples = audio::decode_mono_16k(bytes, self.max_seconds)?;
        let model = self.model()?;
        let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
        // It may have waited for the model behind others.
        gave_up()?;
        model.transcribe(&samples, cancel)
    }

    fn model(&self) -> Result<Arc<Mutex<WhisperModel>>, SpeechError> {
        let dir = &self.dir;
        let mut slot = self.model.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = &*slot {
            return Ok(model.clone());
        }
        let started = std::time::Instant::now();
        match WhisperModel::load(dir) {
            Ok(model) => {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(dir = %dir.display(), ms, "speech model loaded");
                let model = Arc::new(Mutex::new(model));
                *slot = Some(model.clone());
                Ok(model)
            }
            Err(e) => {
                tracing::warn!(error = %e, "speech model unavailable");
                Err(e)
            }
        }
    }
}
