//! Shared by the end-to-end tests: a config in a temporary folder that
//! points at the real guests, and the real `sandbot` binary driven through
//! its JSON-lines console.

#![allow(dead_code)]

pub mod fake_discord;
pub mod fake_openai;
pub mod ogg_opus;
pub mod spoken;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_sandbot");

/// Two commands on the hostile guest: `!edit <id>` (edits its own message,
/// then tries another's) and `!whisper` (answers privately).
pub const EDIT_AND_WHISPER: &str = r#"
[commands.edit]
wasm = "hostile.wasm"
grants = ["chat.send-message", "chat.edit-message"]

[commands.whisper]
wasm = "hostile.wasm"
grants = ["chat.send-private"]
"#;

/// `slow`: the hostile guest sleeping the seconds it is given (3 by
/// default), then answering.
pub const SLOW: &str = r#"
[commands.slow]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
"#;

/// Where `make build` puts the guests (`target/wasm32-wasip2/guest`).
pub fn guests_dir() -> PathBuf {
    let target = Path::new(BIN).ancestors().nth(2).expect("the binary lives in target/<profile>/");
    let dir = target.join("wasm32-wasip2/guest");
    assert!(
        dir.join("hi.wasm").is_file() && dir.join("hostile.wasm").is_file(),
        "the guests are not built in {}: run `make test`, which builds them first",
        dir.display()
    );
    dir
}

/// `extra` with the sentence-embedding model that `make test` fetches put
/// in its `[model]` table (added when there is none), as the shipped
/// config has it, unless `extra` names one.
fn with_embeddings(extra: &str) -> String {
    if extra.lines().any(|l| l.starts_with("embeddings =")) {
        return extra.to_string();
    }
    let dir = workspace().join("models/all-MiniLM-L6-v2");
    assert!(dir.join("model.safetensors").is_file(), "{} is missing: run `make test`, which fetches it", dir.display());
    let line = format!("embeddings = {:?}", dir.display().to_string());
    match extra.split_once("[model]\n") {
        Some((before, after)) => format!("{before}[model]\n{line}\n{after}"),
        None => format!("{extra}\n[model]\n{line}\n"),
    }
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runtime/ is inside the workspace").to_path_buf()
}

/// A bot's folder: `sandbot.toml`, `data/` (with `data/shared/`), and the
/// secret file one level above the shared folder.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// The standard commands, with `extra` TOML appended.
    pub fn new(extra: &str) -> Setup {
        Setup::with_top("", extra)
    }

    /// Plain messages go to the `chat` command (the model).
    pub fn chatty(extra: &str) -> Setup {
        Setup::with_top("default_handler = \"chat\"", extra)
    }

    /// `top` goes before the first table (top-level keys), `extra` after.
    pub fn with_top(top: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = dir.path().join("data/shared");
        std::fs::create_dir_all(shared.join("docs")).unwrap();
        std::fs::write(shared.join("hello.txt"), "hello from the shared folder\n").unwrap();
        std::fs::write(shared.join("docs/notes.md"), "# notes\n").unwrap();
        std::fs::write(dir.path().join("data/secret.txt"), "TOKEN=do-not-leak\n").unwrap();
        std::fs::create_dir_all(dir.path().join("data/datasets")).unwrap();
        let instruction = workspace().join("bot_instruction.md");
        let text = format!(
            r#"
prefix = "!"
data_dir = "data"
guests_dir = {guests:?}
{top}

[operators]
users = ["42"]
roles = ["600"]
role_names = ["ops"]
guilds = ["local", "800"]

[rate_limit]
messages = 0

[roots]
shared = "data/shared"
datasets = "data/datasets"
data = "data"
instruction = {instruction:?}

[commands.hi]
wasm = "hi.wasm"
grants = ["chat.send-message"]

[commands.join]
wasm = "join.wasm"
grants = ["chat.send-message", "voice.join"]
limits = {{ deadline_ms = 15000 }}

[commands.leave]
wasm = "leave.wasm"
grants = ["chat.send-message", "voice.leave"]

[commands.commands]
wasm = "commands.wasm"
grants = ["chat.send-message", "commands.versions", "commands.outcomes"]

[commands.reload]
wasm = "reload.wasm"
grants = ["chat.send-message", "commands.reload"]
limits = {{ deadline_ms = 60000 }}

[commands.help]
wasm = "help.wasm"
grants = ["chat.send-message", "commands.list"]

[commands.instruction]
wasm = "instruction.wasm"
grants = ["chat.send-message", "files.read-file"]
read = ["instruction"]

[commands.feedback]
wasm = "feedback.wasm"
grants = ["chat.send-message", "store.log-feedback"]

[commands.correct]
wasm = "correct.wasm"
grants = ["chat.send-message", "chat.fetch-message", "store.log-correction"]

[commands.getfile]
wasm = "getfile.wasm"
grants = ["chat.send-message", "files.read-file"]
read = ["shared"]
limits = {{ file_mib = 1 }}

[commands.chat]
wasm = "chat.wasm"
grants = ["chat.send-message", "chat.edit-message", "model.call-model", "chat.read-attachment", "voice.transcribe", "voice.speak"]
limits = {{ deadline_ms = 120000 }}

[commands.train]
wasm = "train.wasm"
grants = ["chat.send-message", "chat.read-attachment", "model.train", "model.job-status", "model.load-dataset"]

[commands.test]
wasm = "test.wasm"
grants = ["chat.send-message", "chat.read-attachment", "model.predict"]
limits = {{ deadline_ms = 60000 }}

[commands.select_dataset]
wasm = "select_dataset.wasm"
grants = ["chat.send-message", "files.list-dir", "files.read-file", "files.archive", "model.save-dataset"]
read = ["datasets"]

[commands.archive]
wasm = "archive.wasm"
grants = ["chat.send-message", "files.archive"]
read = ["data"]

{extra}
"#,
            guests = guests_dir().display().to_string(),
            instruction = instruction.display().to_string(),
            extra = with_embeddings(extra),
        );
        let config = dir.path().join("sandbot.toml");
        std::fs::write(&config, text).unwrap();
        Setup { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs the console over `lines` to the end of input; returns every
    /// output line, parsed.
    pub fn run(&self, lines: &[Value]) -> Vec<Value> {
        let mut bot = self.spawn();
        for line in lines {
            bot.send(line);
        }
        bot.finish()
    }

    pub fn spawn(&self) -> Bot {
        let mut child = Command::new(BIN)
            .args(["console", "--jsonl", "--config"])
            .arg(&self.config)
            // `SANDBOT_TEST_LOG=info cargo test …` to see what a bot did.
            .env("RUST_LOG", std::env::var("SANDBOT_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sandbot");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Bot { child, stdin, stdout }
    }

    /// `sandbot run` on Discord: `token`, and every call to `api_base`
    /// (the fake Discord's). Extra flags go before `--config`.
    pub fn discord_command(&self, api_base: &str, token: &str, flags: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("run")
            .args(flags)
            .arg("--config")
            .arg(&self.config)
            .env("DISCORD_TOKEN", token)
            .env("SANDBOT_DISCORD_API_BASE", api_base)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    /// `sandbot export <table>`, parsed.
    pub fn export(&self, table: &str) -> Vec<Value> {
        let out = Command::new(BIN)
            .args(["export", table, "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run sandbot export");
        assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
        parse_lines(&out.stdout)
    }
}

/// A running `sandbot console --jsonl`.
pub struct Bot {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Bot {
    pub fn send(&mut self, line: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to sandbot");
        stdin.flush().unwrap();
    }

    pub fn send_raw(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{text}").expect("write to sandbot");
        stdin.flush().unwrap();
    }

    pub fn stdout_mut(&mut self) -> &mut BufReader<ChildStdout> {
        &mut self.stdout
    }

    /// Reads output lines up to and including `done` for input `n`.
    pub fn read_until_done(&mut self, n: u64) -> Vec<Value> {
        self.read_until(|value| value["type"] == "done" && value["input"] == n)
    }

    /// Reads output lines up to and including the first that `last` picks.
    pub fn read_until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.stdout.read_line(&mut line).expect("read from sandbot");
            assert!(read > 0, "sandbot closed its output before the line awaited; got {lines:?}");
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            let found = last(&value);
            lines.push(value);
            if found {
                return lines;
            }
        }
    }

    /// Closes the input and reads everything until the bot exits.
    pub fn finish(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut self.stdout, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "sandbot exited with {status}");
        parse_lines(&rest)
    }
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// An input line with just `content`.
pub fn say(content: &str) -> Value {
    json!({ "content": content })
}

/// The contents of the messages the bot sent for input `n`.
pub fn replies(out: &[Value], n: u64) -> Vec<String> {
    out.iter()
        .filter(|v| v["type"] == "message" && v["input"] == n)
        .map(|v| v["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The one reply to input `n`.
pub fn reply(out: &[Value], n: u64) -> String {
    let all = replies(out, n);
    assert_eq!(all.len(), 1, "expected one reply to input {n}, got {all:?}\nall output: {out:#?}");
    all.into_iter().next().unwrap()
}

/// A free loopback port (free when asked: whoever binds it next takes it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:`port` (the bot's health and metrics port):
/// status and body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = http(port, "GET", path, &[], "");
    (status, body)
}

/// One HTTP/1.1 exchange on 127.0.0.1:`port`: status, the response's
/// headers (lower-cased) and body.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the bot's HTTP port");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}
