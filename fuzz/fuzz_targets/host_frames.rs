//! What the host sends, the guest init decodes with the same bounded decoder: whatever bytes
//! reach the port, in whatever chunks, it must neither panic nor buffer without bound, and
//! what it accepts (run requests with their writable directories included) must survive a
//! round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmlane_proto::{encode, Decoder, HostMessage, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut decoder = Decoder::new();
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_message::<HostMessage>() {
                Ok(Some(message)) => {
                    let mut again = Decoder::new();
                    again.push(&encode(&message));
                    assert_eq!(again.next_message::<HostMessage>(), Ok(Some(message)));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(decoder.pending() < 5 + MAX_FRAME + chunk);
    }
});
