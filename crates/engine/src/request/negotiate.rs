//! `Accept` negotiation over an operation's declared response media types.

use crate::request::body::{essence, is_json, range_covers};

/// The index of the best declared media type for `accept`, `Err` when the
/// client accepts none of them. Ties go to JSON, then to declaration order.
pub fn choose(accept: Option<&str>, available: &[&str]) -> Result<Option<usize>, ()> {
    if available.is_empty() {
        return Ok(None);
    }
    let json_first = || {
        available
            .iter()
            .position(|m| is_json(&essence(m)))
            .unwrap_or(0)
    };
    let ranges: Vec<(String, f32)> = match accept {
        None => return Ok(Some(json_first())),
        Some(accept) if accept.trim().is_empty() => return Ok(Some(json_first())),
        Some(accept) => accept.split(',').filter_map(parse_range).collect(),
    };
    let mut best: Option<(usize, f32, bool)> = None;
    for (index, media) in available.iter().enumerate() {
        let declared = essence(media);
        let quality = ranges
            .iter()
            .filter(|(range, _)| range_covers(range, &declared) || range_covers(&declared, range))
            .map(|(_, q)| *q)
            .fold(0.0f32, f32::max);
        if quality <= 0.0 {
            continue;
        }
        let json = is_json(&declared);
        let better = match best {
            None => true,
            Some((_, q, j)) => quality > q || (quality == q && json && !j),
        };
        if better {
            best = Some((index, quality, json));
        }
    }
    best.map(|(index, _, _)| Some(index)).ok_or(())
}

fn parse_range(part: &str) -> Option<(String, f32)> {
    let mut pieces = part.split(';');
    let range = pieces.next()?.trim().to_ascii_lowercase();
    if range.is_empty() {
        return None;
    }
    let quality = pieces
        .filter_map(|p| p.trim().strip_prefix("q="))
        .find_map(|q| q.trim().parse::<f32>().ok())
        .unwrap_or(1.0);
    Some((range, quality))
}

/// The concrete `Content-Type` to answer with for a declared media range.
pub fn concrete(declared: &str, accept: Option<&str>) -> String {
    let declared_essence = essence(declared);
    if !declared_essence.contains('*') {
        return declared.to_owned();
    }
    // A wildcard declaration: answer with what the client asked for if it is concrete.
    accept
        .into_iter()
        .flat_map(|a| a.split(','))
        .filter_map(parse_range)
        .map(|(range, _)| range)
        .find(|range| !range.contains('*') && range_covers(&declared_essence, range))
        .unwrap_or_else(|| "application/json".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_quality_then_json() {
        let both = ["application/xml", "application/json"];
        assert_eq!(choose(None, &both), Ok(Some(1)));
        assert_eq!(choose(Some("application/xml"), &both), Ok(Some(0)));
        assert_eq!(
            choose(Some("application/xml;q=0.5, application/json"), &both),
            Ok(Some(1))
        );
        assert_eq!(choose(Some("*/*"), &both), Ok(Some(1)));
        assert_eq!(choose(Some("text/html"), &both), Err(()));
        assert_eq!(
            choose(Some("application/json;q=0"), &["application/json"]),
            Err(())
        );
    }
}
