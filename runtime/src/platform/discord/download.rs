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

    /// Serves one raw HTTP response: `body`, with `announced` as its
    /// Content-Length (which may lie) or chunked without one.
    async fn serve_once(announced: Option<u64>, body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/file", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let head = match announced {
                Some(length) => format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"),
                None => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_string(),
            };
            let _ = socket.write_all(head.as_bytes()).await;
            if announced.is_some() {
                let _ = socket.write_all(&body).await;
            } else {
                for chunk in body.chunks(97) {
                    let _ = socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await;
                    let _ = socket.write_all(chunk).await;
                    let _ = socket.write_all(b"\r\n").await;
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
        });
        url
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, failure_persistence: None, ..Default::default() })]
        /// Any size, announced truly, falsely or not at all: the bytes
        /// when they fit the limit, else refused; never more than the limit.
        #[test]
        fn fuzz_attachment_sizes_against_the_limit(size in 0usize..3000, limit in 0u64..3000, lie in proptest::option::of(0u64..4000)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let body: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let fetched = runtime.block_on(async {
                let url = serve_once(lie, body.clone()).await;
                Downloader::new(Duration::from_secs(5), false).unwrap().fetch(&url, limit).await
            });
            match fetched {
                Ok(bytes) => {
                    proptest::prop_assert!(bytes.len() as u64 <= limit);
                    proptest::prop_assert!(lie.is_none_or(|l| l <= limit));
                    proptest::prop_assert_eq!(&bytes[..], &body[..bytes.len()]);
                }
                Err(PlatformError::TooLarge { .. }) => {
                    proptest::prop_assert!(size as u64 > limit || lie.is_some_and(|l| l > limit));
                }
                // A length that lies cuts the transfer short or leaves it unended.
                Err(_) => proptest::prop_assert!(lie.is_some_and(|l| l != size as u64)),
            }
        }
    }

    #[tokio::test]
    async fn only_discords_cdn_against_discord() {
        let downloader = Downloader::new(Duration::from_secs(1), true).unwrap();
        for url in ["http://cdn.discordapp.com/a.txt", "https://169.254.169.254/latest", "file:///etc/passwd"] {
            let err = downloader.fetch(url, 10).await.unwrap_err();
            assert!(err.to_string().contains("refusing"), "{url}: {err}");
        }
    }
}
