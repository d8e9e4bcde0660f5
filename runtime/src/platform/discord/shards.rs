//! The gateway: one serenity client per shard, each identifying only when
//! its identify bucket's turn comes.
//!
//! Discord lets a bot start `max_concurrency` sessions every 5 s, one per
//! bucket (`shard % max_concurrency`). serenity 0.12 spaces the starts of
//! one client's shards 5 s apart but knows nothing of other processes, so
//! each shard has its own client and books its turn in the store
//! ([`Store::take_turn`]): processes sharing a PostgreSQL database (or one
//! SQLite file) can all start at once.
//!
//! A reconnect that must identify again (Discord would not resume the
//! session) stays serenity's: the shard's client starts it again at once
//! (its own queue only waits 5 s after its previous start), without booking
//! a turn. If that meets another identify of the same bucket, Discord
//! answers INVALID_SESSION and serenity tries again 5 s later.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{GuildId, Http, ShardManager};
use serenity::cache::Cache;
use serenity::Client;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::services::store::Store;

/// Between two identifies of one bucket: Discord's 5 s, plus room for what
/// lies between a turn and the IDENTIFY it leads to (`GET /users/@me`, the
/// websocket, HELLO), which differs a little from one shard to the next.
pub const IDENTIFY_SPACING: Duration = Duration::from_secs(6);

/// How long booking a turn may take before the shard goes without.
const BOOKING_WAIT: Duration = Duration::from_secs(2);

/// The clients of this process's shards, not yet connected.
pub struct Shards {
    /// `(shard id, its client)`, in id order.
    clients: Vec<(u32, Client)>,
    total: u32,
    max_concurrency: u32,
}

impl Shards {
    pub fn new(clients: Vec<(u32, Client)>, total: u32, max_concurrency: u32) -> Self {
        Shards { clients, total, max_concurrency: max_concurrency.max(1) }
    }

    /// What stops the shards, for Ctrl-C.
    pub fn managers(&self) -> Vec<Arc<ShardManager>> {
        self.clients.iter().map(|(_, client)| client.shard_manager.clone()).collect()
    }

    /// Every shard's cache and REST client, for slash commands that
    /// arrive by HTTP.
    pub fn clients(&self) -> ShardClients {
        let clients: Vec<_> =
            self.clients.iter().map(|(id, client)| (*id, client.cache.clone(), client.http.clone())).collect();
        ShardClients { total: self.total, clients }
    }

    /// Connects every shard, each in its bucket's turn, and runs until all
    /// have stopped or one fails for good (a bad token, say), which stops
    /// the others.
    pub async fn run(self, store: Arc<dyn Store>) -> Result<(), serenity::Error> {
        let managers = self.managers();
        let Shards { clients, total, max_concurrency } = self;
        let mut running = JoinSet::new();
        let mut booked_here: HashMap<u32, u32> = HashMap::new();
        // Booked in id order, then waited for side by side.
        for (id, mut client) in clients {
            let bucket = id % max_concurrency;
            let span = tracing::info_span!("shard", id, bucket);
            let ahead = booked_here.entry(bucket).or_default();
            let wait = book_turn(store.as_ref(), bucket, *ahead).instrument(span.clone()).await;
            *ahead += 1;
            let shard = async move {
                if !wait.is_zero() {
                    tracing::info!(wait_ms = wait.as_millis() as u64, "waiting for the bucket's turn to identify");
                    tokio::time::sleep(wait).await;
                }
                tracing::info!("identifying");
                client.start_shard(id, total).await
            };
            running.spawn(shard.instrument(span));
        }
        let mut ended = Ok(());
        while let Some(done) = running.join_next().await {
            let failed = match done {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(panicked) => {
                    tracing::error!(error = %panicked, "a shard's task ended abnormally");
                    serenity::Error::Other("a shard's task ended abnormally")
                }
            };
            ended = Err(failed);
            break;
        }
        if ended.is_err() {
            for manager in managers {
                manager.shutdown_all().await;
            }
        }
        ended
    }
}

/// Books `bucket`'s next turn to identify; returns how long until it
/// comes. When the store cannot book it, this process spaces its own
/// shards of the bucket (`ahead` of them booked already): a collision with
/// another process costs an INVALID_SESSION and a retry, not the bot.
async fn book_turn(store: &dyn Store, bucket: u32, ahead: u32) -> Duration {
    let queue = format!("discord-identify/{bucket}");
    let error = match tokio::time::timeout(BOOKING_WAIT, store.take_turn(&queue, IDENTIFY_SPACING)).await {
        Ok(Ok(wait)) => return wait,
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {BOOKING_WAIT:?}"),
    };
    tracing::warn!(%error, "the identify queue cannot be reached: spacing this process's shards only");
    IDENTIFY_SPACING * (ahead + 1)
}

/// Each shard's cache and REST client, found by the server whose events
/// the shard receives.
#[derive(Clone)]
pub struct ShardClients {
    total: u32,
    clients: Vec<(u32, Arc<Cache>, Arc<Http>)>,
}

impl ShardClients {
    /// No gateway: one REST client and an empty cache.
    pub fn without_gateway(http: Arc<Http>) -> Self {
        ShardClients { total: 1, clients: vec![(0, Arc::new(Cache::new()), http)] }
    }

    /// The cache and REST client of the shard that receives `guild`'s
    /// events (direct messages go to shard 0); the first shard's when
    /// another process runs that one.
    pub fn of(&self, guild: Option<GuildId>) -> Option<(&Cache, &Arc<Http>)> {
        let shard = guild.map_or(0, |g| ((g.get() >> 22) % u64::from(self.total.max(1))) as u32);
        let found = self.clients.iter().find(|(id, ..)| *id == shard).or(self.clients.first());
        found.map(|(_, cache, http)| (cache.as_ref(), http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guild_is_looked_up_in_its_shards_cache() {
        let http = Arc::new(serenity::http::HttpBuilder::new("token").build());
        let clients: Vec<_> = (0..2).map(|id| (id, Arc::new(Cache::new()), http.clone())).collect();
        let clients = ShardClients { total: 2, clients };
        let cache_of = |guild: Option<GuildId>| clients.of(guild).map(|(cache, _)| cache as *const Cache);
        let on_shard_1 = GuildId::new(1 << 22);
        assert_eq!(cache_of(Some(on_shard_1)), Some(Arc::as_ptr(&clients.clients[1].1)));
        assert_eq!(cache_of(Some(GuildId::new(2 << 22))), Some(Arc::as_ptr(&clients.clients[0].1)));
        assert_eq!(cache_of(None), Some(Arc::as_ptr(&clients.clients[0].1)));
    }
}
