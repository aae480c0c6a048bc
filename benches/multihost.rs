//! Multi-host benchmark (run as root): see `cargo bench --bench multihost`.

fn main() {
    eprintln!("multihost benchmark: not written yet");
}
