//! `podnet rollout status|restart|undo|history|pause|resume deployment
//! NAME`, as `kubectl rollout`: follow a Deployment's rollout and print
//! where it stands in kubectl's words (exiting 1 when it exceeded its
//! progress deadline), restart every pod by stamping the template
//! (`kubectl.kubernetes.io/restartedAt`), go back to an earlier revision's
//! template, list the revisions, and pause or resume the rollout.
//!
//! What each prints is a plain function of the objects read; the commands
//! read, decide and write with the version read, retrying on a conflict.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use podnet_proto::model::{Kind, LABEL_POD_TEMPLATE_HASH, str_at};
use podnet_proto::v1::{GetRequest, ListRequest, ObjectRequest};
use serde_json::{Value, json};

use podnet_lab::InputError;
use podnet_lab::api::{Api, from_state, status_error};

use super::tabwriter;

const POLL: Duration = Duration::from_millis(100);

const ANNOTATION_REVISION: &str = "deployment.kubernetes.io/revision";
const ANNOTATION_RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
const ANNOTATION_CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The ReplicaSet annotations `rollout undo` does not copy back to the
/// Deployment (kubectl's `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: RolloutAction,
}

/// `deployment/NAME` or `deployment NAME`, and the namespace.
#[derive(Debug, Args)]
pub struct Target {
    /// `deployment/NAME` or `deployment NAME`.
    #[arg(required = true, num_args = 1..=2)]
    pub resource: Vec<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Wait until a Deployment's rollout is done, as `kubectl rollout status`.
    Status {
        #[command(flatten)]
        target: Target,
        /// How long to wait (kubectl waits forever by default; podnet
        /// bounds it).
        #[arg(long, default_value = "60s", value_parser = podnet_lab::flags::timeout)]
        timeout: Duration,
    },
    /// Replace every pod of a Deployment, as `kubectl rollout restart`.
    Restart {
        #[command(flatten)]
        target: Target,
    },
    /// Go back to an earlier revision's pod template, as `kubectl rollout undo`.
    Undo {
        #[command(flatten)]
        target: Target,
        /// The revision to go back to; 0 (the default) is the one before
        /// the current.
        #[arg(long, default_value_t = 0)]
        to_revision: u64,
    },
    /// Stop a Deployment's rollouts, as `kubectl rollout pause`.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Let a paused Deployment roll out again, as `kubectl rollout resume`.
    Resume {
        #[command(flatten)]
        target: Target,
    },
    /// List a Deployment's revisions, or show one, as `kubectl rollout history`.
    History {
        #[command(flatten)]
        target: Target,
        /// Show this revision's pod template.
        #[arg(long)]
        revision: Option<u64>,
    },
}

/// Where a Deployment's rollout stands, in kubectl's words
/// (`DeploymentStatusViewer`).
#[derive(Debug, PartialEq, Eq)]
enum Rollout {
    Done(String),
    Waiting(String),
    Failed(String),
}

fn rollout_status(name: &str, d: &Value) -> Rollout {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = int("/metadata/generation");
    if generation > int("/status/observedGeneration") {
        return Rollout::Waiting("Waiting for deployment spec update to be observed...".into());
    }
    let progress_failed = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            str_at(c, "/type") == "Progressing"
                && str_at(c, "/reason") == "ProgressDeadlineExceeded"
        });
    if progress_failed {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int("/status/updatedReplicas");
    let total = int("/status/replicas");
    let available = int("/status/availableReplicas");
    if updated < replicas {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
        ));
    }
    if total > updated {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            total - updated
        ));
    }
    if available < updated {
        return Rollout::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Rollout::Done(format!("deployment {name:?} successfully rolled out"))
}

impl Target {
    fn name(&self, verb: &str) -> Result<&str, InputError> {
        let (kind, name) = match self.resource.as_slice() {
            [one] => one.split_once('/').unwrap_or((one.as_str(), "")),
            [kind, name] => (kind.as_str(), name.as_str()),
            _ => ("", ""),
        };
        let kind: Kind = kind.parse().map_err(|e| InputError(format!("{e}")))?;
        if kind != Kind::Deployment {
            return Err(InputError(format!(
                "podnet rollout {verb} takes deployment/NAME, not {}",
                kind.plural()
            )));
        }
        if name.is_empty() {
            return Err(InputError(format!(
                "podnet rollout {verb} takes deployment/NAME: no name given"
            )));
        }
        Ok(name)
    }
}

async fn get_deployment(api: &mut Api, namespace: &str, name: &str) -> anyhow::Result<Value> {
    let req = GetRequest {
        kind: Kind::Deployment.as_str().into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    let found = api.get(req).await.map_err(status_error)?.into_inner();
    Ok(serde_json::from_slice(&found.object)?)
}

/// The ReplicaSets `d` controls.
async fn replicasets_of(api: &mut Api, d: &Value) -> anyhow::Result<Vec<Value>> {
    let req = ListRequest {
        kind: Kind::ReplicaSet.as_str().into(),
        namespace: str_at(d, "/metadata/namespace").into(),
        ..Default::default()
    };
    let (all, _) = podnet_lab::api::list_all(api, req).await?;
    let uid = str_at(d, "/metadata/uid");
    Ok(all
        .into_iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        str_at(r, "/uid") == uid
                            && r.get("controller").and_then(Value::as_bool) == Some(true)
                    })
                })
        })
        .collect())
}

fn revision(o: &Value) -> i64 {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A pod template without its `pod-template-hash` label.
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(LABEL_POD_TEMPLATE_HASH);
    }
    t
}

/// What `rollout undo` does to `d`: the Deployment to write, or what to
/// say instead (kubectl's `DeploymentRollbacker`).
#[derive(Debug, PartialEq)]
enum Undo {
    Write(Value),
    Skipped(i64),
}

fn undo(d: &Value, replicasets: &[Value], to_revision: u64) -> Result<Undo, String> {
    let name = str_at(d, "/metadata/name");
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err(format!(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/{name}' and try again"
        ));
    }
    let rs = if to_revision > 0 {
        replicasets
            .iter()
            .find(|rs| u64::try_from(revision(rs)) == Ok(to_revision))
            .ok_or_else(|| format!("unable to find specified revision {to_revision} in history"))?
    } else {
        // The newest revision below the latest.
        let mut revisions: Vec<(i64, &Value)> =
            replicasets.iter().map(|rs| (revision(rs), rs)).collect();
        revisions.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
        revisions
            .get(1)
            .filter(|(r, _)| *r > 0)
            .map(|(_, rs)| *rs)
            .ok_or_else(|| format!("no rollout history found for deployment {name:?}"))?
    };
    let template = without_hash(rs.pointer("/spec/template").unwrap_or(&Value::Null));
    if d.pointer("/spec/template") == Some(&template) {
        return Ok(Undo::Skipped(revision(rs)));
    }
    let mut updated = d.clone();
    updated["spec"]["template"] = template;
    // The ReplicaSet's annotations come back with its template, but the
    // controller's own.
    if let Some(annotations) = rs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        if !updated["metadata"]["annotations"].is_object() {
            updated["metadata"]["annotations"] = json!({});
        }
        for (k, v) in annotations {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                updated["metadata"]["annotations"][k] = v.clone();
            }
        }
    }
    Ok(Undo::Write(updated))
}

/// `rollout restart`: the template stamped with `now`, which makes a new
/// ReplicaSet and so replaces every pod.
fn restart(d: &Value, now: &str) -> Result<Value, String> {
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err("can't restart paused deployment (run rollout resume first)".into());
    }
    let mut updated = d.clone();
    if !updated["spec"]["template"]["metadata"]["annotations"].is_object() {
        updated["spec"]["template"]["metadata"]["annotations"] = json!({});
    }
    updated["spec"]["template"]["metadata"]["annotations"][ANNOTATION_RESTARTED_AT] = json!(now);
    Ok(updated)
}

/// `rollout pause` (`paused`) and `resume` (not): the Deployment with
/// `spec.paused` so, or kubectl's refusal when it already is.
fn set_paused(d: &Value, paused: bool) -> Result<Value, String> {
    let now = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    if now == paused {
        let why = if paused {
            "is already paused"
        } else {
            "is not paused"
        };
        return Err(format!(
            "deployments.apps {:?} {why}",
            str_at(d, "/metadata/name")
        ));
    }
    let mut updated = d.clone();
    updated["spec"]["paused"] = json!(paused);
    Ok(updated)
}

/// `rollout history --revision`: that revision's template, with the
/// change cause among its annotations, as kubectl shows it.
fn revision_template(replicasets: &[Value], wanted: u64) -> Result<Value, String> {
    let rs = replicasets
        .iter()
        .find(|rs| u64::try_from(revision(rs)) == Ok(wanted))
        .ok_or_else(|| format!("unable to find the specified revision {wanted}"))?;
    let mut template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(cause) = rs
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_CHANGE_CAUSE))
    {
        if !template["metadata"]["annotations"].is_object() {
            template["metadata"]["annotations"] = json!({});
        }
        template["metadata"]["annotations"][ANNOTATION_CHANGE_CAUSE] = cause.clone();
    }
    Ok(template)
}

/// `rollout history`: one line per revision, oldest first.
fn history(replicasets: &[Value]) -> String {
    let mut revisions: Vec<(i64, &str)> = replicasets
        .iter()
        .filter(|rs| revision(rs) > 0)
        .map(|rs| {
            let cause = rs
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ANNOTATION_CHANGE_CAUSE))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .unwrap_or("<none>");
            (revision(rs), cause)
        })
        .collect();
    revisions.sort();
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (r, cause) in revisions {
        text.push_str(&format!("{r}\t{cause}\n"));
    }
    tabwriter::align(&text)
}

pub async fn run(state: &Path, args: RolloutArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        RolloutAction::Status { target, timeout } => {
            let name = target.name("status")?;
            status(state, &target.namespace, name, timeout).await
        }
        RolloutAction::Restart { target } => {
            let name = target.name("restart")?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            write_back(state, &target.namespace, name, "restarted", |d, _| {
                restart(d, &now).map(Some)
            })
            .await
        }
        RolloutAction::Undo {
            target,
            to_revision,
        } => {
            let name = target.name("undo")?;
            write_back(state, &target.namespace, name, "rolled back", |d, sets| {
                match undo(d, sets, to_revision)? {
                    Undo::Write(d) => Ok(Some(d)),
                    Undo::Skipped(r) => {
                        println!(
                            "deployment.apps/{name} skipped rollback (current template already matches revision {r})"
                        );
                        Ok(None)
                    }
                }
            })
            .await
        }
        RolloutAction::Pause { target } => {
            let name = target.name("pause")?;
            write_back(state, &target.namespace, name, "paused", |d, _| {
                set_paused(d, true).map(Some)
            })
            .await
        }
        RolloutAction::Resume { target } => {
            let name = target.name("resume")?;
            write_back(state, &target.namespace, name, "resumed", |d, _| {
                set_paused(d, false).map(Some)
            })
            .await
        }
        RolloutAction::History { target, revision } => {
            let name = target.name("history")?;
            let mut api = from_state(state).await?;
            let d = get_deployment(&mut api, &target.namespace, name).await?;
            let sets = replicasets_of(&mut api, &d).await?;
            if let Some(r) = revision {
                let template = revision_template(&sets, r).map_err(|e| anyhow::anyhow!(e))?;
                println!("deployment.apps/{name} with revision #{r}");
                print!("{}", super::describe::pod_template_text(&template));
                return Ok(ExitCode::SUCCESS);
            }
            // kubectl's header line, trailing space included.
            println!("deployment.apps/{name} ");
            print!("{}", history(&sets));
            // kubectl ends the table with an empty line.
            println!();
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the Deployment and its ReplicaSets, lets `change` decide, writes
/// with the version read and says `done`; a conflict (a controller's
/// write in between) starts over on the new version.
async fn write_back(
    state: &Path,
    namespace: &str,
    name: &str,
    done: &str,
    change: impl Fn(&Value, &[Value]) -> Result<Option<Value>, String>,
) -> anyhow::Result<ExitCode> {
    let mut api = from_state(state).await?;
    for _ in 0..10 {
        let d = get_deployment(&mut api, namespace, name).await?;
        let sets = replicasets_of(&mut api, &d).await?;
        let Some(updated) = change(&d, &sets).map_err(|e| anyhow::anyhow!(e))? else {
            return Ok(ExitCode::SUCCESS);
        };
        let body = ObjectRequest {
            object: serde_json::to_vec(&updated)?,
        };
        match api.update(body).await {
            Ok(_) => {
                println!("deployment.apps/{name} {done}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => return Err(status_error(s)),
        }
    }
    anyhow::bail!("deployment/{name} kept changing; try again")
}

async fn status(
    state: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let mut api = from_state(state).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let d = get_deployment(&mut api, namespace, name).await?;
        match rollout_status(name, &d) {
            Rollout::Done(done) => {
                println!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            Rollout::Failed(why) => {
                eprintln!("error: {why}");
                return Ok(ExitCode::FAILURE);
            }
            Rollout::Waiting(waiting) => {
                if waiting != last {
                    println!("{waiting}");
                    last = waiting;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("error: timed out waiting for the condition");
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rollout_status_in_kubectls_words() {
        let d = |generation: i64,
                 observed: i64,
                 replicas: i64,
                 updated: i64,
                 total: i64,
                 available: i64| {
            json!({"metadata": {"generation": generation}, "spec": {"replicas": replicas},
                   "status": {"observedGeneration": observed, "updatedReplicas": updated,
                              "replicas": total, "availableReplicas": available}})
        };
        let check = |v: Value, expected: Rollout| {
            assert_eq!(rollout_status("web", &v), expected);
        };
        let waiting = |s: &str| Rollout::Waiting(s.to_string());
        check(
            d(2, 1, 3, 3, 3, 3),
            waiting("Waiting for deployment spec update to be observed..."),
        );
        check(
            d(2, 2, 3, 1, 4, 3),
            waiting(
                r#"Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 4, 3),
            waiting(
                r#"Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 3, 2),
            waiting(
                r#"Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 3, 3),
            Rollout::Done(r#"deployment "web" successfully rolled out"#.into()),
        );
        let mut stuck = d(2, 2, 3, 1, 4, 3);
        stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded"}]);
        check(
            stuck.clone(),
            Rollout::Failed(r#"deployment "web" exceeded its progress deadline"#.into()),
        );
        // Not before the controller has seen the latest spec.
        stuck["metadata"]["generation"] = json!(3);
        check(
            stuck,
            waiting("Waiting for deployment spec update to be observed..."),
        );
    }

    fn rs(revision: i64, image: &str) -> Value {
        json!({"metadata": {"name": format!("web-{revision}"),
            "annotations": {ANNOTATION_REVISION: revision.to_string(), "deployment.kubernetes.io/desired-replicas": "3", "team": "a"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", LABEL_POD_TEMPLATE_HASH: format!("h{revision}")}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    fn deployment(image: &str) -> Value {
        json!({"metadata": {"name": "web", "annotations": {ANNOTATION_REVISION: "3"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn undo_takes_back_the_previous_or_the_named_revision() {
        let sets = [rs(1, "v1"), rs(3, "v3"), rs(2, "v2")];
        let d = deployment("v3");
        let image = |u: Undo| match u {
            Undo::Write(d) => {
                assert_eq!(d["metadata"]["annotations"]["team"], "a");
                assert_eq!(d["metadata"]["annotations"][ANNOTATION_REVISION], "3");
                assert!(
                    d["metadata"]["annotations"]
                        .get("deployment.kubernetes.io/desired-replicas")
                        .is_none()
                );
                assert!(
                    d.pointer("/spec/template/metadata/labels/pod-template-hash")
                        .is_none()
                );
                str_at(&d, "/spec/template/spec/containers/0/image").to_string()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(image(undo(&d, &sets, 0).unwrap()), "v2");
        assert_eq!(image(undo(&d, &sets, 1).unwrap()), "v1");
        assert_eq!(undo(&d, &sets, 3), Ok(Undo::Skipped(3)));
        assert_eq!(
            undo(&d, &sets, 7),
            Err("unable to find specified revision 7 in history".into())
        );
        assert_eq!(
            undo(&d, &sets[1..2], 0),
            Err(r#"no rollout history found for deployment "web""#.into())
        );
        let mut paused = d.clone();
        paused["spec"]["paused"] = json!(true);
        assert!(undo(&paused, &sets, 0).unwrap_err().contains("paused"));
    }

    #[test]
    fn restart_stamps_the_template() {
        let d = restart(&deployment("v3"), "2026-12-03T13:00:00Z").unwrap();
        assert_eq!(
            d["spec"]["template"]["metadata"]["annotations"][ANNOTATION_RESTARTED_AT],
            "2026-12-03T13:00:00Z"
        );
        let mut paused = deployment("v3");
        paused["spec"]["paused"] = json!(true);
        assert!(restart(&paused, "t").is_err());
    }

    #[test]
    fn pause_and_resume_as_kubectl() {
        let d = deployment("v1");
        let paused = set_paused(&d, true).unwrap();
        assert_eq!(paused["spec"]["paused"], true);
        assert_eq!(
            set_paused(&paused, true),
            Err(r#"deployments.apps "web" is already paused"#.into())
        );
        assert_eq!(set_paused(&paused, false).unwrap()["spec"]["paused"], false);
        assert_eq!(
            set_paused(&d, false),
            Err(r#"deployments.apps "web" is not paused"#.into())
        );
    }

    #[test]
    fn history_shows_one_revisions_template() {
        let mut second = rs(2, "v2");
        second["metadata"]["annotations"][ANNOTATION_CHANGE_CAUSE] = json!("image v2");
        let sets = [rs(1, "v1"), second];
        let t = revision_template(&sets, 2).unwrap();
        assert_eq!(str_at(&t, "/spec/containers/0/image"), "v2");
        assert_eq!(
            t["metadata"]["annotations"][ANNOTATION_CHANGE_CAUSE],
            "image v2"
        );
        assert_eq!(t["metadata"]["labels"][LABEL_POD_TEMPLATE_HASH], "h2");
        assert_eq!(
            revision_template(&sets, 5),
            Err("unable to find the specified revision 5".into())
        );
    }

    #[test]
    fn history_lists_revisions_in_order() {
        let mut second = rs(2, "v2");
        second["metadata"]["annotations"][ANNOTATION_CHANGE_CAUSE] = json!("image v2");
        let out = history(&[rs(10, "v3"), second, rs(1, "v1")]);
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert_eq!(
            lines,
            [
                "REVISION  CHANGE-CAUSE",
                "1         <none>",
                "2         image v2",
                "10        <none>"
            ]
        );
    }
}
