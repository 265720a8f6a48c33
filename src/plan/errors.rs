//! The compiled fields of an OpenAI error object, shared by a provider's error table, `refuse`
//! and `fail_on` guards, and a stream's `error:` step; evaluated into an [`Error`].

use crate::error::{Cause, Error};
use crate::expr::{Compiler, Expr, Scope};
use crate::spec::ErrorSpecRef;

/// `status`, `message`, `type`, `code` and `param`, each a transform.
#[derive(Debug, Default)]
pub(crate) struct ErrorFields {
    status: Option<Expr>,
    message: Option<Expr>,
    kind: Option<Expr>,
    code: Option<Expr>,
    param: Option<Expr>,
}

impl ErrorFields {
    /// Compile the fields of the spec found at `pointer`.
    pub fn compile(spec: ErrorSpecRef<'_>, pointer: &str, c: &mut Compiler<'_>) -> ErrorFields {
        let mut field =
            |f: Option<&crate::spec::ExprSpec>, name: &str| f.map(|s| c.compile(s, &format!("{pointer}/{name}")));
        ErrorFields {
            status: field(spec.status, "status"),
            message: field(spec.message, "message"),
            kind: field(spec.kind, "type"),
            code: field(spec.code, "code"),
            param: field(spec.param, "param"),
        }
    }

    /// The error these fields describe: `default_status` when no status (400–599) is given, the
    /// type that goes with the status when none is named, `default_message` when no message is.
    pub fn eval(
        &self,
        scope: &Scope<'_>,
        default_status: u16,
        default_message: impl FnOnce() -> String,
        cause: Cause,
    ) -> Error {
        let text = |e: &Option<Expr>| e.as_ref().and_then(|e| e.text(scope));
        let status = self
            .status
            .as_ref()
            .and_then(|e| e.eval(scope))
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (400..600).contains(s))
            .unwrap_or(default_status);
        Error {
            status,
            message: text(&self.message).unwrap_or_else(default_message),
            kind: text(&self.kind).unwrap_or_else(|| Error::kind_for_status(status).to_string()),
            code: text(&self.code),
            param: text(&self.param),
            cause,
            retry_after: None,
        }
    }
}

/// A compiled `refuse` / `fail_on` rule: when it holds, the call fails with its error.
#[derive(Debug)]
pub(crate) struct Guard {
    when: Expr,
    fields: ErrorFields,
    default_status: u16,
}

impl Guard {
    pub fn compile(spec: &crate::spec::GuardSpec, pointer: &str, default_status: u16, c: &mut Compiler<'_>) -> Guard {
        Guard {
            when: c.compile(&spec.when, &format!("{pointer}/when")),
            fields: ErrorFields::compile(spec.fields(), pointer, c),
            default_status,
        }
    }

    /// The error of the first guard that holds.
    pub fn first(guards: &[Guard], scope: &Scope<'_>, cause: Cause) -> Option<Error> {
        let g = guards.iter().find(|g| g.when.holds(scope))?;
        Some(g.fields.eval(scope, g.default_status, || "the request cannot be served".into(), cause))
    }
}
