//! `/openapi.json` describes every route the service mounts, and `/docs` serves Swagger UI from
//! the binary itself.

use std::collections::BTreeSet;

use expect_test::expect_file;
use rocket::http::{ContentType, Status};
use serde_json::Value;
use utoipa::OpenApi;

use crate::helpers::{TestDb, client};

/// Routes that serve the documentation itself rather than the API.
fn is_documentation(path: &str) -> bool {
    path == "/openapi.json" || path.starts_with("/docs")
}

#[test]
fn the_openapi_document_lists_every_mounted_route_and_nothing_else() {
    let db = TestDb::migrated();
    let client = client(&db);

    let document: Value = client.get("/openapi.json").dispatch().into_json().unwrap();

    assert_eq!(document["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let mounted: BTreeSet<(String, String)> = client
        .rocket()
        .routes()
        // They answer only requests refused before routing, on every path.
        .filter(|route| !students_api::http::is_refusal(route))
        .map(|route| {
            // Rocket writes `<id>` where OpenAPI writes `{id}`.
            let path = route.uri.path().replace('<', "{").replace('>', "}");
            (route.method.as_str().to_owned(), path)
        })
        .filter(|(_, path)| !is_documentation(path))
        .collect();
    assert_eq!(documented, mounted);
}

#[test]
fn every_operation_documents_its_error_responses() {
    let db = TestDb::migrated();
    let client = client(&db);
    let document: Value = client.get("/openapi.json").dispatch().into_json().unwrap();

    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            // /metrics leaves the schema's version out, rather than fail, without a database.
            let touches_database = path != "/health" && path != "/metrics";
            if touches_database {
                assert!(responses.contains_key("503"), "{method} {path}");
            }
            if path.contains("{id}") {
                assert!(responses.contains_key("404"), "{method} {path}");
                assert!(responses.contains_key("422"), "{method} {path}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
}

#[test]
fn swagger_ui_is_served_from_the_binary_at_docs() {
    let db = TestDb::migrated();
    let client = client(&db);

    // Followed as a browser follows it, so that a redirect to itself fails here.
    let mut uri = "/docs".to_owned();
    let mut hops = 0;
    let page = loop {
        let response = client.get(uri.clone()).dispatch();
        if !response.status().class().is_redirection() {
            break response;
        }
        let location = response.headers().get_one("Location").expect("a Location");
        assert_ne!(location, uri, "/docs redirects to itself");
        uri = location.to_owned();
        hops += 1;
        assert!(hops < 5, "/docs redirects {hops} times");
    };
    assert_eq!(uri, "/docs/");
    assert_eq!(page.status(), Status::Ok);
    assert_eq!(page.content_type(), Some(ContentType::HTML));
    assert!(page.into_string().unwrap().contains("swagger-ui"));

    let initializer = client.get("/docs/swagger-initializer.js").dispatch();
    assert!(initializer.into_string().unwrap().contains("/openapi.json"));
    let bundle = client.get("/docs/swagger-ui-bundle.js").dispatch();
    assert_eq!(bundle.status(), Status::Ok);
    assert!(bundle.into_bytes().unwrap().len() > 100_000);

    let missing = client.get("/docs/no-such-file.js").dispatch();
    assert_eq!(missing.status(), Status::NotFound);
}

/// The API contract is versioned with the code: `openapi.json` at the repository root is the
/// document the service serves, byte for byte, so every change to what clients see shows in
/// review as a change to that file, next to the tests that changed with it. When it fails,
/// review the difference, raise the version in `Cargo.toml` when clients can see it (utoipa reads
/// it from there), then write the file anew with `UPDATE_EXPECT=1 scripts/test.sh openapi`.
#[test]
fn the_committed_openapi_json_is_the_document_the_service_serves() {
    let served = students_api::openapi::ApiDoc::openapi();
    let version = serde_json::to_value(&served).unwrap()["info"]["version"].clone();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    expect_file!["../../openapi.json"].assert_eq(&(served.to_pretty_json().unwrap() + "\n"));
}
