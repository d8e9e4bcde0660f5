//! `voice`: the voice channel of the invoking guild.
//!
//! Joining and leaving go to the platform; playing, speech synthesis and
//! transcription need the speech services, which this build does not have
//! yet: they answer `unavailable`, never a pretend success.

use crate::bindings::voice;
use crate::config::HostFn;
use crate::host::{GuestCtx, HostError};
use crate::platform::JoinOutcome;

const NO_SPEECH: &str = "audio and speech are not set up in this build of the bot";

impl voice::Host for GuestCtx {
    async fn join(&mut self) -> Result<voice::JoinOutcome, HostError> {
        self.check(HostFn::VoiceJoin)?;
        if self.message.guild.is_none() {
            return Err(HostError::Invalid("voice channels exist only in servers".into()));
        }
        if self.message.author.voice_channel.is_none() {
            return Err(HostError::NotFound("the author is not in a voice channel".into()));
        }
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

    async fn play_audio(&mut self, _audio: Vec<u8>) -> Result<(), HostError> {
        self.check(HostFn::VoicePlayAudio)?;
        Err(HostError::Unavailable(NO_SPEECH.into()))
    }

    async fn speak(&mut self, _text: String) -> Result<(), HostError> {
        self.check(HostFn::VoiceSpeak)?;
        Err(HostError::Unavailable(NO_SPEECH.into()))
    }

    async fn transcribe(&mut self, _audio: Vec<u8>) -> Result<String, HostError> {
        self.check(HostFn::VoiceTranscribe)?;
        Err(HostError::Unavailable(NO_SPEECH.into()))
    }
}
