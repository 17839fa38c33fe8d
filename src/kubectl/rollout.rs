//! `podnet rollout status deployment NAME`, as `kubectl rollout status`:
//! follows a Deployment's rollout and prints where it stands in kubectl's
//! words until it is done.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use podnet_proto::model::Kind;
use serde_json::Value;

use podnet_lab::InputError;
use podnet_lab::api::{from_state, status_error};

const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: RolloutAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Wait until a Deployment's rollout is done, as `kubectl rollout status`.
    Status {
        /// `deployment/NAME` or `deployment NAME`.
        #[arg(required = true, num_args = 1..=2)]
        resource: Vec<String>,
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// How long to wait (kubectl waits forever by default; podnet
        /// bounds it).
        #[arg(long, default_value = "60s", value_parser = podnet_lab::flags::timeout)]
        timeout: Duration,
    },
}

/// Where a Deployment's rollout stands, in kubectl's words
/// (`DeploymentStatusViewer`): `Ok(message)` when done, `Err(message)`
/// while waiting.
fn rollout_status(name: &str, d: &Value) -> Result<String, String> {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = int("/metadata/generation");
    if generation > int("/status/observedGeneration") {
        return Err("Waiting for deployment spec update to be observed...".into());
    }
    let replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = int("/status/updatedReplicas");
    let total = int("/status/replicas");
    let available = int("/status/availableReplicas");
    if updated < replicas {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
        ));
    }
    if total > updated {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            total - updated
        ));
    }
    if available < updated {
        return Err(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Ok(format!("deployment {name:?} successfully rolled out"))
}

pub async fn run(state: &Path, args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let RolloutAction::Status {
        resource,
        namespace,
        timeout,
    } = args.action;
    let (kind, name) = match resource.as_slice() {
        [one] => one.split_once('/').unwrap_or((one.as_str(), "")),
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => ("", ""),
    };
    let kind: Kind = kind.parse().map_err(|e| InputError(format!("{e}")))?;
    if kind != Kind::Deployment || name.is_empty() {
        return Err(InputError("podnet rollout status takes deployment/NAME".into()).into());
    }
    let mut api = from_state(state).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let req = podnet_proto::v1::GetRequest {
            kind: kind.as_str().into(),
            namespace: namespace.clone(),
            name: name.to_string(),
        };
        let found = api.get(req).await.map_err(status_error)?.into_inner();
        let d: Value = serde_json::from_slice(&found.object)?;
        match rollout_status(name, &d) {
            Ok(done) => {
                println!("{done}");
                return Ok(ExitCode::SUCCESS);
            }
            Err(waiting) => {
                if waiting != last {
                    println!("{waiting}");
                    last = waiting;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("error: timed out waiting for the rollout of deployment {name:?}");
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
        let check = |v: Value, expected: Result<&str, &str>| {
            assert_eq!(
                rollout_status("web", &v),
                expected.map(String::from).map_err(String::from)
            );
        };
        check(
            d(2, 1, 3, 3, 3, 3),
            Err("Waiting for deployment spec update to be observed..."),
        );
        check(
            d(2, 2, 3, 1, 4, 3),
            Err(
                r#"Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 4, 3),
            Err(
                r#"Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 3, 2),
            Err(
                r#"Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available..."#,
            ),
        );
        check(
            d(2, 2, 3, 3, 3, 3),
            Ok(r#"deployment "web" successfully rolled out"#),
        );
    }
}
