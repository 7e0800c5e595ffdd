//! Time the engine over a JSON Lines file, read in chunks as `nsm compute` reads it:
//! `cargo run --release --example compute_file SPEC FILE` (`DECODERS=n`: decoding threads).
use std::io::Read;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHUNK: usize = 8 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec: nsm_engine::spec::CatalogSpec =
        serde_json::from_str(&std::fs::read_to_string(&args[1]).unwrap()).unwrap();
    let mut best = std::time::Duration::MAX;
    for _ in 0..3 {
        let mut file = std::fs::File::open(&args[2]).unwrap();
        let started = Instant::now();
        let mut compute = nsm_engine::compute::Compute::new(
            &spec,
            Default::default(),
            None,
            i64::MAX / 4,
            300_000,
        )
        .unwrap();
        if let Some(decoders) = std::env::var("DECODERS").ok().and_then(|d| d.parse().ok()) {
            compute.decoders = decoders;
        }
        compute.expect_bytes(file.metadata().unwrap().len() as usize);
        let mut buffer = vec![0u8; CHUNK];
        let mut filled = 0;
        loop {
            let read = file.read(&mut buffer[filled..]).unwrap();
            filled += read;
            let end = if read == 0 {
                filled
            } else {
                buffer[..filled].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
            };
            compute.lines(&buffer[..end]);
            buffer.copy_within(end..filled, 0);
            filled -= end;
            if read == 0 {
                break;
            }
            if filled == buffer.len() {
                buffer.resize(buffer.len() * 2, 0);
            }
        }
        let fed = started.elapsed();
        let values = compute.evaluate();
        println!(
            "applied {} in {:?} (+{:?} evaluate), {} metrics",
            compute.applied,
            fed,
            started.elapsed() - fed,
            values.len()
        );
        best = best.min(started.elapsed());
    }
    println!("best {best:?}");
}
