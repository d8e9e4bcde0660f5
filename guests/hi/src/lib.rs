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

// `cargo test -p sandbot-guest-hi`: the SDK's fake host runs `handle()`
// here, as ordinary Rust, and records what it did.
#[cfg(test)]
mod tests {
    use sandbot_sdk::testing::{invocation, FakeHost, InvocationExt};

    use super::Hi;

    #[test]
    fn greets_the_author_by_name() {
        let done = FakeHost::new().run::<Hi>(invocation("hi", "").by("Ada"));
        assert_eq!(done.result, Ok(()));
        assert_eq!(done.replies, ["HI, Ada!"]);
    }

    #[test]
    fn without_its_grant_the_user_is_told() {
        let done = FakeHost::new().grant(&[]).run::<Hi>(invocation("hi", ""));
        assert_eq!(done.denied, ["chat.send-message"]);
        assert!(done.replies.is_empty());
        assert_eq!(
            done.result,
            Err("This command is not allowed to do that (chat.send-message is not granted to this command).".into())
        );
    }
}
