//! Builds the mount response: files (whole objects and jmesPath keys), modes, object versions.

use super::error::MountError;
use super::fetch::Fetched;
use super::files::check_relative_path;
use super::jmes;
use super::objects::ObjectSpec;
use super::proto::{File, ObjectVersion};
use bootstrap_common::secret::SecretBytes;

/// Files and versions for the response, and their encoded size.
#[derive(Debug, Default)]
pub struct MountOutput {
    pub files: Vec<File>,
    pub versions: Vec<ObjectVersion>,
    pub bytes: usize,
}

/// Per-file overhead in the encoded response beyond path and contents (tags, lengths, mode).
const FILE_OVERHEAD: usize = 24;

struct Builder {
    out: MountOutput,
    limit: usize,
}

impl Builder {
    fn push(
        &mut self,
        object: &str,
        path: &str,
        mode: u32,
        value: SecretBytes,
    ) -> Result<(), MountError> {
        // Names were validated when parsed; check again right where they leave the process.
        check_relative_path(path).map_err(|reason| MountError::UnsafePath {
            object: object.to_string(),
            name: path.to_string(),
            reason,
        })?;
        self.out.bytes += path.len() + value.len() + FILE_OVERHEAD;
        if self.out.bytes > self.limit {
            return Err(MountError::TooLarge {
                size: self.out.bytes,
                limit: self.limit,
            });
        }
        self.out.files.push(File {
            path: path.to_string(),
            mode: mode as i32,
            contents: value.into_inner(),
        });
        Ok(())
    }
}

/// Lays out the files: each object as its file (alias or translated name), plus one file per
/// jmesPath entry. `permission` is the default mode; objects and entries may override it.
pub fn build_output(
    specs: &[ObjectSpec],
    fetched: Vec<Fetched>,
    permission: u32,
    limit: usize,
) -> Result<MountOutput, MountError> {
    let mut b = Builder {
        out: MountOutput::default(),
        limit,
    };
    for (spec, Fetched { value, version }) in specs.iter().zip(fetched) {
        if !spec.jmes.is_empty() {
            let json = jmes::parse_json(&value).map_err(|reason| MountError::JmesPath {
                object: spec.name.clone(),
                path: spec.jmes[0].path.clone(),
                reason,
            })?;
            for entry in &spec.jmes {
                let selected = jmes::select_compiled(&json, &entry.expr).map_err(|reason| {
                    MountError::JmesPath {
                        object: spec.name.clone(),
                        path: entry.path.clone(),
                        reason,
                    }
                })?;
                b.push(
                    &spec.name,
                    &entry.file_name,
                    entry.mode.unwrap_or(permission),
                    selected,
                )?;
            }
        }
        b.push(
            &spec.name,
            &spec.file_name,
            spec.mode.unwrap_or(permission),
            value,
        )?;
        // Like upstream, every file gets a version entry: the object's, then its jmesPath keys'.
        let ids = std::iter::once(&spec.file_name).chain(spec.jmes.iter().map(|j| &j.file_name));
        for id in ids {
            b.out.bytes += id.len() + version.len() + FILE_OVERHEAD;
            b.out.versions.push(ObjectVersion {
                id: id.clone(),
                version: version.clone(),
            });
        }
    }
    if b.out.bytes > b.limit {
        return Err(MountError::TooLarge {
            size: b.out.bytes,
            limit: b.limit,
        });
    }
    Ok(b.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::parse_objects;

    fn fetched(v: &str, ver: &str) -> Fetched {
        Fetched {
            value: SecretBytes::from_string(v.to_string()),
            version: ver.to_string(),
        }
    }

    #[test]
    fn files_modes_and_versions() {
        let specs = parse_objects(
            "- {objectName: db, objectType: secretsmanager, filePermission: '0600', jmesPath: [{path: user, objectAlias: u}]}\n- {objectName: /p, objectType: ssmparameter}",
            None,
            "us-east-1",
            None,
        )
        .expect("specs");
        let out = build_output(
            &specs,
            vec![fetched(r#"{"user":"admin"}"#, "v1"), fetched("pv", "3")],
            0o644,
            1 << 20,
        )
        .expect("output");
        let names: Vec<_> = out
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.mode))
            .collect();
        assert_eq!(names, vec![("u", 0o600), ("db", 0o600), ("_p", 0o644)]);
        assert_eq!(out.files[0].contents, b"admin");
        let versions: Vec<_> = out
            .versions
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str()))
            .collect();
        assert_eq!(versions, [("db", "v1"), ("u", "v1"), ("_p", "3")]);
    }

    #[test]
    fn size_cap_and_bad_json() {
        let specs = parse_objects(
            "- {objectName: db, objectType: secretsmanager}",
            None,
            "r",
            None,
        )
        .expect("specs");
        let err = build_output(&specs, vec![fetched(&"x".repeat(2000), "v")], 0o644, 1000)
            .expect_err("too big");
        assert!(matches!(err, MountError::TooLarge { .. }));
        let specs = parse_objects(
            "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a}]}",
            None,
            "r",
            None,
        )
        .expect("specs");
        let err = build_output(&specs, vec![fetched("s3cr3t-plain", "v")], 0o644, 1 << 20)
            .expect_err("not json");
        let msg = err.to_string();
        assert!(
            msg.contains("not valid JSON") && !msg.contains("s3cr3t"),
            "{msg}"
        );
        assert_eq!(err.code(), "jmespath");
    }
}
