//! Strings matching a schema `pattern`, with compiled generators cached per
//! revision (compiling a regex per request would dominate the hot path).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use rand::{RngExt, rngs::Xoshiro256PlusPlus};
use regex_syntax::hir::{
    Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Repetition,
};

/// Repetitions generated at most for `*`, `+` and open `{n,}`.
const MAX_REPEAT: u32 = 8;
/// Distinct patterns cached per revision; beyond it generators are rebuilt.
const MAX_CACHED: usize = 4096;

type Fitted = (usize, usize, Option<Arc<rand_regex::Regex>>);

#[derive(Default)]
pub struct PatternCache {
    /// By pattern, then by the length bounds the generator was fitted to.
    generators: RwLock<HashMap<String, Vec<Fitted>>>,
}

impl std::fmt::Debug for PatternCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatternCache")
    }
}

impl PatternCache {
    /// The generator of `pattern` fitted to `[min, max]` characters; `None`
    /// when the pattern cannot be generated.
    pub(super) fn generator(
        &self,
        pattern: &str,
        min: usize,
        max: usize,
    ) -> Option<Arc<rand_regex::Regex>> {
        let cached = self.generators.read().ok().and_then(|generators| {
            let fitted = generators.get(pattern)?;
            fitted
                .iter()
                .find(|(lo, hi, _)| (*lo, *hi) == (min, max))
                .map(|(_, _, g)| g.clone())
        });
        if let Some(found) = cached {
            return found;
        }
        let compiled = compile(pattern, min, max).map(Arc::new);
        if let Ok(mut generators) = self.generators.write()
            && generators.len() < MAX_CACHED
        {
            generators
                .entry(pattern.to_owned())
                .or_default()
                .push((min, max, compiled.clone()));
        }
        compiled
    }

    /// A string matching `pattern` within `[min, max]` characters, if one
    /// can be generated in a few tries.
    pub fn sample(
        &self,
        pattern: &str,
        rng: &mut Xoshiro256PlusPlus,
        min: usize,
        max: usize,
    ) -> Option<String> {
        sample(&*self.generator(pattern, min, max)?, rng, min, max)
    }
}

/// A string from `generator` within `[min, max]` characters, if one comes
/// in a few tries.
pub(super) fn sample(
    generator: &rand_regex::Regex,
    rng: &mut Xoshiro256PlusPlus,
    min: usize,
    max: usize,
) -> Option<String> {
    for _ in 0..16 {
        let text: String = rng.sample(generator);
        let length = text.chars().count();
        if (min..=max).contains(&length) {
            return Some(text);
        }
    }
    None
}

/// ECMA-262 classes (`\d`, `\w`) are ASCII; so are the strings generated.
/// A pattern that is one repeated character class (`^[0-9a-f]+$`) is
/// generated at a length within `[min, max]` directly, since `minLength: 40`
/// beside it is common and random repetition would rarely reach it.
fn compile(pattern: &str, min: usize, max: usize) -> Option<rand_regex::Regex> {
    let pattern = &without_anchors(pattern);
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    let hir = printable_ascii(hir);
    let hir = fit_repetition(hir, min, max);
    let max_repeat = MAX_REPEAT.max(u32::try_from(min).unwrap_or(u32::MAX).min(1024));
    rand_regex::Regex::with_hir(hir, max_repeat).ok()
}

/// The pattern with its `^` and `$` anchors removed (outside classes, not
/// escaped). Generators cannot produce anchors, and a string generated from
/// one alternative (`a$|^b` → `a|b`) matches the anchored pattern anyway.
fn without_anchors(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let (mut escaped, mut in_class) = (false, false);
    for c in pattern.chars() {
        if escaped {
            escaped = false;
            out.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '^' | '$' if !in_class => continue,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Narrows every class to printable ASCII where it has such members:
/// ECMA-262 `\\d` and `\\w` are ASCII, and `.` or `\\S` drawing from all
/// of Unicode makes unreadable values.
fn printable_ascii(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Class(Class::Unicode(class)) => {
            let mut narrowed = class.clone();
            narrowed.intersect(&ClassUnicode::new([ClassUnicodeRange::new(' ', '~')]));
            let kept = if narrowed.ranges().is_empty() {
                class
            } else {
                narrowed
            };
            Hir::class(Class::Unicode(kept))
        }
        HirKind::Repetition(repetition) => Hir::repetition(Repetition {
            sub: Box::new(printable_ascii(*repetition.sub)),
            ..repetition
        }),
        HirKind::Capture(capture) => Hir::capture(Capture {
            sub: Box::new(printable_ascii(*capture.sub)),
            ..capture
        }),
        HirKind::Concat(items) => Hir::concat(items.into_iter().map(printable_ascii).collect()),
        HirKind::Alternation(items) => {
            Hir::alternation(items.into_iter().map(printable_ascii).collect())
        }
        HirKind::Class(bytes) => Hir::class(bytes),
        HirKind::Literal(literal) => Hir::literal(literal.0),
        HirKind::Look(look) => Hir::look(look),
        HirKind::Empty => Hir::empty(),
    }
}

/// `hir` with its one repeated character fitted to `[min, max]`: the
/// whole pattern (`[0-9a-f]+`), or the one part of a sequence whose length
/// varies (`pay_[a-z0-9]+`, `AC[0-9a-f]+`), less the fixed parts' length.
fn fit_repetition(hir: Hir, min: usize, max: usize) -> Hir {
    let HirKind::Concat(parts) = hir.kind() else {
        return fit_one_repetition(hir, min, max);
    };
    let exact = |part: &Hir| {
        let properties = part.properties();
        properties
            .minimum_len()
            .filter(|low| properties.maximum_len() == Some(*low))
    };
    let mut varying = parts.iter().enumerate().filter(|(_, p)| exact(p).is_none());
    let (Some((at, _)), None) = (varying.next(), varying.next()) else {
        return hir;
    };
    let fixed: usize = parts.iter().filter_map(exact).sum();
    // An open maximum stays open, not `usize::MAX - fixed`.
    let max = if max == usize::MAX {
        max
    } else {
        max.saturating_sub(fixed)
    };
    let mut parts = parts.clone();
    parts[at] = fit_one_repetition(parts[at].clone(), min.saturating_sub(fixed), max);
    Hir::concat(parts)
}

fn fit_one_repetition(hir: Hir, min: usize, max: usize) -> Hir {
    let HirKind::Repetition(repetition) = hir.kind() else {
        return hir;
    };
    let single_char = match repetition.sub.kind() {
        HirKind::Class(_) => true,
        HirKind::Literal(literal) => {
            std::str::from_utf8(&literal.0).is_ok_and(|s| s.chars().count() == 1)
        }
        _ => false,
    };
    if !single_char {
        return hir;
    }
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let low = repetition.min.max(to_u32(min));
    let high = match repetition.max {
        Some(high) => high.min(to_u32(max)),
        None if max == usize::MAX => low.saturating_add(MAX_REPEAT),
        None => to_u32(max).min(low.saturating_add(1024)),
    };
    if low > high {
        return hir;
    }
    Hir::repetition(Repetition {
        min: low,
        max: Some(high),
        greedy: repetition.greedy,
        sub: repetition.sub.clone(),
    })
}
