//! Several Claude accounts in one pool: what their workers' CLI reports about
//! an account's rate limits ([`signal`]) and the standing the dispatcher
//! routes by ([`standing`]). What an account is (`[[accounts]]` in the
//! configuration) is in [`crate::config`].

pub mod signal;
pub mod standing;
