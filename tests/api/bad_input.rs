//! Every kind of bad input gets its own 4xx JSON answer, never a 500, and writes nothing.

use crate::helpers::{TestDb, bearer, client, students_fingerprint};
use rocket::http::{ContentType, Header, Method, Status};
use rocket::local::blocking::Client;
use serde_json::Value;

/// What the error body must say.
enum Expect {
    /// `{"detail": "<text containing this>"}`
    Message(&'static str),
    /// `{"detail": [{"loc": [...], "type": ...}, ...]}`, exactly these entries in this order.
    Fields(&'static [(&'static [&'static str], &'static str)]),
}
use Expect::{Fields, Message};

/// One bad request and the answer it must get.
struct Case {
    name: &'static str,
    method: Method,
    uri: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    expect: Expect,
}

impl Case {
    fn new(name: &'static str, method: Method, uri: &'static str) -> Self {
        Case {
            name,
            method,
            uri,
            content_type: None,
            body: Vec::new(),
            status: 0,
            expect: Message(""),
        }
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.typed("application/json", body)
    }

    fn typed(self, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Case {
            content_type: Some(content_type),
            ..self.untyped(body)
        }
    }

    /// A body sent without a `Content-Type`.
    fn untyped(self, body: impl Into<Vec<u8>>) -> Self {
        Case {
            body: body.into(),
            ..self
        }
    }

    fn answers(self, status: u16, expect: Expect) -> Self {
        Case {
            status,
            expect,
            ..self
        }
    }

    /// Sends the request; what is wrong with the answer, if anything.
    fn check(self, client: &Client) -> Result<(), String> {
        // With a token: the battery is about input, which only an authorised client gets past
        // to (tests/api/access.rs sends it without one).
        let mut request = (client.req(self.method, self.uri))
            .header(bearer(client))
            .body(self.body);
        if let Some(content_type) = self.content_type {
            request.add_header(Header::new("Content-Type", content_type));
        }
        let response = request.dispatch();
        let status = response.status();
        let content_type = response.content_type();
        let body: Value = response.into_json().unwrap_or(Value::Null);
        if status != Status::new(self.status) || content_type != Some(ContentType::JSON) {
            return Err(format!("{status}, {content_type:?}: {body}"));
        }
        match self.expect {
            Message(text) => match body["detail"].as_str() {
                Some(detail) if detail.contains(text) => Ok(()),
                _ => Err(format!("detail should contain {text:?}: {body}")),
            },
            Fields(expected) => {
                let got: Vec<(Vec<&str>, &str)> = body["detail"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|entry| entry["msg"].as_str().is_some_and(|msg| !msg.is_empty()))
                    .map(|entry| {
                        let loc = entry["loc"].as_array().into_iter().flatten();
                        let loc = loc.filter_map(Value::as_str).collect();
                        (loc, entry["type"].as_str().unwrap_or_default())
                    })
                    .collect();
                let want: Vec<(Vec<&str>, &str)> = expected
                    .iter()
                    .map(|(loc, kind)| (loc.to_vec(), *kind))
                    .collect();
                match got == want {
                    true => Ok(()),
                    false => Err(format!("expected {want:?}: {body}")),
                }
            }
        }
    }
}

const MISSING_ALL: &[(&[&str], &str)] = &[
    (&["body", "first_name"], "missing"),
    (&["body", "last_name"], "missing"),
    (&["body", "major"], "missing"),
];

const VALID: &str = r#"{"first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"}"#;

fn cases() -> Vec<Case> {
    use Method::{Delete, Get, Patch, Post, Put};
    let long = "x".repeat(101);
    let long_name = format!(r#"{{"first_name": "{long}", "last_name": "L", "major": "M"}}"#);
    let long_emoji = format!(
        r#"{{"first_name": "{}", "last_name": "L", "major": "M"}}"#,
        "😀".repeat(101)
    );
    let huge = format!(
        r#"{{"first_name": "{}", "last_name": "L", "major": "M"}}"#,
        "a".repeat(70_000)
    );
    vec![
        // Content type and size of POST bodies.
        Case::new("post without content type", Post, "/students")
            .untyped(VALID)
            .answers(415, Message("application/json")),
        Case::new("post as text/plain", Post, "/students")
            .typed("text/plain", VALID)
            .answers(415, Message("application/json")),
        Case::new("post as form", Post, "/students")
            .typed("application/x-www-form-urlencoded", "first_name=Ada")
            .answers(415, Message("application/json")),
        Case::new("post as xml", Post, "/students")
            .typed("application/xml", "<student/>")
            .answers(415, Message("application/json")),
        Case::new("post over 64 KiB", Post, "/students")
            .json(huge)
            .answers(413, Message("larger than 65536 bytes")),
        // JSON that does not parse.
        Case::new("post truncated json", Post, "/students")
            .json(r#"{"first_name": "#)
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        Case::new("post empty body", Post, "/students")
            .json("")
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        Case::new("post trailing garbage", Post, "/students")
            .json(format!("{VALID} x"))
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        Case::new("post single quotes", Post, "/students")
            .json("{'first_name': 'Ada'}")
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        Case::new("post invalid utf-8", Post, "/students")
            .json(b"{\"first_name\": \"\xff\xfe\"}".to_vec())
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        // JSON that is not an object.
        Case::new("post array", Post, "/students")
            .json("[]")
            .answers(422, Fields(&[(&["body"], "model_type")])),
        Case::new("post string", Post, "/students")
            .json(r#""Ada""#)
            .answers(422, Fields(&[(&["body"], "model_type")])),
        Case::new("post number", Post, "/students")
            .json("42")
            .answers(422, Fields(&[(&["body"], "model_type")])),
        Case::new("post null", Post, "/students")
            .json("null")
            .answers(422, Fields(&[(&["body"], "model_type")])),
        // Fields missing, unknown or of the wrong type.
        Case::new("post empty object", Post, "/students")
            .json("{}")
            .answers(422, Fields(MISSING_ALL)),
        Case::new("post missing major", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B"}"#)
            .answers(422, Fields(&[(&["body", "major"], "missing")])),
        Case::new("post unknown field", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "age": 20}"#)
            .answers(422, Fields(&[(&["body", "age"], "extra_forbidden")])),
        Case::new("post id in body", Post, "/students")
            .json(r#"{"id": 1, "first_name": "A", "last_name": "B", "major": "C"}"#)
            .answers(422, Fields(&[(&["body", "id"], "extra_forbidden")])),
        Case::new("post number as name", Post, "/students")
            .json(r#"{"first_name": 7, "last_name": "B", "major": "C"}"#)
            .answers(422, Fields(&[(&["body", "first_name"], "string_type")])),
        Case::new("post null as name", Post, "/students")
            .json(r#"{"first_name": null, "last_name": "B", "major": "C"}"#)
            .answers(422, Fields(&[(&["body", "first_name"], "string_type")])),
        Case::new("post bool as name", Post, "/students")
            .json(r#"{"first_name": true, "last_name": "B", "major": "C"}"#)
            .answers(422, Fields(&[(&["body", "first_name"], "string_type")])),
        Case::new("post array as name", Post, "/students")
            .json(r#"{"first_name": ["A"], "last_name": "B", "major": "C"}"#)
            .answers(422, Fields(&[(&["body", "first_name"], "string_type")])),
        Case::new("post object as major", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": {"x": 1}}"#)
            .answers(422, Fields(&[(&["body", "major"], "string_type")])),
        // Strings that break the rules.
        Case::new("post empty name", Post, "/students")
            .json(r#"{"first_name": "", "last_name": "B", "major": "C"}"#)
            .answers(
                422,
                Fields(&[(&["body", "first_name"], "string_too_short")]),
            ),
        Case::new("post blank name", Post, "/students")
            .json(r#"{"first_name": "   ", "last_name": "B", "major": "C"}"#)
            .answers(
                422,
                Fields(&[(&["body", "first_name"], "string_too_short")]),
            ),
        Case::new("post unicode-blank major", Post, "/students")
            .json("{\"first_name\": \"A\", \"last_name\": \"B\", \"major\": \"\u{3000}\u{a0}\\t\"}")
            .answers(422, Fields(&[(&["body", "major"], "string_too_short")])),
        Case::new("post 101 character name", Post, "/students")
            .json(long_name)
            .answers(422, Fields(&[(&["body", "first_name"], "string_too_long")])),
        Case::new("post 101 emoji name", Post, "/students")
            .json(long_emoji)
            .answers(422, Fields(&[(&["body", "first_name"], "string_too_long")])),
        Case::new("post NUL in name", Post, "/students")
            .json(r#"{"first_name": "A\u0000B", "last_name": "B", "major": "C"}"#)
            .answers(
                422,
                Fields(&[(&["body", "first_name"], "string_pattern_mismatch")]),
            ),
        // Email: optional, null allowed, and then a loose but definite format.
        Case::new("post email with two @", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "a@b@c.d"}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email with inner space", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "a b@c.d"}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email without dot after @", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "a@localhost"}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email dot at the end", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "a@b."}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email nothing before @", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "@b.c"}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email 65-character local part", Post, "/students")
            .json(format!(
                r#"{{"first_name": "A", "last_name": "B", "major": "C", "email": "{}@b.c"}}"#,
                "a".repeat(65)
            ))
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("post email 255 characters", Post, "/students")
            .json(format!(
                r#"{{"first_name": "A", "last_name": "B", "major": "C", "email": "a@{}.c"}}"#,
                "b".repeat(251)
            ))
            .answers(422, Fields(&[(&["body", "email"], "string_too_long")])),
        Case::new("post email with NUL", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "email": "a\u0000@b.c"}"#)
            .answers(
                422,
                Fields(&[(&["body", "email"], "string_pattern_mismatch")]),
            ),
        Case::new("post email and name wrong", Post, "/students")
            .json(r#"{"first_name": " ", "last_name": "B", "major": "C", "email": "x"}"#)
            .answers(
                422,
                Fields(&[
                    (&["body", "first_name"], "string_too_short"),
                    (&["body", "email"], "value_error"),
                ]),
            ),
        Case::new("post enrolled_on impossible day", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": "2023-02-29"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("post enrolled_on month 13", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": "2024-13-01"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("post enrolled_on with a time", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": "2024-09-02T00:00:00Z"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("post enrolled_on year 0", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": "0000-01-01"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("post enrolled_on with NUL", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": "2024-01-0\u0000"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("post enrolled_on as number", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": 20240902}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_type")])),
        Case::new("post enrolled_on null", Post, "/students")
            .json(r#"{"first_name": "A", "last_name": "B", "major": "C", "enrolled_on": null}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_type")])),
        Case::new("post every field wrong", Post, "/students")
            .json(r#"{"first_name": "", "last_name": 1, "nick": "x"}"#)
            .answers(
                422,
                Fields(&[
                    (&["body", "first_name"], "string_too_short"),
                    (&["body", "last_name"], "string_type"),
                    (&["body", "major"], "missing"),
                    (&["body", "nick"], "extra_forbidden"),
                ]),
            ),
        // PUT needs every field; PATCH any, with the same rules.
        Case::new("put missing fields", Put, "/students/1")
            .json(r#"{"major": "Art"}"#)
            .answers(
                422,
                Fields(&[
                    (&["body", "first_name"], "missing"),
                    (&["body", "last_name"], "missing"),
                ]),
            ),
        Case::new("put as text/plain", Put, "/students/1")
            .typed("text/plain", VALID)
            .answers(415, Message("application/json")),
        Case::new("put malformed json", Put, "/students/1")
            .json("{")
            .answers(400, Fields(&[(&["body"], "json_invalid")])),
        Case::new("put non-integer id", Put, "/students/abc")
            .json(VALID)
            .answers(422, Fields(&[(&["path", "id"], "int_parsing")])),
        Case::new("put bad id and bad body", Put, "/students/x")
            .json(r#"{"first_name": "A", "last_name": "B"}"#)
            .answers(
                422,
                Fields(&[
                    (&["path", "id"], "int_parsing"),
                    (&["body", "major"], "missing"),
                ]),
            ),
        Case::new("patch null major", Patch, "/students/1")
            .json(r#"{"major": null}"#)
            .answers(422, Fields(&[(&["body", "major"], "string_type")])),
        Case::new("patch blank name", Patch, "/students/1")
            .json(r#"{"first_name": " "}"#)
            .answers(
                422,
                Fields(&[(&["body", "first_name"], "string_too_short")]),
            ),
        Case::new("patch unknown field", Patch, "/students/1")
            .json(r#"{"nickname": "Al"}"#)
            .answers(422, Fields(&[(&["body", "nickname"], "extra_forbidden")])),
        Case::new("patch email without @", Patch, "/students/1")
            .json(r#"{"email": "alice.example.edu"}"#)
            .answers(422, Fields(&[(&["body", "email"], "value_error")])),
        Case::new("patch enrolled_on null", Patch, "/students/1")
            .json(r#"{"enrolled_on": null}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_type")])),
        Case::new("patch enrolled_on not a day", Patch, "/students/1")
            .json(r#"{"enrolled_on": "yesterday"}"#)
            .answers(422, Fields(&[(&["body", "enrolled_on"], "date_parsing")])),
        Case::new("put enrolled_on and name wrong", Put, "/students/1")
            .json(r#"{"first_name": "A", "last_name": "", "major": "C", "enrolled_on": "2024-02-30"}"#)
            .answers(
                422,
                Fields(&[
                    (&["body", "last_name"], "string_too_short"),
                    (&["body", "enrolled_on"], "date_parsing"),
                ]),
            ),
        Case::new("patch email as number", Patch, "/students/1")
            .json(r#"{"email": 7}"#)
            .answers(422, Fields(&[(&["body", "email"], "string_type")])),
        Case::new("patch array body", Patch, "/students/1")
            .json(r#"[{"major": "Art"}]"#)
            .answers(422, Fields(&[(&["body"], "model_type")])),
        Case::new("patch without content type", Patch, "/students/1")
            .untyped(r#"{"major": "Art"}"#)
            .answers(415, Message("application/json")),
        Case::new("patch id out of range", Patch, "/students/2147483648")
            .json(r#"{"major": "Art"}"#)
            .answers(422, Fields(&[(&["path", "id"], "int_range")])),
        // Ids in paths.
        Case::new("get non-integer id", Get, "/students/abc")
            .answers(422, Fields(&[(&["path", "id"], "int_parsing")])),
        Case::new("get fractional id", Get, "/students/1.5")
            .answers(422, Fields(&[(&["path", "id"], "int_parsing")])),
        Case::new("get id beyond i64", Get, "/students/99999999999999999999")
            .answers(422, Fields(&[(&["path", "id"], "int_parsing")])),
        Case::new("get id below i32", Get, "/students/-2147483649")
            .answers(422, Fields(&[(&["path", "id"], "int_range")])),
        Case::new("delete non-integer id", Delete, "/students/one")
            .answers(422, Fields(&[(&["path", "id"], "int_parsing")])),
        Case::new("delete id out of range", Delete, "/students/4294967296")
            .answers(422, Fields(&[(&["path", "id"], "int_range")])),
        Case::new("delete absent id", Delete, "/students/777")
            .answers(404, Message("Student not found")),
        Case::new("put absent id", Put, "/students/777")
            .json(VALID)
            .answers(404, Message("Student not found")),
        // Query parameters.
        Case::new("limit zero", Get, "/students?limit=0")
            .answers(422, Fields(&[(&["query", "limit"], "greater_than_equal")])),
        Case::new("limit negative", Get, "/students?limit=-5")
            .answers(422, Fields(&[(&["query", "limit"], "greater_than_equal")])),
        Case::new("limit over 1000", Get, "/students?limit=1001")
            .answers(422, Fields(&[(&["query", "limit"], "less_than_equal")])),
        Case::new("limit not a number", Get, "/students?limit=ten")
            .answers(422, Fields(&[(&["query", "limit"], "int_parsing")])),
        Case::new("limit empty", Get, "/students?limit=")
            .answers(422, Fields(&[(&["query", "limit"], "int_parsing")])),
        Case::new("after_id not a number", Get, "/students?after_id=x")
            .answers(422, Fields(&[(&["query", "after_id"], "int_parsing")])),
        Case::new(
            "after_id out of range",
            Get,
            "/students?after_id=3000000000",
        )
        .answers(422, Fields(&[(&["query", "after_id"], "int_range")])),
        Case::new("NUL in major filter", Get, "/students?major=A%00B").answers(
            422,
            Fields(&[(&["query", "major"], "string_pattern_mismatch")]),
        ),
        Case::new(
            "every query parameter wrong",
            Get,
            "/students?major=%00&after_id=a&limit=0",
        )
        .answers(
            422,
            Fields(&[
                (&["query", "major"], "string_pattern_mismatch"),
                (&["query", "after_id"], "int_parsing"),
                (&["query", "limit"], "greater_than_equal"),
            ]),
        ),
        Case::new("limit given twice", Get, "/students?limit=5&limit=6")
            .answers(422, Fields(&[(&["query", "limit"], "too_many_values")])),
        // Routes and methods.
        Case::new("unknown route", Get, "/teachers").answers(404, Message("Not Found")),
        Case::new("unknown nested route", Get, "/students/1/courses")
            .answers(404, Message("Not Found")),
        Case::new("delete the collection", Delete, "/students")
            .answers(405, Message("Method Not Allowed")),
        Case::new("post to a student", Post, "/students/1")
            .json(VALID)
            .answers(405, Message("Method Not Allowed")),
    ]
}

/// Every case is sent and checked, and every one that fails is reported, not only the first.
#[test]
fn every_bad_input_gets_a_specific_json_4xx_and_leaves_the_table_unchanged() {
    let db = TestDb::migrated();
    check_every_case(&client(&db), &db);
}

/// Sends every case to `client`, a service over `db`, and fails naming each case that got the
/// wrong answer or changed the table.
pub fn check_every_case(client: &Client, db: &TestDb) {
    let mut conn = db.connect();
    let before = students_fingerprint(&mut conn);

    let mut failures = Vec::new();
    for case in cases() {
        let name = case.name;
        if let Err(why) = case.check(client) {
            failures.push(format!("{name}: {why}"));
        }
        if students_fingerprint(&mut conn) != before {
            failures.push(format!("{name}: the table changed"));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_405_names_the_allowed_methods() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = client.delete("/students").dispatch();
    assert_eq!(response.headers().get_one("Allow"), Some("GET, HEAD, POST"));
    let response = client.post("/students/1").dispatch();
    assert_eq!(
        response.headers().get_one("Allow"),
        Some("DELETE, GET, HEAD, PATCH, PUT")
    );
}
