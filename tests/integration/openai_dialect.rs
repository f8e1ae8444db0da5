//! The model list of the OpenAI dialect comes from the configuration (the
//! fake CLI). The round trips through the real CLI are
//! `real_cli::openai_dialect`.

use crate::common::*;
use serde_json::Value;

#[test]
fn the_model_list_comes_from_the_configuration() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("claude.models = [\"claude-custom-1\", \"sonnet\"]"),
        &upstream,
    );
    let list = blocking_get_json(&daemon.url("/v1/models"));
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-custom-1", "sonnet"]);
    let one = client()
        .get(daemon.url("/models/claude-custom-1"))
        .send()
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = client()
        .get(daemon.url("/v1/models/claude-opus-4-8"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
}
