//! Slash commands: the application-command set built from what the loaded
//! commands describe, registered with one bulk overwrite (globally, or per
//! configured server) at start and after every reload that changes it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use serenity::all::{GuildId, Http};
use sha2::{Digest, Sha256};

use crate::bindings::types::{CommandInfo, OptionKind, OptionValue};
use crate::options;
use crate::registry::Registry;

/// How long a failed registration waits before it is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// Discord's code for each option kind.
fn kind_code(kind: OptionKind) -> u8 {
    match kind {
        OptionKind::String => 3,
        OptionKind::Integer => 4,
        OptionKind::Boolean => 5,
        OptionKind::User => 6,
        OptionKind::Channel => 7,
        OptionKind::Role => 8,
        OptionKind::Number => 10,
        OptionKind::Attachment => 11,
    }
}

/// One command as Discord's API takes it. `name` is its configured name,
/// which users type; operators-only commands are hidden from members
/// (`default_member_permissions: "0"`) and still checked by the host.
pub fn application_command(name: &str, info: &CommandInfo, operators_only: bool) -> Value {
    let options: Vec<Value> = info
        .options
        .iter()
        .map(|o| {
            let mut option = json!({
                "type": kind_code(o.kind), "name": o.name, "description": o.description, "required": o.required,
            });
            if !o.choices.is_empty() {
                let choices: Vec<Value> = o
                    .choices
                    .iter()
                    .map(|c| {
                        let value = match &c.value {
                            OptionValue::Integer(i) => json!(i),
                            OptionValue::Number(n) => json!(n),
                            other => json!(options::text_of(other)),
                        };
                        json!({"name": c.name, "value": value})
                    })
                    .collect();
                option["choices"] = Value::Array(choices);
            }
            option
        })
        .collect();
    json!({
        "type": 1,
        "name": name,
        "description": info.summary,
        "options": options,
        "default_member_permissions": if operators_only { Some("0") } else { None },
    })
}

/// Every loaded command that can be a slash command, sorted by name.
pub fn command_set(registry: &Registry) -> Vec<Value> {
    registry
        .snapshot()
        .values()
        .filter(|c| options::check_slash(&c.config.name, &c.info).is_ok())
        .map(|c| application_command(&c.config.name, &c.info, c.config.operators_only))
        .collect()
}

/// Keeps Discord's set in line with the registry until the process ends:
/// registers at once, then whenever the set changes (an unchanged reload
/// registers nothing).
pub async fn keep_registered(http: Arc<Http>, registry: Registry, guilds: Vec<u64>) {
    let mut changes = registry.watch();
    let mut registered: Option<[u8; 32]> = None;
    loop {
        let set = Value::Array(command_set(&registry));
        let hash: [u8; 32] = Sha256::digest(set.to_string().as_bytes()).into();
        let mut failed = false;
        if registered != Some(hash) {
            match register(&http, &guilds, &set).await {
                Ok(()) => {
                    let count = set.as_array().map_or(0, Vec::len);
                    tracing::info!(commands = count, servers = guilds.len(), "registered the slash commands");
                    registered = Some(hash);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_secs = RETRY.as_secs(), "could not register the slash commands");
                    failed = true;
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if failed => {}
        }
    }
}

async fn register(http: &Http, guilds: &[u64], set: &Value) -> Result<(), serenity::Error> {
    if guilds.is_empty() {
        http.create_global_commands(set).await?;
    }
    for &guild in guilds {
        http.create_guild_commands(GuildId::new(guild), set).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{CommandOption, OptionChoice};

    #[test]
    fn a_command_becomes_what_discord_takes() {
        let info = CommandInfo {
            name: "roll".into(),
            summary: "Rolls dice.".into(),
            usage: "roll <sides>".into(),
            needs: Vec::new(),
            options: vec![CommandOption {
                name: "sides".into(),
                description: "Sides".into(),
                kind: OptionKind::Integer,
                required: true,
                choices: vec![OptionChoice { name: "six".into(), value: OptionValue::Integer(6) }],
            }],
        };
        let command = application_command("dice", &info, true);
        assert_eq!(command["name"], "dice");
        assert_eq!(command["description"], "Rolls dice.");
        assert_eq!(command["default_member_permissions"], "0");
        assert_eq!(
            command["options"][0],
            json!({"type": 4, "name": "sides", "description": "Sides", "required": true, "choices": [{"name": "six", "value": 6}]})
        );
        assert!(application_command("dice", &info, false)["default_member_permissions"].is_null());
    }
}
