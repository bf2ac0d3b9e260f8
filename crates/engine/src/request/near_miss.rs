//! Near misses: for a request no operation took, the operations it came
//! closest to and what differs (WireMock's near-miss report), so a 404 or
//! 405 says "did you mean POST /v1/payments?" instead of only "no".

use serde::Serialize;

use crate::compile::revision::CompiledRevision;

/// Near misses reported, at most.
const MAX_REPORTED: usize = 3;

/// An operation a request almost matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NearMiss {
    pub operation: String,
    pub method: String,
    /// The path to send, server base path included.
    pub path: String,
    /// What to change, in words.
    pub differences: Vec<String>,
    #[serde(skip)]
    distance: usize,
}

/// `path` below the server base path `base`, or `None` when it is not
/// under it (`/v1x` is not under `/v1`).
pub(crate) fn below_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(path);
    }
    path.strip_prefix(base)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The operations closest to `method path` (the path as sent below the
/// sandbox root), best first; empty when none is close.
pub fn near_misses(revision: &CompiledRevision, method: &str, path: &str) -> Vec<NearMiss> {
    let base = revision.router.base_path();
    let path = path.split('?').next().unwrap_or(path);
    let (below_base, base_missing) = match below_base(path, base) {
        Some(rest) => (rest, false),
        None => (path, true),
    };
    let sent: Vec<&str> = segments(below_base);
    let mut misses: Vec<NearMiss> = revision
        .operations
        .iter()
        .filter_map(|compiled| {
            let operation = &compiled.operation;
            let template = operation.path.split(['#', '?']).next().unwrap_or("");
            let (mut distance, mut differences) = compare_segments(&sent, &segments(template))?;
            if base_missing {
                distance += 1;
                differences.insert(
                    0,
                    format!("operation paths start with the server base path {base}"),
                );
            }
            if !operation.method.eq_ignore_ascii_case(method) {
                distance += 2;
                differences.push(format!(
                    "the method is {}, not {}",
                    operation.method,
                    method.to_ascii_uppercase()
                ));
            }
            if below_base.len() > 1 && below_base.ends_with('/') && !template.ends_with('/') {
                distance += 1;
                differences.push("drop the trailing slash".to_owned());
            }
            (distance > 0).then(|| NearMiss {
                operation: operation.id.clone(),
                method: operation.method.clone(),
                path: format!("{base}{template}"),
                differences,
                distance,
            })
        })
        .collect();
    misses.sort_by(|a, b| a.distance.cmp(&b.distance).then(a.path.cmp(&b.path)));
    misses.truncate(MAX_REPORTED);
    misses
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// How far the sent segments are from a template's, and the differences;
/// `None` when too far to be a near miss.
fn compare_segments(sent: &[&str], template: &[&str]) -> Option<(usize, Vec<String>)> {
    if sent.len() != template.len() {
        return None;
    }
    let mut distance = 0;
    let mut differences = Vec::new();
    for (got, want) in sent.iter().zip(template) {
        if want.contains('{') || got == want {
            continue;
        }
        let edits = if got.eq_ignore_ascii_case(want) {
            1
        } else {
            strsim::levenshtein(got, want)
        };
        // A segment mostly rewritten is a different path, not a typo.
        if edits > 2.max(want.len() / 3) {
            return None;
        }
        distance += edits;
        differences.push(format!("the segment {got:?} should be {want:?}"));
    }
    Some((distance, differences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_wrong_lengths_are_told_apart() {
        let near = compare_segments(&["paymnts", "p1"], &["payments", "{id}"]);
        assert_eq!(
            near,
            Some((
                1,
                vec![r#"the segment "paymnts" should be "payments""#.to_owned()]
            ))
        );
        assert_eq!(compare_segments(&["orders"], &["payments"]), None);
        assert_eq!(compare_segments(&["payments"], &["payments", "{id}"]), None);
        assert_eq!(
            compare_segments(&["Payments"], &["payments"]).map(|(d, _)| d),
            Some(1)
        );
    }
}
