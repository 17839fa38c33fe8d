//! `wget`: busybox wget's common options over the same HTTP/1.1 client as
//! `curl` (`super::http_client`), with busybox's messages on stderr and its
//! exit codes (0 ok, 1 for every failure).
//!
//! Options: `-q`, `-O FILE` (`-` prints the body, `/dev/null` discards
//! it), `-S` (response headers on stderr), `-T SECONDS` (bounds connecting
//! and the whole exchange), `--spider`, `--header`, `-U`. Redirects are
//! followed, at most 5, as busybox does.
//!
//! Without `-O`, busybox saves the body to a file named after the URL.
//! Pods have no filesystem: the transfer still runs (so reachability and
//! HTTP errors read as usual) and the body is discarded, with a message
//! saying it was not saved; the exit code is the transfer's. Connecting
//! without `-T` gives up after 10 s (as podnet's curl does), where busybox
//! would wait for the kernel. Deliberately not here: TLS, FTP, `-c`,
//! `--post-data`, proxies, the progress bar.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{CONNECTION, HOST, LOCATION, USER_AGENT};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::http_client::{self, Url, UrlError, error_chain, format_head};
use super::{Output, parse, parse_seconds, resolve_family, strerror};
use crate::netns::NetNs;

/// How long connecting may take without `-T` (see the module doc).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// busybox's redirect limit.
const MAX_REDIRECTS: u32 = 5;
/// busybox's User-Agent.
const USER_AGENT_VALUE: &str = "Wget";

#[derive(Debug, Parser)]
#[command(
    name = "wget",
    about = "Retrieve a URL over plain HTTP (podnet toolbox, busybox options)",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    family: super::FamilyArgs,
    /// Quiet: no status messages (errors are still printed).
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Where the body goes: `-` (stdout) or /dev/null; pods have no files.
    #[arg(short = 'O', long = "output-document", value_name = "FILE")]
    output: Option<String>,
    /// Print the server's response headers on stderr.
    #[arg(short = 'S', long = "server-response")]
    server_response: bool,
    /// Network timeout in SECONDS (fractions allowed).
    #[arg(short = 'T', long = "timeout", value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// Only check that the URL exists; do not download it.
    #[arg(long)]
    spider: bool,
    /// An extra request header `Name: value`.
    #[arg(long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The User-Agent to send.
    #[arg(short = 'U', long = "user-agent", value_name = "AGENT")]
    user_agent: Option<String>,
    url: String,
}

/// Where the body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sink {
    Stdout,
    DevNull,
    /// The file busybox would write, which podnet cannot.
    File(String),
}

/// The file name busybox saves `url` to: the last path segment, else
/// `index.html`.
fn file_name(url: &Url) -> String {
    let path = url.target.split('?').next().unwrap_or("/");
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => "index.html".to_owned(),
    }
}

/// The text after `wget: ` for a URL that cannot be fetched.
fn url_message(url: &str, error: &UrlError) -> String {
    match error {
        UrlError::Scheme(scheme) => {
            format!("unsupported scheme '{scheme}' in {url} (podnet's wget speaks plain http only)")
        }
        UrlError::Invalid(detail) => format!("bad URL '{url}': {detail}"),
    }
}

/// The request headers from `--header` and `-U`, validated before any I/O.
fn extra_headers(args: &Args) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    let agent = args.user_agent.as_deref().unwrap_or(USER_AGENT_VALUE);
    let agent = HeaderValue::from_str(agent).map_err(|_| format!("bad user agent {agent:?}"))?;
    headers.push((USER_AGENT, agent));
    for line in &args.headers {
        let bad = || format!("bad header {line:?}: expected 'Name: value'");
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        if name == USER_AGENT {
            headers.retain(|(n, _)| *n != USER_AGENT);
        }
        headers.push((name, value));
    }
    Ok(headers)
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args: Args = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match fetch(ns, &args, out).await {
        Ok(()) => 0,
        Err(message) => out.fail(1, format!("wget: {message}\n")),
    }
}

/// The transfer; `Err` is busybox's message (without `wget: `).
async fn fetch(ns: &Arc<NetNs>, args: &Args, out: &mut Output) -> Result<(), String> {
    let mut url = http_client::parse_url(&args.url).map_err(|e| url_message(&args.url, &e))?;
    let sink = match args.output.as_deref() {
        Some("-") => Sink::Stdout,
        Some("/dev/null") => Sink::DevNull,
        Some(file) => {
            return Err(format!(
                "can't open '{file}': podnet pods have no filesystem (use -O - or -O /dev/null)"
            ));
        }
        None => Sink::File(file_name(&url)),
    };
    let headers = extra_headers(args)?;
    let started = Instant::now();
    let deadline = args.timeout.filter(|t| !t.is_zero()).map(|t| started + t);
    let mut redirects = 0;
    loop {
        let exchange = exchange(ns, args, &url, &headers, &sink, deadline, out);
        let location = match deadline {
            None => exchange.await?,
            Some(deadline) => tokio::time::timeout_at(deadline, exchange)
                .await
                .map_err(|_| "download timed out".to_owned())??,
        };
        let Some(location) = location else {
            return Ok(());
        };
        redirects += 1;
        if redirects > MAX_REDIRECTS {
            return Err("too many redirections".to_owned());
        }
        url = http_client::follow(&url, &location).map_err(|e| url_message(&location, &e))?;
    }
}

/// One request; `Ok(Some(location))` for a redirect to follow.
async fn exchange(
    ns: &Arc<NetNs>,
    args: &Args,
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    sink: &Sink,
    deadline: Option<Instant>,
    out: &mut Output,
) -> Result<Option<String>, String> {
    let ip = resolve_family(ns, &url.host, args.family.family())
        .await
        .map_err(|_| format!("bad address '{}'", url.host))?;
    if !args.quiet {
        out.eprint(format!("Connecting to {} ({ip}:{})\n", url.host, url.port));
    }
    let connect_deadline = {
        let default = Instant::now() + DEFAULT_CONNECT_TIMEOUT;
        deadline.map_or(default, |d| d.min(default))
    };
    let stream = tokio::time::timeout_at(
        connect_deadline,
        ns.connect_tcp(SocketAddr::new(ip, url.port)),
    )
    .await
    .map_err(|_| "download timed out".to_owned())?
    .map_err(|e| format!("can't connect to remote host ({ip}): {}", strerror(&e)))?;

    let mut request = Request::get(url.target.as_str())
        .header(HOST, url.authority())
        .body(Empty::<Bytes>::new())
        .map_err(|_| format!("bad URL '{}'", url.effective()))?;
    for (name, value) in headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    request
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("error getting response: {}", error_chain(&e)))?;
    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("error getting response: {}", error_chain(&e)))?;
        let head = format_head(&response);
        if args.server_response {
            for line in head.lines().filter(|l| !l.is_empty()) {
                out.eprint(format!("  {line}\n"));
            }
        }
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(LOCATION)
        {
            return Ok(Some(
                String::from_utf8_lossy(location.as_bytes()).into_owned(),
            ));
        }
        if !status.is_success() {
            let status_line = head.lines().next().unwrap_or_default().trim_end();
            return Err(format!("server returned error: {status_line}"));
        }
        if args.spider {
            if !args.quiet {
                out.eprint("remote file exists\n");
            }
            return Ok(None);
        }
        receive(response, args, sink, out).await.map(|()| None)
    };
    http_client::drive(connection, work).await
}

async fn receive(
    response: http::Response<hyper::body::Incoming>,
    args: &Args,
    sink: &Sink,
    out: &mut Output,
) -> Result<(), String> {
    let status = |text: String, out: &mut Output| {
        if !args.quiet {
            out.eprint(text);
        }
    };
    match sink {
        Sink::Stdout => status("writing to stdout\n".to_owned(), out),
        Sink::DevNull => status("saving to '/dev/null'\n".to_owned(), out),
        Sink::File(_) => {}
    }
    let mut received = 0u64;
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("error getting response: {}", error_chain(&e)))?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            if *sink == Sink::Stdout && !out.print(&data) {
                return Err(format!(
                    "write error: podnet exec keeps at most {} bytes (use -O /dev/null)",
                    super::MAX_OUTPUT
                ));
            }
        }
    }
    match sink {
        Sink::Stdout => status("written to stdout\n".to_owned(), out),
        Sink::DevNull => status("'/dev/null' saved\n".to_owned(), out),
        // Said even with -q: the user asked for a file and gets none.
        Sink::File(name) => out.eprint(format!(
            "wget: not saving to '{name}': podnet pods have no filesystem ({received} bytes received and discarded; use -O - to print them)\n"
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_url() {
        let check = |text: &str, expected: &str| {
            let url = http_client::parse_url(text).expect("valid url");
            assert_eq!(file_name(&url), expected, "{text}");
        };
        check("http://web/", "index.html");
        check("http://web", "index.html");
        check("http://web/a/b.txt?x=1", "b.txt");
        check("http://web/a/", "index.html");
    }

    #[test]
    fn busybox_flags_parse() {
        let args =
            Args::try_parse_from(["wget", "-qO-", "-T", "2", "--spider", "-S", "http://web/"])
                .expect("args");
        assert!(args.quiet && args.spider && args.server_response);
        assert_eq!(args.output.as_deref(), Some("-"));
        assert_eq!(args.timeout, Some(Duration::from_secs(2)));
        let args = Args::try_parse_from(["wget", "-O", "/dev/null", "--header", "X-A: 1", "web"])
            .expect("args");
        assert_eq!(args.output.as_deref(), Some("/dev/null"));
        let headers = extra_headers(&args).expect("headers");
        assert_eq!(headers[0], (USER_AGENT, HeaderValue::from_static("Wget")));
        assert_eq!(headers[1].0.as_str(), "x-a");
        let bad = Args::try_parse_from(["wget", "--header", "nocolon", "web"]).expect("args");
        assert!(extra_headers(&bad).is_err());
    }

    #[test]
    fn url_messages() {
        assert_eq!(
            url_message("https://web/", &UrlError::Scheme("https".into())),
            "unsupported scheme 'https' in https://web/ (podnet's wget speaks plain http only)"
        );
    }
}
