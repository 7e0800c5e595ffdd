//! Time the engine over a JSON Lines file: `cargo run --release --example compute_file SPEC FILE`.
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec: nsm_engine::spec::CatalogSpec =
        serde_json::from_str(&std::fs::read_to_string(&args[1]).unwrap()).unwrap();
    let data = std::fs::read(&args[2]).unwrap();
    let started = Instant::now();
    let mut compute =
        nsm_engine::compute::Compute::new(&spec, Default::default(), None, i64::MAX / 4, 300_000)
            .unwrap();
    compute.lines(&data);
    let fed = started.elapsed();
    let values = compute.evaluate();
    println!(
        "applied {} in {:?} (+{:?} evaluate), {} metrics",
        compute.applied,
        fed,
        started.elapsed() - fed,
        values.len()
    );
}
