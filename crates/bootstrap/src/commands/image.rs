//! `bootstrap image push` and `bootstrap image inspect`: the provider image into a registry
//! the nodes can pull from (ECR included), and what a registry serves for a reference.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::ExitStatus;
use crate::cli::{AwsArgs, ImageInspectArgs, ImagePushArgs, OutputFormat};
use crate::error::StepError;
use crate::image::{self, Credentials, ImageError, ImageRef, PushReport, RegistryKind};
use crate::plan::Executor;
use crate::ui::{Printer, render_error};

/// What `image push --output json` prints.
#[derive(Debug, Serialize)]
pub struct PushOutput<'a> {
    /// The reference to pass as `--provider-image` (pinned to the digest).
    pub provider_image: String,
    #[serde(flatten)]
    pub report: &'a PushReport,
}

/// What `image inspect --output json` prints.
#[derive(Debug, Serialize)]
pub struct InspectOutput {
    pub image: String,
    pub pinned: String,
    pub media_type: String,
    pub platforms: Vec<String>,
    pub credentials: String,
}

/// AWS configuration only for ECR references (nothing is loaded for other registries).
/// An image reference parsed, and the credentials its registry wants.
async fn reference_and_credentials(
    raw: &str,
    aws: &AwsArgs,
) -> Result<(ImageRef, Credentials), ImageError> {
    let reference = ImageRef::parse(raw)?;
    let (region, profile) = (aws.region.as_deref(), aws.profile.as_deref());
    let credentials = credentials_for(&reference, region, profile).await?;
    Ok((reference, credentials))
}

async fn credentials_for(
    reference: &ImageRef,
    region: Option<&str>,
    profile: Option<&str>,
) -> Result<Credentials, ImageError> {
    let credentials = Credentials::default();
    let RegistryKind::Ecr {
        region: registry_region,
        ..
    } = reference.kind()
    else {
        return Ok(credentials);
    };
    let region = region.unwrap_or(&registry_region);
    let config = crate::aws::load_config(Some(region), profile)
        .await
        .map_err(|e| ImageError::Credentials {
            registry: reference.registry().to_string(),
            from: "the AWS configuration".into(),
            reason: e.to_string(),
        })?;
    Ok(credentials.with_aws(config))
}

fn image_failure(printer: &Printer, e: &ImageError) -> ExitStatus {
    printer.error(&render_error(e, e.hint().as_deref()));
    match e {
        ImageError::InvalidReference { .. } | ImageError::Layout { .. } => ExitStatus::UserError,
        _ => ExitStatus::Failure,
    }
}

/// Pushes the layout and prints the `--provider-image` to use.
pub async fn push(args: &ImagePushArgs, printer: &Printer) -> ExitStatus {
    let (target, credentials) = match reference_and_credentials(&args.to, &args.aws).await {
        Ok(found) => found,
        Err(e) => return image_failure(printer, &e),
    };
    let plan = match crate::resources::image_push::plan_push(
        &args.from,
        args.tag.as_deref(),
        &target,
        &credentials,
        args.cluster.as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return image_failure(printer, &e),
    };
    if !args.dry_run {
        printer.status(&format!(
            "pushing {} to {}",
            args.from.display(),
            plan.target
        ));
    }
    let registry = crate::resources::image_push::Registry::new(&credentials, &plan.target);
    let exec = Executor::new(
        args.dry_run,
        Some(&registry),
        Instant::now() + Duration::from_secs(3600),
    );
    let (_, error) = exec.run_graph(plan.graph(), &()).await;
    if let Some((_, e)) = error {
        return super::fail(printer, &e);
    }
    if args.dry_run {
        let calls: Vec<String> = exec.journal();
        if args.output == OutputFormat::Json {
            printer.json_value(&serde_json::json!({"dryRun": true, "target": plan.target.to_string(), "calls": calls}));
        } else {
            printer.text(&format!(
                "would push {} to {}:\n{}",
                args.from.display(),
                plan.target,
                calls.iter().map(|c| format!("  {c}\n")).collect::<String>()
            ));
        }
        return ExitStatus::Success;
    }
    let Some(mut report) = registry.pushed() else {
        return super::fail(printer, &StepError::problem("the push reported nothing"));
    };
    report.ecr_repository_created = plan.creates_repository.clone();
    if args.output == OutputFormat::Json {
        printer.json_value(&PushOutput {
            provider_image: report.image(),
            report: &report,
        });
    } else {
        if let Some(repo) = &report.ecr_repository_created {
            printer.status(&format!(
                "created ECR repository {repo} (tagged as bootstrap's, scan on push)"
            ));
        }
        let platforms: Vec<String> = report.platforms.iter().map(ToString::to_string).collect();
        printer.status(&format!(
            "pushed {} ({}; {} blob(s) uploaded, {} already there)",
            report.target,
            platforms.join(", "),
            report.blobs_uploaded,
            report.blobs_present
        ));
        printer.text(&format!("--provider-image {}\n", report.image()));
    }
    ExitStatus::Success
}

/// Resolves the reference, lists its platforms, and checks `--arch` like `up` does.
pub async fn inspect(args: &ImageInspectArgs, printer: &Printer) -> ExitStatus {
    let (reference, credentials) = match reference_and_credentials(&args.image, &args.aws).await {
        Ok(found) => found,
        Err(e) => return image_failure(printer, &e),
    };
    let archs = args.archs.iter().cloned().collect();
    let report = match image::check(&reference, &archs, &credentials).await {
        Ok(r) => r,
        Err(e) => return image_failure(printer, &e),
    };
    let out = InspectOutput {
        image: reference.to_string(),
        pinned: report.pinned(),
        media_type: report.media_type.clone(),
        platforms: report.platforms.iter().map(ToString::to_string).collect(),
        credentials: report.auth.to_string(),
    };
    if args.output == OutputFormat::Json {
        printer.json_value(&out);
    } else {
        printer.text(&format!(
            "{}\n  media type: {}\n  platforms:  {}\n  credentials: {}\n",
            out.pinned,
            out.media_type,
            out.platforms.join(", "),
            out.credentials
        ));
    }
    ExitStatus::Success
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{AuthSource, Platform};

    #[test]
    fn push_json_is_the_pinned_reference_then_the_report() {
        let report = PushReport {
            target: ImageRef::parse("registry.example/team/app:1").expect("reference"),
            digest: "sha256:abc".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            platforms: [("amd64", None), ("arm64", Some("v8"))]
                .into_iter()
                .map(|(architecture, variant)| Platform {
                    os: "linux".into(),
                    architecture: architecture.into(),
                    variant: variant.map(str::to_string),
                })
                .collect(),
            blobs_uploaded: 3,
            blobs_present: 1,
            ecr_repository_created: None,
            auth: AuthSource::Anonymous,
        };
        let out = PushOutput {
            provider_image: report.image(),
            report: &report,
        };
        assert_eq!(
            serde_json::to_string(&out).expect("json"),
            concat!(
                r#"{"provider_image":"registry.example/team/app:1@sha256:abc","digest":"sha256:abc","#,
                r#""platforms":["linux/amd64","linux/arm64/v8"],"blobs_uploaded":3,"blobs_present":1,"#,
                r#""ecr_repository_created":null}"#
            )
        );
    }
}
