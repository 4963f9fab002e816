//! The stale-while-revalidate cache in front of the catalogue and course
//! pages: through the router on both engines (tenant-scoped keys, so one
//! tenant never sees another's answer; a write in this process shows at
//! once), and the cache itself (fresh, stale with one background refresh,
//! one load per cold key under a burst, bounded, off at 0, failures not
//! cached), plus its settings at their edges.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::Method;
use control_plane::http::cache::SwrCache;
use control_plane::tokens::{self, Role};
use control_plane::{identity, ControlPlane, ControlPlaneConfig};
use serde_json::{json, Value};

use crate::content::Api;
use crate::databases::{TestDb, ENGINES};

fn token(cp: &ControlPlane, tenant: &str, role: Role) -> String {
    tokens::issue(
        cp.keys(),
        &format!("user-{tenant}-{}", role.as_str()),
        tenant,
        role,
        "x@y.test",
        600,
    )
    .expect("token")
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["title"].as_str().expect("title").to_owned())
        .collect()
}

#[tokio::test]
async fn cached_reads_stay_in_their_tenant_and_see_writes_at_once() {
    for engine in ENGINES {
        let mut db = TestDb::new(engine).await;
        // Long windows: only invalidation can make a change show.
        db.config.content_cache_fresh_ms = 600_000;
        db.config.content_cache_stale_ms = 600_000;
        let cp = db.open().await;
        let api = Api::new(&cp);
        let a = identity::ensure_tenant(cp.db(), "a", "A").await.expect("a");
        let b = identity::ensure_tenant(cp.db(), "b", "B").await.expect("b");
        let (author_a, learner_a) = (
            token(&cp, &a, Role::Instructor),
            token(&cp, &a, Role::Learner),
        );
        let (author_b, learner_b) = (
            token(&cp, &b, Role::Instructor),
            token(&cp, &b, Role::Learner),
        );
        let course_a = api
            .ok(
                Method::POST,
                "/api/v1/courses",
                &author_a,
                Some(&json!({"title": "A one"})),
                201,
            )
            .await;
        api.ok(
            Method::POST,
            "/api/v1/courses",
            &author_b,
            Some(&json!({"title": "B one"})),
            201,
        )
        .await;
        // Same request, different tenants: each its own answer, every time.
        for _ in 0..3 {
            let page = api
                .ok(Method::GET, "/api/v1/courses", &learner_a, None, 200)
                .await;
            assert_eq!(titles(&page), ["A one"], "{engine:?}");
            let page = api
                .ok(Method::GET, "/api/v1/courses", &learner_b, None, 200)
                .await;
            assert_eq!(titles(&page), ["B one"], "{engine:?}");
        }
        let path_a = format!("/api/v1/courses/{}", course_a["id"].as_str().expect("id"));
        let read = api.ok(Method::GET, &path_a, &learner_a, None, 200).await;
        assert_eq!(read["title"], "A one");
        // A's course page is cached now; B still gets 404, not A's data.
        assert_eq!(api.get(&path_a, &learner_b).await.0, 404, "{engine:?}");
        assert_eq!(api.get(&path_a, &author_b).await.0, 404, "{engine:?}");
        assert!(!cp.content_cache().is_empty());
        // A write in this process shows at once, in its tenant only.
        api.ok(
            Method::POST,
            "/api/v1/courses",
            &author_a,
            Some(&json!({"title": "A two"})),
            201,
        )
        .await;
        let page = api
            .ok(Method::GET, "/api/v1/courses", &learner_a, None, 200)
            .await;
        assert_eq!(titles(&page), ["A one", "A two"], "{engine:?}");
        let page = api
            .ok(Method::GET, "/api/v1/courses", &learner_b, None, 200)
            .await;
        assert_eq!(titles(&page), ["B one"], "{engine:?}");
        // Pages are keyed by their query too.
        let page = api
            .ok(
                Method::GET,
                "/api/v1/courses?limit=1",
                &learner_a,
                None,
                200,
            )
            .await;
        assert_eq!(titles(&page), ["A one"]);
        assert!(page["next_after"].is_string());
        db.cleanup(vec![cp]).await;
    }
}

fn counting_loader(
    loads: &Arc<AtomicUsize>,
    delay_ms: u64,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, String>> + Send>>
       + Send
       + Sync
       + 'static {
    let loads = loads.clone();
    move || {
        let loads = loads.clone();
        Box::pin(async move {
            let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Ok(Bytes::from(format!("v{n}")))
        })
    }
}

// Paused time: the fresh window, the stale reads and the refresh happen at
// exact instants, however loaded the machine is.
#[tokio::test(start_paused = true)]
async fn the_cache_serves_fresh_then_stale_and_refreshes_once() {
    let cache = SwrCache::new(10, 100, 60_000);
    let loads = Arc::new(AtomicUsize::new(0));
    let get = || cache.get_or_load("t", "k", counting_loader(&loads, 20));
    assert_eq!(get().await.expect("load"), "v1");
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_eq!(get().await.expect("fresh"), "v1");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "still fresh at 99 ms");
    tokio::time::advance(Duration::from_millis(2)).await;
    // Stale: answered at once with the old body, many readers, one refresh.
    for _ in 0..20 {
        assert_eq!(get().await.expect("stale"), "v1");
    }
    // The refresh's load takes 20 ms of (paused) time.
    tokio::time::sleep(Duration::from_millis(21)).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "one refresh for twenty stale reads"
    );
    assert_eq!(get().await.expect("refreshed"), "v2");
    // Invalidation drops the tenant's answers: the next read loads.
    cache.invalidate("t");
    assert_eq!(get().await.expect("reload"), "v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_a_cold_key_loads_it_once() {
    let cache = SwrCache::new(10, 60_000, 60_000);
    let loads = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..50 {
        let (cache, loader) = (cache.clone(), counting_loader(&loads, 100));
        handles.push(tokio::spawn(async move {
            cache.get_or_load("t", "cold", loader).await
        }));
    }
    for handle in handles {
        assert_eq!(handle.await.expect("task").expect("load"), "v1");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "no thundering herd");
    // Other tenants, same resource: their own load.
    assert_eq!(
        cache
            .get_or_load("u", "cold", counting_loader(&loads, 0))
            .await
            .expect("other tenant"),
        "v2"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_off_at_zero_and_never_keeps_failures() {
    let cache = SwrCache::new(2, 60_000, 60_000);
    let loads = Arc::new(AtomicUsize::new(0));
    for key in ["a", "b", "c"] {
        cache
            .get_or_load("t", key, counting_loader(&loads, 0))
            .await
            .expect("load");
    }
    assert_eq!(cache.len(), 2, "content_cache_entries_max holds");
    let failing = cache
        .get_or_load("t", "bad", || async { Err::<Bytes, _>("no such course") })
        .await;
    assert_eq!(failing, Err("no such course"));
    assert_eq!(cache.len(), 2, "a failure is not cached");
    // The edge: one entry still caches.
    let one = SwrCache::new(1, 60_000, 60_000);
    let loads = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        one.get_or_load("t", "k", counting_loader(&loads, 0))
            .await
            .expect("load");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let off = SwrCache::new(0, 60_000, 60_000);
    let loads = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        off.get_or_load("t", "k", counting_loader(&loads, 0))
            .await
            .expect("load");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 3, "0 turns the cache off");
    assert!(off.is_empty());
}

#[test]
fn cache_settings_are_checked_at_their_edges() {
    fn check(edit: impl Fn(&mut ControlPlaneConfig), expected: Option<&str>) {
        let mut config = ControlPlaneConfig::default();
        edit(&mut config);
        let got = config.validate().err().map(|err| err.to_string());
        assert_eq!(got.as_deref(), expected);
    }
    check(|c| c.content_cache_entries_max = 0, None);
    check(|c| c.content_cache_entries_max = 1_000_000, None);
    check(
        |c| c.content_cache_entries_max = 1_000_001,
        Some("invalid setting control_plane.content_cache_entries_max: must be at most 1000000"),
    );
    check(|c| c.content_cache_fresh_ms = 86_400_000, None);
    check(
        |c| c.content_cache_fresh_ms = 86_400_001,
        Some("invalid setting control_plane.content_cache_fresh_ms: must be at most 86400000 (a day)"),
    );
    check(|c| c.content_cache_stale_ms = 86_400_000, None);
    check(
        |c| c.content_cache_stale_ms = 86_400_001,
        Some("invalid setting control_plane.content_cache_stale_ms: must be at most 86400000 (a day)"),
    );
}
