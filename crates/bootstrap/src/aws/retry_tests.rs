//! The SDK's retries on bootstrap's one schedule, against mocked answers on a paused clock:
//! a fault that outlasts 10 s is ridden out, a persistent one fails within 20 s, once.

use std::time::Duration;

use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::{ErrorKind, classify, retry_config, retry_partition};

fn internal_error() -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        StatusCode::try_from(500).expect("status"),
        SdkBody::from(r#"{"__type":"ServerException","message":"internal"}"#),
    )
}

fn describe_ok() -> aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput {
    aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput::builder()
        .cluster(aws_sdk_eks::types::Cluster::builder().name("demo").build())
        .build()
}

/// Fails the first `failures` calls with a 500, then answers; returns the client and the rule.
fn eks_failing(failures: usize) -> (aws_sdk_eks::Client, aws_smithy_mocks::Rule) {
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .http_response(internal_error)
        .times(failures)
        .output(describe_ok)
        .build();
    let client = mock_client!(aws_sdk_eks, RuleMode::Sequential, [&rule], |c| {
        c.retry_config(retry_config())
            .retry_partition(retry_partition())
    });
    (client, rule)
}

#[tokio::test(start_paused = true)]
async fn eight_failures_over_more_than_ten_seconds_are_ridden_out() {
    let (eks, rule) = eks_failing(8);
    let started = tokio::time::Instant::now();
    let out = eks.describe_cluster().name("demo").send().await;
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(rule.num_calls(), 9);
    let slept = started.elapsed();
    assert!(
        slept > Duration::from_secs(10) && slept <= Duration::from_secs(20),
        "{slept:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_persistent_fault_fails_within_twenty_seconds_naming_the_call() {
    let (eks, rule) = eks_failing(100);
    let started = tokio::time::Instant::now();
    let err = eks
        .describe_cluster()
        .name("demo")
        .send()
        .await
        .expect_err("never answers");
    assert_eq!(rule.num_calls(), 9, "nine attempts, no more");
    assert!(started.elapsed() <= Duration::from_secs(20));
    let err = classify("describe", "EKS cluster demo", err);
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.to_string().contains("EKS cluster demo"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn hundreds_of_throttled_calls_never_run_the_retry_quota_dry() {
    // The standard quota (500 tokens, 5 a retry) would refuse retries after ~100 of them.
    let partition = retry_partition();
    for _ in 0..40 {
        let rule = mock!(aws_sdk_eks::Client::describe_cluster)
            .sequence()
            .http_response(internal_error)
            .times(8)
            .output(describe_ok)
            .build();
        let p = partition.clone();
        let eks = mock_client!(aws_sdk_eks, RuleMode::Sequential, [&rule], |c| {
            c.retry_config(retry_config()).retry_partition(p.clone())
        });
        eks.describe_cluster()
            .name("demo")
            .send()
            .await
            .expect("retried to success");
        assert_eq!(rule.num_calls(), 9);
    }
}

#[tokio::test]
async fn only_a_successful_answer_marks_the_runs_progress() {
    let progress = super::Progress::default();
    let started = std::time::Instant::now();
    let ok = || {
        aws_smithy_runtime_api::http::Response::new(
            StatusCode::try_from(200).expect("status"),
            SdkBody::from(r#"{"cluster":{"name":"demo"}}"#),
        )
    };
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .http_response(internal_error)
        .http_response(ok)
        .build();
    let eks = mock_client!(aws_sdk_eks, RuleMode::Sequential, [&rule], |c| {
        c.retry_config(aws_smithy_types::retry::RetryConfig::disabled())
            .interceptor(progress.interceptor())
    });
    assert!(eks.describe_cluster().name("demo").send().await.is_err());
    assert!(!progress.since(started), "a 500 is no progress");
    let out = eks.describe_cluster().name("demo").send().await;
    assert!(out.is_ok(), "{out:?}");
    assert!(progress.since(started), "a 200 is");
}
