//! Read-only access to request headers, whatever map the server keeps them in.

/// Case-insensitive header lookup.
pub trait HeaderSource {
    /// The first value of `name` (lower-case).
    fn get(&self, name: &str) -> Option<&str>;
    /// Every value of `name` (lower-case), in order.
    fn get_all(&self, name: &str) -> Vec<&str>;
    /// Every (name, value) pair; used only to find API keys.
    fn pairs(&self) -> Vec<(&str, &str)>;
}

impl HeaderSource for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a (impl HeaderSource + ?Sized), name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .into_iter()
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}
