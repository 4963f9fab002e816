//! Configuration: file < environment < flags, and errors that name the key.

use std::path::Path;

use expect_test::{expect, Expect};
use node::config::Config;
use serde_json::{json, Value};

use crate::support::lyceum;

fn load(file: Option<&str>, env: &[(&str, &str)], flags: Value) -> Result<Config, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lyceum.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).expect("write config");
    }
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load_from(file.map(|_| path.as_path()), env, flags).map_err(|err| {
        err.to_string()
            .replace(&dir.path().display().to_string(), "$DIR")
    })
}

fn check_ok(
    file: Option<&str>,
    env: &[(&str, &str)],
    flags: Value,
    project: impl Fn(&Config) -> String,
    expected: Expect,
) {
    match load(file, env, flags) {
        Ok(config) => expected.assert_eq(&project(&config)),
        Err(err) => panic!("expected a valid config, got: {err}"),
    }
}

fn check_err(file: Option<&str>, env: &[(&str, &str)], flags: Value, expected: Expect) {
    match load(file, env, flags) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => expected.assert_eq(&err),
    }
}

fn dirs(config: &Config) -> String {
    format!(
        "data_dir={} timeout={}",
        config.data_dir.display(),
        config.http.request_timeout_ms
    )
}

#[test]
fn sources_override_in_order() {
    check_ok(
        None,
        &[],
        json!({}),
        dirs,
        expect!["data_dir=./.lyceum timeout=30000"],
    );
    let file = "data_dir = \"/from/file\"\n[http]\nrequest_timeout_ms = 1000\n";
    check_ok(
        Some(file),
        &[],
        json!({}),
        dirs,
        expect!["data_dir=/from/file timeout=1000"],
    );
    check_ok(
        Some(file),
        &[
            ("LYCEUM_DATA_DIR", "/from/env"),
            ("LYCEUM_HTTP__REQUEST_TIMEOUT_MS", "2000"),
        ],
        json!({}),
        dirs,
        expect!["data_dir=/from/env timeout=2000"],
    );
    check_ok(
        Some(file),
        &[("LYCEUM_DATA_DIR", "/from/env")],
        json!({"data_dir": "/from/flag"}),
        dirs,
        expect!["data_dir=/from/flag timeout=1000"],
    );
    // Variables of other programs and of the test suite are not settings.
    check_ok(
        None,
        &[
            ("HOME", "/root"),
            ("LYCEUM_TEST_DATABASE_URL", "postgres://x"),
            ("LYCEUM_CONFIG", "x.toml"),
        ],
        json!({}),
        dirs,
        expect!["data_dir=./.lyceum timeout=30000"],
    );
}

#[test]
fn environment_values_are_typed() {
    check_ok(
        None,
        &[
            (
                "LYCEUM_EDGE__JOIN",
                "[\"127.0.0.1:9000\", \"127.0.0.1:9001\"]",
            ),
            ("LYCEUM_DEV__BASE_PORT", "0"),
        ],
        json!({}),
        |c| format!("join={:?} base_port={}", c.edge.join, c.dev.base_port),
        expect![[r#"join=["127.0.0.1:9000", "127.0.0.1:9001"] base_port=0"#]],
    );
}

#[test]
fn errors_name_the_key_and_the_source() {
    check_err(
        Some("[http]\nrequest_timeout = 5\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `http.request_timeout` (in $DIR/lyceum.toml): unknown key; known keys here: request_body_bytes_max, request_timeout_ms, requests_in_flight_max, shutdown_grace_ms, cors_allowed_origins"],
    );
    check_err(
        Some("[http]\nrequest_timeout_ms = \"soon\"\n"),
        &[],
        json!({}),
        expect![[
            r#"invalid configuration: key `http.request_timeout_ms` (in $DIR/lyceum.toml): expected u64, found string "soon""#
        ]],
    );
    check_err(Some("colour = \"blue\"\n"), &[], json!({}), expect!["invalid configuration: key `colour` (in $DIR/lyceum.toml): unknown key; known keys here: data_dir, log_format, log_filter, http, control_plane, edge, dev, sandbox, live, media"]);
    check_err(
        None,
        &[("LYCEUM_HTTP__NOPE", "1")],
        json!({}),
        expect!["invalid configuration: key `http.nope` (from environment): unknown key; known keys here: request_body_bytes_max, request_timeout_ms, requests_in_flight_max, shutdown_grace_ms, cors_allowed_origins"],
    );
    check_err(
        None,
        &[("LYCEUM_EDGE__REGION", "EU West")],
        json!({}),
        expect!["invalid configuration: key `edge.region`: may only hold a-z, 0-9 and '-', and must start and end with a letter or digit"],
    );
    check_err(
        Some("[http\n"),
        &[],
        json!({}),
        expect![[r#"
            invalid configuration (in $DIR/lyceum.toml): TOML parse error at line 1, column 6
              |
            1 | [http
              |      ^
            invalid table header
            expected `.`, `]`
        "#]],
    );
}

#[test]
fn limits_are_checked_at_their_edges() {
    let limit = |c: &Config| format!("in_flight={}", c.http.requests_in_flight_max);
    let sessions = |c: &Config| format!("sessions={}", c.live.sessions_max);
    check_ok(
        Some("[live]\nsessions_max = 19900\n"),
        &[],
        json!({}),
        sessions,
        expect!["sessions=19900"],
    );
    check_err(
        Some("[live]\nsessions_max = 19901\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `live.sessions_max`: must be at most 19900 (a process may hold 20000 open files)"],
    );
    check_err(
        Some("[live]\nsession_queue_max = 0\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `live.session_queue_max`: must be at least 1"],
    );
    check_err(
        Some("[live]\nframe_bytes_max = 300000\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `live.websocket_message_bytes_max`: must be at least live.frame_bytes_max"],
    );
    // A frame must hold the largest source a submission may carry.
    check_err(
        Some("[live]\nframe_bytes_max = 69631\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `live.frame_bytes_max`: must be at least 69632, so a frame holds a 65536 byte source"],
    );
    // The audio SFU's settings, `[media]`.
    let media = |c: &Config| {
        format!(
            "enabled={} peers={} policy={:?}",
            c.media.enabled, c.media.peers_per_edge_max, c.media.ice_transport_policy
        )
    };
    check_ok(
        Some("[media]\npeers_per_edge_max = 1\nice_transport_policy = \"relay\"\n"),
        &[],
        json!({}),
        media,
        expect!["enabled=true peers=1 policy=Relay"],
    );
    check_err(
        Some("[media]\npeers_per_edge_max = 0\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `media.peers_per_edge_max`: must be at least 1"],
    );
    check_err(
        Some("[media]\nturn_listen = \"0.0.0.0:3478\"\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `media.turn_public_ip`: must be set when turn_listen is on every interface"],
    );
    check_err(
        Some("[media]\nturn_urls = [\"http://turn.example\"]\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `media.turn_urls`: each must be a turn:, turns: or stun: url"],
    );
    check_err(
        Some("[media]\ntracks_per_peer_max = 6\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `media.tracks_per_peer_max`: must be at most 1 + publishers_per_room_max (a microphone and one slot per publisher)"],
    );
    // The pool actors' settings.
    let pools = |c: &Config| {
        format!(
            "policy={:?} tick={} budget={}/{}",
            c.edge.pool_policy,
            c.edge.pool_tick_ms,
            c.edge.pool_warm_containers_max,
            c.edge.pool_warm_memory_mb_max
        )
    };
    check_ok(
        Some("[edge]\npool_policy = \"reactive\"\npool_tick_ms = 10\npool_warm_containers_max = 0\npool_warm_memory_mb_max = 0\n"),
        &[],
        json!({}),
        pools,
        expect!["policy=Reactive tick=10 budget=0/0"],
    );
    check_err(
        Some("[edge]\npool_policy = \"psychic\"\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `edge.pool_policy` (in $DIR/lyceum.toml): unknown variant: found `psychic`, expected `one of `fixed`, `reactive`, `predictive``"],
    );
    check_err(
        Some("[edge]\npool_tick_ms = 9\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `edge.pool_tick_ms`: must be at least 10"],
    );
    for key in ["pool_observed_half_life_ms", "pool_plan_refresh_ms"] {
        let text = format!("[edge]\n{key} = 0\n");
        let err = load(Some(&text), &[], json!({})).expect_err("zero is refused");
        assert!(
            err.contains(&format!("edge.{key}")) && err.contains("at least 1"),
            "{err}"
        );
    }
    check_ok(
        Some("[http]\nrequests_in_flight_max = 1\n"),
        &[],
        json!({}),
        limit,
        expect!["in_flight=1"],
    );
    check_ok(
        Some("[http]\nrequests_in_flight_max = 16384\n"),
        &[],
        json!({}),
        limit,
        expect!["in_flight=16384"],
    );
    check_err(
        Some("[http]\nrequests_in_flight_max = 0\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `http.requests_in_flight_max`: must be at least 1"],
    );
    check_err(
        Some("[http]\nrequests_in_flight_max = 16385\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `http.requests_in_flight_max`: must be at most 16384 (a process may hold 20000 open files)"],
    );
    check_err(
        Some("[http]\nrequest_body_bytes_max = 0\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `http.request_body_bytes_max`: must be at least 1"],
    );
    let backoff = |c: &Config| {
        format!(
            "initial={} max={}",
            c.dev.restart_backoff_initial_ms, c.dev.restart_backoff_max_ms
        )
    };
    check_ok(
        Some("[dev]\nrestart_backoff_initial_ms = 5000\nrestart_backoff_max_ms = 5000\n"),
        &[],
        json!({}),
        backoff,
        expect!["initial=5000 max=5000"],
    );
    check_ok(
        Some("[dev]\nrestart_backoff_initial_ms = 0\n"),
        &[],
        json!({}),
        backoff,
        expect!["initial=0 max=30000"],
    );
    check_err(
        Some("[dev]\nrestart_backoff_initial_ms = 5001\nrestart_backoff_max_ms = 5000\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `dev.restart_backoff_initial_ms`: must not exceed dev.restart_backoff_max_ms"],
    );
    check_err(
        Some("[edge]\ndrills_url = \"127.0.0.1:7000\"\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `edge.drills_url`: must be an http:// or https:// URL, or empty"],
    );
    check_ok(
        Some("[edge]\ndrills_url = \"http://127.0.0.1:7000\"\n"),
        &[],
        json!({}),
        |c: &Config| c.edge.drills_url.clone(),
        expect!["http://127.0.0.1:7000"],
    );
    check_err(
        Some("[dev]\nrestart_backoff_max_ms = 0\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `dev.restart_backoff_max_ms`: must be at least 1"],
    );
    check_err(
        Some("[control_plane]\ndb_connections_max = 0\n"),
        &[],
        json!({}),
        expect![
            "invalid configuration: key `control_plane.db_connections_max`: must be at least 1"
        ],
    );
    check_err(
        Some("[edge]\nlisten = \"localhost\"\n"),
        &[],
        json!({}),
        expect![[
            r#"invalid configuration: key `edge.listen`: "localhost" is not an ip:port address"#
        ]],
    );
    check_err(
        Some("[edge]\ncontrol_plane_url = \"127.0.0.1:7400\"\n"),
        &[],
        json!({}),
        expect![[
            r#"invalid configuration: key `edge.control_plane_url`: "127.0.0.1:7400" must start with http:// or https://"#
        ]],
    );
    check_err(
        Some("[dev]\nregions = [\"eu-west\", \"eu-west\"]\n"),
        &[],
        json!({}),
        expect![[r#"invalid configuration: key `dev.regions`: "eu-west" is listed twice"#]],
    );
    check_err(
        Some("[dev]\nregions = []\n"),
        &[],
        json!({}),
        expect!["invalid configuration: key `dev.regions`: must list 1 to 16 regions"],
    );
    check_err(
        Some("[dev]\nbase_port = 65534\n"),
        &[],
        json!({}),
        expect![
            "invalid configuration: key `dev.base_port`: leaves no room for one port per region"
        ],
    );
    check_ok(
        Some("[dev]\nbase_port = 65432\n"),
        &[],
        json!({}),
        |c| format!("base_port={}", c.dev.base_port),
        expect!["base_port=65432"],
    );
}

fn run(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = lyceum()
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run lyceum");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).replace(&dir.display().to_string(), "$DIR"),
    )
}

#[test]
fn the_binary_refuses_bad_config_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bad.toml"), "[edge]\nregion = 7\n").expect("write");
    let (code, _, stderr) = run(&["--config", "bad.toml", "edge"], dir.path());
    assert_eq!(code, 2);
    expect![[r#"
        lyceum: invalid configuration: key `edge.region` (in bad.toml): expected a string, found signed int `7`
    "#]].assert_eq(&stderr);
    let (code, _, stderr) = run(&["--config", "missing.toml", "dev"], dir.path());
    assert_eq!(code, 2);
    expect![[r#"
        lyceum: config file missing.toml does not exist
    "#]]
    .assert_eq(&stderr);
}

#[test]
fn lyceum_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("ok.toml"),
        "[http]\nrequest_timeout_ms = 1234\n",
    )
    .expect("write");
    let output = lyceum()
        .args(["--config", "ok.toml", "config"])
        .env("LYCEUM_EDGE__REGION", "us-east")
        .current_dir(dir.path())
        .output()
        .expect("run lyceum");
    assert!(output.status.success());
    let printed: toml::Table =
        toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("valid TOML");
    assert_eq!(
        printed["http"]["request_timeout_ms"].as_integer(),
        Some(1234)
    );
    assert_eq!(printed["edge"]["region"].as_str(), Some("us-east"));
    // What `lyceum config` prints loads back as the same configuration.
    std::fs::write(dir.path().join("printed.toml"), &output.stdout).expect("write");
    let (code, again, stderr) = run(&["--config", "printed.toml", "config"], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again, String::from_utf8_lossy(&output.stdout));
}

#[test]
fn the_actor_address_follows_gossip_unless_set() {
    let actor = |config: &Config| match config.edge.actor_addr() {
        Ok(addr) => addr.to_string(),
        Err(err) => err.to_string(),
    };
    check_ok(None, &[], json!({}), actor, expect!["127.0.0.1:7601"]);
    check_ok(
        Some("[edge]\ngossip_listen = \"127.0.0.1:0\""),
        &[],
        json!({}),
        actor,
        expect!["127.0.0.1:0"],
    );
    check_ok(
        None,
        &[("LYCEUM_EDGE__ACTOR_LISTEN", "10.0.0.5:9000")],
        json!({}),
        actor,
        expect!["10.0.0.5:9000"],
    );
    check_err(
        Some("[edge]\nactor_listen = \"nowhere\""),
        &[],
        json!({}),
        expect![[
            r#"invalid configuration: key `edge.actor_listen`: "nowhere" is not an ip:port address"#
        ]],
    );
    check_err(
        Some("[edge]\ngossip_listen = \"127.0.0.1:65500\""),
        &[],
        json!({}),
        expect!["invalid configuration: key `edge.actor_listen`: empty, and gossip_listen's port + 100 is past 65535; set it"],
    );
}
