//! What clients send: the bodies of `POST`, `PUT` and `PATCH` and the query of `GET /students`.
//! Each type here is at once what is parsed, what is written to the table and what
//! `/openapi.json` documents, so the three cannot drift apart.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_derive_newtype::DieselNewType;
use rocket::form::{self, FromForm, FromFormField, Strict, ValueField};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::http::{Fields, FromJson, FromJsonObject, Problem};
use crate::schema::student;

/// A first name, last name or major: a JSON string of at most [`Name::MAX_CHARS`] characters as
/// sent, not blank, without NUL (PostgreSQL text cannot hold it); stored trimmed. The table's
/// CHECK constraints hold the same rule for every other writer.
#[derive(Debug, Clone, PartialEq, Eq, DieselNewType, Serialize)]
pub struct Name(String);

impl Name {
    /// In characters (Unicode scalar values), as PostgreSQL's `char_length` counts them.
    pub const MAX_CHARS: usize = 100;

    /// The rule as a JSON Schema `pattern`: at least one character that is not whitespace (Rust's
    /// `char::is_whitespace`, spelled out so every regex engine reads it the same way), no NUL.
    pub const PATTERN: &str = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromJson for Name {
    fn from_json(value: &Value) -> Result<Self, Problem> {
        let text = bounded_string(value, Self::MAX_CHARS)?;
        match text.trim() {
            "" => Err(Problem::new(
                "String should have at least 1 character that is not whitespace",
                "string_too_short",
            )),
            trimmed => Ok(Name(trimmed.to_owned())),
        }
    }
}

/// The text of a JSON string without NUL and of at most `max_chars` characters as sent: what
/// every text field asks before its own rule.
fn bounded_string(value: &Value, max_chars: usize) -> Result<&str, Problem> {
    let Value::String(text) = value else {
        return Err(Problem::new(
            "Input should be a valid string",
            "string_type",
        ));
    };
    reject_nul(text)?;
    if text.chars().count() > max_chars {
        return Err(Problem::new(
            format!("String should have at most {max_chars} characters"),
            "string_too_long",
        ));
    }
    Ok(text)
}

fn reject_nul(text: &str) -> Result<(), Problem> {
    match text.contains('\0') {
        true => Err(Problem::new(
            "String should not contain NUL characters",
            "string_pattern_mismatch",
        )),
        false => Ok(()),
    }
}

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(Self::PATTERN))
            .description(Some(
                "Trimmed before it is stored; at most 100 characters as sent, not blank, no NUL.",
            ))
            .into()
    }
}

/// An email address, checked as loosely as most services check one: no whitespace, one `@`, at
/// most [`Email::MAX_LOCAL_CHARS`] characters before it and a dot inside the part after it; at
/// most [`Email::MAX_CHARS`] characters as sent, no NUL; stored trimmed and otherwise as sent.
/// The table's `student_email_check` holds the same rule for every other writer.
#[derive(Debug, Clone, PartialEq, Eq, DieselNewType, Serialize)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a path (256) without its angle brackets.
    pub const MAX_CHARS: usize = 254;
    /// RFC 5321's limit on the local part.
    pub const MAX_LOCAL_CHARS: usize = 64;

    /// The rule as a JSON Schema `pattern`, on the text as sent: whitespace around it is trimmed,
    /// so it is allowed there and nowhere else.
    pub const PATTERN: &str = concat!(
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
        r"[^@\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@",
        r"[^@\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+\.",
        r"[^@\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+",
        r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    );

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Why trimmed `text` is not an address, in email-validator's words where it has some, as
    /// pydantic's `EmailStr` reports them.
    fn problem(text: &str) -> Option<&'static str> {
        if text.chars().any(char::is_whitespace) {
            return Some("It must not contain whitespace.");
        }
        let Some((local, domain)) = text.split_once('@').filter(|(_, d)| !d.contains('@')) else {
            return Some("It must have exactly one @-sign.");
        };
        // A dot with something on each side: the CHECK's `[^@...]+\.[^@...]+`.
        let inner_dot = |(at, c): (usize, char)| c == '.' && at > 0 && at + 1 < domain.len();
        if local.is_empty() {
            Some("There must be something before the @-sign.")
        } else if local.chars().count() > Self::MAX_LOCAL_CHARS {
            Some("The part before the @-sign is too long (at most 64 characters).")
        } else if domain.is_empty() {
            Some("There must be something after the @-sign.")
        } else if !domain.char_indices().any(inner_dot) {
            Some("The part after the @-sign is not valid. It should have a period.")
        } else {
            None
        }
    }

    /// `string` or `null`, for the inputs where `null` means no email.
    pub fn nullable_schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(Self::PATTERN))
            .description(Some(
                "An email address, or null for none. Trimmed before it is stored; at most 254 \
                 characters as sent; no whitespace inside, one @, at most 64 characters before \
                 it and a dot inside the part after it.",
            ))
            .examples([Value::from("alice.johnson@example.edu")])
            .into()
    }
}

impl FromJson for Email {
    fn from_json(value: &Value) -> Result<Self, Problem> {
        let text = bounded_string(value, Self::MAX_CHARS)?;
        let trimmed = text.trim();
        match Self::problem(trimmed) {
            Some(reason) => Err(Problem::new(
                format!("value is not a valid email address: {reason}"),
                "value_error",
            )),
            None => Ok(Email(trimmed.to_owned())),
        }
    }
}

/// A calendar day as `YYYY-MM-DD`, years 0001 to 9999: what JSON Schema's `format: date` (RFC
/// 3339's full-date) allows, and what PostgreSQL's `date` and the responses write back unchanged.
/// The problems have pydantic's kinds: `date_type` for a value that is not a string, `date_parsing`
/// for a string that is not such a day.
impl FromJson for NaiveDate {
    fn from_json(value: &Value) -> Result<Self, Problem> {
        let Value::String(text) = value else {
            return Err(Problem::new("Input should be a valid date", "date_type"));
        };
        parse_day(text).map_err(|reason| {
            Problem::new(
                format!("Input should be a valid date in the format YYYY-MM-DD, {reason}"),
                "date_parsing",
            )
        })
    }
}

fn parse_day(text: &str) -> Result<NaiveDate, &'static str> {
    let bytes = text.as_bytes();
    match bytes.len().cmp(&10) {
        std::cmp::Ordering::Less => return Err("input is too short"),
        std::cmp::Ordering::Greater => return Err("input is too long"),
        std::cmp::Ordering::Equal => {}
    }
    let number = |range: std::ops::Range<usize>, what| {
        bytes[range].iter().try_fold(0, |n, b| match b {
            b'0'..=b'9' => Ok(n * 10 + u32::from(b - b'0')),
            _ => Err(what),
        })
    };
    let year = number(0..4, "invalid character in year")?;
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return Err("invalid date separator, expected `-`");
    }
    let month = number(5..7, "invalid character in month")?;
    let day = number(8..10, "invalid character in day")?;
    if year == 0 {
        return Err("year value is outside expected range of 1-9999");
    }
    if !(1..=12).contains(&month) {
        return Err("month value is outside expected range of 1-12");
    }
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or("day value is outside expected range")
}

/// The schema of a day as input: a string, never `null`.
fn day_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
        .pattern(Some(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
        .description(Some(
            "The day the student enrolled, YYYY-MM-DD (years 0001 to 9999), never null. Absent on \
             POST: today, in UTC. Absent on PUT or PATCH: unchanged.",
        ))
        .examples([Value::from("2024-09-02")])
        .into()
}

/// A new student, or every field of an existing one.
// Serialized only for an idempotency key's fingerprint, so that a retry with its JSON reordered
// is the same request.
#[derive(Debug, Insertable, AsChangeset, ToSchema, Serialize)]
#[diesel(table_name = student)]
// Read by utoipa only: documents that unknown fields are refused, as `JsonBody` refuses them.
#[serde(deny_unknown_fields)]
pub struct StudentCreate {
    #[schema(schema_with = Name::schema)]
    pub first_name: Name,
    #[schema(schema_with = Name::schema)]
    pub last_name: Name,
    #[schema(schema_with = Name::schema)]
    pub major: Name,
    /// Absent or `null`: none. PUT replaces every field, so a PUT without it removes the email.
    #[diesel(treat_none_as_null = true)]
    #[schema(schema_with = Email::nullable_schema, required = false)]
    pub email: Option<Email>,
    // Absent on PUT: unchanged, unlike `email`, so clients written before the field keep working.
    #[schema(schema_with = day_schema, required = false)]
    pub enrolled_on: Option<NaiveDate>,
}

impl FromJsonObject for StudentCreate {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        // Every field is read before any is required, so one answer names all that are wrong.
        let first_name = fields.required("first_name");
        let last_name = fields.required("last_name");
        let major = fields.required("major");
        let email = fields.optional::<Option<Email>>("email").flatten();
        let enrolled_on = fields.optional("enrolled_on");
        Some(StudentCreate {
            first_name: first_name?,
            last_name: last_name?,
            major: major?,
            email,
            enrolled_on,
        })
    }
}

/// Any subset of a student's fields, with the same rules as `StudentCreate`.
#[derive(Debug, AsChangeset, ToSchema)]
#[diesel(table_name = student)]
#[serde(deny_unknown_fields)]
pub struct StudentUpdate {
    #[schema(schema_with = Name::schema)]
    pub first_name: Option<Name>,
    #[schema(schema_with = Name::schema)]
    pub last_name: Option<Name>,
    #[schema(schema_with = Name::schema)]
    pub major: Option<Name>,
    /// Absent: unchanged; `null`: removed.
    #[schema(schema_with = Email::nullable_schema, required = false)]
    pub email: Option<Option<Email>>,
    #[schema(schema_with = day_schema)]
    pub enrolled_on: Option<NaiveDate>,
}

impl FromJsonObject for StudentUpdate {
    fn from_fields(fields: &mut Fields) -> Option<Self> {
        Some(StudentUpdate {
            first_name: fields.optional("first_name"),
            last_name: fields.optional("last_name"),
            major: fields.optional("major"),
            email: fields.optional("email"),
            enrolled_on: fields.optional("enrolled_on"),
        })
    }
}

pub const DEFAULT_PAGE_LIMIT: i32 = 100;
pub const MAX_PAGE_LIMIT: i32 = 1000;

/// The query of `GET /students`.
///
/// Each parameter is `Strict`, so one given twice is a 422 (`ErrorKind::Duplicate`) rather than
/// Rocket's lenient first-value-wins, while the struct stays lenient so an unknown parameter is
/// ignored, as FastAPI ignores it. `Strict` also makes a missing parameter an error, hence the
/// `default_with`s. Rocket's `Option<T>` is not used: it turns a value that fails to parse into
/// `None` instead of an error.
#[derive(Debug, FromForm, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only students with exactly this major
    #[field(default_with = Some(Strict::from(MajorFilter(None))))]
    #[param(value_type = Option<String>, pattern = r"^[^\u0000]*$")]
    pub major: Strict<MajorFilter>,
    /// Only students with a greater id: the last id of the previous page
    // The first page is everything after the smallest id: one query shape for every page.
    #[field(default_with = Some(Strict::from(i32::MIN)))]
    #[param(value_type = Option<i32>, minimum = -2147483648, maximum = 2147483647)]
    pub after_id: Strict<i32>,
    /// Page size, 1 to 1000; 100 when absent
    #[field(default_with = Some(Strict::from(DEFAULT_PAGE_LIMIT)))]
    #[field(validate = page_limit())]
    #[param(value_type = Option<i32>, minimum = 1, maximum = 1000)]
    pub limit: Strict<i32>,
}

/// Rocket's `range` validator reports both bounds but not which one was crossed, which the 422
/// says, so the check is written out.
fn page_limit<'v>(limit: &i32) -> form::Result<'v, ()> {
    let problem = match *limit {
        1..=MAX_PAGE_LIMIT => return Ok(()),
        ..1 => Problem::new(
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        ),
        _ => Problem::new(
            format!("Input should be less than or equal to {MAX_PAGE_LIMIT}"),
            "less_than_equal",
        ),
    };
    Err(form::Error::custom(problem).into())
}

/// `?major=`: only students whose major is exactly this, which cannot hold NUL.
#[derive(Debug)]
pub struct MajorFilter(pub Option<String>);

impl<'v> FromFormField<'v> for MajorFilter {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        reject_nul(field.value).map_err(form::Error::custom)?;
        Ok(MajorFilter(Some(field.value.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Result<Name, Problem> {
        Name::from_json(&Value::from(text))
    }

    #[test]
    fn a_name_is_trimmed_and_counted_in_characters_not_bytes() {
        let hundred_emoji = "😀".repeat(100);
        assert_eq!(name(&hundred_emoji).unwrap().as_str(), hundred_emoji);
        assert_eq!(name("  Ada \n").unwrap().as_str(), "Ada");
        assert_eq!(name(&"😀".repeat(101)).unwrap_err().kind, "string_too_long");
        assert_eq!(name("\u{3000}\t").unwrap_err().kind, "string_too_short");
    }

    fn day(value: Value) -> Result<NaiveDate, Problem> {
        NaiveDate::from_json(&value)
    }

    #[test]
    fn a_day_is_exactly_yyyy_mm_dd_in_years_1_to_9999() {
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(day("2024-02-29".into()).unwrap(), ymd(2024, 2, 29));
        assert_eq!(day("0001-01-01".into()).unwrap(), ymd(1, 1, 1));
        assert_eq!(day("9999-12-31".into()).unwrap(), ymd(9999, 12, 31));
        for (text, reason) in [
            ("2023-02-29", "day value is outside expected range"),
            (
                "2024-13-01",
                "month value is outside expected range of 1-12",
            ),
            (
                "2024-00-10",
                "month value is outside expected range of 1-12",
            ),
            (
                "0000-01-01",
                "year value is outside expected range of 1-9999",
            ),
            ("2024-1-01", "input is too short"),
            ("2024-01-01T00:00:00Z", "input is too long"),
            ("2024/01/01", "invalid date separator, expected `-`"),
            ("+024-01-01", "invalid character in year"),
            ("2024-0a-01", "invalid character in month"),
            ("2024-01-0\0", "invalid character in day"),
            ("２０２４-01-01", "input is too long"),
        ] {
            let problem = day(text.into()).unwrap_err();
            assert_eq!(problem.kind, "date_parsing", "{text}");
            assert!(problem.msg.ends_with(reason), "{text}: {}", problem.msg);
        }
        for value in [
            Value::Null,
            20240101.into(),
            true.into(),
            serde_json::json!(["2024-01-01"]),
        ] {
            assert_eq!(day(value).unwrap_err().kind, "date_type");
        }
    }

    #[test]
    fn a_day_is_written_back_as_it_was_read() {
        for text in ["0001-01-01", "0999-06-30", "2024-02-29", "9999-12-31"] {
            let parsed = day(text.into()).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), Value::from(text));
        }
    }

    #[test]
    fn the_schema_pattern_names_exactly_the_characters_rust_trims() {
        let listed: Vec<char> = ('\0'..=char::MAX).filter(|c| c.is_whitespace()).collect();
        let expected: Vec<char> = "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}"
            .chars()
            .chain('\u{2000}'..='\u{200a}')
            .chain("\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}".chars())
            .collect();
        assert_eq!(
            listed, expected,
            "update Name::PATTERN and the CHECK migration"
        );
    }
}
