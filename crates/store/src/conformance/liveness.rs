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
    store
        .record_heartbeat("drain-1", at(100))
        .await
        .expect("heartbeat");
    store
        .record_heartbeat("drain-2", at(200))
        .await
        .expect("heartbeat");
    store
        .record_heartbeat("drain-1", at(150))
        .await
        .expect("heartbeat");
    let latest = store
        .last_heartbeat()
        .await
        .expect("last_heartbeat")
        .expect("some");
    assert_eq!((latest.worker.as_str(), latest.at), ("drain-2", at(200)));
    store
        .record_heartbeat("drain-1", at(300))
        .await
        .expect("heartbeat");
    let latest = store
        .last_heartbeat()
        .await
        .expect("last_heartbeat")
        .expect("some");
    assert_eq!((latest.worker.as_str(), latest.at), ("drain-1", at(300)));
}
