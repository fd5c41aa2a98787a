//! The console watcher reads every byte the guest prints; no byte sequence may make it panic
//! or keep more than its bounded tail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmlane_backend::ConsoleLog;

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
}

fuzz_target!(|data: &[u8]| {
    let mut log = DIR
        .with(|dir| ConsoleLog::create(&dir.path().join("console.log")))
        .expect("a console log");
    // 0xff splits the input into separate reads, as the console socket delivers them.
    for piece in data.split(|&b| b == 0xff) {
        log.write(piece).expect("writing the log");
    }
    assert!(log.tail().len() <= 20);
    // A kept line is cut at 4096 bytes; each invalid byte may become a 3-byte U+FFFD.
    if let Some(line) = log.panic_line() {
        assert!(line.len() <= 3 * 4096);
    }
    let _ = log.last_line();
});
