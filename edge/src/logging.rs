//! `tracing` output to the Workers console (`wrangler tail`, Workers Logs,
//! or the terminal of `wrangler dev`): the API's request spans, warnings
//! and errors, formatted like the native runtimes (`LOG_FORMAT`: JSON in
//! production) but without a timestamp — the platform stamps each line, and
//! wasm32 has no system clock to read.

use std::io;

use flowchat_domain::config::LogFormat;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use wasm_bindgen::JsValue;

/// Installs the subscriber once per isolate; later calls do nothing.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(Level::INFO)
        .with_writer(Console)
        .with_ansi(false)
        .without_time();
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Makes one [`ConsoleLine`] per event.
struct Console;

impl<'a> MakeWriter<'a> for Console {
    type Writer = ConsoleLine;

    fn make_writer(&'a self) -> ConsoleLine {
        ConsoleLine {
            text: Vec::new(),
            error: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> ConsoleLine {
        ConsoleLine {
            text: Vec::new(),
            error: matches!(*meta.level(), Level::ERROR | Level::WARN),
        }
    }
}

/// One formatted event, written to the console when dropped: `console.error`
/// for warnings and errors, `console.log` otherwise.
struct ConsoleLine {
    text: Vec<u8>,
    error: bool,
}

impl io::Write for ConsoleLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let line = JsValue::from_str(text);
        if self.error {
            web_sys::console::error_1(&line);
        } else {
            web_sys::console::log_1(&line);
        }
    }
}
