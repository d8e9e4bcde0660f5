//! The `[discord]` table: how the bot reaches Discord, or a server that
//! speaks its protocol.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::raw::RawDiscord;

/// The environment variable that overrides `discord.token`.
pub const TOKEN_ENV: &str = "DISCORD_TOKEN";
/// The environment variable that overrides `discord.api_base`.
pub const API_BASE_ENV: &str = "SANDBOT_DISCORD_API_BASE";

/// The bot token. Its `Debug` never shows it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    /// `None`: no Discord; `sandbot run` starts the console.
    pub token: Option<Token>,
    /// Every REST call goes here instead of `https://discord.com`, and the
    /// gateway URL comes from its `GET /api/v10/gateway`.
    pub api_base: Option<String>,
    /// serenity's REST rate limiter. Always on against Discord itself;
    /// serenity honours `api_base` only with it off.
    pub rate_limiter: bool,
    /// The largest file the bot uploads in one message.
    pub upload_bytes: u64,
    /// How long one attachment download may take.
    pub download_timeout: Duration,
    /// The shards this process runs.
    pub shards: ShardRange,
    /// How long a bot that joined a voice channel only to speak stays
    /// after its last clip.
    pub voice_idle: Duration,
    /// Servers whose slash commands are registered one by one (updated at
    /// once, good for testing); empty: registered globally.
    pub command_guilds: Vec<u64>,
    /// Ask for the privileged MESSAGE_CONTENT intent (prefix commands and
    /// plain messages in servers need it; slash commands do not).
    pub message_content: bool,
    /// Connect to the gateway. Off: a replica that answers slash commands
    /// over HTTP only.
    pub gateway: bool,
    /// The HTTP interactions endpoint, if this process runs one.
    pub interactions: Option<InteractionsEndpoint>,
}

/// Where slash commands arrive by HTTP, and the key that signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionsEndpoint {
    pub listen: SocketAddr,
    /// The application's public key (the developer portal's "Public
    /// Key"): every request must be signed with its private half.
    pub public_key: ed25519_dalek::VerifyingKey,
}

/// Reads the developer portal's public key: 64 hex digits.
fn public_key(hex_key: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("must be the application's public key: 64 hex digits")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "is not an Ed25519 public key".to_string())
}

impl DiscordConfig {
    /// Resolves the table, the environment winning over the file.
    /// `Err((key, reason))` names the offending key.
    pub(super) fn resolve(raw: RawDiscord, env: impl Fn(&str) -> Option<String>) -> Result<Self, (String, String)> {
        let non_empty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let token = non_empty(env(TOKEN_ENV)).or_else(|| non_empty(raw.token.map(|t| t.0))).map(Token);
        let api_base = non_empty(env(API_BASE_ENV)).or_else(|| non_empty(raw.api_base));
        if let Some(base) = &api_base {
            let parsed = reqwest::Url::parse(base).map_err(|e| ("discord.api_base".to_string(), e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() || parsed.path() != "/" {
                return Err((
                    "discord.api_base".into(),
                    "must be a scheme and a host, like http://127.0.0.1:8080 (no path)".into(),
                ));
            }
            // The token goes there with every request: in the clear only
            // to this machine.
            let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if parsed.scheme() == "http" && !loopback {
                return Err(("discord.api_base".into(), "must be https:// unless it is on this machine".into()));
            }
        }
        let rate_limiter = raw.rate_limiter.unwrap_or(api_base.is_none());
        match (rate_limiter, &api_base) {
            (false, None) => {
                return Err((
                    "discord.rate_limiter".into(),
                    "may be turned off only with `api_base` (a server of your own); Discord bans bots that ignore \
                     its rate limits"
                        .into(),
                ))
            }
            (true, Some(_)) => {
                return Err((
                    "discord.rate_limiter".into(),
                    "serenity sends every request to Discord itself while its rate limiter is on, so it cannot be on \
                     with `api_base`"
                        .into(),
                ))
            }
            _ => {}
        }
        let upload_mib = raw.upload_mib.unwrap_or(10);
        if !(1..=500).contains(&upload_mib) {
            return Err(("discord.upload_mib".into(), "must be between 1 and 500".into()));
        }
        let download_secs = raw.download_timeout_secs.unwrap_or(30);
        if !(1..=3600).contains(&download_secs) {
            return Err(("discord.download_timeout_secs".into(), "must be between 1 and 3600".into()));
        }
        let voice_idle_secs = raw.voice_idle_secs.unwrap_or(60);
        if !(1..=86_400).contains(&voice_idle_secs) {
            return Err(("discord.voice_idle_secs".into(), "must be between 1 and 86400".into()));
        }
        let shards = match raw.shards {
            Some(text) => text.parse().map_err(|e: ShardRangeError| ("discord.shards".to_string(), e.to_string()))?,
            None => ShardRange::default(),
        };
        let mut command_guilds = Vec::new();
        for guild in raw.command_guilds.unwrap_or_default() {
            match guild.trim().parse::<u64>() {
                Ok(id) if id > 0 => command_guilds.push(id),
                _ => return Err(("discord.command_guilds".into(), format!("`{guild}` is not a server id"))),
            }
        }
        let listen = non_empty(raw.interactions_listen);
        let interactions = match (listen, non_empty(raw.public_key)) {
            (None, None) => None,
            (Some(listen), Some(key)) => Some(InteractionsEndpoint {
                listen: listen.parse().map_err(|_| {
                    (
                        "discord.interactions_listen".to_string(),
                        format!("`{listen}` is not an address like 127.0.0.1:8090"),
                    )
                })?,
                public_key: public_key(&key).map_err(|why| ("discord.public_key".to_string(), why))?,
            }),
            (Some(_), None) => {
                return Err((
                    "discord.public_key".into(),
                    "is needed with `interactions_listen`: requests are checked against it".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(("discord.interactions_listen".into(), "is needed with `public_key`".into()));
            }
        };
        let gateway = raw.gateway.unwrap_or(true);
        if !gateway && interactions.is_none() {
            return Err((
                "discord.gateway".into(),
                "may be off only with `interactions_listen`: else nothing reaches the bot".into(),
            ));
        }
        Ok(DiscordConfig {
            gateway,
            interactions,
            command_guilds,
            message_content: raw.message_content.unwrap_or(true),
            token,
            api_base,
            rate_limiter,
            upload_bytes: upload_mib << 20,
            download_timeout: Duration::from_secs(download_secs),
            shards,
            voice_idle: Duration::from_secs(voice_idle_secs),
        })
    }
}

/// Shards `first..=last` of `total`, written `first-last/total` (or
/// `n/total` for one shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRange {
    pub first: u32,
    pub last: u32,
    pub total: u32,
}

impl Default for ShardRange {
    fn default() -> Self {
        ShardRange { first: 0, last: 0, total: 1 }
    }
}

impl ShardRange {
    /// `auto`: every shard, as many as Discord recommends (`GET
    /// /gateway/bot`), in this process. Only read at connection time.
    pub const AUTO: ShardRange = ShardRange { first: 0, last: 0, total: 0 };

    pub fn is_auto(&self) -> bool {
        self.total == 0
    }
}

impl fmt::Display for ShardRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_auto() {
            write!(f, "auto")
        } else if self.first == self.last {
            write!(f, "{}/{}", self.first, self.total)
        } else {
            write!(f, "{}-{}/{}", self.first, self.last, self.total)
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a shard range; write `first-last/total` (shards count from 0), like `0-1/4`, or `2/4`, or `auto`"
)]
pub struct ShardRangeError(String);

impl FromStr for ShardRange {
    type Err = ShardRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ShardRangeError(text.to_string());
        if text.trim() == "auto" {
            return Ok(ShardRange::AUTO);
        }
        let (range, total) = text.trim().split_once('/').ok_or_else(bad)?;
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
        let shards = ShardRange { first: number(first)?, last: number(last)?, total: number(total)? };
        if shards.first > shards.last || shards.last >= shards.total {
            return Err(bad());
        }
        Ok(shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::Secret;

    fn resolve(raw: RawDiscord, env: &[(&str, &str)]) -> Result<DiscordConfig, (String, String)> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DiscordConfig::resolve(raw, move |key| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    #[test]
    fn shard_ranges() {
        assert_eq!("0-1/4".parse::<ShardRange>().unwrap(), ShardRange { first: 0, last: 1, total: 4 });
        assert_eq!("2/4".parse::<ShardRange>().unwrap(), ShardRange { first: 2, last: 2, total: 4 });
        assert_eq!("2/4".parse::<ShardRange>().unwrap().to_string(), "2/4");
        assert!("auto".parse::<ShardRange>().unwrap().is_auto());
        assert_eq!(ShardRange::AUTO.to_string(), "auto");
        for bad in ["", "4/4", "2-1/4", "0-4/4", "a/b", "1", "0/0", "-1/2"] {
            assert!(bad.parse::<ShardRange>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn environment_wins_and_blank_means_unset() {
        let raw = || RawDiscord { token: Some(Secret("from-file".into())), ..RawDiscord::default() };
        let config = resolve(raw(), &[(TOKEN_ENV, "from-env")]).unwrap();
        assert_eq!(config.token.unwrap().expose(), "from-env");
        let config = resolve(raw(), &[(TOKEN_ENV, "  ")]).unwrap();
        assert_eq!(config.token.unwrap().expose(), "from-file");
        assert_eq!(resolve(RawDiscord::default(), &[]).unwrap().token, None);
    }

    #[test]
    fn the_token_never_prints() {
        let config = resolve(RawDiscord::default(), &[(TOKEN_ENV, "secret-token")]).unwrap();
        assert!(!format!("{config:?}").contains("secret-token"));
    }

    #[test]
    fn the_interactions_endpoint_needs_an_address_and_a_real_key() {
        // RFC 8032's first test key.
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let raw = |listen: Option<&str>, key: Option<&str>| RawDiscord {
            interactions_listen: listen.map(String::from),
            public_key: key.map(String::from),
            ..RawDiscord::default()
        };
        let config = resolve(raw(Some("127.0.0.1:8090"), Some(key)), &[]).unwrap();
        let endpoint = config.interactions.unwrap();
        assert_eq!(endpoint.listen.port(), 8090);
        assert!(config.gateway);
        assert_eq!(resolve(raw(Some("127.0.0.1:8090"), None), &[]).unwrap_err().0, "discord.public_key");
        assert_eq!(resolve(raw(None, Some(key)), &[]).unwrap_err().0, "discord.interactions_listen");
        assert_eq!(resolve(raw(Some("localhost"), Some(key)), &[]).unwrap_err().0, "discord.interactions_listen");
        for bad in ["abc", &key[2..], &format!("{}zz", &key[..62])] {
            assert_eq!(resolve(raw(Some("127.0.0.1:1"), Some(bad)), &[]).unwrap_err().0, "discord.public_key", "{bad}");
        }
        let no_gateway = RawDiscord { gateway: Some(false), ..RawDiscord::default() };
        assert_eq!(resolve(no_gateway, &[]).unwrap_err().0, "discord.gateway");
    }

    #[test]
    fn the_rate_limiter_is_off_only_with_an_api_base() {
        let config = resolve(RawDiscord::default(), &[]).unwrap();
        assert!(config.rate_limiter && config.api_base.is_none());
        let config = resolve(RawDiscord::default(), &[(API_BASE_ENV, "http://127.0.0.1:8080")]).unwrap();
        assert!(!config.rate_limiter);
        let off = RawDiscord { rate_limiter: Some(false), ..RawDiscord::default() };
        assert_eq!(resolve(off, &[]).unwrap_err().0, "discord.rate_limiter");
        let on = RawDiscord { rate_limiter: Some(true), ..RawDiscord::default() };
        assert_eq!(resolve(on, &[(API_BASE_ENV, "http://127.0.0.1:1")]).unwrap_err().0, "discord.rate_limiter");
        for good in ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:2", "https://proxy.example"] {
            assert!(resolve(RawDiscord::default(), &[(API_BASE_ENV, good)]).is_ok(), "{good}");
        }
        for bad in ["127.0.0.1:8080", "ftp://x", "http://127.0.0.1:8080/api", "http://proxy.example"] {
            assert_eq!(resolve(RawDiscord::default(), &[(API_BASE_ENV, bad)]).unwrap_err().0, "discord.api_base");
        }
    }
}
