//! `NodeAgent.Loadgen`: an experiment's traffic generator
//! (`podnet/loadgen`) run inside one of this node's pods for the runner,
//! its finished seconds streamed back as they complete.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use podnet_loadgen::{Flow, World};
use podnet_pod::netns::NetNs;
use podnet_proto::v1::{LoadgenReport, LoadgenRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) type Reports = Pin<Box<dyn Stream<Item = Result<LoadgenReport, tonic::Status>> + Send>>;

/// How far from now a generator's start may be.
const MAX_OFFSET: Duration = Duration::from_secs(3600);

/// The instant `unix_nanos` is on this machine's monotonic clock.
fn instant_of(unix_nanos: i64) -> Result<Instant, tonic::Status> {
    let start = UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_nanos).unwrap_or(0));
    let now = (Instant::now(), SystemTime::now());
    let t0 = match start.duration_since(now.1) {
        Ok(ahead) if ahead <= MAX_OFFSET => Some(now.0 + ahead),
        Ok(_) => None,
        Err(behind) if behind.duration() <= MAX_OFFSET => now.0.checked_sub(behind.duration()),
        Err(_) => None,
    };
    t0.ok_or_else(|| {
        tonic::Status::invalid_argument(format!(
            "start_unix_nanos {unix_nanos} is more than {} s from this node's clock",
            MAX_OFFSET.as_secs()
        ))
    })
}

/// Starts `req`'s generator in `ns`; the stream ends with the tally, or
/// an error status if the flow cannot run. Dropping the stream (the
/// runner cancelling) stops the generator.
pub(crate) fn start(
    ns: Arc<NetNs>,
    req: LoadgenRequest,
    world: World,
    zone: String,
) -> Result<Reports, tonic::Status> {
    let flow: Flow = serde_json::from_slice(&req.flow)
        .map_err(|e| tonic::Status::invalid_argument(format!("flow: {e}")))?;
    let t0 = instant_of(req.start_unix_nanos)?;
    let (tx, rx) = mpsc::channel::<Result<LoadgenReport, tonic::Status>>(64);
    let (seconds_tx, mut seconds_rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let name = flow.name.clone();
    let generator = podnet_pod::loadgen::run(
        ns,
        flow,
        req.seed,
        t0,
        world,
        zone,
        stop.clone(),
        seconds_tx,
    );
    tokio::spawn(async move {
        tokio::pin!(generator);
        let result = loop {
            tokio::select! {
                result = &mut generator => break result,
                Some((second, bucket)) = seconds_rx.recv() => {
                    let report = LoadgenReport {
                        second,
                        bucket: serde_json::to_vec(&bucket).unwrap_or_default(),
                        ..LoadgenReport::default()
                    };
                    if tx.send(Ok(report)).await.is_err() {
                        stop.cancel();
                    }
                }
                () = tx.closed() => stop.cancel(),
            }
        };
        // What the generator handed on before it returned.
        while let Ok((second, bucket)) = seconds_rx.try_recv() {
            let report = LoadgenReport {
                second,
                bucket: serde_json::to_vec(&bucket).unwrap_or_default(),
                ..LoadgenReport::default()
            };
            if tx.send(Ok(report)).await.is_err() {
                return;
            }
        }
        let last = match result {
            Ok(tally) => Ok(LoadgenReport {
                done: true,
                scheduled: tally.scheduled,
                shed: tally.shed,
                ..LoadgenReport::default()
            }),
            Err(e) => {
                tracing::warn!(flow = %name, error = %e, "traffic generator failed");
                Err(tonic::Status::invalid_argument(e))
            }
        };
        let _ = tx.send(last).await;
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_read_on_the_monotonic_clock_within_bounds() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let soon = i64::try_from((now + Duration::from_secs(2)).as_nanos()).unwrap();
        let t = instant_of(soon).unwrap();
        let ahead = t.saturating_duration_since(Instant::now());
        assert!(ahead > Duration::from_millis(1500) && ahead <= Duration::from_secs(2));
        let past = i64::try_from((now - Duration::from_secs(5)).as_nanos()).unwrap();
        assert!(instant_of(past).unwrap() < Instant::now());
        assert!(instant_of(0).is_err());
        assert!(instant_of(i64::MAX).is_err());
    }
}
