//! The OpenAPI document at `/api/v1/openapi.json`: that it is a valid
//! OpenAPI 3.1 document, and that it lists exactly what the router serves.
//!
//! Completeness is checked in two halves, because axum cannot list a
//! router's routes:
//! 1. **Paths.** The router is built only from `.route("<literal>", ..)`
//!    calls in `control-plane/src` (the scan refuses `nest`, `route_service`,
//!    `nest_service` and non-literal paths, so nothing can hide from it).
//!    The set of those literals must equal the document's set of paths.
//! 2. **Methods.** For every documented path, each of GET, POST, PUT, PATCH
//!    and DELETE is sent to the real router with no credentials. axum
//!    answers 405 for a method the path does not serve, and its fallback
//!    answers 404 with an empty body for a path it does not know; anything
//!    else means the handler ran. So "served" must equal "documented" for
//!    every path and method.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use serde_json::Value;

use crate::databases::{Engine, TestDb};
use crate::router::call;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Fetches the document through the router, as clients do.
async fn served_document(router: &axum::Router) -> (Value, String) {
    let answer = call(router, Method::GET, "/api/v1/openapi.json", None, &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers["content-type"].to_str().ok(),
        Some("application/json")
    );
    let text = answer.body.to_string();
    (answer.body, text)
}

/// Every `.route(...)` path literal in the crate's sources.
fn source_route_paths() -> BTreeSet<String> {
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut paths = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for banned in [".nest(", ".nest_service(", ".route_service(", ".fallback("] {
            assert!(
                !text.contains(banned),
                "{}: {banned} hides routes from the openapi completeness check; \
                 extend tests/it/openapi.rs first",
                file.display()
            );
        }
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + ".route(".len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"') {
                let end = literal.find('"').expect("closing quote");
                paths.insert(literal[..end].to_owned());
            } else if rest.starts_with("crate::openapi::OPENAPI_PATH") {
                paths.insert(control_plane::http::openapi::OPENAPI_PATH.to_owned());
            } else {
                panic!(
                    "{}: a route whose path is not a string literal: {}",
                    file.display(),
                    &rest[..rest.len().min(60)]
                );
            }
        }
    }
    paths
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cp = db.open().await;
    let router = control_plane::http::router(cp.clone());
    let (document, _) = served_document(&router).await;
    let documented: BTreeMap<String, BTreeSet<String>> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .map(|m| m.to_uppercase())
                .filter(|m| METHODS.contains(&m.as_str()))
                .collect();
            (path.clone(), methods)
        })
        .collect();

    // Half 1: the paths.
    let in_source = source_route_paths();
    let in_document: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        in_source.difference(&in_document).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes the document lacks (add them to control_plane::http::openapi::operations)"
    );
    assert_eq!(
        in_document.difference(&in_source).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths no route serves"
    );
    assert!(in_source.len() >= 40, "the scan found too few routes");

    // Half 2: the methods of each path, probed on the real router.
    let mut mismatches = Vec::new();
    for (path, methods) in &documented {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "probe" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let answer = call(
                &router,
                Method::from_bytes(method.as_bytes()).expect("method"),
                &concrete,
                None,
                &[],
                None,
            )
            .await;
            // A route's own 404 has a body: JSON, or a page (the public catalogue).
            let page = answer
                .headers
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            let unrouted =
                answer.status == 405 || (answer.status == 404 && answer.body.is_null() && !page);
            if unrouted == methods.contains(method) {
                mismatches.push(format!(
                    "{method} {path}: documented {}, router answered {}",
                    methods.contains(method),
                    answer.status
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    db.cleanup(vec![cp]).await;
}

/// Every `"$ref"` string anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cp = db.open().await;
    let router = control_plane::http::router(cp.clone());
    let (document, text) = served_document(&router).await;

    // A copy for outside validators and viewers.
    let copy = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json");
    std::fs::write(&copy, &text).expect("write the document's copy");

    // It parses as an OpenAPI 3.1 document.
    let spec = oas3::from_json(&text).expect("parses as OpenAPI 3.1");
    spec.validate_version()
        .expect("a supported OpenAPI version");
    assert!(spec.openapi.starts_with("3.1"), "{}", spec.openapi);

    // Every reference resolves.
    let mut targets = Vec::new();
    refs(&document, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external reference {target}"));
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }

    // Operations: unique ids, a success answer, errors in the one error
    // shape, every path parameter declared, security schemes that exist.
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = BTreeSet::new();
    let mut count = 0;
    for (path, method, operation) in spec.operations() {
        count += 1;
        let at = format!("{method} {path}");
        let id = operation.operation_id.clone().expect(&at);
        assert!(
            ids.insert(id.clone()),
            "{at}: operation id {id} is used twice"
        );
        let raw = &document["paths"][&path][method.as_str().to_lowercase()];
        let responses = raw["responses"].as_object().expect(&at);
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{at}: no success answer"
        );
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') || status == "default" {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{at} {status}"
                );
            }
        }
        let declared: BTreeSet<&str> = raw["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, in_template, "{at}: path parameters");
        for requirement in raw["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().expect(&at).keys() {
                assert!(schemes.contains_key(scheme), "{at}: scheme {scheme}");
            }
        }
        // Lists page with limit and after.
        if let Some(schema) =
            raw["responses"]["200"]["content"]["application/json"]["schema"].as_object()
        {
            if schema
                .get("properties")
                .is_some_and(|p| p.get("next_after").is_some())
            {
                let names: BTreeSet<&str> = raw["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                if path != "/api/v1/billing/plans" {
                    assert!(
                        names.contains("limit") && names.contains("after"),
                        "{at}: a page without limit and after"
                    );
                }
            }
        }
    }
    assert_eq!(count, control_plane::http::openapi::operations().len());

    // The error codes in the document are the closed set the server uses.
    let codes = &document["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(
        codes
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "not_found")),
        "{codes}"
    );
    db.cleanup(vec![cp]).await;
}

/// An error answer carries a code the document lists.
#[tokio::test]
async fn error_answers_use_codes_the_document_lists() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cp = db.open().await;
    let router = control_plane::http::router(cp.clone());
    let (document, _) = served_document(&router).await;
    let answer = call(&router, Method::GET, "/api/v1/me", None, &[], None).await;
    assert_eq!(answer.status, 401);
    let code = &answer.body["error"]["code"];
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("codes");
    assert!(codes.contains(code), "{code} not in {codes:?}");
    assert!(answer.body["error"]["message"].is_string());
    // The document lists exactly the codes any process can answer: the
    // one ErrorCode enum every route (control plane and edges) answers with.
    let every: Vec<Value> = control_plane::error::ErrorCode::ALL
        .iter()
        .map(|c| serde_json::json!(c.as_str()))
        .collect();
    assert_eq!(codes, &every);
    db.cleanup(vec![cp]).await;
}
