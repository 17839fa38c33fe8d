//! What podnet's HTTP clients (`curl`, `wget`) share: `http://` URLs and
//! redirects, the HTTP/1.1 connection driven alongside one exchange, and
//! how a response head and a hyper error read.
//!
//! Deliberately not here: anything a tool prints or decides on its own
//! (options, messages, exit codes); those stay in each tool.

use std::future::Future;

use hyper::Response;
use hyper::body::Incoming;

use super::strerror;

/// An `http://` URL, split the way the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    pub(super) host: String,
    pub(super) port: u16,
    /// Origin-form request target: `/path?query`.
    pub(super) target: String,
}

impl Url {
    /// The Host header: the port only when it is not the default.
    pub(super) fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(super) fn effective(&self) -> String {
        format!("http://{}{}", self.authority(), self.target)
    }
}

/// Why a URL is not one podnet's HTTP clients can fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UrlError {
    /// A scheme other than http (https included: there is no TLS).
    Scheme(String),
    /// What is wrong with it, in curl's words.
    Invalid(&'static str),
}

fn bad_url(detail: &'static str) -> UrlError {
    UrlError::Invalid(detail)
}

/// Parses a URL as curl does: the scheme may be left out (http is assumed),
/// the port defaults to 80, the fragment is not sent.
pub(super) fn parse_url(text: &str) -> Result<Url, UrlError> {
    let rest = match text.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(UrlError::Scheme(scheme.to_owned()));
        }
        None => text,
    };
    let rest = rest
        .split_once('#')
        .map_or(rest, |(before, _fragment)| before);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(bad_url("credentials in the URL are not supported"));
    }
    // An IPv6 literal is bracketed (RFC 3986), the port after the bracket;
    // the host keeps its brackets, as the Host header carries them.
    let (host, port_text) = match authority.strip_prefix('[') {
        Some(inner) => {
            let Some((literal, after)) = inner.split_once(']') else {
                return Err(bad_url("Malformed IPv6 address"));
            };
            if literal.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad_url("Malformed IPv6 address"));
            }
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(bad_url("Malformed IPv6 address")),
            };
            (&authority[..literal.len() + 2], port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port_text {
        None | Some("") => 80,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(bad_url(
                    "Port number was not a decimal number between 1 and 65535",
                ));
            }
        },
    };
    if host.is_empty() {
        return Err(bad_url("No host part in the URL"));
    }
    let target = match target {
        "" => "/".to_owned(),
        query if query.starts_with('?') => format!("/{query}"),
        path => path.to_owned(),
    };
    // The request line must be a valid URI; curl would percent-encode
    // spaces, podnet asks the user to.
    if target.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(bad_url("Malformed input to a URL function"));
    }
    Ok(Url {
        host: host.to_owned(),
        port,
        target,
    })
}

/// The URL a `Location` header points to, relative to `base`.
pub(super) fn follow(base: &Url, location: &str) -> Result<Url, UrlError> {
    if location.contains("://") {
        return parse_url(location);
    }
    if let Some(rest) = location.strip_prefix("//") {
        return parse_url(&format!("http://{rest}"));
    }
    let target = if location.starts_with('/') {
        location.to_owned()
    } else {
        // Relative to the directory of the current path.
        let path = base.target.split('?').next().unwrap_or("/");
        let directory = &path[..path.rfind('/').map_or(0, |slash| slash + 1)];
        format!("{directory}{location}")
    };
    parse_url(&format!("http://{}{target}", base.authority()))
}

/// Runs `work` (one request and its response) while driving the HTTP/1.1
/// `connection` it goes over. The connection lives exactly as long as the
/// exchange, rather than in a spawned task.
pub(super) async fn drive<W, T, IO>(
    connection: hyper::client::conn::http1::Connection<IO, T>,
    work: W,
) -> W::Output
where
    W: Future,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    T: hyper::body::Body + 'static,
    T::Data: Send,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    let mut work = std::pin::pin!(work);
    let mut connection_done = false;
    loop {
        tokio::select! {
            result = &mut work => return result,
            result = &mut connection, if !connection_done => {
                connection_done = true;
                // The request side sees the same failure; this is only for the log.
                if let Err(error) = result {
                    tracing::debug!(%error, "http client connection ended");
                }
            }
        }
    }
}

/// hyper's message with the underlying I/O error, if any.
pub(super) fn error_chain(error: &hyper::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) => match source.downcast_ref::<std::io::Error>() {
            Some(io) => strerror(io),
            None => format!("{error}: {source}"),
        },
        None => error.to_string(),
    }
}

/// The status line and headers, one per line with `\n`, and a blank line.
pub(super) fn format_head(response: &Response<Incoming>) -> String {
    let status = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
    let mut head = format!("{:?} {} {reason}\n", response.version(), status.as_u16());
    for (name, value) in response.headers() {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    head.push('\n');
    head
}
