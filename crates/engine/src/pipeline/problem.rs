//! RFC 9457 problem documents: every problem type SmartSandbox answers
//! with, in one list, and the answer that carries one.
//!
//! The type (`urn:sbx:problem:{slug}`) is a stable contract: clients branch
//! on it, and `docs/api.md` lists each (a test holds the two together).

use serde_json::{Value, json};

use crate::Response;

macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident = ($slug:literal, $status:literal, $title:literal),)*) => {
        /// A problem type: its slug, its usual status and its title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemType {
            /// Every problem type, in the order `docs/api.md` lists them.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The name in `urn:sbx:problem:{slug}`.
            pub fn slug(self) -> &'static str {
                match self { $(Self::$variant => $slug,)* }
            }

            /// The status it is answered with, unless the answer says
            /// otherwise (chaos, `fail()` and scenarios choose theirs).
            pub fn status(self) -> u16 {
                match self { $(Self::$variant => $status,)* }
            }

            pub fn title(self) -> &'static str {
                match self { $(Self::$variant => $title,)* }
            }
        }
    };
}

problem_types! {
    // Both planes.
    Unauthorized = ("unauthorized", 401, "Unauthorized"),
    NotFound = ("not-found", 404, "Not found"),
    Conflict = ("conflict", 409, "Conflict"),
    PayloadTooLarge = ("payload-too-large", 413, "Payload too large"),
    UnsupportedMediaType = ("unsupported-media-type", 415, "Unsupported media type"),
    HeadersTooLarge = ("headers-too-large", 431, "Request header fields too large"),
    Internal = ("internal", 500, "Internal server error"),
    // The control plane.
    BadRequest = ("bad-request", 400, "Bad request"),
    BadQuery = ("bad-query", 400, "Bad query parameter"),
    /// A control-plane body that breaks the API's rules.
    Validation = ("validation", 422, "Invalid request"),
    InvalidSpec = ("invalid-spec", 422, "The spec has problems"),
    NoControlRoute = ("no-control-route", 404, "Not found"),
    NoLifecycle = ("no-lifecycle", 404, "Not found"),
    TooManyRefusals = ("too-many-refusals", 429, "Too many refused calls"),
    Forbidden = ("forbidden", 403, "Forbidden"),
    CsrfRefused = ("csrf", 403, "Cross-site request refused"),
    TooManyAttempts = ("too-many-attempts", 429, "Too many failed sign-ins"),
    /// A developer's quota reached (403; 429 for requests per day).
    QuotaExceeded = ("quota-exceeded", 403, "Quota exceeded"),
    // The data plane: addressing.
    NoSandbox = ("no-sandbox", 404, "No sandbox addressed"),
    UnknownSandbox = ("unknown-sandbox", 404, "Unknown sandbox"),
    SandboxExpired = ("sandbox-expired", 404, "Sandbox expired"),
    // The data plane: the request against the contract.
    NoRoute = ("no-route", 404, "No such operation"),
    MethodNotAllowed = ("method-not-allowed", 405, "Method not allowed"),
    NotAcceptable = ("not-acceptable", 406, "Not acceptable"),
    /// A data-plane request that breaks the spec (the same type as
    /// [`Self::Validation`], answered 400 as an API would).
    ContractViolation = ("validation", 400, "The request does not match the API contract"),
    InvalidPrefer = ("invalid-prefer", 400, "Invalid Prefer header"),
    PreferUnknownCode = ("prefer-unknown-code", 400, "Preferred status not declared"),
    PreferUnknownExample = ("prefer-unknown-example", 400, "Preferred example not declared"),
    InvalidChaos = ("invalid-chaos", 400, "Invalid X-Chaos header"),
    RateLimited = ("rate-limited", 429, "Too many requests"),
    UnknownScenario = ("unknown-scenario", 400, "Unknown scenario"),
    IdempotencyKeyInvalid = ("idempotency-key-invalid", 400, "Idempotency error"),
    IdempotencyKeyReused = ("idempotency-key-reused", 400, "Idempotency error"),
    IdempotencyKeyInUse = ("idempotency-key-in-use", 409, "Idempotency error"),
    // The data plane: what behaviours answer.
    Chaos = ("chaos", 503, "Injected by chaos"),
    Scenario = ("scenario", 400, "Scenario"),
    Failed = ("failed", 400, "Request failed"),
    InvalidTransition = ("invalid-transition", 409, "Invalid state transition"),
    SandboxFull = ("sandbox-full", 507, "Sandbox full"),
    // The data plane: a failure of the project or the server.
    ScriptError = ("script-error", 500, "Script failed"),
    ScriptLimit = ("script-limit", 500, "Script stopped at a limit"),
    TemplateError = ("template-error", 500, "Template failed"),
    ScenarioSchedule = ("scenario-schedule", 500, "Scenario could not schedule"),
    ResponseDrift = ("response-drift", 500, "Response does not match the spec"),
    UpstreamUnavailable = ("upstream-unavailable", 502, "Upstream unavailable"),
    /// A function behaviour raised, or answered what HTTP cannot send.
    FunctionError = ("function-error", 500, "Function failed"),
    /// A function behaviour's process died (out of memory, exited).
    FunctionCrashed = ("function-crashed", 502, "Function crashed"),
    /// A function behaviour ran past its timeout.
    FunctionTimeout = ("function-timeout", 504, "Function timed out"),
    /// Function behaviours cannot run in this server.
    FunctionUnavailable = ("function-unavailable", 503, "Functions unavailable"),
    StorageUnavailable = ("storage-unavailable", 503, "Storage unavailable"),
    /// Code sessions cannot run here: the jail's tools are missing.
    RuntimeUnavailable = ("runtime-unavailable", 503, "Session runtime unavailable"),
    /// Another server holds the database; this one stands by.
    Standby = ("standby", 503, "Server on standby"),
    /// A sandbox with a namespace of its own that cannot answer yet (being
    /// made) or now (failed, or its server does not answer).
    SandboxProvisioning = ("sandbox-provisioning", 503, "Sandbox not available"),
}

impl ProblemType {
    /// The problem document: `type`, `title`, `status`, `detail`.
    pub fn document(self, status: u16, detail: &str) -> Value {
        json!({
            "type": format!("urn:sbx:problem:{}", self.slug()),
            "title": self.title(),
            "status": status,
            "detail": detail,
        })
    }

    /// An `application/problem+json` answer with the type's status.
    pub fn response(self, detail: &str) -> Response {
        self.response_with(self.status(), detail, None)
    }

    /// An `application/problem+json` answer with `status`, and members of
    /// `extra` (an object) added to the document.
    pub fn response_with(self, status: u16, detail: &str, extra: Option<Value>) -> Response {
        let mut body = self.document(status, detail);
        if let (Some(Value::Object(extra)), Value::Object(map)) = (extra, &mut body) {
            map.extend(extra);
        }
        let mut headers = vec![(
            "content-type".to_owned(),
            "application/problem+json".to_owned(),
        )];
        // Storage comes back (a database restarting, a takeover by
        // another server): the client is told when to try again.
        if matches!(self, Self::StorageUnavailable) {
            headers.push(("retry-after".to_owned(), "1".to_owned()));
        }
        // A namespace takes seconds to be made and its server to start.
        if matches!(self, Self::SandboxProvisioning) {
            headers.push(("retry-after".to_owned(), "5".to_owned()));
        }
        Response {
            status,
            headers,
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProblemType;

    /// `docs/api.md` calls the list stable: its table and [`ProblemType::ALL`]
    /// name the same types, statuses and titles.
    #[test]
    fn the_api_docs_list_every_problem_type() {
        let docs = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md"),
        )
        .expect("docs/api.md reads");
        let documented: Vec<(String, u16, String)> = docs
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                let slug = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
                Some((
                    slug.to_owned(),
                    cells.get(1)?.parse().ok()?,
                    (*cells.get(2)?).to_owned(),
                ))
            })
            .collect();
        let listed: Vec<(String, u16, String)> = ProblemType::ALL
            .iter()
            .map(|p| (p.slug().to_owned(), p.status(), p.title().to_owned()))
            .collect();
        assert_eq!(documented, listed, "docs/api.md's table of problem types");
    }

    #[test]
    fn a_slug_names_one_title_and_status_except_validation() {
        let mut seen = std::collections::HashMap::new();
        for problem in ProblemType::ALL {
            if let Some(other) = seen.insert(problem.slug(), *problem) {
                assert_eq!(
                    (other, *problem),
                    (ProblemType::Validation, ProblemType::ContractViolation),
                    "{} is listed twice",
                    problem.slug()
                );
            }
        }
    }
}
