//! The operator's dashboard, as an operator and an attacker meet it: the
//! real bot (the console) with `[dashboard]` on, driven over HTTP and in
//! a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `make test` installs through scripts/setup-tests.sh).
//!
//! Screenshots land in `target/test-artefacts/dashboard/`.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, guests_dir, http, replies, say, workspace, Bot, Setup};

const TOKEN: &str = "an-operator-token-for-the-tests";

/// Waits for something to listen on `port` (the bot loads its commands
/// first).
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// Logs in with the token; returns the `Cookie` header to send.
fn log_in(port: u16) -> String {
    let (status, head, _) = http(port, "POST", "/login", &[FORM], &format!("token={TOKEN}&next=/"));
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_string();
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

/// The CSRF token the page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_string()
}

fn dashboard_setup(port: u16, extra: &str) -> Setup {
    Setup::new(&format!("[dashboard]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n{extra}"))
}

#[test]
fn without_the_token_every_page_and_change_is_refused() {
    let port = free_port();
    let setup = dashboard_setup(port, "");
    let mut bot = setup.spawn();
    wait_for_port(port);

    for path in ["/", "/failures", "/jobs", "/corrections", "/feedback", "/deploy", "/download/feedback.csv"] {
        let (status, _, body) = http(port, "GET", path, &[], "");
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("name=\"token\""), "{path} shows the login form: {body}");
        assert!(!body.contains("command-hi"), "{path} shows nothing else");
    }
    for path in ["/rollback", "/deploy", "/logout"] {
        let (status, _, _) = http(port, "POST", path, &[FORM], "name=hi&csrf=x");
        assert_eq!(status, 403, "{path}");
    }
    // A stolen-looking cookie is no session.
    let (status, _, _) = http(port, "GET", "/", &[("Cookie", "sandbot_session=00ff")], "");
    assert_eq!(status, 401);
    let (status, _, body) = http(port, "POST", "/login", &[FORM], "token=not-the-token&next=/");
    assert_eq!(status, 401);
    assert!(body.contains("not the operator token"), "{body}");

    let cookie = log_in(port);
    let (status, head, page) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"command-hi\""), "{page}");
    assert!(head.contains("content-security-policy: default-src 'none'"), "{head}");
    let csrf = csrf_of(&page);

    // Logged in, a change still needs the form's CSRF token, from this site.
    let with_cookie = [FORM, ("Cookie", cookie.as_str())];
    for body in
        ["name=hi", "name=hi&csrf=", "name=hi&csrf=0000000000000000000000000000000000000000000000000000000000000000"]
    {
        let (status, _, answer) = http(port, "POST", "/rollback", &with_cookie, body);
        assert_eq!(status, 403, "{body}: {answer}");
        assert!(answer.contains("CSRF"), "{answer}");
    }
    let (status, _, answer) = http(port, "POST", "/logout", &with_cookie, "csrf=wrong");
    assert_eq!(status, 403, "{answer}");
    let upload = "--X\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nwrong\r\n\
                  --X\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nhi\r\n\
                  --X\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"a.wasm\"\r\n\r\n\0asm\r\n--X--\r\n";
    let multipart = [("Content-Type", "multipart/form-data; boundary=X"), ("Cookie", cookie.as_str())];
    let (status, _, answer) = http(port, "POST", "/deploy", &multipart, upload);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("CSRF"), "{answer}");
    let cross_site = [FORM, ("Cookie", cookie.as_str()), ("Origin", "http://evil.example")];
    let (status, _, _) = http(port, "POST", "/rollback", &cross_site, &format!("name=hi&csrf={csrf}"));
    assert_eq!(status, 403);
    // With both, the change runs (and says there is nothing to roll back).
    let (status, _, answer) = http(port, "POST", "/rollback", &with_cookie, &format!("name=hi&csrf={csrf}"));
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("no deployment to roll back"), "{answer}");

    // Feedback, paged and downloaded; what a user typed stays text.
    bot.send(&say("!feedback <b>bold</b> =1+2 and, a comma"));
    bot.read_until_done(0);
    bot.send(&say("!feedback =cmd|' /C calc'!A0"));
    bot.read_until_done(1);
    let (_, _, page) = http(port, "GET", "/feedback", &[("Cookie", &cookie)], "");
    assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"), "{page}");
    let (status, head, csv) = http(port, "GET", "/download/feedback.csv", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(csv.lines().next().unwrap().split(',').any(|column| column == "text"), "{csv}");
    assert!(csv.contains("\"<b>bold</b> =1+2 and, a comma\""), "quoted, as one cell: {csv}");
    // A cell a spreadsheet would run as a formula is text.
    assert!(csv.contains(",\"'=cmd|' /C calc'!A0\"") || csv.contains(",'=cmd|' /C calc'!A0"), "{csv}");
    assert!(!csv.contains(",=cmd"), "{csv}");
    let (_, _, jsonl) = http(port, "GET", "/download/feedback.jsonl", &[("Cookie", &cookie)], "");
    let row: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(row["text"], "<b>bold</b> =1+2 and, a comma");

    // Logging out ends the session.
    let (status, _, _) = http(port, "POST", "/logout", &with_cookie, &format!("csrf={csrf}"));
    assert_eq!(status, 303);
    let (status, _, _) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(status, 401);
    bot.finish();
}

#[test]
fn off_loopback_without_a_token_does_not_start() {
    let setup = Setup::new(&format!("[dashboard]\nlisten = \"0.0.0.0:{}\"\n", free_port()));
    let out = Command::new(support::BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .env_remove("SANDBOT_DASHBOARD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dashboard.listen") && stderr.contains("token"), "{stderr}");
}

#[test]
fn on_loopback_without_a_token_it_makes_one_up_and_prints_it() {
    let port = free_port();
    let setup = Setup::new(&format!("[dashboard]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut child = Command::new(support::BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .env_remove("SANDBOT_DASHBOARD_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let token = loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "no dashboard line");
        if let Some(rest) = line.strip_prefix(&format!("dashboard: http://127.0.0.1:{port}/  (token for this run: ")) {
            break rest.trim_end().trim_end_matches(')').to_string();
        }
    };
    let (status, _, _) = http(port, "POST", "/login", &[FORM], &format!("token={token}"));
    assert_eq!(status, 303, "the printed token logs in");
    let (status, _, _) = http(port, "POST", "/login", &[FORM], "token=guess");
    assert_eq!(status, 401);
    drop(child.stdin.take());
    child.wait().unwrap();
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&binary).exists(),
        "{binary} is missing: `./scripts/setup-tests.sh` installs Debian's chromium and chromium-driver"
    );
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    wait_for_port(port);
    Driver { child, port }
}

fn artefacts() -> PathBuf {
    let dir = workspace().join("target/test-artefacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `!hi` once; its one reply.
fn ask_hi(bot: &mut Bot, n: &mut u64) -> String {
    bot.send(&say("!hi"));
    let out = bot.read_until_done(*n);
    let reply = replies(&out, *n).join("\n");
    *n += 1;
    reply
}

#[test]
fn an_operator_in_a_browser_sees_commands_and_failures_and_deploys_and_rolls_back() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(in_a_browser());
}

async fn in_a_browser() {
    use fantoccini::{ClientBuilder, Locator};

    let port = free_port();
    let setup = dashboard_setup(
        port,
        "[commands.loop]\nwasm = \"hostile.wasm\"\ngrants = [\"chat.send-message\"]\nlimits = { deadline_ms = 300 }\n\
         [commands.sneak]\nwasm = \"hostile.wasm\"\ngrants = [\"chat.send-message\"]\n",
    );
    let mut bot = setup.spawn();
    let mut n = 0;
    assert!(ask_hi(&mut bot, &mut n).starts_with("HI, "), "the version from the config answers first");
    wait_for_port(port);
    let driver = chromedriver();
    let data_dir = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", format!("--user-data-dir={}", data_dir.path().display())],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session in headless Chromium");
    let shots = artefacts();
    let base = format!("http://127.0.0.1:{port}");
    let shot = |name: &'static str| {
        let browser = browser.clone();
        let path = shots.join(name);
        async move {
            let png = browser.screenshot().await.expect("a screenshot");
            std::fs::write(&path, png).expect("write the screenshot");
        }
    };

    // Log in with the token.
    browser.goto(&format!("{base}/")).await.unwrap();
    shot("01-login.png").await;
    browser.find(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    browser.find(Locator::Css("#login")).await.unwrap().click().await.unwrap();

    // Every loaded command is listed, with its version.
    let table = browser.wait().for_element(Locator::Css("#commands")).await.unwrap().text().await.unwrap();
    for name in ["hi", "help", "chat", "train", "correct", "feedback", "getfile", "loop", "archive"] {
        browser.find(Locator::Id(&format!("command-{name}"))).await.unwrap_or_else(|_| panic!("{name} is missing"));
    }
    assert!(table.contains("chat.send-message"), "grants are shown: {table}");
    let hi_wasm = std::fs::read(guests_dir().join("hi.wasm")).unwrap();
    assert_eq!(hi_version(&browser, &base).await, sha256(&hi_wasm)[..12]);
    shot("02-commands.png").await;

    // A hostile invocation's failure appears with its cause, and so does
    // a call it was not granted.
    for hostile in ["!sneak", "!loop"] {
        bot.send(&say(hostile));
        bot.read_until_done(n);
        n += 1;
    }
    browser.goto(&format!("{base}/failures")).await.unwrap();
    let failures = browser.find(Locator::Css("#failures tbody")).await.unwrap().text().await.unwrap();
    let row = failures.lines().find(|l| l.contains("loop")).unwrap_or_else(|| panic!("no failure of loop: {failures}"));
    assert!(row.contains("deadline"), "{row}");
    let denied = |l: &&str| l.contains("sneak") && l.contains("denied_call") && l.contains("files.read-file");
    assert!(failures.lines().any(|l| denied(&l)), "no denial: {failures}");
    shot("03-failures.png").await;
    browser.goto(&format!("{base}/")).await.unwrap();
    let loop_row = browser.find(Locator::Css("#command-loop .failures")).await.unwrap().text().await.unwrap();
    assert!(loop_row.contains("deadline 1"), "{loop_row}");

    // Upload a new version of `hi` (help's component, granted what it
    // needs): the version changes and the next `!hi` answers with it.
    let help_wasm = guests_dir().join("help.wasm");
    browser.goto(&format!("{base}/deploy")).await.unwrap();
    browser.find(Locator::Css("#name")).await.unwrap().send_keys("hi").await.unwrap();
    browser.find(Locator::Css("#grants")).await.unwrap().send_keys("chat.send-message, commands.list").await.unwrap();
    browser.find(Locator::Css("#wasm")).await.unwrap().send_keys(&help_wasm.display().to_string()).await.unwrap();
    browser.find(Locator::Css("#deploy")).await.unwrap().click().await.unwrap();
    let outcome = browser.wait().for_element(Locator::Css("#deployed, #deploy-error")).await;
    let page = browser.source().await.unwrap();
    let deployed = outcome.unwrap_or_else(|_| panic!("no outcome: {page}")).text().await.unwrap();
    assert!(deployed.contains("Deployed hi"), "{deployed}");
    let reload = browser.find(Locator::Css("#reload")).await.unwrap().text().await.unwrap();
    assert!(reload.contains("loaded hi"), "{reload}");
    let missing = browser.find(Locator::Css("#missing")).await.unwrap().text().await.unwrap();
    assert_eq!(missing, "none");
    shot("04-deployed.png").await;
    let help_bytes = std::fs::read(&help_wasm).unwrap();
    assert_eq!(hi_version(&browser, &base).await, sha256(&help_bytes)[..12]);
    shot("05-commands-after-deploy.png").await;
    let answer = ask_hi(&mut bot, &mut n);
    assert!(answer.contains("Type `!help <command>`"), "the new version answers: {answer}");

    // Roll it back: the version before serves again.
    browser.find(Locator::Css("#rollback-hi")).await.unwrap().click().await.unwrap();
    let rolled = browser.wait().for_element(Locator::Css("#rolled-back")).await.unwrap().text().await.unwrap();
    assert!(rolled.contains("Rolled hi back"), "{rolled}");
    assert_eq!(hi_version(&browser, &base).await, sha256(&hi_wasm)[..12]);
    assert!(ask_hi(&mut bot, &mut n).starts_with("HI, "), "the config's version answers again");
    // The whole page, traffic and all (docs/dashboard.png is one of these).
    browser.set_window_size(1400, 2200).await.unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    shot("06-commands-after-rollback.png").await;

    browser.close().await.unwrap();
    bot.finish();
}

/// The version the commands page shows for `hi`.
async fn hi_version(browser: &fantoccini::Client, base: &str) -> String {
    use fantoccini::Locator;
    browser.goto(&format!("{base}/")).await.unwrap();
    browser.find(Locator::Css("#command-hi .version")).await.unwrap().text().await.unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    sandbot::sandbox::cache::sha256_hex(bytes)
}
