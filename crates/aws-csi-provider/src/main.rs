//! The `aws-csi-provider` daemon entry point (thin): parse flags, log, run until a signal.

use clap::Parser;

use aws_csi_provider::daemon::{Args, init_logging, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
