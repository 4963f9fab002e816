//! JSON calls to Lyceum's own HTTP API from the command-line tools that
//! drive a running cluster (`lyceum load`, `lyceum chaos run`): one way to
//! send a request and turn a non-2xx answer into an error that names the
//! call, its status and the body, and the few content steps both tools
//! need (a course, a published live class). Not for the processes
//! themselves, which have their own typed clients.

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

async fn answer(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

/// `GET url`, with a bearer token when given; the JSON answer.
///
/// # Errors
/// When the request fails or the answer is not 2xx.
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let what = format!("GET {url}");
    answer(request.send().await.with_context(|| what.clone())?, &what).await
}

/// `POST url` with a JSON body, with a bearer token when given; the JSON
/// answer.
///
/// # Errors
/// When the request fails or the answer is not 2xx.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let what = format!("POST {url}");
    answer(request.send().await.with_context(|| what.clone())?, &what).await
}

/// The `id` (or `course_id`) of an answer.
///
/// # Errors
/// When it has none.
pub fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .or_else(|| v["course_id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("an id in {v}"))
}

/// A fresh course with one module, made by `instructor`; their ids.
///
/// # Errors
/// When the control plane refuses.
pub async fn course_with_module(
    http: &reqwest::Client,
    cp: &str,
    instructor: &str,
    title: &str,
    summary: &str,
) -> anyhow::Result<(String, String)> {
    let course = post_json(
        http,
        &format!("{cp}/api/v1/courses"),
        Some(instructor),
        &json!({"title": title, "summary": summary}),
    )
    .await?;
    let course = id_of(&course)?;
    let module = post_json(
        http,
        &format!("{cp}/api/v1/courses/{course}/modules"),
        Some(instructor),
        &json!({"title": "Live"}),
    )
    .await?;
    Ok((course, id_of(&module)?))
}

/// A published live-classroom unit in `module`, homed in `region`; its id
/// (the class id).
///
/// # Errors
/// When the control plane refuses.
pub async fn live_class(
    http: &reqwest::Client,
    cp: &str,
    instructor: &str,
    module: &str,
    title: &str,
    region: &str,
) -> anyhow::Result<String> {
    let unit = post_json(
        http,
        &format!("{cp}/api/v1/modules/{module}/units"),
        Some(instructor),
        &json!({"kind": "live_classroom", "title": title, "body": {
            "schedule": {"starts_at": "2026-12-01T17:00:00Z", "duration_minutes": 60},
            "cohort": "tools", "region": region}}),
    )
    .await?;
    let unit = id_of(&unit)?;
    post_json(
        http,
        &format!("{cp}/api/v1/units/{unit}/publish"),
        Some(instructor),
        &json!({}),
    )
    .await?;
    Ok(unit)
}
