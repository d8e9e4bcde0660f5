//! Voice channels through songbird: joining, leaving, and one queue of
//! clips per server.
//!
//! A bot asked to `!join` stays until `!leave`. A bot that joined only to
//! speak an answer leaves once its queue has been idle for `idle_leave`:
//! joining and each clip's end start a timer, and any clip queued since, or
//! a `!join`, makes that timer stale.
//!
//! Everything one server's voice does (join, leave, queue a clip, the idle
//! check) runs one at a time under that server's lock, in a task of its
//! own: two answers at once cannot start two joins that cancel each other,
//! and a guest whose deadline passes mid-join cannot leave the bot
//! half-joined.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU8;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serenity::all::{ChannelId, GuildId};
use songbird::driver::retry::Retry;
use songbird::events::{Event, EventContext, EventHandler, TrackEvent};
use songbird::input::codecs::{get_codec_registry, get_probe};
use songbird::input::{Input, LiveInput};
use songbird::{Call, Songbird};
use tokio::sync::Mutex as AsyncMutex;

use crate::platform::{JoinOutcome, PlatformError};
use crate::services::speech::audio::RATES;

/// Clips waiting in one server's queue before more are refused (the chat
/// guest then writes its answer instead).
const MAX_QUEUED_CLIPS: usize = 8;

/// How songbird connects: a join that fails ends within about 9 s (the
/// shipped config gives `!join` 15 s), where songbird's defaults (10 s
/// timeouts, 5 retries) take a minute.
pub fn songbird_config() -> songbird::Config {
    songbird::Config::default()
        .gateway_timeout(Some(Duration::from_secs(4)))
        .driver_timeout(Some(Duration::from_secs(4)))
        .driver_retry(Retry { retry_limit: NonZeroU8::new(1), ..Retry::default() })
}

pub struct Voice {
    songbird: Arc<Songbird>,
    idle_leave: Duration,
    servers: Mutex<HashMap<GuildId, Arc<AsyncMutex<Presence>>>>,
    /// Numbers each clip queued, in every server; never reset, so a timer
    /// from an earlier stay cannot match a later one.
    clips: AtomicU64,
}

/// What the bot remembers of its stay in one server's voice channel.
#[derive(Debug, Default)]
struct Presence {
    /// Someone asked it to `!join`: it stays.
    asked: bool,
    /// The last clip queued (or the join); an idle timer started at
    /// another value is stale.
    generation: u64,
}

impl Voice {
    pub fn new(songbird: Arc<Songbird>, idle_leave: Duration) -> Arc<Voice> {
        Arc::new(Voice { songbird, idle_leave, servers: Mutex::new(HashMap::new()), clips: AtomicU64::new(0) })
    }

    /// Joins `channel` because a user asked (`!join`): the bot stays.
    pub async fn join(self: &Arc<Self>, guild: GuildId, channel: ChannelId) -> Result<JoinOutcome, PlatformError> {
        let this = self.clone();
        detached(async move {
            let server = this.server(guild);
            let mut presence = server.lock().await;
            this.join_locked(guild, channel, true, &mut presence).await
        })
        .await
    }

    /// Leaves the server's voice channel; `false` when the bot is in none.
    pub async fn leave(self: &Arc<Self>, guild: GuildId) -> Result<bool, PlatformError> {
        let this = self.clone();
        detached(async move {
            let server = this.server(guild);
            let mut presence = server.lock().await;
            this.leave_locked(guild, &mut presence).await
        })
        .await
    }

    /// Queues `audio` in the server's voice channel, joining `author` (the
    /// author's channel) first when the bot is in none. Refused when the
    /// bot is in another channel than the author, or the queue is full.
    pub async fn play(
        self: &Arc<Self>,
        guild: GuildId,
        author: Option<ChannelId>,
        audio: Vec<u8>,
    ) -> Result<(), PlatformError> {
        // Refused here, with the reason, rather than failing silently
        // inside the mixer.
        let input = playable(audio).await?;
        let this = self.clone();
        detached(async move {
            let server = this.server(guild);
            let mut presence = server.lock().await;
            let call = match this.current_call(guild).await {
                Some((_, channel)) if author.is_some_and(|author| author != channel) => {
                    return Err(PlatformError::Unavailable("I am speaking in another voice channel".into()));
                }
                Some((call, _)) => call,
                None => {
                    let channel =
                        author.ok_or_else(|| PlatformError::NotFound("the author is not in a voice channel".into()))?;
                    this.join_locked(guild, channel, false, &mut presence).await?;
                    this.songbird
                        .get(guild)
                        .ok_or_else(|| PlatformError::Unavailable("the voice connection ended".into()))?
                }
            };
            let mut call = call.lock().await;
            if call.queue().len() >= MAX_QUEUED_CLIPS {
                return Err(PlatformError::Unavailable(format!(
                    "{MAX_QUEUED_CLIPS} clips are already waiting to be played"
                )));
            }
            let track = call.enqueue_input(input).await;
            drop(call);
            presence.generation = this.next_clip();
            let ended = ClipEnded { voice: Arc::downgrade(&this), guild };
            if track.add_event(Event::Track(TrackEvent::End), ended).is_err() {
                // Over already: time the stay from now.
                this.leave_when_idle(guild, presence.generation, presence.asked);
            }
            Ok(())
        })
        .await
    }

    /// The lock and state of one server's voice.
    fn server(&self, guild: GuildId) -> Arc<AsyncMutex<Presence>> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.entry(guild).or_default().clone()
    }

    fn next_clip(&self) -> u64 {
        self.clips.fetch_add(1, Ordering::Relaxed) + 1
    }

    async fn join_locked(
        self: &Arc<Self>,
        guild: GuildId,
        channel: ChannelId,
        asked: bool,
        presence: &mut Presence,
    ) -> Result<JoinOutcome, PlatformError> {
        let was_there = self.current_call(guild).await.is_some_and(|(_, current)| current == channel);
        tracing::info!(guild = %guild, channel = %channel, was_there, "joining a voice channel");
        // Even when already there: songbird then only reconnects a
        // connection that dropped.
        match self.songbird.join(guild, channel).await {
            Ok(_) => {
                presence.asked = asked || (was_there && presence.asked);
                if !presence.asked {
                    // Joined to speak: leave if no clip comes.
                    presence.generation = self.next_clip();
                    self.leave_when_idle(guild, presence.generation, false);
                }
                let name = mention(channel);
                Ok(if was_there { JoinOutcome::AlreadyThere(name) } else { JoinOutcome::Joined(name) })
            }
            Err(e) => {
                tracing::warn!(guild = %guild, channel = %channel, error = %e, "could not join a voice channel");
                // songbird keeps the half-made call: leave it, so Discord
                // does not show the bot in a channel it cannot speak in.
                if let Err(e) = self.leave_locked(guild, presence).await {
                    tracing::debug!(guild = %guild, error = %e, "could not leave after a failed join");
                }
                Err(PlatformError::Unavailable(format!("cannot connect to the voice channel ({e})")))
            }
        }
    }

    async fn leave_locked(&self, guild: GuildId, presence: &mut Presence) -> Result<bool, PlatformError> {
        *presence = Presence::default();
        let Some(call) = self.songbird.get(guild) else { return Ok(false) };
        let connected = call.lock().await.current_channel().is_some();
        self.songbird
            .remove(guild)
            .await
            .map_err(|e| PlatformError::Failed(format!("could not leave the voice channel: {e}")))?;
        tracing::info!(guild = %guild, "left the voice channel");
        Ok(connected)
    }

    /// The server's call and its channel, if the bot is in (or joining) one.
    async fn current_call(&self, guild: GuildId) -> Option<(Arc<AsyncMutex<Call>>, ChannelId)> {
        let call = self.songbird.get(guild)?;
        let channel = call.lock().await.current_channel()?;
        Some((call, ChannelId::new(channel.0.get())))
    }

    /// Leaves after `idle_leave` unless a clip is queued meanwhile (which
    /// changes the generation) or someone asks the bot to stay.
    fn leave_when_idle(self: &Arc<Self>, guild: GuildId, generation: u64, asked: bool) {
        if asked {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.idle_leave).await;
            let server = this.server(guild);
            let mut presence = server.lock().await;
            if presence.asked || presence.generation != generation {
                return;
            }
            if let Some((call, _)) = this.current_call(guild).await {
                if !call.lock().await.queue().is_empty() {
                    return;
                }
            }
            tracing::info!(guild = %guild, idle_secs = this.idle_leave.as_secs(), "leaving an idle voice channel");
            if let Err(e) = this.leave_locked(guild, &mut presence).await {
                tracing::warn!(guild = %guild, error = %e, "could not leave an idle voice channel");
            }
        });
    }

    /// A clip ended: time the stay from now, if it was the last one queued.
    async fn clip_ended(self: &Arc<Self>, guild: GuildId) {
        let server = self.server(guild);
        let presence = server.lock().await;
        self.leave_when_idle(guild, presence.generation, presence.asked);
    }
}

/// Runs `work` in a task of its own and waits for it: if the caller is
/// dropped (a guest's deadline), the work still finishes.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, PlatformError>> + Send + 'static,
) -> Result<T, PlatformError> {
    tokio::spawn(work).await.map_err(|e| PlatformError::Failed(format!("a voice task ended: {e}")))?
}

/// Channels a clip may have: songbird mixes them down, but a crafted
/// header could claim thousands.
const MAX_CHANNELS: usize = 8;

/// `audio` (WAV, Ogg Opus or Vorbis, MP3, FLAC) probed and ready for
/// songbird's mixer, or the reason it cannot be played. The header's rate
/// and channels are checked here: the mixer sizes its resampler from them
/// and panics when that fails, which would take every server's voice down.
async fn playable(audio: Vec<u8>) -> Result<Input, PlatformError> {
    let input: Input = audio.into();
    let input = input
        .make_playable_async(get_codec_registry(), get_probe())
        .await
        .map_err(|e| PlatformError::Invalid(format!("the audio cannot be played ({e})")))?;
    let Input::Live(LiveInput::Parsed(parsed), _) = &input else {
        return Err(PlatformError::Invalid("the audio cannot be played (it was not decoded)".into()));
    };
    let params = parsed.decoder.codec_params();
    let rate = params.sample_rate.unwrap_or(0);
    if !RATES.contains(&rate) {
        return Err(PlatformError::Invalid(format!(
            "the audio cannot be played (a sample rate of {rate} Hz; 8 to 48 kHz are)"
        )));
    }
    let channels = params.channels.map_or(0, |c| c.count());
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(PlatformError::Invalid(format!(
            "the audio cannot be played ({channels} channels; 1 to {MAX_CHANNELS} are)"
        )));
    }
    Ok(input)
}

/// How Discord shows a channel in a message: its name, as a link.
fn mention(channel: ChannelId) -> String {
    format!("<#{channel}>")
}

struct ClipEnded {
    voice: Weak<Voice>,
    guild: GuildId,
}

#[async_trait]
impl EventHandler for ClipEnded {
    async fn act(&self, _ctx: &EventContext<'_>) -> Option<Event> {
        if let Some(voice) = self.voice.upgrade() {
            let guild = self.guild;
            // Not awaited here: songbird runs every event handler of the
            // call on one task.
            tokio::spawn(async move { voice.clip_ended(guild).await });
        }
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]
        /// A clip with any header: playable within the mixer's bounds, or
        /// refused before it; never a panic.
        #[test]
        fn fuzz_crafted_clips_never_reach_the_mixer_unchecked(
            changes in proptest::collection::vec((0usize..44, proptest::num::u8::ANY), 1..6),
            keep in 0usize..2000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let mut wav = tone_wav(440.0, 0.05, 8_000);
            for (at, value) in changes {
                wav[at] = value;
            }
            wav.truncate(keep.max(1));
            if let Ok(Input::Live(LiveInput::Parsed(parsed), _)) = runtime.block_on(playable(wav)) {
                let params = parsed.decoder.codec_params();
                proptest::prop_assert!(params.sample_rate.is_some_and(|r| RATES.contains(&r)));
                proptest::prop_assert!(params.channels.is_some_and(|c| (1..=MAX_CHANNELS).contains(&c.count())));
            }
        }
    }

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

    /// A 44-byte WAV that claims 2^31 − 1 Hz: the mixer would size a
    /// resampler for it, fail, and panic (the review's finding). It is
    /// refused before it reaches the mixer, as are 1 Hz and 96 kHz.
    #[test]
    fn a_crafted_sample_rate_is_refused_before_the_mixer() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for rate in [i32::MAX as u32, 1, 96_000] {
            let mut wav = tone_wav(440.0, 0.01, 8_000);
            wav[24..28].copy_from_slice(&rate.to_le_bytes());
            let refused = runtime.block_on(playable(wav));
            assert!(
                matches!(&refused, Err(PlatformError::Invalid(why)) if why.contains("sample rate")),
                "{rate} Hz: {:?}",
                refused.as_ref().err()
            );
        }
        let mut wav = tone_wav(440.0, 0.01, 8_000);
        wav[22..24].copy_from_slice(&64u16.to_le_bytes());
        assert!(runtime.block_on(playable(wav)).is_err(), "64 channels");
        assert!(runtime.block_on(playable(tone_wav(440.0, 0.1, 48_000))).is_ok());
    }
}
