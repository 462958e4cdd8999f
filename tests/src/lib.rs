//! Test support shared by the crates' integration tests, and the end-to-end
//! tests of the pipeline against the local AWS stack (`tests/` of this
//! crate).
//!
//! - [`runtime_api`]: a Lambda Runtime API emulator, so the real Lambda
//!   binaries can be started and invoked as Lambda would.
//! - [`local`]: the local AWS endpoint (moto, started by `scripts/test`),
//!   unique resource names, polling with a deadline.
#![allow(missing_docs, clippy::unwrap_used, unreachable_pub)]

pub mod local;
pub mod runtime_api;
