//! Whatever the guest writes to its port, in whatever chunks, the host's decoder must neither
//! panic nor buffer without bound, and what it accepts must survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmlane_proto::{encode, Decoder, GuestMessage, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = Decoder::new();
    let mut failed = false;
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_message::<GuestMessage>() {
                Ok(Some(message)) => {
                    assert!(!failed, "a message after a failure");
                    let mut again = Decoder::new();
                    again.push(&encode(&message));
                    assert_eq!(again.next_message::<GuestMessage>(), Ok(Some(message)));
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
        assert!(decoder.pending() < 5 + MAX_FRAME + chunk);
    }
});
