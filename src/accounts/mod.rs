//! Several Claude accounts in one pool, found here:
//! - [`roster`]: the accounts as the pool runs them, which may take new
//!   work and in what order, accounts added or removed by a reload;
//! - [`standing`]: an account's standing (`ok`, `limited`, `overage`) and
//!   the routing order, [`logins`]: accounts whose login failed;
//! - [`signal`]: what a worker's CLI reports about an account's limits;
//! - [`health`]: an account as `/health` and `/metrics` show it.
//!
//! Elsewhere, by layer: the `[[accounts]]` table and the plan each account
//! runs by are parsed with the rest of the configuration
//! (`config/accounts.rs`: `config` is the bottom layer and names no other
//! module); the signals are read off the CLI's lines in
//! `worker/account_signal.rs` (only `worker/` speaks the CLI's protocol);
//! the dispatcher staffs each account with workers and moves a job to
//! another account after a 429 or a failed login (`dispatch/accounts.rs`).

pub mod health;
pub mod logins;
pub mod roster;
pub mod signal;
pub mod standing;

#[cfg(test)]
mod tests;

pub use health::AccountHealth;
pub use roster::{Account, AccountKey, Roster};
