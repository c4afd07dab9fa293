//! Request input to typed values, or to errors that say exactly what is wrong and where, in the
//! shape FastAPI answers validation failures with:
//! `{"detail": [{"loc": ["body", "first_name"], "msg": "...", "type": "..."}]}`.
//!
//! Bodies are read as a JSON object first and checked field by field, rather than deserialized
//! straight into a struct, so one answer lists every offending field, not only the first.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::outcome::Outcome;
use rocket::request::Request;
use rocket::serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::models::{NewStudent, PageRequest, StudentChanges};

/// Largest request body accepted; anything longer is answered 413 unread.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Longest name or major, in characters (Unicode scalar values), as PostgreSQL's `char_length`.
pub const MAX_TEXT_CHARS: usize = 100;
pub const DEFAULT_PAGE_LIMIT: i64 = 100;
pub const MAX_PAGE_LIMIT: i64 = 1000;

/// The JSON Schema `pattern` of a name or major: at least one character that is not whitespace
/// (Rust's `char::is_whitespace`, spelled out so every regex engine reads it the same way), and no
/// NUL, which PostgreSQL text cannot hold.
pub const TEXT_PATTERN: &str = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";
/// The schema of a name or major in the OpenAPI document: the rules [`checked_text`] enforces.
pub fn text_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_TEXT_CHARS))
        .pattern(Some(TEXT_PATTERN))
        .description(Some(
            "Trimmed before it is stored; at most 100 characters as sent, not blank, no NUL.",
        ))
        .build()
}

/// The JSON Schema `pattern` of the `major` filter: anything without NUL.
pub const FILTER_PATTERN: &str = r"^[^\u0000]*$";

/// One problem with one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(crate = "rocket::serde")]
pub struct FieldError {
    /// Where: `["body", "first_name"]`, `["query", "limit"]`, `["path", "id"]`.
    #[schema(example = json!(["body", "first_name"]))]
    pub loc: Vec<String>,
    /// What is wrong, for people.
    #[schema(example = "Field required")]
    pub msg: String,
    /// What is wrong, for programs: `missing`, `string_type`, `string_too_long`, ...
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: String,
}

impl FieldError {
    fn new(place: &str, name: &str, msg: impl Into<String>, kind: &str) -> Self {
        let mut loc = vec![place.to_owned()];
        if !name.is_empty() {
            loc.push(name.to_owned());
        }
        FieldError {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// A request body that is a JSON object: sent as `application/json` (or a `+json` type), at most
/// [`MAX_BODY_BYTES`], syntactically valid, and an object. Each failure has its own status:
/// 415, 413, 400 and 422.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

#[rocket::async_trait]
impl<'r> FromData<'r> for JsonObject {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match read_json_object(request, data).await {
            Ok(object) => Outcome::Success(object),
            Err(err) => Outcome::Error((err.status(), err)),
        }
    }
}

async fn read_json_object(request: &Request<'_>, data: Data<'_>) -> Result<JsonObject, ApiError> {
    let is_json = request.content_type().is_some_and(|content_type| {
        content_type.top() == "application"
            && (content_type.sub() == "json"
                || content_type
                    .sub()
                    .as_str()
                    .to_ascii_lowercase()
                    .ends_with("+json"))
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = data
        .open(MAX_BODY_BYTES.bytes())
        .into_bytes()
        .await
        .map_err(|err| {
            ApiError::BadRequest(vec![FieldError::new(
                "body",
                "",
                format!("The request body could not be read: {err}"),
                "body_unreadable",
            )])
        })?;
    if !body.is_complete() {
        return Err(ApiError::PayloadTooLarge);
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => Ok(JsonObject(object)),
        Ok(_) => Err(ApiError::Invalid(vec![FieldError::new(
            "body",
            "",
            "Input should be a valid JSON object",
            "model_type",
        )])),
        Err(err) => Err(ApiError::BadRequest(vec![FieldError::new(
            "body",
            "",
            format!("JSON decode error: {err}"),
            "json_invalid",
        )])),
    }
}

/// The fields of a student in a request body, trimmed and checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StudentInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub major: Option<String>,
}

const STUDENT_FIELDS: [&str; 3] = ["first_name", "last_name", "major"];

impl StudentInput {
    /// Every field, as `POST` and `PUT` need them.
    pub fn complete(body: &JsonObject) -> Result<Self, ApiError> {
        Self::parse(body, true)
    }

    /// Any subset of the fields, as `PATCH` takes them.
    pub fn partial(body: &JsonObject) -> Result<Self, ApiError> {
        Self::parse(body, false)
    }

    fn parse(JsonObject(object): &JsonObject, all_required: bool) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let mut field = |name: &str| match object.get(name) {
            None if all_required => {
                errors.push(FieldError::new("body", name, "Field required", "missing"));
                None
            }
            None => None,
            Some(value) => match checked_text(value) {
                Ok(text) => Some(text),
                Err((msg, kind)) => {
                    errors.push(FieldError::new("body", name, msg, kind));
                    None
                }
            },
        };
        let input = StudentInput {
            first_name: field("first_name"),
            last_name: field("last_name"),
            major: field("major"),
        };
        for name in object.keys() {
            if !STUDENT_FIELDS.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    "body",
                    name,
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                ));
            }
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }

    /// The row to insert; only for input from [`StudentInput::complete`].
    pub fn as_new(&self) -> Option<NewStudent<'_>> {
        Some(NewStudent {
            first_name: self.first_name.as_deref()?,
            last_name: self.last_name.as_deref()?,
            major: self.major.as_deref()?,
        })
    }

    pub fn as_changes(&self) -> StudentChanges<'_> {
        StudentChanges {
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            major: self.major.as_deref(),
        }
    }
}

/// A name or major: a JSON string without NUL, at most [`MAX_TEXT_CHARS`] characters as sent,
/// not blank; returned trimmed. The same rule is a CHECK constraint on the table.
fn checked_text(value: &Value) -> Result<String, (String, &'static str)> {
    let Value::String(text) = value else {
        return Err(("Input should be a valid string".into(), "string_type"));
    };
    if text.contains('\0') {
        return Err((
            "String should not contain NUL characters".into(),
            "string_pattern_mismatch",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err((
            format!("String should have at most {MAX_TEXT_CHARS} characters"),
            "string_too_long",
        ));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err((
            "String should have at least 1 character that is not whitespace".into(),
            "string_too_short",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A student id from the path: any 32-bit integer (absent ones are a 404, not a 422).
pub fn student_id(raw: &str) -> Result<i32, ApiError> {
    parse_i32(raw)
        .map_err(|(msg, kind)| ApiError::Invalid(vec![FieldError::new("path", "id", msg, kind)]))
}

/// The id from the path and the fields from the body of `PUT` and `PATCH`, checked together so
/// that one answer lists the problems of both.
pub fn id_and_body(
    id: &str,
    body: Result<JsonObject, ApiError>,
    parse: fn(&JsonObject) -> Result<StudentInput, ApiError>,
) -> Result<(i32, StudentInput), ApiError> {
    match (student_id(id), body.and_then(|body| parse(&body))) {
        (Ok(id), Ok(input)) => Ok((id, input)),
        (Err(ApiError::Invalid(mut errors)), Err(ApiError::Invalid(more))) => {
            errors.extend(more);
            Err(ApiError::Invalid(errors))
        }
        // A body that could not be read at all (400, 413, 415) says more than the id.
        (_, Err(err)) | (Err(err), _) => Err(err),
    }
}

fn parse_i32(raw: &str) -> Result<i32, (String, &'static str)> {
    match raw.parse::<i64>() {
        Ok(value) => i32::try_from(value).map_err(|_| {
            (
                format!("Input should be between {} and {}", i32::MIN, i32::MAX),
                "int_range",
            )
        }),
        Err(_) => Err((
            "Input should be a valid integer, unable to parse string as an integer".into(),
            "int_parsing",
        )),
    }
}

/// The query of `GET /students`, with every problem in it reported at once. Each parameter
/// comes with every value it was given; more than one is an error.
pub fn page_request(
    major: &[&str],
    after_id: &[&str],
    limit: &[&str],
) -> Result<PageRequest, ApiError> {
    let mut errors = Vec::new();
    let mut single = |name: &str, values: &[&str]| match values {
        [] => Ok(None),
        [value] => Ok(Some(value.to_string())),
        _ => {
            errors.push(FieldError::new(
                "query",
                name,
                "Give this parameter at most once",
                "too_many_values",
            ));
            Err(())
        }
    };
    let major = single("major", major);
    let after_id = single("after_id", after_id);
    let limit = single("limit", limit);

    let major = major.ok().flatten().and_then(|major| {
        if major.contains('\0') {
            errors.push(FieldError::new(
                "query",
                "major",
                "String should not contain NUL characters",
                "string_pattern_mismatch",
            ));
            None
        } else {
            Some(major)
        }
    });
    let after_id = match after_id {
        Ok(Some(raw)) => match parse_i32(&raw) {
            Ok(id) => Some(id),
            Err((msg, kind)) => {
                errors.push(FieldError::new("query", "after_id", msg, kind));
                None
            }
        },
        _ => None,
    };
    let limit = match limit {
        Ok(None) => DEFAULT_PAGE_LIMIT,
        Ok(Some(raw)) => match parse_i32(&raw).map(i64::from) {
            Ok(limit) if limit < 1 => {
                errors.push(FieldError::new(
                    "query",
                    "limit",
                    "Input should be greater than or equal to 1",
                    "greater_than_equal",
                ));
                DEFAULT_PAGE_LIMIT
            }
            Ok(limit) if limit > MAX_PAGE_LIMIT => {
                errors.push(FieldError::new(
                    "query",
                    "limit",
                    format!("Input should be less than or equal to {MAX_PAGE_LIMIT}"),
                    "less_than_equal",
                ));
                DEFAULT_PAGE_LIMIT
            }
            Ok(limit) => limit,
            Err((msg, kind)) => {
                errors.push(FieldError::new("query", "limit", msg, kind));
                DEFAULT_PAGE_LIMIT
            }
        },
        Err(()) => DEFAULT_PAGE_LIMIT,
    };
    if errors.is_empty() {
        Ok(PageRequest {
            major,
            after_id,
            limit,
        })
    } else {
        Err(ApiError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_counted_in_characters_not_bytes() {
        let hundred_emoji = "😀".repeat(100);
        assert_eq!(
            checked_text(&Value::from(hundred_emoji.clone())),
            Ok(hundred_emoji)
        );
        assert_eq!(checked_text(&Value::from("  Ada \n")), Ok("Ada".to_owned()));
        assert!(checked_text(&Value::from("😀".repeat(101))).is_err());
        assert!(checked_text(&Value::from("\u{3000}\t")).is_err());
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
            "update TEXT_PATTERN and the CHECK migration"
        );
    }
}
