//! What a job is for: the tools work in the workspace, files stay with the
//! worker between its jobs (tool output files too) and go with it, and a new
//! daemon run starts with empty workspaces.

use super::*;

#[test]
fn the_tools_work_in_the_workspace_and_files_stay_with_the_worker() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let host = root.path().join("worker-1/notes.txt");
    let write = call(
        "Write",
        json!({"file_path": "/workspace/notes.txt", "content": "alpha beta\n"}),
    );
    ask(&daemon, &format!("write {write}"));
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "alpha beta\n");
    // Later jobs of the same worker find the file: Read it, Edit it (Edit
    // needs a Read in the same conversation first), then Bash sees the edit.
    let read = call("Read", json!({"file_path": "notes.txt"}));
    let edit = call(
        "Edit",
        json!({"file_path": "/workspace/notes.txt", "old_string": "beta", "new_string": "gamma"}),
    );
    let text = ask(&daemon, &format!("read {read}"));
    assert!(text.contains("alpha beta"), "{text}");
    ask(&daemon, &format!("read {read} and edit {edit}"));
    let text = ask(&daemon, &format!("show {}", bash("cat notes.txt; pwd")));
    assert!(
        text.contains("alpha gamma") && text.contains("/workspace"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "alpha gamma\n");
}

#[test]
fn a_new_daemon_run_starts_with_empty_workspaces() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("worker-1");
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let write = call(
        "Write",
        json!({"file_path": "/workspace/notes.txt", "content": "first run\n"}),
    );
    ask(&daemon, &format!("write {write}"));
    assert!(workspace.join("notes.txt").exists());
    daemon.stop().expect("clean stop");
    assert!(!workspace.exists(), "the workspace went with its worker");

    // As a daemon killed without cleaning up would leave it.
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("left.txt"), "earlier caller").unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let text = ask(
        &daemon,
        &format!("list {}", bash("ls -A /workspace; echo END")),
    );
    assert!(text.contains("END"), "{text}");
    assert!(!text.contains("left.txt"), "{text}");
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0);
}

#[test]
fn tool_output_files_stay_with_the_worker_and_go_with_it() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "pool.max_jobs_per_worker = 2");
    let private = root.path().join("worker-1.claude");
    assert!(private.is_dir(), "worker-1 has a private config directory");
    ask(&daemon, &format!("big {}", bash("seq 1 200000")));
    let saved = files_under(&private, "tool-results");
    assert!(
        !saved.is_empty(),
        "the large output was saved with the worker"
    );
    let shared = Path::new(&daemon.config_dir()).join("projects");
    assert!(
        files_under(&shared, "tool-results").is_empty(),
        "nothing in the shared config directory"
    );
    // The second job retires worker-1; its files go with it.
    ask(&daemon, "done");
    let deadline = Instant::now() + Duration::from_secs(30);
    while private.exists() {
        assert!(Instant::now() < deadline, "worker-1's files stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_the_sandbox_tool_output_files_go_with_the_worker_too() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let extra = "pool.max_jobs_per_worker = 2\nagent.sandbox = \"none\"";
    let daemon = agent_daemon(&upstream, root.path(), 1, extra);
    ask(&daemon, &format!("big {}", bash("seq 1 200000")));
    let projects = Path::new(&daemon.config_dir()).join("projects");
    let saved = files_under(&projects, "tool-results");
    assert!(!saved.is_empty(), "the CLI saved the large output");
    let slug: String = root
        .path()
        .join("worker-1")
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let folder = projects.join(slug);
    assert!(saved.iter().all(|f| f.starts_with(&folder)), "{saved:?}");
    ask(&daemon, "done");
    let deadline = Instant::now() + Duration::from_secs(30);
    while folder.exists() {
        assert!(Instant::now() < deadline, "worker-1's tool output stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files below `dir` whose path contains `part`.
fn files_under(dir: &Path, part: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.display().to_string().contains(part) {
                found.push(path);
            }
        }
    }
    found
}
