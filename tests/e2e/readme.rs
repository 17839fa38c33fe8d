//! README's walkthroughs, line by line, in order, against a fresh cluster
//! while another podnet cluster runs on the machine: every line must do
//! what its comment says. Each README line has its check here, and a check
//! whose line is gone or changed fails the test, so README cannot drift
//! from what podnet does.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{BIN, Cluster, eventually, text};

/// What one README line printed.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> Result<&str, String> {
        match self.code {
            Some(0) => Ok(&self.stdout),
            code => Err(format!(
                "exit {code:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )),
        }
    }

    /// Exit 0 and every one of `parts` in stdout.
    fn has(&self, parts: &[&str]) -> Result<(), String> {
        let out = self.ok()?;
        match parts.iter().find(|p| !out.contains(*p)) {
            Some(missing) => Err(format!("{missing:?} not in:\n{out}")),
            None => Ok(()),
        }
    }
}

/// The shell the README's lines run in: this build's podnet first on
/// PATH, the repository as working directory, the walkthrough's own state
/// dir, and the variables earlier lines set.
struct Walk {
    state: PathBuf,
    path: String,
    vars: BTreeMap<String, String>,
}

impl Walk {
    fn new(state: PathBuf) -> Walk {
        let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
        Walk {
            state,
            path: format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            vars: BTreeMap::new(),
        }
    }

    fn bash(&self, script: &str) -> Ran {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &self.path)
            .env("PODNET_STATE_DIR", &self.state)
            .envs(&self.vars)
            .output()
            .expect("run bash");
        Ran {
            code: out.status.code(),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        }
    }

    fn var(&self, name: &str) -> &str {
        self.vars.get(name).map_or("", String::as_str)
    }

    /// A value from the running cluster, for a check.
    fn podnet(&self, args: &str) -> String {
        let ran = self.bash(&format!("podnet {args}"));
        ran.ok()
            .unwrap_or_else(|e| panic!("podnet {args}: {e}"))
            .trim()
            .to_string()
    }

    fn json(&self, args: &str) -> Value {
        serde_json::from_str(&self.podnet(args)).expect("json")
    }
}

type Check = Box<dyn Fn(&Ran, &Walk) -> Result<(), String>>;

/// One README line: the command as README has it (without its comment),
/// and what it must do. `retry`: the comment states what a user sees once
/// the cluster has followed the change (a route, a scaled-down DNS), so
/// the line is run again for a few seconds until it does.
struct Step {
    command: &'static str,
    retry: bool,
    check: Check,
}

fn step(
    command: &'static str,
    check: impl Fn(&Ran, &Walk) -> Result<(), String> + 'static,
) -> Step {
    Step {
        command,
        retry: false,
        check: Box::new(check),
    }
}

fn settling(
    command: &'static str,
    check: impl Fn(&Ran, &Walk) -> Result<(), String> + 'static,
) -> Step {
    Step {
        command,
        retry: true,
        check: Box::new(check),
    }
}

/// The commands of the first ```sh block after `heading`, without their
/// comments, blank lines left out.
fn block(readme: &str, heading: &str) -> Vec<String> {
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + rest[start..].find("```").expect("the block's end");
    rest[start..end]
        .lines()
        .map(strip_comment)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The line without a trailing `# comment` (a `#` after whitespace, outside
/// quotes).
fn strip_comment(line: &str) -> String {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return line[..i].trim().to_string(),
            _ => {}
        }
        prev = c;
    }
    line.trim().to_string()
}

/// `NAME=$(...)`: the variable a line sets.
fn assignment(command: &str) -> Option<&str> {
    let (name, value) = command.split_once('=')?;
    (value.starts_with("$(") && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .then_some(name)
}

/// The line that builds podnet and puts it on PATH: the test has built it
/// already and puts this build first on PATH instead.
const BUILD: &str = "cargo build --release && export PATH=$PWD/target/release:$PATH";

fn follow(walk: &mut Walk, lines: &[String], steps: &[Step]) {
    let commands: Vec<&str> = steps.iter().map(|s| s.command).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(
        lines, commands,
        "README's walkthrough and its checks differ: a changed line needs its check changed"
    );
    for s in steps {
        if s.command == BUILD {
            continue;
        }
        if s.command == "podnet down" {
            // What must be gone afterwards.
            let record =
                podnet_lab::record::ClusterRecord::read(&walk.state).expect("a cluster record");
            let pids: Vec<String> = record
                .role_pids()
                .chain([record.supervisor_pid])
                .map(|p| p.to_string())
                .collect();
            walk.vars.insert("PIDS".into(), pids.join(" "));
        }
        // A line that sets a variable prints its value, for the check and
        // for the lines after it.
        let script = match assignment(s.command) {
            Some(name) => format!("{}; printf %s \"${name}\"", s.command),
            None => s.command.to_string(),
        };
        let run = |walk: &Walk| {
            let ran = walk.bash(&script);
            (s.check)(&ran, walk).map(|()| ran)
        };
        let ran = if s.retry {
            eventually(
                &format!("README line `{}` to do what it says", s.command),
                Duration::from_secs(20),
                || run(walk).ok(),
            )
        } else {
            run(walk).unwrap_or_else(|e| panic!("README line `{}`: {e}", s.command))
        };
        if let Some(name) = assignment(s.command) {
            walk.vars.insert(name.to_string(), ran.stdout);
        }
    }
}

fn ip(text: &str) -> Result<Ipv4Addr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an address"))
}

fn echo(ran: &Ran) -> Result<Value, String> {
    serde_json::from_str(ran.ok()?.trim()).map_err(|e| format!("not an echo ({e}): {}", ran.stdout))
}

/// `podnet down`: it says so, and none of the processes the cluster record
/// held before it (`PIDS`) is alive.
fn nothing_left_running(r: &Ran, w: &Walk) -> Result<(), String> {
    r.has(&["stopped"])?;
    let alive: Vec<&str> = w
        .var("PIDS")
        .split(' ')
        .filter(|p| p.parse().is_ok_and(podnet_lab::record::alive))
        .collect();
    alive
        .is_empty()
        .then_some(())
        .ok_or(format!("processes left running: {alive:?}"))
}

fn first_block() -> Vec<Step> {
    vec![
        step(BUILD, |_, _| Ok(())),
        step("podnet up --nodes 3", |r, _| r.has(&["3 nodes Ready"])),
        step(
            "podnet apply -f scenarios/manifests/quickstart.yaml",
            |r, _| r.has(&["deployment/web created", "pod/client created"]),
        ),
        step("podnet rollout status deployment/web", |r, _| {
            r.has(&[r#"deployment "web" successfully rolled out"#])
        }),
        step("podnet wait --for=condition=Ready pod/client", |r, _| {
            r.has(&["pod/client condition met"])
        }),
        step("podnet get pods -o wide", |r, w| {
            r.has(&["client", "Running", "IP"])?;
            let pods = w.json("get pods -o json");
            for p in pods["items"].as_array().into_iter().flatten() {
                let ip = p["status"]["podIP"].as_str().unwrap_or("");
                if !r.stdout.contains(ip) || !ip.starts_with("10.244.") {
                    return Err(format!(
                        "pod IP {ip:?} not shown from a podCIDR:\n{}",
                        r.stdout
                    ));
                }
            }
            Ok(())
        }),
        step(
            "WEB=$(podnet get pods -l app=web -o jsonpath='{.items[0].status.podIP}')",
            |r, w| {
                let pods = w.podnet("get pods -l app=web -o jsonpath={.items[*].status.podIP}");
                let web = ip(r.ok()?)?;
                pods.split(' ')
                    .any(|p| p == web.to_string())
                    .then_some(())
                    .ok_or(format!("{web} is not a web pod's IP ({pods})"))
            },
        ),
        step("podnet exec client -- curl -s http://$WEB:8080/", |r, w| {
            let echo = echo(r)?;
            let client = w.podnet("get pod client -o jsonpath={.status.podIP}");
            let shown = echo["client"].as_str().unwrap_or("");
            if shown.starts_with(&format!("{client}:")) && echo["podIP"] == w.var("WEB") {
                Ok(())
            } else {
                Err(format!(
                    "the echo does not show the client pod {client}: {echo}"
                ))
            }
        }),
        step("podnet exec client -- ping -c 3 $WEB", |r, _| {
            r.has(&["3 packets transmitted, 3 received"])
        }),
        step("podnet exec client -- traceroute -n $WEB", |r, w| {
            let out = r.ok()?;
            let hops: Vec<&str> = out.lines().skip(1).collect();
            let client_node = w.podnet("get pod client -o jsonpath={.spec.nodeName}");
            let cidr = w.podnet(&format!(
                "get node {client_node} -o jsonpath={{.spec.podCIDR}}"
            ));
            let gateway = cidr.trim_end_matches(".0/24").to_string() + ".1";
            let web = w.var("WEB");
            let first = hops.first().copied().unwrap_or("");
            let last = hops.last().copied().unwrap_or("");
            (first.starts_with(&format!(" 1  {gateway} "))
                && last.contains(&format!("  {web}  "))
                && (2..=3).contains(&hops.len()))
            .then_some(())
            .ok_or(format!(
                "not the gateway {gateway} first and {web} last:\n{out}"
            ))
        }),
        step(
            "podnet apply -f scenarios/manifests/services.yaml",
            |r, _| {
                r.has(&[
                    "service/web created",
                    "service/web-headless created",
                    "service/shop created",
                ])
            },
        ),
        step("podnet rollout status deployment/web", |r, _| {
            r.has(&[r#"deployment "web" successfully rolled out"#])
        }),
        step("podnet get svc; podnet get endpoints web", |r, _| {
            r.has(&["NodePort", "80:30080/TCP", "ExternalName", "ENDPOINTS"])?;
            let row = r.stdout.lines().last().unwrap_or("");
            if row.starts_with("web ") && row.contains(":8080") {
                Ok(())
            } else {
                Err(format!("no ready endpoints shown for web:\n{}", r.stdout))
            }
        }),
        step("podnet exec toolbox -- cat /etc/resolv.conf", |r, _| {
            r.has(&[
                "search default.svc.cluster.local svc.cluster.local cluster.local",
                "nameserver 10.96.0.10",
                "ndots:5",
            ])
        }),
        step("podnet exec toolbox -- nslookup web", |r, w| {
            let cluster_ip = w.podnet("get svc web -o jsonpath={.spec.clusterIP}");
            r.has(&[
                "Server:\t\t10.96.0.10",
                "Name:\tweb.default.svc.cluster.local",
                &format!("Address: {cluster_ip}"),
            ])
        }),
        step("podnet exec toolbox -- curl -s http://web/", |r, w| {
            let echo = echo(r)?;
            let ready = w.podnet("get endpoints web");
            let pod_ip = echo["podIP"].as_str().unwrap_or("-");
            if echo["pod"].as_str().is_some_and(|p| p.starts_with("web-")) && ready.contains(pod_ip)
            {
                Ok(())
            } else {
                Err(format!("not a ready web pod: {echo}\n{ready}"))
            }
        }),
        step("podnet exec toolbox -- env", |r, w| {
            let cluster_ip = w.podnet("get svc web -o jsonpath={.spec.clusterIP}");
            r.has(&[
                &format!("WEB_SERVICE_HOST={cluster_ip}\n"),
                "WEB_SERVICE_PORT=80\n",
                &format!("WEB_PORT=tcp://{cluster_ip}:80\n"),
                "KUBERNETES_SERVICE_HOST=10.96.0.1\n",
            ])
        }),
        step(
            "podnet exec toolbox -- sh -c 'wget -qO- http://web/ && echo reached web'",
            |r, _| r.has(&["\"pod\":\"web-", "reached web"]),
        ),
        step("podnet describe svc web", |r, _| {
            r.has(&[
                "Name:                     web",
                "Selector:                 app=web",
                "External Traffic Policy:  Cluster",
                "Endpoints:",
            ])
        }),
        settling("podnet describe pod toolbox", |r, _| {
            r.has(&[
                "Scheduled",
                "default-scheduler",
                "Pulled",
                "Created",
                "Started",
                "kubelet",
            ])
        }),
        step("podnet cluster-info", |r, w| {
            r.has(&[
                "Control plane is running at",
                "CoreDNS is running at",
                "Edge load balancer is running",
                "LoadBalancer pool",
                "Node node-3 is Ready",
            ])?;
            let pool = w.podnet("cluster-info -o jsonpath={.edge.lbPool}");
            let other = w.var("OTHER_POOL");
            if pool == other {
                return Err(format!("this cluster's pool {pool} is the other cluster's"));
            }
            Ok(())
        }),
        step(
            "dig @127.0.0.1 -p $(podnet cluster-info -o jsonpath='{.dns.port}') +short web.default.svc.cluster.local",
            |r, w| {
                let cluster_ip = w.podnet("get svc web -o jsonpath={.spec.clusterIP}");
                (r.ok()?.trim() == cluster_ip).then_some(()).ok_or(format!(
                    "dig answered {:?}, the ClusterIP is {cluster_ip}",
                    r.stdout
                ))
            },
        ),
        step(
            "podnet scale deployment coredns -n kube-system --replicas 0",
            |r, _| r.has(&["deployment/coredns scaled"]),
        ),
        settling("podnet exec toolbox -- nslookup web", |r, _| {
            if r.code == Some(1) && r.stdout.contains("no servers could be reached") {
                Ok(())
            } else {
                Err(format!("lookups still answered: {:?} {}", r.code, r.stdout))
            }
        }),
        step(
            "podnet scale deployment coredns -n kube-system --replicas 2",
            |r, _| r.has(&["deployment/coredns scaled"]),
        ),
        step(
            "podnet link set node-1 node-2 --delay 20ms --loss 1%",
            |r, w| {
                r.has(&["link/node-1.node-2", "link/node-2.node-1"])?;
                let links = w.podnet("get links");
                links
                    .lines()
                    .any(|l| {
                        l.starts_with("node-1.node-2 ") && l.contains("20ms") && l.contains('1')
                    })
                    .then_some(())
                    .ok_or(format!("the link is not set:\n{links}"))
            },
        ),
        step(
            "podnet link set node-1 node-2 --delay 10ms --reorder 25% --duplicate 1%",
            |r, w| {
                r.has(&["link/node-1.node-2", "link/node-2.node-1"])?;
                link_line(w, "node-1.node-2", &["10ms", "25%", "1%"])
            },
        ),
        step("podnet link partition node-1 node-3", |r, w| {
            r.has(&["link/node-1.node-3", "link/node-3.node-1"])?;
            link_line(w, "node-1.node-3", &["Drop"])
        }),
        step("podnet link partition node-1 node-3 --reject", |r, w| {
            r.has(&["link/node-1.node-3", "link/node-3.node-1"])?;
            link_line(w, "node-1.node-3", &["Reject"])?;
            link_line(w, "node-3.node-1", &["Reject"])
        }),
        step("podnet link heal node-1 node-3", |r, _| {
            r.has(&["link/node-1.node-3 healed", "link/node-3.node-1 healed"])
        }),
        step("podnet down", nothing_left_running),
    ]
}

/// `podnet get links` has a row for `link` holding every one of `parts`.
fn link_line(w: &Walk, link: &str, parts: &[&str]) -> Result<(), String> {
    let links = w.podnet("get links");
    links
        .lines()
        .any(|l| l.starts_with(&format!("{link} ")) && parts.iter().all(|p| l.contains(p)))
        .then_some(())
        .ok_or(format!("no {link} row with {parts:?}:\n{links}"))
}

#[test]
fn readme_walkthroughs_do_what_their_comments_say() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    // Another cluster on the same machine all along.
    let other = Cluster::up(&["--nodes", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let mut w = Walk::new(dir.path().join("state"));
    w.vars.insert(
        "OTHER_POOL".into(),
        other.info()["edge"]["lbPool"].as_str().unwrap_or("").into(),
    );
    follow(
        &mut w,
        &block(&readme, "## Keep a cluster up"),
        &first_block(),
    );
    follow(
        &mut w,
        &block(&readme, "## From the host into the cluster"),
        &second_block(),
    );
}

fn second_block() -> Vec<Step> {
    /// Whether `ip` is in this cluster's LoadBalancer pool.
    fn in_pool(w: &Walk, ip: &str) -> Result<(), String> {
        let pool: ipnet::Ipv4Net = w
            .podnet("cluster-info -o jsonpath={.edge.lbPool}")
            .parse()
            .map_err(|e| format!("pool: {e}"))?;
        let ip = self::ip(ip)?;
        pool.contains(&ip)
            .then_some(())
            .ok_or(format!("{ip} is outside the cluster's pool {pool}"))
    }
    vec![
        step("podnet up", |r, _| {
            r.has(&["3 nodes Ready", "LoadBalancer pool"])
        }),
        step(
            "podnet apply -f scenarios/manifests/ingress.yaml",
            |r, _| {
                r.has(&[
                    "ingress/shop created",
                    "ingress/api created",
                    "secret/shop-tls created",
                ])
            },
        ),
        step(
            "podnet wait --for=condition=Available deployments --all",
            |r, _| {
                r.has(&[
                    "deployment.apps/shop condition met",
                    "deployment.apps/api condition met",
                ])
            },
        ),
        settling("podnet get svc -n podnet-ingress", |r, w| {
            r.has(&["LoadBalancer", "80:3", "443:3"])?;
            let row = r
                .stdout
                .lines()
                .find(|l| l.starts_with("podnet-ingress-controller "))
                .unwrap_or("");
            in_pool(w, row.split_whitespace().nth(3).unwrap_or(""))
        }),
        step(
            "LB=$(podnet get svc podnet-ingress-controller -n podnet-ingress -o jsonpath='{.status.loadBalancer.ingress[0].ip}')",
            |r, w| in_pool(w, r.ok()?),
        ),
        settling("podnet get ingress", |r, w| {
            let lb = w.var("LB");
            let rows: Vec<&str> = r.ok()?.lines().skip(1).collect();
            (rows.len() == 2 && rows.iter().all(|l| l.contains(lb)))
                .then_some(())
                .ok_or(format!("ADDRESS is not {lb}:\n{}", r.stdout))
        }),
        settling(
            "curl -H 'Host: api.example.com' http://$LB/v1/users",
            |r, _| {
                let echo = echo(r)?;
                (echo["pod"].as_str().is_some_and(|p| p.starts_with("api-"))
                    && echo["path"] == "/v1/users")
                    .then_some(())
                    .ok_or(format!("not the api app: {echo}"))
            },
        ),
        settling(
            "curl --resolve shop.example.com:443:$LB --cacert scenarios/manifests/ingress-ca.pem https://shop.example.com/cart",
            |r, _| {
                let echo = echo(r)?;
                echo["pod"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("shop-"))
                    .then_some(())
                    .ok_or(format!("not the shop app: {echo}"))
            },
        ),
        step(
            "ID=$(curl -s -o /dev/null -D - -H 'Host: shop.example.com' http://$LB/ | grep -i x-podnet-trace | cut -d' ' -f2 | tr -d '\\r')",
            |r, _| {
                let id = r.ok()?;
                (id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
                    .then_some(())
                    .ok_or(format!("{id:?} is not a trace id"))
            },
        ),
        settling("podnet trace $ID", |r, w| {
            r.has(&[
                &format!("trace {}", w.var("ID")),
                "edge",
                "proxy",
                "overlay",
                "ingress",
                "pod",
            ])
        }),
        step("podnet trace --last 5", |r, _| r.has(&["trace "])),
        step("podnet describe ingress shop", |r, _| {
            r.has(&["shop.example.com", "shop-tls", "Rules:"])
        }),
        step("podnet down", nothing_left_running),
    ]
}
