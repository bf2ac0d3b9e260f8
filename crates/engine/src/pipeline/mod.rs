//! One request through the data plane.

pub(crate) mod cache;
pub(crate) mod conform;
pub(crate) mod drift;
pub(crate) mod failure;
pub(crate) mod links;
pub use links::BaseUrl;
pub(crate) mod order;
pub(crate) mod problem;
pub(crate) mod respond;
pub(crate) mod trace;

use std::{rc::Rc, sync::Arc};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{
    HeaderSource,
    behaviours::behaviour::{self, Execution, OperationIndex},
    behaviours::call::{Call, CallRequest, CallSandbox, Journal},
    behaviours::chaos::{ChaosEffect, ChaosSpec},
    behaviours::forward::Upstream,
    behaviours::functions::Functions,
    behaviours::lifecycle::{self, Disallowed, Lifecycle, Refused, Transition},
    behaviours::scenarios,
    compile::revision::{CompiledOperation, CompiledRevision},
    pipeline::drift::Drift,
    pipeline::failure::{Culprit, Failure, FailureKind},
    pipeline::problem::ProblemType,
    pipeline::respond::{BodySource, Exchange, Prefer, declared_error},
    pipeline::trace::{Step, Trace, Verdict},
    request::auth::{self, AuthOutcome, Credential, KeyVerdict},
    request::body,
    request::near_miss::{below_base, near_misses},
    request::params,
    request::router::RouteMatch,
    state::{Record, SandboxState, WriteTurn},
};

/// Whether a sandbox enforces the spec's security schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Spec,
    None,
}

impl AuthMode {
    /// The mode's name in the API and the store: `spec` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::None => "none",
        }
    }

    /// The mode named `spec` or `none`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "spec" => Some(Self::Spec),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The sandbox a request is served for.
pub struct SandboxContext<'a> {
    pub id: &'a str,
    /// Seed of all synthesized data (derived from the sandbox's seed string).
    pub seed: u64,
    pub auth: AuthMode,
    /// What a credential sent is, for the operation called.
    pub key_check: &'a (dyn Fn(Credential<'_>, &sbx_spec::Operation) -> KeyVerdict + Sync),
    /// Whether the request is within the sandbox's rate limits (checked
    /// after authentication, so a key's own limit applies).
    pub rate_check: &'a (dyn Fn() -> Result<(), RateLimited> + Sync),
    pub state: &'a Arc<SandboxState>,
    /// The sandbox's overrides of the project's environment parameters.
    pub env: &'a Arc<Map<String, Value>>,
    /// Where forwarded requests go; `None` refuses forwarding.
    pub upstream: Option<&'a Arc<dyn Upstream>>,
    /// Where function behaviours run; `None` answers them 503.
    pub functions: Option<&'a Arc<dyn Functions>>,
    /// The sandbox clock, in Unix milliseconds.
    pub now_ms: i64,
    /// Whether this thread may block (the blocking pool). When not, a
    /// script that would block or write yields instead ([`Outcome::yielded`]).
    pub may_block: bool,
    /// The sandbox's chaos profile (an `X-Chaos` header replaces it).
    pub chaos: Option<&'a ChaosSpec>,
    /// The scenario operations that declare it answer with, unless the
    /// request selects another.
    pub default_scenario: Option<&'a str>,
    /// The chaos draw to use: a request run again after yielding replays
    /// its first run's ([`Outcome::chaos_draw`]); `None` takes the next.
    pub chaos_draw: Option<u64>,
    /// Record how the request was decided ([`Outcome::trace`]).
    pub trace: bool,
    /// Where links in answers point.
    pub base_url: BaseUrl<'a>,
}

/// A request over a rate limit: which, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// `per_key` or `per_sandbox`.
    pub scope: &'static str,
    /// Requests per second allowed.
    pub limit: u32,
    /// Requests allowed at once.
    pub burst: u32,
    pub retry_after_ms: u64,
}

pub struct Request<'a> {
    pub method: &'a str,
    /// The path below the sandbox root, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a dyn HeaderSource,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// Shared, not copied, when it is a memoized answer's.
    pub body: Bytes,
}

/// A response and what the request changed.
#[derive(Debug)]
pub struct Outcome {
    pub response: Response,
    /// Resource changes and emitted events, for the server to persist.
    pub journal: Journal,
    /// How a behaviour's answer departs from the spec, if it does.
    pub drift: Option<Drift>,
    /// Delay, drop or trickle the answer (the server's part of chaos).
    pub chaos: ChaosEffect,
    /// The request passed validation and chaos and was answered by the
    /// operation: an answer an idempotent retry may replay.
    pub answered: bool,
    /// The chaos draw this request used, if chaos applied.
    pub chaos_draw: Option<u64>,
    /// How the request was decided, when [`SandboxContext::trace`] asked.
    pub trace: Vec<Step>,
    /// The operation routed to (an index into the revision's), if any.
    pub operation: Option<usize>,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Self {
        Self {
            response,
            journal: Journal::default(),
            drift: None,
            chaos: ChaosEffect::default(),
            answered: false,
            chaos_draw: None,
            trace: Vec::new(),
            operation: None,
        }
    }
}

/// A violation of the request against the spec.
struct Violation {
    location: &'static str,
    pointer: String,
    message: String,
    /// Where in the schema the rule broken is, and the value that broke it.
    schema: Option<(String, Value)>,
    /// The member a `required` rule found missing.
    missing: Option<String>,
    /// The first member an `additionalProperties: false` rule refused.
    unexpected: Option<String>,
}

impl Violation {
    /// The parameter or body member at fault, named as clients name it:
    /// `metadata[order]` in a form body, `customer.email` in JSON.
    fn culprit(&self, form_body: bool) -> Culprit {
        let mut segments: Vec<String> = self
            .pointer
            .split('/')
            .skip(1)
            .map(sbx_spec::pointer::unescape)
            .collect();
        segments.extend(self.missing.iter().chain(&self.unexpected).cloned());
        let pointer: String = segments
            .iter()
            .map(|s| format!("/{}", sbx_spec::pointer::escape(s)))
            .collect();
        let name = match segments.split_first() {
            None => String::new(),
            Some((first, rest)) if form_body || self.location != "body" => rest
                .iter()
                .fold(first.clone(), |name, s| format!("{name}[{s}]")),
            Some(_) => segments.join("."),
        };
        Culprit { name, pointer }
    }
}

pub fn handle(
    revision: &Arc<CompiledRevision>,
    context: &SandboxContext<'_>,
    request: &Request<'_>,
) -> Decision {
    let mut trace = Trace::new(context.trace);
    let mut outcome = match decide(revision, context, request, &mut trace) {
        Ok(outcome) => outcome,
        Err(Stop::Answer(outcome)) => *outcome,
        Err(Stop::Yield(pending)) => return Decision::Yield(pending),
    };
    links::rewrite(
        &mut outcome.response,
        &revision.link_origins,
        context.base_url,
    );
    outcome.trace = trace.into_steps();
    Decision::Answer(outcome)
}

/// What the pipeline decided for a request.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "an answer is the common case: boxing it would allocate on every request to save bytes on the rare yield"
)]
pub enum Decision {
    /// The answer, and what the request changed.
    Answer(Outcome),
    /// The request must run again where it may block
    /// ([`SandboxContext::may_block`]); nothing was changed.
    Yield(Yield),
}

/// Why a request yields, and what its run again must reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yield {
    pub reason: &'static str,
    /// The chaos draw this run took, for the next to replay
    /// ([`SandboxContext::chaos_draw`]).
    pub chaos_draw: Option<u64>,
}

impl Yield {
    fn because(reason: &'static str) -> Stop {
        Stop::Yield(Self {
            reason,
            chaos_draw: None,
        })
    }
}

/// Why a stage of the pipeline ends the request early: it is answered
/// (refused, failed, or answered by chaos), or it must yield.
enum Stop {
    /// Boxed: a stage's result stays small on the common path.
    Answer(Box<Outcome>),
    Yield(Yield),
}

impl From<Response> for Stop {
    fn from(response: Response) -> Self {
        Self::Answer(Box::new(response.into()))
    }
}

fn decide(
    revision: &Arc<CompiledRevision>,
    context: &SandboxContext<'_>,
    request: &Request<'_>,
    trace: &mut Trace,
) -> Result<Outcome, Stop> {
    let routed = revision.route(
        request.method,
        request.path,
        request.query,
        request.headers.get("content-type"),
    );
    let (operation_index, path_params) = match routed {
        RouteMatch::Found {
            operation,
            path_params,
        } => (operation, path_params),
        RouteMatch::MethodNotAllowed(allowed) => {
            let allow = allowed.join(", ");
            trace.note(|| {
                Step::new(
                    "route",
                    Verdict::Failed,
                    format!(
                        "{} is declared, but not for {}: it takes {allow}",
                        request.path, request.method
                    ),
                )
                .with_detail(json!({
                    "near_misses": near_misses(revision, request.method, request.path)
                }))
            });
            let mut response = if request.method.eq_ignore_ascii_case("OPTIONS") {
                Response {
                    status: 204,
                    headers: Vec::new(),
                    body: Bytes::new(),
                }
            } else {
                ProblemType::MethodNotAllowed.response(&format!(
                    "{} is not declared for {}; allowed: {allow}",
                    request.method, request.path
                ))
            };
            response.headers.push(("allow".to_owned(), allow));
            return Ok(response.into());
        }
        RouteMatch::NotFound => {
            let base = revision.router.base_path();
            let path = request.path.split('?').next().unwrap_or_default();
            let hint = if below_base(path, base).is_some() {
                String::new()
            } else {
                format!(" (operation paths start with {base})")
            };
            let detail = format!(
                "no operation matches {} {}{hint}",
                request.method, request.path
            );
            let near = near_misses(revision, request.method, request.path);
            let near = (!near.is_empty()).then(|| json!({ "near_misses": near }));
            trace.note(|| {
                let step = Step::new("route", Verdict::Failed, detail.clone());
                match &near {
                    Some(near) => step.with_detail(near.clone()),
                    None => step,
                }
            });
            return Ok(ProblemType::NoRoute
                .response_with(404, &detail, near)
                .into());
        }
    };
    let decided = decide_operation(
        revision,
        context,
        request,
        trace,
        operation_index,
        path_params,
    );
    let routed = |mut outcome: Outcome| {
        outcome.operation = Some(operation_index);
        outcome
    };
    match decided {
        Ok(outcome) => Ok(routed(outcome)),
        Err(Stop::Answer(outcome)) => Ok(routed(*outcome)),
        Err(Stop::Yield(pending)) => Err(Stop::Yield(pending)),
    }
}

/// A request routed to an operation, as each stage of the pipeline sees it.
struct Routed<'a> {
    revision: &'a Arc<CompiledRevision>,
    context: &'a SandboxContext<'a>,
    request: &'a Request<'a>,
    index: OperationIndex,
    operation: &'a CompiledOperation,
}

/// The rest of the pipeline, for a request routed to an operation: each
/// stage passes the request on, or ends it ([`Stop`]).
fn decide_operation(
    revision: &Arc<CompiledRevision>,
    context: &SandboxContext<'_>,
    request: &Request<'_>,
    trace: &mut Trace,
    operation_index: usize,
    path_params: Vec<(String, String)>,
) -> Result<Outcome, Stop> {
    let routed = Routed {
        revision,
        context,
        request,
        index: OperationIndex(operation_index),
        operation: &revision.operations[operation_index],
    };
    trace.note(|| {
        let declared = &routed.operation.operation;
        Step::new(
            "route",
            Verdict::Passed,
            format!(
                "{} {} is operation {} ({} {})",
                request.method, request.path, declared.id, declared.method, declared.path
            ),
        )
        .with_detail(json!({"operation": declared.id, "spec": declared.pointer}))
    });
    // Held to the end of the request: its reads and writes of records are
    // one step, never interleaved with another writer's.
    let _turn = routed.admit()?;
    let (chaos, prefer) = routed.controls(trace)?;
    let exchange = Exchange {
        accept: request.headers.get("accept"),
        path_params: &path_params,
        yielded: None,
    };
    let query: Vec<(String, String)> = request
        .query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    routed.authenticate(&query, &exchange, trace)?;
    routed.rate_limit(&exchange, trace)?;
    let canned = prefer.code.is_some() || prefer.example.is_some();
    let behaves = !canned && revision.behaviours.is_active(routed.index);
    let body = routed.check_contract(&path_params, &query, &exchange, behaves, trace)?;
    let (chaos, chaos_draw) = routed.chaos(chaos.as_ref(), &exchange, trace)?;
    routed.scenario_declared(trace)?;
    if behaves {
        let call = routed.call(path_params, query, body);
        return routed.run_behaviours(&call, chaos, chaos_draw, trace);
    }
    routed.answer_from_spec(&prefer, exchange, chaos, chaos_draw, trace)
}

impl Routed<'_> {
    /// Whether the request may run here: forwarding and a record writer
    /// that must wait yield from an async worker. The write turn, when the
    /// operation may write.
    fn admit(&self) -> Result<Option<WriteTurn<'_>>, Stop> {
        let (behaviours, context) = (&self.revision.behaviours, self.context);
        if !context.may_block && behaviours.execution(self.index) == Execution::Blocking {
            return Err(Yield::because("forwarding runs where it may block"));
        }
        let safe = matches!(self.request.method, "GET" | "HEAD" | "OPTIONS");
        if !behaviours.may_write(self.index, safe) {
            Ok(None)
        } else if context.may_block {
            Ok(Some(context.state.write_turn()))
        } else {
            match context.state.try_write_turn() {
                Some(turn) => Ok(Some(turn)),
                None => Err(Yield::because(
                    "another request is changing this sandbox's records",
                )),
            }
        }
    }

    /// The chaos (an `X-Chaos` header replaces the sandbox's profile) and
    /// the `Prefer` header the request asks for.
    fn controls(&self, trace: &mut Trace) -> Result<(Option<ChaosSpec>, Prefer), Stop> {
        let headers = self.request.headers;
        let chaos = match headers.get("x-chaos") {
            Some(header) => match ChaosSpec::parse(header) {
                Ok(spec) => Some(spec),
                Err(detail) => {
                    trace
                        .note(|| Step::new("chaos", Verdict::Failed, format!("X-Chaos: {detail}")));
                    return Err(ProblemType::InvalidChaos.response(&detail).into());
                }
            },
            None => self.context.chaos.cloned(),
        };
        match respond::parse_prefer(headers.get("prefer")) {
            Ok(prefer) => Ok((chaos, prefer)),
            Err(detail) => {
                trace.note(|| Step::new("prefer", Verdict::Failed, format!("Prefer: {detail}")));
                Err(ProblemType::InvalidPrefer.response(&detail).into())
            }
        }
    }

    /// The sandbox's rate limits: over one, the spec's 429 (or a problem)
    /// with `Retry-After` and `RateLimit-*` headers.
    fn rate_limit(&self, exchange: &Exchange<'_>, trace: &mut Trace) -> Result<(), Stop> {
        let Err(limited) = (self.context.rate_check)() else {
            return Ok(());
        };
        let retry_after = limited.retry_after_ms.div_ceil(1000).max(1);
        let detail = format!(
            "rate limit {}: {} requests per second (burst {}); retry in {retry_after} s",
            limited.scope, limited.limit, limited.burst
        );
        trace.note(|| Step::new("rate limit", Verdict::Failed, detail.clone()));
        let mut response = declared_error(
            self.revision,
            self.context.seed,
            self.operation,
            exchange,
            &[429],
            &Failure::new(FailureKind::RateLimit, &detail),
        )
        .unwrap_or_else(|| ProblemType::RateLimited.response(&detail));
        for (name, value) in [
            ("retry-after", retry_after.to_string()),
            ("ratelimit-limit", limited.burst.to_string()),
            ("ratelimit-remaining", "0".to_owned()),
            ("ratelimit-reset", retry_after.to_string()),
            (
                "ratelimit-policy",
                format!("{};w=1;burst={}", limited.limit, limited.burst),
            ),
        ] {
            response.headers.push((name.to_owned(), value));
        }
        Err(response.into())
    }

    /// The operation's security requirements, when the sandbox checks them.
    fn authenticate(
        &self,
        query: &[(String, String)],
        exchange: &Exchange<'_>,
        trace: &mut Trace,
    ) -> Result<(), Stop> {
        let context = self.context;
        if context.auth != AuthMode::Spec {
            trace.note(|| {
                Step::new(
                    "auth",
                    Verdict::Skipped,
                    "the sandbox does not check credentials",
                )
            });
            return Ok(());
        }
        let outcome = auth::check(
            &self.operation.operation,
            &self.revision.model.security_schemes,
            self.request.headers,
            query,
            context.key_check,
        );
        let (detail, challenge) = match outcome {
            AuthOutcome::Allowed => {
                trace.note(|| {
                    Step::new(
                        "auth",
                        Verdict::Passed,
                        "the operation's security requirements are met",
                    )
                });
                return Ok(());
            }
            AuthOutcome::Missing {
                expected,
                challenge,
            } => (
                format!("this operation needs credentials: send {expected}"),
                challenge,
            ),
            AuthOutcome::Invalid { why, challenge } => (
                match why {
                    Some(why) => format!("the access token is not valid here: {why}"),
                    None => "the credentials sent are not this sandbox's API key".to_owned(),
                },
                challenge,
            ),
            AuthOutcome::Forbidden { why, challenge } => {
                trace.note(|| Step::new("auth", Verdict::Failed, why.clone()));
                let response = declared_error(
                    self.revision,
                    context.seed,
                    self.operation,
                    exchange,
                    &[403],
                    &Failure::new(FailureKind::Permission, &why),
                )
                .unwrap_or_else(|| ProblemType::Forbidden.response(&why));
                let mut response = response;
                if let Some(challenge) = challenge {
                    response
                        .headers
                        .push(("www-authenticate".to_owned(), challenge));
                }
                return Err(response.into());
            }
        };
        trace.note(|| Step::new("auth", Verdict::Failed, detail.clone()));
        let mut response = declared_error(
            self.revision,
            context.seed,
            self.operation,
            exchange,
            &[401],
            &Failure::new(FailureKind::Authentication, &detail),
        )
        .unwrap_or_else(|| ProblemType::Unauthorized.response(&detail));
        if let Some(challenge) = challenge {
            response
                .headers
                .push(("www-authenticate".to_owned(), challenge));
        }
        Err(response.into())
    }

    /// The request against the operation's parameters and body schema;
    /// the body, parsed.
    fn check_contract(
        &self,
        path_params: &[(String, String)],
        query: &[(String, String)],
        exchange: &Exchange<'_>,
        needs_body: bool,
        trace: &mut Trace,
    ) -> Result<Option<Value>, Stop> {
        let (violations, body) = match validate(
            self.operation,
            self.request,
            path_params,
            query,
            &self.revision.model.document,
            needs_body,
        ) {
            Ok(validated) => validated,
            Err(unsupported) => {
                trace.note(|| Step::new("validate", Verdict::Failed, problem_detail(&unsupported)));
                return Err(unsupported.into());
            }
        };
        trace.note(|| explain_validation(&violations));
        if !violations.is_empty() {
            let content_type = self.request.headers.get("content-type").unwrap_or("");
            let form_body = matches!(
                body::essence(content_type).as_ref(),
                "application/x-www-form-urlencoded" | "multipart/form-data"
            );
            let failure = validation_failure(
                self.revision,
                self.context,
                self.operation,
                exchange,
                &violations,
                form_body,
            );
            return Err(failure.into());
        }
        Ok(body)
    }

    /// Chaos drawn for the request: an injected error or drop ends it;
    /// otherwise the effect (delays) and the draw taken.
    fn chaos(
        &self,
        spec: Option<&ChaosSpec>,
        exchange: &Exchange<'_>,
        trace: &mut Trace,
    ) -> Result<(ChaosEffect, Option<u64>), Stop> {
        let context = self.context;
        let chaos_draw = spec.map(|_| {
            context
                .chaos_draw
                .unwrap_or_else(|| context.state.next_chaos_draw())
        });
        let chaos = spec
            .zip(chaos_draw)
            .map(|(spec, draw)| spec.decide(draw))
            .unwrap_or_default();
        if chaos_draw.is_some() {
            let source = match self.request.headers.get("x-chaos") {
                Some(_) => "X-Chaos",
                None => "the sandbox's chaos profile",
            };
            trace.note(|| explain_chaos(source, &chaos));
        }
        if !chaos.drop && chaos.error.is_none() {
            return Ok((chaos, chaos_draw));
        }
        let response = match chaos.error {
            Some(status) => {
                let reason = format!("chaos: injected {status}");
                declared_error(
                    self.revision,
                    context.seed,
                    self.operation,
                    exchange,
                    &[status],
                    &Failure::new(FailureKind::of_status(status), &reason),
                )
                .unwrap_or_else(|| ProblemType::Chaos.response_with(status, &reason, None))
            }
            None => ProblemType::Chaos.response("dropped"),
        };
        Err(Stop::Answer(Box::new(Outcome {
            chaos,
            ..Outcome::from(response)
        })))
    }

    /// An `X-Sandbox-Scenario` the operation cannot honour: it declares none.
    fn scenario_declared(&self, trace: &mut Trace) -> Result<(), Stop> {
        let Some(name) = self.request.headers.get("x-sandbox-scenario") else {
            return Ok(());
        };
        if !self.revision.behaviours.scenarios_of(self.index).is_empty() {
            return Ok(());
        }
        trace.note(|| {
            Step::new(
                "scenario",
                Verdict::Failed,
                format!(
                    "X-Sandbox-Scenario names {name:?}, but the operation declares no scenarios"
                ),
            )
        });
        Err(scenarios::unknown(&self.operation.operation.id, name, &[]).into())
    }

    /// The call behaviours answer: the request, parsed, and the sandbox.
    fn call(
        &self,
        path_params: Vec<(String, String)>,
        query: Vec<(String, String)>,
        body: Option<Value>,
    ) -> Rc<Call> {
        let (context, request) = (self.context, self.request);
        let headers = if self.revision.behaviours.reads_headers(self.index) {
            request
                .headers
                .pairs()
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
                .collect()
        } else {
            Vec::new()
        };
        Rc::new(Call::new(
            self.revision.clone(),
            self.index.0,
            CallSandbox {
                id: context.id.to_owned(),
                seed: context.seed,
                state: context.state.clone(),
                env: context.env.clone(),
                upstream: context.upstream.cloned(),
                functions: context.functions.cloned(),
                now_ms: context.now_ms,
                may_block: context.may_block,
                base_url: context.base_url.joined(),
            },
            CallRequest {
                method: request.method.to_owned(),
                path: request.path.to_owned(),
                raw_query: request.query.map(str::to_owned),
                accept: request.headers.get("accept").map(str::to_owned),
                path_params,
                query,
                headers,
                body,
                raw_body: request.body.to_vec(),
            },
        ))
    }

    /// The scenario selected (header, else the sandbox's default), then
    /// the operation's behaviours.
    fn run_behaviours(
        &self,
        call: &Rc<Call>,
        mut chaos: ChaosEffect,
        chaos_draw: Option<u64>,
        trace: &mut Trace,
    ) -> Result<Outcome, Stop> {
        let header = self.request.headers.get("x-sandbox-scenario");
        let selected = scenarios::select(call, header, self.context.default_scenario);
        trace.note(|| explain_scenario(call, header, &selected));
        match selected {
            Err(unknown) => return Err(unknown.into()),
            Ok(Some(index)) => {
                call.scenario.set(Some(index));
                chaos.delay += self.revision.behaviours.scenarios_of(self.index)[index].delay;
            }
            Ok(None) => {}
        }
        let outcome = run_behaviour(call, trace).map_err(|stop| with_draw(stop, chaos_draw))?;
        Ok(Outcome {
            chaos,
            answered: true,
            chaos_draw,
            ..outcome
        })
    }

    /// The answer the spec declares: the `Prefer`red response or example,
    /// else its example or data synthesized from its schema.
    fn answer_from_spec(
        &self,
        prefer: &Prefer,
        exchange: Exchange<'_>,
        chaos: ChaosEffect,
        chaos_draw: Option<u64>,
        trace: &mut Trace,
    ) -> Result<Outcome, Stop> {
        let body = match prefer.example.as_deref() {
            Some(name) => BodySource::Example(name),
            None => BodySource::Default,
        };
        // A costly cold synthesis yields to the blocking pool.
        let cold = std::cell::Cell::new(false);
        let exchange = Exchange {
            yielded: (!self.context.may_block).then_some(&cold),
            ..exchange
        };
        let (revision, operation) = (self.revision, self.operation);
        let rendered = respond::select(operation, prefer).and_then(|declared| {
            respond::render(
                revision,
                self.context.seed,
                operation,
                declared,
                &exchange,
                body,
            )
        });
        if cold.get() {
            // Run again with this run's chaos draw.
            return Err(Stop::Yield(Yield {
                reason: "synthesizing this answer may take long: it runs where it may block",
                chaos_draw,
            }));
        }
        let response = match rendered {
            Ok(rendered) => rendered.response,
            // `Prefer` or `Accept` asks for what the operation does not declare.
            Err(refused) => {
                trace.note(|| Step::new("respond", Verdict::Failed, problem_detail(&refused)));
                return Ok(Outcome {
                    chaos,
                    answered: true,
                    ..refused.into()
                });
            }
        };
        trace.note(|| {
            let how = match (&prefer.example, prefer.code) {
                (Some(name), _) => format!("the spec's example {name:?} (Prefer)"),
                (None, Some(code)) => format!("the spec's {code} response (Prefer)"),
                (None, None) => {
                    "the spec (its example, or data synthesized from the schema)".to_owned()
                }
            };
            Step::new(
                "respond",
                Verdict::Passed,
                format!("answered {} from {how}", response.status),
            )
        });
        Ok(Outcome {
            chaos,
            answered: true,
            ..response.into()
        })
    }
}

/// A yield that replays `chaos_draw` when run again.
fn with_draw(stop: Stop, chaos_draw: Option<u64>) -> Stop {
    match stop {
        Stop::Yield(pending) => Stop::Yield(Yield {
            chaos_draw,
            ..pending
        }),
        answered => answered,
    }
}

/// The operation's declared error for one of `statuses` (shaped by its
/// schema, `reason` in its message field and `X-Sandbox-Error`), for
/// answers the server makes itself, such as idempotency errors.
pub fn declared_error_for(
    revision: &CompiledRevision,
    seed: u64,
    request: &Request<'_>,
    statuses: &[u16],
    failure: &Failure<'_>,
) -> Option<Response> {
    let RouteMatch::Found {
        operation,
        path_params,
    } = revision.route(
        request.method,
        request.path,
        request.query,
        request.headers.get("content-type"),
    )
    else {
        return None;
    };
    let exchange = Exchange {
        accept: request.headers.get("accept"),
        path_params: &path_params,
        yielded: None,
    };
    declared_error(
        revision,
        seed,
        &revision.operations[operation],
        &exchange,
        statuses,
        failure,
    )
}

/// Runs the operation's behaviour and checks its answer against the spec.
/// The lifecycle transition `call`'s operation triggers (`on:`), with the
/// record it moves, when that record exists.
fn triggered(call: &Call) -> Option<(&Lifecycle, &Transition, Record)> {
    let lifecycles = &call.revision.behaviours.lifecycles;
    let (lifecycle, transition, param) = call.revision.behaviours.trigger(call.index())?;
    let lifecycle = &lifecycles.all[*lifecycle];
    let record = call
        .sandbox
        .state
        .get(&lifecycle.collection, &call.path_param(param)?)?;
    Some((lifecycle, &lifecycle.transitions[*transition], record))
}

/// Moves the record `call` triggered a transition of, after a successful
/// answer, and shows the new state in the answer when it is the record.
fn make_transition(
    call: &Call,
    (lifecycle, transition, record): (&Lifecycle, &Transition, Record),
    response: &mut Response,
) -> Result<(), Response> {
    // The behaviour may have moved it already.
    let Some(current) = call.sandbox.state.get(&lifecycle.collection, &record.id) else {
        return Ok(());
    };
    if lifecycle.state_of(current.value.value()) != lifecycle.state_of(record.value.value()) {
        return Ok(());
    }
    let mut value = current.value.value().clone();
    let to = Value::String(transition.to.clone());
    if let Some(object) = value.as_object_mut() {
        object.insert(lifecycle.field.clone(), to.clone());
    }
    lifecycle::write(
        call,
        &lifecycle.collection,
        &record.id,
        &record.scope,
        Some(record.seq),
        value,
    )
    .map_err(|refused| refused.response(call))?;
    if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&response.body)
        && body.contains_key(&lifecycle.field)
        && body
            .values()
            .any(|v| v.as_str() == Some(record.id.as_str()))
    {
        body.insert(lifecycle.field.clone(), to);
        response.body = Value::Object(body).to_string().into_bytes().into();
    }
    Ok(())
}

fn run_behaviour(call: &Rc<Call>, trace: &mut Trace) -> Result<Outcome, Stop> {
    let trigger = triggered(call);
    if let Some((lifecycle, transition, record)) = &trigger {
        let state = lifecycle.state_of(record.value.value()).unwrap_or("");
        if !transition.from.iter().any(|from| from == state) {
            let reason = format!(
                "{} {} is {state}; {} needs it to be {}",
                lifecycle.collection,
                record.id,
                call.operation().operation.id,
                transition.from.join(" or ")
            );
            trace.note(|| Step::new("lifecycle", Verdict::Failed, reason.clone()));
            return Ok(Refused::Disallowed(Disallowed(reason))
                .response(call)
                .into());
        }
    }
    let answer = behaviour::answer(call);
    if call.yielded.get() {
        return Err(Yield::because("the behaviour must run where it may block"));
    }
    let (response, drift) = match answer {
        Ok(rendered) => {
            let drift = drift::check(
                call.operation(),
                &rendered.response,
                rendered.value.as_ref().map(|v| v.value()),
            );
            (rendered.response, drift)
        }
        Err(response) => (response, None),
    };
    let mut response = response;
    if let Some(trigger) = trigger
        && (200..300).contains(&response.status)
        && let Err(refused) = make_transition(call, trigger, &mut response)
    {
        trace.note(|| Step::new("lifecycle", Verdict::Failed, problem_detail(&refused)));
        response = refused;
    }
    trace.note(|| explain_behaviour(call, &response));
    if let Some(drift) = &drift {
        trace.note(|| Step::new("contract", Verdict::Failed, drift.summary()));
        if call.revision.behaviours.settings.strict_responses {
            response = drift.response();
        } else {
            response
                .headers
                .push(("x-sandbox-drift".to_owned(), drift.summary()));
        }
    }
    Ok(Outcome {
        response,
        journal: call.journal.take(),
        drift,
        chaos: ChaosEffect::default(),
        answered: false,
        chaos_draw: None,
        trace: Vec::new(),
        operation: None,
    })
}

/// Every violation of the request, and its parsed body (unless it is not
/// needed and its schema's screen accepts it); `Err` for an unsupported
/// media type.
fn validate(
    operation: &CompiledOperation,
    request: &Request<'_>,
    path_params: &[(String, String)],
    query: &[(String, String)],
    document: &Value,
    needs_body: bool,
) -> Result<(Vec<Violation>, Option<Value>), Response> {
    let mut violations = Vec::new();
    let raw = params::RawParams {
        path: path_params,
        query,
        headers: request.headers,
        document,
    };
    for (param, validator) in operation
        .operation
        .parameters
        .iter()
        .zip(&operation.parameter_validators)
    {
        let location = param.location.as_str();
        // Built only on failure: the common path allocates nothing here.
        let at = || format!("/{}", sbx_spec::pointer::escape(&param.name));
        match params::extract(param, &raw) {
            Err(message) => violations.push(Violation {
                location,
                pointer: at(),
                message: format!("{location} parameter \"{}\" {message}", param.name),
                schema: None,
                missing: None,
                unexpected: None,
            }),
            Ok(None) if param.required => violations.push(Violation {
                location,
                pointer: at(),
                message: format!("{location} parameter \"{}\" is required", param.name),
                schema: None,
                missing: None,
                unexpected: None,
            }),
            Ok(None) => {}
            Ok(Some(value)) => {
                if let Some(validator) = validator.get()
                    && !validator.is_valid(&value)
                {
                    let prefix = at();
                    for v in validator.violations(&value) {
                        violations.push(Violation {
                            location,
                            pointer: format!("{prefix}{}", v.pointer),
                            message: format!(
                                "{location} parameter \"{}\": {}",
                                param.name, v.message
                            ),
                            schema: Some((v.schema_path, v.got)),
                            missing: v.missing,
                            unexpected: v.unexpected.into_iter().next(),
                        });
                    }
                }
            }
        }
    }
    let Some(body_spec) = &operation.operation.request_body else {
        return Ok((violations, None));
    };
    if request.body.is_empty() {
        if body_spec.required {
            violations.push(Violation {
                location: "body",
                pointer: String::new(),
                message: "a request body is required".to_owned(),
                schema: None,
                missing: None,
                unexpected: None,
            });
        }
        return Ok((violations, None));
    }
    if operation.request_content.is_empty() {
        return Ok((violations, None));
    }
    let content_type = request
        .headers
        .get("content-type")
        .unwrap_or("application/octet-stream");
    let media_types = body_spec.content.iter().map(|m| m.media_type.as_str());
    let Some(index) = body::match_declared(media_types, content_type) else {
        let supported: Vec<&str> = body_spec
            .content
            .iter()
            .map(|m| m.media_type.as_str())
            .collect();
        return Err(ProblemType::UnsupportedMediaType.response_with(
            415,
            &format!(
                "Content-Type `{content_type}` is not accepted here; send {}",
                supported.join(" or ")
            ),
            Some(json!({"supported": supported})),
        ));
    };
    let media = &operation.request_content[index];
    if !needs_body
        && body::is_json(&body::essence(content_type))
        && media
            .validator
            .screen()
            .is_some_and(|screen| screen.accepts(request.body))
    {
        return Ok((violations, None));
    }
    let mut parsed = None;
    match body::parse(
        content_type,
        request.body,
        &media.spec,
        &media.schema,
        document,
    ) {
        Err(message) => violations.push(Violation {
            location: "body",
            pointer: String::new(),
            message,
            schema: None,
            missing: None,
            unexpected: None,
        }),
        Ok(None) => {}
        Ok(Some(value)) => {
            if let Some(validator) = media.validator.get().filter(|v| !v.is_valid(&value)) {
                violations.extend(validator.violations(&value).into_iter().map(|v| Violation {
                    location: "body",
                    message: if v.pointer.is_empty() {
                        v.message
                    } else {
                        format!("{}: {}", v.pointer, v.message)
                    },
                    pointer: v.pointer,
                    schema: Some((v.schema_path, v.got)),
                    missing: v.missing,
                    unexpected: v.unexpected.into_iter().next(),
                }));
            }
            parsed = Some(value);
        }
    }
    Ok((violations, parsed))
}

fn validation_failure(
    revision: &CompiledRevision,
    context: &SandboxContext<'_>,
    operation: &CompiledOperation,
    exchange: &Exchange<'_>,
    violations: &[Violation],
    form_body: bool,
) -> Response {
    let summary = match violations {
        [only] => only.message.clone(),
        [first, rest @ ..] => format!("{} (and {} more)", first.message, rest.len()),
        [] => String::new(),
    };
    let first = violations.first();
    let kind = match first {
        Some(v) if v.missing.is_some() || v.message.ends_with("is required") => {
            FailureKind::MissingParameter
        }
        _ => FailureKind::InvalidRequest,
    };
    let failure = Failure::new(kind, &summary).about(first.map(|v| v.culprit(form_body)));
    if let Some(response) = declared_error(
        revision,
        context.seed,
        operation,
        exchange,
        &[400, 422],
        &failure,
    ) {
        return response;
    }
    let errors: Vec<Value> = violations
        .iter()
        .map(|v| json!({"location": v.location, "pointer": v.pointer, "message": v.message}))
        .collect();
    ProblemType::ContractViolation.response_with(
        400,
        &format!("{} violation(s): {summary}", violations.len()),
        Some(json!({"errors": errors})),
    )
}

/// The `detail` of a problem answer, or its status.
fn problem_detail(response: &Response) -> String {
    serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| body.get("detail")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("answered {}", response.status))
}

fn explain_validation(violations: &[Violation]) -> Step {
    if violations.is_empty() {
        return Step::new(
            "validate",
            Verdict::Passed,
            "the parameters and body match the contract",
        );
    }
    let detail: Vec<Value> = violations
        .iter()
        .map(|v| {
            let mut entry =
                json!({"location": v.location, "pointer": v.pointer, "message": v.message});
            if let Some((schema_path, got)) = &v.schema {
                entry["schema_path"] = json!(schema_path);
                entry["got"] = got.clone();
            }
            entry
        })
        .collect();
    Step::new(
        "validate",
        Verdict::Failed,
        format!("{} violation(s) of the contract", violations.len()),
    )
    .with_detail(json!(detail))
}

fn explain_chaos(source: &str, chaos: &ChaosEffect) -> Step {
    let mut effects = Vec::new();
    if let Some(status) = chaos.error {
        effects.push(format!("answered {status} instead"));
    }
    if chaos.drop {
        effects.push("dropped the connection".to_owned());
    }
    if !chaos.delay.is_zero() {
        effects.push(format!("added {} ms of latency", chaos.delay.as_millis()));
    }
    if !chaos.slow.is_zero() {
        effects.push(format!(
            "trickled the body over {} ms",
            chaos.slow.as_millis()
        ));
    }
    if effects.is_empty() {
        Step::new(
            "chaos",
            Verdict::Passed,
            format!("{source} drew nothing this time"),
        )
    } else {
        Step::new(
            "chaos",
            Verdict::Applied,
            format!("{source}: {}", effects.join("; ")),
        )
    }
}

fn explain_scenario(
    call: &Call,
    header: Option<&str>,
    selected: &Result<Option<usize>, Response>,
) -> Step {
    let declared = call.revision.behaviours.scenarios_of(call.index());
    match selected {
        Err(unknown) => Step::new("scenario", Verdict::Failed, problem_detail(unknown)),
        Ok(None) if declared.is_empty() => Step::new(
            "scenario",
            Verdict::Skipped,
            "the operation declares no scenarios",
        ),
        Ok(None) => Step::new(
            "scenario",
            Verdict::Passed,
            format!(
                "none of the {} scenario(s) applied; the operation's own answer",
                declared.len()
            ),
        ),
        Ok(Some(index)) => {
            let scenario = &declared[*index];
            let how = match (header, scenario.trigger()) {
                (Some(_), _) => "the X-Sandbox-Scenario header named it",
                (None, "request") => "its rule on the request matched",
                (None, "state") => "its rule on the addressed record matched",
                _ => "it is the sandbox's default scenario",
            };
            Step::new(
                "scenario",
                Verdict::Applied,
                format!("scenario {:?} ({}): {how}", scenario.name, scenario.status),
            )
        }
    }
}

/// Which behaviour answered, or how its script failed.
fn explain_behaviour(call: &Call, response: &Response) -> Step {
    if let Some(error) = call.script_error.borrow().as_ref() {
        return Step::new("behaviour", Verdict::Failed, error.to_string()).with_detail(json!({
            "script": error.file,
            "line": error.line,
            "column": error.column,
            "limit": error.limit,
            "message": error.message,
        }));
    }
    let behaviours = &call.revision.behaviours;
    let operation = call.index();
    let by = if let Some(index) = call.scenario.get() {
        format!(
            "scenario {:?}",
            behaviours.scenarios_of(operation)[index].name
        )
    } else if let Some(script) = &behaviours.operation(operation).script {
        format!("script {}", script.file)
    } else if let Some(function) = &behaviours.operation(operation).function {
        let step = Step::new(
            "respond",
            Verdict::Passed,
            format!(
                "answered {} by the function {}",
                response.status, function.file
            ),
        );
        return match call.function_logs.borrow().as_ref() {
            Some(logs) => step.with_detail(json!({"function": function.file, "logs": logs})),
            None => step,
        };
    } else if behaviours.operation(operation).forward.is_some() {
        "forwarding to the upstream".to_owned()
    } else if let Some(binding) = behaviours.binding(operation) {
        format!(
            "the stateful collection {:?}",
            behaviours.resources.collections[binding.collection].name
        )
    } else if behaviours.operation(operation).template.is_some() {
        "the operation's template".to_owned()
    } else {
        "the spec".to_owned()
    };
    Step::new(
        "respond",
        Verdict::Passed,
        format!("answered {} by {by}", response.status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProjectFiles, ScriptLimits};

    const SPEC: &str = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
      "paths": {"/things/{id}": {"get": {"operationId": "getThing",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
          "type": "array", "minItems": 3, "items": {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}}}}}}}}}}}"#;

    /// A cold synthesis whose cost is not known yet yields from an async
    /// worker; once measured (and cheap), cold values are made in place.
    #[test]
    fn cold_synthesis_yields_until_it_is_known_to_be_cheap() {
        let model = sbx_spec::load_api(SPEC, &sbx_spec::Limits::default()).unwrap();
        let revision = Arc::new(
            CompiledRevision::compile_project(
                model,
                &ProjectFiles::default(),
                &ScriptLimits::default(),
            )
            .unwrap(),
        );
        let state = Arc::new(SandboxState::default());
        let env = Arc::new(Map::new());
        let key_check = |_: Credential<'_>, _: &sbx_spec::Operation| KeyVerdict::Valid;
        let rate_check = || Ok(());
        let context = SandboxContext {
            id: "sbx-test",
            seed: 1,
            auth: AuthMode::None,
            key_check: &key_check,
            rate_check: &rate_check,
            state: &state,
            env: &env,
            upstream: None,
            functions: None,
            now_ms: 0,
            may_block: false,
            chaos: None,
            default_scenario: None,
            chaos_draw: None,
            trace: false,
            base_url: BaseUrl::default(),
        };
        let headers: Vec<(String, String)> = Vec::new();
        let get = |path| Request {
            method: "GET",
            path,
            query: None,
            headers: &headers,
            body: b"",
        };
        let answered = |decision| match decision {
            Decision::Answer(outcome) => outcome,
            Decision::Yield(pending) => panic!("yielded: {}", pending.reason),
        };
        let first = handle(&revision, &context, &get("/things/1"));
        assert!(matches!(first, Decision::Yield(_)), "unmeasured, it yields");
        let blocking = SandboxContext {
            may_block: true,
            ..context
        };
        let made = answered(handle(&revision, &blocking, &get("/things/1")));
        assert_eq!(made.response.status, 200);
        // Cached: served in place, the same bytes.
        let again = answered(handle(&revision, &context, &get("/things/1")));
        assert_eq!(again.response.body, made.response.body);
        // Another id is cold, but this schema is now known to be cheap.
        let other = answered(handle(&revision, &context, &get("/things/2")));
        assert_eq!(other.response.status, 200);
    }
}
