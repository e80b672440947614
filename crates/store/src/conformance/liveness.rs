//! Liveness: the store answers a ping, and the drains' heartbeats are
//! reported.

use super::Harness;
use super::support::*;
use crate::Store;

pub async fn ping_answers<H: Harness>(h: &H) {
    let store = h.fresh().await;
    store.ping().await.expect("ping");
}

/// The readiness check sees the most recent heartbeat of any drain.
pub async fn heartbeat_reports_the_latest<H: Harness>(h: &H) {
    let store = h.fresh().await;
    assert_eq!(store.last_heartbeat().await.expect("last_heartbeat"), None);
    let beats_then_latest = [
        (
            &[("drain-1", 100), ("drain-2", 200), ("drain-1", 150)][..],
            ("drain-2", 200),
        ),
        (&[("drain-1", 300)][..], ("drain-1", 300)),
    ];
    for (beats, (worker, secs)) in beats_then_latest {
        for &(beat_worker, beat_secs) in beats {
            store
                .record_heartbeat(beat_worker, at(beat_secs))
                .await
                .expect("heartbeat");
        }
        let latest = store
            .last_heartbeat()
            .await
            .expect("last_heartbeat")
            .expect("some");
        assert_eq!((latest.worker.as_str(), latest.at), (worker, at(secs)));
    }
}
