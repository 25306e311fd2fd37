//! jmesPath extraction: select string values from a JSON secret, with errors that say why.

use jmespath::Variable;

use bootstrap_common::secret::SecretBytes;

/// Parsed JSON of a secret, ready for several jmesPath searches.
pub struct JsonSecret(jmespath::Rcvar);

/// Parses a secret as JSON. The error says where the JSON is broken, never what it contains.
pub fn parse_json(value: &SecretBytes) -> Result<JsonSecret, String> {
    let json: serde_json::Value = serde_json::from_slice(value.expose()).map_err(|e| {
        format!(
            "the secret value is not valid JSON (line {}, column {}); hint: jmesPath needs a JSON secret such as {{\"username\": \"...\"}}",
            e.line(),
            e.column()
        )
    })?;
    let var = Variable::try_from(json)
        .map_err(|_| "the secret value could not be read as JSON".to_string())?;
    Ok(JsonSecret(jmespath::Rcvar::new(var)))
}

/// Evaluates `path`; the result must be a string.
pub fn select(secret: &JsonSecret, path: &str) -> Result<SecretBytes, String> {
    let expr = jmespath::compile(path)
        .map_err(|e| format!("invalid jmesPath expression: {}", e.reason))?;
    let found = expr
        .search(secret.0.clone())
        .map_err(|e| format!("jmesPath evaluation failed: {}", e.reason))?;
    if found.is_null() {
        return Err("the path matches nothing in the secret; hint: check the key names (they are case-sensitive)".into());
    }
    match found.as_string() {
        Some(s) => Ok(SecretBytes::from_string(s.clone())),
        None => Err(format!(
            "the path selects a {}, not a string; hint: select a string value",
            found.get_type()
        )),
    }
}

#[cfg(test)]
mod tests {
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
}
