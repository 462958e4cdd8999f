//! `pipeline`: the pipeline's developer and operator tool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::SdkConfig;
use clap::{Parser, Subcommand};
use pipeline_cli::demo::{self, DemoOptions};
use pipeline_cli::esm::EmulatorOptions;
use pipeline_cli::inprocess::StackInvoker;
use pipeline_cli::invoke::LambdaApiInvoker;
use pipeline_cli::provision::ProvisionedStack;
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
    /// Run the whole pipeline once with sample traffic and print what
    /// happened: provision, start the mappings, write items (some invalid),
    /// send jobs (some poison), delete a few items, wait until everything
    /// settles, summarise. Exits non-zero if it does not settle.
    Demo {
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Stack name (`${AWS::StackName}` in the template).
        #[arg(long, default_value = "pipeline-demo")]
        stack_name: String,
        /// Valid items to write.
        #[arg(long, default_value_t = 25)]
        items: usize,
        /// Lambda Invoke API endpoint serving the functions; in-process
        /// without it.
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
            let (sdk, template, stack) = provisioned(&template, stack_name).await?;
            println!("{}", local::describe(&stack));
            let signal = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            // The one place that picks how functions are invoked.
            let report = match invoke_endpoint {
                Some(url) => {
                    let invoker = LambdaApiInvoker::new(&url, local::function_names(&template))?;
                    local::up(&sdk, &stack, invoker, EmulatorOptions::default(), signal).await?
                }
                None => {
                    let invoker = StackInvoker::for_stack(&sdk, &stack)?;
                    local::up(&sdk, &stack, invoker, EmulatorOptions::default(), signal).await?
                }
            };
            println!("{report}");
            Ok(())
        }
        Command::Local { command: LocalCommand::Demo { template, stack_name, items, invoke_endpoint } } => {
            let (sdk, template, stack) = provisioned(&template, stack_name).await?;
            println!("{}", local::describe(&stack));
            let options = DemoOptions { items, ..DemoOptions::default() };
            let (summary, _report) = match invoke_endpoint {
                Some(url) => {
                    let invoker = LambdaApiInvoker::new(&url, local::function_names(&template))?;
                    demo::run(&sdk, &stack, Arc::new(invoker), options).await?
                }
                None => demo::run(&sdk, &stack, Arc::new(StackInvoker::for_stack(&sdk, &stack)?), options).await?,
            };
            println!("{summary}");
            if !summary.settled {
                return Err("the pipeline did not settle before the deadline (see the counts above)".into());
            }
            Ok(())
        }
    }
}

/// Loads the template and provisions it on the configured endpoint.
async fn provisioned(
    template: &Path,
    stack_name: String,
) -> Result<(SdkConfig, Template, ProvisionedStack), Box<dyn std::error::Error>> {
    let template = Template::from_path(template)?;
    if aws::endpoint_url_from_env().is_none() {
        tracing::warn!("AWS_ENDPOINT_URL is not set: resources will be created in the real AWS account");
    }
    let sdk = aws::load_sdk_config().await?;
    let ctx = StackContext::local(stack_name, aws::region_of(&sdk));
    let stack = provision::provision(&sdk, &template, &ctx).await?;
    Ok((sdk, template, stack))
}
