//! jmesPath extraction: paths bounded and compiled when the objects are parsed, then used to
//! select string values from a JSON secret, with errors that say why.
//!
//! The jmespath crate parses and evaluates recursively without a depth limit: a path of
//! 100,000 `!` overflows the stack of the worker thread and takes the provider (every mount
//! on the node) down. Each path is therefore scanned before it reaches the parser: at most
//! [`MAX_PATH_LEN`] bytes and [`MAX_OPERATORS`] operators. Every node of the syntax tree that
//! has children comes from an operator (`.`, `|`, `[`, `(`, `{`, `!`, `&`, comparisons, `*`),
//! so the operator count bounds the nesting of the tree, and with it the recursion of the
//! parser, of the evaluation and of dropping the tree. Real paths (`username`,
//! `db.credentials[0].password`, `[?type=='x'].value | [0]`) use a handful. Measured in a
//! debug build (the worst case: about 8 KiB of stack per level): 128 nested `!` fit a 2 MiB
//! tokio worker stack and 256 overflow it; 32 leaves a margin of four.

use std::sync::Arc;

use jmespath::Variable;

use bootstrap_common::secret::SecretBytes;

/// Longest jmesPath accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Most operators (outside quoted names and literals) in one jmesPath.
pub const MAX_OPERATORS: usize = 32;

/// A compiled jmesPath (cheap to clone; compared and shown by its text).
#[derive(Clone)]
pub struct JmesExpr(Arc<jmespath::Expression<'static>>);

impl PartialEq for JmesExpr {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for JmesExpr {}

impl std::fmt::Debug for JmesExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JmesExpr({:?})", self.0.as_str())
    }
}

/// Checks `path` against [`MAX_PATH_LEN`] and [`MAX_OPERATORS`], then compiles it. The error
/// says which bound or what syntax failed.
pub fn compile(path: &str) -> Result<JmesExpr, String> {
    check_bounds(path)?;
    jmespath::compile(path)
        .map(|e| JmesExpr(Arc::new(e)))
        .map_err(|e| format!("invalid jmesPath expression: {}", e.reason))
}

/// The bounds alone (no parsing): length, then operators outside quotes and literals.
pub fn check_bounds(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "the path is {} bytes long, over the limit of {MAX_PATH_LEN}; hint: select the key with a short path such as \"db.password\"",
            path.len()
        ));
    }
    let operators = count_operators(path);
    if operators > MAX_OPERATORS {
        return Err(format!(
            "the path has {operators} operators, over the limit of {MAX_OPERATORS} (they bound its nesting); hint: select the key with a short path such as \"db.password\""
        ));
    }
    Ok(())
}

/// Operator characters outside `"quoted"` names, `'raw strings'` and `` `literals` ``.
fn count_operators(path: &str) -> usize {
    let mut count = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in path.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '.' | '|' | '[' | '(' | '{' | '!' | '&' | '=' | '<' | '>' | '*' => count += 1,
            _ => {}
        }
    }
    count
}

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

/// Compiles `path` (within the bounds) and evaluates it; see [`select_compiled`].
pub fn select(secret: &JsonSecret, path: &str) -> Result<SecretBytes, String> {
    select_compiled(secret, &compile(path)?)
}

/// Evaluates a compiled path; the result must be a string.
pub fn select_compiled(secret: &JsonSecret, expr: &JmesExpr) -> Result<SecretBytes, String> {
    let found = expr
        .0
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
#[path = "jmes_tests.rs"]
mod tests;
