//! `!hi` — greets the author.
//!
//! ```text
//! !hi
//! ```

use sandbot_sdk::{command, reply, Command, CommandInfo, Error, Invocation};

struct Hi;

impl Command for Hi {
    fn describe() -> CommandInfo {
        CommandInfo::new("hi", "Greets you.", "hi").needs(&["chat.send-message"])
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        reply(format!("HI, {}!", invocation.message.author.name))?;
        Ok(())
    }
}

command!(Hi);
