//! Gateway events in: each Discord message becomes a platform [`Message`]
//! and goes to the dispatcher, like a console line does.

use std::sync::Arc;

use async_trait::async_trait;
use serenity::all::{
    ChannelId, Context, EventHandler, Guild, MessageType, RawEventHandler, Ready, ResumedEvent, ShardStageUpdateEvent,
};
use serenity::cache::Cache;

use super::conversation::{DiscordConversation, Download, Shared};
use crate::dispatch::Dispatcher;
use crate::platform::{Attachment, Author, Event, Message};

pub struct Handler {
    pub dispatcher: Arc<Dispatcher>,
    pub shared: Arc<Shared>,
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
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
        tracing::info!(shard = event.shard_id.0, from = %event.old, to = %event.new, "gateway connection");
    }

    /// Serenity runs each event in a task of its own, so a slow command
    /// holds up nobody else, and a panic ends only that task.
    async fn message(&self, ctx: Context, msg: serenity::all::Message) {
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
        let conversation = DiscordConversation::new(
            ctx.http.clone(),
            self.shared.clone(),
            msg.channel_id,
            msg.guild_id,
            msg.author.id,
            author_voice,
            downloads,
        );
        let message = platform_message(&ctx.cache, msg, author_voice);
        self.dispatcher
            .dispatch(Event { message: Arc::new(message), conversation: Arc::new(conversation), slash: None })
            .await;
    }
}

/// Logs events serenity could not read. A malformed event does not stop
/// the shard: serenity hands it over as `Unknown` and goes on, and only
/// this handler sees it.
pub struct UnreadableEvents;

#[async_trait]
impl RawEventHandler for UnreadableEvents {
    async fn raw_event(&self, _ctx: Context, event: serenity::all::Event) {
        let serenity::all::Event::Unknown(unknown) = event else { return };
        let id = unknown.value.get("id").map(|id| id.to_string()).unwrap_or_default();
        // Read it again for serde's reason: serenity keeps only the payload.
        let why = match unknown.kind.as_str() {
            "MESSAGE_CREATE" => serde_json::from_value::<serenity::all::Message>(unknown.value).err(),
            "GUILD_CREATE" => serde_json::from_value::<Guild>(unknown.value).err(),
            _ => {
                tracing::debug!(event = %unknown.kind, "skipped an event this bot does not know");
                return;
            }
        };
        let why = why.map(|e| e.to_string()).unwrap_or_default();
        tracing::warn!(event = %unknown.kind, id = %id, error = %why, "skipped an event this bot cannot read");
    }
}

/// The voice channel the author is in, from the cache's voice states.
fn voice_channel(cache: &Cache, msg: &serenity::all::Message) -> Option<ChannelId> {
    let guild = cache.guild(msg.guild_id?)?;
    guild.voice_states.get(&msg.author.id)?.channel_id
}

/// What the rest of the bot knows of a Discord message. Role names and the
/// author's voice channel come from the cache (filled by GUILD_CREATE and
/// voice state updates); a role the cache does not know is given by id.
fn platform_message(cache: &Cache, msg: serenity::all::Message, voice_channel: Option<ChannelId>) -> Message {
    let guild = msg.guild_id.and_then(|id| cache.guild(id));
    let roles = msg
        .member
        .as_ref()
        .map(|member| {
            member
                .roles
                .iter()
                .map(|id| {
                    guild.as_ref().and_then(|g| g.roles.get(id)).map_or_else(|| id.to_string(), |r| r.name.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    drop(guild);
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
