//! The server's long-term key seed on disk: whoever reads it decrypts every response and the
//! client's whole cache of encrypted weights, so it lives apart from any cache directory, in a
//! file only its owner can read.
//!
//! [`load_or_create_key_seed`] refuses a key path inside one of the given cache directories
//! (compared after resolving symbolic links and `..`), creates a missing key with a fresh
//! random seed in a file of mode 0600 (its directory, when created, 0700), and refuses to read a
//! key file that its group or others may read (Unix; elsewhere the mode is not checked).
//!
//! ```
//! use he_linear::key_file::load_or_create_key_seed;
//! let dir = tempfile::tempdir()?;
//! let (key, cache) = (dir.path().join("server/server.key"), dir.path().join("cache"));
//! let seed = load_or_create_key_seed(&key, &[cache.as_path()])?;
//! assert_eq!(load_or_create_key_seed(&key, &[cache.as_path()])?.0, seed.0);
//! assert!(load_or_create_key_seed(&cache.join("server.key"), &[cache.as_path()]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use mpc_core::{Dims, Error, Result, Seed};
use std::path::{Component, Path, PathBuf};

/// Bytes of a key seed file.
pub const KEY_SEED_BYTES: usize = 16;

/// The server's key seed in `path`, created (mode 0600) with a fresh random seed when absent.
/// Refuses a `path` inside any of `cache_dirs` and, on Unix, an existing key file readable by
/// its group or others.
pub fn load_or_create_key_seed(path: &Path, cache_dirs: &[&Path]) -> Result<Seed> {
    let resolved = resolve(path)?;
    for dir in cache_dirs {
        if resolved.starts_with(resolve(dir)?) {
            return Err(Error::InvalidArgument(format!(
                "the server key {} is inside the cache directory {}: whoever reads the cache \
                 would hold the key that decrypts it; choose a server-only --key-file",
                path.display(),
                dir.display()
            )));
        }
    }
    match std::fs::File::open(path) {
        Ok(file) => {
            check_private(path, &file)?;
            let mut bytes = Vec::with_capacity(KEY_SEED_BYTES);
            std::io::Read::read_to_end(
                &mut std::io::Read::take(file, KEY_SEED_BYTES as u64 + 1),
                &mut bytes,
            )?;
            let seed: [u8; KEY_SEED_BYTES] = bytes.as_slice().try_into().map_err(|_| {
                // At most one byte more than a seed was read.
                let got = match bytes.len() {
                    n if n > KEY_SEED_BYTES => Dims::AtLeast(n),
                    n => Dims::Bytes(n),
                };
                Error::malformed(
                    format!("key seed {}", path.display()),
                    got,
                    Dims::Bytes(KEY_SEED_BYTES),
                )
            })?;
            Ok(Seed(seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(e.into()),
    }
}

fn create(path: &Path) -> Result<Seed> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    // The server's long-term key: the one secret that must come from the operating system
    // whatever the run's seed (a `--seed` given for reproducibility is not secret).
    let seed = Seed::random();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path)?;
    std::io::Write::write_all(&mut file, &seed.0)?;
    file.sync_all()?;
    Ok(seed)
}

#[cfg(unix)]
fn check_private(path: &Path, file: &std::fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::InsecureParams(
            format!(
                "the server key {} has mode {:o}: its group or others may read it; \
             `chmod 600` it (and consider it leaked if others did)",
                path.display(),
                mode & 0o777
            )
            .into(),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::File) -> Result<()> {
    Ok(())
}

/// `path` made absolute and normalized lexically (`.` and `..` removed), then its longest
/// existing prefix canonicalized (symbolic links resolved).
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut lexical = PathBuf::new();
    for c in std::env::current_dir()?.join(path).components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(p) = existing.canonicalize() {
            break p;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    Ok(rest.iter().rev().fold(base, |p, name| p.join(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/server.key");
        let seed = load_or_create_key_seed(&path, &[]).unwrap();
        assert_eq!(load_or_create_key_seed(&path, &[]).unwrap().0, seed.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn a_key_inside_a_cache_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache/bert-base");
        std::fs::create_dir_all(&cache).unwrap();
        for key in [
            cache.join("server.key"),
            cache.join("sub/server.key"),
            dir.path().join("cache/other/../bert-base/server.key"),
        ] {
            let e = load_or_create_key_seed(&key, &[cache.as_path()]).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { .. }),
                "{}: {e}",
                key.display()
            );
            assert!(!key.exists(), "{} was created", key.display());
        }
        // Through a symbolic link to the cache.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&cache, &link).unwrap();
            let e = load_or_create_key_seed(&link.join("server.key"), &[cache.as_path()]);
            assert!(matches!(e, Err(Error::InvalidArgument(_))));
        }
        // Next to the cache, not in it: fine.
        let beside = dir.path().join("cache/server-key/server.key");
        assert!(load_or_create_key_seed(&beside, &[cache.as_path()]).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let seed = load_or_create_key_seed(&path, &[]).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = load_or_create_key_seed(&path, &[]).unwrap_err();
            assert!(matches!(e, Error::InsecureParams(_)), "{mode:o}: {e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(load_or_create_key_seed(&path, &[]).unwrap().0, seed.0);
    }

    #[test]
    fn a_key_file_of_the_wrong_length_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        std::io::Write::write_all(&mut opts.open(&path).unwrap(), &[7u8; 40]).unwrap();
        let e = load_or_create_key_seed(&path, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Malformed {
                    got: Dims::AtLeast(17),
                    want: Dims::Bytes(KEY_SEED_BYTES),
                    ..
                }
            ),
            "{e}"
        );
    }
}
