//! The node's state directory: its key, its LMDB environment, its control
//! socket and its lock. Every `meshpay` command finds the node through it.
//!
//! Resolution order: `--state-dir DIR` / `MESHPAY_STATE_DIR`, then
//! `$XDG_STATE_HOME/meshpay`, then `/var/lib/meshpay` when running as root,
//! then `$HOME/.local/state/meshpay` (the XDG default).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// File names inside the state directory.
pub const KEY_FILE: &str = "node.key";
pub const CONTROL_SOCKET: &str = "control.sock";
pub const LOCK_FILE: &str = "meshpay.lock";
pub const CONFIG_FILE: &str = "meshpay.toml";

/// The state directory of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Resolves the directory without touching the file system.
    pub fn resolve(explicit: Option<&Path>) -> anyhow::Result<StateDir> {
        if let Some(p) = explicit {
            return Ok(StateDir { path: absolute(p)? });
        }
        if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return Ok(StateDir { path: absolute(&PathBuf::from(xdg).join("meshpay"))? });
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return Ok(StateDir { path: PathBuf::from("/var/lib/meshpay") });
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(StateDir { path: PathBuf::from(home).join(".local/state/meshpay") }),
            None => bail!("cannot choose a state directory: pass --state-dir or set MESHPAY_STATE_DIR"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn control_socket(&self) -> PathBuf {
        self.join(CONTROL_SOCKET)
    }

    /// Creates the directory (mode 0700) if needed; refuses one that others
    /// can write to, since it holds the node key.
    pub fn ensure(&self) -> anyhow::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .with_context(|| format!("cannot create state directory {}", self.path.display()))?;
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot read state directory {}", self.path.display()))?;
        if !meta.is_dir() {
            bail!("state directory {} is not a directory", self.path.display());
        }
        if meta.permissions().mode() & 0o022 != 0 {
            bail!(
                "state directory {} is writable by group or others (mode {:o}); it holds the node key: chmod 700 it",
                self.path.display(),
                meta.permissions().mode() & 0o777
            );
        }
        Ok(())
    }

    /// Takes the directory's lock so that only one daemon uses it. The lock
    /// is released when the returned file is closed (also on a crash).
    pub fn lock(&self) -> anyhow::Result<File> {
        let path = self.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        // SAFETY: a valid fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                bail!(
                    "another meshpay node is already running with state directory {} (lock {} is held)",
                    self.path.display(),
                    path.display()
                );
            }
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        Ok(file)
    }
}

/// An absolute path without `.` components (they would show up in every
/// message that names a file in the directory).
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir().context("cannot read the current directory")?.join(p)
    };
    Ok(joined.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_wins_and_relative_paths_become_absolute() {
        let d = StateDir::resolve(Some(Path::new("./rel/./state"))).unwrap();
        assert!(d.path().is_absolute());
        assert!(!d.path().to_string_lossy().contains("/./"), "{}", d.path().display());
        assert!(d.path().ends_with("rel/state"));
        assert_eq!(d.control_socket(), d.path().join("control.sock"));
    }

    #[test]
    fn a_second_lock_is_refused_with_a_clear_message() {
        let tmp = tempfile::tempdir().unwrap();
        let d = StateDir::resolve(Some(&tmp.path().join("s"))).unwrap();
        d.ensure().unwrap();
        let _held = d.lock().unwrap();
        let err = d.lock().unwrap_err().to_string();
        assert!(err.contains("already running"), "{err}");
    }

    #[test]
    fn a_world_writable_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s");
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = StateDir::resolve(Some(&p)).unwrap().ensure().unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }
}
