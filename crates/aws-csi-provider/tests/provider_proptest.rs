//! Property tests: the parsers of untrusted input (attributes JSON, objects YAML, permissions,
//! file names) never panic, and whatever they accept is safe to write.

use aws_csi_provider::attributes::{MountAttributes, parse_go_bool, parse_permission};
use aws_csi_provider::files::{PathTranslation, check_relative_path};
use aws_csi_provider::jmes;
use aws_csi_provider::objects::parse_objects;
use aws_csi_provider::secret::SecretBytes;
use proptest::prelude::*;

/// YAML-ish fragments that hit the parser's interesting paths.
fn yaml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("- ".to_string()),
        Just("objectName: ".to_string()),
        Just("objectType: secretsmanager\n".to_string()),
        Just("objectType: ssmparameter\n".to_string()),
        Just("objectAlias: ".to_string()),
        Just("jmesPath:\n  - path: a\n    objectAlias: ".to_string()),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn objects_parser_never_panics_and_accepts_only_safe_names(
        pieces in proptest::collection::vec(yaml_piece(), 0..24),
        translation in prop_oneof![Just(None), Just(Some("False".to_string())), Just(Some("-".to_string())), "[\\PC]{0,3}".prop_map(Some)],
        failover in prop_oneof![Just(None), Just(Some("us-west-2"))],
    ) {
        let yaml: String = pieces.concat();
        if let Ok(specs) = parse_objects(&yaml, translation.as_deref(), "us-east-1", failover) {
            for s in &specs {
                prop_assert!(check_relative_path(&s.file_name).is_ok(), "{:?}", s.file_name);
                for j in &s.jmes {
                    prop_assert!(check_relative_path(&j.file_name).is_ok(), "{:?}", j.file_name);
                }
            }
        }
    }

    #[test]
    fn objects_parser_survives_arbitrary_text(text in "\\PC{0,200}") {
        let _ = parse_objects(&text, None, "us-east-1", None);
    }

    #[test]
    fn attributes_parser_never_panics(text in "\\PC{0,200}") {
        let _ = MountAttributes::parse(&text);
    }

    #[test]
    fn attributes_from_arbitrary_maps(
        entries in proptest::collection::hash_map(
            prop_oneof![
                Just("usePodIdentity".to_string()), Just("region".to_string()),
                Just("failoverRegion".to_string()), Just("objects".to_string()),
                Just("preferredAddressType".to_string()), Just("pathTranslation".to_string()),
                Just("csi.storage.k8s.io/serviceAccount.tokens".to_string()),
                Just("csi.storage.k8s.io/pod.namespace".to_string()),
                Just("csi.storage.k8s.io/serviceAccount.name".to_string()),
                "\\PC{0,10}",
            ],
            "\\PC{0,40}",
            0..10,
        )
    ) {
        let json = serde_json::to_string(&entries).unwrap_or_default();
        if let Ok(a) = MountAttributes::parse(&json) {
            let _ = a.token("pods.eks.amazonaws.com");
            let _ = a.token("sts.amazonaws.com");
            if let Some(v) = entries.get("usePodIdentity").filter(|v| !v.is_empty()) {
                prop_assert_eq!(Some(a.use_pod_identity), parse_go_bool(v));
            }
        }
    }

    #[test]
    fn permission_and_translation_never_panic(text in "\\PC{0,20}") {
        let _ = parse_permission(&text);
        if let Ok(t) = PathTranslation::parse(Some(&text)) {
            let _ = t.apply("/a/b");
        }
    }

    #[test]
    fn accepted_paths_stay_inside(name in "[a-z./\0]{0,12}") {
        if check_relative_path(&name).is_ok() {
            prop_assert!(!name.starts_with('/'));
            prop_assert!(!name.split('/').any(|e| e == ".." || e == "." || e.is_empty()));
            prop_assert!(!name.contains('\0'));
        }
    }

    #[test]
    fn jmes_never_panics_and_never_echoes_the_secret(
        value in "\\PC{0,60}",
        path in "[a-z.\\[\\]*|@`'0-9]{0,12}",
    ) {
        let value = format!("S3CR3T-{value}");
        let secret = SecretBytes::from_string(format!("{{\"k\":\"{}\"}}", value.replace(['"', '\\'], "")));
        match jmes::parse_json(&secret) {
            Ok(json) => {
                if let Err(e) = jmes::select(&json, &path) {
                    let v = value.replace(['"', '\\'], "");
                    prop_assert!(!e.contains(&v), "{}", e);
                }
            }
            Err(e) => prop_assert!(!e.contains("k\":")),
        }
        let raw = SecretBytes::from_string(value.clone());
        if let Err(e) = jmes::parse_json(&raw) {
            prop_assert!(!e.contains("S3CR3T"), "{}", e);
        }
    }
}
