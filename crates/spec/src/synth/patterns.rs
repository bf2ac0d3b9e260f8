//! Strings matching a schema `pattern`, with compiled generators cached per
//! revision (compiling a regex per request would dominate the hot path).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use rand::{RngExt, rngs::Xoshiro256PlusPlus};

/// Repetitions generated at most for `*`, `+` and open `{n,}`.
const MAX_REPEAT: u32 = 8;
/// Distinct patterns cached per revision; beyond it generators are rebuilt.
const MAX_CACHED: usize = 4096;

#[derive(Default)]
pub struct PatternCache {
    generators: RwLock<HashMap<String, Option<Arc<rand_regex::Regex>>>>,
}

impl std::fmt::Debug for PatternCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatternCache")
    }
}

impl PatternCache {
    fn generator(&self, pattern: &str) -> Option<Arc<rand_regex::Regex>> {
        if let Some(found) = self.generators.read().ok()?.get(pattern) {
            return found.clone();
        }
        let compiled = compile(pattern).map(Arc::new);
        if let Ok(mut generators) = self.generators.write()
            && generators.len() < MAX_CACHED
        {
            generators.insert(pattern.to_owned(), compiled.clone());
        }
        compiled
    }

    /// A string matching `pattern` within `[min, max]` characters, if one
    /// can be generated in a few tries.
    pub fn sample(&self, pattern: &str, rng: &mut Xoshiro256PlusPlus, min: usize, max: usize) -> Option<String> {
        let generator = self.generator(pattern)?;
        for _ in 0..16 {
            let text: String = rng.sample(&*generator);
            let length = text.chars().count();
            if (min..=max).contains(&length) {
                return Some(text);
            }
        }
        None
    }
}

/// ECMA-262 classes (`\d`, `\w`) are ASCII; so are the strings generated.
fn compile(pattern: &str) -> Option<rand_regex::Regex> {
    // Generators cannot produce anchors; a string generated from the inner
    // expression matches the anchored pattern all the same.
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let pattern = match pattern.strip_suffix('$') {
        Some(inner) if !inner.ends_with('\\') => inner,
        _ => pattern,
    };
    let ascii = regex_syntax::ParserBuilder::new().unicode(false).utf8(true).build().parse(pattern);
    let hir = match ascii {
        Ok(hir) => hir,
        Err(_) => regex_syntax::ParserBuilder::new().build().parse(pattern).ok()?,
    };
    rand_regex::Regex::with_hir(hir, MAX_REPEAT).ok()
}
