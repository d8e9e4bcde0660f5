//! The default handler: a plain (non-command) message goes to the model,
//! and the model's answer comes back in the channel.

use sandbot_sdk::host::model;
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, Invocation};

struct Chat;

impl Command for Chat {
    fn describe() -> CommandInfo {
        CommandInfo::new("chat", "Answers plain messages with the model.", "chat <message…>")
            .needs(&["chat.send-message", "model.call-model"])
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let text = invocation.args.trim();
        if text.is_empty() {
            if invocation.message.attachments.is_empty() {
                return Ok(());
            }
            return Err(Error::reply("I can only read text messages for now."));
        }
        let answer = model::call_model(text)?;
        reply(answer)?;
        Ok(())
    }
}

command!(Chat);
