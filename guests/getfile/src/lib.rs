//! `!getfile` — attaches a file from the folder the operator shares.
//!
//! ```text
//! !getfile <path>
//! ```
//!
//! The path is relative to the shared folder (the root `shared`); the host
//! refuses anything that leaves it, by capability handles.

use sandbot_sdk::host::files;
use sandbot_sdk::{
    command, reply_with_files, split_args, Command, CommandInfo, CommandOption, Error, HostError, Invocation,
};

struct GetFile;

const USAGE: &str = "getfile <path>";

impl Command for GetFile {
    fn describe() -> CommandInfo {
        CommandInfo::new("getfile", "Sends a file from the shared folder.", USAGE)
            .needs(&["chat.send-message", "files.read-file"])
            .option(CommandOption::string("path", "The file, in the shared folder").required())
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let args = split_args(&invocation.args)?;
        let [path] = args.as_slice() else {
            return Err(Error::usage(&invocation.prefix, USAGE));
        };
        let file = files::read_file("shared", path).map_err(|e| match e {
            HostError::NotFound(_) => Error::reply(format!("There is no file `{path}` in the shared folder.")),
            HostError::Invalid(why) => Error::reply(format!("I can't send `{path}`: {why}.")),
            HostError::TooLarge(why) => Error::reply(format!("`{path}` is too large to send ({why}).")),
            other => Error::Host(other),
        })?;
        reply_with_files(format!("`{path}`"), &[file])?;
        Ok(())
    }
}

command!(GetFile);
