//! ARM template expressions (`"[parameters('x')]"`): syntax checks and a small evaluator for the
//! functions whose values are known before deployment (`parameters`, `variables`, `concat`,
//! `format`, `toLower`, `toUpper`, `string`). Anything else stays unresolved, which is not an
//! error: Azure Resource Manager evaluates it at deployment.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::settings::{Diagnostic, did_you_mean, join_index, join_key};

/// How deep parameter defaults and variables may refer to each other.
const MAX_DEPTH: usize = 16;
/// How deep function calls and indexes may nest in one expression: the evaluator recurses once
/// per level, so a hostile template must not choose the depth (found while fuzzing: 20,000
/// nested calls overflowed the stack; fuzz/regressions/settings). Real templates nest a handful.
const MAX_NESTING: usize = 64;

/// Values ARM expressions can be resolved from.
#[derive(Debug, Clone, Default)]
pub struct ArmContext {
    /// `--parameters` values: name to value.
    pub parameter_values: Map<String, Value>,
    /// The template's `parameters` declarations (with `defaultValue`), when a template is known.
    pub declared_parameters: Option<Map<String, Value>>,
    /// The template's `variables`.
    pub variables: Map<String, Value>,
    /// Parameter defaults and variables already evaluated (`p:` or `v:` and the lower-case
    /// name): defaults that refer to each other several times are evaluated once each, not once
    /// per path to them (which grows exponentially with the depth).
    pub memo: std::cell::RefCell<std::collections::HashMap<String, Value>>,
}

/// An expression that could not be evaluated before deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unevaluated {
    pub path: String,
    pub expression: String,
    pub reason: String,
}

/// What resolving a JSON value found.
#[derive(Debug, Default)]
pub struct Resolution {
    pub diagnostics: Vec<Diagnostic>,
    pub unevaluated: Vec<Unevaluated>,
    /// Paths of malformed expressions (reported in `diagnostics`).
    pub malformed: BTreeSet<String>,
}

/// The expression text inside `[...]`, or `None` when `s` is not an expression.
fn expression_body(s: &str) -> Option<&str> {
    let t = s.trim();
    if t.starts_with("[[") {
        return None;
    }
    t.strip_prefix('[')?.strip_suffix(']')
}

/// What does not balance in an ARM expression ([`check_balance`]). Positions count characters
/// of the whole string value from 1, its leading `[` included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    #[error("the quote ' at character {at} is never closed")]
    QuoteNeverClosed { at: usize },
    #[error("'{open}' at character {open_at} is closed by '{close}' at character {close_at}")]
    Mismatched {
        open: char,
        open_at: usize,
        close: char,
        close_at: usize,
    },
    #[error("'{close}' at character {at} closes nothing")]
    ClosesNothing { close: char, at: usize },
    #[error("'{open}' at character {at} is never closed")]
    NeverClosed { open: char, at: usize },
}

/// Checks that quotes, parentheses and brackets balance; returns what is wrong.
pub fn check_balance(body: &str) -> Result<(), BalanceError> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                let start = i;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(BalanceError::QuoteNeverClosed { at: start + 2 });
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                        Some('\'') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            '(' | '[' => stack.push((c, i)),
            ')' | ']' => {
                let want = if c == ')' { '(' } else { '[' };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, at)) => {
                        return Err(BalanceError::Mismatched {
                            open,
                            open_at: at + 2,
                            close: c,
                            close_at: i + 2,
                        });
                    }
                    None => {
                        return Err(BalanceError::ClosesNothing {
                            close: c,
                            at: i + 2,
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        Some((open, at)) => Err(BalanceError::NeverClosed { open, at: at + 2 }),
        None => Ok(()),
    }
}

/// Resolves every ARM expression in `value` in place, as far as `cx` allows.
pub fn resolve(value: &mut Value, path: &str, cx: &ArmContext, out: &mut Resolution) {
    resolve_at(value, path, cx, out, 0);
}

fn resolve_at(value: &mut Value, path: &str, cx: &ArmContext, out: &mut Resolution, depth: usize) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                resolve_at(v, &join_key(path, k), cx, out, depth);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                resolve_at(v, &join_index(path, i), cx, out, depth);
            }
        }
        Value::String(s) => {
            let trimmed = s.trim();
            if trimmed.starts_with("[[") {
                *s = trimmed[1..].to_string();
                return;
            }
            if !trimmed.starts_with('[') {
                return;
            }
            let Some(body) = expression_body(trimmed) else {
                out.malformed.insert(path.to_string());
                out.diagnostics.push(
                    Diagnostic::error(
                        "arm-expression-malformed",
                        path,
                        format!("{s:?} starts like an ARM expression with '[' but does not end with ']'"),
                    )
                    .with_help("close the expression with ']', or write '[[' to start a literal string with '['"),
                );
                *s = "[malformed]".to_string();
                return;
            };
            if let Err(why) = check_balance(body) {
                out.malformed.insert(path.to_string());
                out.diagnostics.push(
                    Diagnostic::error(
                        "arm-expression-malformed",
                        path,
                        format!("ARM expression {s:?} is unbalanced: {why}"),
                    )
                    .with_help(suggest_balanced(trimmed).map_or_else(
                        || "balance every '(' with ')', '[' with ']' and every ' quote".to_string(),
                        |fix| format!("did you mean {fix:?}?"),
                    )),
                );
                *s = "[malformed]".to_string();
                return;
            }
            match evaluate(body, cx, depth) {
                Ok(v) => *value = v,
                Err(Eval::Unresolved(reason)) => out.unevaluated.push(Unevaluated {
                    path: path.to_string(),
                    expression: s.clone(),
                    reason,
                }),
                Err(Eval::Error(message, help)) => {
                    out.malformed.insert(path.to_string());
                    let mut d = Diagnostic::error(
                        "arm-expression-invalid",
                        path,
                        format!("{s:?}: {message}"),
                    );
                    d.help = help.or_else(|| {
                        Some(
                            "write it as ARM does: [function('string', 1, parameters('p'))], \
                             properties as .name, indexes as [0]"
                                .into(),
                        )
                    });
                    out.diagnostics.push(d);
                    *s = "[malformed]".to_string();
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// For the common mistake of a missing ')' before the closing ']': the fixed expression.
fn suggest_balanced(expr: &str) -> Option<String> {
    let body = expression_body(expr)?;
    let opens = body.matches('(').count();
    let closes = body.matches(')').count();
    if opens > closes {
        let fixed = format!("{body}{}", ")".repeat(opens - closes));
        if check_balance(&fixed).is_ok() {
            return Some(format!("[{fixed}]"));
        }
    }
    None
}

enum Eval {
    /// Known only at deployment; the reason.
    Unresolved(String),
    /// A real mistake (a bad call, an undeclared parameter): message and help.
    Error(String, Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(i64),
    Open,
    Close,
    Comma,
    Dot,
    LBracket,
    RBracket,
}

fn tokenize(body: &str) -> Result<Vec<Token>, Eval> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '.' => {
                out.push(Token::Dot);
                i += 1;
            }
            '[' => {
                out.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                out.push(Token::RBracket);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(Eval::Error("unterminated string".into(), None)),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse()
                    .map_err(|_| Eval::Error(format!("{text:?} is not a number"), None))?;
                out.push(Token::Number(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(Eval::Error(format!("unexpected character {other:?}"), None)),
        }
    }
    Ok(out)
}

struct Parser<'c> {
    tokens: Vec<Token>,
    pos: usize,
    cx: &'c ArmContext,
    depth: usize,
    /// How many `expr` calls are under way.
    nesting: usize,
}

const KNOWN_FUNCTIONS: &[&str] = &[
    "parameters",
    "variables",
    "concat",
    "format",
    "toLower",
    "toUpper",
    "string",
];

fn evaluate(body: &str, cx: &ArmContext, depth: usize) -> Result<Value, Eval> {
    if depth > MAX_DEPTH {
        return Err(Eval::Error(
            "parameters and variables refer to each other in a loop".into(),
            None,
        ));
    }
    let tokens = tokenize(body)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        cx,
        depth,
        nesting: 0,
    };
    let v = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(Eval::Error(
            "unexpected text after the expression".into(),
            None,
        ));
    }
    Ok(v)
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn expr(&mut self) -> Result<Value, Eval> {
        if self.nesting >= MAX_NESTING {
            return Err(Eval::Error(
                format!("function calls and indexes nest deeper than {MAX_NESTING} levels"),
                Some("split the expression into variables".into()),
            ));
        }
        self.nesting += 1;
        let value = self.expr_at_depth();
        self.nesting -= 1;
        value
    }

    /// [`Self::expr`], one level deeper.
    fn expr_at_depth(&mut self) -> Result<Value, Eval> {
        let mut value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Number(n)) => Value::from(n),
            Some(Token::Ident(name)) => {
                if self.next() != Some(Token::Open) {
                    return Err(Eval::Error(format!("{name} is not followed by '('"), None));
                }
                let mut args = Vec::new();
                let mut pending: Option<Eval> = None;
                if self.peek() == Some(&Token::Close) {
                    self.pos += 1;
                } else {
                    loop {
                        match self.expr() {
                            Ok(v) => args.push(v),
                            Err(Eval::Unresolved(r)) => {
                                pending.get_or_insert(Eval::Unresolved(r));
                                args.push(Value::Null);
                            }
                            Err(e) => return Err(e),
                        }
                        match self.next() {
                            Some(Token::Comma) => {}
                            Some(Token::Close) => break,
                            _ => {
                                return Err(Eval::Error(
                                    format!("expected ',' or ')' in the arguments of {name}"),
                                    None,
                                ));
                            }
                        }
                    }
                }
                self.call(&name, args, pending)?
            }
            other => return Err(Eval::Error(format!("unexpected {other:?}"), None)),
        };
        // Property and index access.
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.pos += 1;
                    let Some(Token::Ident(prop)) = self.next() else {
                        return Err(Eval::Error(
                            "expected a property name after '.'".into(),
                            None,
                        ));
                    };
                    value = match value {
                        Value::Object(m) => m.get(&prop).cloned().ok_or_else(|| {
                            Eval::Error(format!("the object has no property {prop:?}"), None)
                        })?,
                        _ => {
                            return Err(Eval::Error(
                                format!("cannot read property {prop:?} of a non-object"),
                                None,
                            ));
                        }
                    };
                }
                Some(Token::LBracket) => {
                    self.pos += 1;
                    let index = self.expr()?;
                    if self.next() != Some(Token::RBracket) {
                        return Err(Eval::Error("expected ']' after an index".into(), None));
                    }
                    value = match (&value, &index) {
                        (Value::Array(a), Value::Number(n)) => n
                            .as_u64()
                            .and_then(|i| a.get(usize::try_from(i).ok()?))
                            .cloned()
                            .ok_or_else(|| {
                                Eval::Error(format!("index {n} is out of range"), None)
                            })?,
                        (Value::Object(m), Value::String(k)) => {
                            m.get(k).cloned().ok_or_else(|| {
                                Eval::Error(format!("the object has no property {k:?}"), None)
                            })?
                        }
                        _ => return Err(Eval::Error("bad index".into(), None)),
                    };
                }
                _ => return Ok(value),
            }
        }
    }

    fn call(&mut self, name: &str, args: Vec<Value>, pending: Option<Eval>) -> Result<Value, Eval> {
        let known = KNOWN_FUNCTIONS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name));
        let Some(function) = known else {
            return Err(Eval::Unresolved(format!(
                "{name}() is evaluated by Azure Resource Manager at deployment"
            )));
        };
        if let Some(p) = pending {
            return Err(p);
        }
        match *function {
            "parameters" | "variables" => {
                let [Value::String(key)] = args.as_slice() else {
                    return Err(Eval::Error(
                        format!("{function}() takes one string argument"),
                        None,
                    ));
                };
                if *function == "parameters" {
                    self.parameter(key)
                } else {
                    self.variable(key)
                }
            }
            "concat" => {
                if args.iter().all(Value::is_array) {
                    Ok(Value::Array(
                        args.into_iter()
                            .flat_map(|a| a.as_array().cloned().unwrap_or_default())
                            .collect(),
                    ))
                } else {
                    Ok(Value::String(args.iter().map(text).collect()))
                }
            }
            "format" => {
                let Some((Value::String(fmt), rest)) = args.split_first() else {
                    return Err(Eval::Error("format() needs a format string".into(), None));
                };
                let mut s = fmt.clone();
                for (i, a) in rest.iter().enumerate() {
                    s = s.replace(&format!("{{{i}}}"), &text(a));
                }
                Ok(Value::String(s))
            }
            "toLower" => Ok(Value::String(
                args.first().map(text).unwrap_or_default().to_lowercase(),
            )),
            "toUpper" => Ok(Value::String(
                args.first().map(text).unwrap_or_default().to_uppercase(),
            )),
            _ => Ok(Value::String(args.first().map(text).unwrap_or_default())),
        }
    }

    fn parameter(&mut self, key: &str) -> Result<Value, Eval> {
        let find = |m: &Map<String, Value>| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        if let Some(v) = find(&self.cx.parameter_values) {
            return match v {
                Value::Object(ref o) if o.contains_key("value") => Ok(o["value"].clone()),
                Value::Object(ref o) if o.contains_key("reference") => Err(Eval::Unresolved(
                    format!("parameter {key:?} is a Key Vault reference, read at deployment"),
                )),
                other => Ok(other),
            };
        }
        match &self.cx.declared_parameters {
            Some(declared) => match find(declared) {
                Some(decl) => match decl.get("defaultValue") {
                    Some(default) => {
                        self.memoized(&format!("p:{}", key.to_ascii_lowercase()), default)
                    }
                    None => Err(Eval::Unresolved(format!(
                        "parameter {key:?} has no default value; give it with --parameters"
                    ))),
                },
                None => {
                    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
                    let help = did_you_mean(key, &names).map_or_else(
                        || {
                            format!(
                                "declare it in the template's parameters (declared: {})",
                                names.join(", ")
                            )
                        },
                        |close| format!("did you mean parameters('{close}')?"),
                    );
                    Err(Eval::Error(
                        format!("the template declares no parameter {key:?}"),
                        Some(help),
                    ))
                }
            },
            None => Err(Eval::Unresolved(format!(
                "parameter {key:?} has no value; give it with --parameters"
            ))),
        }
    }

    fn variable(&mut self, key: &str) -> Result<Value, Eval> {
        match self
            .cx
            .variables
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some((_, v)) => self.memoized(&format!("v:{}", key.to_ascii_lowercase()), v),
            None if self.cx.declared_parameters.is_some() => {
                let names: Vec<&str> = self.cx.variables.keys().map(String::as_str).collect();
                let help = did_you_mean(key, &names)
                    .map(|close| format!("did you mean variables('{close}')?"));
                Err(Eval::Error(
                    format!("the template declares no variable {key:?}"),
                    help,
                ))
            }
            None => Err(Eval::Unresolved(format!(
                "variable {key:?} is defined outside this file"
            ))),
        }
    }

    /// [`Self::resolved`] of `v`, remembered under `key` when it succeeds.
    fn memoized(&mut self, key: &str, v: &Value) -> Result<Value, Eval> {
        if let Some(known) = self.cx.memo.borrow().get(key) {
            return Ok(known.clone());
        }
        let value = self.resolved(v.clone())?;
        self.cx
            .memo
            .borrow_mut()
            .insert(key.to_string(), value.clone());
        Ok(value)
    }

    /// A parameter default or variable value, with its own expressions evaluated.
    fn resolved(&mut self, mut v: Value) -> Result<Value, Eval> {
        if let Value::String(s) = &v
            && let Some(body) = expression_body(s)
        {
            return evaluate(body, self.cx, self.depth + 1);
        }
        let mut nested = Resolution::default();
        resolve_at(&mut v, "", self.cx, &mut nested, self.depth + 1);
        if let Some(first) = nested.unevaluated.into_iter().next() {
            return Err(Eval::Unresolved(first.reason));
        }
        if let Some(first) = nested.diagnostics.into_iter().next() {
            return Err(Eval::Error(first.message, first.help));
        }
        Ok(v)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cx() -> ArmContext {
        ArmContext {
            parameter_values: json!({"vault": {"value": "kv1"}, "certs": {"value": ["https://kv1.vault.azure.net/secrets/a"]}})
                .as_object()
                .cloned()
                .unwrap(),
            declared_parameters: Some(json!({"vault": {"type": "string"}, "certs": {"type": "array"}, "interval": {"type": "string", "defaultValue": "600"}}).as_object().cloned().unwrap()),
            variables: json!({"base": "[concat('https://', parameters('vault'), '.vault.azure.net')]"}).as_object().cloned().unwrap(),
            ..ArmContext::default()
        }
    }

    /// Defaults that each use the previous one twice: 2^14 paths to the first, evaluated once.
    #[test]
    fn defaults_referring_to_each_other_repeatedly_are_evaluated_once_each() {
        let mut declared = Map::new();
        declared.insert("p0".into(), json!({"type": "string", "defaultValue": "ab"}));
        for k in 1..=14 {
            declared.insert(
                format!("p{k}"),
                json!({"type": "string", "defaultValue": format!("[concat(parameters('p{}'), parameters('p{}'))]", k - 1, k - 1)}),
            );
        }
        let cx = ArmContext {
            declared_parameters: Some(declared),
            ..ArmContext::default()
        };
        let mut v = json!("[parameters('p14')]");
        let mut out = Resolution::default();
        resolve(&mut v, "x", &cx, &mut out);
        assert!(
            out.diagnostics.is_empty() && out.unevaluated.is_empty(),
            "{out:?}"
        );
        assert_eq!(v.as_str().map(str::len), Some(2 << 14));
        assert_eq!(cx.memo.borrow().len(), 15, "p0..p14, each evaluated once");
    }

    /// Defaults that refer to each other in a cycle, three times each: refused at the depth
    /// limit without exploring every path.
    #[test]
    fn a_cycle_of_repeated_references_is_refused() {
        let declared = json!({
            "a": {"type": "string", "defaultValue": "[concat(parameters('b'), parameters('b'), parameters('b'))]"},
            "b": {"type": "string", "defaultValue": "[concat(parameters('a'), parameters('a'), parameters('a'))]"}
        });
        let cx = ArmContext {
            declared_parameters: declared.as_object().cloned(),
            ..ArmContext::default()
        };
        let mut v = json!("[parameters('a')]");
        let mut out = Resolution::default();
        resolve(&mut v, "x", &cx, &mut out);
        assert_eq!(out.diagnostics.len(), 1, "{out:?}");
    }

    fn run(v: Value) -> (Value, Resolution) {
        let mut v = v;
        let mut out = Resolution::default();
        resolve(&mut v, "x", &cx(), &mut out);
        (v, out)
    }

    #[test]
    fn resolves_parameters_variables_and_concat() {
        let (v, out) = run(json!({
            "a": "[parameters('certs')]",
            "b": "[concat(variables('base'), '/secrets/b')]",
            "c": "[parameters('interval')]",
            "d": "[[literal]",
            "e": "[format('{0}-{1}', 'x', 'y')]",
        }));
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        assert_eq!(
            v,
            json!({
                "a": ["https://kv1.vault.azure.net/secrets/a"],
                "b": "https://kv1.vault.azure.net/secrets/b",
                "c": "600",
                "d": "[literal]",
                "e": "x-y",
            })
        );
    }

    #[test]
    fn leaves_deployment_functions_unresolved() {
        let (v, out) =
            run(json!({"id": "[reference(parameters('vault'), '2018-11-30').clientId]"}));
        assert!(out.diagnostics.is_empty());
        assert_eq!(out.unevaluated.len(), 1);
        assert_eq!(out.unevaluated[0].path, "x.id");
        assert_eq!(
            v["id"],
            "[reference(parameters('vault'), '2018-11-30').clientId]"
        );
    }

    #[test]
    fn nesting_is_bounded_not_a_stack_overflow() {
        let calls = |n: usize| format!("[{}'x'{}]", "concat(".repeat(n), ")".repeat(n));
        let (v, out) = run(json!({ "ok": calls(MAX_NESTING - 1) }));
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        assert_eq!(v["ok"], "x");
        for deep in [
            calls(20_000),
            format!("[{}0{}]", "'a'[".repeat(20_000), "]".repeat(20_000)),
        ] {
            let (_, out) = run(json!({ "deep": deep }));
            assert_eq!(out.diagnostics.len(), 1);
            let d = &out.diagnostics[0];
            assert_eq!(
                (d.path.as_str(), d.code),
                ("x.deep", "arm-expression-invalid")
            );
            assert!(
                d.message.contains("nest deeper than 64 levels"),
                "{}",
                d.message
            );
        }
    }

    #[test]
    fn reports_unbalanced_expressions() {
        let (_, out) = run(json!({"o": "[parameters('keyVaultObservedCertificates']"}));
        assert_eq!(out.diagnostics.len(), 1);
        let d = &out.diagnostics[0];
        assert_eq!(d.path, "x.o");
        assert_eq!(d.code, "arm-expression-malformed");
        assert!(
            d.message.contains("'(' at character 12 is never closed"),
            "{}",
            d.message
        );
        assert_eq!(
            d.help.as_deref(),
            Some("did you mean \"[parameters('keyVaultObservedCertificates')]\"?")
        );
        assert!(out.malformed.contains("x.o"));
        assert_eq!(
            check_balance("concat('a'").unwrap_err().to_string(),
            "'(' at character 8 is never closed"
        );
        assert_eq!(check_balance("f('it''s')"), Ok(()));
        assert!(check_balance("f('x)").is_err());
    }

    #[test]
    fn undeclared_parameter_is_an_error_with_suggestion() {
        let (_, out) = run(json!({"v": "[parameters('vualt')]"}));
        assert_eq!(out.diagnostics[0].code, "arm-expression-invalid");
        assert_eq!(
            out.diagnostics[0].help.as_deref(),
            Some("did you mean parameters('vault')?")
        );
    }
}
