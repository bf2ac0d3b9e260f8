//! Builders shared by unit tests.

use sbx_spec::MediaTypeSpec;

/// Declared media types without schemas or examples.
pub fn media(types: &[&str]) -> Vec<MediaTypeSpec> {
    types
        .iter()
        .map(|t| MediaTypeSpec {
            media_type: (*t).into(),
            schema_pointer: None,
            examples: vec![],
        })
        .collect()
}
