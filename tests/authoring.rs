//! What a command's author runs: `sandbot check` on components that fit
//! and that do not, and `sandbot new` followed by a build and a message in
//! the console, in a workspace of its own.

mod support;

use std::path::Path;
use std::process::Command;

use support::{guests_dir, workspace, BIN};

fn check(wasm: &Path) -> std::process::Output {
    Command::new(BIN).arg("check").arg(wasm).env("RUST_LOG", "warn").output().expect("run sandbot check")
}

#[test]
fn check_describes_a_command_that_fits() {
    let out = check(&guests_dir().join("hi.wasm"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hi.wasm fits sandbot:bot."), "{stdout}");
    assert!(stdout.contains("name:     hi\n") && stdout.contains("summary:  Greets you."), "{stdout}");
    assert!(stdout.contains("needs:    chat.send-message\n"), "{stdout}");
    assert!(stdout.contains("sandbot:bot/chat@0.2.2"), "{stdout}");
    let sha = stdout.lines().find_map(|l| l.strip_prefix("sha256:   ")).expect("a sha256 line");
    assert_eq!(sha.len(), 64);
}

#[test]
fn check_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    for (wasm, why) in [
        (guests_dir().join("otherworld.wasm"), "does not fit the world"),
        (garbage, "does not fit the world"),
        (dir.path().join("missing.wasm"), "cannot read"),
    ] {
        let out = check(&wasm);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} passed", wasm.display());
        assert!(stderr.contains(why), "{}: {stderr}", wasm.display());
    }
}

/// `sandbot new`, then the build the guide gives, then the console: in a
/// copy of the workspace's guest side (the SDK, the WIT, the manifest and
/// lock file), so the real `guests/` is never touched.
#[test]
fn new_makes_a_command_that_builds_and_answers() {
    let root = workspace();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    copy_dir(&root.join("wit"), &ws.join("wit"));
    copy_dir(&root.join("guests/sdk"), &ws.join("guests/sdk"));
    std::fs::copy(root.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").unwrap();
    let default_members = manifest.find("default-members = ").unwrap();
    let end = default_members + manifest[default_members..].find('\n').unwrap() + 1;
    let manifest = format!("{}members = [\"guests/*\"]\n{}", &manifest[..start], &manifest[end..]);
    std::fs::write(ws.join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir_all(ws.join("config")).unwrap();
    let target = root.join("target");
    let guests = target.join("wasm32-wasip2/guest");
    // The build lands beside the real guests, which other tests' bots
    // watch: gone again when this test ends, however it ends.
    let _cleanup = RemoveOnDrop(vec![guests.join("roll_call.wasm"), guests.join("roll_call.d")]);
    std::fs::write(
        ws.join("config/sandbot.toml"),
        format!("prefix = \"!\"\ndata_dir = \"../data\"\nguests_dir = {:?}\n", guests.display().to_string()),
    )
    .unwrap();

    let out = Command::new(BIN).args(["new", "roll-call"]).current_dir(ws).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("added [commands.roll-call]"), "{stdout}");

    // The build `make build` does for it, sharing the real target folder
    // (same lock file and profile: the dependencies are already built).
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "--offline",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "-p",
            "sandbot-guest-roll-call",
        ])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));

    // Its unit tests, on the SDK's fake host, as the template says.
    let unit = Command::new(env!("CARGO"))
        .args(["test", "--offline", "--release", "-p", "sandbot-guest-roll-call"])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&unit.stdout);
    assert!(unit.status.success(), "{report}{}", String::from_utf8_lossy(&unit.stderr));
    assert!(report.contains("test result: ok. 2 passed"), "{report}");

    let mut console = Command::new(BIN)
        .args(["console", "--jsonl"])
        .current_dir(ws)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = console.stdin.take().unwrap();
        writeln!(stdin, "{}", serde_json::json!({"content": "!roll-call here I am", "author": "Ada"})).unwrap();
        writeln!(stdin, "{}", serde_json::json!({"content": "!roll-call"})).unwrap();
    }
    let out = console.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = support::parse_lines(&out.stdout);
    assert_eq!(support::reply(&lines, 0), "Ada said: here I am");
    assert_eq!(support::reply(&lines, 1), "Say something after the command.\nUsage: `!roll-call <text…>`");
}

struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn check_with(config: &Path, wasm: &str, name: Option<&str>) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("check")
        .arg(guests_dir().join(wasm))
        .args(name.map(|n| ["--name", n]).into_iter().flatten())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sandbot check");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// `check --config` compares the component's needs and calls with the
/// entry's grants and roots.
#[test]
fn check_with_a_config_reports_what_the_entry_would_deny() {
    let setup = support::Setup::new(
        r#"
[commands.hostile]
wasm = "hostile.wasm"
grants = ["chat.send-message", "files.read-file"]

[commands.getfile_ungranted]
wasm = "getfile.wasm"
grants = ["chat.send-message"]
read = ["shared"]

[commands.hi_plus]
wasm = "hi.wasm"
grants = ["chat.send-message", "files.read-file"]
read = ["shared"]
"#,
    );
    // Calls it does not declare, files.* with no root, store.* not granted.
    let (fits, out, err) = check_with(&setup.config, "hostile.wasm", None);
    assert!(!fits, "{out}");
    assert!(out.contains("entry:    [commands.hostile]"), "{out}");
    let undeclared = out.lines().find(|l| l.starts_with("undeclared: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(undeclared.contains("files.read-file") && undeclared.contains("store.log-feedback"), "{undeclared}");
    assert!(out.contains("problem:  it calls files.* but the entry names no root"), "{out}");
    let denied = out
        .lines()
        .find(|l| l.starts_with("problem:  it calls ") && l.contains("store.log-feedback"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!denied.contains("files.read-file"), "granted, so not denied: {denied}");
    assert!(err.contains("the config's entry does not give it what it calls"), "{err}");

    // A need the entry does not grant.
    let (fits, out, _) = check_with(&setup.config, "getfile.wasm", Some("getfile_ungranted"));
    assert!(!fits, "{out}");
    assert!(out.contains("problem:  needs not granted: files.read-file"), "{out}");
    assert!(out.contains("roots:    shared"), "{out}");

    // Fits, with more granted than it uses: notes, not problems.
    let (fits, out, err) = check_with(&setup.config, "hi.wasm", Some("hi_plus"));
    assert!(fits, "{out}{err}");
    assert!(!out.contains("problem:"), "{out}");
    assert!(out.contains("note:     granted but neither needed nor called: files.read-file"), "{out}");
    assert!(out.contains("note:     the entry lets it read shared but it never calls files.*"), "{out}");
}

#[test]
fn check_with_a_config_names_a_missing_root_and_a_missing_entry() {
    let setup = support::Setup::new(
        "[commands.lost]\nwasm = \"getfile.wasm\"\ngrants = [\"chat\", \"files\"]\nread = [\"nope\"]\n",
    );
    let (fits, out, err) = check_with(&setup.config, "getfile.wasm", Some("lost"));
    assert!(!fits);
    assert!(out.contains("getfile.wasm fits sandbot:bot."), "the report comes first: {out}");
    assert!(err.contains("commands.lost.read") && err.contains("no root `nope` in [roots]"), "{err}");

    let setup = support::Setup::new("");
    let (fits, out, _) = check_with(&setup.config, "roll.wasm", None);
    assert!(!fits);
    assert!(out.contains("problem:  the config has no [commands.roll] entry for it"), "{out}");
}

fn try_message(wasm: &str, message: &str, flags: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("try")
        .arg(guests_dir().join(wasm))
        .arg(message)
        .args(flags)
        .current_dir(cwd)
        .env_remove("SANDBOT_CONFIG")
        .output()
        .expect("run sandbot try");
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)))
}

/// `sandbot try` runs one message with no config, pins randomness with a
/// seed, and leaves nothing behind.
#[test]
fn try_runs_one_message_reproducibly_and_leaves_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let roll = |seed: &str| try_message("roll.wasm", "!roll 10d100", &["--seed", seed], cwd.path());
    let (ok, first) = roll("7");
    assert!(ok, "{first}");
    assert!(first.contains("granted: chat.send-message"), "{first}");
    assert!(first.contains("🎲 10d100: ["), "{first}");
    assert_eq!(roll("7"), (true, first.clone()), "the same seed, the same output");
    assert_ne!(roll("8").1, first, "another seed, other dice");

    let (ok, hi) = try_message("hi.wasm", "!hi", &[], cwd.path());
    assert!(ok && hi.contains("HI, you!"), "{hi}");
    let (_, denied) = try_message("hi.wasm", "!hi", &["--grant", ""], cwd.path());
    assert!(denied.contains("granted: nothing") && denied.contains("not allowed"), "{denied}");

    // A root from the command line, and the slash form.
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("notes.txt"), "the notes").unwrap();
    let read = format!("shared={}", docs.path().display());
    let (ok, sent) = try_message("getfile.wasm", "/getfile path:notes.txt", &["--read", &read], cwd.path());
    assert!(ok && sent.contains("notes.txt"), "{sent}");

    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "try left files behind");
}
