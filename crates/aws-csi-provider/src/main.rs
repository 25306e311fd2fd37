//! The `aws-csi-provider` daemon entry point (thin): parse flags, log, run until a signal.

use clap::Parser;

use aws_csi_provider::daemon::{Args, init_logging, run};
use aws_csi_provider::runtime;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    runtime::tune_allocator();
    init_logging(args.log_format);
    let result = runtime::build(args.worker_threads)
        .map_err(|e| format!("starting the async runtime: {e}"))
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
