//! AWS SDK configuration for the local runner.
//!
//! Everything comes from the standard sources (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, credentials from the environment or profile): nothing here
//! knows about a local endpoint or test credentials. The HTTP client is
//! hyper + rustls with ring, like the rest of the workspace (no aws-lc).

use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;

/// The region used when none is configured.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The SDK configuration could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum AwsSetupError {
    /// No credentials could be found.
    #[error("no AWS credentials found ({reason}). {hint}")]
    NoCredentials {
        /// The provider chain's error.
        reason: String,
        /// What to set.
        hint: &'static str,
    },
}

const LOCAL_HINT: &str = "AWS_ENDPOINT_URL is not set either. To run against the local stack set AWS_ENDPOINT_URL \
     (e.g. `eval \"$(scripts/moto start)\"`) and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (any value works \
     with moto, e.g. `test`); to use a real AWS account configure credentials as usual (AWS_PROFILE, SSO, ...).";

const ENDPOINT_HINT: &str = "AWS_ENDPOINT_URL is set; the local emulator still needs credentials to sign \
     requests: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any value works with moto, e.g. `test`).";

/// Whether `AWS_ENDPOINT_URL` is set (to something non-empty).
pub fn endpoint_url_from_env() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.trim().is_empty())
}

/// Loads the shared SDK configuration from the environment: region from the
/// usual chain (default [`DEFAULT_REGION`]), endpoint from
/// `AWS_ENDPOINT_URL`, credentials from the default chain. Fails with a
/// message saying what to set when no credentials can be found.
pub async fn load_sdk_config() -> Result<SdkConfig, AwsSetupError> {
    let mut config = pipeline_core::aws::sdk_config().await;
    if config.region().is_none() {
        config = config.into_builder().region(Region::new(DEFAULT_REGION)).build();
    }
    let hint = if endpoint_url_from_env().is_some() { ENDPOINT_HINT } else { LOCAL_HINT };
    match config.credentials_provider() {
        None => return Err(AwsSetupError::NoCredentials { reason: "no credentials provider".into(), hint }),
        Some(provider) => {
            if let Err(e) = provider.provide_credentials().await {
                return Err(AwsSetupError::NoCredentials { reason: e.to_string(), hint });
            }
        }
    }
    Ok(config)
}

/// The configured region (or [`DEFAULT_REGION`]).
pub fn region_of(config: &SdkConfig) -> String {
    config.region().map(|r| r.as_ref().to_owned()).unwrap_or_else(|| DEFAULT_REGION.to_owned())
}
