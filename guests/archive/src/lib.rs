//! `!archive` — zips a folder of the bot's data area and sends it.
//!
//! ```text
//! !archive <folder>
//! ```

use sandbot_sdk::host::files;
use sandbot_sdk::{
    command, reply_with_files, split_args, Command, CommandInfo, CommandOption, Error, HostError, Invocation,
};

struct Archive;

const USAGE: &str = "archive <folder>";

impl Command for Archive {
    fn describe() -> CommandInfo {
        CommandInfo::new("archive", "Zips a folder of the bot's data and sends it.", USAGE)
            .needs(&["chat.send-message", "files.archive"])
            .option(CommandOption::string("folder", "The folder to zip").required())
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let args = split_args(&invocation.args)?;
        let [folder] = args.as_slice() else {
            return Err(Error::usage(&invocation.prefix, USAGE));
        };
        let zip = files::archive("data", folder).map_err(|e| match e {
            HostError::NotFound(_) => Error::reply(format!("There is no folder `{folder}` in the data area.")),
            HostError::Invalid(why) => Error::reply(format!("I can't archive `{folder}`: {why}.")),
            HostError::TooLarge(why) => Error::reply(format!("`{folder}` is too large to send ({why}).")),
            other => other.into(),
        })?;
        let size = zip.data.len();
        reply_with_files(format!("`{}` ({} KiB)", zip.name, size.div_ceil(1024)), &[zip])?;
        Ok(())
    }
}

command!(Archive);
