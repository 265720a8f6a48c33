//! A provider's `auth:` compiled: the key scheme (how a key travels), the gateway's key, and the
//! credentials beyond a key (a signature, an OAuth grant), each read from the environment once,
//! when the file is loaded.

use std::sync::Arc;

use http::HeaderName;

use super::{env_prefix, render_load_template, EnvLookup, Secret};
use crate::auth::jwt_bearer::ServiceAccount;
use crate::auth::sigv4;
use crate::error::{Problem, ProblemKind};
use crate::spec::{AuthSpec, AwsSigV4Spec, ClientCredentialsSpec, JwtBearerSpec};

/// How a key travels upstream.
#[derive(Debug)]
pub(crate) enum Auth {
    /// `auth: none`.
    None,
    /// No key scheme: only the credentials beyond a key (a signature, a grant) authenticate.
    Keyless,
    Header {
        name: HeaderName,
        prefix: String,
    },
    Query {
        name: String,
    },
}

/// What the gateway holds to authenticate beyond a key.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    /// Every request is signed (AWS Signature Version 4).
    AwsSigV4(Arc<SigV4Plan>),
    /// Every request carries a bearer token from an OAuth grant, cached by the server.
    Token(Arc<TokenGrant>),
    /// Configured but unusable (an unreadable credentials file, half a key pair): every call
    /// answers 502 with this message, which names the variable and never its value.
    Broken(String),
}

#[derive(Debug)]
pub(crate) struct SigV4Plan {
    pub(crate) service: String,
    pub(crate) region: String,
    pub(crate) credentials: sigv4::Credentials,
}

#[derive(Debug)]
pub(crate) enum TokenGrant {
    JwtBearer { account: ServiceAccount, scopes: Vec<String>, token_url: Option<String> },
    ClientCredentials { token_url: String, client_id: String, client_secret: Secret, scopes: Vec<String> },
}

impl TokenGrant {
    /// Which cached token serves this grant: equal grants (same endpoint, identity, secret and
    /// scopes) share one token across providers and reloads. A hash, never printed.
    pub(crate) fn cache_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            TokenGrant::JwtBearer { account, scopes, token_url } => {
                ("jwt", &account.client_email, &account.private_key_id, &account.token_uri, scopes, token_url)
                    .hash(&mut h)
            }
            TokenGrant::ClientCredentials { token_url, client_id, client_secret, scopes } => {
                ("client", token_url, client_id, client_secret.expose(), scopes).hash(&mut h)
            }
        }
        h.finish()
    }
}

/// A provider's compiled `auth:`.
#[derive(Debug)]
pub(crate) struct AuthPlan {
    /// How a key travels: the gateway's, a target's, or the client's own.
    pub(crate) scheme: Auth,
    /// The gateway's key, from the scheme's variable.
    pub(crate) key: Option<Secret>,
    /// Credentials beyond a key, when the gateway holds them and holds no key before them.
    pub(crate) credentials: Option<Credentials>,
    /// What an operator could set, for the message when nothing is set: `OPENAI_API_KEY`, `AWS_ACCESS_KEY_ID
    /// and AWS_SECRET_ACCESS_KEY`, ….
    pub(crate) wanted: Vec<String>,
}

impl AuthPlan {
    /// How requests are authenticated, for the provider table and logs: every scheme the file
    /// offers, in order (`key in header authorization (OPENAI_API_KEY)`, `AWS SigV4`, …).
    pub(crate) fn describe(spec: &AuthSpec, id: &str) -> String {
        let key_env = |env: &Option<String>| env.clone().unwrap_or_else(|| format!("{}_API_KEY", env_prefix(id)));
        match spec {
            AuthSpec::None(_) => "none".into(),
            AuthSpec::Header { header, env, .. } => {
                format!("key in header {} ({})", header.to_ascii_lowercase(), key_env(env))
            }
            AuthSpec::Query { query, env } => format!("key in query {query} ({})", key_env(env)),
            AuthSpec::AwsSigV4 { .. } => "AWS SigV4".into(),
            AuthSpec::OAuthJwtBearer { .. } => "OAuth service account (JWT bearer)".into(),
            AuthSpec::OAuthClientCredentials { .. } => "OAuth client credentials".into(),
            AuthSpec::FirstOf(list) => list.iter().map(|s| AuthPlan::describe(s, id)).collect::<Vec<_>>().join(", "),
        }
    }
}

fn flatten<'a>(spec: &'a AuthSpec, ptr: String, out: &mut Vec<(&'a AuthSpec, String)>) {
    match spec {
        AuthSpec::FirstOf(list) => {
            for (i, s) in list.iter().enumerate() {
                flatten(s, format!("{ptr}/{i}"), out);
            }
        }
        other => out.push((other, ptr)),
    }
}

pub(crate) fn compile(
    spec: &AuthSpec,
    id: &str,
    vars: &[(String, String)],
    env: EnvLookup<'_>,
    p: &mut Vec<Problem>,
) -> AuthPlan {
    let prefix = env_prefix(id);
    let default_key_env = format!("{prefix}_API_KEY");
    let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut entries = Vec::new();
    flatten(spec, "/auth".into(), &mut entries);
    let mut plan = AuthPlan { scheme: Auth::None, key: None, credentials: None, wanted: Vec::new() };
    let mut scheme: Option<Auth> = None;
    let mut decided = false;
    for (entry, ptr) in entries {
        match entry {
            AuthSpec::None(_) => {
                scheme.get_or_insert(Auth::None);
                decided = true;
            }
            AuthSpec::Header { env: var, .. } | AuthSpec::Query { env: var, .. } => {
                let this = match entry {
                    AuthSpec::Header { header, prefix, .. } => match HeaderName::from_bytes(header.as_bytes()) {
                        Ok(name) => Auth::Header { name, prefix: prefix.clone().unwrap_or_default() },
                        Err(_) => {
                            p.push(Problem::new(
                                format!("{ptr}/header"),
                                ProblemKind::InvalidValue,
                                format!("'{header}' is not a valid header name"),
                            ));
                            continue;
                        }
                    },
                    AuthSpec::Query { query, .. } => Auth::Query { name: query.clone() },
                    _ => unreachable!("matched above"),
                };
                let var = var.as_deref().unwrap_or(&default_key_env);
                plan.wanted.push(var.to_string());
                match get(var) {
                    Some(key) if !decided => {
                        decided = true;
                        plan.key = Some(Secret(key));
                        scheme = Some(this);
                    }
                    _ => {
                        scheme.get_or_insert(this);
                    }
                }
            }
            AuthSpec::AwsSigV4 { aws_sigv4 } => {
                let s: &AwsSigV4Spec = aws_sigv4;
                plan.wanted.push(format!("{} and {}", s.access_key_id_env, s.secret_access_key_env));
                if decided || get(&s.access_key_id_env).is_none() {
                    continue;
                }
                decided = true;
                let region = render_load_template(&s.region, vars, &format!("{ptr}/aws_sigv4/region"), p);
                plan.credentials = Some(
                    match sigv4::Credentials::from_lookup(
                        &s.access_key_id_env,
                        &s.secret_access_key_env,
                        &s.session_token_env,
                        |n| env(n),
                    ) {
                        Ok(credentials) => Credentials::AwsSigV4(Arc::new(SigV4Plan {
                            service: s.service.clone(),
                            region: region.unwrap_or_default(),
                            credentials,
                        })),
                        Err(e) => Credentials::Broken(format!("provider '{id}': AWS credentials: {e}")),
                    },
                );
            }
            AuthSpec::OAuthJwtBearer { oauth_jwt_bearer } => {
                let s: &JwtBearerSpec = oauth_jwt_bearer;
                plan.wanted.push(s.credentials_env.clone());
                let Some(path) = (!decided).then(|| get(&s.credentials_env)).flatten() else { continue };
                decided = true;
                plan.credentials = Some(match ServiceAccount::from_file(&path) {
                    Ok(account) => Credentials::Token(Arc::new(TokenGrant::JwtBearer {
                        account,
                        scopes: s.scopes.clone(),
                        token_url: get(&format!("{prefix}_TOKEN_URL")),
                    })),
                    Err(e) => Credentials::Broken(format!("provider '{id}': {}: {e}", s.credentials_env)),
                });
            }
            AuthSpec::OAuthClientCredentials { oauth_client_credentials } => {
                let s: &ClientCredentialsSpec = oauth_client_credentials;
                plan.wanted.push(format!("{} and {}", s.client_id_env, s.client_secret_env));
                let Some(client_id) = (!decided).then(|| get(&s.client_id_env)).flatten() else { continue };
                decided = true;
                let token_url = get(&format!("{prefix}_TOKEN_URL"))
                    .or_else(|| render_load_template(&s.token_url, vars, &format!("{ptr}/token_url"), p));
                plan.credentials = Some(match (get(&s.client_secret_env), token_url) {
                    (Some(secret), Some(token_url)) => Credentials::Token(Arc::new(TokenGrant::ClientCredentials {
                        token_url,
                        client_id,
                        client_secret: Secret(secret),
                        scopes: s.scopes.clone(),
                    })),
                    (None, _) => Credentials::Broken(format!(
                        "provider '{id}': {} is set but {} is not",
                        s.client_id_env, s.client_secret_env
                    )),
                    (_, None) => Credentials::Broken(format!("provider '{id}': the token URL does not render")),
                });
            }
            AuthSpec::FirstOf(_) => unreachable!("flattened"),
        }
    }
    plan.scheme = scheme.unwrap_or(Auth::Keyless);
    plan
}
