//! JSON request bodies, read into a typed input with every broken rule reported at once.
//!
//! Rocket's `Json<T>` deserializes with serde, which stops at the first error; a 422 here lists
//! every offending field, as FastAPI's does. So the body is read as a JSON object and each input
//! type takes its fields from it through [`Fields`], which keeps every problem it meets.

use rocket::data::{self, Data, FromData, Limits};
use rocket::outcome::Outcome;
use rocket::request::Request;
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError, Problem};

/// A value one JSON field holds: a name, a number, ...
pub trait FromJson: Sized {
    fn from_json(value: &Value) -> Result<Self, Problem>;
}

/// A field that may be `null`: `None` then. Read with [`Fields::optional`], an absent field and a
/// `null` one stay apart (`None` and `Some(None)`), which is what PATCH needs to clear a field.
impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: &Value) -> Result<Self, Problem> {
        match value {
            Value::Null => Ok(None),
            value => T::from_json(value).map(Some),
        }
    }
}

/// A request body type: built from the fields of a JSON object.
pub trait FromJsonObject: Sized {
    /// `None` when a field was missing or invalid; `fields` then holds why.
    fn from_fields(fields: &mut Fields) -> Option<Self>;
}

/// The fields of a JSON object not read yet, and the problems met reading the others.
pub struct Fields {
    object: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// The field `name`, which must be there.
    pub fn required<T: FromJson>(&mut self, name: &str) -> Option<T> {
        match self.object.remove(name) {
            Some(value) => self.parse(name, &value),
            None => {
                self.fail(name, Problem::new("Field required", "missing"));
                None
            }
        }
    }

    /// The field `name`, if it is there.
    pub fn optional<T: FromJson>(&mut self, name: &str) -> Option<T> {
        let value = self.object.remove(name)?;
        self.parse(name, &value)
    }

    fn parse<T: FromJson>(&mut self, name: &str, value: &Value) -> Option<T> {
        T::from_json(value)
            .map_err(|problem| self.fail(name, problem))
            .ok()
    }

    fn fail(&mut self, name: &str, problem: Problem) {
        self.errors.push(FieldError::new(&["body", name], problem));
    }

    /// `T` from `object`, or every problem with it, unknown fields included.
    fn read<T: FromJsonObject>(object: Map<String, Value>) -> Result<T, ApiError> {
        let mut fields = Fields {
            object,
            errors: Vec::new(),
        };
        let value = T::from_fields(&mut fields);
        let Fields { object, mut errors } = fields;
        for name in object.keys() {
            errors.push(FieldError::new(
                &["body", name],
                Problem::new("Extra inputs are not permitted", "extra_forbidden"),
            ));
        }
        match value {
            Some(value) if errors.is_empty() => Ok(value),
            _ => Err(ApiError::Invalid(errors)),
        }
    }
}

/// A body sent as `application/json` (or a `+json` type), within Rocket's `json` limit
/// (`limits.json` in `Rocket.toml`), that parses as a JSON object holding a valid `T`. Each
/// failure has its own status: 415, 413, 400 and 422.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

#[rocket::async_trait]
impl<'r, T: FromJsonObject> FromData<'r> for JsonBody<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match read_object(request, data).await.and_then(Fields::read) {
            Ok(value) => Outcome::Success(JsonBody(value)),
            Err(err) => Outcome::Error((err.status(), err)),
        }
    }
}

async fn read_object(
    request: &Request<'_>,
    data: Data<'_>,
) -> Result<Map<String, Value>, ApiError> {
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
    let limit = request.limits().get("json").unwrap_or(Limits::JSON);
    let malformed = |msg: String, kind| {
        ApiError::BadRequest(vec![FieldError::new(&["body"], Problem::new(msg, kind))])
    };
    let body = data.open(limit).into_bytes().await.map_err(|err| {
        // The connection failed or the client stopped before the end of what it declared.
        malformed(
            format!("The request body could not be read whole: {err}"),
            "body_incomplete",
        )
    })?;
    if !body.is_complete() {
        return Err(ApiError::PayloadTooLarge(limit.as_u64()));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::Invalid(vec![FieldError::new(
            &["body"],
            Problem::new("Input should be a valid JSON object", "model_type"),
        )])),
        Err(err) => Err(malformed(
            format!("JSON decode error: {err}"),
            "json_invalid",
        )),
    }
}
