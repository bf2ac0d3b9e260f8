//! Query-parameter parsing shared by the listings (logs, timeline, audit):
//! each bad value is a 400 naming its parameter.

use crate::http::error::{ApiError, FieldError};

/// A 400 naming the query parameter with a bad value.
pub fn bad(parameter: &str, message: String) -> ApiError {
    ApiError::bad_query(vec![FieldError::query(parameter, message)])
}

/// A page size from 1 to `max`.
pub fn limit(name: &str, value: &str, max: u32) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| bad(name, format!("limit must be 1 to {max}, not {value:?}")))
}

/// A `next_cursor` handed out by an earlier page.
pub fn cursor(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse::<i64>().map_err(|_| {
        bad(
            name,
            format!("{value:?} is not a cursor from a previous page"),
        )
    })
}

/// An RFC 3339 instant, as milliseconds since the epoch.
pub fn instant(name: &str, value: &str) -> Result<i64, ApiError> {
    crate::runtime::clock::parse_instant(value).map_err(|message| bad(name, message))
}

/// The answer to a parameter no listing knows, listing those it does.
pub fn unknown(name: &str, known: &str) -> ApiError {
    bad(name, format!("unknown filter {name:?}; filters: {known}"))
}
