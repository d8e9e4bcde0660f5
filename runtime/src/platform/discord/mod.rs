//! The Discord adapter: serenity's gateway and REST client on one side, the
//! dispatcher on the other. Everything Discord-specific lives in this
//! folder; no command logic does.
//!
//! ```text
//! gateway ─MESSAGE_CREATE─────▶ events::Handler ─Event─▶ Dispatcher (same as the console)
//!         ─INTERACTION_CREATE─▶        │   guests' host calls ─▶ conversation ─REST─▶ Discord
//! HTTP POST (signed) ─▶ endpoint ──────┘          (slash: interaction ─callback/body/webhook─▶ Discord)
//!                                                                      └─voice──▶ songbird
//! registry changes ─▶ commands::keep_registered ─PUT commands─▶ Discord
//! ```
//!
//! Sharding: each process runs the shard range of its config, one serenity
//! client per shard, identifying in turns booked in the store (`shards`).
//! What several processes share is the store (PostgreSQL for a fleet, or
//! one SQLite file on one machine); rate limits and the model's in-memory
//! state are per process. Slash commands by HTTP need no gateway at all:
//! replicas with `gateway = false` behind a load balancer each answer what
//! they get.

mod commands;
mod conversation;
mod download;
mod endpoint;
mod events;
mod interaction;
mod shards;
mod unreadable;
mod voice;

pub use unreadable::UnreadableEvents;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serenity::all::{ClientBuilder, CreateAllowedMentions, GatewayError, GatewayIntents, Http, HttpBuilder};
use serenity::http::HttpError;
use songbird::SerenityInit;

use crate::config::{DiscordConfig, ShardRange};
use crate::dispatch::Dispatcher;
use conversation::Shared;
use download::Downloader;
use shards::ShardClients;

/// How long one REST call to Discord may take.
const REST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the bot listens to. MESSAGE_CONTENT is privileged: turn it on for
/// the bot in the developer portal, or every message arrives empty; with
/// `message_content = false` it is not asked for, and only slash commands
/// (and direct messages, and messages that mention the bot) reach commands.
pub const INTENTS: GatewayIntents = GatewayIntents::GUILDS
    .union(GatewayIntents::GUILD_MESSAGES)
    .union(GatewayIntents::DIRECT_MESSAGES)
    .union(GatewayIntents::MESSAGE_CONTENT)
    .union(GatewayIntents::GUILD_VOICE_STATES);

/// Connects to Discord and answers messages until the gateway gives up for
/// good (a bad token, say) or the process is interrupted.
pub async fn run(dispatcher: Arc<Dispatcher>, settings: &DiscordConfig) -> anyhow::Result<()> {
    let token = settings.token.as_ref().context("no Discord token")?;
    if let Some(base) = &settings.api_base {
        tracing::warn!(api_base = %base, "Discord REST and gateway go to this server, not discord.com");
    }
    // serenity's own client has no timeout: one hung request would hang
    // the task answering that message for good.
    let rest = reqwest::Client::builder()
        .timeout(REST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    // One per shard (a serenity client owns its own); they share the
    // connection pool. Per-route rate limits are per shard, and a channel's
    // messages all go through the shard of its server.
    let new_http = || {
        let mut http = HttpBuilder::new(token.expose()).default_allowed_mentions(CreateAllowedMentions::new());
        if let Some(base) = &settings.api_base {
            http = http.proxy(base.as_str());
        }
        http.client(rest.clone()).ratelimiter_disabled(!settings.rate_limiter).build()
    };
    let http = new_http();
    if let Some(base) = settings.api_base.as_ref().filter(|_| settings.gateway) {
        // serenity falls back to Discord's own gateway when this fails, and
        // would identify there with the token: stop instead.
        let gateway = http.get_gateway().await.with_context(|| format!("{base} did not say where its gateway is"))?;
        tracing::info!(gateway = %gateway.url, "gateway of the API base");
    }
    let endpoint = match &settings.interactions {
        // Bound before anything else: a taken port is a config error.
        Some(endpoint) => Some((
            tokio::net::TcpListener::bind(endpoint.listen)
                .await
                .with_context(|| format!("cannot listen on {} (`discord.interactions_listen`)", endpoint.listen))?,
            endpoint.public_key,
        )),
        None => None,
    };
    let downloader = Downloader::new(settings.download_timeout, settings.api_base.is_none())?;
    if !settings.gateway {
        let shared = Arc::new(Shared { downloader, upload_bytes: settings.upload_bytes, voice: None });
        let http = Arc::new(http);
        let application = http
            .get_current_application_info()
            .await
            .context("Discord did not say whose application the token is: check DISCORD_TOKEN")?;
        http.set_application_id(application.id);
        tracing::info!(application = %application.id, "no gateway: slash commands by HTTP only");
        tokio::spawn(commands::keep_registered(
            http.clone(),
            dispatcher.registry().clone(),
            settings.command_guilds.clone(),
        ));
        let (listener, public_key) = endpoint.context("no gateway and no interactions endpoint")?;
        tokio::select! {
            result = serve_interactions(listener, dispatcher, shared, ShardClients::without_gateway(http), public_key) => result?,
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: closing the interactions endpoint"),
        }
        return Ok(());
    }
    let (range, max_concurrency) = shard_plan(&http, settings.shards).await?;
    let songbird = songbird::Songbird::serenity_from_config(voice::songbird_config());
    let shared = Arc::new(Shared {
        downloader,
        upload_bytes: settings.upload_bytes,
        voice: Some(voice::Voice::new(songbird.clone(), settings.voice_idle)),
    });
    let handler = Arc::new(events::Handler {
        dispatcher: dispatcher.clone(),
        shared: shared.clone(),
        command_guilds: settings.command_guilds.clone(),
        registering: std::sync::Once::new(),
    });
    let intents = if settings.message_content { INTENTS } else { INTENTS.difference(GatewayIntents::MESSAGE_CONTENT) };
    let mut clients = Vec::new();
    let mut http = Some(http);
    for id in range.first..=range.last {
        let client = ClientBuilder::new_with_http(http.take().unwrap_or_else(new_http), intents)
            .event_handler_arc(handler.clone())
            .register_songbird_with(songbird.clone())
            .await
            .context("cannot set up the Discord client")?;
        clients.push((id, client));
    }
    let shards = shards::Shards::new(clients, range.total, max_concurrency);
    dispatcher.health().expect_shards(range.first..=range.last);
    tracing::info!(shards = %range, identify_per_5s = max_concurrency, "connecting to Discord");
    let managers = shards.managers();
    let clients = shards.clients();
    let store = dispatcher.store().clone();
    let interactions = async move {
        match endpoint {
            Some((listener, public_key)) => serve_interactions(listener, dispatcher, shared, clients, public_key).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = shards.run(store) => result.map_err(explain)?,
        result = interactions => result?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted: closing the gateway");
            for manager in managers {
                manager.shutdown_all().await;
            }
        }
    }
    Ok(())
}

/// Which shards to run (Discord's recommendation for `auto`) and how many
/// may identify together (`max_concurrency`, 1 when Discord does not say).
async fn shard_plan(http: &Http, configured: ShardRange) -> anyhow::Result<(ShardRange, u32)> {
    match http.get_bot_gateway().await {
        Ok(gateway) => {
            let limit = &gateway.session_start_limit;
            tracing::info!(
                shards = gateway.shards,
                identify_per_5s = limit.max_concurrency,
                sessions_left = limit.remaining,
                "Discord recommends this many shards"
            );
            if limit.remaining == 0 {
                tracing::warn!(
                    reset_after_ms = limit.reset_after,
                    "no gateway sessions left today: shards will not connect until Discord resets the count"
                );
            }
            let shards = if configured.is_auto() {
                let total = gateway.shards.max(1);
                ShardRange { first: 0, last: total - 1, total }
            } else {
                configured
            };
            Ok((shards, gateway.session_start_limit.max_concurrency.max(1) as u32))
        }
        Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(response)))
            if response.status_code.as_u16() == 401 =>
        {
            anyhow::bail!("Discord refused the token: check DISCORD_TOKEN (or `discord.token`)")
        }
        Err(error) if !configured.is_auto() => {
            tracing::warn!(%error, "Discord did not say how many shards may identify together: one at a time");
            Ok((configured, 1))
        }
        Err(error) => Err(anyhow::Error::new(error).context("Discord did not say how many shards to run")),
    }
}

/// Answers slash commands by HTTP until the listener fails. The caller
/// handles Ctrl-C (with the gateway, it must also close the shards).
async fn serve_interactions(
    listener: tokio::net::TcpListener,
    dispatcher: Arc<Dispatcher>,
    shared: Arc<Shared>,
    clients: ShardClients,
    public_key: ed25519_dalek::VerifyingKey,
) -> anyhow::Result<()> {
    let address = listener.local_addr().context("the interactions listener has no address")?;
    tracing::info!(%address, "answering slash commands by HTTP");
    let endpoint =
        Arc::new(endpoint::Endpoint { dispatcher, shared, clients, guard: endpoint::Guard::new(public_key) });
    endpoint::serve(listener, endpoint).await.context("the interactions endpoint stopped")
}

/// Why the gateway gave up, in words an operator can act on.
fn explain(error: serenity::Error) -> anyhow::Error {
    match error {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => {
            anyhow::anyhow!("Discord refused the token: check DISCORD_TOKEN (or `discord.token`)")
        }
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => anyhow::anyhow!(
            "Discord refused the intents: turn on MESSAGE CONTENT INTENT for the bot in the developer portal"
        ),
        other => anyhow::Error::new(other).context("the Discord connection ended"),
    }
}
