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
    assert!(stdout.contains("sandbot:bot/chat@0.2.1"), "{stdout}");
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
    assert_eq!(support::reply(&lines, 1), "Usage: `!roll-call <text…>`");
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
