//! `curl`: one HTTP/1.1 request (plus redirects with `-L`) over a pod TCP
//! connection, with curl's options, messages and exit codes for the common
//! cases: 0 ok, 1 unsupported protocol, 3 bad URL, 6 unresolved host,
//! 7 refused, 22 HTTP error with `-f`, 23 output not writable, 28 timeout,
//! 52 empty reply, 56 receive failure.
//!
//! Only `http://` URLs: no TLS (https is exit 1, as from a curl built
//! without TLS), no HTTP/2, no cookies, no proxies, no files (`-o` takes
//! only `/dev/null`, `-d @-` reads stdin). Connections are not reused
//! across redirects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::http_client::{self, Url, UrlError, error_chain, format_head};
use super::{Output, USAGE, parse, parse_seconds, resolve_family, strerror};
use crate::netns::NetNs;

/// curl's default connect timeout is 300 s (and the OS usually gives up
/// first, after about two minutes). An emulated silent destination (a
/// NetworkPolicy drop, a partition) never answers at all, so podnet's curl
/// gives up after 10 s unless `--connect-timeout` or `-m` says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// curl's default `--max-redirs`.
const MAX_REDIRECTS: u32 = 50;
/// Sent as User-Agent: curl's shape, so servers that sniff for curl still
/// see it, with podnet's name so nobody mistakes it for the real one.
const USER_AGENT_VALUE: &str = "curl/8.5.0 (podnet)";

/// curl's options that podnet supports.
#[derive(Debug, Parser)]
#[command(
    name = "curl",
    about = "Transfer a URL over plain HTTP (podnet toolbox)",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    family: super::FamilyArgs,
    /// Silent mode: no error messages unless -S.
    #[arg(short = 's', long)]
    silent: bool,
    /// Show error messages even with -s.
    #[arg(short = 'S', long)]
    show_error: bool,
    /// Print the response status line and headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// Send a HEAD request and print the response headers.
    #[arg(short = 'I', long)]
    head: bool,
    /// Print the request and response headers on stderr.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Fail with exit code 22 on HTTP errors (status >= 400), without the body.
    #[arg(short = 'f', long)]
    fail: bool,
    /// Follow redirects.
    #[arg(short = 'L', long)]
    location: bool,
    /// Accepted so copied commands run; there is no TLS to be insecure about.
    #[arg(short = 'k', long = "insecure")]
    _insecure: bool,
    /// Where the body goes: stdout (`-`) or /dev/null; pods have no files.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<String>,
    /// What to print after the transfer: %{http_code}, %{time_total}, ...
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    write_out: Option<String>,
    /// The request method.
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    request: Option<String>,
    /// An extra header `Name: value` (`Name:` removes a default one).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Send DATA as a form POST body (`@-` reads it from stdin); repeated -d are joined with '&'.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Vec<String>,
    /// Limit the whole operation to SECONDS (fractions allowed).
    #[arg(short = 'm', long = "max-time", value_name = "SECONDS", value_parser = parse_seconds)]
    max_time: Option<Duration>,
    /// Limit connecting to SECONDS (default here: 10).
    #[arg(long = "connect-timeout", value_name = "SECONDS", value_parser = parse_seconds)]
    connect_timeout: Option<Duration>,
    url: String,
}

/// A failed transfer: curl's exit code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

fn url_failure(error: UrlError) -> Failure {
    match error {
        UrlError::Scheme(scheme) => Failure::new(
            1,
            format!("Protocol \"{scheme}\" not supported (podnet's curl speaks plain http only)"),
        ),
        UrlError::Invalid(detail) => Failure::new(3, format!("URL rejected: {detail}")),
    }
}

fn parse_url(text: &str) -> Result<Url, Failure> {
    http_client::parse_url(text).map_err(url_failure)
}

/// What `-w` can report about a transfer.
#[derive(Debug, Clone, Default, PartialEq)]
struct TransferInfo {
    /// 0 until a response arrives (curl prints it as `000`).
    http_code: u16,
    remote_ip: Option<IpAddr>,
    remote_port: u16,
    time_connect: Duration,
    time_total: Duration,
    size_download: u64,
    num_redirects: u32,
    url_effective: String,
    content_type: String,
    exit_code: i32,
    error_message: String,
}

/// Expands a `-w` format. Unknown variables expand to nothing and are
/// reported, as curl does, in the second value.
fn write_out(format: &str, info: &TransferInfo) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut unknown = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' if chars.peek() == Some(&'%') => {
                chars.next();
                text.push('%');
            }
            '%' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                match variable(&name, info) {
                    Some(value) => text.push_str(&value),
                    None => unknown.push(name),
                }
            }
            '\\' => match chars.peek() {
                Some('n') => {
                    chars.next();
                    text.push('\n');
                }
                Some('r') => {
                    chars.next();
                    text.push('\r');
                }
                Some('t') => {
                    chars.next();
                    text.push('\t');
                }
                Some('\\') => {
                    chars.next();
                    text.push('\\');
                }
                _ => text.push('\\'),
            },
            c => text.push(c),
        }
    }
    (text, unknown)
}

fn variable(name: &str, info: &TransferInfo) -> Option<String> {
    let seconds = |d: Duration| format!("{:.6}", d.as_secs_f64());
    Some(match name {
        "http_code" | "response_code" => format!("{:03}", info.http_code),
        "time_total" => seconds(info.time_total),
        "time_connect" => seconds(info.time_connect),
        "remote_ip" => info.remote_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "remote_port" => info.remote_port.to_string(),
        "size_download" => info.size_download.to_string(),
        "num_redirects" => info.num_redirects.to_string(),
        "url_effective" => info.url_effective.clone(),
        "content_type" => info.content_type.clone(),
        "exitcode" => info.exit_code.to_string(),
        "errormsg" => info.error_message.clone(),
        _ => return None,
    })
}

/// The request, decided from the arguments before any I/O.
#[derive(Debug)]
struct Plan {
    url: Url,
    method: Method,
    /// Headers after -H overrides; Host is filled in per request.
    headers: HeaderMap,
    /// Header names removed with `-H 'Name:'`.
    removed: Vec<HeaderName>,
    body: Bytes,
    discard_body: bool,
}

fn plan(args: &Args, stdin: &[u8]) -> Result<Plan, Failure> {
    let url = parse_url(&args.url)?;
    let discard_body = match args.output.as_deref() {
        None | Some("-") => false,
        Some("/dev/null") => true,
        Some(file) => {
            return Err(Failure::new(
                23,
                format!(
                    "Failure writing output to destination: {file:?}: podnet pods have no filesystem (use -o /dev/null)"
                ),
            ));
        }
    };
    let mut body = Vec::new();
    for (i, data) in args.data.iter().enumerate() {
        if i > 0 {
            body.push(b'&');
        }
        match data.strip_prefix('@') {
            // curl -d strips line breaks from what it reads.
            Some("-") => body.extend(stdin.iter().filter(|&&b| b != b'\n' && b != b'\r')),
            Some(file) => {
                return Err(Failure::new(
                    26,
                    format!(
                        "Failed to open/read local data from file {file:?}: podnet pods have no filesystem (use -d @- for stdin)"
                    ),
                ));
            }
            None => body.extend_from_slice(data.as_bytes()),
        }
    }
    let method = if args.head {
        Method::HEAD
    } else if let Some(method) = &args.request {
        Method::from_bytes(method.as_bytes())
            .map_err(|_| Failure::new(USAGE, format!("invalid request method {method:?}")))?
    } else if args.data.is_empty() {
        Method::GET
    } else {
        Method::POST
    };
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    if !args.data.is_empty() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let mut removed = Vec::new();
    for line in &args.headers {
        let bad = || {
            Failure::new(
                USAGE,
                format!("invalid header {line:?}: expected 'Name: value'"),
            )
        };
        // curl: `Name: value` sets, `Name:` removes, `Name;` sends it
        // empty; a line with neither is ignored.
        let (name, value, remove) = match (line.split_once(':'), line.strip_suffix(';')) {
            (Some((name, value)), _) => (name, value.trim(), value.trim().is_empty()),
            (None, Some(name)) => (name, "", false),
            (None, None) => continue,
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        if remove {
            headers.remove(&name);
            removed.push(name);
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| bad())?;
        if headers.contains_key(&name) && !is_default(&name) {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
    Ok(Plan {
        url,
        method,
        headers,
        removed,
        body: Bytes::from(body),
        discard_body,
    })
}

/// Headers curl adds itself, which -H replaces rather than repeats.
fn is_default(name: &HeaderName) -> bool {
    [USER_AGENT, ACCEPT, CONTENT_TYPE, HOST].contains(name)
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], stdin: &[u8], out: &mut Output) -> i32 {
    let args: Args = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut info = TransferInfo::default();
    let result = match plan(&args, stdin) {
        Ok(plan) => transfer(ns, &args, plan, started, &mut info, out).await,
        Err(failure) => Err(failure),
    };
    info.time_total = started.elapsed();
    let code = match result {
        Ok(()) => 0,
        Err(failure) => {
            // curl's rule: -s hides error messages, -S brings them back.
            if !args.silent || args.show_error {
                out.eprint(format!("curl: ({}) {}\n", failure.code, failure.message));
            }
            info.error_message = failure.message;
            failure.code
        }
    };
    info.exit_code = code;
    if let Some(format) = &args.write_out {
        let (text, unknown) = write_out(format, &info);
        for name in unknown {
            out.eprint(format!("curl: unknown --write-out variable: '{name}'\n"));
        }
        out.print(text);
    }
    code
}

/// The deadlines of one transfer.
#[derive(Clone, Copy)]
struct Limits {
    started: Instant,
    connect_timeout: Duration,
    /// From -m: the whole operation, redirects included.
    deadline: Option<Instant>,
}

impl Limits {
    fn elapsed_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }
}

async fn transfer(
    ns: &Arc<NetNs>,
    args: &Args,
    mut plan: Plan,
    started: Instant,
    info: &mut TransferInfo,
    out: &mut Output,
) -> Result<(), Failure> {
    // curl treats 0 as "no limit" for both.
    let limits = Limits {
        started,
        connect_timeout: args
            .connect_timeout
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        deadline: args.max_time.filter(|t| !t.is_zero()).map(|t| started + t),
    };
    loop {
        info.url_effective = plan.url.effective();
        let redirect = exchange(ns, args, &plan, limits, info, out).await?;
        let Some(location) = redirect.filter(|_| args.location) else {
            return Ok(());
        };
        if info.num_redirects == MAX_REDIRECTS {
            return Err(Failure::new(
                47,
                format!("Maximum ({MAX_REDIRECTS}) redirects followed"),
            ));
        }
        info.num_redirects += 1;
        plan.url = http_client::follow(&plan.url, &location).map_err(url_failure)?;
        // What browsers and curl do: 303 always, and 301/302 after a POST,
        // continue with a GET without the body.
        let status = info.http_code;
        if (status == 303 && plan.method != Method::HEAD)
            || ((status == 301 || status == 302) && plan.method == Method::POST)
        {
            plan.method = Method::GET;
            plan.body = Bytes::new();
            plan.headers.remove(CONTENT_TYPE);
        }
        if args.verbose {
            out.eprint(format!(
                "* Issue another request to this URL: '{}'\n",
                plan.url.effective()
            ));
        }
    }
}

/// One request and its response. Returns the `Location` of a redirect.
async fn exchange(
    ns: &Arc<NetNs>,
    args: &Args,
    plan: &Plan,
    limits: Limits,
    info: &mut TransferInfo,
    out: &mut Output,
) -> Result<Option<String>, Failure> {
    let url = &plan.url;
    let connect_deadline = {
        let deadline = Instant::now() + limits.connect_timeout;
        limits
            .deadline
            .map_or(deadline, |total| total.min(deadline))
    };
    let ip = match tokio::time::timeout_at(
        connect_deadline,
        resolve_family(ns, &url.host, args.family.family()),
    )
    .await
    {
        Err(_) => {
            return Err(Failure::new(
                28,
                format!(
                    "Resolving timed out after {} milliseconds",
                    limits.elapsed_ms()
                ),
            ));
        }
        Ok(Err(_)) => {
            return Err(Failure::new(
                6,
                format!("Could not resolve host: {}", url.host),
            ));
        }
        Ok(Ok(ip)) => ip,
    };
    if args.verbose {
        out.eprint(format!("*   Trying {ip}:{}...\n", url.port));
    }
    let stream = match tokio::time::timeout_at(
        connect_deadline,
        ns.connect_tcp(SocketAddr::new(ip, url.port)),
    )
    .await
    {
        Err(_) => {
            return Err(Failure::new(
                28,
                format!(
                    "Connection timed out after {} milliseconds",
                    limits.elapsed_ms()
                ),
            ));
        }
        Ok(Err(error)) => {
            return Err(Failure::new(
                7,
                format!(
                    "Failed to connect to {} port {} after {} ms: {}",
                    url.host,
                    url.port,
                    limits.elapsed_ms(),
                    strerror(&error)
                ),
            ));
        }
        Ok(Ok(stream)) => stream,
    };
    info.remote_ip = Some(ip);
    info.remote_port = url.port;
    info.time_connect = limits.started.elapsed();
    if args.verbose {
        out.eprint(format!(
            "* Connected to {} ({ip}) port {}\n",
            url.host, url.port
        ));
    }

    let request = build_request(plan)?;
    if args.verbose {
        out.eprint(format!("> {} {} HTTP/1.1\n", request.method(), url.target));
        for (name, value) in request.headers() {
            out.eprint(format!(
                "> {}: {}\n",
                name,
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        out.eprint(">\n");
    }
    let http = http_exchange(
        TokioIo::new(stream),
        request,
        args,
        plan.discard_body,
        info,
        out,
    );
    let result = match limits.deadline {
        None => http.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, http).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                28,
                format!(
                    "Operation timed out after {} milliseconds with {} bytes received",
                    limits.elapsed_ms(),
                    info.size_download
                ),
            )),
        },
    };
    if args.verbose && result.is_ok() {
        out.eprint(format!(
            "* Connection #0 to host {} left intact\n",
            url.host
        ));
    }
    result
}

fn build_request(plan: &Plan) -> Result<Request<Full<Bytes>>, Failure> {
    let mut request = Request::new(Full::new(plan.body.clone()));
    *request.method_mut() = plan.method.clone();
    *request.uri_mut() = plan
        .url
        .target
        .parse()
        .map_err(|_| Failure::new(3, "URL rejected: Malformed input to a URL function"))?;
    let headers = request.headers_mut();
    // Host goes first, as curl sends it, unless -H replaced or removed it.
    if !plan.removed.contains(&HOST) && !plan.headers.contains_key(HOST) {
        let host = HeaderValue::from_str(&plan.url.authority())
            .map_err(|_| Failure::new(3, "URL rejected: Bad hostname"))?;
        headers.insert(HOST, host);
    }
    for (name, value) in &plan.headers {
        headers.append(name.clone(), value.clone());
    }
    Ok(request)
}

/// The HTTP/1.1 part: handshake, send, print the head and stream the body.
async fn http_exchange(
    io: TokioIo<crate::netns::PodStream>,
    request: Request<Full<Bytes>>,
    args: &Args,
    discard_body: bool,
    info: &mut TransferInfo,
    out: &mut Output,
) -> Result<Option<String>, Failure> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Failure::new(56, format!("Recv failure: {e}")))?;
    let work = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| response_failure(&e))?;
        receive(response, args, discard_body, info, out).await
    };
    http_client::drive(connection, work).await
}

fn response_failure(error: &hyper::Error) -> Failure {
    if error.is_parse() {
        Failure::new(8, format!("Weird server reply: {error}"))
    } else if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        Failure::new(52, "Empty reply from server")
    } else {
        Failure::new(56, format!("Recv failure: {}", error_chain(error)))
    }
}

async fn receive(
    response: Response<Incoming>,
    args: &Args,
    discard_body: bool,
    info: &mut TransferInfo,
    out: &mut Output,
) -> Result<Option<String>, Failure> {
    let status = response.status();
    info.http_code = status.as_u16();
    info.content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let head = format_head(&response);
    if args.verbose {
        for line in head.lines() {
            out.eprint(format!("< {line}\n"));
        }
    }
    if args.include || args.head {
        out.print(head.replace('\n', "\r\n"));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .filter(|_| status.is_redirection())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if args.fail && status.as_u16() >= 400 {
        return Err(Failure::new(
            22,
            format!("The requested URL returned error: {}", status.as_u16()),
        ));
    }
    // A redirect that will be followed: its body is not the answer.
    let followed = args.location && location.is_some();
    let print_body = !discard_body && !followed;
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            if error.is_incomplete_message() {
                Failure::new(18, "transfer closed with outstanding read data remaining")
            } else {
                Failure::new(56, format!("Recv failure: {}", error_chain(&error)))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            info.size_download += data.len() as u64;
            if print_body && !out.print(&data) {
                return Err(Failure::new(
                    23,
                    format!(
                        "Failure writing output to destination: podnet exec keeps at most {} bytes (use -o /dev/null)",
                        super::MAX_OUTPUT
                    ),
                ));
            }
        }
    }
    Ok(location)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn url(host: &str, port: u16, target: &str) -> Url {
        Url {
            host: host.into(),
            port,
            target: target.into(),
        }
    }

    #[test]
    fn parse_url_cases() {
        let check = |text: &str, expected: Result<Url, i32>| {
            assert_eq!(parse_url(text).map_err(|f| f.code), expected, "{text}");
        };
        check("http://10.0.0.1", Ok(url("10.0.0.1", 80, "/")));
        check(
            "http://10.0.0.1:8080/a/b?c=d#frag",
            Ok(url("10.0.0.1", 8080, "/a/b?c=d")),
        );
        check("HTTP://web:81?x", Ok(url("web", 81, "/?x")));
        check("localhost:9000/x", Ok(url("localhost", 9000, "/x")));
        check("http://host:/", Ok(url("host", 80, "/")));
        check("https://10.0.0.1/", Err(1));
        check("ftp://x", Err(1));
        check("http://:80/", Err(3));
        check("http://h:99999/", Err(3));
        check("http://h:0/", Err(3));
        check("http://u:p@h/", Err(3));
        // IPv6 literals in brackets (RFC 3986), the Host header with them.
        check("http://[::1]/", Ok(url("[::1]", 80, "/")));
        check(
            "http://[fd00:10:244:1::5]:8080/x",
            Ok(url("[fd00:10:244:1::5]", 8080, "/x")),
        );
        check("http://[fd00::1]:/", Ok(url("[fd00::1]", 80, "/")));
        check("http://[fd00::1/", Err(3));
        check("http://[not-v6]/", Err(3));
        check("http://[fd00::1]x/", Err(3));
        check("http://[10.0.0.1]/", Err(3));
        check("http://h/a b", Err(3));
    }

    #[test]
    fn follow_resolves_locations() {
        let base = url("web", 8080, "/a/b?q");
        let check = |location: &str, expected: Url| {
            assert_eq!(
                http_client::follow(&base, location),
                Ok(expected),
                "{location}"
            )
        };
        check("/x", url("web", 8080, "/x"));
        check("c", url("web", 8080, "/a/c"));
        check("http://other/y", url("other", 80, "/y"));
        check("//other:81/z", url("other", 81, "/z"));
    }

    #[test]
    fn write_out_expands_variables() {
        let info = TransferInfo {
            http_code: 200,
            remote_ip: Some(Ipv4Addr::new(10, 244, 1, 5).into()),
            remote_port: 8080,
            time_total: Duration::from_micros(12_345),
            ..TransferInfo::default()
        };
        let check = |format: &str, expected: &str, unknown: &[&str]| {
            let (text, got_unknown) = write_out(format, &info);
            assert_eq!(text, expected, "{format}");
            assert_eq!(got_unknown, unknown, "{format}");
        };
        check("%{http_code}", "200", &[]);
        check("%{http_code}\\n", "200\n", &[]);
        check(
            "%{remote_ip}:%{remote_port} %{time_total}s",
            "10.244.1.5:8080 0.012345s",
            &[],
        );
        check("100%% %{nope}done\\t\\x", "100% done\t\\x", &["nope"]);
        check("%{http_code}", "200", &[]);
        let (none, _) = write_out("%{http_code}", &TransferInfo::default());
        assert_eq!(none, "000");
    }

    fn plan_for(argv: &[&str]) -> Result<Plan, Failure> {
        let args = Args::try_parse_from(argv).expect("valid arguments");
        plan(&args, b"a=1\nb=2\n")
    }

    #[test]
    fn plan_picks_method_headers_and_body() {
        let p = plan_for(&["curl", "http://h/"]).expect("plan");
        assert_eq!(p.method, Method::GET);
        assert!(p.body.is_empty());
        assert_eq!(p.headers[ACCEPT], "*/*");

        let p = plan_for(&["curl", "-d", "x=1", "-d", "@-", "http://h/"]).expect("plan");
        assert_eq!(p.method, Method::POST);
        assert_eq!(p.body, Bytes::from_static(b"x=1&a=1b=2"));
        assert_eq!(p.headers[CONTENT_TYPE], "application/x-www-form-urlencoded");

        let p = plan_for(&[
            "curl",
            "-X",
            "PUT",
            "-H",
            "Accept: text/plain",
            "-H",
            "User-Agent:",
            "-H",
            "X-A: 1",
            "-H",
            "x-a: 2",
            "h",
        ])
        .expect("plan");
        assert_eq!(p.method, Method::PUT);
        assert_eq!(p.headers[ACCEPT], "text/plain");
        assert!(!p.headers.contains_key(USER_AGENT));
        assert_eq!(
            p.headers.get_all("x-a").iter().collect::<Vec<_>>(),
            ["1", "2"]
        );

        let p = plan_for(&["curl", "-I", "-H", "X-Empty;", "h"]).expect("plan");
        assert_eq!(p.method, Method::HEAD);
        assert_eq!(p.headers["x-empty"], "");

        assert_eq!(
            plan_for(&["curl", "-o", "/tmp/x", "h"])
                .map(|_| ())
                .map_err(|f| f.code),
            Err(23)
        );
        assert_eq!(
            plan_for(&["curl", "-d", "@file", "h"])
                .map(|_| ())
                .map_err(|f| f.code),
            Err(26)
        );
        assert_eq!(
            plan_for(&["curl", "-H", "bad name: x", "h"])
                .map(|_| ())
                .map_err(|f| f.code),
            Err(USAGE)
        );
    }

    #[test]
    fn combined_short_flags_and_timeouts_parse() {
        let args = Args::try_parse_from([
            "curl",
            "-sSfL",
            "-m",
            "1.5",
            "--connect-timeout",
            "2",
            "http://h",
        ])
        .expect("args");
        assert!(args.silent && args.show_error && args.fail && args.location);
        assert_eq!(args.max_time, Some(Duration::from_millis(1500)));
        assert_eq!(args.connect_timeout, Some(Duration::from_secs(2)));
        assert!(Args::try_parse_from(["curl", "-m", "soon", "http://h"]).is_err());
    }
}
