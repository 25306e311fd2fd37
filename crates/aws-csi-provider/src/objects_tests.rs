//! Unit tests of the `objects` parser and its validations.

use super::*;

fn parse(yaml: &str) -> Result<Vec<ObjectSpec>, ObjectsError> {
    parse_objects(yaml, None, "us-east-1", None)
}

fn err(yaml: &str) -> String {
    match parse(yaml) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that each `(yaml, text)` is refused with an error that says `text`.
fn assert_refused(cases: &[(&str, &str)]) {
    for (yaml, text) in cases {
        let e = err(yaml);
        assert!(e.contains(text), "{yaml}: {e:?} does not say {text:?}");
    }
}

#[test]
fn names_aliases_and_translation() {
    let specs = parse(
        r#"
- objectName: "prod/db"
  objectType: secretsmanager
- objectName: "/app/param"
  objectType: ssmparameter
  objectVersion: 3
- objectName: "arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf"
  objectAlias: api
  objectVersionLabel: AWSPREVIOUS
  filePermission: "0600"
"#,
    )
    .expect("valid");
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[0].file_name, "prod_db");
    assert_eq!(specs[1].kind, ObjectKind::SsmParameter);
    assert_eq!(specs[1].file_name, "_app_param");
    assert_eq!(specs[1].object.version.as_deref(), Some("3"));
    assert_eq!(specs[2].kind, ObjectKind::SecretsManager);
    assert_eq!(specs[2].file_name, "api");
    assert_eq!(specs[2].mode, Some(0o600));
    assert_eq!(specs[2].object.label.as_deref(), Some("AWSPREVIOUS"));
}

#[test]
fn translation_off_keeps_directories() {
    let specs = parse_objects(
        "- {objectName: /a/b, objectType: ssmparameter}",
        Some("False"),
        "us-east-1",
        None,
    )
    .expect("valid");
    assert_eq!(specs[0].file_name, "a/b");
    let e = parse_objects(
        "- {objectName: a/../../etc, objectType: ssmparameter}",
        Some("False"),
        "us-east-1",
        None,
    );
    assert!(e.is_err());
}

#[test]
fn jmes_entries() {
    let specs = parse(
        r#"
- objectName: db
  objectType: secretsmanager
  filePermission: "0640"
  jmesPath:
    - {path: username, objectAlias: user}
    - {path: password, objectAlias: pass, filePermission: "0400"}
"#,
    )
    .expect("valid");
    let j = &specs[0].jmes;
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].mode, Some(0o640));
    assert_eq!(j[1].mode, Some(0o400));
    assert_refused(&[
        (
            "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: a}]}",
            "objectAlias",
        ),
        (
            "- {objectName: db, objectType: secretsmanager, jmesPath: [{objectAlias: a}]}",
            "path",
        ),
    ]);
}

#[test]
fn type_and_arn_rules() {
    assert_refused(&[
        ("- objectName: db", "objectType is required"),
        ("- {objectName: db, objectType: ssm}", "not one of"),
        (
            "- objectName: arn:aws:secretsmanager:eu-west-1:1:secret:x",
            "must match region",
        ),
        ("- objectName: arn:aws:s3:us-east-1:1:bucket", "service"),
        ("- objectName: 'arn:aws:secretsmanager'", "valid ARN"),
        (
            "- {objectName: 'arn:aws:ssm:us-east-1:1:parameter/x', objectType: secretsmanager}",
            "does not match",
        ),
        (
            "- {objectName: p, objectType: ssmparameter, objectVersion: 1, objectVersionLabel: l}",
            "both",
        ),
        (
            "- {objectType: secretsmanager}",
            "objectName must be specified",
        ),
    ]);
}

#[test]
fn traversal_and_duplicates() {
    assert_refused(&[
        (
            "- {objectName: db, objectType: secretsmanager, objectAlias: ../../etc/passwd}",
            "not allowed",
        ),
        (
            "- {objectName: db, objectType: secretsmanager, objectAlias: ..}",
            "not allowed",
        ),
        (
            "- {objectName: db, objectType: secretsmanager, objectAlias: \"a\\0b\"}",
            "NUL",
        ),
        (
            "- {objectName: db, objectType: secretsmanager}\n- {objectName: db, objectType: secretsmanager}",
            "already used",
        ),
        (
            "- {objectName: db, objectType: secretsmanager, objectAlias: x}\n- {objectName: y, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: x}]}",
            "already used",
        ),
    ]);
    // The same secret twice is fine with distinct aliases (e.g. two version labels).
    assert!(parse("- {objectName: db, objectType: secretsmanager, objectVersionLabel: AWSCURRENT, objectAlias: cur}\n- {objectName: db, objectType: secretsmanager, objectVersionLabel: AWSPREVIOUS, objectAlias: prev}").is_ok());
}

#[test]
fn failover_rules() {
    let y = "- {objectName: db, objectType: secretsmanager, objectAlias: db, failoverObject: {objectName: db2}}";
    assert!(parse(y).is_err(), "needs failoverRegion");
    let ok = parse_objects(y, None, "us-east-1", Some("us-west-2")).expect("valid");
    assert_eq!(ok[0].target(true).name, "db2");
    assert_eq!(ok[0].target(false).name, "db");
    let no_alias =
        "- {objectName: db, objectType: secretsmanager, failoverObject: {objectName: db2}}";
    assert!(parse_objects(no_alias, None, "us-east-1", Some("us-west-2")).is_err());
    let arn = "- {objectName: db, objectType: secretsmanager, objectAlias: d, failoverObject: {objectName: 'arn:aws:secretsmanager:us-east-1:1:secret:x'}}";
    let e = parse_objects(arn, None, "us-east-1", Some("us-west-2")).expect_err("region");
    assert!(e.to_string().contains("us-west-2"));
    let ver = "- {objectName: db, objectType: secretsmanager, objectAlias: d, objectVersion: v1, failoverObject: {objectName: db2, objectVersion: v2}}";
    assert!(parse_objects(ver, None, "us-east-1", Some("us-west-2")).is_err());
}

#[test]
fn malformed_yaml_is_an_error() {
    for bad in [
        "{}",
        "- [",
        "objectName: x",
        "- 42",
        ":\n:",
        "- objectName: [1, 2]",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        parse_objects(
            "- {objectName: a, objectType: secretsmanager}",
            Some("ab"),
            "r",
            None
        ),
        Err(ObjectsError::PathTranslation(_))
    ));
    assert!(
        err("- {objectName: a, objectType: secretsmanager, filePermission: '777'}")
            .contains("four octal")
    );
}

#[test]
fn empty_objects_mount_nothing_like_upstream() {
    for empty in ["", "   \n", "# nothing yet\n", "[]", "~"] {
        assert_eq!(parse(empty), Ok(Vec::new()), "{empty:?}");
    }
}

#[test]
fn keys_match_case_insensitively_like_upstream() {
    let specs = parse(
        r#"
- ObjectName: "prod/db"
  OBJECTTYPE: secretsmanager
  objectalias: db
  FilePermission: "0600"
  JMESPATH:
    - {PATH: user, ObjectAlias: u}
- objectName: p
  objectType: ssmparameter
  ObjectVersion: 3
  colour: blue
"#,
    )
    .expect("valid, as under upstream");
    assert_eq!(specs[0].object.name, "prod/db");
    assert_eq!(specs[0].kind, ObjectKind::SecretsManager);
    assert_eq!(specs[0].file_name, "db");
    assert_eq!(specs[0].mode, Some(0o600));
    assert_eq!(specs[0].jmes[0].path, "user");
    assert_eq!(specs[0].jmes[0].file_name, "u");
    assert_eq!(specs[1].object.version.as_deref(), Some("3"));
    // Go's encoding/json: the last of two spellings of one key wins.
    let specs = parse("- {objectName: a, ObjectName: b, objectType: secretsmanager}").expect("ok");
    assert_eq!(specs[0].object.name, "b");
    let failover = "- {objectName: db, objectType: secretsmanager, objectAlias: d, FailoverObject: {OBJECTNAME: db2}}";
    let specs = parse_objects(failover, None, "us-east-1", Some("us-west-2")).expect("ok");
    assert_eq!(specs[0].target(true).name, "db2");
}

#[test]
fn file_names_are_cleaned_like_upstream_and_reserved_names_refused() {
    let off = |yaml: &str| parse_objects(yaml, Some("False"), "us-east-1", None);
    let specs = off("- {objectName: ./a//b/./c, objectType: ssmparameter}").expect("cleaned");
    assert_eq!(specs[0].file_name, "a/b/c");
    let specs = off("- {objectName: x/..data, objectType: ssmparameter}").expect("nested is fine");
    assert_eq!(specs[0].file_name, "x/..data");
    for bad in [
        "..data",
        "..2026_12_01_10_00_00.1",
        "a/../../etc",
        "..",
        ".",
    ] {
        let yaml = format!("- {{objectName: '{bad}', objectType: ssmparameter}}");
        let e = off(&yaml).expect_err(bad).to_string();
        assert!(e.contains("not allowed"), "{bad}: {e}");
    }
}

#[test]
fn beyond_upstream_keys_parse_into_flags() {
    let specs = parse(
        r#"
- {objectName: teams/p/, objectType: secretsmanager, matchPrefix: true}
- {objectName: /t/q/, objectType: ssmparameter, MatchPrefix: "TRUE", recursive: "false", objectAlias: q}
- {objectName: db, objectType: secretsmanager, allKeys: True, optional: "true"}
- {objectName: plain, objectType: secretsmanager, optional: false, allKeys: "False"}
"#,
    )
    .expect("valid");
    assert_eq!(specs[0].expand, Expand::Prefix { recursive: true });
    assert_eq!(
        specs[0].file_name, "",
        "a prefix without alias writes at the root"
    );
    assert!(!specs[0].optional);
    assert_eq!(specs[1].expand, Expand::Prefix { recursive: false });
    assert_eq!(specs[1].file_name, "q");
    assert_eq!(
        specs[2].expand,
        Expand::AllKeys {
            translation: PathTranslation::Replace('_')
        }
    );
    assert!(specs[2].optional);
    assert_eq!(specs[3].expand, Expand::One);
    assert!(!specs[3].optional);
    // Without the new keys nothing changes (upstream's objects parse as before).
    let specs = parse("- {objectName: a, objectType: secretsmanager}").expect("valid");
    assert_eq!((specs[0].expand, specs[0].optional), (Expand::One, false));
}

#[test]
fn beyond_upstream_refusals_name_the_object_and_the_key() {
    let cases = [
        (
            "matchPrefix: \"yes\"",
            "matchPrefix \"yes\" is not a boolean; accepted values: true, false",
        ),
        ("optional: 1", "optional \"1\" is not a boolean"),
        ("allKeys: all", "allKeys \"all\" is not a boolean"),
        (
            "recursive: false",
            "recursive applies only with matchPrefix: true",
        ),
        (
            "matchPrefix: true, recursive: maybe",
            "recursive \"maybe\" is not a boolean",
        ),
        (
            "matchPrefix: true, jmesPath: [{path: a, objectAlias: a}]",
            "matchPrefix can't be combined with jmesPath",
        ),
        (
            "matchPrefix: true, allKeys: true",
            "matchPrefix can't be combined with allKeys",
        ),
        (
            "matchPrefix: true, objectVersion: v1",
            "matchPrefix can't be combined with objectVersion",
        ),
        (
            "matchPrefix: true, objectVersionLabel: AWSPREVIOUS",
            "matchPrefix can't be combined with objectVersionLabel",
        ),
        (
            "allKeys: true, jmesPath: [{path: a, objectAlias: a}]",
            "allKeys can't be combined with jmesPath",
        ),
    ];
    for (keys, want) in cases {
        let yaml = format!("- {{objectName: t/x, objectType: secretsmanager, {keys}}}");
        let e = err(&yaml);
        assert!(
            e.starts_with("object \"t/x\": ") && e.contains(want),
            "{keys}: {e}"
        );
    }
    let failover = "- {objectName: t/, objectType: secretsmanager, objectAlias: t, matchPrefix: true, failoverObject: {objectName: u/}}";
    let e = parse_objects(failover, None, "us-east-1", Some("us-west-2"))
        .expect_err("failover")
        .to_string();
    assert!(e.contains("\"t/\"") && e.contains("failoverObject"), "{e}");
    let arn = "- {objectName: 'arn:aws:secretsmanager:us-east-1:1:secret:t/', matchPrefix: true}";
    assert!(err(arn).contains("not an ARN"));
    let ssm = "- {objectName: t/, objectType: ssmparameter, matchPrefix: true}";
    assert!(err(ssm).contains("must start with /"));
    let alias =
        "- {objectName: t/, objectType: secretsmanager, matchPrefix: true, objectAlias: ../x}";
    assert!(err(alias).contains("not allowed"));
}

#[test]
fn prefix_directories_and_files_share_one_namespace() {
    // An alias used as a prefix's directory and as another object's file is refused early.
    let yaml = "- {objectName: t/, objectType: secretsmanager, matchPrefix: true, objectAlias: p}\n- {objectName: x, objectType: secretsmanager, objectAlias: p}";
    assert!(err(yaml).contains("already used"));
    // Two prefixes at the mount root are fine: their matches are checked once fetched.
    let yaml = "- {objectName: a/, objectType: secretsmanager, matchPrefix: true}\n- {objectName: b/, objectType: secretsmanager, matchPrefix: true}";
    assert_eq!(parse(yaml).expect("valid").len(), 2);
}
