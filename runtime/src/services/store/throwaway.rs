//! A throwaway PostgreSQL server, for the tests and benches: `initdb` in a
//! temporary folder, on a free loopback port, gone when dropped.
//!
//! PostgreSQL refuses to run as root, so under root the cluster belongs to
//! `nobody` and its programs run through `runuser`. The programs are found
//! in `SANDBOT_PG_BIN`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package, which
//! `scripts/setup-tests.sh` installs).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

pub struct Throwaway {
    /// Holds the data folder and the socket; removed on drop.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_nobody: bool,
    /// Flushes commits to disk (`fsync`), as a real server does; the
    /// tests' servers do not, to go faster.
    durable: bool,
}

impl Throwaway {
    /// Makes and starts a new cluster, with one superuser `sandbot` that
    /// needs no password (trust, loopback only).
    pub fn start() -> anyhow::Result<Throwaway> {
        Throwaway::make(false)
    }

    /// A server that flushes every commit to disk, for benchmarks beside
    /// SQLite's `synchronous = FULL`.
    pub fn start_durable() -> anyhow::Result<Throwaway> {
        Throwaway::make(true)
    }

    fn make(durable: bool) -> anyhow::Result<Throwaway> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("sandbot-pg.").tempdir()?;
        // SAFETY: geteuid cannot fail and touches no memory.
        let as_nobody = unsafe { libc::geteuid() } == 0;
        if as_nobody {
            run(Command::new("chown").arg("nobody").arg(dir.path()))?;
        }
        let cluster = Throwaway { dir, bin, port: 0, as_nobody, durable };
        let data = cluster.data();
        cluster.pg("initdb", |c| {
            c.arg("-D").arg(&data).args(["-A", "trust", "-U", "sandbot", "-E", "UTF8", "--locale=C", "--no-sync"]);
        })?;
        let mut cluster = cluster;
        cluster.port = free_port()?;
        cluster.resume()?;
        Ok(cluster)
    }

    /// `postgres://` url of `database` (which `create_database` made, or
    /// `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://sandbot@127.0.0.1:{}/{database}", self.port)
    }

    /// A new empty database; its url.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        super::postgres::execute(&self.url("postgres"), &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(self.url(name))
    }

    /// Stops the server at once, as a crash would (committed data stays).
    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.data();
        self.pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]);
        })
    }

    /// Starts the server again, on the same port, and waits until it takes
    /// connections.
    pub fn resume(&self) -> anyhow::Result<()> {
        let (data, dir) = (self.data(), self.dir.path().to_path_buf());
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            self.port,
            dir.display(),
            if self.durable { "on" } else { "off" }
        );
        self.pg("pg_ctl", |c| {
            c.arg("-D").arg(&data).arg("-o").arg(&options).arg("-l").arg(dir.join("log")).args(["-w", "start"]);
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs, as `nobody` under root.
    fn pg(&self, program: &str, args: impl FnOnce(&mut Command)) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.current_dir(self.dir.path());
        args(&mut command);
        run(&mut command).with_context(|| format!("{program} (its log: {})", self.dir.path().join("log").display()))
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.stop();
        }
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let out = command.stdin(Stdio::null()).output().with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where `initdb` and `pg_ctl` are.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SANDBOT_PG_BIN") {
        return Ok(dir.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin).join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL's server programs (initdb) are not installed: run scripts/setup-tests.sh, \
             or install Debian's `postgresql`, or set SANDBOT_PG_BIN"
        ),
    }
}
