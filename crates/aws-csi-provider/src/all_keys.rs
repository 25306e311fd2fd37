//! `allKeys: true`: every top-level key of a JSON secret as a file of its own. String values
//! are written as they are, other values as compact JSON text; errors say where the JSON is
//! broken or what the value is, never what it contains.

use serde_json::Value;
use zeroize::Zeroize;

use super::files::{PathTranslation, check_relative_path};
use bootstrap_common::secret::SecretBytes;

/// Keys of one secret at most (each is a file; the mount's response limit bounds them too).
pub const MAX_KEYS: usize = 1000;

/// (key, file name, contents) of every top-level key of `value`, in key order. The file name
/// is the key translated like a jmesPath alias and must pass the alias rules.
pub fn split(
    value: &SecretBytes,
    translation: PathTranslation,
) -> Result<Vec<(String, String, SecretBytes)>, String> {
    let json: Value = serde_json::from_slice(value.expose()).map_err(|e| {
        format!(
            "the secret value is not valid JSON (line {}, column {}); hint: allKeys needs a JSON object such as {{\"username\": \"...\"}}",
            e.line(),
            e.column()
        )
    })?;
    let map = match json {
        Value::Object(map) => map,
        mut other => {
            let kind = kind_of(&other);
            wipe(&mut other);
            return Err(format!(
                "the secret value is a JSON {kind}, not an object; hint: allKeys needs a JSON object such as {{\"username\": \"...\"}}"
            ));
        }
    };
    if map.len() > MAX_KEYS {
        let n = map.len();
        let mut rest = Value::Object(map);
        wipe(&mut rest);
        return Err(format!(
            "the secret has {n} keys, over the limit of {MAX_KEYS}"
        ));
    }
    let mut files = Vec::with_capacity(map.len());
    let mut keys = map.into_iter();
    while let Some((key, mut v)) = keys.next() {
        let file = translation.apply(&key);
        if let Err(why) = check_relative_path(&file) {
            wipe(&mut v);
            for (_, mut v) in keys.by_ref() {
                wipe(&mut v);
            }
            let shown: String = key.chars().take(64).collect();
            return Err(format!(
                "key {shown:?} can't be a file name: {why}; hint: rename the key, or use jmesPath with an objectAlias for it"
            ));
        }
        let contents = match v {
            Value::String(s) => SecretBytes::from_string(s),
            mut other => {
                let text = serde_json::to_vec(&other).unwrap_or_default();
                wipe(&mut other);
                SecretBytes::new(text)
            }
        };
        files.push((key, file, contents));
    }
    // In key order, whatever map the JSON parser uses.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Zeroizes the strings of a parsed value before it is dropped (numbers and booleans can't be
/// reached; they are short).
fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_str(v: &str) -> Result<Vec<(String, String, Vec<u8>)>, String> {
        split(
            &SecretBytes::from_string(v.to_string()),
            PathTranslation::Replace('_'),
        )
        .map(|files| {
            files
                .into_iter()
                .map(|(k, f, c)| (k, f, c.into_inner()))
                .collect()
        })
    }

    #[test]
    fn strings_as_they_are_other_values_as_json() {
        let files =
            split_str(r#"{"user":"app","pass":"s3cr3t","port":5432,"opts":{"a":[1,true]},"n":null,"a/b":"x"}"#)
                .expect("object");
        let got: Vec<(&str, &str, &[u8])> = files
            .iter()
            .map(|(k, f, c)| (k.as_str(), f.as_str(), c.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/b", "a_b", b"x".as_slice()),
                ("n", "n", b"null".as_slice()),
                ("opts", "opts", br#"{"a":[1,true]}"#.as_slice()),
                ("pass", "pass", b"s3cr3t".as_slice()),
                ("port", "port", b"5432".as_slice()),
                ("user", "user", b"app".as_slice()),
            ]
        );
    }

    #[test]
    fn not_an_object_or_unsafe_keys_are_refused_without_values() {
        for (v, want) in [
            ("s3cr3t-plain", "not valid JSON"),
            (r#"["s3cr3t"]"#, "a JSON array, not an object"),
            (r#""s3cr3t""#, "a JSON string, not an object"),
            (r#"{"..data":"s3cr3t"}"#, "key \"..data\""),
            (r#"{"":"s3cr3t"}"#, "it is empty"),
        ] {
            let e = split_str(v).expect_err(v);
            assert!(e.contains(want) && !e.contains("s3cr3t"), "{v}: {e}");
        }
        // Translation off keeps a / in a key: a sub-directory, refused when it climbs out.
        let off = split(
            &SecretBytes::from_string(r#"{"a/../../x":"s3cr3t"}"#.into()),
            PathTranslation::Off,
        )
        .expect_err("traversal");
        assert!(
            off.contains("path traversal") && !off.contains("s3cr3t"),
            "{off}"
        );
    }
}
