//! The `api_token` table: bearer tokens as `students-api token` creates, lists and revokes them,
//! and as a request's token is looked up.
//!
//! A token is `sapi_` and 64 hex digits: 256 bits from the operating system's random source, with
//! a prefix that secret scanners can match (`sapi_[0-9a-f]{64}`). Only its SHA-256 is stored. A
//! fast hash is enough for a secret of 256 random bits: nothing can be guessed from it, so the
//! slow, salted hashes that passwords need would only slow every lookup down.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::schema::api_token;

/// The start of every token.
pub const PREFIX: &str = "sapi_";

/// Random bytes per token, written as twice as many hex digits.
const SECRET_BYTES: usize = 32;

/// How stale `last_used_at` may be before a lookup writes it again: at most one write a minute per
/// token, however busy its client.
const LAST_USED_PRECISION: TimeDelta = TimeDelta::minutes(1);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read and write students, and scrape `/metrics`.
    Students,
    /// Scrape `/metrics`, and nothing else: Prometheus' token.
    Metrics,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Students => "students",
            Scope::Metrics => "metrics",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "students" => Some(Scope::Students),
            "metrics" => Some(Scope::Metrics),
            _ => None,
        }
    }

    /// Whether a token of this scope may do what `needed` stands for.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Students || self == needed
    }
}

/// A live token, as a request's lookup finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// `api_token.id`: what the token's idempotency keys are stored under.
    pub id: i32,
    pub scope: Scope,
}

/// The SHA-256 of a token: what `api_token.sha256` holds.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` has a token's shape. Anything else is refused without a lookup.
pub fn well_formed(presented: &str) -> bool {
    presented.strip_prefix(PREFIX).is_some_and(|secret| {
        secret.len() == 2 * SECRET_BYTES
            && (secret.bytes()).all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn generate() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    // The operating system's generator (getrandom), not a seeded one.
    OsRng.fill_bytes(&mut secret);
    let mut token = String::with_capacity(PREFIX.len() + 2 * SECRET_BYTES);
    token.push_str(PREFIX);
    for byte in secret {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// The rule of `api_token_name_format`, checked first for a message that says it.
fn check_name(name: &str) -> Result<(), TokenError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if (1..=64).contains(&name.len()) && name.chars().all(allowed) {
        return Ok(());
    }
    Err(TokenError::InvalidName(name.to_owned()))
}

/// A mistake in a `token` subcommand, or the database's failure, in one line.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a token named {0:?} already exists; revoke it first (`students-api token revoke {0}`) \
         or choose another name"
    )]
    Duplicate(String),
    #[error("no token is named {0:?}; `students-api token list` shows them")]
    Unknown(String),
    #[error("the token named {0:?} is already revoked")]
    AlreadyRevoked(String),
    #[error(
        "invalid token name {0:?}: use 1 to 64 letters, digits and `.`, `_`, `@` or `-` \
         (a name like `ci` or `prometheus`)"
    )]
    InvalidName(String),
    #[error(transparent)]
    Database(#[from] DieselError),
}

/// One row of `token list`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_token, check_for_backend(diesel::pg::Pg))]
pub struct TokenRecord {
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Stores a new token named `name` and returns it: the only time it exists outside the client.
pub fn create(conn: &mut PgConnection, name: &str, scope: Scope) -> Result<String, TokenError> {
    check_name(name)?;
    let token = generate();
    let inserted = diesel::insert_into(api_token::table)
        .values((
            api_token::name.eq(name),
            api_token::scope.eq(scope.as_str()),
            api_token::sha256.eq(&digest(&token)[..]),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(token),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some("api_token_live_name_key") =>
        {
            Err(TokenError::Duplicate(name.to_owned()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Every token, revoked ones too, oldest first.
pub fn list(conn: &mut PgConnection) -> QueryResult<Vec<TokenRecord>> {
    api_token::table
        .order((api_token::created_at, api_token::id))
        .select(TokenRecord::as_select())
        .load(conn)
}

/// Revokes the live token named `name`. Replicas refuse it from their next lookup on, within
/// [`crate::auth::FRESH`] of now.
pub fn revoke(conn: &mut PgConnection, name: &str) -> Result<(), TokenError> {
    let live = api_token::table
        .filter(api_token::name.eq(name))
        .filter(api_token::revoked_at.is_null());
    let revoked = diesel::update(live)
        .set(api_token::revoked_at.eq(diesel::dsl::now))
        .execute(conn)?;
    if revoked > 0 {
        return Ok(());
    }
    let known = diesel::select(diesel::dsl::exists(
        api_token::table.filter(api_token::name.eq(name)),
    ))
    .get_result::<bool>(conn)?;
    match known {
        true => Err(TokenError::AlreadyRevoked(name.to_owned())),
        false => Err(TokenError::Unknown(name.to_owned())),
    }
}

/// The live token whose digest is `digest`, or `None` when no live token has it. Records the use
/// when the last one recorded is older than a minute.
pub fn lookup(conn: &mut PgConnection, digest: &TokenDigest) -> QueryResult<Option<Token>> {
    let found = api_token::table
        .filter(api_token::sha256.eq(&digest[..]))
        .filter(api_token::revoked_at.is_null())
        .select((api_token::id, api_token::scope, api_token::last_used_at))
        .first::<(i32, String, Option<DateTime<Utc>>)>(conn)
        .optional()?;
    let Some((id, scope, last_used)) = found else {
        return Ok(None);
    };
    let stale = Utc::now() - LAST_USED_PRECISION;
    if last_used.is_none_or(|at| at < stale) {
        // Conditional again in SQL: of replicas that looked at once, only the first writes, and
        // the others find the row already fresh once its lock is released.
        let recorded = diesel::update(api_token::table.find(id))
            .filter((api_token::last_used_at.is_null()).or(api_token::last_used_at.lt(stale)))
            .set(api_token::last_used_at.eq(diesel::dsl::now))
            .execute(conn);
        match recorded {
            // A server that takes no writes (a primary demoted mid-failover) still answers who
            // the token is: the use goes unrecorded rather than the request refused.
            Err(DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _)) => {}
            other => {
                other?;
            }
        }
    }
    Ok(Scope::parse(&scope).map(|scope| Token { id, scope }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_has_the_prefix_and_256_random_bits() {
        let token = generate();
        assert!(well_formed(&token), "{token}");
        assert_eq!(token.len(), PREFIX.len() + 64);
        assert_ne!(generate(), token);
    }

    #[test]
    fn only_the_token_shape_is_well_formed() {
        let good = format!("{PREFIX}{}", "0123456789abcdef".repeat(4));
        assert!(well_formed(&good));
        for bad in [
            String::new(),
            "sapi_".to_owned(),
            good.to_uppercase(),
            good.replace("sapi_", "sapx_"),
            format!("{good}0"),
            good[..good.len() - 1].to_owned(),
            good.replace('a', "g"),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }

    #[test]
    fn names_follow_the_column_rule() {
        for good in ["ci", "prometheus", "me@laptop", "deploy-2026.12_01"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "naïve", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_students_token_may_scrape_and_a_metrics_token_only_scrape() {
        assert!(Scope::Students.allows(Scope::Students));
        assert!(Scope::Students.allows(Scope::Metrics));
        assert!(Scope::Metrics.allows(Scope::Metrics));
        assert!(!Scope::Metrics.allows(Scope::Students));
    }
}
