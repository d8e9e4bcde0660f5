//! `voice`: the voice channel of the invoking guild.
//!
//! Joining, leaving and playing go to the platform; speech synthesis and
//! transcription to the speech services. A platform that cannot play
//! answers `unavailable`, never a pretend success.

use crate::bindings::voice;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::platform::{JoinOutcome, PlatformError};
use crate::services::speech::SpeechError;

impl voice::Host for GuestCtx {
    async fn join(&mut self) -> Result<voice::JoinOutcome, HostError> {
        self.check(HostFn::VoiceJoin)?;
        if self.message.guild.is_none() {
            return Err(HostError::Invalid("voice channels exist only in servers".into()));
        }
        // The adapter knows where the author is, or why it cannot know.
        Ok(match self.conversation.join_voice().await? {
            JoinOutcome::Joined(channel) => voice::JoinOutcome::Joined(channel),
            JoinOutcome::AlreadyThere(channel) => voice::JoinOutcome::AlreadyThere(channel),
        })
    }

    async fn leave(&mut self) -> Result<(), HostError> {
        self.check(HostFn::VoiceLeave)?;
        if self.conversation.leave_voice().await? {
            Ok(())
        } else {
            Err(HostError::NotFound("the bot is not in a voice channel".into()))
        }
    }

    async fn play_audio(&mut self, audio: Vec<u8>) -> Result<(), HostError> {
        self.check(HostFn::VoicePlayAudio)?;
        if audio.is_empty() {
            return Err(HostError::Invalid("there is no audio".into()));
        }
        Ok(self.conversation.play_audio(audio).await?)
    }

    async fn speak(&mut self, text: String) -> Result<(), HostError> {
        self.check(HostFn::VoiceSpeak)?;
        let tts = self.services.tts.clone().ok_or_else(|| HostError::Unavailable("speech is turned off".into()))?;
        // A failure to speak is `unavailable`, so the guest can write the
        // text instead of losing it.
        let audio = crate::telemetry::speech_call("synthesize", tts.synthesize(&text)).await.map_err(|e| match e {
            SpeechError::Failed(why) => {
                tracing::warn!(error = %why, "speech synthesis failed");
                HostError::Unavailable("speaking is not possible right now".into())
            }
            other => other.into(),
        })?;
        self.conversation.play_audio(audio).await.map_err(|e| match e {
            PlatformError::Failed(why) => {
                tracing::warn!(error = %why, "a spoken answer could not be played");
                HostError::Unavailable("speaking is not possible right now".into())
            }
            other => other.into(),
        })
    }

    async fn transcribe(&mut self, audio: Vec<u8>) -> Result<String, HostError> {
        self.check(HostFn::VoiceTranscribe)?;
        let speech = self
            .services
            .speech
            .clone()
            .ok_or_else(|| HostError::Unavailable("speech recognition is turned off".into()))?;
        Ok(crate::telemetry::speech_call("transcribe", speech.transcribe(audio)).await?)
    }
}
