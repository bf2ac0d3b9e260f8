//! Path matching for a revision's operations.
//!
//! Templates are registered with positional parameter names (`{p0}`, `{p1}`)
//! because matchit refuses differently named parameters at the same position,
//! which real specs have (`/pets/{petId}` beside `/pets/{id}/photos`).
//! Templates matchit cannot express (two parameters in one segment) fall back
//! to an ordered list of regular expressions.

use percent_encoding::percent_decode_str;
use regex::Regex;
use sbx_spec::Operation;

/// Operations whose templates match the same paths (`/files/{id}` and
/// `/files/{name}` too).
#[derive(Debug)]
struct PathEntry {
    methods: Vec<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    /// Upper-case.
    method: String,
    operation: usize,
    discriminator: Option<Discriminator>,
    /// Its template's parameter names, in order.
    names: Vec<String>,
}

/// The query parameter that tells apart operations sharing a path and a
/// method, from the path key's fragment or query (`/#Action=RunInstances`,
/// AWS's style): clients send it as `?Action=RunInstances`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Discriminator {
    name: String,
    value: String,
}

impl Discriminator {
    fn of(path_key: &str) -> Option<Self> {
        let (_, tail) = path_key.split_once(['#', '?'])?;
        let (name, value) = tail.split('&').next()?.split_once('=')?;
        (!name.is_empty()).then(|| Self {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    fn holds(&self, query: &[(String, String)]) -> bool {
        query
            .iter()
            .any(|(name, value)| *name == self.name && *value == self.value)
    }
}

/// Maps request paths to operations.
#[derive(Debug)]
pub struct Router {
    base_path: String,
    tree: matchit::Router<usize>,
    fallback: Vec<(Regex, usize)>,
    entries: Vec<PathEntry>,
    /// Each entry's template, and (built on first need) its expression.
    templates: Vec<String>,
    expressions: std::sync::OnceLock<Vec<Regex>>,
}

/// What a path resolved to.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        operation: usize,
        path_params: Vec<(String, String)>,
    },
    /// The path exists, the method does not; carries the allowed methods.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

impl Router {
    pub fn new(base_path: &str, operations: &[Operation]) -> Self {
        let mut router = Self {
            base_path: base_path.to_owned(),
            tree: matchit::Router::new(),
            fallback: Vec::new(),
            entries: Vec::new(),
            templates: Vec::new(),
            expressions: std::sync::OnceLock::new(),
        };
        let mut by_template: Vec<(String, usize)> = Vec::new();
        for (index, op) in operations.iter().enumerate() {
            // Some specs tell operations apart with a fragment or query in
            // the path key (`/files/{id}#add_link`); requests never carry one.
            let template = op.path.split(['#', '?']).next().unwrap_or("");
            let discriminator = Discriminator::of(&op.path);
            let (route, names) = positional(template);
            let candidate = Candidate {
                method: op.method.to_ascii_uppercase(),
                operation: index,
                discriminator,
                names,
            };
            if let Some((_, existing)) = by_template.iter().find(|(r, _)| *r == route) {
                router.entries[*existing].methods.push(candidate);
                continue;
            }
            let entry = router.entries.len();
            router.entries.push(PathEntry {
                methods: vec![candidate],
            });
            by_template.push((route.clone(), entry));
            if router.tree.insert(route.clone(), entry).is_err() {
                router.fallback.push((template_regex(template), entry));
            }
            router.templates.push(template.to_owned());
        }
        // matchit does not backtrack between a parameter with a suffix
        // (`{id}.json`) and one without at the same position; a template it
        // cannot find again is matched by expression instead.
        for (entry, template) in router.templates.iter().enumerate() {
            let in_fallback = router.fallback.iter().any(|(_, e)| *e == entry);
            if !in_fallback && router.tree.at(&sample_path(template)).is_err() {
                router.fallback.push((template_regex(template), entry));
            }
        }
        router
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Resolves a raw (still percent-encoded) request path.
    pub fn at(&self, method: &str, path: &str) -> RouteMatch {
        self.at_with_query(method, path, None)
    }

    /// Resolves a request path; among operations sharing its path and
    /// method, the one whose discriminator the query holds (else the first).
    pub fn at_with_query(&self, method: &str, path: &str, query: Option<&str>) -> RouteMatch {
        self.route(method, path, query, |_, _| true)
    }

    /// Resolves a request path. Among operations sharing its path and
    /// method: the one whose discriminator the query holds, else the first
    /// whose path parameters `accepts` (Xero's `/Attachments/{AttachmentID}`,
    /// a UUID, beside `/Attachments/{FileName}`), else the first.
    pub fn route(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        accepts: impl Fn(usize, &[(String, String)]) -> bool,
    ) -> RouteMatch {
        let Some(path) = strip_base(&self.base_path, path) else {
            return RouteMatch::NotFound;
        };
        let (entry, values) = match self.tree.at(path) {
            Ok(found) => {
                // Named `p0`, `p1`… in path order, which is matchit's order.
                (*found.value, decoded(found.params.iter().map(|(_, v)| v)))
            }
            Err(_) => match self
                .fallback
                .iter()
                .find_map(|(re, entry)| re.captures(path).map(|c| (c, *entry)))
            {
                Some((captures, entry)) => (entry, decoded(captured(&captures))),
                None => return RouteMatch::NotFound,
            },
        };
        // Decoded once, and only where operations share a path and method.
        let pairs = std::cell::OnceCell::new();
        let pairs = || {
            pairs.get_or_init(|| {
                form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>()
            })
        };
        let choose = |entry: usize, mut params: Vec<(String, String)>| {
            let params_of = |candidate: &Candidate| -> Vec<(String, String)> {
                let values = params.iter().map(|(_, v)| v.clone());
                candidate.names.iter().cloned().zip(values).collect()
            };
            let of_method = |wanted: &str| {
                let candidates = || {
                    self.entries[entry]
                        .methods
                        .iter()
                        .filter(move |c| c.method.eq_ignore_ascii_case(wanted))
                };
                if candidates().nth(1).is_none() {
                    return candidates().next();
                }
                candidates()
                    .find(|c| c.discriminator.as_ref().is_some_and(|d| d.holds(pairs())))
                    .or_else(|| candidates().find(|c| accepts(c.operation, &params_of(c))))
                    .or_else(|| candidates().next())
            };
            // HEAD is answered by GET when the spec declares no HEAD.
            let chosen = of_method(method).or_else(|| {
                method
                    .eq_ignore_ascii_case("HEAD")
                    .then(|| of_method("GET"))
                    .flatten()
            })?;
            params.truncate(chosen.names.len());
            for ((name, _), named) in params.iter_mut().zip(&chosen.names) {
                named.clone_into(name);
            }
            Some(RouteMatch::Found {
                operation: chosen.operation,
                path_params: params,
            })
        };
        if let Some(found) = choose(entry, values) {
            return found;
        }
        // `/services/pipelines-email` declares only PUT, `/services/{slug}`
        // a DELETE: the template serves the method the literal path lacks.
        let expressions = self
            .expressions
            .get_or_init(|| self.templates.iter().map(|t| template_regex(t)).collect());
        for (other, expression) in expressions.iter().enumerate() {
            if other == entry {
                continue;
            }
            if let Some(captures) = expression.captures(path)
                && let Some(found) = choose(other, decoded(captured(&captures)))
            {
                return found;
            }
        }
        let mut allowed: Vec<String> = self.entries[entry]
            .methods
            .iter()
            .map(|c| c.method.clone())
            .collect();
        if allowed.iter().any(|m| m == "GET") && !allowed.iter().any(|m| m == "HEAD") {
            allowed.push("HEAD".to_owned());
        }
        allowed.sort();
        allowed.dedup();
        RouteMatch::MethodNotAllowed(allowed)
    }
}

/// A template expression's parameter values, in order.
fn captured<'c, 'p>(captures: &'c regex::Captures<'p>) -> impl Iterator<Item = &'p str> + 'c {
    captures
        .iter()
        .skip(1)
        .map(|m| m.map_or("", |m| m.as_str()))
}

/// Path parameter values, percent-decoded; named once the operation is chosen.
fn decoded<'p>(values: impl Iterator<Item = &'p str>) -> Vec<(String, String)> {
    values
        .map(|v| {
            let value = percent_decode_str(v).decode_utf8_lossy().into_owned();
            (String::new(), value)
        })
        .collect()
}

fn strip_base<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(if path.is_empty() { "/" } else { path });
    }
    let rest = path.strip_prefix(base)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// `/pets/{petId}/photos/{id}` → (`/pets/{p0}/photos/{p1}`, [petId, id]).
fn positional(template: &str) -> (String, Vec<String>) {
    let mut route = String::with_capacity(template.len());
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        route.push_str(&rest[..open]);
        route.push_str(&format!("{{p{}}}", names.len()));
        names.push(rest[open + 1..open + close].to_owned());
        rest = &rest[open + close + 1..];
    }
    route.push_str(&rest.replace('{', "{{").replace('}', "}}"));
    (route, names)
}

/// A concrete path the template matches, for the self-check.
fn sample_path(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push('p');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn template_regex(template: &str) -> Regex {
    let mut pattern = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        pattern.push_str(&regex::escape(&rest[..open]));
        pattern.push_str("([^/]+?)");
        rest = &rest[open + close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    Regex::new(&pattern).unwrap_or_else(|_| Regex::new("^$").expect("empty pattern compiles"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str) -> Operation {
        Operation {
            id: format!("{method}{path}"),
            method: method.to_owned(),
            path: path.to_owned(),
            pointer: String::new(),
            parameters: Vec::new(),
            request_body: None,
            responses: Vec::new(),
            security: Vec::new(),
            publishable: false,
        }
    }

    #[test]
    fn a_template_serves_the_method_a_literal_path_lacks() {
        let router = Router::new(
            "",
            &[
                op("PUT", "/services/pipelines-email"),
                op("DELETE", "/services/{slug}"),
            ],
        );
        assert_eq!(
            router.at("DELETE", "/services/pipelines-email"),
            RouteMatch::Found {
                operation: 1,
                path_params: vec![("slug".into(), "pipelines-email".into())]
            }
        );
        assert_eq!(
            router.at("PATCH", "/services/pipelines-email"),
            RouteMatch::MethodNotAllowed(vec!["PUT".into()])
        );
    }

    #[test]
    fn a_query_discriminator_tells_apart_operations_on_one_path() {
        let router = Router::new(
            "",
            &[
                op("GET", "/#Action=DescribeVpcs"),
                op("GET", "/#Action=RunInstances"),
                op("POST", "/#Action=RunInstances"),
            ],
        );
        let operation = |query| match router.at_with_query("GET", "/", query) {
            RouteMatch::Found { operation, .. } => operation,
            other => panic!("{other:?}"),
        };
        assert_eq!(operation(Some("Action=RunInstances&Version=1")), 1);
        assert_eq!(operation(Some("Version=1&Action=DescribeVpcs")), 0);
        assert_eq!(operation(None), 0);
        assert_eq!(
            router.at("DELETE", "/"),
            RouteMatch::MethodNotAllowed(vec!["GET".into(), "HEAD".into(), "POST".into()])
        );
    }

    #[test]
    fn literal_segments_beat_templates_and_names_may_differ() {
        let ops = vec![
            op("GET", "/pets/{petId}"),
            op("GET", "/pets/mine"),
            op("POST", "/pets/{id}/photos"),
            op("GET", "/files/{name}.{ext}"),
            op("GET", "/a/{x}.json"),
            op("GET", "/a/{x}/b/{y}.json"),
            op("PUT", "/docs/{name}#rename"),
        ];
        let router = Router::new("/v1", &ops);
        assert_eq!(
            router.at("GET", "/v1/pets/mine"),
            RouteMatch::Found {
                operation: 1,
                path_params: vec![]
            }
        );
        assert_eq!(
            router.at("GET", "/v1/pets/a%20b"),
            RouteMatch::Found {
                operation: 0,
                path_params: vec![("petId".into(), "a b".into())]
            }
        );
        assert_eq!(
            router.at("POST", "/v1/pets/7/photos"),
            RouteMatch::Found {
                operation: 2,
                path_params: vec![("id".into(), "7".into())]
            }
        );
        assert_eq!(
            router.at("GET", "/v1/files/report.pdf"),
            RouteMatch::Found {
                operation: 3,
                path_params: vec![
                    ("name".into(), "report".into()),
                    ("ext".into(), "pdf".into())
                ]
            }
        );
        assert!(matches!(
            router.at("GET", "/v1/a/1/b/2.json"),
            RouteMatch::Found { operation: 5, .. }
        ));
        assert!(matches!(
            router.at("GET", "/v1/a/1.json"),
            RouteMatch::Found { operation: 4, .. }
        ));
        assert!(matches!(
            router.at("PUT", "/v1/docs/x"),
            RouteMatch::Found { operation: 6, .. }
        ));
        assert_eq!(
            router.at("DELETE", "/v1/pets/7"),
            RouteMatch::MethodNotAllowed(vec!["GET".into(), "HEAD".into()])
        );
        assert_eq!(router.at("GET", "/pets/7"), RouteMatch::NotFound);
        assert_eq!(router.at("GET", "/v1x/pets/7"), RouteMatch::NotFound);
    }
}
