//! Key names under one namespace: the table in the module documentation
//! of `upstash`, one function per row.

/// The registry of namespaces with work. Namespaces are letters, digits,
/// `-` and `_`, so no namespace's keys (`fc:<namespace>:…`) can be it.
const REGISTRY: &str = "fc:namespaces";

/// Key names under one namespace.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of `namespace`, all starting with `fc:<namespace>:`.
    pub(super) fn new(namespace: &str) -> Self {
        Keys {
            prefix: format!("fc:{namespace}:"),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The one key outside every namespace: the set of namespaces with
    /// queued work (see `registry`).
    pub(super) fn registry(&self) -> String {
        REGISTRY.to_owned()
    }

    pub(super) fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }
    pub(super) fn queue(&self) -> String {
        format!("{}queue", self.prefix)
    }
    pub(super) fn leases(&self) -> String {
        format!("{}queue:leases", self.prefix)
    }
    pub(super) fn delayed(&self) -> String {
        format!("{}queue:delayed", self.prefix)
    }
    pub(super) fn lease_seq(&self) -> String {
        format!("{}queue:lease-seq", self.prefix)
    }
    pub(super) fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }
    pub(super) fn dead_index(&self) -> String {
        format!("{}dead:index", self.prefix)
    }
    pub(super) fn conversation(&self, id: &str) -> String {
        format!("{}conv:{id}", self.prefix)
    }
    pub(super) fn messages(&self, id: &str) -> String {
        format!("{}conv:{id}:messages", self.prefix)
    }
    /// Hash: job id → the feedback on that answer (JSON); same TTL as the
    /// conversation, deleted with it.
    pub(super) fn feedback(&self, conversation: &str) -> String {
        format!("{}conv:{conversation}:feedback", self.prefix)
    }
    /// Sorted set: `<conversation id> <job id>` of recent feedback by time (ms).
    pub(super) fn recent_feedback(&self) -> String {
        format!("{}feedback:recent", self.prefix)
    }
    pub(super) fn owned_conversations(&self, session: &str) -> String {
        format!("{}session:{session}:conversations", self.prefix)
    }
    pub(super) fn rate(&self, key: &str, window_ms: i64, window_start: i64) -> String {
        format!("{}rate:{key}:{window_ms}:{window_start}", self.prefix)
    }
    pub(super) fn heartbeats(&self) -> String {
        format!("{}heartbeats", self.prefix)
    }
    pub(super) fn documents(&self) -> String {
        format!("{}docs", self.prefix)
    }
    pub(super) fn document_owners(&self) -> String {
        format!("{}docs:owner", self.prefix)
    }
    pub(super) fn owned_documents(&self, owner_key: &str) -> String {
        format!("{}docs:by-owner:{owner_key}", self.prefix)
    }
    /// Sorted set: owners of private documents by their session's end (ms).
    pub(super) fn session_ends(&self) -> String {
        format!("{}docs:session-ends", self.prefix)
    }
    pub(super) fn upload(&self, document: &str, index: u32) -> String {
        format!("{}upload:{document}:{index}", self.prefix)
    }
}
