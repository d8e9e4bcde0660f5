//! The peer of the Discord benchmark: a plain serenity bot that answers
//! `!hi` itself, with no sandbox, no dispatcher and no logs. It is built
//! like sandbot's Discord client (the same serenity features, intents,
//! HTTP client and allowed mentions), so the difference between the two
//! is what sandbot adds on the way from MESSAGE_CREATE to the POST.
//!
//! `DISCORD_TOKEN=… SANDBOT_DISCORD_API_BASE=http://127.0.0.1:… \
//!   cargo run --release -p sandbot --example plain_serenity_bot`

use std::time::Duration;

use serenity::all::{
    ClientBuilder, Context, CreateAllowedMentions, CreateMessage, EventHandler, GatewayIntents, HttpBuilder, Message,
};

struct Greeter;

#[serenity::async_trait]
impl EventHandler for Greeter {
    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.id == ctx.cache.current_user().id || msg.content.trim() != "!hi" {
            return;
        }
        let reply = CreateMessage::new()
            .content(format!("HI, {}!", msg.author.name))
            .allowed_mentions(CreateAllowedMentions::new());
        if let Err(e) = msg.channel_id.send_message(ctx.http.as_ref(), reply).await {
            eprintln!("could not answer: {e}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let token = std::env::var("DISCORD_TOKEN")?;
    let base = std::env::var("SANDBOT_DISCORD_API_BASE")?;
    let rest =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).connect_timeout(Duration::from_secs(10)).build()?;
    let http = HttpBuilder::new(&token)
        .default_allowed_mentions(CreateAllowedMentions::new())
        .proxy(base.as_str())
        .client(rest)
        .ratelimiter_disabled(true)
        .build();
    // Without this serenity would connect to Discord's own gateway.
    http.get_gateway().await?;
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::GUILD_VOICE_STATES;
    let mut client = ClientBuilder::new_with_http(http, intents).event_handler(Greeter).await?;
    client.start().await?;
    Ok(())
}
