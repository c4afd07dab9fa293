//! `enrolled_on`: optional on POST (today in UTC), kept by a PUT without it, changed by PATCH, in
//! every response, and answered as the creation day for a row the backfill has not reached.

use chrono::Utc;
use diesel::RunQueryDsl;
use diesel::sql_types::{Date, Integer};
use rocket::http::{Method, Status};
use serde_json::{Value, json};

use crate::helpers::{FILES, TestDb, client, get_json, revert_through, send_json};

fn day_of(student: &Value) -> &str {
    student["enrolled_on"]
        .as_str()
        .expect("enrolled_on is a string")
}

#[test]
fn a_post_without_enrolled_on_gets_today_in_utc_and_one_with_it_keeps_it() {
    let db = TestDb::migrated();
    let client = client(&db);

    let before = Utc::now().date_naive().to_string();
    let response = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": "Ada", "last_name": "L", "major": "M"}),
    );
    let after = Utc::now().date_naive().to_string();
    assert_eq!(response.status(), Status::Created);
    let created: Value = response.into_json().unwrap();
    // Either side of a midnight the request may have crossed.
    assert!(
        [&before, &after].contains(&&day_of(&created).to_owned()),
        "{created}"
    );

    let response = send_json(
        &client,
        Method::Post,
        "/students",
        json!({"first_name": "Bo", "last_name": "L", "major": "M", "enrolled_on": "1999-09-01"}),
    );
    assert_eq!(response.status(), Status::Created);
    let id = response.into_json::<Value>().unwrap()["id"].clone();
    let (status, stored) = get_json(&client, &format!("/students/{id}"));
    assert_eq!(status, Status::Ok);
    assert_eq!(day_of(&stored), "1999-09-01");
    let (_, page) = get_json(&client, "/students?limit=1000");
    assert!(
        (page.as_array().unwrap().iter()).all(|student| student["enrolled_on"].is_string()),
        "{page}"
    );
}

#[test]
fn put_keeps_enrolled_on_when_it_is_absent_and_patch_changes_only_what_it_sends() {
    let db = TestDb::migrated();
    let client = client(&db);
    let send = |method, body: Value| {
        let response = send_json(&client, method, "/students/2", body);
        assert_eq!(response.status(), Status::Ok);
        response.into_json::<Value>().unwrap()
    };

    let patched = send(Method::Patch, json!({"enrolled_on": "2021-01-31"}));
    assert_eq!(day_of(&patched), "2021-01-31");
    assert_eq!(patched["major"], "Mathematics");
    let patched = send(Method::Patch, json!({"major": "Art"}));
    assert_eq!(day_of(&patched), "2021-01-31");
    // A PUT written before the field existed must not lose it.
    let replaced = send(
        Method::Put,
        json!({"first_name": "B", "last_name": "S", "major": "M"}),
    );
    assert_eq!(day_of(&replaced), "2021-01-31");
    let replaced = send(
        Method::Put,
        json!({"first_name": "B", "last_name": "S", "major": "M", "enrolled_on": "2020-02-29"}),
    );
    assert_eq!(day_of(&replaced), "2020-02-29");
    assert_eq!(day_of(&get_json(&client, "/students/2").1), "2020-02-29");
}

#[derive(diesel::QueryableByName)]
struct Stored {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<Date>)]
    enrolled_on: Option<chrono::NaiveDate>,
}

/// Between the expand step and the end of the backfill, old rows hold NULL. The answer for such a
/// row is the day it was created in UTC, the backfill's own value, so a client sees no change when
/// the backfill reaches it, even with a session TimeZone far from UTC.
#[test]
fn a_row_the_backfill_has_not_reached_answers_its_creation_day_in_utc_before_and_after() {
    let db = TestDb::migrated();
    let client = client(&db);
    let mut conn = db.connect();
    revert_through(&mut conn, "_index_student_enrolled_on_missing");
    // 23:30 in New York on 4 March is 04:30 UTC on 5 March.
    diesel::sql_query(
        "UPDATE student SET enrolled_on = NULL, created_at = '2020-03-04 23:30:00-05' WHERE id <= 3",
    )
    .execute(&mut conn)
    .unwrap();

    let answered = |client: &rocket::local::blocking::Client| {
        let (status, page) = get_json(client, "/students?limit=3");
        assert_eq!(status, Status::Ok);
        let days: Vec<String> = (page.as_array().unwrap().iter())
            .map(|student| day_of(student).to_owned())
            .collect();
        days
    };
    assert_eq!(answered(&client), ["2020-03-05"; 3]);
    assert_eq!(day_of(&get_json(&client, "/students/1").1), "2020-03-05");
    let patched = send_json(
        &client,
        Method::Patch,
        "/students/2",
        json!({"major": "Art"}),
    );
    assert_eq!(day_of(&patched.into_json::<Value>().unwrap()), "2020-03-05");

    // The backfill in a session whose day is already 6 March at 04:30 UTC on the 5th.
    diesel::sql_query("SET TIME ZONE 'Pacific/Kiritimati'")
        .execute(&mut conn)
        .unwrap();
    let backfill = FILES
        .iter()
        .find(|migration| migration.name.ends_with("_backfill_student_enrolled_on"))
        .unwrap();
    while diesel::sql_query(backfill.up).execute(&mut conn).unwrap() > 0 {}
    let stored: Vec<Stored> =
        diesel::sql_query("SELECT id, enrolled_on FROM student WHERE id <= 3 ORDER BY id")
            .load(&mut conn)
            .unwrap();
    for row in &stored {
        assert_eq!(
            row.enrolled_on.map(|day| day.to_string()).as_deref(),
            Some("2020-03-05"),
            "student {}",
            row.id
        );
    }
    assert_eq!(answered(&client), ["2020-03-05"; 3]);
}
