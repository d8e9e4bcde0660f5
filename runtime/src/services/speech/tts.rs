//! Embedded text-to-speech: espeak-ng, run as a program (it is GPL: not
//! linked), text on its stdin, WAV on its stdout.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use async_trait::async_trait;

use super::{speakable, SpeechError, Synthesizer};

/// The longest text spoken at once (one Discord message).
pub const MAX_CHARS: usize = 2000;
/// How long one synthesis may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// The most WAV bytes read back (2000 characters are ≈ 2–3 minutes of
/// speech, ≈ 8 MB at espeak-ng's 22 kHz).
const MAX_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsSettings {
    /// The espeak-ng program.
    pub program: String,
    /// An espeak-ng voice (`en`, `en-us`, `de`, …).
    pub voice: String,
}

pub struct Espeak {
    settings: TtsSettings,
}

impl Espeak {
    pub fn new(settings: TtsSettings) -> Espeak {
        Espeak { settings }
    }
}

/// `text` spoken, as WAV bytes.
#[async_trait]
impl Synthesizer for Espeak {
    async fn synthesize(&self, text: &str) -> Result<Vec<u8>, SpeechError> {
        let text = speakable(text)?;
        // Text on stdin, not as an argument: a text starting with `-`
        // must not read as an option.
        let mut child = tokio::process::Command::new(&self.settings.program)
            .args(["--stdout", "-v", &self.settings.voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SpeechError::Unavailable(format!("text-to-speech needs `{}` ({e})", self.settings.program)))?;
        let run = async {
            let mut stdin = child.stdin.take().ok_or_else(|| SpeechError::Failed("no stdin".into()))?;
            let mut stdout = child.stdout.take().ok_or_else(|| SpeechError::Failed("no stdout".into()))?;
            let mut stderr = child.stderr.take().ok_or_else(|| SpeechError::Failed("no stderr".into()))?;
            let input = text.replace(['\r', '\n'], " ");
            let write = async move {
                stdin.write_all(input.as_bytes()).await?;
                stdin.shutdown().await
            };
            let mut wav = Vec::new();
            let mut errors = Vec::new();
            let mut limited = (&mut stdout).take(MAX_BYTES + 1);
            let read = limited.read_to_end(&mut wav);
            let (written, read, _) = tokio::join!(write, read, stderr.read_to_end(&mut errors));
            let io = |e: std::io::Error| SpeechError::Failed(format!("espeak-ng: {e}"));
            written.map_err(io)?;
            read.map_err(io)?;
            let status = child.wait().await.map_err(io)?;
            if !status.success() {
                let why = String::from_utf8_lossy(&errors);
                return Err(SpeechError::Failed(format!("espeak-ng failed ({status}): {}", why.trim())));
            }
            if wav.len() as u64 > MAX_BYTES {
                return Err(SpeechError::Failed("espeak-ng produced too much audio".into()));
            }
            fix_wav_sizes(&mut wav);
            Ok(wav)
        };
        tokio::time::timeout(DEADLINE, run)
            .await
            .map_err(|_| SpeechError::Failed(format!("espeak-ng took over {} s", DEADLINE.as_secs())))?
    }
}

/// espeak-ng streams to stdout, so its WAV header cannot say how long the
/// audio is (it writes a placeholder); decoders then read it as hours
/// long. Writes the real RIFF and `data` sizes.
fn fix_wav_sizes(wav: &mut [u8]) {
    if !wav.starts_with(b"RIFF") || wav.len() < 12 {
        return;
    }
    let Some(data) = wav.windows(4).take(256).position(|w| w == b"data") else { return };
    let (Ok(riff), Ok(body)) = (u32::try_from(wav.len() - 8), u32::try_from(wav.len().saturating_sub(data + 8))) else {
        return;
    };
    wav[4..8].copy_from_slice(&riff.to_le_bytes());
    if let Some(size) = wav.get_mut(data + 4..data + 8) {
        size.copy_from_slice(&body.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_sizes_are_written() {
        let mut wav = b"RIFF\xff\xff\xff\x7fWAVEfmt ".to_vec();
        wav.extend_from_slice(&[0; 20]);
        wav.extend_from_slice(b"data\xff\xff\xff\x7f");
        wav.extend_from_slice(&[1, 2, 3, 4]);
        fix_wav_sizes(&mut wav);
        assert_eq!(u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]) as usize, wav.len() - 8);
        let data = wav.len() - 12;
        assert_eq!(u32::from_le_bytes([wav[data + 4], wav[data + 5], wav[data + 6], wav[data + 7]]), 4);
        let mut not_wav = b"OggS....".to_vec();
        fix_wav_sizes(&mut not_wav);
        assert_eq!(not_wav, b"OggS....");
    }
}
