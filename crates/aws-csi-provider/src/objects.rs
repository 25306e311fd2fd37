//! The `objects` parameter: YAML list of secrets/parameters to mount, parsed and validated.

use std::collections::HashSet;

use thiserror::Error;

use super::capped::Capped;
use super::files::{PathTranslation, check_relative_path, parse_file_permission};
use super::gokeys::go_keys_struct;
use super::jmes::JmesExpr;
use super::scalar::Scalar;

/// Files one mount may write at most: every object and every jmesPath entry is one file.
/// Real SecretProviderClasses list a few dozen; the cap bounds the work and memory of one
/// mount (parsing, AWS calls, response) whatever the SecretProviderClass says.
pub const MAX_FILES: usize = 1000;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    SecretsManager,
    SsmParameter,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::SecretsManager => "secretsmanager",
            ObjectKind::SsmParameter => "ssmparameter",
        }
    }

    /// The kind an `objectType` value names ([`ObjectKind::as_str`] read back).
    pub fn from_type(object_type: &str) -> Option<Self> {
        [ObjectKind::SecretsManager, ObjectKind::SsmParameter]
            .into_iter()
            .find(|k| k.as_str() == object_type)
    }
}

/// Why the `objects` parameter was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ObjectsError {
    #[error("the objects parameter is not a YAML list of objects: {reason}")]
    Yaml { reason: String },
    #[error("{0}")]
    PathTranslation(String),
    #[error("object #{index}: objectName must be specified")]
    MissingName { index: usize },
    #[error("object {object:?}: {reason}")]
    Invalid { object: String, reason: String },
    #[error(
        "object {object:?}: file name {file:?} is already used by another object or jmesPath alias; hint: set a distinct objectAlias"
    )]
    Duplicate { object: String, file: String },
    #[error(
        "the objects parameter describes {count} files (objects and jmesPath entries), over the limit of {limit} per mount; hint: split the secrets between several SecretProviderClasses and volumes"
    )]
    TooMany { count: usize, limit: usize },
}

/// One `jmesPath` entry: a key selected from a JSON secret into its own file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmesEntry {
    pub path: String,
    /// `path`, compiled when the objects were parsed (before any AWS call).
    pub expr: JmesExpr,
    pub alias: String,
    pub file_name: String,
    pub mode: Option<u32>,
}

/// An object by name (or ARN), at an optional version id or label: what one region is asked
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub name: String,
    pub version: Option<String>,
    pub label: Option<String>,
}

/// What one object mounts besides itself (features beyond upstream 3.1.1, which ignores their
/// keys). A `Copy` value: an object without them costs nothing more than before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expand {
    /// The object alone (and its jmesPath keys): upstream's behaviour.
    #[default]
    One,
    /// `matchPrefix: true`: `name` is a prefix; every secret or parameter under it is a file,
    /// named by the rest of its name (under the object's alias when set). `recursive: false`
    /// keeps direct children only (no `/` after the prefix).
    Prefix { recursive: bool },
    /// `allKeys: true`: besides the whole secret, every top-level key of its JSON value is a
    /// file at the mount root named by the key (translated like a jmesPath alias).
    AllKeys { translation: PathTranslation },
}

/// Prefix objects: most matches one object may mount (more fails the mount).
pub const MAX_PREFIX_MATCHES: usize = 100;

/// A validated object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The object in the primary region.
    pub object: ObjectRef,
    pub kind: ObjectKind,
    pub alias: Option<String>,
    pub mode: Option<u32>,
    pub jmes: Vec<JmesEntry>,
    /// The object to fetch in the failover region instead.
    pub failover: Option<ObjectRef>,
    /// The file the whole object is written to; also its id in the object versions. For a
    /// prefix object, the directory its files go under (empty: the mount root).
    pub file_name: String,
    /// Prefix or all keys (see [`Expand`]).
    pub expand: Expand,
    /// `optional: true`: skipped with a warning when it does not exist (not found only).
    pub optional: bool,
}

impl ObjectSpec {
    /// The object to fetch in the primary (`false`) or failover (`true`) region.
    pub fn target(&self, failover: bool) -> &ObjectRef {
        match (&self.failover, failover) {
            (Some(f), true) => f,
            _ => &self.object,
        }
    }
}

go_keys_struct! {
    "objects entry"
    /// One `objects` entry as written; keys match case-insensitively like upstream's.
    struct RawObject {
        object_name: Scalar = "objectName",
        object_type: Scalar = "objectType",
        object_alias: Scalar = "objectAlias",
        object_version: Scalar = "objectVersion",
        object_version_label: Scalar = "objectVersionLabel",
        file_permission: Scalar = "filePermission",
        jmes_path: Option<Capped<RawJmes>> = "jmesPath",
        failover_object: Option<RawFailover> = "failoverObject",
        match_prefix: Scalar = "matchPrefix",
        recursive: Scalar = "recursive",
        all_keys: Scalar = "allKeys",
        optional: Scalar = "optional",
    }
}

go_keys_struct! {
    "jmesPath entry"
    struct RawJmes {
        path: Scalar = "path",
        object_alias: Scalar = "objectAlias",
        file_permission: Scalar = "filePermission",
    }
}

go_keys_struct! {
    "failoverObject"
    struct RawFailover {
        object_name: Scalar = "objectName",
        object_version: Scalar = "objectVersion",
        object_version_label: Scalar = "objectVersionLabel",
    }
}

/// Largest `objects` document accepted (the driver's whole request is far below this).
const MAX_YAML: usize = 1 << 20;

/// Parses and validates the `objects` YAML. `region` is the primary region and
/// `failover_region` the optional second one.
pub fn parse_objects(
    yaml: &str,
    translation: Option<&str>,
    region: &str,
    failover_region: Option<&str>,
) -> Result<Vec<ObjectSpec>, ObjectsError> {
    let translation = PathTranslation::parse(translation).map_err(ObjectsError::PathTranslation)?;
    if yaml.len() > MAX_YAML {
        return Err(ObjectsError::Yaml {
            reason: "larger than 1 MiB".into(),
        });
    }
    let raw: Option<Capped<RawObject>> =
        serde_saphyr::from_str(yaml).map_err(|e| ObjectsError::Yaml {
            reason: e.to_string(),
        })?;
    let raw = raw.unwrap_or_default();
    let files = if raw.total > MAX_FILES {
        raw.total
    } else {
        raw.items.iter().fold(0, |n, r| {
            n + 1 + r.jmes_path.as_ref().map_or(0, |j| j.total)
        })
    };
    if files > MAX_FILES {
        return Err(ObjectsError::TooMany {
            count: files,
            limit: MAX_FILES,
        });
    }
    let raw = raw.items;
    if raw.is_empty() {
        // Upstream mounts nothing then; probably a mistake, so say so.
        tracing::warn!(
            "the objects parameter lists no objects: mounting zero files (as the upstream provider does); hint: list the secrets to mount under objects in the SecretProviderClass"
        );
        return Ok(Vec::new());
    }
    let mut used = HashSet::new();
    let mut specs = Vec::with_capacity(raw.len());
    for (index, r) in raw.into_iter().enumerate() {
        let spec = validate(r, index, translation, region, failover_region)?;
        // A prefix object without an alias writes at the mount root: its files are known only
        // once fetched (the response checks them).
        let own = Some(&spec.file_name).filter(|f| !f.is_empty());
        let files = own
            .into_iter()
            .chain(spec.jmes.iter().map(|j| &j.file_name));
        for file in files {
            if !used.insert(file.clone()) {
                return Err(ObjectsError::Duplicate {
                    object: spec.object.name.clone(),
                    file: file.clone(),
                });
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn validate(
    r: RawObject,
    index: usize,
    translation: PathTranslation,
    region: &str,
    failover_region: Option<&str>,
) -> Result<ObjectSpec, ObjectsError> {
    let name = non_empty(r.object_name).ok_or(ObjectsError::MissingName { index })?;
    let invalid = |reason: String| ObjectsError::Invalid {
        object: name.clone(),
        reason,
    };
    let set = |v: &Scalar| v.0.as_deref().is_some_and(|s| !s.is_empty());
    let others = OtherKeys {
        jmes_path: r.jmes_path.as_ref().is_some_and(|j| j.total > 0),
        object_version: set(&r.object_version),
        object_version_label: set(&r.object_version_label),
        failover_object: r.failover_object.is_some(),
    };
    let features = Features::parse(&r.match_prefix, &r.recursive, &r.all_keys, &r.optional)
        .map_err(&invalid)?;
    let object_type = non_empty(r.object_type);
    let kind = resolve_kind(&name, object_type.as_deref(), region).map_err(invalid)?;
    let version = non_empty(r.object_version);
    let label = non_empty(r.object_version_label);
    if kind == ObjectKind::SsmParameter && version.is_some() && label.is_some() {
        return Err(invalid(
            "SSM parameters can't set both objectVersion and objectVersionLabel".into(),
        ));
    }
    let expand = features
        .check(others, kind, &name, translation)
        .map_err(&invalid)?;
    let alias = non_empty(r.object_alias);
    let file_name = match (expand, alias.as_deref()) {
        (Expand::Prefix { .. }, None) => String::new(),
        (_, alias) => translation.apply(alias.unwrap_or(&name)),
    };
    if !(file_name.is_empty() && matches!(expand, Expand::Prefix { .. })) {
        check_relative_path(&file_name).map_err(|why| {
            invalid(format!("file name {file_name:?} is not allowed: {why}; hint: set objectAlias to a plain file name"))
        })?;
    }
    let mode = match non_empty(r.file_permission) {
        Some(p) => Some(parse_file_permission(&p).map_err(invalid)?),
        None => None,
    };
    let mut jmes = Vec::new();
    for j in r.jmes_path.unwrap_or_default().items {
        let path =
            non_empty(j.path).ok_or_else(|| invalid("every jmesPath entry needs a path".into()))?;
        let alias = non_empty(j.object_alias)
            .ok_or_else(|| invalid(format!("jmesPath entry {path:?} needs an objectAlias")))?;
        let file_name = translation.apply(&alias);
        check_relative_path(&file_name)
            .map_err(|why| invalid(format!("jmesPath alias {alias:?} is not allowed: {why}")))?;
        let expr = crate::jmes::compile(&path)
            .map_err(|why| invalid(format!("jmesPath {:?}: {why}", truncated(&path))))?;
        let mode = match non_empty(j.file_permission) {
            Some(p) => Some(parse_file_permission(&p).map_err(invalid)?),
            None => mode,
        };
        jmes.push(JmesEntry {
            path,
            expr,
            alias,
            file_name,
            mode,
        });
    }
    let failover = match r
        .failover_object
        .map(|mut f| (non_empty(std::mem::take(&mut f.object_name)), f))
    {
        None | Some((None, _)) => None,
        Some((Some(fname), f)) => {
            if alias.is_none() {
                return Err(invalid(
                    "objects with a failoverObject need an objectAlias".into(),
                ));
            }
            let Some(second) = failover_region else {
                return Err(invalid(
                    "failoverObject is allowed only when the failoverRegion parameter is set"
                        .into(),
                ));
            };
            let fkind = resolve_kind(&fname, object_type.as_deref(), second).map_err(&invalid)?;
            if fkind != kind {
                return Err(invalid(
                    "failoverObject must be of the same type as the object".into(),
                ));
            }
            let fversion = non_empty(f.object_version);
            let flabel = non_empty(f.object_version_label);
            if kind == ObjectKind::SsmParameter && fversion.is_some() && flabel.is_some() {
                return Err(invalid(
                    "SSM parameters can't set both objectVersion and objectVersionLabel (failoverObject)".into(),
                ));
            }
            if fversion != version {
                return Err(invalid(
                    "objectVersion must be the same for the object and its failoverObject".into(),
                ));
            }
            Some(ObjectRef {
                name: fname,
                version: fversion,
                label: flabel,
            })
        }
    };
    Ok(ObjectSpec {
        object: ObjectRef {
            name,
            version,
            label,
        },
        kind,
        alias,
        mode,
        jmes,
        failover,
        file_name,
        expand,
        optional: features.optional,
    })
}

/// Which of the keys a prefix can't be combined with are set.
#[derive(Clone, Copy)]
struct OtherKeys {
    jmes_path: bool,
    object_version: bool,
    object_version_label: bool,
    failover_object: bool,
}

/// The beyond-upstream keys of one object, as booleans.
struct Features {
    match_prefix: bool,
    recursive: Option<bool>,
    all_keys: bool,
    optional: bool,
}

impl Features {
    fn parse(
        match_prefix: &Scalar,
        recursive: &Scalar,
        all_keys: &Scalar,
        optional: &Scalar,
    ) -> Result<Self, String> {
        Ok(Self {
            match_prefix: flag(match_prefix, "matchPrefix")?.unwrap_or(false),
            recursive: flag(recursive, "recursive")?,
            all_keys: flag(all_keys, "allKeys")?.unwrap_or(false),
            optional: flag(optional, "optional")?.unwrap_or(false),
        })
    }

    /// The combinations refused (each error names the key), then what the object expands to.
    fn check(
        &self,
        others: OtherKeys,
        kind: ObjectKind,
        name: &str,
        translation: PathTranslation,
    ) -> Result<Expand, String> {
        if !self.match_prefix {
            if self.recursive.is_some() {
                return Err("recursive applies only with matchPrefix: true".into());
            }
            if self.all_keys {
                if others.jmes_path {
                    return Err("allKeys can't be combined with jmesPath; hint: use one or the other (allKeys writes every key)".into());
                }
                return Ok(Expand::AllKeys { translation });
            }
            return Ok(Expand::One);
        }
        let refused = [
            ("jmesPath", others.jmes_path),
            ("allKeys", self.all_keys),
            ("objectVersion", others.object_version),
            ("objectVersionLabel", others.object_version_label),
            ("failoverObject", others.failover_object),
        ];
        if let Some((key, _)) = refused.iter().find(|(_, on)| *on) {
            return Err(format!(
                "matchPrefix can't be combined with {key}; hint: a prefix mounts the current version of every secret under it, one file each"
            ));
        }
        if name.starts_with("arn:") {
            return Err(
                "matchPrefix needs a name prefix (e.g. teams/payments/), not an ARN".into(),
            );
        }
        if kind == ObjectKind::SsmParameter && !name.starts_with('/') {
            return Err(
                "an SSM prefix is a parameter path and must start with / (e.g. /teams/payments/)"
                    .into(),
            );
        }
        Ok(Expand::Prefix {
            recursive: self.recursive.unwrap_or(true),
        })
    }
}

/// A boolean key: YAML true/false or the strings "true"/"false" in any case; absent or empty
/// is `None`; anything else is an error naming the key and the value.
fn flag(v: &Scalar, key: &str) -> Result<Option<bool>, String> {
    match v.0.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(s) => Err(format!(
            "{key} {:?} is not a boolean; accepted values: true, false",
            truncated(s)
        )),
    }
}

/// At most 64 characters of a tenant's string, for an error message.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

fn non_empty(v: Scalar) -> Option<String> {
    v.0.filter(|s| !s.is_empty())
}

/// Works out the object's kind from `objectType` and/or its ARN, checking they agree and that
/// an ARN's region is `region`.
fn resolve_kind(name: &str, object_type: Option<&str>, region: &str) -> Result<ObjectKind, String> {
    let declared = object_type
        .map(|t| {
            ObjectKind::from_type(t).ok_or_else(|| {
                format!("objectType {t:?} is not one of secretsmanager, ssmparameter")
            })
        })
        .transpose()?;
    if !name.starts_with("arn:") {
        return declared
            .ok_or_else(|| "objectType is required when objectName is not a full ARN".to_string());
    }
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    if parts.len() != 6 {
        return Err("objectName starts with arn: but is not a valid ARN".into());
    }
    let from_arn = match parts[2] {
        "secretsmanager" => ObjectKind::SecretsManager,
        "ssm" => ObjectKind::SsmParameter,
        other => {
            return Err(format!(
                "ARN service {other:?} is not secretsmanager or ssm"
            ));
        }
    };
    if parts[3] != region {
        return Err(format!(
            "ARN region {:?} must match region {region:?}",
            parts[3]
        ));
    }
    match declared {
        Some(d) if d != from_arn => Err("objectType does not match the ARN's service".into()),
        _ => Ok(from_arn),
    }
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
