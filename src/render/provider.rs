//! The AWS provider's objects (rendered from `templates/provider/`, owned by the provider work).
//!
//! PLACEHOLDER: the provider templates are not written yet; until they are, this renders
//! nothing and says so, so that plans are honest about it.

use serde_json::Value;

use super::engine::RenderError;

/// Values for the provider templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderValues {
    pub namespace: Option<String>,
    pub image: Option<String>,
}

/// Whether real provider templates are available (false while this is a placeholder).
pub const AVAILABLE: bool = false;

/// Renders the provider's objects (none yet: see the module docs).
pub fn render(_values: &ProviderValues) -> Result<Vec<Value>, RenderError> {
    Ok(Vec::new())
}
