//! End to end through the fake Discord: the real `sandbot run` binary, real
//! serenity, real guests. Measures the time from a MESSAGE_CREATE leaving
//! the fake's gateway to the bot's POST arriving at its REST side, one
//! message at a time, then the rate when many arrive at once. The same
//! for `/hi` as a slash command: INTERACTION_CREATE to the interaction's
//! callback, and a signed POST to the HTTP interactions endpoint to its
//! response, alternating with the messages in the same run.
//!
//! `cargo bench -p sandbot --bench discord` (after `make build`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;
use support::fake_discord::{self, message, FakeDiscord};
use support::Setup;

const SEQUENTIAL: usize = 500;
const BURST: usize = 2000;
/// Requests in flight at once in the HTTP burst.
const CONCURRENT: usize = 64;

/// Discord's side of the HTTP interactions endpoint: signed POSTs over one
/// kept-alive client.
struct Endpoint {
    url: String,
    key: SigningKey,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Endpoint {
    fn new(url: String) -> Endpoint {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Endpoint { url, key: fake_discord::signing_key(), runtime, client: reqwest::Client::new() }
    }

    /// An interaction `/hi` by `user`, serialised: its token and body.
    fn request(&self, id: u64, user: &str) -> (String, Vec<u8>) {
        let (id, token) = ((50_000_000 + id).to_string(), format!("token-http-{id}"));
        let body = fake_discord::interaction(&id, &token, user, "hi", json!([]), json!({}));
        (token, serde_json::to_vec(&body).expect("json"))
    }

    fn signed(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let timestamp = fake_discord::unix_now().to_string();
        let signature = self.key.sign(&[timestamp.as_bytes(), &body].concat());
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
            .header("x-signature-timestamp", timestamp)
            .body(body)
    }

    fn post(&self, body: &[u8]) -> (u16, serde_json::Value) {
        let request = self.signed(body.to_vec());
        self.runtime.block_on(answer(request))
    }

    /// Every request, `CONCURRENT` in flight at a time, each answer
    /// handed to the fake Discord as it arrives (as Discord takes it);
    /// the statuses in order.
    fn post_all(&self, fake: &FakeDiscord, requests: Vec<(String, Vec<u8>)>) -> Vec<u16> {
        let requests: Vec<_> = requests.into_iter().map(|(token, body)| (token, self.signed(body))).collect();
        self.runtime.block_on(async {
            use futures_util::StreamExt;
            let answers = requests.into_iter().map(|(token, request)| async move {
                let (status, body) = answer(request).await;
                fake.took_response(&token, &body);
                status
            });
            futures_util::stream::iter(answers).buffered(CONCURRENT).collect().await
        })
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("POST to the interactions endpoint");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then there is nothing to check here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let setup = Setup::new(&format!(
        "[discord]\ninteractions_listen = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\n",
        fake_discord::public_key_hex()
    ));
    let endpoint = Endpoint::new(format!("http://127.0.0.1:{port}/interactions"));
    let fake = FakeDiscord::start();
    let mut bot = setup
        .discord_command(&fake.api_base(), "fake-token", &[])
        .stdout(Stdio::null())
        .spawn()
        .expect("start sandbot");
    fake.wait_identified(1);

    let mut posted = 0;
    let mut send_and_wait = |user: usize| {
        let id = fake.say(message(&(1000 + user).to_string(), "!hi"));
        posted += 1;
        let post = fake.wait_posts(posted).pop().expect("a post");
        post.at - fake.sent_at(&id).expect("sent")
    };
    for user in 0..50 {
        send_and_wait(user);
    }
    let interact_and_wait = |user: usize| {
        let token = fake.interact(&(5000 + user).to_string(), "hi", serde_json::json!([]), serde_json::json!({}));
        let answered = fake.wait_answered(&token, 1);
        answered[0].at - fake.interacted_at(&token).expect("sent")
    };
    let mut serial = 0;
    let mut post_and_wait = |user: usize| {
        serial += 1;
        let (token, request) = endpoint.request(serial, &(9000 + user).to_string());
        let started = Instant::now();
        let (status, body) = endpoint.post(&request);
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        fake.took_response(&token, &body);
        took
    };
    let (mut latencies, mut slash, mut by_http) = (Vec::new(), Vec::new(), Vec::new());
    for user in 0..SEQUENTIAL {
        latencies.push(send_and_wait(user));
        slash.push(interact_and_wait(user));
        by_http.push(post_and_wait(user));
    }
    for (what, latencies) in
        [("hi", &mut latencies), ("slash /hi", &mut slash), ("slash /hi by HTTP, request → response", &mut by_http)]
    {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "discord/{what} one at a time ({SEQUENTIAL}): median {:.0} µs, p99 {:.0} µs, min {:.0} µs",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            latencies[0].as_secs_f64() * 1e6,
        );
    }

    let before = fake.posts().len();
    let started = Instant::now();
    for user in 0..BURST {
        fake.say(message(&(100_000 + user).to_string(), "!hi"));
    }
    let posts = fake.wait_posts(before + BURST);
    let elapsed = posts.last().expect("posts").at - started;
    println!(
        "discord/hi burst of {BURST}: {:.0} messages/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // The same burst as slash commands, through the gateway.
    let started = Instant::now();
    let tokens: Vec<String> =
        (0..BURST).map(|user| fake.interact(&(200_000 + user).to_string(), "hi", json!([]), json!({}))).collect();
    let last = tokens.iter().map(|token| fake.wait_answered(token, 1)[0].at).max().expect("answers");
    let elapsed = last - started;
    println!(
        "discord/slash /hi burst of {BURST}: {:.0} interactions/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // And by HTTP: signed requests, CONCURRENT at a time, as many as the
    // burst.
    let requests: Vec<(String, Vec<u8>)> =
        (0..BURST).map(|user| endpoint.request(1_000_000 + user as u64, &(300_000 + user).to_string())).collect();
    let started = Instant::now();
    let statuses = endpoint.post_all(&fake, requests);
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|status| *status == 200), "a request was refused");
    println!(
        "discord/slash /hi by HTTP, {BURST} requests {CONCURRENT} at a time: {:.0} requests/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", bot.id())) {
        for line in status.lines().filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS")) {
            println!("discord/bot memory: {line}");
        }
    }
    let _ = bot.kill();
    let _ = bot.wait();
}
