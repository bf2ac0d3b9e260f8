//! The request contract: which operation a request is (router, near
//! misses), what its parameters, headers and body say, which answer it
//! accepts, and whether its credentials pass the spec's security.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod form;
pub(crate) mod headers;
pub(crate) mod json;
pub(crate) mod near_miss;
pub(crate) mod negotiate;
pub(crate) mod params;
pub(crate) mod router;
