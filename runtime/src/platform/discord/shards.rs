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

use std::sync::Arc;
use std::time::Duration;

use serenity::all::{GuildId, ShardManager};
use serenity::cache::Cache;
use serenity::Client;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::services::store::Store;

/// Between two identifies of one bucket: Discord's 5 s, plus room for the
/// connection's own delay between the turn and the IDENTIFY it sends.
pub const IDENTIFY_SPACING: Duration = Duration::from_millis(5_500);

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

    /// The caches, for answering slash commands that arrive by HTTP.
    pub fn caches(&self) -> ShardCaches {
        let caches: Vec<_> = self.clients.iter().map(|(id, client)| (*id, client.cache.clone())).collect();
        let first = caches.first().map_or_else(|| Arc::new(Cache::new()), |(_, cache)| cache.clone());
        ShardCaches { total: self.total, caches, first }
    }

    /// Connects every shard, each in its bucket's turn, and runs until all
    /// have stopped or one fails for good (a bad token, say).
    pub async fn run(self, store: Arc<dyn Store>) -> Result<(), serenity::Error> {
        let Shards { clients, total, max_concurrency } = self;
        let mut running = JoinSet::new();
        // Booked in id order, then waited for side by side.
        for (id, mut client) in clients {
            let bucket = id % max_concurrency;
            let span = tracing::info_span!("shard", id, bucket);
            let wait = book_turn(store.as_ref(), bucket).instrument(span.clone()).await;
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
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(panicked) => tracing::error!(error = %panicked, "a shard's task ended abnormally"),
            }
        }
        Ok(())
    }
}

/// Books `bucket`'s next turn to identify; returns how long until it
/// comes. Without the store, one spacing: a collision costs an
/// INVALID_SESSION and a retry, not the bot.
async fn book_turn(store: &dyn Store, bucket: u32) -> Duration {
    match store.take_turn(&format!("discord-identify/{bucket}"), IDENTIFY_SPACING).await {
        Ok(wait) => wait,
        Err(error) => {
            tracing::warn!(%error, "the identify queue cannot be reached: identifying without a turn");
            IDENTIFY_SPACING
        }
    }
}

/// Each shard's cache, found by the server whose events it receives.
#[derive(Clone)]
pub struct ShardCaches {
    total: u32,
    caches: Vec<(u32, Arc<Cache>)>,
    /// For servers of shards another process runs.
    first: Arc<Cache>,
}

impl ShardCaches {
    /// No gateway: one empty cache.
    pub fn empty() -> Self {
        ShardCaches { total: 1, caches: Vec::new(), first: Arc::new(Cache::new()) }
    }

    /// The cache of the shard that receives `guild`'s events (direct
    /// messages go to shard 0); the first when this process runs another.
    pub fn of(&self, guild: Option<GuildId>) -> &Cache {
        let shard = guild.map_or(0, |g| ((g.get() >> 22) % u64::from(self.total.max(1))) as u32);
        let found = self.caches.iter().find(|(id, _)| *id == shard);
        found.map_or(self.first.as_ref(), |(_, cache)| cache.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guild_is_looked_up_in_its_shards_cache() {
        let caches: Vec<_> = (0..2).map(|id| (id, Arc::new(Cache::new()))).collect();
        let first = caches[0].1.clone();
        let caches = ShardCaches { total: 2, caches, first };
        let on_shard_1 = GuildId::new(1 << 22);
        assert!(std::ptr::eq(caches.of(Some(on_shard_1)), caches.caches[1].1.as_ref()));
        assert!(std::ptr::eq(caches.of(Some(GuildId::new(2 << 22))), caches.caches[0].1.as_ref()));
        assert!(std::ptr::eq(caches.of(None), caches.caches[0].1.as_ref()));
    }
}
