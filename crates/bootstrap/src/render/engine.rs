//! The tera engine: renders embedded templates and splits the output into Kubernetes objects.

use serde_json::Value;

/// A failure to turn a typed context into Kubernetes objects.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template engine rejected a template or its context.
    #[error("failed to render template {template}")]
    Template {
        template: String,
        #[source]
        source: Box<tera::Error>,
    },
    /// A rendered document is not valid YAML.
    #[error("failed to parse document {index} rendered by template {template} as YAML")]
    Parse {
        template: String,
        index: usize,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A rendered document is YAML but not a Kubernetes object.
    #[error(
        "template {template} rendered document {index} without apiVersion, kind and metadata.name"
    )]
    NotAnObject { template: String, index: usize },
    /// The values given to a renderer are unusable.
    #[error("invalid values for {renderer}: {problem}")]
    InvalidValues {
        renderer: &'static str,
        problem: String,
    },
}

/// The embedded templates of one folder of `templates/`, as the `(name, source)` pairs
/// [`render_all`] takes: `templates!("provider": "serviceaccount", "rbac")` names
/// `provider/serviceaccount.yaml.tera` and embeds `templates/provider/serviceaccount.yaml.tera`.
macro_rules! templates {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        [$((
            concat!($dir, "/", $file, ".yaml.tera"),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/",
                $dir,
                "/",
                $file,
                ".yaml.tera"
            )),
        )),+]
    };
}
pub(crate) use templates;

/// Renders each `(name, source)` template with `context` and returns every object, in order.
pub(crate) fn render_all(
    templates: &[(&str, &str)],
    context: &tera::Context,
) -> Result<Vec<Value>, RenderError> {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    tera.register_filter("json_encode", yaml_safe_json);
    tera.add_raw_templates(templates.iter().copied())
        .map_err(|source| RenderError::Template {
            template: "(template set)".into(),
            source: Box::new(source),
        })?;
    let mut objects = Vec::new();
    for (name, _) in templates {
        let text = tera
            .render(name, context)
            .map_err(|source| RenderError::Template {
                template: (*name).to_string(),
                source: Box::new(source),
            })?;
        objects.extend(split_documents(name, &text)?);
    }
    Ok(objects)
}

/// `json_encode` made safe for YAML: JSON is a YAML flow scalar, except that YAML forbids some
/// characters JSON allows raw (DEL, C1 controls, surrogates, U+FFFE/U+FFFF); those are escaped.
fn yaml_safe_json(
    value: &tera::Value,
    _args: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let json = serde_json::to_string(value).map_err(tera::Error::json)?;
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let printable = matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}')
            || ('\u{a0}'..='\u{d7ff}').contains(&c)
            || ('\u{e000}'..='\u{fffd}').contains(&c)
            || c >= '\u{10000}';
        if printable {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    Ok(tera::Value::String(out))
}

/// Splits multi-document YAML on `---` lines, skipping empty documents.
pub(crate) fn split_documents(template: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    let mut objects = Vec::new();
    let mut current = String::new();
    let mut index = 0;
    let mut flush = |doc: &mut String, index: &mut usize| -> Result<(), RenderError> {
        let has_content = doc
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if has_content {
            let value: Value =
                serde_saphyr::from_str(doc).map_err(|source| RenderError::Parse {
                    template: template.to_string(),
                    index: *index,
                    source: Box::new(source),
                })?;
            if !is_object(&value) {
                return Err(RenderError::NotAnObject {
                    template: template.to_string(),
                    index: *index,
                });
            }
            objects.push(value);
            *index += 1;
        }
        doc.clear();
        Ok(())
    };
    for line in text.lines() {
        if line.trim_end() == "---" {
            flush(&mut current, &mut index)?;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current, &mut index)?;
    Ok(objects)
}

fn is_object(value: &Value) -> bool {
    value.get("apiVersion").and_then(Value::as_str).is_some()
        && value.get("kind").and_then(Value::as_str).is_some()
        && value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some()
}

/// A short human reference to a rendered object: `Kind/name` or `Kind/namespace/name`.
pub fn object_ref(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: x\n";
        let docs = split_documents("t", text).expect("valid documents");
        assert_eq!(docs.len(), 2);
        assert_eq!(object_ref(&docs[0]), "ConfigMap/a");
        assert_eq!(object_ref(&docs[1]), "ConfigMap/x/b");
    }

    #[test]
    fn rejects_a_document_that_is_not_an_object() {
        let err = split_documents("t", "foo: bar\n").expect_err("not an object");
        assert!(matches!(err, RenderError::NotAnObject { index: 0, .. }));
    }

    #[test]
    fn reports_yaml_errors_with_the_template_name() {
        let err = split_documents("bad.yaml.tera", "a: [\n").expect_err("bad yaml");
        assert!(err.to_string().contains("bad.yaml.tera"));
    }

    #[test]
    fn renders_with_json_encoded_values() {
        let mut ctx = tera::Context::new();
        ctx.insert("name", "x: y");
        let docs = render_all(
            &[(
                "t.yaml.tera",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ name | json_encode() }}\n",
            )],
            &ctx,
        )
        .expect("renders");
        assert_eq!(docs[0]["metadata"]["name"], "x: y");
    }
}
