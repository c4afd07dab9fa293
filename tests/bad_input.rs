//! Every kind of bad input gets its own 4xx JSON answer, never a 500, and writes nothing.

mod common;

use common::{TestDb, client, students_fingerprint};
use rocket::http::{Header, Method, Status};
use serde_json::Value;

/// What the error body must say.
enum Expect {
    /// `{"detail": "<text containing this>"}`
    Message(&'static str),
    /// `{"detail": [{"loc": [...], "type": ...}, ...]}`, exactly these entries in this order.
    Fields(&'static [(&'static [&'static str], &'static str)]),
}
use Expect::{Fields, Message};

struct Case {
    name: &'static str,
    method: Method,
    uri: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    expect: Expect,
}

const JSON: Option<&str> = Some("application/json");

fn case(
    name: &'static str,
    method: Method,
    uri: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    expect: Expect,
) -> Case {
    Case {
        name,
        method,
        uri,
        content_type,
        body: body.into(),
        status,
        expect,
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
        case(
            "post without content type",
            Post,
            "/students",
            None,
            VALID,
            415,
            Message("application/json"),
        ),
        case(
            "post as text/plain",
            Post,
            "/students",
            Some("text/plain"),
            VALID,
            415,
            Message("application/json"),
        ),
        case(
            "post as form",
            Post,
            "/students",
            Some("application/x-www-form-urlencoded"),
            "first_name=Ada",
            415,
            Message("application/json"),
        ),
        case(
            "post as xml",
            Post,
            "/students",
            Some("application/xml"),
            "<student/>",
            415,
            Message("application/json"),
        ),
        case(
            "post over 64 KiB",
            Post,
            "/students",
            JSON,
            huge,
            413,
            Message("larger than 65536 bytes"),
        ),
        // JSON that does not parse.
        case(
            "post truncated json",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "#,
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        case(
            "post empty body",
            Post,
            "/students",
            JSON,
            "",
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        case(
            "post trailing garbage",
            Post,
            "/students",
            JSON,
            format!("{VALID} x"),
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        case(
            "post single quotes",
            Post,
            "/students",
            JSON,
            "{'first_name': 'Ada'}",
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        case(
            "post invalid utf-8",
            Post,
            "/students",
            JSON,
            b"{\"first_name\": \"\xff\xfe\"}".to_vec(),
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        // JSON that is not an object.
        case(
            "post array",
            Post,
            "/students",
            JSON,
            "[]",
            422,
            Fields(&[(&["body"], "model_type")]),
        ),
        case(
            "post string",
            Post,
            "/students",
            JSON,
            r#""Ada""#,
            422,
            Fields(&[(&["body"], "model_type")]),
        ),
        case(
            "post number",
            Post,
            "/students",
            JSON,
            "42",
            422,
            Fields(&[(&["body"], "model_type")]),
        ),
        case(
            "post null",
            Post,
            "/students",
            JSON,
            "null",
            422,
            Fields(&[(&["body"], "model_type")]),
        ),
        // Fields missing, unknown or of the wrong type.
        case(
            "post empty object",
            Post,
            "/students",
            JSON,
            "{}",
            422,
            Fields(MISSING_ALL),
        ),
        case(
            "post missing major",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "A", "last_name": "B"}"#,
            422,
            Fields(&[(&["body", "major"], "missing")]),
        ),
        case(
            "post unknown field",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "A", "last_name": "B", "major": "C", "age": 20}"#,
            422,
            Fields(&[(&["body", "age"], "extra_forbidden")]),
        ),
        case(
            "post id in body",
            Post,
            "/students",
            JSON,
            r#"{"id": 1, "first_name": "A", "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "id"], "extra_forbidden")]),
        ),
        case(
            "post number as name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": 7, "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_type")]),
        ),
        case(
            "post null as name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": null, "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_type")]),
        ),
        case(
            "post bool as name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": true, "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_type")]),
        ),
        case(
            "post array as name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": ["A"], "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_type")]),
        ),
        case(
            "post object as major",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "A", "last_name": "B", "major": {"x": 1}}"#,
            422,
            Fields(&[(&["body", "major"], "string_type")]),
        ),
        // Strings that break the rules.
        case(
            "post empty name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "", "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_too_short")]),
        ),
        case(
            "post blank name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "   ", "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_too_short")]),
        ),
        case(
            "post unicode-blank major",
            Post,
            "/students",
            JSON,
            "{\"first_name\": \"A\", \"last_name\": \"B\", \"major\": \"\u{3000}\u{a0}\\t\"}",
            422,
            Fields(&[(&["body", "major"], "string_too_short")]),
        ),
        case(
            "post 101 character name",
            Post,
            "/students",
            JSON,
            long_name,
            422,
            Fields(&[(&["body", "first_name"], "string_too_long")]),
        ),
        case(
            "post 101 emoji name",
            Post,
            "/students",
            JSON,
            long_emoji,
            422,
            Fields(&[(&["body", "first_name"], "string_too_long")]),
        ),
        case(
            "post NUL in name",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "A\u0000B", "last_name": "B", "major": "C"}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_pattern_mismatch")]),
        ),
        case(
            "post every field wrong",
            Post,
            "/students",
            JSON,
            r#"{"first_name": "", "last_name": 1, "nick": "x"}"#,
            422,
            Fields(&[
                (&["body", "first_name"], "string_too_short"),
                (&["body", "last_name"], "string_type"),
                (&["body", "major"], "missing"),
                (&["body", "nick"], "extra_forbidden"),
            ]),
        ),
        // PUT needs every field; PATCH any, with the same rules.
        case(
            "put missing fields",
            Put,
            "/students/1",
            JSON,
            r#"{"major": "Art"}"#,
            422,
            Fields(&[
                (&["body", "first_name"], "missing"),
                (&["body", "last_name"], "missing"),
            ]),
        ),
        case(
            "put as text/plain",
            Put,
            "/students/1",
            Some("text/plain"),
            VALID,
            415,
            Message("application/json"),
        ),
        case(
            "put malformed json",
            Put,
            "/students/1",
            JSON,
            "{",
            400,
            Fields(&[(&["body"], "json_invalid")]),
        ),
        case(
            "put non-integer id",
            Put,
            "/students/abc",
            JSON,
            VALID,
            422,
            Fields(&[(&["path", "id"], "int_parsing")]),
        ),
        case(
            "put bad id and bad body",
            Put,
            "/students/x",
            JSON,
            r#"{"first_name": "A", "last_name": "B"}"#,
            422,
            Fields(&[
                (&["path", "id"], "int_parsing"),
                (&["body", "major"], "missing"),
            ]),
        ),
        case(
            "patch null major",
            Patch,
            "/students/1",
            JSON,
            r#"{"major": null}"#,
            422,
            Fields(&[(&["body", "major"], "string_type")]),
        ),
        case(
            "patch blank name",
            Patch,
            "/students/1",
            JSON,
            r#"{"first_name": " "}"#,
            422,
            Fields(&[(&["body", "first_name"], "string_too_short")]),
        ),
        case(
            "patch unknown field",
            Patch,
            "/students/1",
            JSON,
            r#"{"email": "a@b.c"}"#,
            422,
            Fields(&[(&["body", "email"], "extra_forbidden")]),
        ),
        case(
            "patch array body",
            Patch,
            "/students/1",
            JSON,
            r#"[{"major": "Art"}]"#,
            422,
            Fields(&[(&["body"], "model_type")]),
        ),
        case(
            "patch without content type",
            Patch,
            "/students/1",
            None,
            r#"{"major": "Art"}"#,
            415,
            Message("application/json"),
        ),
        case(
            "patch id out of range",
            Patch,
            "/students/2147483648",
            JSON,
            r#"{"major": "Art"}"#,
            422,
            Fields(&[(&["path", "id"], "int_range")]),
        ),
        // Ids in paths.
        case(
            "get non-integer id",
            Get,
            "/students/abc",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_parsing")]),
        ),
        case(
            "get fractional id",
            Get,
            "/students/1.5",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_parsing")]),
        ),
        case(
            "get id beyond i64",
            Get,
            "/students/99999999999999999999",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_parsing")]),
        ),
        case(
            "get id below i32",
            Get,
            "/students/-2147483649",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_range")]),
        ),
        case(
            "delete non-integer id",
            Delete,
            "/students/one",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_parsing")]),
        ),
        case(
            "delete id out of range",
            Delete,
            "/students/4294967296",
            None,
            "",
            422,
            Fields(&[(&["path", "id"], "int_range")]),
        ),
        case(
            "delete absent id",
            Delete,
            "/students/777",
            None,
            "",
            404,
            Message("Student not found"),
        ),
        case(
            "put absent id",
            Put,
            "/students/777",
            JSON,
            VALID,
            404,
            Message("Student not found"),
        ),
        // Query parameters.
        case(
            "limit zero",
            Get,
            "/students?limit=0",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "greater_than_equal")]),
        ),
        case(
            "limit negative",
            Get,
            "/students?limit=-5",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "greater_than_equal")]),
        ),
        case(
            "limit over 1000",
            Get,
            "/students?limit=1001",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "less_than_equal")]),
        ),
        case(
            "limit not a number",
            Get,
            "/students?limit=ten",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "int_parsing")]),
        ),
        case(
            "limit empty",
            Get,
            "/students?limit=",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "int_parsing")]),
        ),
        case(
            "after_id not a number",
            Get,
            "/students?after_id=x",
            None,
            "",
            422,
            Fields(&[(&["query", "after_id"], "int_parsing")]),
        ),
        case(
            "after_id out of range",
            Get,
            "/students?after_id=3000000000",
            None,
            "",
            422,
            Fields(&[(&["query", "after_id"], "int_range")]),
        ),
        case(
            "NUL in major filter",
            Get,
            "/students?major=A%00B",
            None,
            "",
            422,
            Fields(&[(&["query", "major"], "string_pattern_mismatch")]),
        ),
        case(
            "every query parameter wrong",
            Get,
            "/students?major=%00&after_id=a&limit=0",
            None,
            "",
            422,
            Fields(&[
                (&["query", "major"], "string_pattern_mismatch"),
                (&["query", "after_id"], "int_parsing"),
                (&["query", "limit"], "greater_than_equal"),
            ]),
        ),
        case(
            "limit given twice",
            Get,
            "/students?limit=5&limit=6",
            None,
            "",
            422,
            Fields(&[(&["query", "limit"], "too_many_values")]),
        ),
        // Routes and methods.
        case(
            "unknown route",
            Get,
            "/teachers",
            None,
            "",
            404,
            Message("Not Found"),
        ),
        case(
            "unknown nested route",
            Get,
            "/students/1/courses",
            None,
            "",
            404,
            Message("Not Found"),
        ),
        case(
            "delete the collection",
            Delete,
            "/students",
            None,
            "",
            405,
            Message("Method Not Allowed"),
        ),
        case(
            "post to a student",
            Post,
            "/students/1",
            JSON,
            VALID,
            405,
            Message("Method Not Allowed"),
        ),
    ]
}

#[test]
fn every_bad_input_gets_a_specific_json_4xx_and_leaves_the_table_unchanged() {
    let db = TestDb::new();
    let client = client(&db);
    let mut conn = db.connect();
    let before = students_fingerprint(&mut conn);
    let cases = cases();
    assert!(cases.len() >= 40, "the battery has {} cases", cases.len());

    for case in cases {
        let name = case.name;
        let mut request = client.req(case.method, case.uri).body(case.body);
        if let Some(content_type) = case.content_type {
            request = request.header(Header::new("Content-Type", content_type));
        }
        let response = request.dispatch();

        assert_eq!(response.status(), Status::new(case.status), "{name}");
        assert_eq!(
            response.content_type().map(|ct| ct.to_string()),
            Some("application/json".to_owned()),
            "{name}"
        );
        let body: Value = response
            .into_json()
            .unwrap_or_else(|| panic!("{name}: not JSON"));
        match case.expect {
            Message(text) => {
                let detail = body["detail"].as_str();
                assert!(
                    detail.is_some_and(|detail| detail.contains(text)),
                    "{name}: {body}"
                );
            }
            Fields(expected) => {
                let entries = body["detail"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name}: {body}"));
                let got: Vec<(Vec<String>, String)> = entries
                    .iter()
                    .map(|entry| {
                        assert!(
                            entry["msg"].as_str().is_some_and(|m| !m.is_empty()),
                            "{name}: {entry}"
                        );
                        let loc = entry["loc"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|l| l.as_str().unwrap().to_owned())
                            .collect();
                        (loc, entry["type"].as_str().unwrap().to_owned())
                    })
                    .collect();
                let want: Vec<(Vec<String>, String)> = expected
                    .iter()
                    .map(|(loc, kind)| {
                        (
                            loc.iter().map(|l| l.to_string()).collect(),
                            kind.to_string(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{name}: {body}");
            }
        }
        assert_eq!(
            students_fingerprint(&mut conn),
            before,
            "{name} wrote to the table"
        );
    }
}

#[test]
fn a_405_names_the_allowed_methods() {
    let db = TestDb::new();
    let client = client(&db);

    let response = client.delete("/students").dispatch();
    assert_eq!(response.headers().get_one("Allow"), Some("GET, HEAD, POST"));
    let response = client.post("/students/1").dispatch();
    assert_eq!(
        response.headers().get_one("Allow"),
        Some("DELETE, GET, HEAD, PATCH, PUT")
    );
}
