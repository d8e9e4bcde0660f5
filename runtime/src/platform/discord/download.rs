//! Attachment downloads with the limits serenity's `Attachment::download`
//! lacks: the status is checked, the size is capped while reading, the
//! whole download has a deadline, redirects are not followed, and (against
//! Discord itself) only Discord's CDN over HTTPS is contacted.

use std::time::Duration;

use crate::platform::PlatformError;

/// Where Discord serves attachments from.
const DISCORD_CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];

pub struct Downloader {
    client: reqwest::Client,
    /// Off when the bot talks to a server of the operator's (`api_base`),
    /// whose attachment URLs point wherever it serves them.
    cdn_only: bool,
}

impl Downloader {
    pub fn new(timeout: Duration, cdn_only: bool) -> anyhow::Result<Downloader> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sandbot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Downloader { client, cdn_only })
    }

    /// The bytes at `url`, refused as soon as they pass `limit`.
    pub async fn fetch(&self, url: &str, limit: u64) -> Result<Vec<u8>, PlatformError> {
        let url = reqwest::Url::parse(url).map_err(|e| PlatformError::Failed(format!("bad attachment URL: {e}")))?;
        if self.cdn_only
            && !(url.scheme() == "https" && url.host_str().is_some_and(|host| DISCORD_CDN_HOSTS.contains(&host)))
        {
            return Err(PlatformError::Failed(format!(
                "refusing to download an attachment from {}",
                url.host_str().unwrap_or("?")
            )));
        }
        let failed = |e: reqwest::Error| PlatformError::Failed(format!("downloading the attachment: {e}"));
        let mut response = self.client.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(PlatformError::Failed(format!("downloading the attachment: HTTP {status}")));
        }
        let announced = response.content_length();
        if let Some(size) = announced.filter(|&size| size > limit) {
            return Err(PlatformError::TooLarge { size, limit });
        }
        let mut data = Vec::with_capacity(announced.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            let size = data.len() as u64 + chunk.len() as u64;
            if size > limit {
                return Err(PlatformError::TooLarge { size, limit });
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_discords_cdn_against_discord() {
        let downloader = Downloader::new(Duration::from_secs(1), true).unwrap();
        for url in ["http://cdn.discordapp.com/a.txt", "https://169.254.169.254/latest", "file:///etc/passwd"] {
            let err = downloader.fetch(url, 10).await.unwrap_err();
            assert!(err.to_string().contains("refusing"), "{url}: {err}");
        }
    }
}
