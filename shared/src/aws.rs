//! Building the AWS SDK configuration once, at cold start.
//!
//! Everything comes from the standard environment: `AWS_REGION`,
//! credentials, and `AWS_ENDPOINT_URL` (or the per-service
//! `AWS_ENDPOINT_URL_SQS`, ...) for a local endpoint. Nothing here knows of
//! any particular endpoint or credentials.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Loads the SDK configuration from the environment, with a rustls (ring)
/// HTTPS client. Build it once and share the clients made from it.
pub async fn sdk_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
}

/// Reads a required environment variable, with an error that names it and
/// says what it is for.
pub fn required_env(name: &str, what: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError { name: name.to_owned(), what: what.to_owned() }),
    }
}

/// A required setting is missing. Its `Debug` is its message, so that a
/// `main` returning it prints the fix, not a struct.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be set: {what}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: String,
    /// What it holds.
    pub what: String,
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
