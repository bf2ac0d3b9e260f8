//! Bundling a multi-file spec from disk into one document.
