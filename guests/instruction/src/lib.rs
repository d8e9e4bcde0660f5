//! `!instruction` — sends the bot's user guide (`bot_instruction.md`).
//!
//! ```text
//! !instruction
//! ```
//!
//! The operator grants the file as the root `instruction`; the host splits
//! the text at the platform's message limit.

use sandbot_sdk::host::files;
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, HostError, Invocation};

struct Instruction;

impl Command for Instruction {
    fn describe() -> CommandInfo {
        CommandInfo::new("instruction", "Sends the guide to this bot.", "instruction")
            .needs(&["chat.send-message", "files.read-file"])
    }

    fn handle(_invocation: Invocation) -> Result<(), Error> {
        let file = files::read_file("instruction", "").map_err(|e| match e {
            HostError::NotFound(_) => Error::reply("The guide is missing; please tell the bot's operator."),
            other => Error::Host(other),
        })?;
        let text = String::from_utf8_lossy(&file.data);
        if text.trim().is_empty() {
            return Err(Error::reply("The guide is empty; please tell the bot's operator."));
        }
        reply(text)?;
        Ok(())
    }
}

command!(Instruction);
