//! Ready-to-run snippets of a logged request — curl, HTTPie, Python
//! `requests`, JavaScript `fetch` — with the key read from `$SBX_API_KEY`
//! where the request sent one (the log never holds it).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use sbx_engine::redaction::REDACTED;

/// The environment variable the snippets read the key from.
pub const KEY_VARIABLE: &str = "SBX_API_KEY";

/// Headers a client sets by itself, or that would make a replay differ.
const LEFT_OUT: [&str; 8] = [
    "host",
    "content-length",
    "connection",
    "accept-encoding",
    "user-agent",
    "x-request-id",
    "transfer-encoding",
    "cookie",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct Snippets {
    pub curl: String,
    pub httpie: String,
    pub python: String,
    pub javascript: String,
    /// Why a snippet may not reproduce the request exactly (a body cut
    /// short or masked), if it may not.
    pub caveats: Vec<String>,
}

/// A request as logged, ready to be written as code.
pub struct Logged<'a> {
    pub method: &'a str,
    /// Absolute, query included; `[redacted]` where a key was.
    pub url: String,
    /// `[redacted]` where a key was.
    pub headers: Vec<(String, String)>,
    pub body: &'a str,
}

impl<'a> Logged<'a> {
    /// The request of a log entry, sent to `sandbox_root` (`…/sbx/{id}`).
    pub fn new(
        sandbox_root: &str,
        method: &'a str,
        path: &str,
        query: Option<&str>,
        headers: &Value,
        body: &'a str,
    ) -> Self {
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let headers = headers
            .as_object()
            .map(|map| {
                map.iter()
                    .filter(|(name, _)| !LEFT_OUT.contains(&name.as_str()))
                    .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method,
            url: format!("{sandbox_root}{path}{query}"),
            headers,
            body,
        }
    }

    pub fn snippets(&self, caveats: Vec<String>) -> Snippets {
        Snippets {
            curl: self.curl(),
            httpie: self.httpie(),
            python: self.python(),
            javascript: self.javascript(),
            caveats,
        }
    }

    fn curl(&self) -> String {
        let mut lines = vec![format!("curl -sS -X {} {}", self.method, shell(&self.url))];
        for (name, value) in &self.headers {
            lines.push(format!("-H {}", shell(&format!("{name}: {value}"))));
        }
        if !self.body.is_empty() {
            lines.push(format!("--data-raw {}", word(self.body)));
        }
        lines.join(" \\\n  ")
    }

    fn httpie(&self) -> String {
        let mut lines = vec![format!(
            "http --ignore-stdin --print=b {} {}",
            self.method,
            shell(&self.url)
        )];
        for (name, value) in &self.headers {
            lines.push(shell(&format!("{name}:{value}")));
        }
        if !self.body.is_empty() {
            lines.push(format!("--raw {}", word(self.body)));
        }
        lines.join(" \\\n  ")
    }

    /// Header entries of a Python dict or JS object literal, one per line,
    /// with the key read from `key` (an environment lookup).
    fn header_entries(&self, key: &str, indent: &str) -> String {
        let entries: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| format!("{indent}{}: {},", quoted(name), spliced(value, key)))
            .collect();
        entries.join("\n")
    }

    fn python(&self) -> String {
        let key = format!("os.environ[\"{KEY_VARIABLE}\"]");
        let headers = self.header_entries(&key, "        ");
        let body = if self.body.is_empty() {
            String::new()
        } else {
            format!("    data={}.encode(),\n", quoted(self.body))
        };
        format!(
            "import os\n\nimport requests\n\nresponse = requests.request(\n    {},\n    {},\n    headers={{\n{headers}\n    }},\n{body})\nprint(response.status_code)\nprint(response.text)\n",
            quoted(self.method),
            spliced(&self.url, &key),
        )
    }

    fn javascript(&self) -> String {
        let key = format!("process.env.{KEY_VARIABLE}");
        let headers = self.header_entries(&key, "    ");
        let body = if self.body.is_empty() {
            String::new()
        } else {
            format!("  body: {},\n", quoted(self.body))
        };
        format!(
            "const response = await fetch({}, {{\n  method: {},\n  headers: {{\n{headers}\n  }},\n{body}}});\nconsole.log(response.status);\nconsole.log(await response.text());\n",
            spliced(&self.url, &key),
            quoted(self.method),
        )
    }
}

/// `text` (the URL or a header) as one shell word; `[redacted]` becomes the
/// key variable.
fn shell(text: &str) -> String {
    let variable = format!("\"${KEY_VARIABLE}\"");
    text.split(REDACTED)
        .map(|part| {
            if part.is_empty() {
                String::new()
            } else {
                word(part)
            }
        })
        .collect::<Vec<_>>()
        .join(&variable)
}

/// `text` as one shell word, as is: a body's `[redacted]` may be a value
/// the project masks, not the key, so it stays (as in every snippet).
fn word(text: &str) -> String {
    shlex::try_quote(text).map_or_else(|_| shell_fallback(text), |q| q.into_owned())
}

/// Single quotes for text `shlex` refuses (it holds a NUL byte, which no
/// shell word can; it is dropped).
fn shell_fallback(text: &str) -> String {
    format!("'{}'", text.replace('\0', "").replace('\'', r"'\''"))
}

/// A string literal both Python and JavaScript read (JSON's).
fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// A string expression with `[redacted]` replaced by `key` (an expression).
fn spliced(text: &str, key: &str) -> String {
    let parts: Vec<String> = text
        .split(REDACTED)
        .enumerate()
        .flat_map(|(index, part)| {
            let key = (index > 0).then(|| key.to_owned());
            let literal = (!part.is_empty()).then(|| quoted(part));
            key.into_iter().chain(literal)
        })
        .collect();
    if parts.is_empty() {
        quoted("")
    } else {
        parts.join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_the_variable_and_quotes_survive() {
        assert_eq!(
            shell("Authorization: Bearer [redacted]"),
            "'Authorization: Bearer '\"$SBX_API_KEY\""
        );
        assert_eq!(shell("it's"), "\"it's\"");
        assert_eq!(word(r#"{"n":"[redacted]"}"#), r#"'{"n":"[redacted]"}'"#);
        assert_eq!(
            spliced("Bearer [redacted]", "K"),
            "\"Bearer \" + K".to_owned()
        );
        assert_eq!(spliced("[redacted]", "K"), "K");
        assert_eq!(spliced("a\"b", "K"), r#""a\"b""#);
    }
}
