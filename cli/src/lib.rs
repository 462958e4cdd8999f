//! `pipeline-cli`: the developer and operator tool of the pipeline.
//!
//! The local runner (`pipeline local up`) does what `sam local` cannot:
//! trigger the stream and queue functions locally, with Lambda's event
//! source mapping semantics (LAMBDA-SEMANTICS.md).
//!
//! - [`template`]: load `template.yaml`, resolve `!Ref` / `!GetAtt` / `!Sub`.
//! - [`provision`]: create its tables and queues on the configured endpoint
//!   (`AWS_ENDPOINT_URL`), resolve each function's environment and events.
//! - [`invoke`]: the [`Invoker`](invoke::Invoker) trait the emulator calls
//!   functions through, and an implementation for the Lambda Invoke API
//!   (`cargo lambda watch`).
//! - [`esm`]: the event source mapping emulator.
//! - [`inprocess`]: the default invoker, calling the real processors'
//!   handlers in this process, configured from the template.
//! - [`demo`]: `pipeline local demo`, the pipeline once with sample traffic.
//! - [`ops`]: the operator and producer commands: `pipeline dlq ...`
//!   (stats, peek, redrive, export, import, purge), `pipeline send`,
//!   `pipeline put-items` (docs/operators.md).
//! - [`aws`]: SDK configuration from the environment.
//!
//! Driving it from a test in another crate:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use pipeline_cli::{aws, esm, provision, template};
//! # async fn demo(invoker: impl pipeline_cli::invoke::Invoker + 'static) -> Result<(), Box<dyn std::error::Error>> {
//! let sdk = aws::load_sdk_config().await?;
//! let t = template::Template::from_path("template.yaml")?;
//! let ctx = template::StackContext::local("test-1234", aws::region_of(&sdk));
//! let stack = provision::provision(&sdk, &t, &ctx).await?;
//! let running = esm::Emulator::start(&sdk, &stack, Arc::new(invoker), esm::EmulatorOptions::fast()).await?;
//! // ... write items / send messages ...
//! let report = running.drain(esm::DrainOptions::default()).await;
//! assert!(report.drained, "{report}");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod aws;
pub mod demo;
pub mod esm;
pub mod inprocess;
pub mod invoke;
pub mod local;
pub mod mapping;
pub mod ops;
pub mod provision;
pub mod template;
