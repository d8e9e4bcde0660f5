//! The default handler: a plain (non-command) message goes to the model,
//! and the model's answer comes back in the channel.
//!
//! A voice message (an audio attachment) is transcribed first, and what
//! was said is the question. Other attachments are left alone: the text
//! of the message is answered, or the author is told what the bot can use.
//! When the author is in a voice channel, the answer is spoken there
//! (written instead where the bot cannot speak).
//!
//! The answer is read as it is written (`model.stream-model`): the first
//! sentence is sent (or spoken) at once, and the message is edited as
//! more comes, at the pace the host sets (about once a second).

use sandbot_sdk::host::{chat, model, voice};
use sandbot_sdk::{command, reply, Attachment, Command, CommandInfo, CommandOption, Error, HostError, Invocation};

/// Edits before the final one: each counts against the command's message
/// limit (10 by default), and the final edit must still fit.
const MAX_INTERIM_EDITS: u32 = 6;

struct Chat;

impl Command for Chat {
    fn describe() -> CommandInfo {
        CommandInfo::new("chat", "Answers plain messages and voice messages with the model.", "chat <message…>")
            .needs(&[
                "chat.send-message",
                "chat.edit-message",
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
        let answer = model::stream_model(&question)?;
        let mut out = if invocation.message.author.voice_channel.is_some() {
            Out::Voice { spoken: String::new() }
        } else {
            Out::text()
        };
        let mut latest = String::new();
        while let Some(piece) = answer.next()? {
            latest = piece;
            out.show(&latest, false)?;
        }
        out.show(&latest, true)
    }
}

/// Where the answer goes, and how much of it went.
enum Out {
    Voice { spoken: String },
    Text { message: Option<String>, shown: String, edits: u32 },
}

impl Out {
    fn text() -> Out {
        Out::Text { message: None, shown: String::new(), edits: 0 }
    }

    /// Shows the answer so far (`last`: the complete answer).
    fn show(&mut self, so_far: &str, last: bool) -> Result<(), Error> {
        if so_far.trim().is_empty() {
            return Ok(());
        }
        match self {
            Out::Voice { spoken } => {
                // What was not said yet; all of it if the answer changed.
                let new = so_far.strip_prefix(spoken.as_str()).unwrap_or(so_far).trim();
                if new.is_empty() {
                    return Ok(());
                }
                match voice::speak(new) {
                    Ok(()) => {
                        *spoken = so_far.to_string();
                        Ok(())
                    }
                    // Not here, not granted, or too long to say: write it.
                    Err(HostError::Unavailable(_) | HostError::Denied(_) | HostError::Invalid(_)) => {
                        *self = Out::text();
                        self.show(so_far, last)
                    }
                    Err(other) => Err(Error::Host(other)),
                }
            }
            Out::Text { message, shown, edits } => {
                let Some(id) = message else {
                    *shown = so_far.to_string();
                    *message = Some(reply(so_far)?);
                    return Ok(());
                };
                if shown == so_far || (!last && *edits >= MAX_INTERIM_EDITS) {
                    return Ok(());
                }
                let edited = *edits <= MAX_INTERIM_EDITS && chat::edit_message(id, so_far).is_ok();
                if edited {
                    *shown = so_far.to_string();
                    *edits += 1;
                } else if last {
                    // No edits (not granted, or the limit reached): the
                    // rest as a message of its own.
                    let rest = so_far.strip_prefix(shown.as_str()).unwrap_or(so_far).trim();
                    reply(rest)?;
                } else {
                    // An edit failed: no more tries, not even the last.
                    *edits = MAX_INTERIM_EDITS + 1;
                }
                Ok(())
            }
        }
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
