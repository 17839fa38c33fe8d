//! The control plane's store through the real binary: a store that is not
//! this cluster's (truncated, garbage, another cluster's) is refused with
//! an error naming the file, the supervisor gives up after its restart
//! limit and says why, and a store whose file is unwritable for a while
//! logs the failure and works again without a restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use podnet_lab::record::alive;

use crate::harness::{Cluster, eventually, text};

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kept\n";

fn store(c: &Cluster) -> PathBuf {
    c.state.join("controlplane").join("store.redb")
}

fn cluster_id(state: &Path) -> String {
    std::fs::read_to_string(state.join("controlplane").join("cluster-id"))
        .expect("cluster-id beside the CA")
        .trim()
        .to_owned()
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

fn pids(c: &Cluster) -> (u32, u32) {
    let info = c.info();
    let pid = |role: &str| info[role]["pid"].as_u64().expect("pid") as u32;
    (pid("controlplane"), pid("supervisor"))
}

/// Whether every thread of `pid` has stopped. `kill -STOP` returns once
/// the signal is queued; a thread inside a write finishes that write
/// first, so damage done before then could be overwritten.
fn stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "T" || state == "t")
        })
    })
}

/// Stops the control plane, lets `damage` change its state dir while
/// nothing writes, then kills it so the supervisor restarts it on the
/// damaged store. Returns the supervisor's pid.
fn restart_on(c: &Cluster, damage: impl FnOnce()) -> u32 {
    let (cp, supervisor) = pids(c);
    kill("-STOP", cp);
    eventually(
        "every thread of the control plane to stop",
        Duration::from_secs(10),
        || stopped(cp).then_some(()),
    );
    damage();
    kill("-9", cp);
    supervisor
}

/// The supervisor gives up and the cluster says why, to every client:
/// returns what `cluster-info` prints then.
fn gives_up(c: &Cluster, supervisor: u32) -> String {
    eventually(
        "the supervisor to give up on the control plane",
        Duration::from_secs(40),
        || (!alive(supervisor)).then_some(()),
    );
    let out = c.run(&["cluster-info"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("stopped at"), "{err}");
    assert!(
        err.contains("the control plane exited 6 times in a row"),
        "{err}"
    );
    assert!(err.contains("last lines of"), "{err}");
    assert!(err.contains("podnet down"), "{err}");
    // Any other client says the same.
    let get = c.run(&["get", "namespaces"]);
    assert!(!get.status.success());
    assert!(
        text(&get.stderr).contains("stopped at"),
        "{}",
        text(&get.stderr)
    );
    err
}

#[test]
fn a_truncated_store_is_refused_not_started_as_a_new_cluster() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply(NAMESPACE);
    let id = cluster_id(&c.state);
    let path = store(&c);
    let supervisor = restart_on(&c, || {
        std::fs::File::create(&path).expect("truncate the store");
    });

    // While it restarts, a client gets the control plane's own words.
    let seen = eventually(
        "a client to see why the control plane is down",
        Duration::from_secs(30),
        || {
            let out = c.run(&["get", "namespace", "kept"]);
            assert!(
                !out.status.success(),
                "a new, empty cluster must not answer: {}",
                text(&out.stdout)
            );
            let err = text(&out.stderr);
            err.contains("refusing to start it as a new, empty cluster")
                .then_some(err)
        },
    );
    assert!(seen.contains(&path.display().to_string()), "{seen}");
    assert!(seen.contains(&id), "{seen}");

    let err = gives_up(&c, supervisor);
    assert!(
        err.contains(&format!("the store {} is empty", path.display())),
        "{err}"
    );
    // `down` clears the stopped cluster; a new one starts empty.
    let down = c.ok(&["down"]);
    assert!(down.contains("had stopped"), "{down}");
    assert!(!c.state.join("controlplane").exists());
}

#[test]
fn a_corrupt_store_stops_the_cluster_with_the_reason() {
    let c = Cluster::up(&["--nodes", "1"]);
    let path = store(&c);
    let supervisor = restart_on(&c, || {
        let garbage: Vec<u8> = (0..65_536u32).map(|i| (i * 131 % 251) as u8).collect();
        std::fs::write(&path, garbage).expect("overwrite the store");
    });
    let err = gives_up(&c, supervisor);
    assert!(
        err.contains(&format!("cannot open the store {}", path.display())),
        "{err}"
    );
    assert!(err.contains("restore this cluster's store"), "{err}");
}

#[test]
fn another_clusters_store_is_refused_naming_both_clusters() {
    let a = Cluster::up(&["--nodes", "1"]);
    let b = Cluster::up(&["--nodes", "1"]);
    let (id_a, id_b) = (cluster_id(&a.state), cluster_id(&b.state));
    assert_ne!(id_a, id_b);
    let (b_cp, _) = pids(&b);
    let supervisor = restart_on(&a, || {
        // B stopped too, so its file is copied between writes.
        kill("-STOP", b_cp);
        std::fs::copy(store(&b), store(&a)).expect("copy B's store");
        kill("-CONT", b_cp);
    });
    let err = gives_up(&a, supervisor);
    assert!(
        err.contains(&format!(
            "belongs to cluster {id_b}, but this state dir is cluster {id_a}"
        )),
        "{err}"
    );
    // B is untouched.
    b.ok(&["get", "namespaces"]);
}

/// `chattr -i` on drop, so the cluster can be torn down whatever happens.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "chattr +i {} (needs root and ext4-like fs)",
            path.display()
        );
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_store_is_logged_and_recovers_without_a_restart() {
    let c = Cluster::up(&["--nodes", "1"]);
    let (cp, _) = pids(&c);
    let log = c.state.join("logs").join("controlplane.log");
    // Even root cannot write to an immutable file, through an open fd too.
    let immutable = Immutable::set(&store(&c));
    let out = c.run_stdin(&["apply", "-f", "-"], NAMESPACE);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("storage backend failed"), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("store write failed"), "{logged}");

    drop(immutable);
    eventually("writes to work again", Duration::from_secs(20), || {
        c.run_stdin(&["apply", "-f", "-"], NAMESPACE)
            .status
            .success()
            .then_some(())
    });
    c.ok(&["get", "namespace", "kept"]);
    assert_eq!(pids(&c).0, cp, "recovered without a restart");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("reopened the store"), "{logged}");
    assert!(logged.contains("store works again"), "{logged}");
}
