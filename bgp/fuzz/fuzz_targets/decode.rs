//! Fuzz target: the message decoder, with both AS widths; a decoded message must re-encode and
//! decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_bgp::codec::{CodecContext, Message};

fuzz_target!(|data: &[u8]| {
    for ctx in [CodecContext::default(), CodecContext::FOUR_OCTET] {
        match Message::decode(data, &ctx) {
            Ok(m) => {
                if let Ok(bytes) = m.encode(&ctx) {
                    let again = Message::decode(&bytes, &ctx).expect("re-encoded message decodes");
                    assert_eq!(again, m);
                }
            }
            Err(e) => {
                let _ = e.notification();
            }
        }
    }
});
