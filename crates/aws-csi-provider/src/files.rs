//! File names in the volume: `pathTranslation`, and the safety rules every name must pass.

use std::path::{Component, Path};

/// How `/` in object names and aliases is translated into file names (`pathTranslation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTranslation {
    /// Replace `/` with this character (default `_`).
    Replace(char),
    /// Keep `/` (sub-directories), stripping leading slashes; `pathTranslation: "False"`.
    Off,
}

impl PathTranslation {
    /// Parses the parameter as upstream does: empty → `_`; `false` (any case) → off; otherwise
    /// exactly one character.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let value = value.unwrap_or("");
        if value.is_empty() {
            return Ok(Self::Replace('_'));
        }
        if value.eq_ignore_ascii_case("false") {
            return Ok(Self::Off);
        }
        let mut chars = value.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c != '\0' => Ok(Self::Replace(c)),
            _ => Err(format!(
                "pathTranslation {value:?} must be \"False\" or a single character"
            )),
        }
    }

    /// The file name for an object name or alias, without empty or `.` elements (as Go's
    /// `filepath.Join` under upstream would clean them; `..` is kept for the check to refuse).
    pub fn apply(self, name: &str) -> String {
        let translated = match self {
            Self::Replace(c) => name.replace('/', c.encode_utf8(&mut [0; 4])),
            Self::Off => name.to_string(),
        };
        let kept: Vec<&str> = translated
            .split('/')
            .filter(|e| !e.is_empty() && *e != ".")
            .collect();
        kept.join("/")
    }
}

/// Maximum length of one file name and of a whole relative path.
const MAX_COMPONENT: usize = 255;
const MAX_PATH: usize = 4096;

/// Checks that `name` is a safe relative path inside the volume: not empty, not absolute, no
/// NUL, no empty, `..` or `.` element, a first element not starting with `..` (the driver's
/// atomic writer reserves those names: `..data`, `..<timestamp>`), within length limits.
/// Returns the reason when it is not.
pub fn check_relative_path(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if name.len() > MAX_PATH {
        return Err("it is longer than 4096 bytes");
    }
    if name.starts_with('/') || Path::new(name).is_absolute() {
        return Err("it is an absolute path");
    }
    for (i, element) in name.split('/').enumerate() {
        if element.is_empty() {
            return Err("it has an empty path element (//) or ends with /");
        }
        if element == ".." || element == "." {
            return Err("it contains a . or .. element (path traversal)");
        }
        if i == 0 && element.starts_with("..") {
            return Err(
                "it starts with .., which the driver's atomic writer reserves (..data, ..<timestamp>)",
            );
        }
        if element.len() > MAX_COMPONENT {
            return Err("an element is longer than 255 bytes");
        }
    }
    // Belt and braces: the standard library agrees it is a plain relative path.
    if Path::new(name)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err("it is not a plain relative path");
    }
    Ok(())
}

/// Parses a `filePermission` value: exactly four octal digits, e.g. `"0600"`.
pub fn parse_file_permission(value: &str) -> Result<u32, String> {
    if value.len() == 4 && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(value, 8).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "filePermission {value:?} must be four octal digits, e.g. \"0400\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_parse_and_apply() {
        assert_eq!(
            PathTranslation::parse(None),
            Ok(PathTranslation::Replace('_'))
        );
        assert_eq!(
            PathTranslation::parse(Some("False")),
            Ok(PathTranslation::Off)
        );
        assert_eq!(
            PathTranslation::parse(Some("-")),
            Ok(PathTranslation::Replace('-'))
        );
        assert!(PathTranslation::parse(Some("ab")).is_err());
        assert_eq!(PathTranslation::Replace('_').apply("/app/db"), "_app_db");
        assert_eq!(PathTranslation::Off.apply("/app/db"), "app/db");
        // Cleaned like filepath.Join: empty and . elements go, .. stays (to be refused).
        assert_eq!(PathTranslation::Off.apply("./a//b/./c/"), "a/b/c");
        assert_eq!(PathTranslation::Off.apply("a/../b"), "a/../b");
        assert_eq!(PathTranslation::Off.apply("."), "");
    }

    #[test]
    fn unsafe_paths_are_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "..",
            ".",
            "a//b",
            "a/",
            "..data",
            "x\0y",
            "./a",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?}");
        }
        for good in [
            "a",
            "a/b",
            "a.b",
            "a..b",
            ".hidden",
            "db_password",
            "x/..data",
        ] {
            assert!(check_relative_path(good).is_ok(), "{good:?}");
        }
        assert!(check_relative_path(&"a".repeat(300)).is_err());
    }

    #[test]
    fn file_permission() {
        assert_eq!(parse_file_permission("0600"), Ok(0o600));
        assert_eq!(parse_file_permission("0777"), Ok(0o777));
        for bad in ["600", "0800", "06000", "rw-r", ""] {
            assert!(parse_file_permission(bad).is_err(), "{bad}");
        }
    }
}
