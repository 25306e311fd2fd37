//! Struct keys matched like Go's `encoding/json` (what upstream's `objects` parser uses):
//! case-insensitively, the last occurrence winning, unknown keys ignored — each with a warning.

/// Whether a YAML/JSON `key` names the field `field` under Go's `encoding/json` rules: equal
/// after simple Unicode case folding. `field` is ASCII, so besides ASCII case the only other
/// runes that fold onto it are the Kelvin sign (K, U+212A, ≡ k) and the long s (ſ, U+017F, ≡ s).
pub fn key_matches(key: &str, field: &str) -> bool {
    let mut k = key.chars();
    for f in field.chars() {
        let Some(c) = k.next() else { return false };
        let same = c.eq_ignore_ascii_case(&f)
            || (c == '\u{212A}' && f.eq_ignore_ascii_case(&'k'))
            || (c == '\u{17F}' && f.eq_ignore_ascii_case(&'s'));
        if !same {
            return false;
        }
    }
    k.next().is_none()
}

/// Logs what lenient matching accepted, so that a probable typo is visible in the provider log.
pub fn warn_key(what: &'static str, key: &str, field: Option<&'static str>) {
    match field {
        Some(field) => tracing::warn!(
            key = %key.escape_debug(),
            field,
            "{what}: key {key:?} read as {field:?} (keys match case-insensitively, as in the upstream provider); hint: spell it {field:?}"
        ),
        None => tracing::warn!(
            key = %key.escape_debug(),
            "{what}: unknown key {key:?} ignored (as the upstream provider does); hint: check its spelling"
        ),
    }
}

/// Declares a struct decoded from a map with [`key_matches`] semantics. Each field is
/// `name: Type = "goKey"`; `Type: Default + Deserialize`. A key given twice keeps the last value.
macro_rules! go_keys_struct {
    ($what:literal $(#[$meta:meta])* struct $name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name {
            $($field: $ty,)*
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a map (", $what, ")"))
                    }
                    fn visit_unit<E: serde::de::Error>(self) -> Result<$name, E> {
                        Ok($name::default())
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some($crate::scalar::Scalar(key)) = map.next_key()? {
                            let key = key.unwrap_or_default();
                            $(
                                if $crate::gokeys::key_matches(&key, $key) {
                                    if key != $key {
                                        $crate::gokeys::warn_key($what, &key, Some($key));
                                    }
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )*
                            $crate::gokeys::warn_key($what, &key, None);
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_any(Fields)
            }
        }
    };
}

pub(crate) use go_keys_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_go_encoding_json() {
        for k in [
            "objectName",
            "ObjectName",
            "OBJECTNAME",
            "objectname",
            "oBjEcTnAmE",
        ] {
            assert!(key_matches(k, "objectName"), "{k}");
        }
        // The two non-ASCII runes Go folds onto ASCII letters.
        assert!(key_matches("objectAlia\u{17F}", "objectAlias"));
        assert!(key_matches("\u{212A}", "k"));
        for k in [
            "objectNam",
            "objectNamee",
            "object_name",
            "objectName ",
            "",
            "öbjectName",
        ] {
            assert!(!key_matches(k, "objectName"), "{k}");
        }
    }
}
