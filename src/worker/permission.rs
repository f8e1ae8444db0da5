//! The daemon's answer to the CLI's tool permission checks (`can_use_tool`):
//! which tools a worker may use, and the workspace check on the file tools'
//! paths. On an agent worker inside the sandbox (see `sandbox`) the check is
//! defence in depth; with `agent.sandbox = "none"` it is all there is.

use std::path::{Component, Path, PathBuf};

use super::protocol::ToolPermission;
use crate::config::AgentSettings;
use crate::job::ToolSet;

/// Where an agent worker's files are: the path its tools see, and the same
/// directory on the host (different when the worker runs in a sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace as the worker's tools see it.
    pub seen_as: PathBuf,
    /// The workspace on the host.
    pub host: PathBuf,
}

impl Workspace {
    /// Whether `path` (absolute, or relative to the workspace, as a tool
    /// names it) stays inside the workspace: `..` and `.` are resolved, then
    /// every symlink of the deepest part that exists on the host, so a link
    /// made by a tool cannot lead a file tool out. `~` is refused (the
    /// daemon cannot know which home the CLI would expand it to).
    pub fn contains(&self, path: &str) -> bool {
        if path.starts_with('~') {
            return false;
        }
        let Some(relative) = normalize(&self.seen_as.join(path))
            .strip_prefix(&self.seen_as)
            .ok()
            .map(Path::to_path_buf)
        else {
            return false;
        };
        if self.seen_as != self.host {
            return self.stays_inside_as_seen(&relative);
        }
        let Ok(root) = self.host.canonicalize() else {
            return false;
        };
        resolve_existing(&self.host.join(relative)).is_some_and(|p| p.starts_with(root))
    }
}

impl Workspace {
    /// Whether `relative` (below the workspace) stays inside it with its
    /// symlinks followed as the sandboxed tools see them: an absolute link
    /// target means a path inside the sandbox, so one under [`Self::seen_as`]
    /// continues in the workspace and any other leads out — also one naming
    /// the workspace's host path, which inside is somewhere else entirely
    /// (e.g. under the sandbox's private `/tmp`, where a tool can make it a
    /// link to anything).
    fn stays_inside_as_seen(&self, relative: &Path) -> bool {
        use std::collections::VecDeque;
        let mut todo: VecDeque<std::ffi::OsString> = VecDeque::new();
        let push_front = |todo: &mut VecDeque<std::ffi::OsString>, path: &Path| {
            let parts: Vec<_> = path
                .components()
                .map(|c| c.as_os_str().to_owned())
                .collect();
            for part in parts.into_iter().rev() {
                todo.push_front(part);
            }
        };
        push_front(&mut todo, relative);
        let mut inside: Vec<std::ffi::OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop_front() {
            match part.to_str() {
                Some(".") => continue,
                Some("..") => {
                    if inside.pop().is_none() {
                        return false;
                    }
                    continue;
                }
                _ => {}
            }
            let host: PathBuf = inside
                .iter()
                .fold(self.host.clone(), |p, c| p.join(c))
                .join(&part);
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    links += 1;
                    let Ok(target) = std::fs::read_link(&host) else {
                        return false;
                    };
                    if links > 40 {
                        return false;
                    }
                    if target.is_absolute() {
                        let Ok(rest) = target.strip_prefix(&self.seen_as) else {
                            return false;
                        };
                        inside.clear();
                        push_front(&mut todo, rest);
                    } else {
                        push_front(&mut todo, &target);
                    }
                }
                Ok(_) => inside.push(part),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => inside.push(part),
                Err(_) => return false,
            }
        }
        true
    }
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `path` with its deepest existing ancestor canonicalized (symlinks
/// followed) and the rest, which does not exist yet, appended. `None` when
/// a part of it is a symlink that leads nowhere (yet): writing through it
/// would create its target, wherever that is.
fn resolve_existing(path: &Path) -> Option<PathBuf> {
    let mut missing = Vec::new();
    let mut existing = path.to_path_buf();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return Some(missing.iter().rev().fold(real, |p, part| p.join(part)));
        }
        if existing.symlink_metadata().is_ok() {
            return None;
        }
        missing.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?.to_path_buf();
    }
}

/// Whether a tool call the CLI asks about may run: the current job's
/// caller tools (`job_tools`) always; on an agent worker (`agent`: its
/// settings and workspace), the configured built-in tools, as long as every
/// path involved is inside its workspace.
pub fn check(
    request: &ToolPermission,
    job_tools: Option<&ToolSet>,
    agent: Option<(&AgentSettings, &Workspace)>,
) -> Result<(), String> {
    let tool = request.tool_name.as_str();
    if job_tools.is_some_and(|t| tool.starts_with(&t.api_prefix())) {
        return Ok(());
    }
    let Some((_, workspace)) = agent.filter(|(settings, _)| {
        settings.tools.iter().any(|t| t == tool)
            && !settings.disallowed_tools.iter().any(|t| t == tool)
    }) else {
        return Err(format!("the tool {tool} is not enabled on this server"));
    };
    let input = &request.input;
    let paths = ["file_path", "path", "notebook_path"]
        .iter()
        .filter_map(|key| input.get(*key).and_then(|v| v.as_str()))
        .chain(request.blocked_path.as_deref());
    for path in paths {
        if !workspace.contains(path) {
            return Err(format!("{path} is outside this agent's workspace"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_in_the_workspace() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("worker-1");
        std::fs::create_dir_all(host.join("a")).unwrap();
        std::fs::create_dir_all(root.path().join("worker-10")).unwrap();
        let ws = Workspace {
            seen_as: host.clone(),
            host: host.clone(),
        };
        let under = |p: &str| format!("{}/{p}", host.display());
        assert!(ws.contains("notes.txt"));
        assert!(ws.contains(&under("a/b.txt")));
        assert!(ws.contains(&under("new/dir/file")));
        assert!(!ws.contains("../worker-2/secret"));
        assert!(!ws.contains("/etc/passwd"));
        assert!(!ws.contains(&format!("{}/worker-10/x", root.path().display())));
        assert!(!ws.contains("~/.ssh/id_rsa"));
        assert!(!ws.contains("~root/x"));
    }

    #[test]
    fn symlinks_are_followed_out_of_the_workspace() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("worker-1");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, host.join("door")).unwrap();
        std::os::unix::fs::symlink("../outside/secret", host.join("file-link")).unwrap();
        std::os::unix::fs::symlink(host.join("a"), host.join("inner")).unwrap();
        let ws = Workspace {
            seen_as: host.clone(),
            host,
        };
        assert!(!ws.contains("door/secret"));
        assert!(!ws.contains("door/not/yet/there"));
        assert!(!ws.contains("file-link"));
        std::fs::create_dir_all(ws.host.join("a")).unwrap();
        assert!(ws.contains("inner/b"), "a link inside stays inside");
        std::os::unix::fs::symlink(root.path().join("later"), ws.host.join("dangling")).unwrap();
        assert!(!ws.contains("dangling"), "a write would create the target");
        assert!(!ws.contains("dangling/x"));
    }

    #[test]
    fn paths_as_seen_in_the_sandbox_map_to_the_host() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("worker-1");
        std::fs::create_dir_all(&host).unwrap();
        let ws = Workspace {
            seen_as: PathBuf::from("/workspace"),
            host: host.clone(),
        };
        assert!(ws.contains("/workspace/a.txt"));
        assert!(ws.contains("a.txt"));
        assert!(!ws.contains(&format!("{}/a.txt", host.display())));
        assert!(!ws.contains("/workspace/../etc/passwd"));
        assert!(!ws.contains("/workspacex/a"));
        // Links resolve as the sandbox sees them: its host path is not the
        // workspace inside (there it may be a tool's own link to /proc/2).
        std::os::unix::fs::symlink(host.join("a.txt"), host.join("by-host-path")).unwrap();
        std::os::unix::fs::symlink(&host, host.join("host-dir")).unwrap();
        assert!(!ws.contains("by-host-path"));
        assert!(!ws.contains("host-dir/a.txt"));
        std::os::unix::fs::symlink("/workspace/sub", host.join("inside")).unwrap();
        std::os::unix::fs::symlink("sub/../a.txt", host.join("relative")).unwrap();
        std::fs::create_dir(host.join("sub")).unwrap();
        assert!(ws.contains("inside/new.txt"));
        assert!(ws.contains("relative"));
        std::os::unix::fs::symlink("../..", host.join("up")).unwrap();
        assert!(!ws.contains("up/etc/passwd"));
        std::os::unix::fs::symlink("/proc/2/environ", host.join("proc")).unwrap();
        assert!(!ws.contains("proc"));
    }
}
