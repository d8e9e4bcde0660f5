//! `!help` — lists the loaded commands, or shows one command's usage.
//!
//! ```text
//! !help
//! !help <command>
//! ```

use sandbot_sdk::host::commands::{self, Entry};
use sandbot_sdk::{command, reply, split_args, Command, CommandInfo, CommandOption, Error, Invocation};

struct Help;

/// Discord's limit on an option's choices.
const MAX_CHOICES: usize = 25;

impl Command for Help {
    fn describe() -> CommandInfo {
        // The commands as the slash option's choices: the host describes a
        // command that reads the list again whenever the commands change.
        // Discord takes at most 25 choices; past that, any text.
        let names: Vec<String> = commands::list().map(|e| e.into_iter().map(|e| e.name).collect()).unwrap_or_default();
        let mut option = CommandOption::string("command", "A command to explain");
        if names.len() <= MAX_CHOICES {
            option = option.choices(&names.iter().map(String::as_str).collect::<Vec<_>>());
        }
        CommandInfo::new("help", "Lists the commands, or shows how to use one.", "help [command]")
            .needs(&["chat.send-message", "commands.list"])
            .option(option)
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let prefix = &invocation.prefix;
        let args = split_args(&invocation.args)?;
        let entries = commands::list()?;
        let text = match args.as_slice() {
            [] => overview(prefix, &entries),
            [name] => {
                let name = name.trim_start_matches(prefix.as_str());
                let entry = entries.iter().find(|e| e.name == name).ok_or_else(|| {
                    Error::reply(format!("There is no command `{prefix}{name}`. Try `{prefix}help`."))
                })?;
                details(prefix, entry)
            }
            _ => return Err(Error::usage(prefix, "help [command]")),
        };
        reply(text)?;
        Ok(())
    }
}

fn overview(prefix: &str, entries: &[Entry]) -> String {
    let mut text = String::from("Commands:\n");
    for entry in entries {
        let lock = if entry.operators_only { " (operators only)" } else { "" };
        text.push_str(&format!("`{prefix}{}` — {}{lock}\n", entry.name, entry.info.summary));
    }
    text.push_str(&format!("Type `{prefix}help <command>` for how to use one."));
    text
}

fn details(prefix: &str, entry: &Entry) -> String {
    let lock = if entry.operators_only { "\nOnly operators may run it." } else { "" };
    let usage = entry.info.usage.strip_prefix(entry.info.name.as_str()).unwrap_or(&entry.info.usage);
    format!("`{prefix}{}{usage}`\n{}{lock}", entry.name, entry.info.summary)
}

command!(Help);
