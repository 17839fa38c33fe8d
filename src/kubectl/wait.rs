//! `podnet wait --for=CONDITION KIND[/NAME]... [-l SELECTOR | --all]`, as
//! `kubectl wait`: blocks until every object named has the condition
//! (`condition=Ready`, `condition=Available=False`), matches a JSONPath
//! value (`jsonpath={.status.phase}=Running`) or is gone (`delete`), and
//! prints `pod/web-1 condition met` for each; on timeout it says which
//! objects are still waited for and exits 1.
//!
//! The condition test is a plain function of one object; the loop lists
//! the objects again every [`POLL`] until all pass or the time is up.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use podnet_proto::model::{Kind, str_at};
use podnet_proto::v1::ListRequest;
use serde_json::Value;

use podnet_lab::InputError;
use podnet_lab::api::from_state;

use super::jsonpath::Template;
use super::table::object_name;

const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// `KIND NAME...`, `KIND/NAME...`, or `KIND` with `-l` or `--all`.
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// `condition=TYPE[=STATUS]`, `jsonpath=TEMPLATE=VALUE` or `delete`.
    #[arg(long = "for", required = true)]
    pub condition: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Label selector, kubectl syntax.
    #[arg(short = 'l', long, value_parser = crate::kubectl::parse_selector)]
    pub selector: Option<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// How long to wait.
    #[arg(long, default_value = "30s", value_parser = podnet_lab::flags::timeout)]
    pub timeout: Duration,
}

/// What `--for` asks.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Status { ty: String, status: String },
    JsonPath { template: Template, value: String },
    Delete,
}

impl Condition {
    fn parse(text: &str) -> Result<Condition, String> {
        if text == "delete" {
            return Ok(Condition::Delete);
        }
        if let Some(rest) = text.strip_prefix("condition=") {
            let (ty, status) = rest.split_once('=').unwrap_or((rest, "True"));
            if ty.is_empty() {
                return Err(format!("--for {text:?}: no condition type"));
            }
            // kubectl compares the status case-insensitively.
            let status = match status.to_ascii_lowercase().as_str() {
                "true" => "True",
                "false" => "False",
                "unknown" => "Unknown",
                _ => {
                    return Err(format!(
                        "--for {text:?}: a condition's status is True, False or Unknown"
                    ));
                }
            };
            return Ok(Condition::Status {
                ty: ty.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("jsonpath=") {
            let close = rest
                .rfind('}')
                .ok_or_else(|| format!("--for {text:?}: a jsonpath is written {{.field}}=VALUE"))?;
            let (template, value) = rest.split_at(close + 1);
            let value = value.strip_prefix('=').ok_or_else(|| {
                format!("--for {text:?}: a jsonpath condition needs =VALUE after the path")
            })?;
            return Ok(Condition::JsonPath {
                template: Template::parse(template)?,
                value: value.to_string(),
            });
        }
        Err(format!(
            "unrecognized condition: {text:?} (use condition=TYPE[=STATUS], jsonpath={{.path}}=VALUE or delete)"
        ))
    }

    /// Whether `object` (None: it is gone) meets the condition.
    fn met(&self, object: Option<&Value>) -> bool {
        match (self, object) {
            (Condition::Delete, found) => found.is_none(),
            (_, None) => false,
            (Condition::Status { ty, status }, Some(v)) => v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == status),
            (Condition::JsonPath { template, value }, Some(v)) => template.render(v) == *value,
        }
    }

    fn done_word(&self) -> &'static str {
        match self {
            Condition::Delete => "deleted",
            _ => "condition met",
        }
    }
}

/// The objects to wait for: a kind and its names (empty: all matching).
fn targets(args: &WaitArgs) -> Result<(Kind, Vec<String>), String> {
    let mut kind = None;
    let mut names = Vec::new();
    let mut set_kind = |k: &str| -> Result<(), String> {
        let k: Kind = k.parse().map_err(|e| format!("{e}"))?;
        match kind {
            Some(old) if old != k => Err("podnet wait takes one kind at a time".to_string()),
            _ => {
                kind = Some(k);
                Ok(())
            }
        }
    };
    for (i, r) in args.resources.iter().enumerate() {
        match r.split_once('/') {
            Some((k, name)) => {
                set_kind(k)?;
                names.push(name.to_string());
            }
            None if i == 0 => set_kind(r)?,
            None => names.push(r.clone()),
        }
    }
    let kind = kind.ok_or("no kind given")?;
    let by_selection = args.all || args.selector.is_some();
    if names.is_empty() && !by_selection {
        return Err("resource(s) were provided, but no name was specified (give names, -l SELECTOR or --all)".into());
    }
    if !names.is_empty() && by_selection {
        return Err("names cannot be given with -l or --all".into());
    }
    Ok((kind, names))
}

pub async fn run(state: &Path, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let condition = Condition::parse(&args.condition).map_err(InputError)?;
    let (kind, mut names) = targets(&args).map_err(InputError)?;
    let mut api = from_state(state).await?;
    let namespace = if kind.namespaced() {
        args.namespace.clone()
    } else {
        String::new()
    };
    let list = |api: &mut podnet_lab::api::Api| {
        let req = ListRequest {
            kind: kind.as_str().into(),
            namespace: namespace.clone(),
            label_selector: args.selector.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut api = api.clone();
        async move { Ok::<_, anyhow::Error>(podnet_lab::api::list_all(&mut api, req).await?.0) }
    };
    if names.is_empty() {
        // As kubectl: the objects that match now are the ones waited for.
        names = list(&mut api)
            .await?
            .iter()
            .map(|v| str_at(v, "/metadata/name").to_string())
            .collect();
        if names.is_empty() {
            anyhow::bail!("no matching resources found");
        }
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut waiting = names;
    loop {
        let objects = list(&mut api).await?;
        let mut still = Vec::new();
        for name in waiting {
            let found = objects.iter().find(|o| str_at(o, "/metadata/name") == name);
            if condition.met(found) {
                let shown = found.map_or_else(
                    || format!("{}/{name}", kind.as_str().to_lowercase()),
                    |v| object_name(kind, v),
                );
                println!("{shown} {}", condition.done_word());
            } else {
                still.push(name);
            }
        }
        if still.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            for name in &still {
                eprintln!(
                    "error: timed out waiting for the condition on {}/{name}",
                    kind.plural()
                );
            }
            return Ok(ExitCode::FAILURE);
        }
        waiting = still;
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn conditions_as_kubectl_wait_reads_them() {
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}});
        let check = |text: &str, object: Option<&Value>, expected: bool| {
            let c = Condition::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.met(object), expected, "{text}");
        };
        check("condition=Ready", Some(&pod), true);
        check("condition=ready", Some(&pod), false);
        check("condition=Ready=false", Some(&pod), false);
        check("condition=Ready=TRUE", Some(&pod), true);
        check("condition=Available", Some(&pod), false);
        check("condition=Ready", None, false);
        check("jsonpath={.status.phase}=Running", Some(&pod), true);
        check("jsonpath={.status.phase}=Pending", Some(&pod), false);
        check("delete", Some(&pod), false);
        check("delete", None, true);
        for bad in [
            "ready",
            "condition=",
            "condition=Ready=maybe",
            "jsonpath={.a}",
        ] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }
}
