//! Small file-system helpers with the durability rules the hub relies on.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `data` so that a crash leaves the old file or the new one, never a
/// mix: a uniquely named temp file beside it (safe under two writers), written with `mode`,
/// synced, renamed over `path`, then the directory synced so the rename itself is durable.
/// The one way the hub writes a whole file (keys, certificates, settings, reports).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = write_temp(path, data, mode, true)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent(path))
}

/// [`write_atomic`] without the syncs, for many files written in one go and not needed
/// after a crash (a clone's `.muse/` records: a clone cut short is run again). Never leaves a
/// torn file; after a crash a file may be the old one or missing.
pub fn write_atomic_unsynced(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = write_temp(path, data, mode, false)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates `path` with `data`, failing with [`std::io::ErrorKind::AlreadyExists`] if it
/// exists: a synced temp file hard-linked into place (never a half-written file under the
/// name, and never replacing one another writer made first), then the directory synced.
/// For files that must never change once made (the CA's key).
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = write_temp(path, data, mode, true)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
        // A file system without hard links (FAT): an exclusive create, synced.
        Err(_) => create(path, data, mode, true)?,
    }
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A new uniquely named file beside `path` holding `data`.
fn write_temp(
    path: &Path,
    data: &[u8],
    mode: u32,
    sync: bool,
) -> std::io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = hex::encode(crate::auth::random_bytes::<6>());
    let tmp = parent(path).join(format!(".{name}.{tag}.tmp"));
    if let Err(e) = create(&tmp, data, mode, sync) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Creates `path`, which must not exist, with `mode`, and writes `data`.
fn create(path: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

/// Makes the entries of `dir` (new names, renames, deletions) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Gives `dir` and everything below it to the system user `user` (and its primary group),
/// as `chown -R` would. Used by `musehub setup`, which runs as root before the hub, which
/// does not.
pub fn chown_tree(dir: &Path, user: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    let (uid, gid) = passwd_ids(&passwd, user)
        .with_context(|| format!("there is no system user {user:?} in /etc/passwd"))?;
    let mut stack = vec![dir.to_owned()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to {user}", p.display()))?;
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The uid and gid of `user` in the text of `/etc/passwd`.
fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == user).then_some(())?;
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn write_new_never_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.key");
        write_new(&p, b"first", 0o600).unwrap();
        let again = write_new(&p, b"second", 0o600).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        write_atomic_unsynced(&dir.path().join("x.json"), b"{}", 0o644).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0:root:/root:/bin/bash\nmusehub:x:900:901::/var/lib/musehub:/usr/sbin/nologin\n";
        assert_eq!(passwd_ids(text, "musehub"), Some((900, 901)));
        assert_eq!(passwd_ids(text, "muse"), None);
    }
}
