//! Integration tests of the local runner against a moto server
//! (`scripts/test` starts one and sets AWS_ENDPOINT_URL). Each test creates
//! its own resources under a unique stack name, so they run in parallel.
#![allow(clippy::unwrap_used, unreachable_pub)]

mod common;
mod invoke;
mod provision;
mod sqs;
mod stream;
