//! Every scenario file is checked and run; a failing expectation fails the run.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{BIN, text};

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn every_scenario_passes_check_and_runs() {
    for file in scenario_files() {
        let out = Command::new(BIN)
            .args(["run", "--check"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            text(&out.stderr)
        );
        let out = Command::new(BIN).arg("run").arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{} failed:\n{}{}",
            file.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(stdout.contains(" 0 failed"), "{stdout}");
    }
}

#[test]
fn a_failed_expectation_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        r#"
name: wrong
cluster: {nodes: 2}
manifests:
  - {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: a}}, spec: {containers: [{name: c, image: podnet/http-echo}]}}
expect:
  - reachability: {from: a, to: a, port: 8080, allowed: false}
"#,
    )
    .unwrap();
    // In the state dir and with the LoadBalancer pool asked for, and the
    // logs are kept there.
    let state = dir.path().join("state");
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--lb-pool", "127.0.200.0/24"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    for want in [
        "LoadBalancer pool 127.0.200.0/24".to_string(),
        format!("state in {}", state.display()),
        "scenario FAILED".to_string(),
        format!("logs kept in {}", state.join("logs").display()),
    ] {
        assert!(stdout.contains(&want), "{want:?} missing from:\n{stdout}");
    }
    assert!(state.join("logs/controlplane.log").exists());
    assert!(!state.join("cluster.json").exists(), "the cluster is down");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("FAIL reachability a -> a"),
        "{}",
        text(&out.stdout)
    );
}

/// `podnet run --check FILE` after writing `text` to FILE.
fn check(file: &std::path::Path, text: &str) -> std::process::Output {
    std::fs::write(file, text).unwrap();
    Command::new(BIN)
        .args(["run", "--check"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn bad_scenarios_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    // (file text, what stderr must contain)
    let at = |line: u32| format!("{}:{line}:", file.display());
    for (file_text, expected) in [
        ("name: bad\ncluster:\n  nodez: 3\n", vec![at(3)]),
        (
            "name: bad\nmanifests:\n  - {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: []}}\n",
            vec!["spec.containers".to_string()],
        ),
        // A bad value anywhere is caught before anything boots.
        (
            "name: bad\nready_timeout: 60\n",
            vec![at(2), "has no unit".to_string()],
        ),
        // An expectation naming what the manifests do not create cannot pass.
        (
            "name: bad\nexpect:\n  - {http: \"http://shop.example.com/\", from: host, resolve: \"shop.example.com:ingress\", backend: shop}\n",
            vec![r#"expect[0].backend: no Service "shop" in namespace default"#.to_string()],
        ),
    ] {
        let out = check(&file, file_text);
        // `podnet run`'s exit code for a scenario error.
        assert_eq!(out.status.code(), Some(2), "{file_text}");
        let err = text(&out.stderr);
        for e in expected {
            assert!(err.contains(&e), "{file_text}: {err}");
        }
    }
}
