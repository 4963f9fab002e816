//! Tidy checks that keep the architecture honest: dependency directions,
//! module headers, the configuration reference and the setup commands.

use std::path::{Path, PathBuf};

use crate::module_graph::ModuleGraph;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

#[test]
fn dependency_directions_hold() {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let packages = metadata["packages"].as_array().expect("packages");
    let normal_deps = |package: &str| -> Vec<String> {
        let package = packages
            .iter()
            .find(|p| p["name"] == package)
            .unwrap_or_else(|| panic!("package {package}"));
        package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let crates = [
        "node",
        "actors",
        "gossip",
        "sandbox",
        "media",
        "control-plane",
        "web",
        "chaos",
    ];
    let mut found: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    found.sort_unstable();
    let mut expected = crates.to_vec();
    expected.sort_unstable();
    assert_eq!(
        found, expected,
        "the workspace holds exactly the design card's crates"
    );

    let rules: &[(&str, &str)] = &[
        ("sqlx", "control-plane"),
        ("bollard", "sandbox"),
        ("foca", "gossip"),
        ("webrtc", "media"),
    ];
    for name in crates {
        let deps = normal_deps(name);
        for (dependency, owner) in rules {
            assert!(
                name == *owner || !deps.iter().any(|d| d == dependency),
                "only {owner} may depend on {dependency}, but {name} does"
            );
        }
        if name != "node" {
            assert!(
                !deps.iter().any(|d| d == "node"),
                "{name} must not depend on node"
            );
        }
    }
    assert!(
        !normal_deps("actors").iter().any(|d| d == "control-plane"),
        "actors must not depend on control-plane"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "node_modules" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_doc_paragraph() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).expect("read");
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:?}"
    );
}

#[test]
fn every_config_key_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).expect("doc");
    let config = toml::Value::try_from(node::config::Config::default()).expect("to toml");
    let table = config.as_table().expect("table");
    let mut keys = Vec::new();
    for (key, value) in table {
        match value.as_table() {
            Some(section) => {
                assert!(
                    doc.contains(&format!("## `[{key}]`")),
                    "section [{key}] is not documented"
                );
                keys.extend(section.keys().map(|k| format!("{key}.{k}")));
            }
            None => keys.push(key.clone()),
        }
    }
    assert!(keys.len() > 20, "{keys:?}");
    let undocumented: Vec<_> = keys
        .iter()
        .filter(|key| {
            let leaf = key.rsplit('.').next().expect("leaf");
            !doc.contains(&format!("| `{leaf}` |"))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/configuration.md: {undocumented:?}"
    );
}

#[test]
fn readme_and_ci_agree_on_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let first_block = readme.split("```").nth(1).expect("README has a code block");
    assert!(first_block.contains("scripts/dev"), "{first_block}");
    assert!(first_block.contains("scripts/test"), "{first_block}");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(ci.lines().any(|l| l.trim() == "exec scripts/test"), "{ci}");
    assert!(root().join("ARCHITECTURE.md").exists());
}

/// The crates whose files must not import each other in a circle: a
/// circle means two modules that cannot be understood, tested or moved
/// apart (ARCHITECTURE.md, "Cross-cutting invariants").
const ACYCLIC_CRATES: &[&str] = &["node", "control-plane", "sandbox", "web", "media", "chaos"];

#[test]
fn no_import_cycle_between_a_crates_files() {
    let mut report = String::new();
    for name in ACYCLIC_CRATES {
        let graph = ModuleGraph::read(&root().join(name).join("src"));
        for cycle in graph.cycles() {
            report.push_str(&format!(
                "{name}/src files import each other in a circle:\n{cycle}"
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn only_the_control_planes_http_layer_imports_axum() {
    let graph = ModuleGraph::read(&root().join("control-plane/src"));
    let outside = graph.importers_outside("axum", &["http/", "http.rs"]);
    assert!(
        outside.is_empty(),
        "domain modules hold rules and SQL only; these import axum: {outside:?}"
    );
}
