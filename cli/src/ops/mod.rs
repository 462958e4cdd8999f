//! Operator and producer commands (`docs/operators.md`).
//!
//! - `pipeline dlq stats|peek|redrive|export|import|purge QUEUE`: see what
//!   failed and put it back without losing a message ([`inspect`],
//!   [`redrive`], [`replay`] for stream records, [`transfer`]).
//! - `pipeline send QUEUE [FILE]`, `pipeline put-items [FILE]`: jobs and
//!   items from JSON Lines through pipeline-core's typed producer and item
//!   writer ([`produce`]).
//!
//! Queues are named by URL, ARN, name, or template logical id with
//! `--stack-name` ([`queue`], [`stack`]). Every error names the queue, the
//! cause and the fix ([`error`]).

pub mod error;
pub mod filter;
pub mod input;
pub mod inspect;
pub mod message;
pub mod produce;
pub mod progress;
pub mod queue;
pub mod redrive;
pub mod replay;
pub mod scan;
pub mod sender;
pub mod stack;
pub mod transfer;

pub use error::{OpsError, Result};
pub use queue::{OpsContext, QueueRef};
