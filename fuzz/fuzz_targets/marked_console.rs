//! A FreeBSD guest's console carries its result markers and output; no byte sequence may make
//! the reader panic, pass on more than it was given, or report a result for another token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmlane_backend::{ConsoleEvent, MarkedConsole};
use vmlane_proto::Marker;

const TOKEN: &str = "0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    // What the guest wrote: the reads joined, as a marker may span two of them.
    let written: Vec<u8> = data.iter().copied().filter(|&b| b != 0xff).collect();
    let mut console = MarkedConsole::new(TOKEN);
    let mut out = 0usize;
    // 0xff splits the input into separate reads, as the console socket delivers them.
    for piece in data.split(|&b| b == 0xff) {
        for event in console.push(piece) {
            match event {
                // Each output line gains at most the newline it lost.
                ConsoleEvent::Output(bytes) => out += bytes.len(),
                ConsoleEvent::Marker(Marker::Ended(_)) | ConsoleEvent::Marker(Marker::Start) => {
                    assert!(written
                        .windows(TOKEN.len())
                        .any(|w| w == TOKEN.as_bytes()));
                }
                ConsoleEvent::Marker(Marker::Failed { .. }) | ConsoleEvent::Stuck { .. } => {}
            }
        }
    }
    out += console.finish().map_or(0, |rest| rest.len());
    assert!(out <= 2 * data.len() + 1);
});
