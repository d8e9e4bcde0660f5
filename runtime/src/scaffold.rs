//! `sandbot new <name>`: a guest crate that builds and runs as it stands,
//! in the workspace's `guests/` folder, and its entry in the config (with
//! the one grant it needs), so that `make build` is the only next step.

use std::path::{Path, PathBuf};

/// What `new` made.
#[derive(Debug)]
pub struct Created {
    pub crate_dir: PathBuf,
    /// `false` when the config already had an entry for the name.
    pub config_entry_added: bool,
}

/// Library names that would shadow the standard crates.
const RESERVED: &[&str] = &["std", "core", "alloc", "proc_macro"];

/// Names users can type and crates can carry: `a-z`, digits, `_`, `-`,
/// starting with a letter.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 32
}

/// Creates `<guests_src>/<name>/` and adds `[commands.<name>]` to `config`
/// unless it has one.
pub fn create(name: &str, guests_src: &Path, config: &Path) -> anyhow::Result<Created> {
    anyhow::ensure!(
        valid_name(name),
        "`{name}` cannot be a command name: lowercase letters, digits, `_` and `-`, starting with a letter"
    );
    anyhow::ensure!(!RESERVED.contains(&name), "`{name}` is the name of a standard crate: pick another");
    let crate_dir = guests_src.join(name);
    anyhow::ensure!(!crate_dir.exists(), "{} already exists", crate_dir.display());
    // The config first: if it cannot be read, nothing is made.
    let text = std::fs::read_to_string(config)?;
    let parsed: toml::Table =
        text.parse().map_err(|e| anyhow::anyhow!("{} is not valid TOML: {e}", config.display()))?;
    let config_entry_added =
        !parsed.get("commands").and_then(toml::Value::as_table).is_some_and(|commands| commands.contains_key(name));

    let lib = name.replace('-', "_");
    std::fs::create_dir_all(crate_dir.join("src"))?;
    std::fs::write(crate_dir.join("Cargo.toml"), cargo_toml(name, &lib))?;
    std::fs::write(crate_dir.join("src/lib.rs"), lib_rs(name))?;
    if config_entry_added {
        let mut text = text;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n# Made by `sandbot new {name}`.\n[commands.{name}]\nwasm = \"{lib}.wasm\"\ngrants = [\"chat.send-message\"]\n"
        ));
        std::fs::write(config, text)?;
    }
    Ok(Created { crate_dir, config_entry_added })
}

fn cargo_toml(name: &str, lib: &str) -> String {
    format!(
        r#"[package]
name = "sandbot-guest-{name}"
version.workspace = true
edition.workspace = true
license.workspace = true
rust-version.workspace = true
publish = false

[lib]
name = "{lib}"            # the component is {lib}.wasm
crate-type = ["cdylib"]

[dependencies]
sandbot-sdk.workspace = true
"#
    )
}

fn lib_rs(name: &str) -> String {
    let kind = name.split(['-', '_']).map(capitalise).collect::<String>();
    format!(
        r#"//! `!{name}` — says who asked and what they said. Change it to taste:
//! `describe()` is what `!help` shows, `handle()` answers one message.
//!
//! ```text
//! !{name} <text…>
//! ```

use sandbot_sdk::{{command, reply, Command, CommandInfo, Error, Invocation}};

struct {kind};

impl Command for {kind} {{
    fn describe() -> CommandInfo {{
        // `needs` lists the host functions it calls; the operator grants
        // them in the config.
        CommandInfo::new("{name}", "Says who asked, and what they said.", "{name} <text…>")
            .needs(&["chat.send-message"])
    }}

    fn handle(invocation: Invocation) -> Result<(), Error> {{
        if invocation.args.trim().is_empty() {{
            // The reason, then the usage from `describe()`.
            return Err(Self::usage_error(&invocation, "Say something after the command."));
        }}
        reply(format!("{{}} said: {{}}", invocation.message.author.name, invocation.args.trim()))?;
        Ok(())
    }}
}}

command!({kind});

// `cargo test -p sandbot-guest-{name}` runs `handle()` natively on the
// SDK's fake host, which records what the command did.
#[cfg(test)]
mod tests {{
    use sandbot_sdk::testing::{{invocation, FakeHost, InvocationExt}};

    use super::{kind};

    #[test]
    fn says_who_said_what() {{
        let done = FakeHost::new().run::<{kind}>(invocation("{name}", "hello").by("Ada"));
        assert_eq!(done.replies, ["Ada said: hello"]);
    }}

    #[test]
    fn without_text_says_how_to_call_it() {{
        let done = FakeHost::new().run::<{kind}>(invocation("{name}", ""));
        assert_eq!(done.result, Err("Say something after the command.\nUsage: `!{name} <text…>`".into()));
        assert!(done.replies.is_empty());
    }}
}}
"#
    )
}

fn capitalise(part: &str) -> String {
    let mut chars = part.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["echo", "roll-dice", "d20", "say_it"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Echo", "1up", "../evil", "a b", "x".repeat(33).as_str()] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn adds_the_config_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sandbot.toml");
        std::fs::write(&config, "prefix = \"!\"\n").unwrap();
        let made = create("roll-dice", &dir.path().join("guests"), &config).unwrap();
        assert!(made.config_entry_added);
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("[commands.roll-dice]\nwasm = \"roll_dice.wasm\""), "{text}");
        assert!(std::fs::read_to_string(made.crate_dir.join("src/lib.rs")).unwrap().contains("struct RollDice;"));
        let again = create("roll-dice", &dir.path().join("guests"), &config).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");

        // An entry written by hand (here with a comment) is not doubled.
        std::fs::write(&config, "[commands.d20]  # by hand\nwasm = \"d20.wasm\"\n").unwrap();
        let made = create("d20", &dir.path().join("guests"), &config).unwrap();
        assert!(!made.config_entry_added);
        assert_eq!(std::fs::read_to_string(&config).unwrap().matches("[commands.d20]").count(), 1);
    }

    #[test]
    fn makes_nothing_when_the_config_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sandbot.toml");
        std::fs::write(&config, "prefix = \n").unwrap();
        assert!(create("echo", &dir.path().join("guests"), &config).is_err());
        assert!(!dir.path().join("guests/echo").exists());
        assert!(create("std", &dir.path().join("guests"), &config).is_err());
    }
}
