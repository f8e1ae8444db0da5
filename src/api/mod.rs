//! The HTTP API dialects on the wire, and the conversions between them and
//! the job domain. Pure code: no I/O, no actors.

pub mod anthropic;
pub mod assemble;
pub mod models;
pub mod openai;
pub mod tools;

/// Which API a route speaks; decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Anthropic,
    OpenAi,
}
