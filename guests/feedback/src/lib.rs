//! `!feedback` — stores what a user thinks of the bot, with who, where and when.
//!
//! ```text
//! !feedback <text…>
//! ```

use sandbot_sdk::host::store;
use sandbot_sdk::{command, reply, Command, CommandInfo, CommandOption, Error, Invocation};

struct Feedback;

const USAGE: &str = "feedback <text…>";

impl Command for Feedback {
    fn describe() -> CommandInfo {
        CommandInfo::new("feedback", "Tells the bot's makers what you think.", USAGE)
            .needs(&["chat.send-message", "store.log-feedback"])
            .option(CommandOption::string("text", "What you think of the bot").required())
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let text = invocation.args.trim();
        if text.is_empty() {
            return Err(Error::usage(&invocation.prefix, USAGE));
        }
        store::log_feedback(text)?;
        reply("Thank you for your feedback!")?;
        Ok(())
    }
}

command!(Feedback);
