pub(crate) mod chat;
pub(crate) mod conversations;
pub(crate) mod documents;
pub(crate) mod events;
pub(crate) mod feedback;
pub(crate) mod health;
pub(crate) mod openapi;
pub(crate) mod session;
