//! Dead letters: jobs that ran out of attempts, in a stream with an index
//! by job id, kept for an operator to read and replay. The scripts that
//! dead-letter (`fail.lua`, and `take.lua` for a job whose drain kept
//! dying) also fail the pending catalog record of an upload's ingest job
//! (`fail_pending_upload` in `lua/lib.lua`).

use flowchat_domain::model::JobKind;
use flowchat_domain::{JobId, Timestamp};
use flowchat_upstash::{Arg, Value};

use super::replies::{array, count, integer, required_text};
use super::{UpstashStore, scripts};
use crate::codec::{corrupt, to_json, to_u32};
use crate::{DeadLetter, StoreError, UPLOAD_GIVEN_UP};

impl UpstashStore {
    /// The keys of a script that may dead-letter a job: the queue's (see
    /// `queue_keys`), then the catalog records.
    pub(super) fn dead_letter_keys(&self, job: &JobId) -> Vec<String> {
        let mut keys = self.queue_keys(job);
        keys.push(self.keys.documents());
        keys
    }
}

/// The reason a dead-lettered upload's record is failed with, as the JSON
/// string the scripts put into the record.
pub(super) fn upload_given_up() -> Result<Arg, StoreError> {
    Ok(Arg::from(to_json(&UPLOAD_GIVEN_UP)?))
}

/// Newest recorded first.
pub(super) async fn list(store: &UpstashStore, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let reply = store
        .eval(
            &scripts::DEAD_LETTERS,
            vec![store.keys.dead()],
            vec![Arg::from(limit)],
            true,
        )
        .await?;
    array(reply, "dead letters")?
        .into_iter()
        .map(|letter| {
            let mut f = array(letter, "dead letter")?.into_iter();
            let mut next = || f.next().unwrap_or(Value::Nil);
            let job_id = required_text(next(), "dead letter job")?;
            let kind = required_text(next(), "dead letter kind")?;
            let attempts = integer(next(), "dead letter attempts")?;
            let error = required_text(next(), "dead letter error")?;
            let failed_at = integer(next(), "dead letter failed_at")?;
            Ok(DeadLetter {
                job_id: JobId::from_trusted(job_id),
                kind: JobKind::parse(&kind)
                    .ok_or_else(|| corrupt("dead letter kind", format!("unknown kind {kind:?}")))?,
                attempts: to_u32("dead letter attempts", attempts)?,
                error,
                failed_at: Timestamp::from_millis(failed_at),
            })
        })
        .collect()
}

/// The job goes back to `queued`, due now and ahead of newer jobs, with 0
/// attempts and no error.
pub(super) async fn replay(
    store: &UpstashStore,
    id: &JobId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let reply = store
        .eval(
            &scripts::REPLAY,
            vec![
                store.keys.job(id.as_str()),
                store.keys.leases(),
                store.keys.delayed(),
                store.keys.dead(),
                store.keys.dead_index(),
                store.keys.registry(),
            ],
            vec![
                Arg::from(id.as_str()),
                Arg::from(now.as_millis()),
                Arg::from(store.job_ttl()),
                Arg::from(store.namespace()),
            ],
            false,
        )
        .await?;
    Ok(count(reply, "replay")? == 1)
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::{
        DocumentOrigin, DocumentOwner, DocumentRecord, DocumentStatus, JobPayload,
    };
    use flowchat_domain::{DocumentId, SessionId};

    use super::*;
    use crate::upstash::catalog::StoredDocument;

    /// The texts `fail_pending_upload` (lua/lib.lua) looks for: an upload
    /// payload starts with its tag and document id, and a pending record
    /// holds its status and empty error exactly once, whatever its name and
    /// owner hold.
    #[test]
    fn the_texts_the_script_edits_are_where_it_looks() {
        let tricky = r#"x,"status":"pending","error":null,"updated_at":1,"#;
        let id = DocumentId::for_content(b"upload");
        let payload = to_json(&JobPayload::IngestUpload {
            document_id: id.clone(),
            name: tricky.to_owned(),
            owner: DocumentOwner::Session(SessionId::from_trusted(tricky)),
        })
        .unwrap();
        assert!(
            payload.starts_with(&format!(r#"{{"type":"ingest_upload","document_id":"{id}""#)),
            "{payload}"
        );
        let record = DocumentRecord {
            id,
            name: tricky.to_owned(),
            owner: DocumentOwner::Session(SessionId::from_trusted(tricky)),
            size_bytes: 10,
            status: DocumentStatus::Pending,
            chunks: 0,
            pages: None,
            origin: DocumentOrigin::Upload,
            error: None,
            updated_at: Timestamp::from_millis(1_800_000_000_000),
        };
        let json = to_json(&StoredDocument::from_record(&record)).unwrap();
        for field in [
            r#","status":"pending","#,
            r#","error":null,"#,
            r#","updated_at":1800000000000,"#,
        ] {
            assert_eq!(json.matches(field).count(), 1, "{field} in {json}");
        }
        assert_eq!(json.matches(r#","updated_at":"#).count(), 1, "{json}");
    }
}
