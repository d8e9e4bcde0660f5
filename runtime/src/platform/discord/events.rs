//! Discord events in: each message, and each slash command (from the
//! gateway or the HTTP endpoint), becomes a platform [`Event`] and goes to
//! the dispatcher, like a console line does.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{
    ChannelId, CommandDataOptionValue, CommandInteraction, Context, EventHandler, GuildId, Http, Interaction,
    MessageType, Ready, ResumedEvent, RoleId, ShardStageUpdateEvent, UserId,
};
use serenity::cache::Cache;

use super::commands;
use super::conversation::{DiscordConversation, Download, Shared};
use super::interaction::{Acknowledgement, InteractionConversation, DEFER_AFTER};
use crate::dispatch::Dispatcher;
use crate::platform::{Attachment, Author, Event, Message, OptionInput, SlashCommand};
use crate::telemetry;

pub struct Handler {
    pub dispatcher: Arc<Dispatcher>,
    pub shared: Arc<Shared>,
    /// Servers to register slash commands in; empty: globally.
    pub command_guilds: Vec<u64>,
    /// The registration task starts once, with the first shard 0 READY.
    pub registering: std::sync::Once,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        ctx.http.set_application_id(ready.application.id);
        // One process registers: the one running shard 0.
        if ready.shard.is_none_or(|s| s.id.0 == 0) {
            self.registering.call_once(|| {
                let registry = self.dispatcher.registry().clone();
                tokio::spawn(commands::keep_registered(ctx.http.clone(), registry, self.command_guilds.clone()));
            });
        }
        self.dispatcher.health().shard_connected(ready.shard.map_or(0, |s| s.id.0), true);
        tracing::info!(
            user = %ready.user.name,
            id = %ready.user.id,
            guilds = ready.guilds.len(),
            shard = ?ready.shard.map(|s| (s.id.0, s.total)),
            "connected to Discord"
        );
    }

    async fn resume(&self, _ctx: Context, _event: ResumedEvent) {
        tracing::info!("gateway session resumed");
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        let up = event.new == serenity::gateway::ConnectionStage::Connected;
        self.dispatcher.health().shard_connected(event.shard_id.0, up);
        if up {
            telemetry::gateway_connected(event.shard_id.0);
        }
        tracing::info!(shard = event.shard_id.0, from = %event.old, to = %event.new, "gateway connection");
    }

    /// Serenity runs each event in a task of its own, so a slow command
    /// holds up nobody else, and a panic ends only that task.
    async fn message(&self, ctx: Context, msg: serenity::all::Message) {
        telemetry::gateway_event("message");
        // The bot's own messages come back through the gateway: never answer them.
        if msg.author.id == ctx.cache.current_user().id {
            tracing::debug!(id = %msg.id, "ignored: the bot's own message");
            return;
        }
        // Joins, pins, boosts and the like are messages too; so is a
        // message whose text Discord withheld (no MESSAGE_CONTENT intent).
        if !matches!(msg.kind, MessageType::Regular | MessageType::InlineReply) {
            tracing::debug!(id = %msg.id, kind = ?msg.kind, "ignored: a system message");
            return;
        }
        if msg.content.trim().is_empty() && msg.attachments.is_empty() {
            tracing::debug!(id = %msg.id, "ignored: no text and no attachments (is MESSAGE_CONTENT on?)");
            return;
        }
        let downloads = msg
            .attachments
            .iter()
            .map(|a| Download { id: a.id.to_string(), url: a.url.clone(), size: u64::from(a.size) })
            .collect();
        let author_voice = voice_channel(&ctx.cache, &msg);
        let conversation = Arc::new(DiscordConversation::new(
            ctx.http.clone(),
            self.shared.clone(),
            msg.channel_id,
            msg.guild_id,
            msg.author.id,
            author_voice,
            downloads,
        ));
        let message = platform_message(&ctx.cache, msg, author_voice);
        // "sandbot is typing…" while a slow command has not answered yet.
        let event = Event { message: Arc::new(message), conversation: conversation.clone(), slash: None };
        conversation.typing_while(self.dispatcher.dispatch(event)).await;
    }

    /// A slash command: the same dispatcher path as a message, answered
    /// through the interaction.
    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        telemetry::gateway_event("interaction");
        let Interaction::Command(command) = interaction else {
            tracing::debug!("ignored: an interaction that is not a slash command");
            return;
        };
        answer_slash(&self.dispatcher, &self.shared, ctx.http, &ctx.cache, command, Acknowledgement::Callback).await;
    }
}

/// Runs one slash command, from the gateway or the HTTP endpoint, and
/// makes sure Discord hears back in time.
pub async fn answer_slash(
    dispatcher: &Dispatcher,
    shared: &Arc<Shared>,
    http: Arc<Http>,
    cache: &Cache,
    command: CommandInteraction,
    acknowledgement: Acknowledgement,
) {
    let (slash, attachments) = slash_command(&command);
    let downloads =
        attachments.iter().map(|(a, url)| Download { id: a.id.clone(), url: url.clone(), size: a.size }).collect();
    let author_voice = command.guild_id.and_then(|g| author_voice(cache, g, command.user.id));
    let message = interaction_message(cache, &command, &slash, attachments, author_voice);
    let channel = DiscordConversation::new(
        http,
        shared.clone(),
        command.channel_id,
        command.guild_id,
        command.user.id,
        author_voice,
        downloads,
    );
    let conversation = Arc::new(InteractionConversation::new(command, channel, acknowledgement));
    let event = Event { message: Arc::new(message), conversation: conversation.clone(), slash: Some(slash) };
    let mut dispatch = std::pin::pin!(dispatcher.dispatch(event));
    // Discord's 3 seconds: acknowledge for a slow guest, while it goes on
    // (a timer, not a task per interaction, as for typing).
    if tokio::time::timeout(DEFER_AFTER, &mut dispatch).await.is_err() {
        tokio::join!(conversation.defer_if_fresh(), dispatch);
    }
    conversation.finish().await;
}

/// The command's name and options as the platform gives them, and the
/// attachment options' files with their URLs.
fn slash_command(command: &CommandInteraction) -> (SlashCommand, Vec<(Attachment, String)>) {
    let mut files = Vec::new();
    let mut options = Vec::new();
    for option in &command.data.options {
        let value = match &option.value {
            CommandDataOptionValue::String(s) => OptionInput::String(s.clone()),
            CommandDataOptionValue::Integer(i) => OptionInput::Integer(*i),
            CommandDataOptionValue::Number(n) => OptionInput::Number(*n),
            CommandDataOptionValue::Boolean(b) => OptionInput::Boolean(*b),
            CommandDataOptionValue::User(id) => OptionInput::Mention(id.to_string()),
            CommandDataOptionValue::Channel(id) => OptionInput::Mention(id.to_string()),
            CommandDataOptionValue::Role(id) => OptionInput::Mention(id.to_string()),
            CommandDataOptionValue::Mentionable(id) => OptionInput::Mention(id.to_string()),
            CommandDataOptionValue::Attachment(id) => match command.data.resolved.attachments.get(id) {
                Some(a) => {
                    let attachment = Attachment {
                        id: a.id.to_string(),
                        filename: a.filename.clone(),
                        content_type: a.content_type.clone(),
                        size: u64::from(a.size),
                    };
                    files.push((attachment.clone(), a.url.clone()));
                    OptionInput::Attachment(attachment)
                }
                None => {
                    tracing::warn!(option = %option.name, "an attachment option without its file");
                    continue;
                }
            },
            other => {
                tracing::debug!(option = %option.name, kind = ?other.kind(), "skipped an option kind sandbot does not declare");
                continue;
            }
        };
        options.push((option.name.clone(), value));
    }
    (SlashCommand { name: command.data.name.clone(), options }, files)
}

/// The author's voice channel in `guild`, from the cache.
fn author_voice(cache: &Cache, guild: GuildId, user: UserId) -> Option<ChannelId> {
    cache.guild(guild)?.voice_states.get(&user)?.channel_id
}

fn ids(roles: &[RoleId]) -> Vec<String> {
    roles.iter().map(RoleId::to_string).collect()
}

/// Role ids as names from the cache (by id when the cache has none).
fn role_names(cache: &Cache, guild: Option<GuildId>, roles: &[RoleId]) -> Vec<String> {
    let guild = guild.and_then(|id| cache.guild(id));
    roles
        .iter()
        .map(|id| guild.as_ref().and_then(|g| g.roles.get(id)).map_or_else(|| id.to_string(), |r| r.name.clone()))
        .collect()
}

/// What the rest of the bot knows of a slash command: the user, where it
/// was typed, `/name option:value` as its text, and the attachment
/// options' files as its attachments.
fn interaction_message(
    cache: &Cache,
    command: &CommandInteraction,
    slash: &SlashCommand,
    attachments: Vec<(Attachment, String)>,
    voice_channel: Option<ChannelId>,
) -> Message {
    let user = &command.user;
    let role_ids = command.member.as_ref().map(|m| ids(&m.roles)).unwrap_or_default();
    let roles = command.member.as_ref().map(|m| role_names(cache, command.guild_id, &m.roles)).unwrap_or_default();
    let name = command
        .member
        .as_ref()
        .and_then(|m| m.nick.clone())
        .or_else(|| user.global_name.clone())
        .unwrap_or_else(|| user.name.clone());
    let mut content = format!("/{}", slash.name);
    for (option, value) in &slash.options {
        let text = match value {
            OptionInput::String(s) | OptionInput::Mention(s) => s.clone(),
            OptionInput::Integer(i) => i.to_string(),
            OptionInput::Number(n) => n.to_string(),
            OptionInput::Boolean(b) => b.to_string(),
            OptionInput::Attachment(a) => a.filename.clone(),
        };
        content.push_str(&format!(" {option}:{text}"));
    }
    Message {
        id: command.id.to_string(),
        channel: command.channel_id.to_string(),
        guild: command.guild_id.map(|id| id.to_string()),
        author: Author {
            id: user.id.to_string(),
            name,
            roles,
            role_ids,
            is_bot: user.bot,
            voice_channel: voice_channel.map(|id| id.to_string()),
            platform_operator: false,
        },
        content,
        attachments: attachments.into_iter().map(|(a, _)| a).collect(),
    }
}

/// The voice channel the author is in, from the cache's voice states.
fn voice_channel(cache: &Cache, msg: &serenity::all::Message) -> Option<ChannelId> {
    author_voice(cache, msg.guild_id?, msg.author.id)
}

/// What the rest of the bot knows of a Discord message. Role names and the
/// author's voice channel come from the cache (filled by GUILD_CREATE and
/// voice state updates); a role the cache does not know is given by id.
fn platform_message(cache: &Cache, msg: serenity::all::Message, voice_channel: Option<ChannelId>) -> Message {
    let role_ids = msg.member.as_ref().map(|m| ids(&m.roles)).unwrap_or_default();
    let roles = msg.member.as_ref().map(|m| role_names(cache, msg.guild_id, &m.roles)).unwrap_or_default();
    let name = msg
        .member
        .as_ref()
        .and_then(|m| m.nick.clone())
        .or_else(|| msg.author.global_name.clone())
        .unwrap_or_else(|| msg.author.name.clone());
    Message {
        id: msg.id.to_string(),
        channel: msg.channel_id.to_string(),
        guild: msg.guild_id.map(|id| id.to_string()),
        author: Author {
            id: msg.author.id.to_string(),
            name,
            roles,
            role_ids,
            // Webhooks post as users that are not flagged as bots.
            is_bot: msg.author.bot || msg.webhook_id.is_some(),
            voice_channel: voice_channel.map(|id| id.to_string()),
            platform_operator: false,
        },
        content: msg.content,
        attachments: msg
            .attachments
            .into_iter()
            .map(|a| Attachment {
                id: a.id.to_string(),
                filename: a.filename,
                content_type: a.content_type,
                size: u64::from(a.size),
            })
            .collect(),
    }
}
