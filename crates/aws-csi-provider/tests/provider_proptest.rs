//! Property tests of every parser of tenant input (attributes JSON, objects YAML, jmesPath,
//! permissions, file names and aliases). Each property holds on both outcomes: what is
//! accepted satisfies the invariants the mount relies on (names stay inside the volume, are
//! unique, within the limits; paths within their bounds), and what is refused is refused with
//! the typed error that names the reason — never a panic or a stack overflow. Bounded cases,
//! so they run in `cargo test` (CI) in seconds.

use std::collections::HashSet;

use aws_csi_provider::attributes::{
    MountAttributes, POD_NAMESPACE, SERVICE_ACCOUNT, parse_go_bool, parse_permission,
};
use aws_csi_provider::error::MountError;
use aws_csi_provider::files::{PathTranslation, check_relative_path};
use aws_csi_provider::jmes;
use aws_csi_provider::objects::{MAX_FILES, ObjectsError, parse_objects};
use aws_csi_provider::secret::SecretBytes;
use proptest::prelude::*;
use serde_json::json;

/// YAML-ish fragments that hit the parser's interesting paths.
fn yaml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("- ".to_string()),
        Just("objectName: ".to_string()),
        Just("objectType: secretsmanager\n".to_string()),
        Just("objectType: ssmparameter\n".to_string()),
        Just("objectAlias: ".to_string()),
        Just("jmesPath:\n  - path: a\n    objectAlias: ".to_string()),
        Just("jmesPath:\n  - path: '!!!!a'\n    objectAlias: ".to_string()),
        Just("failoverObject: {objectName: x}\n".to_string()),
        Just("filePermission: \"0600\"\n".to_string()),
        Just("arn:aws:secretsmanager:us-east-1:1:secret:x".to_string()),
        Just("../".to_string()),
        Just("/".to_string()),
        Just("\n  ".to_string()),
        Just("&a [*a, *a]".to_string()),
        Just("{".to_string()),
        "[a-z./:\\- \"'\\[\\]{}\n\0]{0,12}",
    ]
}

/// The invariants of an accepted `objects` list, or the consistency of its refusal.
fn check_objects(
    result: Result<Vec<aws_csi_provider::objects::ObjectSpec>, ObjectsError>,
    translation: Option<&str>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(specs) => {
            let mut files = HashSet::new();
            for s in &specs {
                prop_assert!(!s.object.name.is_empty());
                let names =
                    std::iter::once(&s.file_name).chain(s.jmes.iter().map(|j| &j.file_name));
                for f in names {
                    prop_assert!(check_relative_path(f).is_ok(), "{:?}", f);
                    prop_assert!(files.insert(f.clone()), "{:?} twice", f);
                }
                for j in &s.jmes {
                    prop_assert!(jmes::check_bounds(&j.path).is_ok());
                    prop_assert_eq!(j.expr.clone(), jmes::compile(&j.path).expect("compiles"));
                }
            }
            prop_assert!(files.len() <= MAX_FILES);
        }
        Err(e) => {
            let e_text = e.to_string();
            prop_assert!(!e_text.is_empty());
            match e {
                ObjectsError::PathTranslation(_) => {
                    prop_assert!(PathTranslation::parse(translation).is_err())
                }
                ObjectsError::Duplicate { file, .. } => {
                    prop_assert!(check_relative_path(&file).is_ok(), "{:?}", file)
                }
                ObjectsError::TooMany { count, limit } => prop_assert!(count > limit),
                ObjectsError::Invalid { object, reason } => {
                    prop_assert!(!object.is_empty() && !reason.is_empty())
                }
                ObjectsError::Yaml { reason } => prop_assert!(!reason.is_empty()),
                ObjectsError::MissingName { index } => prop_assert!(
                    e_text == format!("object #{index}: objectName must be specified"),
                    "{}",
                    e_text
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn objects_parser_accepts_only_safe_names_and_refuses_with_reasons(
        pieces in proptest::collection::vec(yaml_piece(), 0..24),
        translation in prop_oneof![Just(None), Just(Some("False".to_string())), Just(Some("-".to_string())), "[\\PC]{0,3}".prop_map(Some)],
        failover in prop_oneof![Just(None), Just(Some("us-west-2"))],
    ) {
        let yaml: String = pieces.concat();
        let result = parse_objects(&yaml, translation.as_deref(), "us-east-1", failover);
        check_objects(result, translation.as_deref())?;
    }

    #[test]
    fn objects_parser_survives_arbitrary_text(text in "\\PC{0,200}") {
        check_objects(parse_objects(&text, None, "us-east-1", None), None)?;
    }

    #[test]
    fn attributes_parser_refuses_arbitrary_text_cleanly(text in "\\PC{0,200}") {
        match MountAttributes::parse(&text) {
            // Only a JSON object with a namespace and a service account is accepted.
            Ok(a) => prop_assert!(!a.pod.namespace.is_empty() && !a.pod.service_account.is_empty()),
            Err(e) => prop_assert_eq!(e.code(), "invalid_attributes"),
        }
    }

    #[test]
    fn attributes_from_arbitrary_maps(
        entries in proptest::collection::hash_map(
            prop_oneof![
                Just("usePodIdentity".to_string()), Just("region".to_string()),
                Just("failoverRegion".to_string()), Just("objects".to_string()),
                Just("preferredAddressType".to_string()), Just("pathTranslation".to_string()),
                Just("csi.storage.k8s.io/serviceAccount.tokens".to_string()),
                Just(POD_NAMESPACE.to_string()),
                Just(SERVICE_ACCOUNT.to_string()),
                "\\PC{0,10}",
            ],
            "\\PC{0,40}",
            0..10,
        )
    ) {
        let json = serde_json::to_string(&entries).unwrap_or_default();
        let given = |k: &str| entries.get(k).filter(|v| !v.is_empty());
        match MountAttributes::parse(&json) {
            Ok(a) => {
                prop_assert_eq!(Some(&a.pod.namespace), given(POD_NAMESPACE));
                prop_assert_eq!(Some(&a.pod.service_account), given(SERVICE_ACCOUNT));
                match given("usePodIdentity") {
                    Some(v) => prop_assert_eq!(Some(a.use_pod_identity), parse_go_bool(v)),
                    None => prop_assert!(!a.use_pod_identity),
                }
                for audience in ["pods.eks.amazonaws.com", "sts.amazonaws.com"] {
                    match a.token(audience) {
                        Ok(t) => prop_assert!(!t.is_empty()),
                        Err(e) => prop_assert!(matches!(e, MountError::MissingToken { .. } | MountError::Attributes { .. }), "{}", e),
                    }
                }
            }
            Err(MountError::MissingAttribute { key, .. }) => prop_assert!(given(key).is_none()),
            Err(MountError::UsePodIdentity { value }) => prop_assert!(parse_go_bool(&value).is_none()),
            Err(MountError::SameFailoverRegion { region }) => {
                prop_assert_eq!(given("region"), Some(&region));
                prop_assert_eq!(given("failoverRegion"), Some(&region));
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn permissions_and_translations_parse_or_say_why(text in "\\PC{0,20}") {
        match parse_permission(&text) {
            Ok(m) => prop_assert!(m <= 0o7777),
            Err(e) => prop_assert!(matches!(e, MountError::Attributes { .. }), "{}", e),
        }
        match PathTranslation::parse(Some(&text)) {
            Ok(t) => {
                // Translated names keep no '/' unless translation is off.
                let name = t.apply("/a/b");
                let keeps = matches!(t, PathTranslation::Off | PathTranslation::Replace('/'));
                prop_assert!(keeps || !name.contains('/'), "{:?}", name);
            }
            Err(e) => prop_assert!(e.contains("pathTranslation"), "{}", e),
        }
    }

    #[test]
    fn accepted_paths_stay_inside_and_refused_ones_are_unsafe(name in "[a-z./\0]{0,12}") {
        let unsafe_name = name.is_empty()
            || name.starts_with('/')
            || name.contains('\0')
            || name.split('/').any(|e| e == ".." || e == "." || e.is_empty())
            || name.starts_with("..");
        prop_assert_eq!(check_relative_path(&name).is_err(), unsafe_name, "{:?}", name);
    }

    #[test]
    fn jmes_never_echoes_the_secret(
        value in "\\PC{0,60}",
        path in "[a-z.\\[\\]*|@`'0-9]{0,12}",
    ) {
        let clean = value.replace(['"', '\\'], "");
        let secret = SecretBytes::from_string(format!("{{\"k\":\"S3CR3T-{clean}\"}}"));
        let json = jmes::parse_json(&secret).map_err(TestCaseError::fail)?;
        match jmes::select(&json, &path) {
            Ok(v) => prop_assert!(std::str::from_utf8(v.expose()).is_ok()),
            Err(e) => prop_assert!(!e.contains("S3CR3T") && !e.is_empty(), "{}", e),
        }
        // Text starting "S3CR3T-" is never JSON: refused, saying so, without its text.
        let raw = SecretBytes::from_string(format!("S3CR3T-{value}"));
        match jmes::parse_json(&raw) {
            Ok(_) => prop_assert!(false, "text that is not JSON was parsed: {:?}", value),
            Err(e) => prop_assert!(!e.contains("S3CR3T") && e.contains("not valid JSON"), "{}", e),
        }
        // The same value as a JSON string is accepted, and a path selects it whole.
        let quoted = SecretBytes::from_string(json!({"k": format!("S3CR3T-{value}")}).to_string());
        let parsed = jmes::parse_json(&quoted).map_err(TestCaseError::fail)?;
        let selected = jmes::select(&parsed, "k").map_err(TestCaseError::fail)?;
        let whole = format!("S3CR3T-{value}");
        prop_assert_eq!(selected.expose(), whole.as_bytes());
    }
}

proptest! {
    // Large inputs: fewer cases.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn jmes_paths_are_bounded_and_never_overflow(
        ops in proptest::collection::vec(prop_oneof![
            Just("!"), Just("("), Just(")"), Just("["), Just("]"), Just("{a:"), Just("}"),
            Just("."), Just("|"), Just("&"), Just("a"), Just("'x'"), Just("`1`"), Just("*"),
            Just("=="), Just("||"), Just("?"), Just(","),
        ], 0..700),
    ) {
        let path: String = ops.concat();
        let json = jmes::parse_json(&SecretBytes::from_string(r#"{"a":"v"}"#.into()))
            .map_err(TestCaseError::fail)?;
        match jmes::compile(&path) {
            Ok(expr) => {
                prop_assert!(jmes::check_bounds(&path).is_ok());
                // Evaluating it either selects a string or says why not (no panic, no overflow).
                match jmes::select_compiled(&json, &expr) {
                    Ok(v) => prop_assert!(std::str::from_utf8(v.expose()).is_ok()),
                    Err(e) => prop_assert!(
                        e.starts_with("jmesPath evaluation failed")
                            || e.starts_with("the path matches nothing")
                            || e.starts_with("the path selects a"),
                        "{}", e
                    ),
                }
            }
            Err(e) => {
                let bounded = jmes::check_bounds(&path).is_err();
                prop_assert!(
                    if bounded { e.contains("limit") } else { e.contains("invalid jmesPath") },
                    "{}", e
                );
            }
        }
    }


    #[test]
    fn objects_lists_of_any_length_are_capped(
        n in 0usize..(3 * MAX_FILES / 2),
        keys in 0usize..3,
    ) {
        let yaml: String = (0..n)
            .map(|i| {
                let jmes: Vec<String> = (0..keys).map(|k| format!("{{path: a, objectAlias: k{k}-{i}}}")).collect();
                format!("- {{objectName: s{i}, objectType: ssmparameter, jmesPath: [{}]}}\n", jmes.join(", "))
            })
            .collect();
        let files = n * (1 + keys);
        match parse_objects(&yaml, None, "us-east-1", None) {
            Ok(specs) => {
                prop_assert!(files <= MAX_FILES);
                prop_assert_eq!(specs.len(), n);
            }
            Err(ObjectsError::TooMany { count, limit }) => {
                prop_assert!(files > MAX_FILES);
                prop_assert_eq!(limit, MAX_FILES);
                // Past the cap the objects are only counted, so their jmesPath entries aren't.
                prop_assert_eq!(count, if n > MAX_FILES { n } else { files });
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
