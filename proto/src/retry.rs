//! Calling the control plane while it may still be starting (or restarting).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("{}", .0.message())]
    Status(tonic::Status),
    #[error("shut down before the call succeeded")]
    Shutdown,
}

/// Calls `call` until it succeeds, retrying while the control plane is
/// unreachable (UNAVAILABLE) for up to `patience`, backing off from 20 ms to
/// 500 ms. Any other error, or `shutdown`, ends it.
pub async fn while_unavailable<T, F, Fut>(
    patience: Duration,
    shutdown: &CancellationToken,
    mut call: F,
) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(20);
    loop {
        match call().await {
            Ok(r) => return Ok(r),
            Err(s)
                if s.code() == tonic::Code::Unavailable
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(error = %s.message(), "control plane not reachable yet");
            }
            Err(s) => return Err(RetryError::Status(s)),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Err(RetryError::Shutdown),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_unavailable_only() {
        let calls = AtomicU32::new(0);
        let shutdown = CancellationToken::new();
        let got = while_unavailable(Duration::from_secs(5), &shutdown, || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 3 {
                    Err(tonic::Status::unavailable("starting"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), 3);
        let denied = while_unavailable(Duration::from_secs(5), &shutdown, || async {
            Err::<(), _>(tonic::Status::permission_denied("bad token"))
        })
        .await;
        assert!(matches!(denied, Err(RetryError::Status(s)) if s.message() == "bad token"));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_its_patience() {
        let shutdown = CancellationToken::new();
        let got = while_unavailable(Duration::from_secs(1), &shutdown, || async {
            Err::<(), _>(tonic::Status::unavailable("down"))
        })
        .await;
        assert!(matches!(got, Err(RetryError::Status(s)) if s.message() == "down"));
    }
}
