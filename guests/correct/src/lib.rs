//! `!correct` — tells the bot what one of its messages should have said.
//!
//! ```text
//! !correct <message id> <correction…>
//! ```
//!
//! Only the bot's own messages in this channel can be corrected; the pair
//! (original, correction) is stored with who, where and when.

use sandbot_sdk::host::{chat, store};
use sandbot_sdk::{command, reply, Command, CommandInfo, CommandOption, Error, HostError, Invocation};

struct Correct;

const USAGE: &str = "correct <message id> <correction…>";

impl Command for Correct {
    fn describe() -> CommandInfo {
        CommandInfo::new("correct", "Corrects one of the bot's answers.", USAGE)
            .needs(&["chat.send-message", "chat.fetch-message", "store.log-correction"])
            .option(CommandOption::string("message-id", "The id of the bot's message to correct").required())
            .option(CommandOption::string("correction", "What it should have said").required())
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let (id, correction) = parse(&invocation.args).ok_or_else(|| Error::usage(&invocation.prefix, USAGE))?;
        let original = match chat::fetch_message(id) {
            Ok(message) if message.from_bot => message,
            Ok(_) | Err(HostError::NotFound(_)) | Err(HostError::Invalid(_)) => {
                return Err(Error::reply("Message not found."))
            }
            Err(other) => return Err(other.into()),
        };
        store::log_correction(id, &original.content, correction)?;
        reply("Thanks, I stored your correction.")?;
        Ok(())
    }
}

/// `<id> <text…>`: the id is the first word; the rest, as typed, is the text.
fn parse(args: &str) -> Option<(&str, &str)> {
    let (id, rest) = args.trim().split_once(char::is_whitespace)?;
    let rest = rest.trim();
    (!rest.is_empty()).then_some((id, rest))
}

command!(Correct);
