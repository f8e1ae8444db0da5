//! The Responses API's stored state as the codec sees it, without reaching
//! it: what a request refers to ([`References`]), what the route looked up
//! for it before parsing ([`Lookups`]), and what of a finished response is
//! to be kept ([`Kept`]). The reading and writing is the route's (see
//! `stored::Stores`), off the HTTP threads.

use std::collections::HashMap;

use serde_json::Value;

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// `resp_…`
    pub id: String,
    /// Who may read it: a digest of the API key that created it.
    pub scope: String,
    /// The response object as the client received it.
    pub response: Value,
    /// The request's own input items, each with an `id`.
    pub input: Vec<Value>,
    /// Every item of the conversation before `input`, oldest first.
    pub context: Vec<Value>,
}

impl StoredResponse {
    /// Every item of the conversation up to and including this response's
    /// output, oldest first.
    pub fn conversation(&self) -> Vec<Value> {
        let output = self.response["output"].as_array().into_iter().flatten();
        self.context
            .iter()
            .chain(&self.input)
            .chain(output)
            .cloned()
            .collect()
    }
}

/// The stored state a request names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct References {
    /// `previous_response_id`.
    pub previous: Option<String>,
    /// `conversation`.
    pub conversation: Option<String>,
    /// The ids of its `item_reference` inputs.
    pub items: Vec<String>,
}

impl References {
    /// Whether it names nothing (no lookup needed).
    pub fn is_empty(&self) -> bool {
        self.previous.is_none() && self.conversation.is_none() && self.items.is_empty()
    }
}

/// What the route found of a request's [`References`] (in the caller's
/// scope), and which stores it has.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// Responses can be stored (the daemon has a response store).
    pub can_store: bool,
    /// The response `previous_response_id` names, if found.
    pub previous: Option<StoredResponse>,
    /// The items of the conversation `conversation` names, if found.
    pub conversation: Option<Vec<Value>>,
    /// Stored items found, by id.
    pub items: HashMap<String, Value>,
}

/// What of a finished response is kept: the response itself (`store` not
/// false) and the items its conversation gains.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub scope: String,
    /// The response to store, if it is stored.
    pub response: Option<StoredResponse>,
    /// The conversation's id and the items (input and output) it gains.
    pub conversation: Option<(String, Vec<Value>)>,
}

impl Kept {
    /// The response's id.
    pub fn id(&self) -> Option<&str> {
        self.response.as_ref().map(|r| r.id.as_str())
    }
}
