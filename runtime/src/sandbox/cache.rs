//! Compiled components on disk, so a restart (or a swap back to a version
//! seen before) skips Cranelift.
//!
//! A cached file is named by the wasm's sha256 and the engine's
//! compatibility hash (wasmtime version, target, settings), and ends with
//! an HMAC-SHA256 tag of its contents under a key that lives in the cache
//! folder (owner-only). wasmtime runs deserialized code as is, so a file
//! this bot did not write (dropped in by someone else, or corrupted) is
//! never loaded: its tag does not check, and it is compiled afresh instead.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

type Tag = Hmac<Sha256>;
const TAG_BYTES: usize = 32;
const KEY_FILE: &str = "key";

pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
    /// The engine's compatibility hash, in every file name.
    compat: String,
}

/// The sha256 of a wasm file, hex: its identity in the cache and in
/// `!commands`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    /// Opens (or creates, owner-only) the cache folder and its key.
    /// Refuses a folder or key that someone else could write: whoever can
    /// write them can make the bot run native code of their choosing.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<CompileCache> {
        create_private_dir(dir)?;
        check_private(dir, 0o022, "700")?;
        let key_path = dir.join(KEY_FILE);
        let key = load_or_create_key(&key_path)?;
        check_private(&key_path, 0o077, "600")?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache { dir: dir.to_path_buf(), key, compat: format!("{:016x}", hasher.finish()) })
    }

    fn file_name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.compat)
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(self.file_name(sha256))
    }

    /// The tag covers the name too: a good file renamed to another wasm's
    /// name does not load as that wasm.
    fn tag(&self, name: &str, data: &[u8]) -> Tag {
        let mut mac = Tag::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac
    }

    /// The component compiled from the wasm with this hash, if this bot
    /// cached it with this engine.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
            tracing::warn!(file = %path.display(), "ignored a cached component: too short to be one");
            return None;
        };
        let (data, tag) = bytes.split_at(split);
        if self.tag(&self.file_name(sha256), data).verify_slice(tag).is_err() {
            tracing::warn!(file = %path.display(), "ignored a cached component this bot did not write");
            return None;
        }
        // SAFETY: wasmtime requires that deserialized bytes come from
        // `Component::serialize` of a compatible engine. The tag proves this
        // process's cache wrote them (and the file name and wasmtime's own
        // header check the engine).
        match unsafe { Component::deserialize(engine, data) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignored a cached component wasmtime refused");
                None
            }
        }
    }

    /// Saves a compiled component; a failure only costs the next start a
    /// compile, so it is logged, not returned.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.path(sha256);
        let result = component.serialize().map_err(std::io::Error::other).and_then(|mut data| {
            let tag = self.tag(&self.file_name(sha256), &data).finalize().into_bytes();
            data.extend_from_slice(&tag);
            write_private(&path, &data)
        });
        if let Err(e) = result {
            tracing::warn!(file = %path.display(), error = %e, "could not cache a compiled component");
        }
    }
}

/// The cache's key. Two bots starting at once on a fresh machine must
/// agree on it, so a new key is linked into place only if none is there
/// yet (a `rename` would let the second overwrite the first's).
fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    let read = |path: &Path| -> std::io::Result<Option<[u8; 32]>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(<[u8; 32]>::try_from(bytes.as_slice()).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    // Named apart from any other starter's, threads included.
    let nonce = getrandom::u64().map_err(std::io::Error::other)?;
    let temp = path.with_extension(format!("new{nonce:016x}"));
    let linked = write_private_file(&temp, &key).and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read(path)? {
            Some(key) => Ok(key),
            // A damaged key: replace it (every cached file is then
            // compiled again, which is all a lost key costs).
            None => {
                write_private(path, &key)?;
                Ok(key)
            }
        },
        Err(e) => Err(e),
    }
}

/// Feeds `Hash` into sha256: unlike `DefaultHasher`, the same on every
/// Rust release, so a toolchain update does not orphan the cache.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a sha256 has 32 bytes"))
    }
}

/// `path` must be this user's, with none of the `forbidden` mode bits.
#[cfg(unix)]
fn check_private(path: &Path, forbidden: u32, chmod: &str) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & forbidden != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} must belong to this user and be private to it (chmod {chmod})", path.display()),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _forbidden: u32, _chmod: &str) -> std::io::Result<()> {
    Ok(())
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Written beside its place and renamed into it: a reader never sees half
/// a file.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let nonce = getrandom::u64().map_err(std::io::Error::other)?;
    let temp = path.with_extension(format!("tmp{nonce:016x}"));
    let written = write_private_file(&temp, data).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// An owner-only file with `data`, flushed to disk.
fn write_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// The smallest component there is.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn loads_only_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(&dir.path().join("cache"), &engine).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        let sha = sha256_hex(EMPTY_COMPONENT);
        assert!(cache.load(&engine, &sha).is_none(), "nothing cached yet");
        cache.store(&sha, &component);
        assert!(cache.load(&engine, &sha).is_some());

        // The same bytes without this cache's tag (another writer): refused.
        let path = cache.path(&sha);
        let mut forged = component.serialize().unwrap();
        forged.extend_from_slice(&[0u8; TAG_BYTES]);
        std::fs::write(&path, &forged).unwrap();
        assert!(cache.load(&engine, &sha).is_none());

        // Another cache (another key) cannot read this one's files.
        cache.store(&sha, &component);
        let other = CompileCache::open(&dir.path().join("other"), &engine).unwrap();
        std::fs::copy(&path, other.path(&sha)).unwrap();
        assert!(other.load(&engine, &sha).is_none());
        // The key survives a reopen.
        let again = CompileCache::open(&dir.path().join("cache"), &engine).unwrap();
        assert!(again.load(&engine, &sha).is_some());
    }

    #[test]
    fn caches_opened_at_once_agree_on_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| load_or_create_key(&path).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(std::fs::read(&path).unwrap(), keys[0]);
    }

    #[test]
    fn a_file_renamed_to_another_wasm_is_not_loaded_as_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::open(dir.path(), &engine).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        cache.store("aaaa", &component);
        std::fs::rename(cache.path("aaaa"), cache.path("bbbb")).unwrap();
        assert!(cache.load(&engine, "bbbb").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_folder_others_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = CompileCache::open(&shared, &engine()).err().expect("a world-writable cache is refused");
        assert!(error.to_string().contains("chmod 700"), "{error}");
    }
}
