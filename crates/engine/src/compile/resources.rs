//! Stateful resources inferred from the spec: `POST /pets` creates in
//! collection `pets`, `GET /pets/{petId}` reads from it, and so on. The
//! extension `x-sandbox-resource` on an operation overrides the guess:
//! a collection name, `false`, or `{collection, action, id}`; at the
//! document root, `x-sandbox-resources: false` turns inference off.

use std::collections::BTreeMap;

use sbx_spec::{Operation, ParamLocation, StatusKey, pointer};
use serde_json::Value;

use crate::compile::project::FileProblem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    List,
    Get,
    /// PUT: the body replaces the record.
    Replace,
    /// PATCH, or POST on an item (Stripe's convention): merged in.
    Update,
    Delete,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "create" => Self::Create,
            "list" => Self::List,
            "get" => Self::Get,
            "replace" => Self::Replace,
            "update" => Self::Update,
            "delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// How new ids of a collection look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdKind {
    Integer,
    Uuid,
    /// `{prefix}{random}`, e.g. `pay_` + 14 characters.
    Prefixed(String),
    /// Drawn from the id member's `pattern` (`^AC[0-9a-f]{32}$`).
    Pattern {
        pattern: String,
        min: usize,
        max: usize,
    },
}

#[derive(Debug, Clone)]
pub struct CollectionSpec {
    pub name: String,
    /// The record member holding the id.
    pub id_field: String,
    pub id_kind: IdKind,
    /// The member a single resource is wrapped in (`data` in JSON:API's
    /// `{data: {id, type, attributes}}`): ids, links and list items live in it.
    pub wrapper: Option<String>,
    /// Request member → record member, from `project.yaml`'s `collections:`.
    pub request_members: BTreeMap<String, String>,
}

impl CollectionSpec {
    /// The resource inside a record (the record itself unless wrapped).
    pub fn resource<'v>(&self, record: &'v Value) -> &'v Value {
        match &self.wrapper {
            Some(wrapper) => record.get(wrapper).unwrap_or(record),
            None => record,
        }
    }

    pub fn resource_mut<'v>(&self, record: &'v mut Value) -> &'v mut Value {
        match &self.wrapper {
            Some(wrapper) if record.get(wrapper).is_some_and(Value::is_object) => {
                &mut record[wrapper.as_str()]
            }
            _ => record,
        }
    }
}

/// Where a list response puts its records and paging facts.
#[derive(Debug, Clone, Default)]
pub struct ListShape {
    /// The array member of an envelope object; `None`: the body is the array.
    pub items_field: Option<String>,
    pub has_more_field: Option<String>,
    pub total_field: Option<String>,
    pub next_cursor_field: Option<String>,
    pub limit_param: Option<String>,
    pub offset_param: Option<String>,
    pub page_param: Option<String>,
    pub cursor_param: Option<String>,
    pub default_limit: usize,
    /// Query parameters named like a record member: equality filters.
    pub filters: Vec<String>,
    /// Envelope members holding links to pages (`next_page_uri`, `next`).
    pub links: Vec<(String, PageLink)>,
    /// The operation declares a `Link` response header (RFC 8288).
    pub link_header: bool,
}

/// Which page a link member points at, and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLink {
    pub page: Page,
    /// `…_uri` members hold the path (Twilio); `…_url`, `next`, `…Link`
    /// an absolute URL.
    pub absolute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Next,
    Previous,
    First,
    Last,
    Current,
}

/// A list envelope's member that links to a page, by its name.
fn page_link(name: &str) -> Option<PageLink> {
    // `@odata.nextLink` too.
    let lower = crate::loose_name(name).replace(['@', '.'], "");
    let page = match lower.as_str() {
        "next" | "nextpage" | "nextpageuri" | "nextpageurl" | "nexturl" | "nexturi"
        | "nextlink" | "odatanextlink" | "nexthref" => Page::Next,
        "previous" | "prev" | "previouspage" | "previouspageuri" | "previouspageurl"
        | "prevpageurl" | "prevurl" | "previousurl" | "previouslink" | "prevlink" => Page::Previous,
        "firstpageuri" | "firstpageurl" | "first" | "firstlink" => Page::First,
        "lastpageuri" | "lastpageurl" | "last" | "lastlink" => Page::Last,
        "uri" | "url" | "self" | "selflink" | "href" => Page::Current,
        _ => return None,
    };
    Some(PageLink {
        page,
        absolute: !lower.ends_with("uri"),
    })
}

/// An operation bound to a collection.
#[derive(Debug, Clone)]
pub struct Binding {
    pub collection: usize,
    pub action: Action,
    /// The path parameter holding the record id (item operations).
    pub id_param: Option<String>,
    /// Path parameters above the collection, in order: the record's scope.
    pub scope_params: Vec<String>,
    pub list: Option<ListShape>,
}

#[derive(Debug, Default)]
pub struct Resources {
    pub collections: Vec<CollectionSpec>,
    /// One entry per operation.
    pub bindings: Vec<Option<Binding>>,
}

impl Resources {
    pub fn collection(&self, name: &str) -> Option<(usize, &CollectionSpec)> {
        self.collections
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }
}

/// Largest page a list answers when the spec names no limit parameter.
pub const MAX_UNPAGED: usize = 1_000;

struct Candidate {
    operation: usize,
    name: String,
    action: Action,
    id_param: Option<String>,
    scope_params: Vec<String>,
    explicit: bool,
}

/// Binds operations to collections. Collections exist where something
/// creates records (a create operation) or where fixtures seed them;
/// read-only paths of anything else stay synthesized.
pub fn infer(
    document: &Value,
    operations: &[Operation],
    fixture_collections: &[&str],
    problems: &mut Vec<FileProblem>,
) -> Resources {
    // `x-sandbox-resources: false` at the root: only explicit bindings.
    let inferring = document.get("x-sandbox-resources") != Some(&Value::Bool(false));
    let mut candidates = Vec::new();
    for (index, operation) in operations.iter().enumerate() {
        let extension = document
            .pointer(&operation.pointer)
            .and_then(|op| op.get("x-sandbox-resource"));
        if extension.is_none() && !inferring {
            continue;
        }
        match candidate(index, operation, extension) {
            Ok(Some(found)) => candidates.push(found),
            Ok(None) => {}
            Err(message) => problems.push(
                FileProblem::new("openapi", message)
                    .pointer(pointer::join(&operation.pointer, "x-sandbox-resource")),
            ),
        }
    }
    let mut names: Vec<String> = Vec::new();
    for c in &candidates {
        let wanted = c.explicit
            || c.action == Action::Create
            || fixture_collections.contains(&c.name.as_str());
        if wanted && !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    let mut resources = Resources {
        collections: Vec::new(),
        bindings: vec![None; operations.len()],
    };
    for name in names {
        let members: Vec<&Candidate> = candidates.iter().filter(|c| c.name == name).collect();
        let spec = collection_spec(document, operations, &name, &members);
        let index = resources.collections.len();
        resources.collections.push(spec);
        for member in members {
            let operation = &operations[member.operation];
            let list = (member.action == Action::List).then(|| list_shape(document, operation));
            resources.bindings[member.operation] = Some(Binding {
                collection: index,
                action: member.action,
                id_param: member.id_param.clone(),
                scope_params: member.scope_params.clone(),
                list,
            });
        }
    }
    resources
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// `{id}` (or `{Sid}.json`: a format suffix is no part of the id) → `id`;
/// a segment of literals or of several parameters (`{type}-{version}`) is none.
fn param_name(segment: &str) -> Option<&str> {
    let inner = segment.strip_prefix('{')?;
    let (name, rest) = inner.split_once('}')?;
    (!name.is_empty() && !name.contains('{') && (rest.is_empty() || format_suffix(rest)))
        .then_some(name)
}

/// `.json`, `.xml`: a response format named in the path (Twilio's API).
fn format_suffix(text: &str) -> bool {
    text.strip_prefix('.').is_some_and(|ext| {
        !ext.is_empty() && ext.len() <= 8 && ext.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The collection a literal segment names: `Messages.json` → `Messages`.
fn literal_name(segment: &str) -> &str {
    match segment.rsplit_once('.') {
        Some((name, ext)) if !name.is_empty() && format_suffix(&format!(".{ext}")) => name,
        _ => segment,
    }
}

/// A segment mixing literals and parameters (`{type}-{version}`,
/// `v{major}`): no record is addressed by it.
fn mixed(segment: &str) -> bool {
    segment.contains('{') && param_name(segment).is_none()
}

fn looks_plural(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    lower.ends_with('s') && !["ss", "us", "is"].iter().any(|end| lower.ends_with(end))
}

fn candidate(
    index: usize,
    operation: &Operation,
    extension: Option<&Value>,
) -> Result<Option<Candidate>, String> {
    let parts = segments(&operation.path);
    if extension.is_none() && parts.iter().any(|s| mixed(s)) {
        return Ok(None);
    }
    let (item_param, collection_parts) = match parts.split_last() {
        Some((last, rest)) => match param_name(last) {
            Some(name) => (Some(name.to_owned()), rest),
            None => (None, parts.as_slice()),
        },
        None => (None, parts.as_slice()),
    };
    // Below a parameter, only plural nouns are collections
    // (`/customers/{id}/payments`); `/payments/{id}/refund` is an action.
    let nested = collection_parts.len() >= 2
        && param_name(collection_parts[collection_parts.len() - 2]).is_some();
    let inferred_name = collection_parts
        .last()
        .filter(|s| param_name(s).is_none())
        .map(|s| literal_name(s))
        .filter(|s| !nested || looks_plural(s))
        .map(str::to_owned);
    let scope_params: Vec<String> = collection_parts
        .iter()
        .filter_map(|s| param_name(s).map(str::to_owned))
        .collect();
    let method = operation.method.to_ascii_uppercase();
    let inferred_action = match (item_param.is_some(), method.as_str()) {
        (false, "POST") => Some(Action::Create),
        (false, "GET") => Some(Action::List),
        (true, "GET") => Some(Action::Get),
        (true, "PUT") => Some(Action::Replace),
        (true, "PATCH" | "POST") => Some(Action::Update),
        (true, "DELETE") => Some(Action::Delete),
        _ => None,
    };
    let (name, action, id_param, explicit) = match extension {
        None => (inferred_name, inferred_action, item_param, false),
        Some(Value::Bool(false)) => return Ok(None),
        Some(Value::String(name)) => (Some(name.clone()), inferred_action, item_param, true),
        Some(Value::Object(map)) => {
            let name = match map.get("collection") {
                Some(Value::String(name)) => Some(name.clone()),
                Some(_) => return Err("`collection` must be a string".to_owned()),
                None => inferred_name,
            };
            let action = match map.get("action") {
                Some(Value::String(text)) => Some(Action::parse(text).ok_or_else(|| {
                    format!(
                        "unknown action {text:?}; use create, list, get, replace, update or delete"
                    )
                })?),
                Some(_) => return Err("`action` must be a string".to_owned()),
                None => inferred_action,
            };
            let id_param = match map.get("id") {
                Some(Value::String(id)) => {
                    if !operation
                        .parameters
                        .iter()
                        .any(|p| p.location == ParamLocation::Path && p.name == *id)
                    {
                        return Err(format!(
                            "`id` names {id:?}, which is no path parameter of this operation"
                        ));
                    }
                    Some(id.clone())
                }
                Some(_) => return Err("`id` must be a path parameter name".to_owned()),
                None => item_param,
            };
            (name, action, id_param, true)
        }
        Some(_) => {
            return Err(
                "x-sandbox-resource must be a collection name, false, or {collection, action, id}"
                    .to_owned(),
            );
        }
    };
    let (Some(name), Some(action)) = (name, action) else {
        if explicit {
            return Err(format!(
                "cannot tell the collection or action of {} {}; name both",
                operation.method, operation.path
            ));
        }
        return Ok(None);
    };
    let item_action = matches!(
        action,
        Action::Get | Action::Replace | Action::Update | Action::Delete
    );
    if item_action && id_param.is_none() {
        return Err(format!(
            "action {action:?} needs the id's path parameter; set `id`"
        ));
    }
    Ok(Some(Candidate {
        operation: index,
        name,
        action,
        id_param: if item_action { id_param } else { None },
        scope_params,
        explicit,
    }))
}

/// The JSON schema of an operation's first 2xx response, `$ref`s followed.
pub fn success_schema<'a>(document: &'a Value, operation: &Operation) -> Option<&'a Value> {
    let response = operation
        .responses
        .iter()
        .find(|r| matches!(r.status, StatusKey::Code(200..=299) | StatusKey::Range(2)))?;
    let media = response
        .content
        .iter()
        .find(|m| crate::request::body::is_json(&crate::request::body::essence(&m.media_type)))?;
    let schema = document.pointer(media.schema_pointer.as_ref()?)?;
    pointer::follow(document, schema)
}

/// How deep `allOf` is followed when collecting properties (cyclic specs end here).
const MAX_ALL_OF_DEPTH: usize = 16;

/// The properties of an object schema, `allOf` parts included, in order.
pub fn properties<'a>(document: &'a Value, schema: &'a Value) -> Vec<(&'a str, &'a Value)> {
    properties_within(document, schema, 0)
}

fn properties_within<'a>(
    document: &'a Value,
    schema: &'a Value,
    depth: usize,
) -> Vec<(&'a str, &'a Value)> {
    let mut found = Vec::new();
    if depth > MAX_ALL_OF_DEPTH {
        return found;
    }
    // `allOf: [Base, {extension}]`: the base's members come first.
    if let Some(Value::Array(parts)) = schema.get("allOf") {
        for part in parts {
            if let Some(part) = pointer::follow(document, part) {
                found.extend(properties_within(document, part, depth + 1));
            }
        }
    }
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, value) in props {
            found.push((
                name.as_str(),
                pointer::follow(document, value).unwrap_or(value),
            ));
        }
    }
    found
}

fn collection_spec(
    document: &Value,
    operations: &[Operation],
    name: &str,
    members: &[&Candidate],
) -> CollectionSpec {
    let record = members
        .iter()
        .filter(|m| m.action == Action::Get)
        .chain(members.iter().filter(|m| m.action == Action::Create))
        .find_map(|m| success_schema(document, &operations[m.operation]));
    let mut props = record.map(|r| properties(document, r)).unwrap_or_default();
    let id_param = members.iter().find_map(|m| m.id_param.as_deref());
    // `{data: {id, …}}` with no id of its own: the resource is wrapped.
    let wrapped = props
        .iter()
        .find(|(name, _)| *name == "data")
        .map(|(_, schema)| properties(document, schema))
        .filter(|inner| inner.iter().any(|(n, _)| *n == "id"))
        .filter(|_| id_member(&props, id_param).is_none());
    let wrapper = wrapped.as_ref().map(|_| "data".to_owned());
    if let Some(inner) = wrapped {
        props = inner;
    }
    let id_field = id_member(&props, id_param).unwrap_or("id").to_owned();
    let id_schema = props.iter().find(|(n, _)| *n == id_field).map(|(_, s)| *s);
    let id_kind = match id_schema {
        Some(s) if sbx_spec::declared_types(s).contains(&"integer") => IdKind::Integer,
        Some(s) if s.get("format").and_then(Value::as_str) == Some("uuid") => IdKind::Uuid,
        Some(s) if let Some(pattern) = s.get("pattern").and_then(Value::as_str) => {
            let bound = |key: &str| s.get(key).and_then(Value::as_u64).map(|n| n as usize);
            IdKind::Pattern {
                pattern: pattern.to_owned(),
                min: bound("minLength").unwrap_or(1),
                max: bound("maxLength").unwrap_or(64).max(1),
            }
        }
        Some(s) => IdKind::Prefixed(prefix_from_example(s).unwrap_or_else(|| default_prefix(name))),
        None => IdKind::Prefixed(default_prefix(name)),
    };
    CollectionSpec {
        name: name.to_owned(),
        id_field,
        id_kind,
        wrapper,
        request_members: BTreeMap::new(),
    }
}

/// The record member the item path's parameter names: the member named
/// like the parameter ignoring case, `_` and `-` (Twilio's `{Sid}` is
/// `sid`); else the longest member (3 characters or more) the parameter
/// ends with (GitHub's `{issue_number}` is `number`); else `id`; else one
/// ending in `id`.
fn id_member<'a>(props: &[(&'a str, &Value)], id_param: Option<&str>) -> Option<&'a str> {
    let names = || props.iter().map(|(name, _)| *name);
    let normalized = crate::loose_name;
    if let Some(param) = id_param.map(normalized) {
        if let Some(found) = names().find(|n| normalized(n) == param) {
            return Some(found);
        }
        let suffix = names()
            .filter(|n| n.len() >= 3 && param.ends_with(&normalized(n)))
            .max_by_key(|n| n.len());
        if suffix.is_some() {
            return suffix;
        }
    }
    names()
        .find(|n| *n == "id")
        .or_else(|| names().find(|n| n.to_ascii_lowercase().ends_with("id")))
}

/// `pay_` from an example like `pay_1Nv0FGQ9`.
fn prefix_from_example(schema: &Value) -> Option<String> {
    let example = schema
        .get("example")
        .or_else(|| schema.get("examples").and_then(|e| e.get(0)))?
        .as_str()?;
    let (prefix, rest) = example.split_once('_')?;
    (!prefix.is_empty()
        && prefix.len() <= 8
        && !rest.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then(|| format!("{prefix}_"))
}

/// `pet_` for `pets`, `cus_` for `customers`.
fn default_prefix(collection: &str) -> String {
    let letters: String = collection
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect::<String>()
        .to_ascii_lowercase();
    if letters.is_empty() {
        "id_".to_owned()
    } else {
        format!("{letters}_")
    }
}

const ITEMS_FIELDS: [&str; 7] = [
    "data", "items", "results", "records", "content", "values", "entries",
];
const LIMIT_PARAMS: [&str; 10] = [
    "limit",
    "per_page",
    "perpage",
    "page_size",
    "pagesize",
    "size",
    "count",
    "max_results",
    "maxresults",
    "top",
];
const OFFSET_PARAMS: [&str; 3] = ["offset", "skip", "start"];
const PAGE_PARAMS: [&str; 3] = ["page", "page_number", "pagenumber"];
const CURSOR_PARAMS: [&str; 8] = [
    "cursor",
    "after",
    "starting_after",
    "page_token",
    "pagetoken",
    "next",
    "next_token",
    "continuation_token",
];

fn list_shape(document: &Value, operation: &Operation) -> ListShape {
    let mut shape = ListShape {
        default_limit: MAX_UNPAGED,
        ..ListShape::default()
    };
    let schema = success_schema(document, operation);
    let mut record_members: Vec<String> = Vec::new();
    if let Some(schema) = schema {
        let props = properties(document, schema);
        let is_array = sbx_spec::declared_types(schema).contains(&"array");
        let array_member = |n: &&&str| {
            props
                .iter()
                .any(|(p, s)| p == *n && sbx_spec::declared_types(s).contains(&"array"))
        };
        let items_schema = if is_array {
            schema.get("items")
        } else {
            let field = ITEMS_FIELDS
                .iter()
                .find(array_member)
                .map(|s| (*s).to_owned())
                .or_else(|| {
                    props
                        .iter()
                        .find(|(_, s)| sbx_spec::declared_types(s).contains(&"array"))
                        .map(|(n, _)| (*n).to_owned())
                });
            let items = field
                .as_ref()
                .and_then(|f| props.iter().find(|(n, _)| n == f))
                .and_then(|(_, s)| s.get("items"));
            shape.items_field = field;
            let member = |names: &[&str]| {
                names
                    .iter()
                    .find(|n| props.iter().any(|(p, _)| p == *n))
                    .map(|s| (*s).to_owned())
            };
            shape.has_more_field = member(&["has_more", "hasMore", "has_next", "hasNext"]);
            shape.total_field = member(&["total", "total_count", "totalCount", "count"]);
            shape.links = props
                .iter()
                .filter(|(_, s)| {
                    let types = sbx_spec::declared_types(s);
                    types.is_empty() || types.contains(&"string")
                })
                .filter_map(|(n, _)| page_link(n).map(|link| ((*n).to_owned(), link)))
                .collect();
            shape.next_cursor_field = member(&[
                "next_cursor",
                "nextCursor",
                "next_page_token",
                "nextPageToken",
                "cursor",
            ]);
            items
        };
        if let Some(items) = items_schema.and_then(|i| pointer::follow(document, i)) {
            record_members = properties(document, items)
                .into_iter()
                .map(|(n, _)| n.to_owned())
                .collect();
        }
    }
    let mut defaults: BTreeMap<String, usize> = BTreeMap::new();
    for param in &operation.parameters {
        if param.location != ParamLocation::Query {
            continue;
        }
        let lower = param.name.to_ascii_lowercase();
        let set = |slot: &mut Option<String>, names: &[&str]| {
            if slot.is_none() && names.contains(&lower.as_str()) {
                *slot = Some(param.name.clone());
                true
            } else {
                false
            }
        };
        if set(&mut shape.limit_param, &LIMIT_PARAMS) {
            let default = param
                .schema
                .get("default")
                .and_then(Value::as_u64)
                .unwrap_or(20);
            defaults.insert(param.name.clone(), default as usize);
        } else if !(set(&mut shape.offset_param, &OFFSET_PARAMS)
            || set(&mut shape.page_param, &PAGE_PARAMS)
            || set(&mut shape.cursor_param, &CURSOR_PARAMS))
            && record_members.contains(&param.name)
        {
            shape.filters.push(param.name.clone());
        }
    }
    shape.link_header = operation.responses.iter().any(|r| {
        matches!(r.status, StatusKey::Code(200..=299) | StatusKey::Range(2))
            && r.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("link"))
    });
    if let Some(limit) = &shape.limit_param {
        shape.default_limit = defaults
            .get(limit)
            .copied()
            .unwrap_or(20)
            .clamp(1, MAX_UNPAGED);
    }
    shape
}
