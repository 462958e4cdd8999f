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
use pipeline_cli::ops::filter::Filter;
use pipeline_cli::ops::produce::PutMode;
use pipeline_cli::ops::redrive::RedriveOptions;
use pipeline_cli::ops::replay::Replayer;
use pipeline_cli::ops::transfer::ExportOptions;
use pipeline_cli::ops::{self, OpsContext};
use pipeline_cli::provision::ProvisionedStack;
use pipeline_cli::template::{StackContext, Template, DEFAULT_STACK_NAME};
use pipeline_cli::{aws, local, provision};
use tokio_util::sync::CancellationToken;

/// `println!` that treats a closed stdout (`pipeline dlq peek ... | head`)
/// as the end of the output rather than a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! outp {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

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
    /// Inspect and redrive dead-letter queues (docs/operators.md).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Send jobs, one JSON object per line (`{"type":"process_item","item_id":"42","version":1}`),
    /// from FILE or stdin. Bad lines are reported with their number and skipped.
    Send {
        /// The queue: URL, ARN, name, or template logical id with --stack-name.
        queue: String,
        /// JSON Lines file; `-` or absent: stdin.
        file: Option<PathBuf>,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Write items, one JSON object per line (a stored item, or the short form
    /// `{"id":"42","name":"Lamp","price":"19.99","quantity":2}`), from FILE or stdin.
    PutItems {
        /// JSON Lines file; `-` or absent: stdin.
        file: Option<PathBuf>,
        /// The table; default: the ItemsTable of --stack-name.
        #[arg(long)]
        table: Option<String>,
        /// Only create items that do not exist yet (existing ones are reported, not overwritten).
        #[arg(long, conflicts_with = "update")]
        create: bool,
        /// Replace existing items and make them PENDING again at the next version (processed again),
        /// if they are still at the line's `version` (default: the stored version).
        #[arg(long)]
        update: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
}

/// Naming queues and tables by the template's logical ids.
#[derive(Debug, Clone, clap::Args)]
struct StackArgs {
    /// Resolve logical ids (e.g. ProcessingDeadLetterQueue) against this stack of the
    /// template, read-only; also configures the stream processor for replays.
    #[arg(long)]
    stack_name: Option<String>,
    /// The SAM template (with --stack-name).
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Depth, in-flight, the oldest message and when SQS deletes it, counts by error kind,
    /// processor and source (messages are read and made visible again at once).
    Stats {
        /// The dead-letter queue: URL, ARN, name, or logical id with --stack-name.
        queue: String,
        /// Read at most this many messages for the counts.
        #[arg(long, default_value_t = 1000)]
        scan: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Show messages and their decoded envelopes without consuming them.
    Peek {
        /// The dead-letter queue.
        queue: String,
        /// How many messages.
        #[arg(short = 'n', long = "count", default_value_t = 10)]
        n: usize,
        /// Only messages matching KEY=VALUE[,VALUE] (kind, processor, source, older-than, newer-than).
        #[arg(long = "filter")]
        filters: Vec<Filter>,
        /// JSON output (an array).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Move messages back to their source queue (or --to), replaying stream records and
    /// OnFailure ranges through the stream processor. Sends first, deletes after.
    Redrive {
        /// The dead-letter queue (or a stream mapping's OnFailure queue).
        queue: String,
        /// Send every message to this queue instead of its source.
        #[arg(long)]
        to: Option<String>,
        /// Move at most N messages.
        #[arg(long)]
        max: Option<usize>,
        /// At most this many messages per second.
        #[arg(long)]
        rate: Option<f64>,
        /// Messages per receive, 1-10 (default 10, or the rate rounded down): a crash
        /// duplicates at most one batch.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Only messages matching KEY=VALUE[,VALUE] (kind, processor, source, older-than, newer-than).
        #[arg(long = "filter")]
        filters: Vec<Filter>,
        /// Report what would move where; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Use StartMessageMoveTask (falls back to a client-side move where unsupported).
        #[arg(long)]
        server_side: bool,
        /// Seconds a received batch stays hidden (longer than one batch's work).
        #[arg(long, default_value_t = 120)]
        visibility_timeout: u64,
        /// Allow --to to name a queue that does not use this dead-letter queue.
        #[arg(long)]
        allow_any_target: bool,
        /// Delete OnFailure documents whose range is partly gone from the stream, after replaying
        /// what is left (the gap is reported).
        #[arg(long)]
        drop_trimmed: bool,
        /// Lambda Invoke API endpoint serving the stream processor (e.g. `cargo lambda watch`);
        /// without it, it runs in-process (needs --stack-name).
        #[arg(long)]
        invoke_endpoint: Option<String>,
        /// JSON summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Write messages to FILE as JSON Lines (one message with its attributes per line).
    Export {
        /// The queue.
        queue: String,
        /// The file (`-`: stdout).
        file: PathBuf,
        /// At most N messages.
        #[arg(long)]
        max: Option<usize>,
        /// Only messages matching KEY=VALUE[,VALUE].
        #[arg(long = "filter")]
        filters: Vec<Filter>,
        /// Delete each message once it is written and synced to disk.
        #[arg(long)]
        delete: bool,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Send the messages of an export FILE to a queue (body and message attributes).
    Import {
        /// The queue.
        queue: String,
        /// The export file (`-`: stdin).
        file: PathBuf,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// Delete every message of the queue. Tells how many first; deletes only with --yes.
    Purge {
        /// The queue.
        queue: String,
        /// Really delete them.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        stack: StackArgs,
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
    /// Only create the template's tables and queues and print them. With
    /// --env-dir, also write each function's resolved environment to
    /// DIR/<binary>.env, for `cargo lambda watch --env-file`.
    Provision {
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        /// Stack name (`${AWS::StackName}` in the template).
        #[arg(long, default_value = DEFAULT_STACK_NAME)]
        stack_name: String,
        /// Where to write the functions' environment files.
        #[arg(long)]
        env_dir: Option<PathBuf>,
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
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Local { command } => local_command(command).await.map(|()| ExitCode::SUCCESS),
        Command::Dlq { command } => dlq_command(command).await,
        Command::Send { queue, file, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            let lines = ops::input::read_lines(file.as_deref())?;
            let report = ops::produce::send_jobs(&ctx, &queue, &lines).await;
            outp!("{}", report.summary("sent", "job(s)", &queue.name));
            Ok(exit(report.ok()))
        }
        Command::PutItems { file, table, create, update, stack } => {
            let ctx = ops_context(&stack).await?;
            let table = match (table, &ctx.stack) {
                (Some(t), _) => t,
                (None, Some(s)) => match s.tables.get("ItemsTable").or_else(|| s.tables.values().next()) {
                    Some(t) => t.name.clone(),
                    None => return Err(format!("stack {} has no table", s.context.stack_name).into()),
                },
                (None, None) => return Err("name the table: --table NAME, or --stack-name for its ItemsTable".into()),
            };
            let mode = if create {
                PutMode::Create
            } else if update {
                PutMode::Update
            } else {
                PutMode::Put
            };
            let lines = ops::input::read_lines(file.as_deref())?;
            let ddb = aws_sdk_dynamodb::Client::new(&ctx.sdk);
            let report = ops::produce::put_items(&ddb, &table, &lines, mode).await;
            outp!("{}", report.summary("wrote", "item(s)", &table));
            Ok(exit(report.ok()))
        }
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The SDK configuration, and the stack when `--stack-name` is given
/// (resolved read-only: nothing is created).
async fn ops_context(args: &StackArgs) -> Result<OpsContext, Box<dyn std::error::Error>> {
    let sdk = aws::load_sdk_config().await?;
    let stack = match &args.stack_name {
        None => None,
        Some(name) => {
            let template = Template::from_path(&args.template)?;
            let ctx = StackContext::local(name.clone(), aws::region_of(&sdk));
            Some(ops::stack::resolve_stack(&sdk, &template, &ctx).await?)
        }
    };
    Ok(OpsContext::new(&sdk, stack))
}

/// A token cancelled by Ctrl-C: long commands stop after the batch in
/// progress.
fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the batch in progress (Ctrl-C again to abort)");
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    token
}

async fn dlq_command(command: DlqCommand) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        DlqCommand::Stats { queue, scan, json, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            let stats = ops::inspect::stats(&ctx, &queue, scan).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&stats.to_json())?);
            } else {
                outp!("{stats}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Peek { queue, n, filters, json, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            let messages = ops::inspect::peek(&ctx, &queue, n, &filters).await?;
            let now = chrono::Utc::now();
            if json {
                let all: Vec<serde_json::Value> = messages.iter().map(|m| ops::inspect::message_json(m, now)).collect();
                outln!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                outp!("{}", ops::inspect::table(&messages, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Redrive {
            queue,
            to,
            max,
            rate,
            batch_size,
            filters,
            dry_run,
            server_side,
            visibility_timeout,
            allow_any_target,
            drop_trimmed,
            invoke_endpoint,
            json,
            stack,
        } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
            let replayer = match (&invoke_endpoint, &ctx.stack) {
                (Some(url), _) => Some(Replayer::endpoint(&ctx, url)?),
                // A stack without the stream processor can still have its
                // SQS messages redriven: stream records are then skipped.
                (None, Some(_)) => match Replayer::in_process(&ctx) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        eprintln!("note: stream records cannot be replayed in-process: {e}");
                        None
                    }
                },
                (None, None) => None,
            };
            let options = RedriveOptions {
                to,
                max,
                rate,
                batch_size,
                filters,
                dry_run,
                server_side,
                visibility_timeout: std::time::Duration::from_secs(visibility_timeout.max(1)),
                allow_any_target,
                drop_trimmed,
                cancel: ctrl_c_token(),
            };
            let report = ops::redrive::redrive(&ctx, &queue, replayer.as_ref(), &options).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                outp!("{report}");
            }
            Ok(exit(report.ok()))
        }
        DlqCommand::Export { queue, file, max, filters, delete, force, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            let options = ExportOptions { max, filters, delete, force };
            let report = ops::transfer::export(&ctx, &queue, &file, &options).await?;
            let summary = format!(
                "exported {} message(s) of {} to {}{}{}",
                report.written,
                queue.name,
                file.display(),
                if delete { format!(", deleted {} from the queue", report.deleted) } else { String::new() },
                if report.skipped > 0 { format!(", {} not matching --filter", report.skipped) } else { String::new() }
            );
            // With `-` the lines go to stdout: the summary goes to stderr.
            if file == Path::new("-") {
                eprintln!("{summary}");
            } else {
                outln!("{summary}");
            }
            if report.not_deleted > 0 {
                eprintln!(
                    "warning: {} message(s) were exported but could not be deleted; they are still in the queue",
                    report.not_deleted
                );
            }
            Ok(exit(report.not_deleted == 0))
        }
        DlqCommand::Import { queue, file, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            let lines = ops::input::read_lines(Some(&file))?;
            let report = ops::transfer::import(&ctx, &queue, lines).await;
            outln!(
                "imported {} message(s) into {}, skipped {} bad line(s), failed {}",
                report.sent,
                queue.name,
                report.bad_lines.len(),
                report.failed.len()
            );
            for (n, why) in report.bad_lines.iter().chain(report.failed.iter()) {
                outln!("  line {n}: {why}");
            }
            Ok(exit(report.bad_lines.is_empty() && report.failed.is_empty()))
        }
        DlqCommand::Purge { queue, yes, stack } => {
            let ctx = ops_context(&stack).await?;
            let queue = ctx.queue(&queue).await?;
            if !yes {
                let f = ctx.facts(&queue).await?;
                outln!(
                    "{} holds {} message(s) ({} visible, {} in flight, {} delayed). Nothing was deleted: to delete \
                     them all, run again with --yes",
                    queue.name,
                    f.visible + f.in_flight + f.delayed,
                    f.visible,
                    f.in_flight,
                    f.delayed
                );
                return Ok(ExitCode::FAILURE);
            }
            let f = ops::transfer::purge(&ctx, &queue).await?;
            outln!(
                "purged {}: {} message(s) deleted ({} visible, {} in flight, {} delayed; SQS may take up to 60 s)",
                queue.name,
                f.visible + f.in_flight + f.delayed,
                f.visible,
                f.in_flight,
                f.delayed
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn local_command(command: LocalCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        LocalCommand::Up { template, stack_name, invoke_endpoint } => {
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
        LocalCommand::Provision { template, stack_name, env_dir } => {
            let (_, _, stack) = provisioned(&template, stack_name).await?;
            println!("{}", local::describe(&stack));
            if let Some(dir) = env_dir {
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                for f in stack.functions.values() {
                    let name = f.binary.clone().unwrap_or_else(|| f.logical_id.clone());
                    let path = dir.join(format!("{name}.env"));
                    let text: String = f.environment.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    println!("wrote {}", path.display());
                }
            }
            Ok(())
        }
        LocalCommand::Demo { template, stack_name, items, invoke_endpoint } => {
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
