//! The commands: each takes its own resolved settings and one printer, composes the target,
//! the resources and the executor, and returns how the process should exit.

pub mod controller;
pub mod doctor;
pub mod down;
pub mod image;
pub mod migrate;
pub mod onboard;
pub mod probe;
pub mod up;

use std::process::ExitCode;

use crate::error::StepError;
use crate::ui::{Printer, render_error};

/// How a command ended (uv's split): a user error is not a failure of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for was done (or planned).
    Success,
    /// A step failed, or verification did not pass: exit 1.
    Failure,
    /// Bad input (flags, values, files): exit 2, like clap's usage errors.
    UserError,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        match status {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::UserError => ExitCode::from(2),
        }
    }
}

/// Prints a failure (`error:`, `Caused by:`, `hint:`) and returns [`ExitStatus::Failure`].
pub fn fail(printer: &Printer, err: &StepError) -> ExitStatus {
    printer.error(&render_error(err, err.hint().as_deref()));
    ExitStatus::Failure
}

/// Prints a user error and returns [`ExitStatus::UserError`].
pub fn user_error(printer: &Printer, err: &(dyn std::error::Error + 'static)) -> ExitStatus {
    printer.error(&render_error(err, None));
    ExitStatus::UserError
}

/// A command that needs AWS and the cluster (`down`, `migrate`, `doctor`): credentials,
/// preflight, and the backends its operations run on.
/// The AWS clients of a cluster's settings (`None` offline, for a dry run), and a note on how
/// they were found.
pub async fn connect(
    target: &crate::config::ClusterSettings,
    dry_run: bool,
) -> Result<(Option<crate::aws::Clients>, Option<String>), StepError> {
    let (region, profile) = (target.region.as_deref(), target.profile.as_deref());
    crate::target::connect(region, profile, dry_run).await
}

pub async fn connect_cluster(
    target: &crate::config::ClusterSettings,
    command: &str,
) -> Result<(crate::target::Target, crate::interp::Backends), StepError> {
    let (aws, _) = connect(target, false).await?;
    let aws = aws.ok_or_else(|| {
        StepError::problem(format!("{command} needs AWS access"))
            .with_hint("pass --region and --profile, or set AWS_REGION and AWS credentials")
    })?;
    let (t, _) = crate::target::preflight(aws, &target.cluster).await?;
    let backends = crate::interp::Backends::of(&t)?;
    Ok((t, backends))
}
