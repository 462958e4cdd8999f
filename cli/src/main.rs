//! `pipeline`: the pipeline's developer and operator tool.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pipeline_cli::esm::EmulatorOptions;
use pipeline_cli::invoke::LambdaApiInvoker;
use pipeline_cli::template::{StackContext, Template, DEFAULT_STACK_NAME};
use pipeline_cli::{aws, local, provision};

#[derive(Debug, Parser)]
#[command(name = "pipeline", version, about = "Run the pipeline locally; inspect and redrive its queues.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the stack locally.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Create the template's tables and queues on AWS_ENDPOINT_URL and run
    /// its DynamoDB Streams and SQS event source mappings until Ctrl-C.
    Up {
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Stack name (`${AWS::StackName}` in the template).
        #[arg(long, default_value = DEFAULT_STACK_NAME)]
        stack_name: String,
        /// Lambda Invoke API endpoint serving the functions, e.g. the URL of
        /// `cargo lambda watch` (http://127.0.0.1:9000). Without it the
        /// functions run in-process.
        #[arg(long)]
        invoke_endpoint: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Local { command: LocalCommand::Up { template, stack_name, invoke_endpoint } } => {
            let template = Template::from_path(&template)?;
            // The one place that picks how functions are invoked.
            let invoker = match invoke_endpoint {
                Some(url) => LambdaApiInvoker::new(&url, local::function_names(&template))?,
                // TODO(in-process invoker): call the processors' handlers
                // directly here instead of failing.
                None => {
                    return Err("in-process invocation not wired yet: pass --invoke-endpoint URL \
                                (e.g. http://127.0.0.1:9000 from `cargo lambda watch`)"
                        .into())
                }
            };
            if aws::endpoint_url_from_env().is_none() {
                tracing::warn!("AWS_ENDPOINT_URL is not set: resources will be created in the real AWS account");
            }
            let sdk = aws::load_sdk_config().await?;
            let ctx = StackContext::local(stack_name, aws::region_of(&sdk));
            let stack = provision::provision(&sdk, &template, &ctx).await?;
            println!("{}", local::describe(&stack));
            let signal = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let report = local::up(&sdk, &stack, invoker, EmulatorOptions::default(), signal).await?;
            println!("{report}");
            Ok(())
        }
    }
}
