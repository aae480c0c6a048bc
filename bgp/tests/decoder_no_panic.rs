//! Stable-toolchain stand-in for the cargo-fuzz targets: hundreds of thousands of random and
//! mutated-golden inputs through the decoder and the frame splitter; none may panic.

use weft_bgp::codec::{CodecContext, FrameSplitter, Message};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn golden() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut v = Vec::new();
    for f in ["gobgp.txt", "gobgp_as4.txt", "gobgp_badas.txt", "bird.txt"] {
        for line in std::fs::read_to_string(format!("{dir}/{f}"))
            .unwrap()
            .lines()
        {
            let hex = line.split_once(' ').unwrap().1;
            v.push(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            );
        }
    }
    v
}

fn check(bytes: &[u8]) {
    for ctx in [CodecContext::default(), CodecContext::FOUR_OCTET] {
        if let Err(e) = Message::decode(bytes, &ctx) {
            let _ = e.notification();
            let _ = e.to_string();
        }
    }
    let mut s = FrameSplitter::new();
    for chunk in bytes.chunks(7) {
        s.feed(chunk);
        while let Some(Ok(f)) = s.next_frame() {
            let _ = Message::decode(&f, &CodecContext::FOUR_OCTET);
        }
    }
}

/// A header with a consistent length so that bodies reach the type-specific decoders.
fn with_header(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(ty);
    v.extend_from_slice(body);
    v
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = golden();
    let mut n = 0;
    while n < 200_000 {
        let input = match rng.below(3) {
            0 => {
                let len = rng.below(120);
                let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                with_header(1 + rng.below(5) as u8, &body)
            }
            _ => {
                let mut m = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(m.len());
                    match rng.below(4) {
                        0 => m[i] = rng.next() as u8,
                        1 => m[i] ^= 1 << rng.below(8),
                        2 => {
                            m.remove(i);
                        }
                        _ => m.insert(i, rng.next() as u8),
                    }
                }
                // Keep the header length consistent half of the time to get past framing.
                if rng.below(2) == 0 && m.len() >= 19 && m.len() <= 4096 {
                    let len = m.len() as u16;
                    m[16..18].copy_from_slice(&len.to_be_bytes());
                }
                m
            }
        };
        check(&input);
        n += 1;
    }
}
