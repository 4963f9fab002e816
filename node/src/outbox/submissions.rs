//! How submission reports travel: in batches to the control plane's
//! `POST /api/v1/submissions/batch`, or alone to `POST /api/v1/submissions`
//! when a batch cannot be read (one bad report, or a control plane older
//! than the batch route).

use control_plane::submissions::{BatchOutcome, BatchResults, SubmissionReport};

use super::{error_code, single_verdict, Attempt, Transport, Verdict};

/// The submission routes of one control plane.
#[derive(Debug, Clone)]
pub struct Submissions {
    /// HTTP client with the control plane timeout.
    pub client: reqwest::Client,
    /// The control plane's base URL.
    pub control_plane_url: String,
    /// Its `edge_service_key`.
    pub service_key: String,
    /// The link as fault injection sees it.
    pub link: crate::control_plane_link::ControlPlaneLink,
}

impl Submissions {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.control_plane_url.trim_end_matches('/'))
    }
}

/// What the batch route's answer says of `sent`.
fn read_batch(sent: &[&SubmissionReport], status: reqwest::StatusCode, body: &str) -> Attempt {
    use reqwest::StatusCode;
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Attempt::TooLarge;
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        // A control plane from before the batch route (a rolling upgrade).
        return Attempt::Unreadable;
    }
    if status == StatusCode::BAD_REQUEST {
        return if error_code(body).as_deref() == Some("batch_size") {
            Attempt::TooLarge
        } else {
            Attempt::Unreadable
        };
    }
    if !status.is_success() {
        return Attempt::Retry(format!("HTTP {status}: {body}"));
    }
    let parsed: BatchResults = match serde_json::from_str(body) {
        Ok(parsed) => parsed,
        Err(err) => return Attempt::Retry(format!("unreadable batch answer: {err}")),
    };
    let matches = parsed.results.len() == sent.len()
        && parsed
            .results
            .iter()
            .zip(sent)
            .all(|(result, report)| result.submission_id == report.submission_id);
    if !matches {
        return Attempt::Retry(format!(
            "the batch answer does not match the {} reports sent",
            sent.len()
        ));
    }
    Attempt::Verdicts(
        parsed
            .results
            .into_iter()
            .map(|result| match result.outcome {
                BatchOutcome::Created | BatchOutcome::Existing => Verdict::Recorded,
                BatchOutcome::Refused => Verdict::Refused(result.error.map_or_else(
                    || "refused without a reason".to_owned(),
                    |e| format!("{}: {}", e.code.as_str(), e.message),
                )),
            })
            .collect(),
    )
}

impl Transport<SubmissionReport> for Submissions {
    async fn send(&self, items: &[&SubmissionReport]) -> Attempt {
        if let Err(cut) = self.link.check().await {
            return Attempt::Retry(cut);
        }
        let answer = self
            .client
            .post(self.url("/api/v1/submissions/batch"))
            .bearer_auth(&self.service_key)
            .json(&serde_json::json!({ "submissions": items }))
            .send()
            .await;
        match answer {
            Ok(answer) => {
                let status = answer.status();
                let body = answer.text().await.unwrap_or_default();
                read_batch(items, status, &body)
            }
            Err(err) => Attempt::Retry(err.to_string()),
        }
    }

    async fn send_one(&self, item: &SubmissionReport) -> Attempt {
        if let Err(cut) = self.link.check().await {
            return Attempt::Retry(cut);
        }
        let answer = self
            .client
            .post(self.url("/api/v1/submissions"))
            .bearer_auth(&self.service_key)
            .json(item)
            .send()
            .await;
        single_verdict(answer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn report(id: &str) -> SubmissionReport {
        SubmissionReport {
            kind: "submission".into(),
            submission_id: id.into(),
            user_id: "u".into(),
            tenant_id: "t".into(),
            language: "python".into(),
            status: "accepted".into(),
            region: "eu-west".into(),
            finished_at: "2026-12-07T00:00:00Z".into(),
            unit_id: None,
            unit_version: None,
            question_id: None,
            tests_passed: None,
            tests_total: None,
        }
    }

    #[test]
    fn batch_answers_are_read_item_by_item_and_checked_against_what_was_sent() {
        let (a, b) = (report("a"), report("b"));
        let sent = [&a, &b];
        let ok = r#"{"results":[{"submission_id":"a","outcome":"created"},
            {"submission_id":"b","outcome":"refused","error":{"code":"unknown_member","message":"m"}}]}"#;
        match read_batch(&sent, StatusCode::OK, ok) {
            Attempt::Verdicts(v) => {
                assert_eq!(v[0], Verdict::Recorded);
                assert!(matches!(&v[1], Verdict::Refused(why) if why == "unknown_member: m"));
            }
            other => panic!("{other:?}"),
        }
        let swapped = r#"{"results":[{"submission_id":"b","outcome":"created"},{"submission_id":"a","outcome":"created"}]}"#;
        assert!(matches!(
            read_batch(&sent, StatusCode::OK, swapped),
            Attempt::Retry(_)
        ));
        let short = r#"{"results":[{"submission_id":"a","outcome":"created"}]}"#;
        assert!(matches!(
            read_batch(&sent, StatusCode::OK, short),
            Attempt::Retry(_)
        ));
        let size = r#"{"error":{"code":"batch_size","message":"at most 1"}}"#;
        assert!(matches!(
            read_batch(&sent, StatusCode::BAD_REQUEST, size),
            Attempt::TooLarge
        ));
        assert!(matches!(
            read_batch(&sent, StatusCode::PAYLOAD_TOO_LARGE, ""),
            Attempt::TooLarge
        ));
        let bad = r#"{"error":{"code":"bad_request","message":"x"}}"#;
        assert!(matches!(
            read_batch(&sent, StatusCode::BAD_REQUEST, bad),
            Attempt::Unreadable
        ));
        assert!(matches!(
            read_batch(&sent, StatusCode::NOT_FOUND, ""),
            Attempt::Unreadable
        ));
        assert!(matches!(
            read_batch(&sent, StatusCode::UNAUTHORIZED, ""),
            Attempt::Retry(_)
        ));
        assert!(matches!(
            read_batch(&sent, StatusCode::SERVICE_UNAVAILABLE, ""),
            Attempt::Retry(_)
        ));
    }
}
