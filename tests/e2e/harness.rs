//! A cluster of real `podnet` processes in a temporary state directory,
//! always torn down (even when a test panics).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use podnet_lab::record::ClusterRecord;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_podnet");

pub struct Cluster {
    _dir: tempfile::TempDir,
    pub state: PathBuf,
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Cluster {
    /// `podnet up` with `args` (e.g. `["--nodes", "3"]`).
    pub fn up(args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let cluster = Cluster { _dir: dir, state };
        let out = cluster.run(&[&["up", "--node-grace-period", "1s"], args].concat());
        assert!(
            out.status.success(),
            "podnet up failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        cluster
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("PODNET_STATE_DIR", &self.state)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run podnet")
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn podnet");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait podnet")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podnet {args:?} failed ({:?}):\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn apply(&self, yaml: &str) -> String {
        let out = self.run_stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "apply failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(&[args, &["-o", "json"]].concat());
        serde_json::from_str(&out).expect("json output")
    }

    pub fn items(&self, kind: &str) -> Vec<Value> {
        self.json(&["get", kind, "-A"])["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every node's InternalIP.
    pub fn node_ips(&self) -> Vec<std::net::Ipv4Addr> {
        self.items("nodes")
            .iter()
            .filter_map(|n| {
                n["status"]["addresses"]
                    .as_array()?
                    .iter()
                    .find(|a| a["type"] == "InternalIP")?["address"]
                    .as_str()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    /// Pods matching `app=<app>` that are Ready, once there are `n` of them.
    pub fn ready_pods(&self, app: &str, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} ready pods of app={app}"),
            Duration::from_secs(30),
            || {
                let pods = self.json(&["get", "pods", "-l", &format!("app={app}")])["items"]
                    .as_array()
                    .cloned()?;
                let ready: Vec<Value> = pods.into_iter().filter(is_ready).collect();
                (ready.len() == n).then_some(ready)
            },
        )
    }

    pub fn exec(&self, pod: &str, cmd: &[&str]) -> Output {
        self.run(&[&["exec", pod, "--"], cmd].concat())
    }

    pub fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["cluster-info", "-o", "json"])).expect("cluster-info json")
    }

    /// The cluster DNS address on the host, `IP:PORT`, as cluster-info
    /// shows it.
    pub fn host_dns(&self) -> String {
        self.info()["dns"]["address"]
            .as_str()
            .expect("cluster-info shows the DNS address")
            .to_string()
    }

    /// Real `dig` on the host against the cluster DNS port (two tries of
    /// `timeout_s` seconds); its stdout.
    pub fn host_dig(&self, timeout_s: u32, args: &[&str]) -> String {
        let addr = self.host_dns();
        let (ip, port) = addr.rsplit_once(':').expect("IP:PORT");
        let out = Command::new("dig")
            .args([
                &format!("@{ip}"),
                "-p",
                port,
                &format!("+time={timeout_s}"),
                "+tries=2",
            ])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)");
        text(&out.stdout)
    }

    pub fn node_pid(&self, name: &str) -> u32 {
        let info = self.info();
        let node = info["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["name"] == name))
            .cloned();
        node.and_then(|n| n["pid"].as_u64()).expect("node pid") as u32
    }
}

impl Cluster {
    /// What a failed test needs to be understood: the objects and the tail
    /// of every process's log.
    fn dump(&self) {
        let out = self.run(&["get", "pods", "-A", "-o", "wide"]);
        eprintln!(
            "--- pods at failure:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let out = self.run(&["get", "pods", "-A", "-o", "json"]);
        eprintln!("--- pod objects:\n{}", text(&out.stdout));
        if let Ok(entries) = std::fs::read_dir(self.state.join("logs")) {
            for e in entries.flatten() {
                let log = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {} (last lines):", e.path().display());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        // Whatever `down` cannot stop is killed: every role the record
        // names, the edge included, and the supervisor.
        let pids: Vec<u32> = ClusterRecord::read(&self.state)
            .map(|r| r.role_pids().chain([r.supervisor_pid]).collect())
            .unwrap_or_default();
        let _ = self.run(&["down"]);
        for pid in pids {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Pods and nodes alike: the Ready condition is True.
pub fn is_ready(p: &Value) -> bool {
    podnet_proto::model::condition_is_true(p, "Ready")
}
