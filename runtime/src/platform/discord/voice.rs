//! Voice channels through songbird: joining, leaving, and one queue of
//! clips per server.
//!
//! A bot asked to `!join` stays until `!leave`. A bot that joined only to
//! speak an answer leaves once its queue has been idle for `idle_leave`:
//! each clip ending starts a timer, and any clip queued since, or a
//! `!join`, makes that timer stale.

use std::collections::HashMap;
use std::num::NonZeroU8;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serenity::all::{ChannelId, GuildId};
use songbird::driver::retry::Retry;
use songbird::events::{Event, EventContext, EventHandler, TrackEvent};
use songbird::input::codecs::{get_codec_registry, get_probe};
use songbird::input::Input;
use songbird::{Call, Songbird};
use tokio::sync::Mutex as AsyncMutex;

use crate::platform::{JoinOutcome, PlatformError};

/// How songbird connects: quick enough to fit a command's deadline (5 s by
/// default), where its defaults (10 s timeouts, 5 retries) would not.
pub fn songbird_config() -> songbird::Config {
    songbird::Config::default()
        .gateway_timeout(Some(Duration::from_secs(5)))
        .driver_timeout(Some(Duration::from_secs(4)))
        .driver_retry(Retry { retry_limit: NonZeroU8::new(2), ..Retry::default() })
}

pub struct Voice {
    songbird: Arc<Songbird>,
    idle_leave: Duration,
    presence: Mutex<HashMap<GuildId, Presence>>,
}

/// What the bot remembers of its stay in one server's voice channel.
#[derive(Debug, Default, Clone, Copy)]
struct Presence {
    /// Someone asked it to `!join`: it stays.
    asked: bool,
    /// Bumped by every clip queued; an idle timer started at another
    /// value is stale.
    generation: u64,
}

impl Voice {
    pub fn new(songbird: Arc<Songbird>, idle_leave: Duration) -> Arc<Voice> {
        Arc::new(Voice { songbird, idle_leave, presence: Mutex::new(HashMap::new()) })
    }

    /// Joins `channel`; `asked` when a user asked for it (`!join`), so the
    /// bot stays after it speaks.
    pub async fn join(
        self: &Arc<Self>,
        guild: GuildId,
        channel: ChannelId,
        asked: bool,
    ) -> Result<JoinOutcome, PlatformError> {
        let name = mention(channel);
        if self.current_call(guild).await.is_some_and(|(_, current)| current == channel) {
            if asked {
                self.update(guild, |p| p.asked = true);
            }
            return Ok(JoinOutcome::AlreadyThere(name));
        }
        tracing::info!(guild = %guild, channel = %channel, "joining a voice channel");
        // In a task of its own: if the guest's deadline passes meanwhile,
        // the join still ends cleanly, joined (and timed) or left.
        let this = self.clone();
        let attempt = tokio::spawn(async move {
            match this.songbird.join(guild, channel).await {
                Ok(_) => {
                    this.update(guild, |p| p.asked |= asked);
                    tracing::info!(guild = %guild, channel = %channel, "joined a voice channel");
                    // Joined to speak: leave if no clip comes.
                    this.clone().leave_when_idle(guild);
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(guild = %guild, channel = %channel, error = %e, "could not join a voice channel");
                    // songbird keeps the half-made call: leave it, so Discord
                    // does not show the bot in a channel it cannot speak in.
                    if let Err(e) = this.songbird.remove(guild).await {
                        tracing::debug!(guild = %guild, error = %e, "could not leave after a failed join");
                    }
                    this.forget(guild);
                    Err(e.to_string())
                }
            }
        });
        match attempt.await {
            Ok(Ok(())) => Ok(JoinOutcome::Joined(name)),
            Ok(Err(why)) => Err(PlatformError::Unavailable(format!("cannot connect to the voice channel ({why})"))),
            Err(e) => Err(PlatformError::Failed(format!("the voice join ended: {e}"))),
        }
    }

    /// Leaves the server's voice channel; `false` when the bot is in none.
    pub async fn leave(&self, guild: GuildId) -> Result<bool, PlatformError> {
        let connected = self.current_call(guild).await.is_some();
        self.forget(guild);
        if self.songbird.get(guild).is_none() {
            return Ok(false);
        }
        self.songbird
            .remove(guild)
            .await
            .map_err(|e| PlatformError::Failed(format!("could not leave the voice channel: {e}")))?;
        tracing::info!(guild = %guild, "left the voice channel");
        Ok(connected)
    }

    /// Queues `audio` in the server's voice channel, joining `fallback`
    /// (the author's channel) first when the bot is in none.
    pub async fn play(
        self: &Arc<Self>,
        guild: GuildId,
        fallback: Option<ChannelId>,
        audio: Vec<u8>,
    ) -> Result<(), PlatformError> {
        // Refused here, with the reason, rather than failing silently
        // inside the mixer.
        let input = playable(audio).await?;
        let call = match self.current_call(guild).await {
            Some((call, _)) => call,
            None => {
                let channel =
                    fallback.ok_or_else(|| PlatformError::NotFound("the author is not in a voice channel".into()))?;
                self.join(guild, channel, false).await?;
                self.songbird.get(guild).ok_or_else(|| PlatformError::Failed("the voice call ended".into()))?
            }
        };
        self.update(guild, |p| p.generation += 1);
        let track = call.lock().await.enqueue_input(input).await;
        let idle = ClipEnded { voice: Arc::downgrade(self), guild };
        for event in [TrackEvent::End, TrackEvent::Error] {
            if let Err(e) = track.add_event(Event::Track(event), idle.clone()) {
                tracing::debug!(guild = %guild, error = %e, "a clip ended before its idle timer was set");
            }
        }
        Ok(())
    }

    /// The server's call and its channel, if the bot is in (or joining) one.
    async fn current_call(&self, guild: GuildId) -> Option<(Arc<AsyncMutex<Call>>, ChannelId)> {
        let call = self.songbird.get(guild)?;
        let channel = call.lock().await.current_channel()?;
        Some((call, ChannelId::new(channel.0.get())))
    }

    fn update(&self, guild: GuildId, change: impl FnOnce(&mut Presence)) -> Presence {
        let mut presence = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        let entry = presence.entry(guild).or_default();
        change(entry);
        *entry
    }

    fn forget(&self, guild: GuildId) {
        self.presence.lock().unwrap_or_else(|p| p.into_inner()).remove(&guild);
    }

    /// Leaves after `idle_leave` if nothing is queued meanwhile and nobody
    /// asks the bot to stay. Called on joining to speak and when a clip ends.
    fn leave_when_idle(self: Arc<Self>, guild: GuildId) {
        let seen = self.update(guild, |_| {});
        if seen.asked {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(self.idle_leave).await;
            let now = self.update(guild, |_| {});
            if now.asked || now.generation != seen.generation {
                return;
            }
            let Some((call, _)) = self.current_call(guild).await else { return };
            if !call.lock().await.queue().is_empty() {
                return;
            }
            tracing::info!(guild = %guild, idle_secs = self.idle_leave.as_secs(), "leaving an idle voice channel");
            if let Err(e) = self.leave(guild).await {
                tracing::warn!(guild = %guild, error = %e, "could not leave an idle voice channel");
            }
        });
    }
}

/// `audio` (WAV, Ogg Opus or Vorbis, MP3, FLAC) probed and ready for
/// songbird's mixer, or the reason it cannot be played.
pub async fn playable(audio: Vec<u8>) -> Result<Input, PlatformError> {
    let input: Input = audio.into();
    input
        .make_playable_async(get_codec_registry(), get_probe())
        .await
        .map_err(|e| PlatformError::Invalid(format!("the audio cannot be played ({e})")))
}

/// How Discord shows a channel in a message: its name, as a link.
fn mention(channel: ChannelId) -> String {
    format!("<#{channel}>")
}

#[derive(Clone)]
struct ClipEnded {
    voice: Weak<Voice>,
    guild: GuildId,
}

#[async_trait]
impl EventHandler for ClipEnded {
    async fn act(&self, _ctx: &EventContext<'_>) -> Option<Event> {
        if let Some(voice) = self.voice.upgrade() {
            voice.leave_when_idle(self.guild);
        }
        // One shot per clip.
        Some(Event::Cancel)
    }
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
    use songbird::constants::VOICE_PACKET_MAX;
    use songbird::driver::bench_internals::{mixer::Mixer, track_context};
    use songbird::driver::opus::{Channels, Decoder};
    use songbird::tracks::Track;

    use super::*;

    const RTP_HEADER: usize = 12;
    const TAG: usize = 16;
    const NONCE: usize = 4;

    /// `seconds` of a sine at `freq` Hz as a 16-bit mono WAV, at a rate
    /// the mixer must resample.
    fn tone_wav(freq: f32, seconds: f32, rate: u32) -> Vec<u8> {
        let n = (seconds * rate as f32) as usize;
        let data: Vec<u8> = (0..n)
            .flat_map(|i| {
                let s = (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5;
                ((s * i16::MAX as f32) as i16).to_le_bytes()
            })
            .collect();
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&rate.to_le_bytes());
        wav.extend_from_slice(&(rate * 2).to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        wav
    }

    /// The power of `freq` in `samples` (48 kHz), by Goertzel's filter.
    fn power_at(samples: &[f32], freq: f32) -> f32 {
        let k = 2.0 * (2.0 * std::f32::consts::PI * freq / 48_000.0).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in samples {
            let s = x + k * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - k * s1 * s2) / samples.len() as f32
    }

    #[test]
    fn the_mixer_sends_what_the_bot_plays_as_opus() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let input = runtime.block_on(playable(tone_wav(440.0, 1.0, 22_050))).expect("a WAV plays");
        let (mut mixer, _listeners) = Mixer::mock(runtime.handle().clone(), false);
        let (_track, context) = track_context(Track::from(input));
        mixer.add_track(context).unwrap();

        // The mock's session key is all zeros; packets are
        // [RTP header][Opus][AES-GCM tag][4-byte nonce], header authenticated.
        let cipher = Aes256Gcm::new(&[0u8; 32].into());
        let mut decoder = Decoder::new(48_000, Channels::Stereo).unwrap();
        let mut heard = Vec::new();
        let mut packets = 0;
        for _ in 0..60 {
            let mut packet = [0u8; VOICE_PACKET_MAX];
            let len = mixer.mix_and_build_packet(&mut packet).unwrap();
            if len == 0 {
                continue;
            }
            packets += 1;
            let (header, body) = packet[..len].split_at_mut(RTP_HEADER);
            let opus_len = body.len() - TAG - NONCE;
            let (opus, rest) = body.split_at_mut(opus_len);
            let mut nonce = [0u8; 12];
            nonce[..NONCE].copy_from_slice(&rest[TAG..]);
            let tag = Tag::clone_from_slice(&rest[..TAG]);
            cipher
                .decrypt_in_place_detached(Nonce::from_slice(&nonce), header, opus, &tag)
                .expect("the packet decrypts with the session key");
            let mut pcm = vec![0f32; 5760 * 2];
            let frames = decoder.decode_float(opus, &mut pcm, false).expect("the payload is Opus");
            heard.extend(pcm[..frames * 2].chunks(2).map(|lr| (lr[0] + lr[1]) / 2.0));
        }
        assert!(packets >= 45, "only {packets} packets for a second of sound");
        // Skip the codec's start-up; the tone must stand far above a
        // frequency that is not in it, and above silence.
        let steady = &heard[4_800..heard.len().min(40_000)];
        let tone = power_at(steady, 440.0);
        let elsewhere = power_at(steady, 1_000.0);
        let rms = (steady.iter().map(|s| s * s).sum::<f32>() / steady.len() as f32).sqrt();
        assert!(rms > 0.1, "the sound is missing: rms {rms}");
        assert!(tone > 100.0 * elsewhere, "440 Hz power {tone} vs 1 kHz {elsewhere}");
    }

    #[test]
    fn what_is_not_audio_is_refused_before_playing() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let refused = runtime.block_on(playable(b"just some text, not a sound".to_vec()));
        assert!(matches!(refused, Err(PlatformError::Invalid(why)) if why.contains("cannot be played")));
    }
}
