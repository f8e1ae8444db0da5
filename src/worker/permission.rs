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
        let Ok(root) = self.host.canonicalize() else {
            return false;
        };
        resolve_existing(&self.host.join(relative)).is_some_and(|p| p.starts_with(root))
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
    }
}
