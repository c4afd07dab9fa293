//! The `/students` resource: listing, paging, reading, creating, replacing, changing, deleting.

use diesel::RunQueryDsl;
use rocket::http::{ContentType, Header, Method, Status};
use serde_json::{Value, json};

use crate::helpers::{TestDb, bearer, client, delete, get_json, send_json};

/// The fields a client sets, without the server-assigned timestamps.
fn fields(student: &Value) -> Value {
    json!({
        "id": student["id"],
        "first_name": student["first_name"],
        "last_name": student["last_name"],
        "major": student["major"],
    })
}

fn insert_students(db: &TestDb, count: usize, major: &str) {
    diesel::sql_query(format!(
        "INSERT INTO student (first_name, last_name, major) \
         SELECT 'First' || n, 'Last' || n, '{major}' FROM generate_series(1, {count}) AS n"
    ))
    .execute(&mut db.connect())
    .unwrap();
}

#[test]
fn listing_students_on_a_fresh_database_returns_the_five_seeded_students_in_id_order() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = client.get("/students").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert!(response.headers().get_one("Link").is_none());
    let students: Vec<Value> = response.into_json().unwrap();
    assert_eq!(
        students.iter().map(fields).collect::<Vec<_>>(),
        [
            json!({"id": 1, "first_name": "Alice", "last_name": "Johnson", "major": "Computer Science"}),
            json!({"id": 2, "first_name": "Bob", "last_name": "Smith", "major": "Mathematics"}),
            json!({"id": 3, "first_name": "Carol", "last_name": "Williams", "major": "Physics"}),
            json!({"id": 4, "first_name": "David", "last_name": "Brown", "major": "Computer Science"}),
            json!({"id": 5, "first_name": "Eva", "last_name": "Davis", "major": "Biology"}),
        ]
    );
    let mut keys: Vec<&String> = students[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "enrolled_on",
            "first_name",
            "id",
            "last_name",
            "major",
            "updated_at"
        ]
    );
}

#[test]
fn the_major_filter_matches_exactly_and_keeps_id_order() {
    let db = TestDb::migrated();
    let client = client(&db);

    let (status, students) = get_json(&client, "/students?major=Computer%20Science");
    assert_eq!(status, Status::Ok);
    let names: Vec<&str> = students
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["first_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "David"]);

    let (_, none) = get_json(&client, "/students?major=computer%20science");
    assert_eq!(none, json!([]));
}

#[test]
fn following_next_links_walks_every_student_once_in_id_order() {
    let db = TestDb::migrated();
    let client = client(&db);
    insert_students(&db, 20, "History");

    let mut uri = Some("/students?limit=7".to_owned());
    let mut ids = Vec::new();
    let mut pages = 0;
    while let Some(next) = uri {
        let response = client.get(next).dispatch();
        assert_eq!(response.status(), Status::Ok);
        uri = response.headers().get_one("Link").map(|link| {
            let (target, rel) = link.split_once("; ").expect("<uri>; rel=\"next\"");
            assert_eq!(rel, "rel=\"next\"");
            target.trim_matches(['<', '>']).to_owned()
        });
        let page: Vec<Value> = response.into_json().unwrap();
        assert!(page.len() <= 7);
        ids.extend(page.iter().map(|s| s["id"].as_i64().unwrap()));
        pages += 1;
    }

    assert_eq!(ids, (1..=25).collect::<Vec<_>>());
    assert_eq!(pages, 4, "7 + 7 + 7 + 4, and no empty page at the end");
}

#[test]
fn the_next_link_keeps_the_major_filter_percent_encoded() {
    let db = TestDb::migrated();
    let client = client(&db);
    insert_students(&db, 3, "Art & Design");

    let response = client
        .get("/students?major=Art%20%26%20Design&limit=2")
        .dispatch();

    let link = response.headers().get_one("Link").expect("a next link");
    assert_eq!(
        link,
        "</students?after_id=7&limit=2&major=Art%20%26%20Design>; rel=\"next\""
    );
    let (_, rest) = get_json(
        &client,
        "/students?after_id=7&limit=2&major=Art%20%26%20Design",
    );
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["id"], 8);
}

#[test]
fn after_id_starts_the_page_after_that_id_and_limit_caps_it() {
    let db = TestDb::migrated();
    let client = client(&db);

    let (_, students) = get_json(&client, "/students?after_id=2&limit=2");

    let ids: Vec<i64> = students
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
}

#[test]
fn the_default_page_is_100_students_and_the_largest_is_1000() {
    let db = TestDb::migrated();
    let client = client(&db);
    insert_students(&db, 1000, "Physics");

    let (_, default_page) = get_json(&client, "/students");
    let (_, largest) = get_json(&client, "/students?limit=1000");

    assert_eq!(default_page.as_array().unwrap().len(), 100);
    assert_eq!(largest.as_array().unwrap().len(), 1000);
}

#[test]
fn reading_a_student_by_id_returns_it() {
    let db = TestDb::migrated();
    let client = client(&db);

    let (status, student) = get_json(&client, "/students/3");

    assert_eq!(status, Status::Ok);
    assert_eq!(
        fields(&student),
        json!({"id": 3, "first_name": "Carol", "last_name": "Williams", "major": "Physics"})
    );
}

#[test]
fn reading_an_absent_student_answers_json_404() {
    let db = TestDb::migrated();
    let client = client(&db);

    for uri in ["/students/999", "/students/0", "/students/-4"] {
        let (status, body) = get_json(&client, uri);
        assert_eq!(status, Status::NotFound, "{uri}");
        assert_eq!(body, json!({"detail": "Student not found"}), "{uri}");
    }
}

#[test]
fn creating_a_student_answers_201_with_its_location_and_stores_it_trimmed() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": "  Ada ", "last_name": "Lovelace\n", "major": "\tMathematics"}),
    );

    assert_eq!(response.status(), Status::Created);
    assert_eq!(response.headers().get_one("Location"), Some("/students/6"));
    let created: Value = response.into_json().unwrap();
    assert_eq!(
        fields(&created),
        json!({"id": 6, "first_name": "Ada", "last_name": "Lovelace", "major": "Mathematics"})
    );
    assert_eq!(created["created_at"], created["updated_at"]);
    let (_, stored) = get_json(&client, "/students/6");
    assert_eq!(stored, created);
}

#[test]
fn names_may_be_any_unicode_up_to_100_characters_however_many_bytes() {
    let db = TestDb::migrated();
    let client = client(&db);
    let long = "é".repeat(50) + &"😀".repeat(50);

    let response = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": long, "last_name": "Zoë O'Brien-Łukasz", "major": "日本文学"}),
    );

    assert_eq!(response.status(), Status::Created);
    let created: Value = response.into_json().unwrap();
    assert_eq!(created["first_name"], long.as_str());
    assert_eq!(created["major"], "日本文学");
}

#[test]
fn replacing_a_student_sets_every_field_and_advances_updated_at() {
    let db = TestDb::migrated();
    let client = client(&db);
    let (_, before) = get_json(&client, "/students/2");

    let response = send_json(
        &client,
        Method::Put,
        "/students/2",
        json!({"first_name": "Robert", "last_name": "Smyth", "major": "Statistics"}),
    );

    assert_eq!(response.status(), Status::Ok);
    let after: Value = response.into_json().unwrap();
    assert_eq!(
        fields(&after),
        json!({"id": 2, "first_name": "Robert", "last_name": "Smyth", "major": "Statistics"})
    );
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(after["updated_at"].as_str() > before["updated_at"].as_str());
    assert_eq!(get_json(&client, "/students/2").1, after);
}

#[test]
fn patching_a_student_changes_only_the_fields_sent() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = send_json(
        &client,
        Method::Patch,
        "/students/5",
        json!({"major": " Marine Biology "}),
    );

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(
        fields(&response.into_json::<Value>().unwrap()),
        json!({"id": 5, "first_name": "Eva", "last_name": "Davis", "major": "Marine Biology"})
    );
}

#[test]
fn patching_with_no_fields_changes_nothing_and_returns_the_student() {
    let db = TestDb::migrated();
    let client = client(&db);
    let (_, before) = get_json(&client, "/students/1");

    let response = send_json(&client, Method::Patch, "/students/1", json!({}));

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.into_json::<Value>().unwrap(), before);
}

#[test]
fn replacing_or_patching_an_absent_student_answers_404_and_creates_nothing() {
    let db = TestDb::migrated();
    let client = client(&db);
    let body = json!({"first_name": "No", "last_name": "One", "major": "None"});

    for method in [Method::Put, Method::Patch] {
        let response = send_json(&client, method, "/students/42", body.clone());
        assert_eq!(response.status(), Status::NotFound, "{method}");
        assert_eq!(
            response.into_json::<Value>().unwrap(),
            json!({"detail": "Student not found"})
        );
    }
    assert_eq!(
        get_json(&client, "/students").1.as_array().unwrap().len(),
        5
    );
}

#[test]
fn deleting_a_student_answers_204_and_then_it_is_gone() {
    let db = TestDb::migrated();
    let client = client(&db);

    let response = delete(&client, "/students/4");
    assert_eq!(response.status(), Status::NoContent);
    assert!(response.into_bytes().unwrap_or_default().is_empty());

    assert_eq!(get_json(&client, "/students/4").0, Status::NotFound);
    let again = delete(&client, "/students/4");
    assert_eq!(again.status(), Status::NotFound);
    assert_eq!(
        again.into_json::<Value>().unwrap(),
        json!({"detail": "Student not found"})
    );
}

#[test]
fn a_json_content_type_with_a_charset_or_a_json_suffix_is_accepted() {
    let db = TestDb::migrated();
    let client = client(&db);

    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let response = client
            .patch("/students/1")
            .header(bearer(&client))
            .header(Header::new("Content-Type", content_type))
            .body(r#"{"major": "Art"}"#)
            .dispatch();
        assert_eq!(response.status(), Status::Ok, "{content_type}");
    }
}

#[test]
fn the_database_rejects_rows_that_break_the_rules_from_any_writer() {
    let db = TestDb::migrated();
    let _client = client(&db);
    let mut conn = db.connect();

    for (first_name, why) in [
        ("' Ada'", "leading space"),
        ("'Ada\u{3000}'", "trailing ideographic space"),
        ("''", "empty"),
        ("repeat('x', 101)", "101 characters"),
    ] {
        let result = diesel::sql_query(format!(
            "INSERT INTO student (first_name, last_name, major) VALUES ({first_name}, 'L', 'M')"
        ))
        .execute(&mut conn);
        let err = result.expect_err(why).to_string();
        assert!(err.contains("student_first_name_check"), "{why}: {err}");
    }
    diesel::sql_query(
        "INSERT INTO student (first_name, last_name, major) \
         VALUES (repeat('é', 100), 'Multi\nLine', 'M')",
    )
    .execute(&mut conn)
    .expect("100 characters and inner whitespace are fine");
}

#[test]
fn an_email_is_optional_stored_trimmed_and_null_when_absent() {
    let db = TestDb::migrated();
    let client = client(&db);

    let (_, seeded) = get_json(&client, "/students/1");
    assert_eq!(seeded["email"], Value::Null);
    let with = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": "Ada", "last_name": "L", "major": "M", "email": " ada@example.org\n"}),
    );
    assert_eq!(with.status(), Status::Created);
    assert_eq!(
        with.into_json::<Value>().unwrap()["email"],
        "ada@example.org"
    );
    let null = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": "Bo", "last_name": "L", "major": "M", "email": null}),
    );
    assert_eq!(null.status(), Status::Created);
    assert_eq!(null.into_json::<Value>().unwrap()["email"], Value::Null);

    let (_, page) = get_json(&client, "/students?after_id=5");
    let emails: Vec<&Value> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["email"])
        .collect();
    assert_eq!(emails, [&json!("ada@example.org"), &Value::Null]);
}

#[test]
fn patch_keeps_an_absent_email_and_clears_a_null_one_and_put_without_one_removes_it() {
    let db = TestDb::migrated();
    let client = client(&db);
    let patch = |body: Value| {
        let response = send_json(&client, Method::Patch, "/students/3", body);
        assert_eq!(response.status(), Status::Ok);
        response.into_json::<Value>().unwrap()["email"].clone()
    };

    assert_eq!(patch(json!({"email": "c@example.org"})), "c@example.org");
    assert_eq!(patch(json!({"major": "Art"})), "c@example.org");
    assert_eq!(patch(json!({"email": null})), Value::Null);
    assert_eq!(patch(json!({"email": "c@example.org"})), "c@example.org");

    let response = send_json(
        &client,
        Method::Put,
        "/students/3",
        json!({"first_name": "C", "last_name": "L", "major": "M"}),
    );
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(get_json(&client, "/students/3").1["email"], Value::Null);
}

/// The API's rule (`Email`) and the table's `student_email_check` must accept the same
/// addresses, or a write the API accepted fails in the database, or another writer stores one
/// the API would refuse.
#[test]
fn the_api_and_the_database_accept_the_same_emails() {
    let db = TestDb::migrated();
    let client = client(&db);
    let mut conn = db.connect();
    let max_local = "l".repeat(64);
    let candidates = [
        "a@b.c",
        "ALICE.Johnson+tag@example.edu",
        "ü@ö.de",
        "a@b..c",
        "a\u{200b}@b.c",
        "a\u{1}@b.c",
        ".@a.b",
        "\u{3000}a@b.c\u{2028}",
        &format!("{max_local}@b.c"),
        &format!("{max_local}l@b.c"),
        &format!("a@{}.c", "b".repeat(250)),
        &format!("a@{}.c", "b".repeat(251)),
        "a@.b",
        "a@b.",
        ".@..",
        "@b.c",
        "a@",
        "a",
        "",
        "a@b@c.d",
        "a b@c.d",
        "a\u{85}b@c.d",
        "a\u{a0}b@c.d",
        "a@b\tc.d",
    ];
    for candidate in candidates {
        let api = send_json(
            &client,
            Method::Post,
            "/students",
            json!({"first_name": "A", "last_name": "B", "major": "C", "email": candidate}),
        )
        .status();
        assert!(
            api == Status::Created || api == Status::UnprocessableEntity,
            "{candidate:?}: {api}"
        );
        let database = diesel::sql_query(
            "INSERT INTO student (first_name, last_name, major, email) VALUES ('A', 'B', 'C', $1)",
        )
        .bind::<diesel::sql_types::Text, _>(candidate.trim())
        .execute(&mut conn);
        if let Err(err) = &database {
            assert!(err.to_string().contains("student_email_check"), "{err}");
        }
        assert_eq!(
            api == Status::Created,
            database.is_ok(),
            "{candidate:?}: the API answers {api}, the database {database:?}"
        );
    }
}
