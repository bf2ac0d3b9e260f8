//! `Accept` negotiation over an operation's declared response media types.

use std::borrow::Cow;

use crate::request::body::{essence, is_json, lower_case, range_covers};

/// The index of the best declared media type for `accept`, `Err` when the
/// client accepts none of them. Ties go to JSON, then to declaration order.
pub fn choose<'a>(
    accept: Option<&str>,
    available: impl Iterator<Item = &'a str> + Clone,
) -> Result<Option<usize>, ()> {
    if available.clone().next().is_none() {
        return Ok(None);
    }
    let json_first = || {
        available
            .clone()
            .position(|m| is_json(&essence(m)))
            .unwrap_or(0)
    };
    let ranges: Vec<(Cow<'_, str>, f32)> = match accept {
        None => return Ok(Some(json_first())),
        Some(accept) if accept.trim().is_empty() => return Ok(Some(json_first())),
        Some(accept) => accept.split(',').filter_map(parse_range).collect(),
    };
    let mut best: Option<(usize, f32, bool)> = None;
    for (index, media) in available.enumerate() {
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

fn parse_range(part: &str) -> Option<(Cow<'_, str>, f32)> {
    let mut pieces = part.split(';');
    let range = lower_case(pieces.next()?.trim());
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
pub fn concrete<'a>(declared: &'a str, accept: Option<&str>) -> Cow<'a, str> {
    let declared_essence = essence(declared);
    if !declared_essence.contains('*') {
        return declared.into();
    }
    // A wildcard declaration: answer with what the client asked for if it is concrete.
    accept
        .into_iter()
        .flat_map(|a| a.split(','))
        .filter_map(parse_range)
        .map(|(range, _)| range)
        .find(|range| !range.contains('*') && range_covers(&declared_essence, range))
        .map_or("application/json".into(), |range| range.into_owned().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_quality_then_json() {
        let both = ["application/xml", "application/json"];
        let both = || both.into_iter();
        assert_eq!(choose(None, both()), Ok(Some(1)));
        assert_eq!(choose(Some("application/xml"), both()), Ok(Some(0)));
        assert_eq!(
            choose(Some("application/xml;q=0.5, application/json"), both()),
            Ok(Some(1))
        );
        assert_eq!(choose(Some("*/*"), both()), Ok(Some(1)));
        assert_eq!(choose(Some("text/html"), both()), Err(()));
        assert_eq!(
            choose(
                Some("application/json;q=0"),
                ["application/json"].into_iter()
            ),
            Err(())
        );
    }
}
