//! Swagger 2.0 → OpenAPI 3.0.3, following the mapping of the official
//! upgrade guide: `definitions`, body and form parameters, `consumes` /
//! `produces`, `collectionFormat`, security definitions and `x-nullable`.

use serde_json::{Map, Value, json};

use crate::SpecError;

const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
];

pub fn convert(mut doc: Value) -> Result<Value, SpecError> {
    let Some(src) = doc.as_object_mut() else {
        return Err(SpecError::single("", "the document must be an object"));
    };
    let body_params = body_parameter_names(src);
    let mut out = Map::new();
    out.insert("openapi".into(), json!("3.0.3"));
    out.insert(
        "info".into(),
        src.remove("info")
            .unwrap_or_else(|| json!({"title": "API", "version": "1"})),
    );
    out.insert("servers".into(), json!([{"url": server_url(src)}]));
    let global_consumes = string_list(src.get("consumes"));
    let global_produces = string_list(src.get("produces"));

    let mut components = Map::new();
    if let Some(Value::Object(defs)) = src.remove("definitions") {
        components.insert("schemas".into(), Value::Object(defs));
    }
    if let Some(Value::Object(params)) = src.remove("parameters") {
        let mut parameters = Map::new();
        let mut bodies = Map::new();
        for (name, param) in params {
            match param.get("in").and_then(Value::as_str) {
                Some("body") => {
                    bodies.insert(name, body_to_request_body(&param, &global_consumes));
                }
                _ => {
                    parameters.insert(name, convert_parameter(param));
                }
            }
        }
        components.insert("parameters".into(), Value::Object(parameters));
        components.insert("requestBodies".into(), Value::Object(bodies));
    }
    if let Some(Value::Object(responses)) = src.remove("responses") {
        let converted = responses
            .into_iter()
            .map(|(k, v)| (k, convert_response(v, &global_produces)))
            .collect();
        components.insert("responses".into(), Value::Object(converted));
    }
    if let Some(Value::Object(defs)) = src.remove("securityDefinitions") {
        let schemes = defs
            .into_iter()
            .map(|(k, v)| (k, convert_security_scheme(v)))
            .collect();
        components.insert("securitySchemes".into(), Value::Object(schemes));
    }
    out.insert("components".into(), Value::Object(components));

    let mut paths = Map::new();
    if let Some(Value::Object(src_paths)) = src.remove("paths") {
        for (path, item) in src_paths {
            paths.insert(
                path,
                convert_path_item(item, &global_consumes, &global_produces, &body_params),
            );
        }
    }
    out.insert("paths".into(), Value::Object(paths));
    for key in ["security", "tags", "externalDocs"] {
        if let Some(v) = src.remove(key) {
            out.insert(key.into(), v);
        }
    }
    for (key, value) in std::mem::take(src) {
        if key.starts_with("x-") {
            out.insert(key, value);
        }
    }
    let mut out = Value::Object(out);
    rewrite_refs(&mut out, &body_params);
    convert_schemas_in_place(&mut out);
    Ok(out)
}

fn body_parameter_names(src: &Map<String, Value>) -> Vec<String> {
    src.get("parameters")
        .and_then(Value::as_object)
        .map(|params| {
            params
                .iter()
                .filter(|(_, p)| p.get("in").and_then(Value::as_str) == Some("body"))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn server_url(src: &Map<String, Value>) -> String {
    let base_path = src.get("basePath").and_then(Value::as_str).unwrap_or("");
    match src.get("host").and_then(Value::as_str) {
        Some(host) => {
            let scheme = src
                .get("schemes")
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(Value::as_str)
                .unwrap_or("https");
            format!("{scheme}://{host}{base_path}")
        }
        None if base_path.is_empty() => "/".to_owned(),
        None => base_path.to_owned(),
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn or_json(types: Vec<String>) -> Vec<String> {
    if types.is_empty() {
        vec!["application/json".to_owned()]
    } else {
        types
    }
}

fn convert_path_item(
    item: Value,
    consumes: &[String],
    produces: &[String],
    body_params: &[String],
) -> Value {
    let Value::Object(item) = item else {
        return item;
    };
    let mut out = Map::new();
    for (key, value) in item {
        match key.as_str() {
            "parameters" => {
                let (params, _) = split_parameters(value, consumes, body_params);
                out.insert(key, Value::Array(params));
            }
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" => {
                out.insert(
                    key,
                    convert_operation(value, consumes, produces, body_params),
                );
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    Value::Object(out)
}

fn convert_operation(
    op: Value,
    consumes: &[String],
    produces: &[String],
    body_params: &[String],
) -> Value {
    let Value::Object(mut op) = op else { return op };
    let consumes = op
        .remove("consumes")
        .map(|c| string_list(Some(&c)))
        .unwrap_or_else(|| consumes.to_vec());
    let produces = op
        .remove("produces")
        .map(|p| string_list(Some(&p)))
        .unwrap_or_else(|| produces.to_vec());
    if let Some(params) = op.remove("parameters") {
        let (params, body) = split_parameters(params, &consumes, body_params);
        op.insert("parameters".into(), Value::Array(params));
        if let Some(body) = body {
            op.insert("requestBody".into(), body);
        }
    }
    if let Some(Value::Object(responses)) = op.remove("responses") {
        let converted = responses
            .into_iter()
            .map(|(k, v)| (k, convert_response(v, &produces)))
            .collect();
        op.insert("responses".into(), Value::Object(converted));
    }
    op.remove("schemes");
    Value::Object(op)
}

/// Splits 2.0 parameters into 3.0 parameters and an optional request body.
fn split_parameters(
    params: Value,
    consumes: &[String],
    body_params: &[String],
) -> (Vec<Value>, Option<Value>) {
    let Value::Array(params) = params else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    let mut body = None;
    let mut form_fields = Map::new();
    let mut form_required = Vec::new();
    let mut form_encoding = Map::new();
    let mut has_file = false;
    for param in params {
        match param.get("in").and_then(Value::as_str) {
            Some("body") => body = Some(body_to_request_body(&param, consumes)),
            Some("formData") => {
                let name = param
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("field")
                    .to_owned();
                if param.get("required").and_then(Value::as_bool) == Some(true) {
                    form_required.push(Value::String(name.clone()));
                }
                let schema = schema_from_parameter(&param);
                if let Some(encoding) = form_array_encoding(&param) {
                    form_encoding.insert(name.clone(), encoding);
                }
                has_file |= schema.get("format").and_then(Value::as_str) == Some("binary");
                form_fields.insert(name, schema);
            }
            _ if is_body_reference(&param, body_params) => body = Some(param),
            _ if param.get("$ref").is_some() => out.push(param),
            _ => out.push(convert_parameter(param)),
        }
    }
    if !form_fields.is_empty() {
        let mut schema = json!({"type": "object", "properties": form_fields});
        if !form_required.is_empty() {
            schema["required"] = Value::Array(form_required);
        }
        let media_types: Vec<String> = consumes
            .iter()
            .filter(|c| c.contains("form"))
            .cloned()
            .collect();
        let media_types = if media_types.is_empty() {
            vec![
                if has_file {
                    "multipart/form-data"
                } else {
                    "application/x-www-form-urlencoded"
                }
                .to_owned(),
            ]
        } else {
            media_types
        };
        let content: Map<String, Value> = media_types
            .into_iter()
            .map(|m| {
                let media = json!({"schema": schema.clone(), "encoding": form_encoding.clone()});
                (m, media)
            })
            .collect();
        body = Some(json!({"content": content}));
    }
    (out, body)
}

/// The 3.0 encoding of a 2.0 array form field: `multi` repeats the key,
/// `csv` (the default), `ssv` and `pipes` join the items.
fn form_array_encoding(param: &Value) -> Option<Value> {
    if param.get("type").and_then(Value::as_str) != Some("array") {
        return None;
    }
    Some(
        match param.get("collectionFormat").and_then(Value::as_str) {
            Some("multi") => json!({"style": "form", "explode": true}),
            Some("ssv") => json!({"style": "spaceDelimited", "explode": false}),
            Some("pipes") => json!({"style": "pipeDelimited", "explode": false}),
            _ => json!({"style": "form", "explode": false}),
        },
    )
}

fn is_body_reference(param: &Value, body_params: &[String]) -> bool {
    param
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/parameters/"))
        .is_some_and(|name| {
            body_params
                .iter()
                .any(|b| *b == name.replace("~1", "/").replace("~0", "~"))
        })
}

fn body_to_request_body(param: &Value, consumes: &[String]) -> Value {
    let schema = param.get("schema").cloned().unwrap_or_else(|| json!({}));
    let content: Map<String, Value> = or_json(consumes.to_vec())
        .into_iter()
        .filter(|m| !m.contains("form"))
        .map(|m| (m, json!({"schema": schema.clone()})))
        .collect();
    let content = if content.is_empty() {
        let mut only_json = Map::new();
        only_json.insert("application/json".into(), json!({"schema": schema}));
        only_json
    } else {
        content
    };
    let mut body = json!({"content": content});
    if param.get("required").and_then(Value::as_bool) == Some(true) {
        body["required"] = json!(true);
    }
    if let Some(description) = param.get("description") {
        body["description"] = description.clone();
    }
    body
}

fn schema_from_parameter(param: &Value) -> Value {
    let mut schema = Map::new();
    if let Some(object) = param.as_object() {
        for keyword in SCHEMA_KEYWORDS {
            if let Some(v) = object.get(*keyword) {
                schema.insert((*keyword).to_owned(), v.clone());
            }
        }
        if let Some(true) = object.get("x-nullable").and_then(Value::as_bool) {
            schema.insert("nullable".into(), json!(true));
        }
    }
    if schema.get("type").and_then(Value::as_str) == Some("file") {
        schema.insert("type".into(), json!("string"));
        schema.insert("format".into(), json!("binary"));
    }
    Value::Object(schema)
}

fn convert_parameter(param: Value) -> Value {
    let Value::Object(src) = &param else {
        return param;
    };
    if src.contains_key("$ref") {
        return param;
    }
    let mut out = Map::new();
    for key in [
        "name",
        "in",
        "description",
        "required",
        "deprecated",
        "allowEmptyValue",
    ] {
        if let Some(v) = src.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    let location = src.get("in").and_then(Value::as_str).unwrap_or("query");
    if location == "path" {
        out.insert("required".into(), json!(true));
    }
    match src.get("collectionFormat").and_then(Value::as_str) {
        Some("multi") => {
            out.insert("style".into(), json!("form"));
            out.insert("explode".into(), json!(true));
        }
        Some("ssv") => {
            out.insert("style".into(), json!("spaceDelimited"));
            out.insert("explode".into(), json!(false));
        }
        Some("pipes") => {
            out.insert("style".into(), json!("pipeDelimited"));
            out.insert("explode".into(), json!(false));
        }
        _ if src.get("type").and_then(Value::as_str) == Some("array") => {
            // csv (and tsv, which 3.0 cannot express) is the 2.0 default.
            let style = if matches!(location, "query" | "cookie") {
                "form"
            } else {
                "simple"
            };
            out.insert("style".into(), json!(style));
            out.insert("explode".into(), json!(false));
        }
        _ => {}
    }
    out.insert("schema".into(), schema_from_parameter(&param));
    Value::Object(out)
}

fn convert_response(response: Value, produces: &[String]) -> Value {
    let Value::Object(mut src) = response else {
        return response;
    };
    if src.contains_key("$ref") {
        return Value::Object(src);
    }
    let mut out = Map::new();
    out.insert(
        "description".into(),
        src.remove("description").unwrap_or_else(|| json!("")),
    );
    let examples = match src.remove("examples") {
        Some(Value::Object(examples)) => examples,
        _ => Map::new(),
    };
    if let Some(schema) = src.remove("schema") {
        let mut content = Map::new();
        for media_type in or_json(produces.to_vec()) {
            let mut media = json!({"schema": schema.clone()});
            if let Some(example) = examples.get(&media_type) {
                media["example"] = example.clone();
            }
            content.insert(media_type, media);
        }
        out.insert("content".into(), Value::Object(content));
    }
    if let Some(Value::Object(headers)) = src.remove("headers") {
        let converted: Map<String, Value> = headers
            .into_iter()
            .map(|(name, header)| {
                let mut h = json!({"schema": schema_from_parameter(&header)});
                if let Some(d) = header.get("description") {
                    h["description"] = d.clone();
                }
                (name, h)
            })
            .collect();
        out.insert("headers".into(), Value::Object(converted));
    }
    for (key, value) in src {
        if key.starts_with("x-") {
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

fn convert_security_scheme(scheme: Value) -> Value {
    match scheme.get("type").and_then(Value::as_str) {
        Some("basic") => json!({"type": "http", "scheme": "basic"}),
        Some("apiKey") => json!({
            "type": "apiKey",
            "name": scheme.get("name").cloned().unwrap_or(json!("api_key")),
            "in": scheme.get("in").cloned().unwrap_or(json!("header")),
        }),
        Some("oauth2") => {
            let flow = scheme
                .get("flow")
                .and_then(Value::as_str)
                .unwrap_or("implicit");
            let flow_name = match flow {
                "accessCode" => "authorizationCode",
                "application" => "clientCredentials",
                other => other,
            };
            let mut flow_object =
                json!({"scopes": scheme.get("scopes").cloned().unwrap_or(json!({}))});
            for key in ["authorizationUrl", "tokenUrl"] {
                if let Some(v) = scheme.get(key) {
                    flow_object[key] = v.clone();
                }
            }
            json!({"type": "oauth2", "flows": {flow_name: flow_object}})
        }
        _ => scheme,
    }
}

/// Rewrites 2.0 reference targets to their 3.0 homes.
fn rewrite_refs(value: &mut Value, body_params: &[String]) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(rest) = reference.strip_prefix("#/definitions/") {
                    *reference = format!("#/components/schemas/{rest}");
                } else if let Some(rest) = reference.strip_prefix("#/parameters/") {
                    let unescaped = rest.replace("~1", "/").replace("~0", "~");
                    let home = if body_params.contains(&unescaped) {
                        "requestBodies"
                    } else {
                        "parameters"
                    };
                    *reference = format!("#/components/{home}/{rest}");
                } else if let Some(rest) = reference.strip_prefix("#/responses/") {
                    *reference = format!("#/components/responses/{rest}");
                }
            }
            map.values_mut().for_each(|v| rewrite_refs(v, body_params));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, body_params)),
        _ => {}
    }
}

/// `x-nullable` → `nullable`, `type: file` → binary string, and string
/// discriminators → discriminator objects, in every schema.
fn convert_schemas_in_place(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Bool(nullable)) = map.remove("x-nullable") {
                map.insert("nullable".into(), Value::Bool(nullable));
            }
            if map.get("type").and_then(Value::as_str) == Some("file") {
                map.insert("type".into(), json!("string"));
                map.insert("format".into(), json!("binary"));
            }
            if let Some(Value::String(property)) = map.get("discriminator") {
                let property = property.clone();
                map.insert("discriminator".into(), json!({"propertyName": property}));
            }
            map.values_mut().for_each(convert_schemas_in_place);
        }
        Value::Array(items) => items.iter_mut().for_each(convert_schemas_in_place),
        _ => {}
    }
}
