//! Every id the daemon hands out, made here: `<prefix><random>` for what
//! lives within one response (its items), and `<prefix><node>_<random>`
//! for what a client may come back for on another request — responses,
//! batches, conversations, sockets — which names the node that holds it,
//! so a load balancer sends the client back there (see [`crate::node`]).

/// 32 random hex digits (a v4 UUID, simple form).
pub fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `<prefix><random>`: `msg_…`, `chatcmpl-…`, `req_…`.
pub fn new(prefix: &str) -> String {
    format!("{prefix}{}", random())
}

/// `<prefix><node>_<random>`: an id of node `node`.
pub fn of_node(prefix: &str, node: &str) -> String {
    format!("{prefix}{node}_{}", random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_their_node_and_differ() {
        let id = of_node("msgbatch_", "n1");
        assert!(id.starts_with("msgbatch_n1_"), "{id}");
        assert_eq!(id.len(), "msgbatch_n1_".len() + 32);
        assert_ne!(id, of_node("msgbatch_", "n1"));
        let id = new("msg_");
        assert!(id.starts_with("msg_") && id.len() == 4 + 32, "{id}");
        assert_ne!(id, new("msg_"));
    }
}
