//! Memory and time bounds for minijinja templates, which have fuel (an
//! instruction count) but nothing that stops one instruction from building
//! a gigabyte string: `"x" * 100000000`, then `s ~ s ~ s`, is three
//! instructions.
//!
//! Each template is instrumented when it is compiled: every `~`, `+` and
//! `*` reports its operands (`__sbx_l(a) ~ __sbx_r("concat", b)`) so that
//! the size of the result is checked *before* it is built, every filter
//! result passes through `|__sbx_post`, and the filters that can multiply
//! their input (`replace`, `join`, `indent`, `format`, `tojson`, `pprint`,
//! `escape`) check their output size first. Every byte those produce, and
//! every value printed, is charged to the render's [`Budget`]; the hooks
//! also check its deadline and, on an async worker, its slice of fuel.
//! Raw text repeated by loops and macros is bounded through fuel (see
//! [`Instrumented::max_repeated_raw`]).

use std::{cell::RefCell, time::Instant};

use minijinja::{
    Environment, Error, ErrorKind, State, Value,
    machinery::{self, Token, ast},
    value::{Kwargs, Rest, StringInput, ValueOrKwargs},
};

/// A template's source with its hooks, and what bounds its raw text.
pub struct Instrumented {
    pub source: String,
    /// The longest raw text inside a loop or macro body, in bytes: fuel
    /// times this bounds the raw text a render can repeat.
    pub max_repeated_raw: usize,
}

/// What one render may use.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Bytes the render may produce (operators, filters, printed values).
    pub bytes: usize,
    pub deadline: Instant,
    /// Instructions after which the render stops because it runs on an
    /// async worker and must yield to the blocking pool.
    pub fuel_slice: Option<u64>,
}

/// Why a render was stopped by its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    /// It outgrew what an async worker may do: run it again where it may block.
    Slice,
    /// It broke the budget itself.
    Limit(String),
}

struct Running {
    budget: Budget,
    used: usize,
    /// Size and integer value of the left operands awaiting their right one.
    operands: Vec<(usize, Option<i64>)>,
    exceeded: Option<Exceeded>,
}

thread_local! {
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
}

/// Runs `render` under `budget`: its result, and why the budget stopped it
/// if it did.
pub fn within<R>(budget: Budget, render: impl FnOnce() -> R) -> (R, Option<Exceeded>) {
    RUNNING.with(|r| {
        *r.borrow_mut() = Some(Running {
            budget,
            used: 0,
            operands: Vec::new(),
            exceeded: None,
        })
    });
    let result = render();
    let exceeded = RUNNING.with(|r| r.borrow_mut().take().and_then(|r| r.exceeded));
    (result, exceeded)
}

/// Charges `bytes` produced by the running render, checking its deadline
/// and fuel slice too; outside a render (never in practice) it is free.
fn charge(state: Option<&State<'_, '_>>, bytes: usize) -> Result<(), Error> {
    RUNNING.with(|r| {
        let mut running = r.borrow_mut();
        let Some(running) = running.as_mut() else {
            return Ok(());
        };
        let stop = |running: &mut Running, why: Exceeded| {
            let message = match &why {
                Exceeded::Slice => "the template yields to the blocking pool".to_owned(),
                Exceeded::Limit(message) => message.clone(),
            };
            running.exceeded = Some(why);
            Err(Error::new(ErrorKind::InvalidOperation, message))
        };
        let consumed = state
            .and_then(State::fuel_levels)
            .map_or(0, |(used, _)| used);
        if running
            .budget
            .fuel_slice
            .is_some_and(|slice| consumed > slice)
        {
            return stop(running, Exceeded::Slice);
        }
        if Instant::now() >= running.budget.deadline {
            let why = if running.budget.fuel_slice.is_some() {
                Exceeded::Slice
            } else {
                Exceeded::Limit("the template ran out of time (timeout_ms)".to_owned())
            };
            return stop(running, why);
        }
        let used = running.used.saturating_add(bytes);
        if used > running.budget.bytes {
            let why = if running.budget.fuel_slice.is_some() {
                Exceeded::Slice
            } else {
                Exceeded::Limit(format!(
                    "the template would produce more than {} bytes (template_memory_bytes)",
                    running.budget.bytes
                ))
            };
            return stop(running, why);
        }
        running.used = used;
        Ok(())
    })
}

/// An upper bound of the bytes `value` holds (shared parts counted each
/// time they appear, which is what printing or joining them costs).
fn size_of(value: &Value) -> usize {
    fn walk(value: &Value, depth: usize, total: &mut usize) {
        const CAP: usize = usize::MAX / 4;
        if *total > CAP || depth > 32 {
            return;
        }
        if let Some(text) = value.as_str() {
            *total += text.len();
        } else if let Some(bytes) = value.as_bytes() {
            *total += bytes.len();
        } else if let Ok(items) = value.try_iter() {
            let is_map = value.kind() == minijinja::value::ValueKind::Map;
            for item in items {
                *total += 8;
                if is_map && let Ok(member) = value.get_item(&item) {
                    walk(&member, depth + 1, total);
                }
                walk(&item, depth + 1, total);
                if *total > CAP {
                    return;
                }
            }
        } else {
            *total += 8;
        }
    }
    let mut total = 0;
    walk(value, 0, &mut total);
    total
}

/// `__sbx_l(a)`: notes the left operand of `~`, `+` or `*`.
fn left(value: Value) -> Value {
    let integer = i64::try_from(value.clone()).ok();
    let size = size_of(&value);
    RUNNING.with(|r| {
        if let Some(running) = r.borrow_mut().as_mut() {
            running.operands.push((size, integer));
        }
    });
    value
}

/// `__sbx_r(kind, b)`: charges what the operator is about to build from
/// the noted left operand and `b`, before it builds it.
fn right(state: &State<'_, '_>, kind: &str, value: Value) -> Result<Value, Error> {
    let (left_size, left_integer) = RUNNING
        .with(|r| r.borrow_mut().as_mut().and_then(|r| r.operands.pop()))
        .unwrap_or((0, None));
    let right_size = size_of(&value);
    let result = if kind == "mul" {
        let times = |n: Option<i64>| usize::try_from(n.unwrap_or(1).max(0)).unwrap_or(usize::MAX);
        let right_integer = i64::try_from(value.clone()).ok();
        left_size
            .saturating_mul(times(right_integer))
            .max(right_size.saturating_mul(times(left_integer)))
    } else {
        left_size.saturating_add(right_size)
    };
    charge(Some(state), result)?;
    Ok(value)
}

/// `|__sbx_post`: charges a filter's result.
fn post(state: &State<'_, '_>, value: Value) -> Result<Value, Error> {
    charge(Some(state), size_of(&value))?;
    Ok(value)
}

/// Charges a value a template prints (called by the formatter).
pub fn printed(state: &State<'_, '_>, value: &Value) -> Result<(), Error> {
    charge(Some(state), size_of(value))
}

fn replace(
    state: &mut State<'_, '_>,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
) -> Result<Value, Error> {
    let text = value.as_str();
    let places = if from.as_str().is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from.as_str()).count()
    };
    charge(
        Some(state),
        text.len()
            .saturating_add(places.saturating_mul(to.as_str().len())),
    )?;
    minijinja::filters::replace(state, value, from, to)
}

fn join(
    state: &mut State<'_, '_>,
    value: &Value,
    joiner: Option<StringInput<'_>>,
    attribute: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let items = value.len().unwrap_or(0);
    let glue = joiner.as_ref().map_or(0, |j| j.as_str().len());
    charge(
        Some(state),
        size_of(value).saturating_add(items.saturating_mul(glue)),
    )?;
    minijinja::filters::join(state, value, joiner, attribute, kwargs)
}

fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    indent_first_line: Option<bool>,
    indent_blank_lines: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let lines = value.as_str().lines().count() + 1;
    let text_width = width
        .or_else(|| kwargs.peek::<Option<usize>>("width").ok().flatten())
        .unwrap_or(4);
    charge(
        None,
        value
            .as_str()
            .len()
            .saturating_add(lines.saturating_mul(text_width)),
    )?;
    minijinja::filters::indent(value, width, indent_first_line, indent_blank_lines, kwargs)
}

fn format(
    state: &mut State<'_, '_>,
    format_str: &Value,
    format_args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    let args: usize = format_args
        .iter()
        .map(|arg: &ValueOrKwargs| size_of(arg))
        .sum();
    // A width (`%1000000s`) pads: count the digits of the format too.
    let widths: usize = format_str
        .as_str()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|digits| digits.parse::<usize>().ok())
        .fold(0, usize::saturating_add);
    charge(
        Some(state),
        size_of(format_str)
            .saturating_add(args)
            .saturating_add(widths),
    )?;
    minijinja::filters::format(state, format_str, format_args)
}

fn tojson(
    state: &State<'_, '_>,
    value: &Value,
    indent: Option<Value>,
    args: Kwargs,
) -> Result<Value, Error> {
    let width = indent
        .as_ref()
        .and_then(|i| usize::try_from(i.clone()).ok())
        .unwrap_or(0);
    let size = size_of(value);
    // Each member may be indented up to its depth: bounded by 32 levels.
    charge(
        Some(state),
        size.saturating_mul(2).saturating_add(
            size.saturating_mul(width.min(1 << 20))
                .saturating_mul(32)
                .min(usize::MAX / 2),
        ),
    )?;
    minijinja::filters::tojson(value, indent, args)
}

fn pprint(state: &State<'_, '_>, value: &Value) -> Result<String, Error> {
    let size = size_of(value);
    charge(Some(state), size.saturating_mul(4))?;
    Ok(minijinja::filters::pprint(value))
}

fn escape(state: &mut State<'_, '_>, value: &Value) -> Result<Value, Error> {
    // `&quot;` is the longest entity: six bytes for one.
    charge(Some(state), size_of(value).saturating_mul(6))?;
    minijinja::filters::escape(state, value)
}

/// Adds the hooks the instrumented source calls, and the checked
/// versions of the filters that can multiply their input.
pub fn register(env: &mut Environment<'_>) {
    env.add_function("__sbx_l", left);
    env.add_function("__sbx_r", right);
    env.add_filter("__sbx_post", post);
    env.add_filter("replace", replace);
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("format", format);
    env.add_filter("tojson", tojson);
    env.add_filter("pprint", pprint);
    env.add_filter("escape", escape);
    env.add_filter("e", escape);
}

/// One insertion into the source.
struct Insertion {
    offset: usize,
    /// Ends (closing what an inner node opened) go before starts at one
    /// offset; inner ends before outer ones, outer starts before inner.
    order: (u8, isize),
    text: String,
}

struct Walker<'s> {
    /// `(start, end, token)` of every operator and closing parenthesis.
    tokens: Vec<(usize, usize, Token<'s>)>,
    insertions: Vec<Insertion>,
    max_repeated_raw: usize,
    problem: Option<String>,
}

impl Walker<'_> {
    fn open(&mut self, offset: usize, depth: usize, text: impl Into<String>) {
        self.insertions.push(Insertion {
            offset,
            order: (1, depth as isize),
            text: text.into(),
        });
    }

    fn close(&mut self, offset: usize, depth: usize, text: impl Into<String>) {
        self.insertions.push(Insertion {
            offset,
            order: (0, -(depth as isize)),
            text: text.into(),
        });
    }

    fn stmts(&mut self, stmts: &[ast::Stmt<'_>], depth: usize, repeated: bool) {
        for stmt in stmts {
            self.stmt(stmt, depth, repeated);
        }
    }

    fn stmt(&mut self, stmt: &ast::Stmt<'_>, depth: usize, repeated: bool) {
        let d = depth + 1;
        match stmt {
            ast::Stmt::Template(t) => self.stmts(&t.children, d, repeated),
            ast::Stmt::EmitExpr(e) => self.expr(&e.expr, d),
            ast::Stmt::EmitRaw(raw) if repeated => {
                self.max_repeated_raw = self.max_repeated_raw.max(raw.raw.len());
            }
            ast::Stmt::ForLoop(l) => {
                self.expr(&l.target, d);
                self.expr(&l.iter, d);
                if let Some(filter) = &l.filter_expr {
                    self.expr(filter, d);
                }
                self.stmts(&l.body, d, true);
                self.stmts(&l.else_body, d, repeated);
            }
            ast::Stmt::IfCond(c) => {
                self.expr(&c.expr, d);
                self.stmts(&c.true_body, d, repeated);
                self.stmts(&c.false_body, d, repeated);
            }
            ast::Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.expr(target, d);
                    self.expr(value, d);
                }
                self.stmts(&w.body, d, repeated);
            }
            ast::Stmt::Set(s) => {
                self.expr(&s.target, d);
                self.expr(&s.expr, d);
            }
            ast::Stmt::SetBlock(s) => {
                self.expr(&s.target, d);
                if let Some(filter) = &s.filter {
                    self.expr(filter, d);
                }
                self.stmts(&s.body, d, repeated);
            }
            ast::Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, d);
                self.stmts(&a.body, d, repeated);
            }
            ast::Stmt::FilterBlock(f) => {
                self.expr(&f.filter, d);
                self.stmts(&f.body, d, repeated);
            }
            ast::Stmt::Block(b) => self.stmts(&b.body, d, repeated),
            ast::Stmt::Import(i) => {
                self.expr(&i.expr, d);
                self.expr(&i.name, d);
            }
            ast::Stmt::FromImport(i) => {
                self.expr(&i.expr, d);
                for (name, alias) in &i.names {
                    self.expr(name, d);
                    if let Some(alias) = alias {
                        self.expr(alias, d);
                    }
                }
            }
            ast::Stmt::Extends(e) => self.expr(&e.name, d),
            ast::Stmt::Include(i) => self.expr(&i.name, d),
            ast::Stmt::Macro(m) => self.macro_decl(m, d),
            ast::Stmt::CallBlock(c) => {
                // The call itself stays a call (it receives `caller`).
                self.expr(&c.call.expr, d);
                self.args(&c.call.args, d);
                self.macro_decl(&c.macro_decl, d);
            }
            ast::Stmt::Do(call) => {
                self.expr(&call.call.expr, d);
                self.args(&call.call.args, d);
            }
            _ => {}
        }
    }

    fn macro_decl(&mut self, m: &ast::Macro<'_>, depth: usize) {
        for expr in m.args.iter().chain(&m.defaults) {
            self.expr(expr, depth);
        }
        // A macro body runs once per call.
        self.stmts(&m.body, depth, true);
    }

    fn args(&mut self, args: &[ast::CallArg<'_>], depth: usize) {
        for arg in args {
            match arg {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => self.expr(e, depth),
            }
        }
    }

    fn expr(&mut self, expr: &ast::Expr<'_>, depth: usize) {
        let d = depth + 1;
        match expr {
            ast::Expr::Var(_) | ast::Expr::Const(_) => {}
            ast::Expr::Slice(s) => {
                self.expr(&s.expr, d);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part, d);
                }
            }
            ast::Expr::UnaryOp(u) => self.expr(&u.expr, d),
            ast::Expr::BinOp(b) => {
                self.expr(&b.left, d);
                self.expr(&b.right, d);
                let kind = match b.op {
                    ast::BinOpKind::Concat => Some(("concat", Token::Tilde)),
                    ast::BinOpKind::Add => Some(("add", Token::Plus)),
                    ast::BinOpKind::Mul => Some(("mul", Token::Mul)),
                    _ => None,
                };
                if let Some((kind, token)) = kind {
                    self.operator(expr.span(), b.left.span(), kind, &token, depth);
                }
            }
            ast::Expr::Compare(c) => {
                self.expr(&c.expr, d);
                for op in &c.ops {
                    self.expr(&op.expr, d);
                }
            }
            ast::Expr::IfExpr(i) => {
                self.expr(&i.test_expr, d);
                self.expr(&i.true_expr, d);
                if let Some(other) = &i.false_expr {
                    self.expr(other, d);
                }
            }
            ast::Expr::Filter(f) => {
                if let Some(operand) = &f.expr {
                    self.expr(operand, d);
                }
                self.args(&f.args, d);
                // A filter's span ends with it: what follows applies to its result.
                self.close(expr.span().end_offset as usize, depth, "|__sbx_post");
            }
            ast::Expr::Test(t) => {
                self.expr(&t.expr, d);
                self.args(&t.args, d);
            }
            ast::Expr::GetAttr(g) => self.expr(&g.expr, d),
            ast::Expr::GetItem(g) => {
                self.expr(&g.expr, d);
                self.expr(&g.subscript_expr, d);
            }
            ast::Expr::Call(c) => {
                self.expr(&c.expr, d);
                self.args(&c.args, d);
            }
            ast::Expr::List(l) => {
                for item in &l.items {
                    self.expr(item, d);
                }
            }
            ast::Expr::Tuple(t) => {
                for item in &t.items {
                    self.expr(item, d);
                }
            }
            ast::Expr::Map(m) => {
                for item in m.keys.iter().chain(&m.values) {
                    self.expr(item, d);
                }
            }
        }
    }

    /// Wraps the operands of the binary operator spanning `whole`:
    /// `__sbx_l(a) ~ __sbx_r("concat", b)`.
    fn operator(
        &mut self,
        whole: machinery::Span,
        left: machinery::Span,
        kind: &str,
        token: &Token<'_>,
        depth: usize,
    ) {
        // Between the left operand and the operator there can only be the
        // closing parentheses of a parenthesized left operand.
        let found = self
            .tokens
            .iter()
            .skip_while(|(start, _, _)| *start < left.end_offset as usize)
            .find(|(_, _, t)| !matches!(t, Token::ParenClose));
        let Some((op_start, op_end, _)) = found.filter(|(start, _, t)| {
            std::mem::discriminant(t) == std::mem::discriminant(token)
                && *start < whole.end_offset as usize
        }) else {
            self.problem = Some(format!(
                "line {}: could not bound the `{kind}` operator",
                whole.start_line
            ));
            return;
        };
        let (op_start, op_end) = (*op_start, *op_end);
        self.open(whole.start_offset as usize, depth, "__sbx_l(");
        self.close(op_start, depth, ")");
        self.open(op_end, depth, format!("__sbx_r(\"{kind}\", "));
        self.close(whole.end_offset as usize, depth, ")");
    }
}

/// `source` with its hooks (see the module's documentation). A template
/// that does not parse is returned as it is, for minijinja to report.
pub fn instrument(source: &str) -> Result<Instrumented, String> {
    let Ok(tree) = machinery::parse(source, "<template>", Default::default()) else {
        return Ok(Instrumented {
            source: source.to_owned(),
            max_repeated_raw: 0,
        });
    };
    let mut tokens = Vec::new();
    for token in machinery::tokenize(source, false, Default::default()) {
        let Ok((token, span)) = token else {
            break;
        };
        if !matches!(token, Token::TemplateData(_)) {
            tokens.push((span.start_offset as usize, span.end_offset as usize, token));
        }
    }
    let mut walker = Walker {
        tokens,
        insertions: Vec::new(),
        max_repeated_raw: 0,
        problem: None,
    };
    walker.stmt(&tree, 0, false);
    if let Some(problem) = walker.problem {
        return Err(problem);
    }
    let mut insertions = walker.insertions;
    insertions.sort_by_key(|i| (i.offset, i.order));
    let mut out = String::with_capacity(source.len() + insertions.len() * 16);
    let mut at = 0;
    for insertion in insertions {
        let offset = insertion.offset.min(source.len());
        if offset > at {
            out.push_str(&source[at..offset]);
            at = offset;
        }
        out.push_str(&insertion.text);
    }
    out.push_str(&source[at..]);
    Ok(Instrumented {
        source: out,
        max_repeated_raw: walker.max_repeated_raw,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn instrumented(source: &str) -> String {
        instrument(source).unwrap().source
    }

    fn budget(bytes: usize) -> Budget {
        Budget {
            bytes,
            deadline: Instant::now() + Duration::from_secs(5),
            fuel_slice: None,
        }
    }

    fn context() -> Value {
        minijinja::context! { a => "ab", b => "cd", n => 3, xs => vec![1, 2, 3], m => minijinja::context!{ k => "v" } }
    }

    /// Renders `source` instrumented, with the hooks, under `budget`.
    fn bounded(source: &str, budget: Budget) -> (Result<String, String>, Option<Exceeded>) {
        let mut env = Environment::new();
        env.set_fuel(Some(200_000));
        register(&mut env);
        env.set_formatter(|out, state, value| {
            printed(state, value)?;
            minijinja::escape_formatter(out, state, value)
        });
        let source = instrumented(source);
        let (rendered, exceeded) = within(budget, || env.render_str(&source, context()));
        (rendered.map_err(|e| e.to_string()), exceeded)
    }

    #[test]
    fn operators_report_their_operands_and_filters_their_results() {
        assert_eq!(
            instrumented("{{ (a ~ b) * 3 }}"),
            r#"{{ __sbx_l((__sbx_l(a )~__sbx_r("concat",  b)) )*__sbx_r("mul",  3) }}"#
        );
        assert_eq!(
            instrumented("{{ x|upper ~ y|replace('a', 'b') }}"),
            r#"{{ __sbx_l(x|upper|__sbx_post )~__sbx_r("concat",  y|replace('a', 'b')|__sbx_post) }}"#
        );
        assert_eq!(
            instrumented("{% for i in r %}ab{% endfor %}{{ 1 - 2 }}"),
            "{% for i in r %}ab{% endfor %}{{ 1 - 2 }}"
        );
        assert_eq!(
            instrument("{% for i in r %}abc{% endfor %}xxxxxxxx")
                .unwrap()
                .max_repeated_raw,
            3
        );
    }

    #[test]
    fn instrumented_templates_render_as_they_did() {
        for source in [
            "{{ a ~ b ~ (a ~ b) * 2 }}|{{ n * 2 + 1 }}|{{ 2 * n }}|{{ -n * 2 }}",
            "{{ xs + [4] }} {{ (xs|list + xs)|length }} {{ a|upper ~ b|replace('c', 'x')|title }}",
            "{% set s = a ~ b %}{% for x in xs if x > 1 %}{{ s ~ x }},{% else %}none{% endfor %}",
            "{% macro m(v, w=a ~ 'z') %}[{{ v ~ w }}]{% endmacro %}{{ m(b) }}{{ m(a, b * 2) }}",
            "{% set t %}{{ a }}-{{ b|upper }}{% endset %}{{ t|length }}{{ t }}",
            "{{ m.k ~ xs[0] ~ xs[1:]|join(',') }} {{ 'a' if n > 2 else 'b' }} {{ n is even }}",
            "{{ '%s=%s'|format(a, b) }} {{ a|indent(2) }} {{ xs|tojson }} {{ '<b>'|e }}",
            "{% filter upper %}{{ a ~ b }}{% endfilter %}{% with y = a ~ b %}{{ y }}{% endwith %}",
            "{{ (a ~ (b ~ a)) ~ ((a)) * 2 }}{{ [a ~ b, {'k': a ~ b}] }}",
        ] {
            let plain = Environment::new().render_str(source, context()).unwrap();
            let (rendered, exceeded) = bounded(source, budget(1 << 20));
            assert_eq!(rendered.as_deref(), Ok(plain.as_str()), "{source}");
            assert_eq!(exceeded, None);
        }
    }

    #[test]
    fn a_string_bomb_stops_before_it_is_built() {
        let bomb = r#"{% set s = "x" * 100000000 %}{% set t = s ~ s ~ s ~ s ~ s ~ s ~ s ~ s %}{% set u = t ~ t %}{{ u|length }}"#;
        let (rendered, exceeded) = bounded(bomb, budget(64 << 20));
        assert!(rendered.is_err());
        assert!(
            matches!(&exceeded, Some(Exceeded::Limit(m)) if m.contains("template_memory_bytes")),
            "{exceeded:?}"
        );
        // Doubling in a loop, replace and join amplifying their input.
        for source in [
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "{{ ('x' * 1000)|replace('x', 'y' * 100000) }}",
            "{{ ([a * 100000] * 1000)|join(a * 1000) }}",
            "{{ a|indent(100000000) }}",
        ] {
            let (rendered, exceeded) = bounded(source, budget(1 << 20));
            assert!(rendered.is_err(), "{source}");
            assert!(
                matches!(exceeded, Some(Exceeded::Limit(_))),
                "{source}: {exceeded:?}"
            );
        }
    }

    #[test]
    fn an_inline_render_yields_when_it_outgrows_its_slice() {
        let slice = Budget {
            fuel_slice: Some(1),
            ..budget(1 << 20)
        };
        let (rendered, exceeded) = bounded("{% for i in range(1000) %}{{ i }}{% endfor %}", slice);
        assert!(rendered.is_err());
        assert_eq!(exceeded, Some(Exceeded::Slice));
    }
}
