//! `GET /students` over a freshly migrated database.

mod common;

use common::{TestDb, client};
use rocket::http::{ContentType, Status};
use serde_json::{Value, json};

#[test]
fn listing_students_on_a_fresh_database_returns_the_five_seeded_students_in_id_order() {
    let db = TestDb::new();
    let client = client(&db);

    let response = client.get("/students").dispatch();

    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(
        response.into_json::<Value>().unwrap(),
        json!([
            {"id": 1, "first_name": "Alice", "last_name": "Johnson", "major": "Computer Science"},
            {"id": 2, "first_name": "Bob", "last_name": "Smith", "major": "Mathematics"},
            {"id": 3, "first_name": "Carol", "last_name": "Williams", "major": "Physics"},
            {"id": 4, "first_name": "David", "last_name": "Brown", "major": "Computer Science"},
            {"id": 5, "first_name": "Eva", "last_name": "Davis", "major": "Biology"},
        ])
    );
}

#[test]
fn students_added_later_are_listed_after_the_seed_in_id_order() {
    use diesel::RunQueryDsl;
    let db = TestDb::new();
    let client = client(&db);
    diesel::sql_query(
        "INSERT INTO student (first_name, last_name, major) \
         VALUES ('Zed', 'Last', 'Art'), ('Amy', 'First', 'Law')",
    )
    .execute(&mut db.connect())
    .unwrap();

    let students: Vec<Value> = client.get("/students").dispatch().into_json().unwrap();

    let ids: Vec<i64> = students.iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(students[5]["first_name"], "Zed");
}
