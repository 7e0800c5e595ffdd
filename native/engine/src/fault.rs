//! Failures on one message (docs/semantics.md, `unprocessable`): a panic while the engine works on
//! a message is caught, the message is named with what went wrong, and the rest goes on.
//!
//! No known message makes the engine fail; a fault can be injected on purpose so that tests can
//! check what follows a failure. It is off unless a test turns it on, and then costs one atomic
//! load per message.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// The longest detail kept of what went wrong (never a stack trace).
const DETAIL_CHARS: usize = 200;

static INJECTED: AtomicBool = AtomicBool::new(false);
static MARKER: RwLock<Option<Vec<u8>>> = RwLock::new(None);

/// From now on, the engine fails (panics) after applying any message whose bytes contain `marker`;
/// None turns this off.
pub fn inject(marker: Option<Vec<u8>>) {
    let mut held = MARKER.write().unwrap_or_else(|e| e.into_inner());
    INJECTED.store(marker.is_some(), Ordering::SeqCst);
    *held = marker;
}

/// Fail here if a fault is injected for this message.
#[inline]
pub fn check(raw: &[u8]) {
    if INJECTED.load(Ordering::Relaxed) {
        check_marker(raw);
    }
}

#[cold]
fn check_marker(raw: &[u8]) {
    let held = MARKER.read().unwrap_or_else(|e| e.into_inner());
    if held.as_deref().is_some_and(|marker| memchr::memmem::find(raw, marker).is_some()) {
        panic!("injected fault");
    }
}

/// What a panic carried, as the detail of an `unprocessable` message: `panic: <its message>`,
/// on one line, cut at 200 characters.
pub fn detail(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        String::new()
    };
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > DETAIL_CHARS {
        text = text.chars().take(DETAIL_CHARS).collect::<String>() + "...";
    }
    if text.is_empty() {
        "panic".to_owned()
    } else {
        format!("panic: {text}")
    }
}

/// Tests that inject faults hold this, one at a time (the fault is process-wide).
#[cfg(test)]
pub static TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `work()`, or the detail of its panic.
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| detail(payload.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_short_detail_on_one_line() {
        let long = "x".repeat(500);
        let caught = catch(|| -> () { panic!("went\nwrong {long}") }).unwrap_err();
        assert!(caught.starts_with("panic: went wrong xxx"));
        assert!(caught.len() < 220 && !caught.contains('\n'));
        assert_eq!(catch(|| 7), Ok(7));
    }
}
