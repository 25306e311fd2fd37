//! Unit tests of jmesPath selection and of the bounds that keep the parser's recursion small.

use super::*;

fn secret(s: &str) -> SecretBytes {
    SecretBytes::from_string(s.to_string())
}

#[test]
fn selects_strings() {
    let j = parse_json(&secret(
        r#"{"user":"admin","pw":"s3cr3t","n":5,"nested":{"k":"v"}}"#,
    ))
    .expect("json");
    assert_eq!(select(&j, "user").expect("user").expose(), b"admin");
    assert_eq!(select(&j, "nested.k").expect("nested").expose(), b"v");
    let e = select(&j, "n").expect_err("number");
    assert!(e.contains("number") && !e.contains('5'), "{e}");
    assert!(
        select(&j, "missing")
            .expect_err("null")
            .contains("matches nothing")
    );
    let e = select(&j, "[[[").expect_err("syntax");
    assert!(e.contains("invalid jmesPath"), "{e}");
    let e = select(&j, "nested").expect_err("object");
    assert!(!e.contains("\"v\""), "{e}");
}

#[test]
fn non_json_secret_says_so_without_value() {
    let e = parse_json(&secret("plain s3cr3t")).err().expect("not json");
    assert!(e.contains("not valid JSON") && !e.contains("s3cr3t"), "{e}");
}

#[test]
fn a_path_of_100000_nots_is_refused_before_the_parser() {
    let path = "!".repeat(100_000);
    let e = compile(&path).expect_err("refused");
    assert!(e.contains("100000 bytes") && e.contains("1024"), "{e}");
    let path = format!("{}a", "!".repeat(MAX_OPERATORS + 1));
    let e = compile(&path).expect_err("refused");
    assert!(e.contains("33 operators") && e.contains("32"), "{e}");
}

#[test]
fn operators_inside_quotes_and_literals_do_not_count() {
    let many = ".".repeat(200);
    for path in [
        format!("\"{many}\""),
        format!("'{many}'"),
        format!("`\"{many}\"`"),
        format!("\"a\\\"{many}\""),
    ] {
        assert!(check_bounds(&path).is_ok(), "{path}");
    }
    assert_eq!(count_operators("a.b[0] | c[?d=='x' && !e]"), 9);
}

#[test]
fn real_paths_compile_and_compare_by_text() {
    for p in [
        "username",
        "db.credentials[0].password",
        "[?type=='x'].value | [0]",
        "\"key-with-dash\"",
    ] {
        let a = compile(p).expect(p);
        assert_eq!(a, compile(p).expect(p));
        assert!(format!("{a:?}").contains("JmesExpr"));
    }
}

/// The deepest paths the bounds allow parse, evaluate and drop on a 512 KiB stack, a quarter
/// of a tokio worker's 2 MiB, even in a debug build (about 8 KiB of stack per level there;
/// measured: 128 levels of `!` fit 2 MiB, 256 overflow it).
#[test]
fn the_deepest_allowed_paths_fit_a_small_stack() {
    let n = MAX_OPERATORS;
    let deepest = vec![
        format!("{}a", "!".repeat(n)),
        format!("{}a{}", "(".repeat(n), ")".repeat(n)),
        format!("{}a{}", "[".repeat(n), "]".repeat(n)),
        format!("{}a", "& ".repeat(n)),
        format!("{}a{}", "{a:".repeat(n), "}".repeat(n)),
        format!("a{}", ".a".repeat(n)),
        format!("a{}", " | a".repeat(n)),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let json = parse_json(&SecretBytes::from_string(r#"{"a":"x"}"#.into()))
                .map_err(|e| e.to_string())?;
            for p in &deepest {
                assert!(p.len() <= MAX_PATH_LEN);
                let expr = compile(p)?;
                let _ = select_compiled(&json, &expr);
                drop(expr);
            }
            Ok::<_, String>(())
        })
        .expect("spawn");
    let result = worker.join().expect("no stack overflow");
    assert_eq!(result, Ok(()));
}
