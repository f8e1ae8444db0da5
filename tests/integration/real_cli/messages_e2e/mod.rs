//! End to end: HTTP client → daemon → real Claude CLI → fake upstream.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

mod errors;
mod request_fields;
mod service;
mod turns;
