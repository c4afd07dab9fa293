//! Query and path parameters: Rocket parses them (`FromForm`, `FromParam`); this module turns its
//! errors into the 422 entries FastAPI clients know, every problem of a query listed at once.

use rocket::form::{self, error::ErrorKind};

use super::error::{ApiError, FieldError, Problem};

impl From<form::Errors<'_>> for ApiError {
    fn from(errors: form::Errors<'_>) -> Self {
        ApiError::Invalid(errors.iter().map(query_error).collect())
    }
}

fn query_error(error: &form::Error<'_>) -> FieldError {
    let name = error
        .name
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let problem = match &error.kind {
        ErrorKind::Duplicate => Problem::new("Give this parameter at most once", "too_many_values"),
        ErrorKind::Int(_) => int_problem(error.value.as_deref().unwrap_or_default()),
        ErrorKind::Custom(_, err) => match err.downcast_ref::<Problem>() {
            Some(problem) => problem.clone(),
            None => Problem::new(err.to_string(), "value_error"),
        },
        other => Problem::new(other.to_string(), "value_error"),
    };
    FieldError::new(&["query", &name], problem)
}

/// Why `raw` is not an `i32`, in pydantic's words: out of range if it is an integer at all
/// (within 64 bits, as pydantic reads one), otherwise not an integer.
fn int_problem(raw: &str) -> Problem {
    match raw.parse::<i64>() {
        Ok(_) => Problem::new(
            format!("Input should be between {} and {}", i32::MIN, i32::MAX),
            "int_range",
        ),
        Err(_) => Problem::new(
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        ),
    }
}

/// A 32-bit integer path segment. Route it as `Result<i32, &str>`: Rocket's `FromParam` for
/// integers hands back the raw segment on failure, which is enough to say why.
pub fn path_int(name: &str, param: Result<i32, &str>) -> Result<i32, ApiError> {
    param.map_err(|raw| ApiError::Invalid(vec![FieldError::new(&["path", name], int_problem(raw))]))
}
