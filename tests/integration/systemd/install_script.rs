//! A staged run of the install script: what it installs, what it never
//! overwrites, and whom it builds and runs as.

use super::*;

#[test]
fn install_script_stages_binary_unit_and_config_without_overwriting() {
    let stage = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(repo("scripts/install.sh"))
            .args(args)
            .env("DESTDIR", stage.path())
            .env("CLAUDE_POOL_BINARY", env!("CARGO_BIN_EXE_claude-pool"))
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "install.sh {args:?}: {text}");
        text
    };
    let staged = |path: &str| stage.path().join(path.trim_start_matches('/'));

    let text = run(&[]);
    // The shipped config runs `claude` from the service's PATH: the script
    // says where it is, or how to install it.
    let service_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    match std::env::split_paths(service_path)
        .map(|dir| dir.join("claude"))
        .find(|p| p.is_file())
    {
        Some(claude) => assert!(
            text.contains(&format!("found: {}", claude.display())),
            "{text}"
        ),
        None => assert!(
            text.contains("NOT FOUND")
                && text.contains("npm install -g @anthropic-ai/claude-code@2.1.197"),
            "{text}"
        ),
    }
    assert!(staged("/usr/local/bin/claude-pool").is_file());
    assert_eq!(
        std::fs::read(staged("/etc/systemd/system/claude-pool.service")).unwrap(),
        std::fs::read(repo("systemd/claude-pool.service")).unwrap()
    );
    let config = staged("/etc/claude-pool/config.toml");
    let settings = Settings::load(Some(&config)).expect("the installed config loads");
    assert_eq!(
        settings.claude.config_dir.as_deref(),
        Some(Path::new("/var/lib/claude-pool/claude"))
    );
    assert_eq!(
        settings.claude.working_dir.as_deref(),
        Some(Path::new("/var/lib/claude-pool/work"))
    );
    let env = staged("/etc/claude-pool/env");
    assert_eq!(mode(&env), 0o600, "a new env file holds credentials");

    // A second install keeps the administrator's config and env file, and
    // makes the env file private again. It finds a configured command.
    let fake = env!("CARGO_BIN_EXE_fake-claude");
    std::fs::write(&config, format!("[claude]\ncommand = {fake:?}\n")).unwrap();
    std::fs::write(&env, "ANTHROPIC_API_KEY=sk-kept\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = run(&[]);
    assert!(text.contains(&format!("found: {fake}")), "{text}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        format!("[claude]\ncommand = {fake:?}\n")
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "ANTHROPIC_API_KEY=sk-kept\n"
    );
    assert_eq!(mode(&env), 0o600, "the env file was left readable");

    // Uninstall removes binary and unit, keeps configuration.
    run(&["--uninstall"]);
    assert!(!staged("/usr/local/bin/claude-pool").exists());
    assert!(!staged("/etc/systemd/system/claude-pool.service").exists());
    assert!(config.is_file());
}

/// The configured `claude.command` is run (for its version) as the
/// service's user, never as root: as root without that account, not at all.
#[test]
fn install_script_never_runs_the_configured_cli_as_root() {
    let stage = TempDir::new().unwrap();
    let tools = TempDir::new().unwrap();
    let ran_as = tools.path().join("ran-as");
    let claude = tools.path().join("claude");
    std::fs::write(
        &claude,
        format!("#!/bin/sh\nid -un >> {}\necho 9.9.9\n", ran_as.display()),
    )
    .unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = stage.path().join("etc/claude-pool/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[claude]\ncommand = {claude:?}\n")).unwrap();
    let out = Command::new("bash")
        .arg(repo("scripts/install.sh"))
        .env("DESTDIR", stage.path())
        .env("CLAUDE_POOL_BINARY", env!("CARGO_BIN_EXE_claude-pool"))
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("found: {}", claude.display())),
        "{text}"
    );
    let runners = std::fs::read_to_string(&ran_as).unwrap_or_default();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let has_account = Command::new("getent")
            .args(["passwd", "claude-pool"])
            .output()
            .unwrap()
            .status
            .success();
        if has_account {
            assert_eq!(runners.trim(), "claude-pool", "{text}");
        } else {
            assert!(runners.is_empty(), "run as {runners}: {text}");
            assert!(text.contains("not run: root does not run it"), "{text}");
        }
    } else {
        assert!(text.contains("(9.9.9)"), "{text}");
        assert!(!runners.trim().is_empty() && runners.trim() != "root");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// A copy of what the install script reads, owned by `owner` when the test
/// runs as root, with a `cargo` that records who ran it.
#[test]
fn install_script_builds_as_the_owner_of_the_checkout() {
    let checkout = TempDir::new().unwrap();
    let root = checkout.path();
    for path in [
        "scripts/install.sh",
        "config/claude-pool.toml",
        "systemd/claude-pool.service",
    ] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::copy(repo(path), root.join(path)).unwrap();
    }
    let cargo = root.join("bin/cargo");
    std::fs::create_dir_all(cargo.parent().unwrap()).unwrap();
    std::fs::write(
        &cargo,
        "#!/bin/sh\nid -un > built-by\nmkdir -p target/release\n\
         printf '#!/bin/sh\\n' > target/release/claude-pool\n\
         chmod +x target/release/claude-pool\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    // As root, the checkout belongs to someone else, as under `sudo`.
    let root_user = unsafe { libc::geteuid() } == 0;
    let owner = if root_user {
        let chown = Command::new("chown")
            .args(["-R", "nobody"])
            .arg(root)
            .status()
            .unwrap();
        assert!(chown.success());
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        "nobody".to_string()
    } else {
        me.trim().to_string()
    };
    let stage = TempDir::new().unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .env("DESTDIR", stage.path())
        .env("CARGO", &cargo)
        .env_remove("CLAUDE_POOL_BINARY")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let built_by = std::fs::read_to_string(root.join("built-by")).unwrap();
    assert_eq!(built_by.trim(), owner, "{text}");
    let built = std::fs::metadata(root.join("target/release/claude-pool")).unwrap();
    let owner_uid = std::fs::metadata(root.join("scripts")).unwrap().uid();
    assert_eq!(built.uid(), owner_uid, "target/ must stay the owner's");
    assert!(stage.path().join("usr/local/bin/claude-pool").is_file());
}
