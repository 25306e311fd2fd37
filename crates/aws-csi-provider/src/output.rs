//! Builds the mount response: files (whole objects, jmesPath keys, all keys of a JSON secret,
//! the matches of a prefix), modes, object versions; collisions of fetched names refused.

use std::collections::HashMap;

use super::all_keys;
use super::error::MountError;
use super::fetch::prefix::Match;
use super::fetch::{Fetched, Got};
use super::files::check_relative_path;
use super::jmes;
use super::objects::{Expand, ObjectSpec};
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
    /// Files and directories written so far and who wrote them, kept only when an object
    /// writes files known only once fetched (prefix, allKeys): `None` otherwise.
    seen: Option<Seen>,
}

/// Who writes a file, for a collision error.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Object(&'a str),
    Key { object: &'a str, key: &'a str },
    Match { prefix: &'a str, name: &'a str },
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Object(o) => write!(f, "object {o:?}"),
            Owner::Key { object, key } => {
                write!(f, "key {:?} of object {object:?} (allKeys)", short(key))
            }
            Owner::Match { prefix, name } => {
                write!(f, "secret {name:?} (under prefix {prefix:?})")
            }
        }
    }
}

/// At most 64 characters of a name, for an error.
fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[derive(Default)]
struct Seen {
    files: HashMap<String, String>,
    dirs: HashMap<String, String>,
}

impl Seen {
    /// Records `path`, failing when it is already a file or a directory, or when one of its
    /// parents is a file (the volume can't hold both).
    fn claim(&mut self, path: &str, owner: Owner<'_>) -> Result<(), MountError> {
        let collision = |at: &str, other: &String| MountError::FileCollision {
            file: short(at),
            first: other.clone(),
            second: owner.to_string(),
        };
        if let Some(other) = self.files.get(path).or_else(|| self.dirs.get(path)) {
            return Err(collision(path, other));
        }
        let parents = path.match_indices('/').map(|(i, _)| &path[..i]);
        for dir in parents.clone() {
            if let Some(other) = self.files.get(dir) {
                return Err(collision(dir, other));
            }
        }
        for dir in parents {
            self.dirs
                .entry(dir.to_string())
                .or_insert_with(|| owner.to_string());
        }
        self.files.insert(path.to_string(), owner.to_string());
        Ok(())
    }
}

impl Builder {
    fn push(
        &mut self,
        object: &str,
        owner: Owner<'_>,
        path: &str,
        mode: u32,
        value: SecretBytes,
    ) -> Result<(), MountError> {
        // Names were validated when parsed; check again right where they leave the process.
        check_relative_path(path).map_err(|reason| MountError::UnsafePath {
            object: object.to_string(),
            name: short(path),
            reason,
        })?;
        if let Some(seen) = &mut self.seen {
            seen.claim(path, owner)?;
        }
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

    fn version(&mut self, id: &str, version: &str) {
        self.out.bytes += id.len() + version.len() + FILE_OVERHEAD;
        self.out.versions.push(ObjectVersion {
            id: id.to_string(),
            version: version.to_string(),
        });
    }

    /// An object (and its jmesPath keys, or all its keys).
    fn object(
        &mut self,
        spec: &ObjectSpec,
        fetched: Fetched,
        permission: u32,
    ) -> Result<(), MountError> {
        let Fetched { value, version } = fetched;
        let mode = spec.mode.unwrap_or(permission);
        if !spec.jmes.is_empty() {
            let json = jmes::parse_json(&value).map_err(|reason| MountError::JmesPath {
                object: spec.object.name.clone(),
                path: spec.jmes[0].path.clone(),
                reason,
            })?;
            for entry in &spec.jmes {
                let selected = jmes::select_compiled(&json, &entry.expr).map_err(|reason| {
                    MountError::JmesPath {
                        object: spec.object.name.clone(),
                        path: entry.path.clone(),
                        reason,
                    }
                })?;
                self.push(
                    &spec.object.name,
                    Owner::Object(&spec.object.name),
                    &entry.file_name,
                    entry.mode.unwrap_or(permission),
                    selected,
                )?;
            }
        }
        let keys = match spec.expand {
            Expand::AllKeys { translation } => {
                Some(all_keys::split(&value, translation).map_err(|reason| {
                    MountError::AllKeys {
                        object: spec.object.name.clone(),
                        reason,
                    }
                })?)
            }
            _ => None,
        };
        self.push(
            &spec.object.name,
            Owner::Object(&spec.object.name),
            &spec.file_name,
            mode,
            value,
        )?;
        // Like upstream, every file gets a version entry: the object's, then its jmesPath keys'.
        self.version(&spec.file_name, &version);
        for j in &spec.jmes {
            self.version(&j.file_name, &version);
        }
        for (key, file, contents) in keys.into_iter().flatten() {
            let owner = Owner::Key {
                object: &spec.object.name,
                key: &key,
            };
            self.push(&spec.object.name, owner, &file, mode, contents)?;
            self.version(&file, &version);
        }
        Ok(())
    }

    /// The matches of a prefix object, each a file under the object's directory.
    fn prefix(
        &mut self,
        spec: &ObjectSpec,
        matches: Vec<Match>,
        permission: u32,
    ) -> Result<(), MountError> {
        let mode = spec.mode.unwrap_or(permission);
        for Match {
            name,
            file,
            fetched,
        } in matches
        {
            if file.is_empty() {
                return Err(MountError::UnsafePath {
                    object: name,
                    name: String::new(),
                    reason: "the secret's name is the prefix itself, which leaves no file name; hint: end the prefix with /",
                });
            }
            let path = if spec.file_name.is_empty() {
                file
            } else {
                format!("{}/{file}", spec.file_name)
            };
            let owner = Owner::Match {
                prefix: &spec.object.name,
                name: &name,
            };
            self.push(&name, owner, &path, mode, fetched.value)?;
            self.version(&path, &fetched.version);
        }
        Ok(())
    }
}

/// Lays out the files: each object as its file (alias or translated name), plus one file per
/// jmesPath entry or (allKeys) per top-level key, and one file per match of a prefix object;
/// an optional object not found writes nothing. `permission` is the default mode; objects and
/// entries may override it.
pub fn build_output(
    specs: &[ObjectSpec],
    fetched: Vec<Got>,
    permission: u32,
    limit: usize,
) -> Result<MountOutput, MountError> {
    let dynamic = specs.iter().any(|s| s.expand != Expand::One);
    let mut b = Builder {
        out: MountOutput::default(),
        limit,
        seen: dynamic.then(Seen::default),
    };
    for (spec, got) in specs.iter().zip(fetched) {
        match got {
            Got::One(f) => b.object(spec, f, permission)?,
            Got::Many(matches) => b.prefix(spec, matches, permission)?,
            Got::Skipped => {}
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

    fn fetched(v: &str, ver: &str) -> Got {
        Got::One(Fetched {
            value: SecretBytes::from_string(v.to_string()),
            version: ver.to_string(),
        })
    }

    fn matched(name: &str, file: &str, v: &str, ver: &str) -> Match {
        Match {
            name: name.into(),
            file: file.into(),
            fetched: Fetched {
                value: SecretBytes::from_string(v.to_string()),
                version: ver.to_string(),
            },
        }
    }

    fn parse(yaml: &str) -> Vec<ObjectSpec> {
        parse_objects(yaml, None, "us-east-1", None).expect("specs")
    }

    /// [`build_output`] with the driver's default mode (0644) and a 1 MiB limit.
    fn build(specs: &[ObjectSpec], got: Vec<Got>) -> Result<MountOutput, MountError> {
        build_output(specs, got, 0o644, 1 << 20)
    }

    fn layout(out: &MountOutput) -> Vec<(&str, &[u8], &str)> {
        out.files
            .iter()
            .map(|f| {
                let v = out
                    .versions
                    .iter()
                    .find(|v| v.id == f.path)
                    .map_or("-", |v| v.version.as_str());
                (f.path.as_str(), f.contents.as_slice(), v)
            })
            .collect()
    }

    #[test]
    fn prefix_matches_are_files_under_the_alias_with_their_versions() {
        let specs = parse(
            "- {objectName: teams/p/, objectType: secretsmanager, matchPrefix: true, objectAlias: p, filePermission: '0600'}\n- {objectName: /t/q/, objectType: ssmparameter, matchPrefix: true}",
        );
        let got = vec![
            Got::Many(vec![
                matched("teams/p/api", "api", "s3cr3t-1", "v-a"),
                matched("teams/p/db/main", "db/main", "s3cr3t-2", "v-d"),
            ]),
            Got::Many(vec![matched("/t/q/url", "url", "s3cr3t-3", "4")]),
        ];
        let out = build(&specs, got).expect("output");
        assert_eq!(
            layout(&out),
            vec![
                ("p/api", b"s3cr3t-1".as_slice(), "v-a"),
                ("p/db/main", b"s3cr3t-2".as_slice(), "v-d"),
                ("url", b"s3cr3t-3".as_slice(), "4"),
            ]
        );
        assert_eq!(out.files[0].mode, 0o600);
        assert_eq!(out.files[2].mode, 0o644);
        assert_eq!(out.versions.len(), 3, "one version per file");
    }

    #[test]
    fn unsafe_prefix_file_names_fail_naming_the_secret() {
        let specs = parse("- {objectName: t/, objectType: secretsmanager, matchPrefix: true}");
        for (name, file) in [
            ("t/..data", "..data"),
            ("t/a/../../x", "a/../../x"),
            ("t/", ""),
        ] {
            let got = vec![Got::Many(vec![matched(name, file, "s3cr3t", "v")])];
            let e = build(&specs, got).expect_err(name);
            let msg = e.to_string();
            assert_eq!(e.code(), "unsafe_path", "{msg}");
            assert!(msg.contains(name) && !msg.contains("s3cr3t"), "{msg}");
        }
    }

    #[test]
    fn all_keys_write_each_key_beside_the_whole_secret() {
        let specs = parse(
            "- {objectName: db, objectType: secretsmanager, allKeys: true, objectAlias: db.json}",
        );
        let json = r#"{"user":"app","pass":"s3cr3t","port":5432}"#;
        let out = build_output(&specs, vec![fetched(json, "v7")], 0o640, 1 << 20).expect("output");
        assert_eq!(
            layout(&out),
            vec![
                ("db.json", json.as_bytes(), "v7"),
                ("pass", b"s3cr3t".as_slice(), "v7"),
                ("port", b"5432".as_slice(), "v7"),
                ("user", b"app".as_slice(), "v7"),
            ]
        );
        assert!(out.files.iter().all(|f| f.mode == 0o640));
        let e = build(&specs, vec![fetched("s3cr3t-plain", "v")]).expect_err("not JSON");
        assert_eq!(e.code(), "all_keys");
        assert!(e.to_string().contains("\"db\"") && !e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn collisions_fail_naming_both() {
        // A key named like another object's file.
        let specs = parse(
            "- {objectName: db, objectType: secretsmanager, allKeys: true}\n- {objectName: other, objectType: secretsmanager, objectAlias: user}",
        );
        let e = build(
            &specs,
            vec![
                fetched(r#"{"user":"s3cr3t"}"#, "v"),
                fetched("s3cr3t-2", "v"),
            ],
        )
        .expect_err("collision");
        let msg = e.to_string();
        assert_eq!(e.code(), "file_collision");
        assert!(
            msg.contains("key \"user\" of object \"db\"")
                && msg.contains("object \"other\"")
                && !msg.contains("s3cr3t"),
            "{msg}"
        );
        // A prefix match named like a file, and a file where a match needs a directory.
        let specs = parse(
            "- {objectName: api, objectType: secretsmanager}\n- {objectName: t/, objectType: secretsmanager, matchPrefix: true}",
        );
        for (file, other) in [("api", "api"), ("api/x", "api")] {
            let got = vec![
                fetched("s3cr3t", "v"),
                Got::Many(vec![matched(&format!("t/{file}"), file, "s3cr3t", "v")]),
            ];
            let msg = build(&specs, got).expect_err(file).to_string();
            assert!(
                msg.contains(&format!("secret \"t/{file}\""))
                    && msg.contains(&format!("file \"{other}\""))
                    && msg.contains("object \"api\""),
                "{msg}"
            );
        }
        // Two prefixes whose matches meet.
        let specs = parse(
            "- {objectName: a/, objectType: secretsmanager, matchPrefix: true}\n- {objectName: b/, objectType: secretsmanager, matchPrefix: true}",
        );
        let got = vec![
            Got::Many(vec![matched("a/x/y", "x/y", "1", "v")]),
            Got::Many(vec![matched("b/x", "x", "2", "v")]),
        ];
        let msg = build(&specs, got).expect_err("dir vs file").to_string();
        assert!(
            msg.contains("\"a/x/y\"") && msg.contains("\"b/x\""),
            "{msg}"
        );
    }

    #[test]
    fn skipped_optional_objects_write_nothing() {
        let specs = parse(
            "- {objectName: gone, objectType: secretsmanager, optional: true}\n- {objectName: here, objectType: secretsmanager}",
        );
        let out = build(&specs, vec![Got::Skipped, fetched("s3cr3t", "v1")]).expect("output");
        assert_eq!(layout(&out), vec![("here", b"s3cr3t".as_slice(), "v1")]);
        assert_eq!(out.versions.len(), 1);
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
        let out = build(
            &specs,
            vec![fetched(r#"{"user":"admin"}"#, "v1"), fetched("pv", "3")],
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
        let err = build(&specs, vec![fetched("s3cr3t-plain", "v")]).expect_err("not json");
        let msg = err.to_string();
        assert!(
            msg.contains("not valid JSON") && !msg.contains("s3cr3t"),
            "{msg}"
        );
        assert_eq!(err.code(), "jmespath");
    }
}
