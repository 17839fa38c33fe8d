//! The error class of a failed request, from what failed beneath it.

use podnet_experiment::series::Outcome;

/// A name the client could not resolve, carried inside an I/O error from
/// a connector to [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unresolved(pub Outcome);

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "name not resolved ({})", self.0.as_str())
    }
}

impl std::error::Error for Unresolved {}

impl Unresolved {
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

/// The class of `e`: walks its sources to the I/O, TLS or resolver error
/// underneath (an I/O error's own payload included, which `source()`
/// skips).
pub fn classify(e: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(u) = err.downcast_ref::<Unresolved>() {
            return u.0;
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return Outcome::Tls;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                let inner: &(dyn std::error::Error + 'static) = inner;
                let class = classify(inner);
                if class != Outcome::Other {
                    return class;
                }
            }
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => Outcome::Reset,
                std::io::ErrorKind::TimedOut => Outcome::Timeout,
                _ => Outcome::Other,
            };
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return Outcome::Reset;
        }
        source = err.source();
    }
    Outcome::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classed_by_what_failed_underneath() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), Outcome::Refused);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&reset), Outcome::Reset);
        let other = std::io::Error::other("x");
        assert_eq!(classify(&other), Outcome::Other);
        let nx = Unresolved(Outcome::DnsNxdomain).into_io();
        assert_eq!(classify(&nx), Outcome::DnsNxdomain);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(classify(&tls), Outcome::Tls);
    }
}
