//! Offline material on disk: what one party keeps from the offline phase of one session
//! until the online phase uses it, once.
//!
//! A store is the directory `root/<model id>/<session id>/` of one party. The model id binds
//! the material to a model and a server key (a family computes it from its layers' keyed cache
//! digests, [`model_id`]); the session id is drawn by the client at the start of the offline
//! phase and sent to the server, so both parties file the same session under the same name.
//! Each entry (`<name>.off`) carries its model id, session id, name, the digest of the layer
//! it was made for, its shape and a BLAKE3 checksum of the whole record; [`OfflineStore::take`]
//! refuses an entry that fails any of these checks with a clear error, and consumes it: the
//! file is deleted and a tombstone `<name>.used` left in its place, so a second use of the same
//! material is refused ("already used") rather than silently repeated. Reusing offline
//! material is a security failure, not an inefficiency: the client's online message of a
//! linear layer is X_c − R, and two of them with the same R reveal X_c − X'_c to the server.
//!
//! Files are created with mode 0600 in directories of mode 0700 (Unix): the client's entries
//! hold its random input shares R, which are as secret as its input.
use mpc_core::{Dims, Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"NNOFFv01";
/// Longest entry name accepted (names are the layers' cache names, e.g. `L03-qkv`).
const MAX_NAME: usize = 64;
/// Most metadata words per entry.
const MAX_META: usize = 16;

/// The id of one offline session (drawn by the client).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

/// Most COTs per direction an offline phase sets aside for the online phase that follows it
/// on the same session: 2^27, 2 GiB of 16-byte blocks held by each party for that direction.
/// A plan that needs more extends the rest online, as a session without an offline phase does.
pub const MAX_RESERVED_COTS: usize = 1 << 27;

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl std::str::FromStr for SessionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<SessionId> {
        let bad = || Error::InvalidArgument(format!("session id `{s}`: expected 32 hex digits"));
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(SessionId(id))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A model id from the digests of its layers (each a keyed cache digest, so the id changes
/// with the weights, the packing, the parameters and the server key).
pub fn model_id<'a>(digests: impl IntoIterator<Item = &'a [u8; 32]>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"nn offline model v1");
    for d in digests {
        h.update(d);
    }
    *h.finalize().as_bytes()
}

/// One party's offline material of one session.
#[derive(Debug)]
pub struct OfflineStore {
    dir: PathBuf,
    model: [u8; 32],
    session: SessionId,
}

impl OfflineStore {
    fn dir_of(root: &Path, model: &[u8; 32], session: SessionId) -> PathBuf {
        root.join(hex(&model[..16])).join(session.to_string())
    }

    /// A new, empty store for `session` of `model`; refuses a session that already exists
    /// (an id names one offline phase).
    pub fn create(root: &Path, model: [u8; 32], session: SessionId) -> Result<OfflineStore> {
        let dir = Self::dir_of(root, &model, session);
        if dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "offline session {session} already exists in {}: a session id is used once",
                dir.display()
            )));
        }
        create_private_dir(&dir)?;
        Ok(OfflineStore {
            dir,
            model,
            session,
        })
    }

    /// The existing store of `session` of `model`; a clear error when there is none (never
    /// generated, or made for another model or server key, whose id differs).
    pub fn open(root: &Path, model: [u8; 32], session: SessionId) -> Result<OfflineStore> {
        let dir = Self::dir_of(root, &model, session);
        if !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "no offline material of session {session} for this model and server key \
                 (model id {}) under {}: run the offline phase first (material made for \
                 another model or key is never used)",
                hex(&model[..16]),
                root.display()
            )));
        }
        Ok(OfflineStore {
            dir,
            model,
            session,
        })
    }

    /// The sessions of `model` under `root` whose entries are all unused (each has entries
    /// and no tombstone), oldest first.
    pub fn pending(root: &Path, model: &[u8; 32]) -> Result<Vec<SessionId>> {
        let dir = root.join(hex(&model[..16]));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for e in entries {
            let e = e?;
            let Ok(session) = e.file_name().to_string_lossy().parse::<SessionId>() else {
                continue;
            };
            let (mut entries, mut used) = (0, 0);
            for f in std::fs::read_dir(e.path())? {
                let name = f?.file_name().to_string_lossy().into_owned();
                entries += name.ends_with(".off") as usize;
                used += name.ends_with(".used") as usize;
            }
            if entries > 0 && used == 0 {
                found.push((e.metadata()?.modified()?, session));
            }
        }
        found.sort_by_key(|&(t, s)| (t, s.0));
        Ok(found.into_iter().map(|(_, s)| s).collect())
    }

    /// This store's session.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// A 16-byte tag naming entry `name` of this session, sent online so that the peer can
    /// check that both parties use the same material.
    pub fn tag(&self, name: &str) -> [u8; 16] {
        let mut h = blake3::Hasher::new();
        h.update(b"nn offline tag v1");
        h.update(&self.model);
        h.update(&self.session.0);
        h.update(name.as_bytes());
        let mut t = [0u8; 16];
        t.copy_from_slice(&h.finalize().as_bytes()[..16]);
        t
    }

    fn entry(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "offline entry name `{name}`: 1..={MAX_NAME} of [A-Za-z0-9_-]"
            )));
        }
        Ok((
            self.dir.join(format!("{name}.off")),
            self.dir.join(format!("{name}.used")),
        ))
    }

    fn record(&self, name: &str, digest: &[u8; 32], meta: &[u64], data: &[u64]) -> Vec<u8> {
        let mut rec = Vec::with_capacity(200 + 8 * data.len());
        rec.extend_from_slice(MAGIC);
        rec.extend_from_slice(&self.model);
        rec.extend_from_slice(&self.session.0);
        rec.extend_from_slice(digest);
        rec.extend_from_slice(&(name.len() as u32).to_le_bytes());
        rec.extend_from_slice(name.as_bytes());
        rec.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        for v in meta {
            rec.extend_from_slice(&v.to_le_bytes());
        }
        rec.extend_from_slice(&(data.len() as u64).to_le_bytes());
        rec.extend_from_slice(bytemuck::cast_slice(data));
        rec
    }

    /// Files entry `name`: `data` made for the layer of `digest`, described by `meta` (its
    /// shape; checked again by [`OfflineStore::take`]). Refuses to overwrite an entry.
    pub fn put(&self, name: &str, digest: &[u8; 32], meta: &[u64], data: &[u64]) -> Result<()> {
        let (path, used) = self.entry(name)?;
        if meta.len() > MAX_META {
            return Err(Error::InvalidArgument(format!(
                "{} metadata words (at most {MAX_META})",
                meta.len()
            )));
        }
        if path.exists() || used.exists() {
            return Err(Error::InvalidArgument(format!(
                "offline entry {} already exists",
                path.display()
            )));
        }
        let mut rec = self.record(name, digest, meta, data);
        let sum = *blake3::hash(&rec).as_bytes();
        rec.extend_from_slice(&sum);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = private_file(&tmp)?;
        f.write_all(&rec)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Consumes entry `name`: checks that it belongs to this model, session and layer
    /// (`digest`), that its metadata is `meta` and that it holds `len` words, then deletes it
    /// (leaving a tombstone) and returns its data. Every failure is a clear error: an entry
    /// used before, missing, made for another layer / model / key, or malformed.
    pub fn take(
        &self,
        name: &str,
        digest: &[u8; 32],
        meta: &[u64],
        len: usize,
    ) -> Result<Vec<u64>> {
        let (path, used) = self.entry(name)?;
        if used.exists() {
            return Err(Error::InvalidArgument(format!(
                "offline material `{name}` of session {} was already used: material is used \
                 once (run the offline phase again)",
                self.session
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::InvalidArgument(format!(
                "no offline material `{name}` in session {} ({}: {e})",
                self.session,
                path.display()
            ))
        })?;
        let bad = |got: Dims, want: Dims| {
            Error::malformed(format!("offline material {}", path.display()), got, want)
        };
        if bytes.len() < 32 + MAGIC.len() {
            return Err(bad(
                Dims::Bytes(bytes.len()),
                Dims::AtLeast(32 + MAGIC.len()),
            ));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(bad(
                "a checksum mismatch (truncated or corrupted)".into(),
                "a matching checksum".into(),
            ));
        }
        if &body[..8] != MAGIC {
            return Err(bad(
                "a bad magic or version".into(),
                "an offline material file".into(),
            ));
        }
        let (model, session, stored) = (&body[8..40], &body[40..56], &body[56..88]);
        if model != self.model || session != self.session.0 {
            return Err(Error::InvalidArgument(format!(
                "offline material {} belongs to another model, key or session",
                path.display()
            )));
        }
        if stored != digest {
            return Err(Error::InvalidArgument(format!(
                "offline material `{name}` was made for another layer, model or server key \
                 (its layer digest differs): refused"
            )));
        }
        let want = self.record(name, digest, meta, &[]);
        let head = want.len() - 8;
        if body.len() < want.len() || body[..head] != want[..head] {
            return Err(Error::InvalidArgument(format!(
                "offline material `{name}` has another name or shape than expected {meta:?}"
            )));
        }
        let words = u64::from_le_bytes(body[head..head + 8].try_into().expect("8 bytes"));
        let data = &body[want.len()..];
        if words != len as u64 {
            return Err(bad(Dims::Len(words as usize), Dims::Len(len)));
        }
        if data.len() != 8 * len {
            return Err(bad(Dims::Bytes(data.len()), Dims::Bytes(8 * len)));
        }
        let out = bytemuck::pod_collect_to_vec(data);
        private_file(&used)?;
        std::fs::remove_file(&path)?;
        Ok(out)
    }

    /// Checks, before the online phase sends anything, that every entry of `names` is present
    /// and unused.
    pub fn check_unused<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for name in names {
            let (path, used) = self.entry(name)?;
            if used.exists() {
                return Err(Error::InvalidArgument(format!(
                    "offline material `{name}` of session {} was already used: material is \
                     used once (run the offline phase again)",
                    self.session
                )));
            }
            if !path.is_file() {
                return Err(Error::InvalidArgument(format!(
                    "no offline material `{name}` in session {} ({})",
                    self.session,
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    Ok(())
}

fn private_file(path: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    Ok(o.open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(root: &Path) -> OfflineStore {
        OfflineStore::create(root, [7; 32], SessionId([1; 16])).unwrap()
    }

    #[test]
    fn an_entry_is_used_once() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path());
        s.put("L00-qkv", &[3; 32], &[2, 5], &[1, 2, 3]).unwrap();
        assert_eq!(
            OfflineStore::pending(root.path(), &[7; 32]).unwrap(),
            vec![SessionId([1; 16])]
        );
        s.check_unused(["L00-qkv"]).unwrap();
        assert_eq!(s.take("L00-qkv", &[3; 32], &[2, 5], 3).unwrap(), [1, 2, 3]);
        let err = s.take("L00-qkv", &[3; 32], &[2, 5], 3).unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
        assert!(s.check_unused(["L00-qkv"]).is_err());
        assert!(OfflineStore::pending(root.path(), &[7; 32])
            .unwrap()
            .is_empty());
        // The same session cannot be generated again.
        assert!(OfflineStore::create(root.path(), [7; 32], SessionId([1; 16])).is_err());
    }

    #[test]
    fn foreign_or_malformed_material_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path());
        s.put("a", &[3; 32], &[2], &[9; 4]).unwrap();
        let err = s.take("a", &[4; 32], &[2], 4).unwrap_err();
        assert!(err.to_string().contains("another layer"), "{err}");
        let err = s.take("a", &[3; 32], &[3], 4).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
        let err = s.take("a", &[3; 32], &[2], 5).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        // Another model's id: no such store.
        let err = OfflineStore::open(root.path(), [8; 32], SessionId([1; 16])).unwrap_err();
        assert!(err.to_string().contains("another model"), "{err}");
        // A truncated file.
        let path = root
            .path()
            .join(hex(&[7; 16]))
            .join(SessionId([1; 16]).to_string());
        let file = path.join("a.off");
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 9]).unwrap();
        let err = s.take("a", &[3; 32], &[2], 4).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(s.take("../x", &[3; 32], &[2], 4).is_err());
        assert!("zz".parse::<SessionId>().is_err());
        let id = SessionId([0xab; 16]);
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
    }
}
