//! Fuzz target: the streaming frame splitter fed in uneven chunks, then each frame decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_bgp::codec::{CodecContext, FrameSplitter, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let mut s = FrameSplitter::new();
    for chunk in rest.chunks(usize::from(step).max(1)) {
        s.feed(chunk);
        while let Some(frame) = s.next_frame() {
            match frame {
                Ok(f) => {
                    assert!(f.len() >= 19 && f.len() <= 4096);
                    let _ = Message::decode(&f, &CodecContext::FOUR_OCTET);
                }
                Err(_) => return,
            }
        }
    }
});
