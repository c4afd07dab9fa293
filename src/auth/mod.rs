//! Bearer tokens at the HTTP boundary: writes of students need a token of scope `students`, so do
//! reads when `public_reads` is off, and `/metrics` needs one of either scope (docs/api.md, "Access
//! control").
//!
//! The guards run before the body is read, so a client without a valid token learns nothing about
//! validation. A token's verdict, good or bad, is kept for [`FRESH`]: a request whose token was
//! looked up less than that ago needs no lookup, and so no thread hand-off of its own; the query
//! of the request is still its one blocking task. A lookup is a blocking task of its own, once a
//! second per token and replica. A revocation takes effect at the next lookup, within `FRESH`.

pub mod tokens;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rocket::Request;
use rocket::fairing::AdHoc;
use rocket::request::{FromRequest, Outcome};
use rocket::tokio::time::timeout;
use utoipa::IntoResponses;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::db::{self, DbError, Pool};
use crate::http::{ApiError, ErrorBody, refuse};

use tokens::{Scope, Token, TokenDigest};

/// How long a verdict on a token is kept: the bound on how long a revoked token still works.
pub const FRESH: Duration = Duration::from_secs(1);

/// Verdicts kept at most: random tokens sent by a client probing for one cannot grow the cache
/// without bound.
const CAPACITY: usize = 10_000;

/// The name of the security scheme in the OpenAPI document, which the operations' `security`
/// attributes spell out (utoipa takes only a literal there).
pub const SCHEME: &str = "bearer";

/// The guards' shared state: the recent verdicts, and whether reads are public.
pub struct Tokens {
    verdicts: RwLock<HashMap<TokenDigest, Verdict>>,
    public_reads: bool,
}

#[derive(Debug, Clone, Copy)]
struct Verdict {
    /// `None`: no live token has this digest.
    token: Option<Token>,
    /// When the lookup behind it started: a revocation committed after that is seen by the next.
    at: Instant,
}

impl Tokens {
    pub fn new(public_reads: bool) -> Self {
        Tokens {
            verdicts: RwLock::new(HashMap::new()),
            public_reads,
        }
    }

    fn last(&self, digest: &TokenDigest) -> Option<Verdict> {
        let verdicts = self.verdicts.read().unwrap_or_else(|p| p.into_inner());
        verdicts.get(digest).copied()
    }

    fn remember(&self, digest: TokenDigest, verdict: Verdict) {
        let mut verdicts = self.verdicts.write().unwrap_or_else(|p| p.into_inner());
        if verdicts.len() >= CAPACITY {
            verdicts.retain(|_, kept| kept.at.elapsed() < FRESH);
            if verdicts.len() >= CAPACITY {
                verdicts.clear();
            }
        }
        verdicts.insert(digest, verdict);
    }

    /// The live token `presented` is, from a verdict younger than [`FRESH`] or a lookup.
    async fn token(
        &self,
        pool: &Pool,
        presented: &str,
        patience: Patience,
    ) -> Result<Option<Token>, ApiError> {
        let digest = tokens::digest(presented);
        let last = self.last(&digest);
        if let Some(verdict) = last
            && verdict.at.elapsed() < FRESH
        {
            return Ok(verdict.token);
        }
        let at = Instant::now();
        let lookup = db::run(pool, move |conn| tokens::lookup(conn, &digest));
        let looked_up = match patience {
            Patience::PoolTimeout => lookup.await,
            Patience::Scrape => {
                (timeout(SCRAPE_WAIT, lookup).await).unwrap_or(Err(DbError::NoConnection))
            }
        };
        match (looked_up, patience, last) {
            (Ok(token), ..) => {
                self.remember(digest, Verdict { token, at });
                Ok(token)
            }
            // While the database does not answer, a token that was live at its last lookup
            // goes on scraping: the metrics matter most then. Its revocation, which needs the
            // database too, takes effect once the database answers.
            (
                Err(_),
                Patience::Scrape,
                Some(Verdict {
                    token: Some(token), ..
                }),
            ) => Ok(Some(token)),
            (Err(err), ..) => Err(err.into()),
        }
    }
}

/// How long a request waits for its token's lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patience {
    /// As long as for its query: a write cannot be served without the database anyway.
    PoolTimeout,
    /// [`SCRAPE_WAIT`].
    Scrape,
}

/// How long a scrape of `/metrics` waits for the database, for its token's lookup and for the
/// schema's version each: while the database does not answer, each would otherwise wait the
/// pool's whole timeout (3 s measured), and the scrape with it.
pub const SCRAPE_WAIT: Duration = Duration::from_millis(500);

/// Manages [`Tokens`]; reads need a token unless `public_reads`.
pub fn stage(public_reads: bool) -> AdHoc {
    AdHoc::on_ignite("Access control", move |rocket| async move {
        rocket.manage(Tokens::new(public_reads))
    })
}

const CHALLENGE: &str = "Bearer";

fn unauthorized(challenge: &'static str, detail: &'static str) -> ApiError {
    ApiError::Unauthorized { challenge, detail }
}

/// Lets the request through when its `Authorization: Bearer` token is live and allows `needed`:
/// the token's id.
async fn authorize(
    request: &Request<'_>,
    needed: Scope,
    patience: Patience,
) -> Result<i32, ApiError> {
    let Some(header) = request.headers().get_one("Authorization") else {
        return Err(unauthorized(CHALLENGE, "Not authenticated"));
    };
    let presented = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(unauthorized(
                "Bearer error=\"invalid_request\"",
                "The Authorization header must be `Bearer <token>`",
            ));
        }
    };
    let invalid = || {
        unauthorized(
            "Bearer error=\"invalid_token\"",
            "The token is invalid or revoked",
        )
    };
    if !tokens::well_formed(presented) {
        return Err(invalid());
    }
    let (Some(tokens), Some(pool)) = (
        request.rocket().state::<Tokens>(),
        request.rocket().state::<Pool>(),
    ) else {
        log::error!("access control needs the token state and the pool");
        return Err(ApiError::NoConnection);
    };
    match tokens.token(pool, presented, patience).await? {
        None => Err(invalid()),
        Some(token) if token.scope.allows(needed) => Ok(token.id),
        Some(_) => Err(ApiError::Forbidden {
            challenge: "Bearer error=\"insufficient_scope\"",
            detail: "This token may only scrape /metrics",
        }),
    }
}

async fn guard<T>(
    request: &Request<'_>,
    needed: Scope,
    patience: Patience,
    granted: impl FnOnce(i32) -> T,
) -> Outcome<T, ()> {
    match authorize(request, needed, patience).await {
        Ok(token_id) => Outcome::Success(granted(token_id)),
        Err(err) => refuse(request, err),
    }
}

/// A request that may change students: it carries a live token of scope `students`.
pub struct CanWrite {
    /// The token's `api_token.id`, which scopes its idempotency keys.
    pub token_id: i32,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CanWrite {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        guard(
            request,
            Scope::Students,
            Patience::PoolTimeout,
            |token_id| CanWrite { token_id },
        )
        .await
    }
}

/// A request that may read students: any, while `public_reads` is on (the default); otherwise one
/// with a live token of scope `students`.
pub struct CanRead(());

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CanRead {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        match request.rocket().state::<Tokens>() {
            Some(tokens) if tokens.public_reads => Outcome::Success(CanRead(())),
            _ => {
                guard(request, Scope::Students, Patience::PoolTimeout, |_| {
                    CanRead(())
                })
                .await
            }
        }
    }
}

/// A request that may scrape `/metrics`: it carries a live token of either scope. Its lookup waits
/// at most [`SCRAPE_WAIT`]; without an answer, a token live at its last lookup is let through.
pub struct CanScrape(());

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CanScrape {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        guard(request, Scope::Metrics, Patience::Scrape, |_| CanScrape(())).await
    }
}

/// The bearer scheme, for the OpenAPI document's `components.securitySchemes`.
pub fn security_scheme() -> SecurityScheme {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.bearer_format = Some("sapi_ and 64 hex digits".to_owned());
    http.description = Some(
        "A token from `students-api token create NAME`, sent as `Authorization: Bearer <token>`"
            .to_owned(),
    );
    SecurityScheme::Http(http)
}

/// How a request without a usable token is refused, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum Refused {
    #[response(
        status = 401,
        description = "No token, not a bearer token, or an invalid or revoked one",
        example = json!({"detail": "Not authenticated"}),
        headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_request\"` or `error=\"invalid_token\"` when one was sent"))
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "A token of scope `metrics`, which may only scrape /metrics",
        example = json!({"detail": "This token may only scrape /metrics"}),
        headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\"`"))
    )]
    Forbidden(ErrorBody),
}

/// How a read is refused while `public_reads` is off, for the OpenAPI document.
#[derive(IntoResponses)]
pub enum ReadRefused {
    #[response(
        status = 401,
        description = "Only with `public_reads = false`: no token, not a bearer token, or an invalid or revoked one",
        example = json!({"detail": "Not authenticated"}),
        headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_request\"` or `error=\"invalid_token\"` when one was sent"))
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "Only with `public_reads = false`: a token of scope `metrics`",
        example = json!({"detail": "This token may only scrape /metrics"}),
        headers(("WWW-Authenticate" = String, description = "`Bearer error=\"insufficient_scope\"`"))
    )]
    Forbidden(ErrorBody),
}
