//! Audio bytes → mono 16 kHz samples, what speech recognition reads.
//! symphonia decodes (WAV, MP3, Ogg Vorbis, FLAC, and Ogg Opus, Discord's
//! voice messages, through songbird's libopus codec); rubato resamples.

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::SpeechError;

/// Whisper's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Sample rates accepted, here and for clips the bot plays: speech needs
/// no more, and a crafted rate would otherwise size the resampler (and
/// the decoded buffer) at will.
pub const RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;

/// Decodes `bytes`, mixes the channels down and resamples to 16 kHz;
/// refuses audio longer than `max_seconds` as soon as it passes it. A
/// decoder that panics on crafted input is reported as bad audio.
pub fn decode_mono_16k(bytes: Vec<u8>, max_seconds: u32) -> Result<Vec<f32>, SpeechError> {
    std::panic::catch_unwind(move || decode(bytes, max_seconds))
        .unwrap_or_else(|_| Err(SpeechError::BadAudio("the audio is malformed".into())))
}

/// How long `audio` plays, in milliseconds, or `None` when it cannot be
/// decoded (or plays over ten minutes). Blocking: it decodes the clip.
pub fn duration_ms(audio: &[u8]) -> Option<u64> {
    let samples = decode_mono_16k(audio.to_vec(), 600).ok()?;
    Some(samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE))
}

/// The usual file extension of audio bytes, from their first bytes.
pub fn extension(audio: &[u8]) -> Option<&'static str> {
    let mp3_frame = audio.len() >= 2 && audio[0] == 0xFF && audio[1] & 0xE0 == 0xE0;
    Some(if audio.starts_with(b"RIFF") && audio.get(8..12) == Some(b"WAVE") {
        "wav"
    } else if audio.starts_with(b"OggS") {
        "ogg"
    } else if audio.starts_with(b"ID3") || mp3_frame {
        "mp3"
    } else if audio.starts_with(b"fLaC") {
        "flac"
    } else if audio.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "webm"
    } else {
        return None;
    })
}

fn decode(bytes: Vec<u8>, max_seconds: u32) -> Result<Vec<f32>, SpeechError> {
    let unreadable = |why: String| SpeechError::BadAudio(why);
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|_| unreadable("not an audio file this bot can read (WAV, MP3, Ogg, FLAC)".into()))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unreadable("no audio track".into()))?;
    let track_id = track.id;
    let rate = track.codec_params.sample_rate.ok_or_else(|| unreadable("no sample rate".into()))?;
    if !RATES.contains(&rate) {
        return Err(unreadable(format!("a sample rate of {rate} Hz is not supported (8 to 48 kHz)")));
    }
    let max_samples = max_seconds as usize * rate as usize;
    if track.codec_params.n_frames.is_some_and(|frames| frames > max_samples as u64) {
        return Err(SpeechError::TooLong { seconds: max_seconds });
    }
    // symphonia's own codecs plus songbird's Opus (symphonia has none).
    let mut decoder = songbird::input::codecs::get_codec_registry()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unreadable(format!("cannot decode it: {e}")))?;
    let mut mono = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(DecodeError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(DecodeError::ResetRequired) => break,
            Err(e) => return Err(unreadable(format!("broken audio: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // One corrupt packet: skip it, as players do.
            Err(DecodeError::DecodeError(_)) => continue,
            Err(e) => return Err(unreadable(format!("broken audio: {e}"))),
        };
        let spec = *decoded.spec();
        if spec.rate != rate {
            return Err(unreadable("the sample rate changes midway".into()));
        }
        let channels = spec.channels.count().max(1);
        let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        samples.copy_interleaved_ref(decoded);
        let mixed = samples.samples().chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32);
        // Float formats can carry NaN and infinities; the model must not.
        mono.extend(mixed.map(|s| if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 }));
        if mono.len() > max_samples {
            return Err(SpeechError::TooLong { seconds: max_seconds });
        }
    }
    if mono.is_empty() {
        return Err(unreadable("the audio is empty".into()));
    }
    resample(&mono, rate)
}

fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, SpeechError> {
    if rate == SAMPLE_RATE {
        return Ok(samples.to_vec());
    }
    let failed = |e: &dyn std::fmt::Display| SpeechError::Failed(format!("resampling: {e}"));
    let mut resampler =
        Fft::<f32>::new(rate as usize, SAMPLE_RATE as usize, 1024, 1, FixedSync::Both).map_err(|e| failed(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| failed(&e))?;
    let output = resampler.process_all(&input, samples.len(), None).map_err(|e| failed(&e))?;
    Ok(output.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any bytes: samples or "bad audio", never a panic.
        #[test]
        fn fuzz_any_bytes_are_decoded_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = decode_mono_16k(bytes, 5);
        }

        /// A real WAV with its header's bytes changed and its end cut off.
        #[test]
        fn fuzz_crafted_wav_headers(changes in proptest::collection::vec((0usize..44, proptest::num::u8::ANY), 1..6), keep in 0usize..4000) {
            let mut bytes = wav(16_000, 0.1);
            for (at, value) in changes {
                bytes[at] = value;
            }
            bytes.truncate(keep.max(1));
            if let Ok(samples) = decode_mono_16k(bytes, 5) {
                proptest::prop_assert!(samples.len() <= 5 * SAMPLE_RATE as usize);
            }
        }

        /// Ogg and MP3 magic followed by anything.
        #[test]
        fn fuzz_crafted_ogg_and_mp3_headers(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..1024), ogg in proptest::bool::ANY) {
            let mut bytes = if ogg { b"OggS\0\x02".to_vec() } else { vec![0xFF, 0xFB, 0x90, 0x64] };
            bytes.extend(tail);
            let _ = decode_mono_16k(bytes, 5);
        }
    }

    /// A mono 16-bit WAV of `seconds` of a 440 Hz tone at `rate`.
    fn wav(rate: u32, seconds: f32) -> Vec<u8> {
        let n = (rate as f32 * seconds) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + n * 2).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&1u16.to_le_bytes()); // mono
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(n * 2).to_le_bytes());
        for i in 0..n {
            let v = (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5;
            out.extend_from_slice(&((v * i16::MAX as f32) as i16).to_le_bytes());
        }
        out
    }

    #[test]
    fn decodes_and_resamples_to_16k() {
        let samples = decode_mono_16k(wav(22_050, 1.0), 10).unwrap();
        assert!((15_800..=16_200).contains(&samples.len()), "{}", samples.len());
        let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.4..0.6).contains(&peak), "{peak}");
    }

    #[test]
    fn tells_how_long_a_clip_plays() {
        assert_eq!(duration_ms(&wav(22_050, 1.5)), Some(1500));
        assert_eq!(duration_ms(b"not audio"), None);
    }

    #[test]
    fn refuses_what_is_not_audio_or_too_long() {
        assert!(matches!(decode_mono_16k(b"hello, not audio".to_vec(), 10), Err(SpeechError::BadAudio(_))));
        assert!(matches!(decode_mono_16k(wav(16_000, 3.0), 2), Err(SpeechError::TooLong { .. })));
        let mut cut = wav(16_000, 1.0);
        cut.truncate(30);
        assert!(decode_mono_16k(cut, 10).is_err());
    }

    #[test]
    fn refuses_crafted_sample_rates() {
        // A prime rate would size the resampler's FFT at gigabytes; zero
        // panics inside the decoder.
        for rate in [0u32, 1, 7_999, 48_001, 4_294_967_291] {
            let mut file = wav(16_000, 0.1);
            file[24..28].copy_from_slice(&rate.to_le_bytes());
            let result = decode_mono_16k(file, 10);
            assert!(matches!(result, Err(SpeechError::BadAudio(_))), "{rate} Hz: {result:?}");
        }
    }
}
