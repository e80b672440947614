//! The Upstash client's [`Transport`] over the Workers `fetch` API.
//!
//! Each call is one `fetch` with an `AbortSignal` that fires at the
//! deadline. Workers give no way to tell "could not connect" from "failed
//! mid-request", so every failure is [`TransportError::Other`] (the client
//! then retries only what is safe to repeat). Error texts never carry the
//! URL or the token.

use std::time::Duration;

use flowchat_upstash::{Transport, TransportError, TransportResponse};
use futures_util::future::{Either, select};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::settings::redact;

/// Sends Upstash REST requests with `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchTransport;

#[async_trait::async_trait(?Send)]
impl Transport for FetchTransport {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<TransportResponse, TransportError> {
        let fail = |e: worker::Error| TransportError::Other(redact(&e.to_string(), url));
        let outgoing = Headers::new();
        for (name, value) in headers {
            // A header value the runtime refuses is a bug here, not a
            // network failure; its text is not echoed (it may be the token).
            outgoing.set(name, value).map_err(|_| {
                TransportError::Other(format!("the runtime refused the {name} header"))
            })?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(outgoing)
            .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        let request = Request::new_with_init(url, &init).map_err(fail)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(fail)?;
            let status = response.status_code();
            let body = response.bytes().await.map_err(fail)?;
            Ok(TransportResponse { status, body })
        };
        match select(Box::pin(exchange), Delay::from(timeout)).await {
            Either::Left((answer, _)) => answer,
            Either::Right(((), _)) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }
}
