//! A bounded run of every fuzz target (examples/fuzz.rs): no panic, no input over the time
//! bound, no allocation over the cap. `cargo run --release --example fuzz -- 1000000` runs a
//! million inputs per target.

#[path = "../examples/fuzz.rs"]
#[allow(dead_code)]
mod fuzz;

/// One test, so that the targets run one after another (the allocation cap and the quiet
/// panic hook are process-wide).
#[test]
fn every_reader_survives_mutated_inputs() {
    for (make, iterations) in [
        (fuzz::idx_raw as fn() -> fuzz::Target, 20_000),
        (fuzz::idx_gzip, 5_000),
        (fuzz::ctf, 20_000),
        (fuzz::checkpoint, 5_000),
    ] {
        let target = make();
        let name = target.name;
        let s = fuzz::run(target, iterations, 2026);
        println!(
            "{name}: {} ok, {} rejected, slowest {:?}",
            s.ok, s.err, s.slowest
        );
        assert_eq!(s.iterations, iterations);
        // Both outcomes occur, so mutations reach past the first checks and into them.
        assert!(s.ok > 0 && s.err > 0, "{name}: {s:?}");
        assert!(s.failures.is_empty(), "{name}: {:?}", &s.failures[..1]);
    }
}
