//! `!leave` — leaves this server's voice channel.
//!
//! ```text
//! !leave
//! ```

use sandbot_sdk::host::voice;
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, HostError, Invocation};

struct Leave;

impl Command for Leave {
    fn describe() -> CommandInfo {
        CommandInfo::new("leave", "Leaves the voice channel.", "leave").needs(&["chat.send-message", "voice.leave"])
    }

    fn handle(_invocation: Invocation) -> Result<(), Error> {
        match voice::leave() {
            Ok(()) => reply("Left the voice channel.")?,
            Err(HostError::NotFound(_)) => return Err(Error::reply("I am not in a voice channel.")),
            Err(HostError::Unavailable(why)) => return Err(Error::reply(format!("I cannot leave: {why}."))),
            Err(other) => return Err(Error::Host(other)),
        };
        Ok(())
    }
}

command!(Leave);
