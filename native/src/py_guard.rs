//! The FFI guard that every entry Python calls goes through: a panic (a bug of inferd's)
//! becomes an ordinary `RuntimeError` with a generic message, and is logged once.
//!
//! Without it, pyo3 raises a panic as `pyo3_runtime.PanicException`, a `BaseException`:
//! `except Exception` does not catch it, so it passes the server's error interceptor (and
//! grpc leaves a call whose deserializer raised one unanswered), where every other failure
//! of inferd's becomes INTERNAL with a generic message and its details go to the log.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// A panic caught at an entry: what Python is told, and what the log is told.
#[derive(Debug)]
pub struct Panicked {
    /// "internal error in inferd._native.<entry>": nothing of the input or the code.
    pub message: String,
    /// The panic's own message, for the log.
    pub detail: String,
}

/// Runs `work`, catching a panic as [`Panicked`]. Plain Rust, so that `cargo test` proves it.
/// (The unwind is asserted safe: after a panic, nothing `work` touched is used again but to
/// drop it.)
pub fn caught<T>(entry: &str, work: impl FnOnce() -> T) -> Result<T, Panicked> {
    panic::catch_unwind(AssertUnwindSafe(work)).map_err(|payload| Panicked {
        message: format!("internal error in inferd._native.{entry}"),
        detail: panic_text(payload.as_ref()),
    })
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Logs a caught panic once, to the Python logger `inferd.native` (where the service's logs
/// go), or to stderr if logging itself fails.
pub fn log_panic(py: Python<'_>, panicked: &Panicked) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("inferd.native",)))
        .and_then(|logger| {
            logger.call_method1(
                "error",
                ("%s (panic: %s)", &panicked.message, &panicked.detail),
            )
        });
    if logged.is_err() {
        eprintln!("{} (panic: {})", panicked.message, panicked.detail);
    }
}

/// The guard of an entry named `entry` (as Python calls it: `Schema.parse_json`): its result,
/// or, if it panicked, a `RuntimeError("internal error in inferd._native.<entry>")`, logged.
pub fn guarded<T>(entry: &str, work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    caught(entry, work).unwrap_or_else(|panicked| {
        Python::attach(|py| log_panic(py, &panicked));
        Err(PyRuntimeError::new_err(panicked.message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_only_the_entry() {
        // (The panic hook's message goes to the test's captured output.)
        let text = caught("Schema.parse_json", || -> u32 { panic!("index out of bounds") });
        let formatted = caught("decode_request", || -> u32 { panic!("at byte {}", 7) });
        let text = text.unwrap_err();
        assert_eq!(text.message, "internal error in inferd._native.Schema.parse_json");
        assert_eq!(text.detail, "index out of bounds");
        let formatted = formatted.unwrap_err();
        assert_eq!(formatted.message, "internal error in inferd._native.decode_request");
        assert_eq!(formatted.detail, "at byte 7");
    }

    #[test]
    fn work_that_returns_is_passed_through() {
        assert_eq!(caught("plan_concat", || 41 + 1).unwrap(), 42);
        let failed: Result<Result<(), &str>, Panicked> = caught("split_ranges", || Err("refused"));
        assert_eq!(failed.unwrap(), Err("refused"));
    }
}
