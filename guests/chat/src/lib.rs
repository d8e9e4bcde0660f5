//! The default handler: a plain (non-command) message goes to the model,
//! and the model's answer comes back in the channel.
//!
//! A voice message (an audio attachment) is transcribed first, and what
//! was said is the question. Other attachments are left alone: the text
//! of the message is answered, or the author is told what the bot can use.
//! When the author is in a voice channel, the answer is spoken there
//! (written instead where the bot cannot speak).

use sandbot_sdk::host::{chat, model, voice};
use sandbot_sdk::{command, reply, Attachment, Command, CommandInfo, CommandOption, Error, HostError, Invocation};

struct Chat;

impl Command for Chat {
    fn describe() -> CommandInfo {
        CommandInfo::new("chat", "Answers plain messages and voice messages with the model.", "chat <message…>")
            .needs(&[
                "chat.send-message",
                "model.call-model",
                "chat.read-attachment",
                "voice.transcribe",
                "voice.speak",
            ])
            .option(CommandOption::string("message", "What to ask"))
            .option(CommandOption::attachment("voice", "A voice message to answer"))
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let mut question = invocation.args.trim().to_string();
        if let Some(audio) = invocation.message.attachments.iter().find(|a| is_audio(a)) {
            let heard = transcribe(audio)?;
            if heard.is_empty() {
                return Err(Error::reply("I could not make out any words in that recording."));
            }
            question = if question.is_empty() { heard } else { format!("{question}\n{heard}") };
        }
        if question.is_empty() {
            if let Some(other) = invocation.message.attachments.first() {
                return Err(Error::reply(format!(
                    "I can answer text and voice messages, but I cannot use `{}`.",
                    other.filename
                )));
            }
            return Ok(());
        }
        let answer = model::call_model(&question)?;
        if invocation.message.author.voice_channel.is_some() {
            match voice::speak(&answer) {
                Ok(()) => return Ok(()),
                // Not here, not granted, or too long to say: write it.
                Err(HostError::Unavailable(_) | HostError::Denied(_) | HostError::Invalid(_)) => {}
                Err(other) => return Err(Error::Host(other)),
            }
        }
        reply(answer)?;
        Ok(())
    }
}

fn transcribe(audio: &Attachment) -> Result<String, Error> {
    let bytes = chat::read_attachment(&audio.id).map_err(|e| match e {
        HostError::TooLarge(_) => Error::reply(format!("`{}` is too long for me to listen to.", audio.filename)),
        other => Error::Host(other),
    })?;
    match voice::transcribe(&bytes) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(HostError::Invalid(why)) => Err(Error::reply(format!("I cannot listen to `{}`: {why}.", audio.filename))),
        Err(HostError::TooLarge(why)) => Err(Error::reply(format!("I cannot listen to `{}`: {why}.", audio.filename))),
        Err(HostError::Unavailable(why)) => {
            Err(Error::reply(format!("I cannot listen to voice messages right now: {why}.")))
        }
        Err(other) => Err(Error::Host(other)),
    }
}

/// Audio by its content type, or by its extension when there is none.
fn is_audio(attachment: &Attachment) -> bool {
    match &attachment.content_type {
        Some(kind) => kind.starts_with("audio/"),
        None => {
            let name = attachment.filename.to_ascii_lowercase();
            [".ogg", ".opus", ".wav", ".mp3", ".flac", ".oga"].iter().any(|ext| name.ends_with(ext))
        }
    }
}

command!(Chat);
