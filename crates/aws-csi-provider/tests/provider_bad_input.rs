//! The provider's bad-input corpus: MountRequest attributes and SecretProviderClass parameters
//! the driver may hand over, each listed with the gRPC code and the words its error must
//! carry; nothing is written for any of them and no secret or token reaches an error, the log
//! or the metrics. (`provider_proptest.rs` fuzzes the same parsers.)
//! `BOOTSTRAP_BAD_INPUT_PROVIDER_REPORT=FILE` writes the corpus as the markdown table of
//! bench/RESULTS.md.

mod provider_support;

use aws_csi_provider::mount::MountConfig;
use provider_support::fixtures::*;
use provider_support::*;
use tonic::Code;

/// Attributes with Pod Identity, the region, these objects and both tokens.
fn with_objects(objects: &str) -> String {
    pod_identity_attrs(objects)
}

/// Mounts `api` unless `params` name other objects.
fn with_params(params: &[(&str, &str)]) -> String {
    attrs_with(params, API_OBJECT, &both_tokens())
}

const API_OBJECT: &str = "- {objectName: api, objectType: secretsmanager}";

struct Bad {
    input: &'static str,
    attributes: String,
    code: Code,
    expect: &'static [&'static str],
}

fn corpus() -> Vec<Bad> {
    let huge = format!(
        "- {{objectName: api, objectType: secretsmanager, objectAlias: a}}\n{}",
        "#".repeat(1 << 20)
    );
    vec![
        Bad {
            input: "attributes are not JSON",
            attributes: "{not json".into(),
            code: Code::InvalidArgument,
            expect: &["attributes"],
        },
        Bad {
            input: "attributes are a JSON array",
            attributes: "[]".into(),
            code: Code::InvalidArgument,
            expect: &["attributes"],
        },
        Bad {
            input: "usePodIdentity \"yes\"",
            attributes: with_params(&[("usePodIdentity", "yes")]),
            code: Code::InvalidArgument,
            expect: &["\"yes\"", "usePodIdentity"],
        },
        Bad {
            input: "objects not YAML",
            attributes: with_objects("- [unclosed"),
            code: Code::InvalidArgument,
            expect: &["objects"],
        },
        Bad {
            input: "objects over 1 MiB",
            attributes: with_objects(&huge),
            code: Code::InvalidArgument,
            expect: &["objects"],
        },
        Bad {
            input: "unknown objectType",
            attributes: with_objects("- {objectName: api, objectType: kms}"),
            code: Code::InvalidArgument,
            expect: &["kms"],
        },
        Bad {
            input: "empty objectName",
            attributes: with_objects("- {objectName: '', objectType: secretsmanager}"),
            code: Code::InvalidArgument,
            expect: &["objectName"],
        },
        Bad {
            input: "alias traversal ../../etc/passwd",
            attributes: with_objects(
                "- {objectName: api, objectType: secretsmanager, objectAlias: ../../etc/passwd}",
            ),
            code: Code::InvalidArgument,
            expect: &[".._.._etc_passwd", "not allowed"],
        },
        Bad {
            input: "alias a/../../x with pathTranslation False (sub-directories kept)",
            attributes: with_params(&[
                ("pathTranslation", "False"),
                (
                    "objects",
                    "- {objectName: prod/db, objectType: secretsmanager, objectAlias: a/../../x}",
                ),
            ]),
            code: Code::InvalidArgument,
            expect: &["a/../../x", "path traversal"],
        },
        Bad {
            input: "alias the atomic writer reserves (..data)",
            attributes: with_objects(
                "- {objectName: api, objectType: secretsmanager, objectAlias: ..data}",
            ),
            code: Code::InvalidArgument,
            expect: &["..data"],
        },
        Bad {
            input: "two objects with one file name",
            attributes: with_objects(
                "- {objectName: api, objectType: secretsmanager, objectAlias: a}\n- {objectName: prod/db, objectType: secretsmanager, objectAlias: a}",
            ),
            code: Code::InvalidArgument,
            expect: &["\"a\""],
        },
        Bad {
            input: "filePermission 999",
            attributes: with_objects(
                "- {objectName: api, objectType: secretsmanager, filePermission: '999'}",
            ),
            code: Code::InvalidArgument,
            expect: &["999"],
        },
        Bad {
            input: "jmesPath alias traversal",
            attributes: with_objects(
                "- {objectName: prod/db, objectType: secretsmanager, jmesPath: [{path: password, objectAlias: ../x}]}",
            ),
            code: Code::InvalidArgument,
            expect: &["../x"],
        },
        Bad {
            input: "jmesPath on a secret that is not JSON",
            attributes: with_objects(
                "- {objectName: plain, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a}]}",
            ),
            code: Code::InvalidArgument,
            expect: &["not valid JSON", "jmesPath"],
        },
        Bad {
            input: "pathTranslation of two characters",
            attributes: with_params(&[("pathTranslation", "ab")]),
            code: Code::InvalidArgument,
            expect: &["pathTranslation"],
        },
        Bad {
            input: "no token for pods.eks.amazonaws.com",
            attributes: attrs_with(
                &[],
                API_OBJECT,
                &format!(
                    r#"{{"sts.amazonaws.com":{{"token":"{STS_TOKEN}","expirationTimestamp":"x"}}}}"#
                ),
            ),
            code: Code::InvalidArgument,
            expect: &["tokenRequests", "pods.eks.amazonaws.com"],
        },
        Bad {
            input: "tokens attribute not JSON",
            attributes: attrs_with(&[], API_OBJECT, "{oops"),
            code: Code::InvalidArgument,
            expect: &["token"],
        },
        Bad {
            input: "secret that does not exist",
            attributes: with_objects("- {objectName: nope, objectType: secretsmanager}"),
            code: Code::NotFound,
            expect: &["\"nope\"", "not found"],
        },
    ]
}

#[tokio::test]
async fn every_listed_bad_input_is_refused_clearly_and_leaks_nothing() {
    let (_agent, mut h) = with_agent(fake_aws(), MountConfig::default()).await;
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for b in corpus() {
        let e = match mount(&mut h, b.attributes.clone()).await {
            Ok(r) => {
                wrong.push(format!("{}: mounted {} file(s)", b.input, r.files.len()));
                continue;
            }
            Err(e) => e,
        };
        let message = e.message().to_string();
        if e.code() != b.code || !b.expect.iter().all(|w| message.contains(w)) {
            wrong.push(format!("{}: {:?} {message}", b.input, e.code()));
        }
        rows.push(format!(
            "| {} | {:?} | {} |",
            b.input,
            e.code(),
            message.replace('|', "\\|")
        ));
        errors.push(message);
    }
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );
    assert_no_secret_leak(&h, &errors);
    if let Some(path) = std::env::var_os("BOOTSTRAP_BAD_INPUT_PROVIDER_REPORT") {
        let mut table = String::from("| Input | gRPC code | Error |\n|---|---|---|\n");
        for r in rows {
            table.push_str(&r);
            table.push('\n');
        }
        std::fs::write(path, table).expect("write the report");
    }
}
