//! The registry of namespaces with work: how one drain serves every
//! namespace (production, each preview branch, dev) without being told
//! their names. Every script that queues a job adds its namespace in the
//! same round trip; a drain reads the set, and drops a namespace once it has
//! nothing queued, leased or waiting for a retry.

use flowchat_upstash::{Arg, Command, Value};

use super::replies::{array, count, text};
use super::{UpstashStore, scripts, store_error};
use crate::StoreError;

impl UpstashStore {
    /// The namespaces that had work queued since they were last found idle,
    /// sorted. One `SMEMBERS`; any store's client reads the same set.
    pub async fn namespaces_with_work(&self) -> Result<Vec<String>, StoreError> {
        let reply = self
            .client
            .cmd_read(Command::new("SMEMBERS").arg(self.keys.registry()))
            .await
            .map_err(store_error)?;
        let mut names = array(reply, "namespaces")?
            .into_iter()
            .map(|member: Value| text(member, "namespace"))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(names)
    }

    /// Drops this store's namespace from the registry if it has no work
    /// (checked and dropped in one script, so a job queued meanwhile either
    /// keeps it or adds it back). Answers whether it was dropped.
    pub async fn forget_namespace_if_idle(&self) -> Result<bool, StoreError> {
        let reply = self
            .eval(
                &scripts::FORGET_NAMESPACE,
                vec![
                    self.keys.registry(),
                    self.keys.queue(),
                    self.keys.leases(),
                    self.keys.delayed(),
                ],
                vec![Arg::from(self.namespace())],
                true,
            )
            .await?;
        Ok(count(reply, "forget namespace")? == 1)
    }
}

#[cfg(test)]
mod tests {
    use flowchat_domain::model::{JobKind, JobPayload};
    use flowchat_domain::{JobId, Timestamp};

    use super::super::test_store;
    use crate::{ClaimRequest, NewJob, Store};

    fn ingest(id: &str) -> NewJob {
        NewJob {
            id: JobId::from_trusted(id),
            owner: None,
            payload: JobPayload::IngestSharedFolder,
            now: Timestamp::from_millis(1_000),
        }
    }

    #[tokio::test]
    async fn queueing_registers_the_namespace_until_it_is_idle() {
        let env = flowchat_gateway::testing::TestGateway::start()
            .await
            .expect("a gateway");
        let preview = test_store(&env, "preview-feat-x");
        let production = test_store(&env, "production");
        assert!(production.namespaces_with_work().await.unwrap().is_empty());

        preview.enqueue(ingest("job-a")).await.unwrap();
        production.enqueue(ingest("job-b")).await.unwrap();
        assert_eq!(
            preview.namespaces_with_work().await.unwrap(),
            ["preview-feat-x", "production"]
        );

        // Queued, then leased: still has work.
        assert!(!preview.forget_namespace_if_idle().await.unwrap());
        let claim = ClaimRequest {
            worker: "w".into(),
            max_jobs: 1,
            lease_ms: 60_000,
            max_attempts: 3,
            now: Timestamp::from_millis(2_000),
        };
        let claimed = preview.claim(&claim).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].job.kind, JobKind::Ingest);
        assert!(!preview.forget_namespace_if_idle().await.unwrap());

        // Done: dropped, and the other namespace is untouched.
        preview
            .complete_job(
                &claimed[0],
                &flowchat_domain::model::JobResult::Ingest(Default::default()),
                Timestamp::from_millis(3_000),
            )
            .await
            .unwrap();
        assert!(preview.forget_namespace_if_idle().await.unwrap());
        assert_eq!(
            production.namespaces_with_work().await.unwrap(),
            ["production"]
        );

        // The next job brings it back.
        preview.enqueue(ingest("job-c")).await.unwrap();
        assert!(
            production
                .namespaces_with_work()
                .await
                .unwrap()
                .contains(&"preview-feat-x".to_owned())
        );
    }
}
