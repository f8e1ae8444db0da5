//! Whom a batch request runs for, and the row it leaves in the usage
//! ledger.
//!
//! A batch belongs to the key that created it (its owner is the key's
//! digest, the key's scope), and each of its requests runs as that key: on
//! the accounts the key may use, in the key's fair share, as an agent job
//! only if the key may use agent mode, only with the models it may use, and
//! recorded in the ledger under the key's name with the batch's id, so its
//! tokens count in the key's windows, `/v1/usage` and `/metrics`.
//!
//! A key revoked or expired while its batch waits: the requests not yet
//! started end `errored` (`authentication_error`, saying so), as the key's
//! next interactive request gets a 401; those already running finish, as a
//! revoked key's interactive jobs in flight do. The batch itself stays
//! readable by nobody (its key is gone) until retention archives it.

use std::sync::Arc;

use crate::api::error::ApiError;
use crate::api::Dialect;
use crate::config::Settings;
use crate::error::JobError;
use crate::keys::{now_ms, rfc3339, Caller, KeyRing};
use crate::ledger::{Record, Trail};

/// The ledger's route for batch requests (the route that created them).
pub const ROUTE: &str = "/v1/messages/batches";

/// Why a request of a batch is not run, as the error its result carries:
/// `(type, message)` in the Anthropic vocabulary.
pub type Refused = (&'static str, String);

/// The key batch `batch_id`'s requests run as: the key whose scope is
/// `owner`, or the one caller of a daemon without keys. Refused when that
/// key was revoked or has expired.
pub fn caller_of(
    keys: Option<&KeyRing>,
    settings: &Settings,
    owner: &str,
    batch_id: &str,
) -> Result<Arc<Caller>, Refused> {
    let anonymous = || Arc::new(Caller::anonymous(settings.limits.defaults()));
    let Some(keys) = keys.filter(|k| !k.keyless()) else {
        return Ok(anonymous());
    };
    let gone = |why: String| -> Refused {
        (
            "authentication_error",
            format!("{why}; the requests of batch {batch_id} it had not started are not run"),
        )
    };
    match keys.by_scope(owner) {
        None => Err(gone(
            "the API key that created this batch was revoked".into(),
        )),
        Some(caller) if caller.expired(now_ms()) => Err(gone(format!(
            "the API key `{}` that created this batch expired at {}",
            caller.name,
            rfc3339(caller.expires_at.unwrap_or_default())
        ))),
        Some(caller) => Ok(caller),
    }
}

/// A permission the key lost since it created the batch (its `models`).
pub fn check_model(caller: &Caller, model: &str) -> Result<(), Refused> {
    if caller.allows_model(model) {
        return Ok(());
    }
    Err((
        "permission_error",
        format!(
            "key `{}` may not use model `{model}`; it may use: {}",
            caller.name,
            caller.models.join(", ")
        ),
    ))
}

/// The start of request `request_id`'s ledger row: run by `caller` as a
/// request of batch `batch_id` on node `node`, asking for `model`.
pub fn row(request_id: String, batch_id: &str, caller: &Caller, model: &str, node: &str) -> Record {
    Record {
        request_id,
        key: caller.name.clone(),
        method: "POST".into(),
        route: ROUTE.into(),
        dialect: Some("anthropic".into()),
        model_asked: Some(model.to_string()),
        node: node.to_string(),
        batch_id: Some(batch_id.to_string()),
        ..Record::default()
    }
}

/// The end of a request's row: succeeded, or failed with `error`.
pub fn ended(trail: Trail, error: Option<&JobError>) -> Record {
    match error {
        None => trail.finish(200, None),
        Some(error) => {
            let error = ApiError::from_job(error.clone(), Dialect::Anthropic);
            trail.finish(error.status().as_u16(), Some(error.anthropic_type().into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings_with_keys(toml: &str) -> Arc<Settings> {
        Arc::new(Settings::from_toml(toml).unwrap())
    }

    #[test]
    fn a_batch_runs_as_its_key_and_not_after_the_key_is_gone() {
        let settings = settings_with_keys(
            "[[accounts]]\nname = \"x\"\nworkers = 1\n\
             [[accounts]]\nname = \"y\"\nworkers = 1\n\
             [[keys]]\nname = \"alice\"\nsecret = \"sk-alice\"\naccounts = [\"x\"]\n\
             [[keys]]\nname = \"old\"\nsecret = \"sk-old-key\"\nexpires_at = \"2001-01-01T00:00:00Z\"\n",
        );
        let ring = KeyRing::from_settings(settings.clone());
        let alice = crate::batches::owner_of(Some("sk-alice"));
        let caller = caller_of(Some(&ring), &settings, &alice, "msgbatch_1").unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.scope.as_str()),
            ("alice", alice.as_str())
        );
        assert_eq!(caller.accounts, ["x"]);
        let (kind, message) = caller_of(Some(&ring), &settings, "ab12", "msgbatch_1").unwrap_err();
        assert_eq!(kind, "authentication_error");
        assert!(
            message.contains("revoked") && message.contains("msgbatch_1"),
            "{message}"
        );
        let old = crate::batches::owner_of(Some("sk-old-key"));
        let (_, message) = caller_of(Some(&ring), &settings, &old, "msgbatch_2").unwrap_err();
        assert!(
            message.contains("`old`") && message.contains("expired"),
            "{message}"
        );
        // Without keys, the one caller; its `[limits]` apply.
        let keyless = Arc::new(Settings::default());
        let ring = KeyRing::from_settings(keyless.clone());
        let caller = caller_of(Some(&ring), &keyless, "", "msgbatch_3").unwrap();
        assert_eq!(caller.name, crate::keys::ANONYMOUS);
    }
}
