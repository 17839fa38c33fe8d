//! The reachability matrix of NetworkPolicy conformance tools (cyclonus,
//! the upstream e2e netpol suite): every pod of the chosen namespaces
//! probes every pod, live through the real datapath (`nc -z` from the
//! client's namespace to the server's pod IP), and the outcome is a grid
//! with clients as rows and servers as columns, grouped by namespace.
//!
//! [`probe`] does the I/O (bounded in parallel and in time); [`render`],
//! [`parse`] and [`compare`] are pure, so a user can save a rendered
//! matrix, edit the cells they expect, and hand it back (`--expect`).

use std::fmt::Write as _;

use futures::StreamExt;
use podnet_proto::model::view::Protocol;
use serde_json::Value;

use crate::api::{self, Api};

/// Probes at once: enough to finish a 9×9 grid of drops in a few
/// timeouts, few enough not to crowd the nodes.
const PARALLEL: usize = 16;
/// The cell of a reachable pair, as cyclonus prints it.
pub const REACHABLE: char = '.';
/// The cell of a pair that is refused or dropped.
pub const BLOCKED: char = 'X';

/// The toolbox nc's flag for a probe of `protocol`: `-u` for UDP,
/// `--sctp` (ncat's) for SCTP, none for TCP.
pub fn nc_protocol_flag(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Tcp => None,
        Protocol::Udp => Some("-u"),
        Protocol::Sctp => Some("--sctp"),
    }
}

/// A pod of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatrixPod {
    pub namespace: String,
    pub name: String,
    pub ip: String,
}

impl MatrixPod {
    /// `namespace/name`, a row and column label.
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One grid: which client reaches which server on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub port: u16,
    pub protocol: Protocol,
    /// Row and column labels, `namespace/name`, sorted.
    pub pods: Vec<String>,
    /// `reachable[client][server]`.
    pub reachable: Vec<Vec<bool>>,
}

/// The running pods with an address of `namespaces`, sorted by namespace
/// and name.
pub async fn pods_of(api: &mut Api, namespaces: &[String]) -> anyhow::Result<Vec<MatrixPod>> {
    let mut pods = Vec::new();
    for namespace in namespaces {
        let req = podnet_proto::v1::ListRequest {
            kind: "Pod".into(),
            namespace: namespace.clone(),
            ..Default::default()
        };
        let (list, _) = api::list_all(api, req).await?;
        pods.extend(list.iter().filter_map(|p| {
            let ip = p.pointer("/status/podIP").and_then(Value::as_str)?;
            (p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                && p.pointer("/metadata/deletionTimestamp").is_none())
            .then(|| MatrixPod {
                namespace: namespace.clone(),
                name: p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                ip: ip.to_string(),
            })
        }));
    }
    pods.sort();
    Ok(pods)
}

/// Probes every pair of `pods` on `port`/`protocol`, each probe giving up
/// after `timeout_s` seconds.
pub async fn probe(
    api: &Api,
    pods: &[MatrixPod],
    port: u16,
    protocol: Protocol,
    timeout_s: u64,
) -> anyhow::Result<Matrix> {
    let pairs: Vec<(usize, usize)> = (0..pods.len())
        .flat_map(|c| (0..pods.len()).map(move |s| (c, s)))
        .collect();
    let results: Vec<anyhow::Result<(usize, usize, bool)>> =
        futures::stream::iter(pairs.into_iter().map(|(c, s)| {
            let mut api = api.clone();
            let (client, server) = (&pods[c], &pods[s]);
            async move {
                let mut cmd = vec!["nc".to_string(), "-z".into()];
                cmd.extend(nc_protocol_flag(protocol).map(str::to_string));
                cmd.extend([
                    "-w".into(),
                    timeout_s.to_string(),
                    server.ip.clone(),
                    port.to_string(),
                ]);
                let out = api::exec_in(&mut api, &client.namespace, &client.name, &cmd, Vec::new())
                    .await?;
                Ok((c, s, out.exit_code == 0))
            }
        }))
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut reachable = vec![vec![false; pods.len()]; pods.len()];
    for result in results {
        let (c, s, ok) = result?;
        reachable[c][s] = ok;
    }
    Ok(Matrix {
        port,
        protocol,
        pods: pods.iter().map(MatrixPod::label).collect(),
        reachable,
    })
}

/// The grid as text: a `PROTOCOL/PORT` title, a header of servers, a row
/// per client, `.` reachable and `X` blocked.
pub fn render(matrix: &Matrix) -> String {
    let width = matrix.pods.iter().map(String::len).max().unwrap_or(0);
    let mut out = format!(
        "{}/{}\n",
        matrix.protocol.as_str().to_lowercase(),
        matrix.port
    );
    let _ = write!(out, "{:width$}", "");
    for server in &matrix.pods {
        let _ = write!(out, "  {server:width$}");
    }
    out.push('\n');
    for (client, row) in matrix.pods.iter().zip(&matrix.reachable) {
        let _ = write!(out, "{client:width$}");
        for ok in row {
            let cell = if *ok { REACHABLE } else { BLOCKED };
            let _ = write!(out, "  {cell:width$}");
        }
        out.push('\n');
    }
    out
}

/// A matrix a user wrote: the rendered form (title line optional), cells
/// `.` (reachable) or `X` (blocked), one row per client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub servers: Vec<String>,
    pub rows: Vec<(String, Vec<bool>)>,
}

/// Reads an expected matrix; the error says which line is wrong and why.
pub fn parse(text: &str) -> Result<Expected, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (mut n, mut header) = lines.next().ok_or("the matrix is empty")?;
    // An optional title: `tcp/80`.
    if !header.contains(char::is_whitespace) && header.contains('/') && !header.contains(' ') {
        let next = lines.next().ok_or(format!(
            "line {n}: a title and no header of servers after it"
        ))?;
        (n, header) = next;
    }
    let servers: Vec<String> = header.split_whitespace().map(String::from).collect();
    if servers.is_empty() {
        return Err(format!("line {n}: no servers in the header"));
    }
    let mut rows = Vec::new();
    for (n, line) in lines {
        let mut words = line.split_whitespace();
        let client = words.next().unwrap_or_default().to_string();
        let cells = words
            .map(|w| match w {
                "." => Ok(true),
                "X" | "x" => Ok(false),
                other => Err(format!(
                    "line {n}: cell {other:?}: expected . (reachable) or X (blocked)"
                )),
            })
            .collect::<Result<Vec<bool>, String>>()?;
        if cells.len() != servers.len() {
            return Err(format!(
                "line {n}: {client} has {} cells for {} servers",
                cells.len(),
                servers.len()
            ));
        }
        rows.push((client, cells));
    }
    Ok(Expected { servers, rows })
}

/// One cell where the network and the expectation differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub client: String,
    pub server: String,
    pub reachable: bool,
}

/// The cells of `expected` the probed `matrix` contradicts, and the
/// labels `expected` names that the matrix has no pod for.
pub fn compare(matrix: &Matrix, expected: &Expected) -> (Vec<Difference>, Vec<String>) {
    let at = |label: &str| matrix.pods.iter().position(|p| p == label);
    let mut differences = Vec::new();
    let mut unknown = Vec::new();
    for label in expected
        .servers
        .iter()
        .chain(expected.rows.iter().map(|(c, _)| c))
    {
        if at(label).is_none() && !unknown.contains(label) {
            unknown.push(label.clone());
        }
    }
    for (client, cells) in &expected.rows {
        let Some(c) = at(client) else { continue };
        for (server, want) in expected.servers.iter().zip(cells) {
            let Some(s) = at(server) else { continue };
            let got = matrix.reachable[c][s];
            if got != *want {
                differences.push(Difference {
                    client: client.clone(),
                    server: server.clone(),
                    reachable: got,
                });
            }
        }
    }
    (differences, unknown)
}

/// The comparison grid: `.` where the network did as expected, `X` where
/// it did not.
pub fn render_comparison(matrix: &Matrix, differences: &[Difference]) -> String {
    let marked = Matrix {
        reachable: matrix
            .pods
            .iter()
            .map(|c| {
                matrix
                    .pods
                    .iter()
                    .map(|s| !differences.iter().any(|d| &d.client == c && &d.server == s))
                    .collect()
            })
            .collect(),
        ..matrix.clone()
    };
    render(&marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(pods: &[&str], rows: &[&str]) -> Matrix {
        Matrix {
            port: 80,
            protocol: Protocol::Tcp,
            pods: pods.iter().map(|p| p.to_string()).collect(),
            reachable: rows
                .iter()
                .map(|r| r.chars().map(|c| c == REACHABLE).collect())
                .collect(),
        }
    }

    #[test]
    fn a_matrix_renders_as_cyclonus_and_reads_back() {
        let m = grid(&["x/a", "x/b", "y/a"], &["..X", "..X", "..."]);
        let text = render(&m);
        assert_eq!(
            text,
            "tcp/80\n     x/a  x/b  y/a\nx/a  .    .    X  \nx/b  .    .    X  \ny/a  .    .    .  \n"
        );
        let read = parse(&text).unwrap();
        assert_eq!(read.servers, ["x/a", "x/b", "y/a"]);
        assert_eq!(compare(&m, &read), (Vec::new(), Vec::new()));
    }

    #[test]
    fn differing_cells_and_unknown_pods_are_named() {
        let m = grid(&["x/a", "x/b"], &["..", "X."]);
        let expected = parse("x/a x/b z/c\nx/a . X .\nx/b . . .\n").unwrap();
        let (diff, unknown) = compare(&m, &expected);
        assert_eq!(
            diff,
            [
                Difference {
                    client: "x/a".into(),
                    server: "x/b".into(),
                    reachable: true
                },
                Difference {
                    client: "x/b".into(),
                    server: "x/a".into(),
                    reachable: false
                },
            ]
        );
        assert_eq!(unknown, ["z/c"]);
        assert_eq!(
            render_comparison(&m, &diff),
            "tcp/80\n     x/a  x/b\nx/a  .    X  \nx/b  X    .  \n"
        );
    }

    #[test]
    fn a_bad_expected_matrix_says_which_line() {
        for (text, want) in [
            ("", "the matrix is empty"),
            ("x/a x/b\nx/a . ?\n", "line 2: cell \"?\""),
            ("x/a x/b\nx/a .\n", "line 2: x/a has 1 cells for 2 servers"),
            ("tcp/80\n", "line 1: a title and no header"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
