//! The kubectl-like client: finds the cluster through the state directory
//! and speaks the gRPC API. Output looks like kubectl's.

pub mod describe;
pub mod flows;
pub mod jsonpath;
pub mod matrix;
pub mod rollout;
pub mod table;
pub mod tabwriter;
pub mod trace;
pub mod wait;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use podnet_proto::model::view::{NodeView, ServiceView};
use podnet_proto::model::{Kind, LinkSpec, PartitionMode};
use podnet_proto::v1::{DeleteRequest, EvictRequest, ExecRequest, GetRequest, ListRequest};
use serde_json::{Value, json};

use podnet_lab::api::{
    admin_credentials, apply_objects, connect, default_namespace, from_state, link_objects,
    status_error,
};
use podnet_lab::manifest::{self, InputError};
use podnet_lab::record::{ClusterRecord, alive};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest files (`-` for standard input).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Namespace for objects that name none.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Validate on the server without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn apply(state: &Path, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut objects = Vec::new();
    for f in &args.files {
        objects.extend(manifest::read(f)?);
    }
    if objects.is_empty() {
        return Err(InputError("no objects passed to apply".into()).into());
    }
    default_namespace(&mut objects, args.namespace.as_deref().unwrap_or("default"));
    let mut api = from_state(state).await?;
    apply_objects(&mut api, &objects, args.dry_run, &mut std::io::stdout()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `-l`: checked here, with the server's own rules, so a selector the
/// server would refuse (or one too long to send) never leaves the client.
pub fn parse_selector(s: &str) -> Result<String, String> {
    podnet_proto::model::LabelSelector::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// pods, deployments, replicasets, nodes, namespaces, links (or kubectl's short names).
    pub kind: String,
    pub name: Option<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, kubectl syntax.
    #[arg(short = 'l', long, value_parser = parse_selector)]
    pub selector: Option<String>,
    /// wide, yaml, json, name or jsonpath=TEMPLATE.
    #[arg(short, long)]
    pub output: Option<String>,
}

pub async fn get(state: &Path, args: GetArgs) -> anyhow::Result<ExitCode> {
    // `get svc,ep` lists several kinds one after the other, as kubectl does.
    if args.kind.contains(',') {
        if args.name.is_some() {
            return Err(InputError("a name cannot be given with several kinds".into()).into());
        }
        let kinds: Vec<String> = args.kind.split(',').map(str::to_string).collect();
        for (i, kind) in kinds.into_iter().enumerate() {
            if i > 0 {
                println!();
            }
            Box::pin(get(
                state,
                GetArgs {
                    kind,
                    ..args.clone()
                },
            ))
            .await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let kind: Kind = args.kind.parse().map_err(|e| InputError(format!("{e}")))?;
    let format = table::Format::parse(args.output.as_deref()).map_err(InputError)?;
    let mut api = from_state(state).await?;
    let mut stdout = std::io::stdout();
    if let Some(name) = &args.name {
        let req = GetRequest {
            kind: kind.as_str().into(),
            namespace: args.namespace.clone(),
            name: name.clone(),
        };
        let resp = api.get(req).await.map_err(status_error)?.into_inner();
        let v: Value = serde_json::from_slice(&resp.object)?;
        let tabular = matches!(format, table::Format::Table | table::Format::Wide);
        write!(stdout, "{}", table::render_one(kind, &v, format, false)?)?;
        if kind == Kind::Endpoints && tabular {
            print_endpoints_hints(&mut api, std::slice::from_ref(&v)).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let namespace = if args.all_namespaces {
        String::new()
    } else {
        args.namespace.clone()
    };
    let req = ListRequest {
        kind: kind.as_str().into(),
        namespace: namespace.clone(),
        label_selector: args.selector.clone().unwrap_or_default(),
        ..Default::default()
    };
    let (items, revision) = podnet_lab::api::list_all(&mut api, req).await?;
    if items.is_empty() && matches!(format, table::Format::Table | table::Format::Wide) {
        if kind.namespaced() && !args.all_namespaces {
            eprintln!("No resources found in {} namespace.", args.namespace);
        } else {
            eprintln!("No resources found");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tabular = matches!(format, table::Format::Table | table::Format::Wide);
    write!(
        stdout,
        "{}",
        table::render_list(kind, &items, format, args.all_namespaces, revision)?
    )?;
    if kind == Kind::Endpoints && tabular {
        print_endpoints_hints(&mut api, &items).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `hint:` lines on stderr for the Endpoints of `items` that have no
/// addresses (`table::endpoints_hints`).
async fn print_endpoints_hints(
    api: &mut podnet_lab::api::Api,
    items: &[Value],
) -> anyhow::Result<()> {
    if !items.iter().any(|e| table::endpoints_text(e) == "<none>") {
        return Ok(());
    }
    // Every namespace's: the hints match each Endpoints to its own.
    let services = podnet_lab::api::list_objects(api, "Service", "").await?;
    let pods = podnet_lab::api::list_objects(api, "Pod", "").await?;
    for hint in table::endpoints_hints(items, &services, &pods) {
        eprintln!("hint: {hint}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub kind: String,
    pub names: Vec<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Seconds a pod gets to stop (negative: the pod's own
    /// terminationGracePeriodSeconds); 0 is taken as 1 unless --force.
    #[arg(long, allow_negative_numbers = true)]
    pub grace_period: Option<i64>,
    /// Remove the object at once, without waiting for its node to confirm
    /// the pod stopped (the grace period defaults to 0).
    #[arg(long)]
    pub force: bool,
    /// Delete with a grace period of 1 (the object is gone as soon as
    /// possible).
    #[arg(long, conflicts_with = "grace_period")]
    pub now: bool,
}

/// The grace period kubectl sends: `--now` is 1; `--grace-period 0` is 1
/// unless `--force` ("to prevent accidental data loss"); `--force` alone
/// is 0; a negative period is none (the pod's own).
fn delete_grace_period(grace_period: Option<i64>, force: bool, now: bool) -> Option<i64> {
    let grace = if now {
        Some(1)
    } else {
        grace_period.filter(|g| *g >= 0)
    };
    match grace {
        Some(0) if !force => Some(1),
        None if force => Some(0),
        other => other,
    }
}

pub async fn delete(state: &Path, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.kind.parse().map_err(|e| InputError(format!("{e}")))?;
    if args.names.is_empty() {
        return Err(
            InputError("resource(s) were provided, but no name was specified".into()).into(),
        );
    }
    let grace_period_seconds = delete_grace_period(args.grace_period, args.force, args.now);
    let forced = args.force && grace_period_seconds == Some(0);
    if forced {
        eprintln!(
            "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely."
        );
    }
    let mut api = from_state(state).await?;
    for name in &args.names {
        let req = DeleteRequest {
            kind: kind.as_str().into(),
            namespace: args.namespace.clone(),
            name: name.clone(),
            grace_period_seconds,
            resource_version: String::new(),
        };
        api.delete(req).await.map_err(status_error)?;
        let how = if forced { "force deleted" } else { "deleted" };
        println!("{} \"{name}\" {how}", kind.as_str().to_ascii_lowercase());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct EvictArgs {
    /// The pods to evict.
    #[arg(required = true)]
    pub pods: Vec<String>,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Seconds each pod gets to stop (negative: the pod's own
    /// terminationGracePeriodSeconds), as `kubectl drain --grace-period`.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "node_pressure")]
    pub grace_period: Option<i64>,
    /// Have the pod's node evict it as its kubelet does when the node runs
    /// low on RESOURCE (memory when not given): the pod is killed and kept
    /// as Failed with reason Evicted, and its controller replaces it.
    #[arg(
        long,
        value_name = "RESOURCE",
        num_args = 0..=1,
        default_missing_value = "memory",
        value_parser = ["memory", "ephemeral-storage", "pids"]
    )]
    pub node_pressure: Option<String>,
}

/// `podnet evict`: the Eviction API (no PodDisruptionBudgets in podnet, so
/// the pod is deleted gracefully), or with `--node-pressure` the node's
/// own eviction.
pub async fn evict(state: &Path, args: EvictArgs) -> anyhow::Result<ExitCode> {
    let mut api = from_state(state).await?;
    for name in &args.pods {
        let req = EvictRequest {
            namespace: args.namespace.clone(),
            name: name.clone(),
            grace_period_seconds: args.grace_period.filter(|g| *g >= 0),
            node_pressure: args.node_pressure.clone().unwrap_or_default(),
        };
        let answer = api.evict(req).await.map_err(status_error)?.into_inner();
        match &args.node_pressure {
            None => println!("pod/{name} evicted"),
            Some(_) => println!(
                "pod/{name} evicted by its node: {}",
                answer.message.trim_end()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ClusterInfoArgs {
    /// json, or jsonpath=TEMPLATE (e.g. `{.dns.port}`).
    #[arg(short, long)]
    pub output: Option<String>,
}

pub async fn cluster_info(state: &Path, args: ClusterInfoArgs) -> anyhow::Result<ExitCode> {
    let template = match args.output.as_deref() {
        None | Some("json") => None,
        Some(other) => match other.strip_prefix("jsonpath=") {
            Some(t) => Some(jsonpath::Template::parse(t).map_err(InputError)?),
            None => {
                return Err(InputError(format!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: json, jsonpath"
                ))
                .into());
            }
        },
    };
    let record = ClusterRecord::read(state)?;
    let mut api = connect(&record.controlplane, &admin_credentials(state)?)
        .await
        .map_err(|e| podnet_lab::failure::unreachable(state, e))?;
    let nodes = api
        .list(ListRequest {
            kind: "Node".into(),
            ..Default::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut node_info = Vec::new();
    for b in &nodes.items {
        let n: Value = serde_json::from_slice(b)?;
        let ann = |k: &str| {
            n.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let pid: u32 = ann(podnet_proto::model::ANNOTATION_PID)
            .parse()
            .unwrap_or(0);
        node_info.push(json!({
            "name": n.pointer("/metadata/name"),
            "pid": pid,
            "running": alive(pid),
            "ready": NodeView(&n).ready(),
            "internalIP": NodeView(&n).internal_ip().map(|ip| ip.to_string()).unwrap_or_default(),
            "podCIDR": n.pointer("/spec/podCIDR"),
            "underlay": ann(podnet_proto::model::ANNOTATION_UNDERLAY),
            "agent": ann(podnet_proto::model::ANNOTATION_AGENT),
            "hostDNS": ann(podnet_proto::model::ANNOTATION_HOST_DNS),
            "metrics": ann(podnet_proto::model::ANNOTATION_METRICS),
        }));
    }
    let dns = node_info
        .iter()
        .find(|n| n["ready"] == true && n["hostDNS"].as_str().is_some_and(|a| !a.is_empty()))
        .map(|n| n["hostDNS"].clone())
        .unwrap_or(Value::Null);
    let info = json!({
        "controlplane": {
            "address": record.controlplane,
            "pid": record.controlplane_pid,
            "metrics": record.controlplane_metrics,
        },
        "dns": {
            "address": dns,
            "ip": dns.as_str().and_then(|a| a.rsplit_once(':')).map(|(ip, _)| ip),
            "port": dns
                .as_str()
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, port)| port.parse::<u16>().ok()),
        },
        "supervisor": {"pid": record.supervisor_pid},
        "edge": {
            "pid": record.edge_pid,
            "running": alive(record.edge_pid),
            "lbPool": record.lb_pool.map(|p| p.to_string()),
            "metrics": record.edge_metrics,
            "listeners": edge_listeners(&mut api).await?,
        },
        "nodes": node_info,
    });
    if let Some(template) = template {
        print!("{}", template.render(&info));
        return Ok(ExitCode::SUCCESS);
    }
    if args.output.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Control plane is running at {} (pid {})",
        record.controlplane, record.controlplane_pid
    );
    if let Some(m) = &record.controlplane_metrics {
        println!("  metrics at http://{m}/metrics");
    }
    if let Some(dns) = info["dns"]["address"].as_str() {
        let (ip, port) = dns.rsplit_once(':').unwrap_or((dns, "53"));
        println!(
            "CoreDNS is running at {dns} (dig @{ip} -p {port} kubernetes.default.svc.cluster.local)"
        );
    }
    let edge = &info["edge"];
    println!(
        "Edge load balancer is {} (pid {}) with LoadBalancer pool {}",
        if edge["running"] == true {
            "running"
        } else {
            "not running"
        },
        record.edge_pid,
        edge["lbPool"].as_str().unwrap_or("<none>"),
    );
    if let Some(m) = &record.edge_metrics {
        println!("  metrics at http://{m}/metrics");
    }
    for l in edge["listeners"].as_array().into_iter().flatten() {
        println!(
            "  {}:{}/{} -> service {} port {}",
            l["address"].as_str().unwrap_or(""),
            l["port"],
            l["protocol"].as_str().unwrap_or(""),
            l["service"].as_str().unwrap_or(""),
            l["servicePort"],
        );
    }
    for n in &node_info {
        println!(
            "Node {} is {} at {} (pid {}, podCIDR {}, overlay {})",
            n["name"].as_str().unwrap_or(""),
            if n["ready"].as_bool() == Some(true) {
                "Ready"
            } else {
                "NotReady"
            },
            n["internalIP"].as_str().unwrap_or(""),
            n["pid"],
            n["podCIDR"].as_str().unwrap_or(""),
            n["underlay"].as_str().unwrap_or(""),
        );
        if let Some(m) = n["metrics"].as_str().filter(|m| !m.is_empty()) {
            println!("  metrics at http://{m}/metrics");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the edge listens on the host: every LoadBalancer Service's
/// address and real host port, with the Service port it forwards to.
async fn edge_listeners(api: &mut podnet_lab::api::Api) -> anyhow::Result<Vec<Value>> {
    let services = podnet_lab::api::list_objects(api, "Service", "").await?;
    let mut listeners = Vec::new();
    for v in &services {
        let svc = ServiceView(v);
        let Some(ip) = svc.load_balancer_ip() else {
            continue;
        };
        let name = format!(
            "{}/{}",
            v.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        for (port, real) in svc.ports().zip(svc.host_ports()) {
            let (Some(real), Some(protocol)) = (real, port.protocol()) else {
                continue;
            };
            listeners.push(json!({
                "address": ip.to_string(),
                "port": real,
                "protocol": protocol.as_str(),
                "service": name,
                "servicePort": port.port(),
            }));
        }
    }
    Ok(listeners)
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub pod: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass standard input to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub async fn exec(state: &Path, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let stdin = if args.stdin {
        std::io::read_to_string(std::io::stdin())?.into_bytes()
    } else {
        Vec::new()
    };
    let mut api = from_state(state).await?;
    let req = ExecRequest {
        namespace: args.namespace,
        pod: args.pod,
        container: args.container.unwrap_or_default(),
        command: args.command,
        stdin,
    };
    let resp = api.exec(req).await.map_err(status_error)?.into_inner();
    std::io::stdout().write_all(&resp.stdout)?;
    std::io::stderr().write_all(&resp.stderr)?;
    Ok(ExitCode::from(u8::try_from(resp.exit_code).unwrap_or(1)))
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub action: LinkAction,
}

#[derive(Debug, Subcommand)]
pub enum LinkAction {
    /// Set delay, jitter, loss, rate, duplicate and reorder between two
    /// nodes (both directions unless --one-way), as netem's options.
    Set {
        from: String,
        to: String,
        #[arg(long)]
        delay: Option<String>,
        #[arg(long)]
        jitter: Option<String>,
        #[arg(long)]
        loss: Option<String>,
        #[arg(long)]
        rate: Option<String>,
        /// Share of packets sent twice (e.g. 1%).
        #[arg(long)]
        duplicate: Option<String>,
        /// Share of packets sent at once while the others wait the delay
        /// (e.g. 25%; needs --delay).
        #[arg(long)]
        reorder: Option<String>,
        #[arg(long)]
        one_way: bool,
    },
    /// Cut everything between two nodes: dropped (the senders time out),
    /// or with --reject refused (connects fail with "connection refused",
    /// flows on the link are reset).
    Partition {
        from: String,
        to: String,
        /// Refuse, as an iptables REJECT, rather than drop.
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        one_way: bool,
    },
    /// Remove every setting between two nodes.
    Heal {
        from: String,
        to: String,
        #[arg(long)]
        one_way: bool,
    },
}

pub async fn link(state: &Path, action: LinkAction) -> anyhow::Result<ExitCode> {
    let mut api = from_state(state).await?;
    let (spec, one_way, heal) = match action {
        LinkAction::Set {
            from,
            to,
            delay,
            jitter,
            loss,
            rate,
            duplicate,
            reorder,
            one_way,
        } => (
            LinkSpec {
                from,
                to,
                delay,
                jitter,
                loss,
                rate,
                duplicate,
                reorder,
                ..Default::default()
            },
            one_way,
            false,
        ),
        LinkAction::Partition {
            from,
            to,
            reject,
            one_way,
        } => (
            LinkSpec {
                from,
                to,
                partition: true,
                partition_mode: Some(if reject {
                    PartitionMode::Reject
                } else {
                    PartitionMode::Drop
                }),
                ..Default::default()
            },
            one_way,
            false,
        ),
        LinkAction::Heal { from, to, one_way } => (
            LinkSpec {
                from,
                to,
                ..Default::default()
            },
            one_way,
            true,
        ),
    };
    spec.params().map_err(|e| InputError(e.to_string()))?;
    if !heal {
        let nodes = podnet_lab::api::list_objects(&mut api, "Node", "").await?;
        let names: Vec<&str> = nodes.iter().map(|n| NodeView(n).meta().name()).collect();
        spec.check_nodes(&names)
            .map_err(|e| InputError(e.to_string()))?;
    }
    let objects = link_objects(&spec, one_way);
    if heal {
        for o in &objects {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let req = DeleteRequest {
                kind: "Link".into(),
                name: name.into(),
                ..Default::default()
            };
            match api.delete(req).await {
                Ok(_) => println!("link/{name} healed"),
                Err(s) if s.code() == tonic::Code::NotFound => println!("link/{name} unchanged"),
                Err(s) => return Err(status_error(s)),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    apply_objects(&mut api, &objects, false, &mut std::io::stdout()).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    pub kind: String,
    pub name: String,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

pub async fn describe(state: &Path, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.kind.parse().map_err(|e| InputError(format!("{e}")))?;
    let mut api = from_state(state).await?;
    let get = |kind: Kind| GetRequest {
        kind: kind.as_str().into(),
        namespace: args.namespace.clone(),
        name: args.name.clone(),
    };
    let object: Value = serde_json::from_slice(
        &api.get(get(kind))
            .await
            .map_err(status_error)?
            .into_inner()
            .object,
    )?;
    let lister = api.clone();
    let list = |kind: Kind| {
        let req = ListRequest {
            kind: kind.as_str().into(),
            namespace: args.namespace.clone(),
            ..Default::default()
        };
        let mut api = lister.clone();
        async move { Ok::<_, anyhow::Error>(podnet_lab::api::list_all(&mut api, req).await?.0) }
    };
    if kind == Kind::NetworkPolicy {
        print!("{}", describe::network_policy(&object));
        return Ok(ExitCode::SUCCESS);
    }
    if !matches!(
        kind,
        Kind::Service | Kind::Pod | Kind::Ingress | Kind::Deployment | Kind::ReplicaSet
    ) {
        print!("{}", describe::other(kind, &object)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The events about this object, as kubectl matches them.
    let uid = object.pointer("/metadata/uid").and_then(Value::as_str);
    let events: Vec<Value> = list(Kind::Event)
        .await?
        .into_iter()
        .filter(|e| {
            let involved = |f: &str| {
                e.pointer(&format!("/involvedObject/{f}"))
                    .and_then(Value::as_str)
            };
            involved("kind") == Some(kind.as_str())
                && involved("name") == Some(args.name.as_str())
                && (involved("uid").is_none_or(str::is_empty) || involved("uid") == uid)
        })
        .collect();
    let text = match kind {
        Kind::Service => {
            let endpoints = match api.get(get(Kind::Endpoints)).await {
                Ok(r) => serde_json::from_slice::<Value>(&r.into_inner().object).ok(),
                Err(s) if s.code() == tonic::Code::NotFound => None,
                Err(s) => return Err(status_error(s)),
            };
            describe::service(&object, endpoints.as_ref(), &events)
        }
        Kind::Pod => {
            let policies = selecting_policies(&object, &list(Kind::NetworkPolicy).await?);
            describe::pod(&object, &policies, &events)
        }
        Kind::Deployment => describe::deployment(&object, &list(Kind::ReplicaSet).await?, &events),
        Kind::ReplicaSet => describe::replica_set(&object, &list(Kind::Pod).await?, &events),
        _ => {
            let services = list(Kind::Service).await?;
            let endpoints = list(Kind::Endpoints).await?;
            describe::ingress(&object, &services, &endpoints, &events)
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The NetworkPolicies of `pod`'s namespace whose podSelector selects it,
/// as `name (Ingress, Egress)`: the directions each isolates it for.
fn selecting_policies(pod: &Value, policies: &[Value]) -> Vec<String> {
    let info = podnet_node::policy::pod_info(pod);
    let mut out: Vec<String> = policies
        .iter()
        .filter(|p| podnet_proto::model::str_at(p, "/metadata/namespace") == info.key.namespace)
        .filter_map(|p| {
            let policy = serde_json::from_value(p.clone()).ok()?;
            let compiled = podnet_netpol::compile(&policy).ok()?;
            compiled.selects(&info).then(|| {
                let types: Vec<&str> = [
                    podnet_netpol::Direction::Ingress,
                    podnet_netpol::Direction::Egress,
                ]
                .into_iter()
                .filter(|d| compiled.isolates(*d))
                .map(podnet_netpol::Direction::as_str)
                .collect();
                format!(
                    "{} ({})",
                    podnet_proto::model::str_at(p, "/metadata/name"),
                    types.join(", ")
                )
            })
        })
        .collect();
    out.sort();
    out
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// deployment or replicaset.
    pub kind: String,
    pub name: String,
    #[arg(long)]
    pub replicas: u32,
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
}

pub async fn scale(state: &Path, args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let kind: Kind = args.kind.parse().map_err(|e| InputError(format!("{e}")))?;
    if !matches!(kind, Kind::Deployment | Kind::ReplicaSet) {
        return Err(InputError(format!(
            "cannot scale {}: deployments and replicasets scale",
            kind.plural()
        ))
        .into());
    }
    let mut api = from_state(state).await?;
    podnet_lab::api::scale(
        &mut api,
        kind.as_str(),
        &args.namespace,
        &args.name,
        args.replicas,
    )
    .await?;
    println!(
        "{}/{} scaled",
        kind.as_str().to_ascii_lowercase(),
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_pod_lists_the_policies_of_its_namespace_that_select_it() {
        let pod = serde_json::json!({"metadata": {"namespace": "shop", "name": "b", "labels": {"app": "backend"}}});
        let policy = |ns: &str, name: &str, spec: Value| serde_json::json!({"metadata": {"namespace": ns, "name": name}, "spec": spec});
        let policies = [
            policy(
                "shop",
                "zz-lockdown",
                serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            ),
            policy(
                "shop",
                "allow-frontend-only",
                serde_json::json!({"podSelector": {"matchLabels": {"app": "backend"}}, "ingress": [{}]}),
            ),
            policy(
                "shop",
                "web-only",
                serde_json::json!({"podSelector": {"matchLabels": {"app": "web"}}}),
            ),
            policy("other", "all", serde_json::json!({"podSelector": {}})),
        ];
        assert_eq!(
            selecting_policies(&pod, &policies),
            [
                "allow-frontend-only (Ingress)",
                "zz-lockdown (Ingress, Egress)"
            ]
        );
    }

    #[test]
    fn delete_grace_period_as_kubectl() {
        let check = |grace: Option<i64>, force: bool, now: bool, expected: Option<i64>| {
            assert_eq!(
                delete_grace_period(grace, force, now),
                expected,
                "--grace-period {grace:?} --force {force} --now {now}"
            );
        };
        check(None, false, false, None);
        check(Some(10), false, false, Some(10));
        check(Some(0), false, false, Some(1));
        check(Some(0), true, false, Some(0));
        check(None, true, false, Some(0));
        check(Some(5), true, false, Some(5));
        check(Some(-1), false, false, None);
        check(Some(-1), true, false, Some(0));
        check(None, false, true, Some(1));
    }
}
