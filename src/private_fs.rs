//! Directories and files only the daemon's user may use, whatever the
//! umask: workspaces, Claude config directories, the working directory and
//! the store hold callers' files, the CLI's session data and credentials.
//! A directory another user made (say one named after the daemon's next pid
//! in `/tmp`) or may write is refused, never used.

use std::fs::DirBuilder;
use std::io::{Error, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every directory the daemon makes.
const DIR_MODE: u32 = 0o700;
/// Mode of every file of the store.
const FILE_MODE: u32 = 0o600;

/// Makes `dir` (and its missing parents) mode 0700; an existing `dir` must
/// be this user's and writable by no other (it is left as it is).
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => check_private(dir),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
            // The umask may have taken bits the daemon itself needs.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
        }
        Err(e) => Err(e),
    }
}

/// Makes the directory `dir`, which must not exist, mode 0700.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Refuses `dir` unless it is a directory (not a symlink) owned by this
/// process's user that neither its group nor others may write.
pub fn check_private(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let refuse = |why: String| {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("refusing {}: {why}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("not a directory".into());
    }
    if meta.uid() != me {
        return refuse(format!(
            "owned by uid {}, not by this daemon's user (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "other users may write it (mode {:o}); make it 0700",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A directory made for this run, with a name no one can guess, mode 0700;
/// removed with everything in it when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// Made by this run (removed on drop), not a configured directory.
    owned: bool,
}

impl RunDir {
    /// `configured` (made private if missing, checked if not), kept when
    /// dropped; or, when `None`, a new `<temp dir>/claude-pool-<prefix>-<random>`
    /// removed when dropped.
    pub fn configured_or_temporary(
        configured: Option<&Path>,
        prefix: &str,
    ) -> std::io::Result<Self> {
        if let Some(dir) = configured {
            ensure_dir(dir)?;
            return Ok(Self {
                path: dir.to_path_buf(),
                owned: false,
            });
        }
        let base = std::env::temp_dir();
        for _ in 0..8 {
            let name = format!("claude-pool-{prefix}-{}", crate::ids::random());
            let path = base.join(name);
            match create_dir(&path) {
                Ok(()) => return Ok(Self { path, owned: true }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("no unused directory name in {}", base.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = remove_tree(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Creates (or opens) the file `path` mode 0600, and makes it 0600 if it
/// was not; an existing file must be this user's.
pub fn ensure_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "refusing {}: owned by uid {}, not by this daemon's user",
                path.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o777 != FILE_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// Removes `dir` and everything in it, including subdirectories a tool made
/// read-only; a missing `dir` is fine.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let remove = || match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if let Err(e) = remove() {
        if e.kind() != ErrorKind::PermissionDenied {
            return Err(e);
        }
        // `file_type` does not follow symlinks: only the tree's own
        // directories are made writable.
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        remove()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_dir(&shared).unwrap_err();
        assert!(e.to_string().contains("other users may write it"), "{e}");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1775)).unwrap();
        assert!(ensure_dir(&shared).is_err(), "group-writable");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&shared).unwrap();
        assert!(ensure_dir(Path::new("/tmp")).is_err(), "/tmp is everyone's");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let theirs = root.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        // SAFETY: geteuid has no preconditions.
        let other = match unsafe { libc::geteuid() } {
            // As root: hand it to nobody.
            0 => {
                std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
                theirs
            }
            // Otherwise: root's own directory.
            _ => PathBuf::from("/"),
        };
        let e = ensure_dir(&other).unwrap_err();
        assert!(e.to_string().contains("not by this daemon's user"), "{e}");
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path(), &link).unwrap();
        assert!(ensure_dir(&link).is_err(), "a symlink is not followed");
    }

    #[test]
    fn new_directories_are_private_whatever_the_umask_did() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        ensure_dir(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = root.path().join("store.sqlite3");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "kept");
    }

    #[test]
    fn a_run_directory_has_an_unguessable_name_and_goes_when_dropped() {
        let a = RunDir::configured_or_temporary(None, "test").unwrap();
        let b = RunDir::configured_or_temporary(None, "test").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(mode(a.path()), 0o700);
        let name = a.path().file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.contains(&std::process::id().to_string()), "{name}");
        std::fs::create_dir(a.path().join("inner")).unwrap();
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());

        let kept = tempfile::tempdir().unwrap();
        let configured = kept.path().join("ws");
        drop(RunDir::configured_or_temporary(Some(&configured), "test").unwrap());
        assert!(configured.is_dir(), "a configured directory stays");
    }
}
