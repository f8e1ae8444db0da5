//! What the Responses API keeps between requests: stored responses
//! ([`responses`], written behind the request by [`write_behind`]; a
//! WebSocket connection's own latest one in [`connection`]) and
//! conversations ([`conversations`]), in the daemon's SQLite store. The
//! routes reach them through [`Stores`], off the HTTP threads: the
//! Responses codec in `api` only reads what they looked up
//! (`api::responses::kept::Lookups`) and says what to keep (`Kept`).

pub mod connection;
pub mod conversations;
pub mod responses;
pub mod write_behind;

mod access;

pub use access::{Keeping, Stores};
