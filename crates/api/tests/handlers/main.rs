//! Every route and every refusal, answered by `flowchat_api::handle` with no
//! socket in between (axum's `oneshot` style). The dev server's HTTP tests
//! keep what only a socket shows: body limits on the wire, streaming, CORS
//! through a real stack.
#![allow(dead_code)]

mod harness;

mod body;
mod chat;
mod conversations;
mod documents;
mod events;
mod feedback;
mod health;
mod routing;
mod session;
