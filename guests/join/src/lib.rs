//! `!join` — joins the voice channel the author is in.
//!
//! ```text
//! !join
//! ```

use sandbot_sdk::host::voice::{self, JoinOutcome};
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, HostError, Invocation};

struct Join;

impl Command for Join {
    fn describe() -> CommandInfo {
        CommandInfo::new("join", "Joins your voice channel.", "join").needs(&["chat.send-message", "voice.join"])
    }

    fn handle(_invocation: Invocation) -> Result<(), Error> {
        match voice::join() {
            Ok(JoinOutcome::Joined(channel)) => reply(format!("Joined {channel}."))?,
            Ok(JoinOutcome::AlreadyThere(channel)) => reply(format!("I am already in {channel}."))?,
            Err(HostError::NotFound(_)) => return Err(Error::reply("You are not in a voice channel.")),
            Err(HostError::Invalid(why) | HostError::Unavailable(why)) => {
                return Err(Error::reply(format!("I cannot join: {why}.")))
            }
            Err(other) => return Err(Error::Host(other)),
        };
        Ok(())
    }
}

command!(Join);
