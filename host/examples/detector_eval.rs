//! Detector quality on generated traffic it was not tuned on: ROC AUC per attack class and the
//! false-positive rate at the detector's alert threshold.
//!
//! `cargo run --release -p shadownet-host --example detector_eval -- [SEED] [DURATION_S]`

use shadownet_host::analysis::{
    detector::{ClassHint, DetectorConfig},
    quality::Evaluator,
    trafficgen::{AttackClass, Scenario, generate},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let duration: f64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1200.0);
    let scenario = Scenario::preset_mixed(seed, duration);
    let mut ev = Evaluator::new(DetectorConfig::default())?;
    let span_ns = (duration * 1e9) as u64;
    let mut t0 = None;
    for f in generate(&scenario)? {
        t0.get_or_insert(f.ts_ns);
        ev.frame(f.ts_ns, &f.frame, f.label);
    }
    let e = ev.finish();
    println!(
        "seed {seed}, {duration} s, {} frames; {} benign frames scored, false positives at threshold {}: {} ({:.4}%)",
        e.frames,
        e.benign_scored,
        e.threshold,
        e.false_positives,
        100.0 * e.false_positive_rate()
    );
    println!(
        "{:<20} {:>9} {:>8} {:>12}",
        "class", "frames", "AUC", "detected"
    );
    for c in AttackClass::ALL {
        let Some(q) = e.classes.get(&c) else {
            println!("{:<20} {:>9} {:>8} {:>12}", c.name(), 0, "-", "-");
            continue;
        };
        println!(
            "{:<20} {:>9} {:>8.4} {:>11.1}%",
            c.name(),
            q.scored,
            q.auc.unwrap_or(f64::NAN),
            100.0 * q.detected as f64 / q.scored.max(1) as f64
        );
    }
    let hints = |m: &std::collections::BTreeMap<ClassHint, u64>| {
        m.iter()
            .map(|(c, n)| format!("{c:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "false positives by class hint: {}",
        hints(&e.false_positives_by_hint)
    );
    // Whether the false positives cluster around the attacks.
    let mut fp_when = [0u64; 10];
    for ts in ev.false_positive_times() {
        let tenth = ts.saturating_sub(t0.unwrap_or(0)) * 10 / span_ns.max(1);
        fp_when[(tenth as usize).min(9)] += 1;
    }
    println!("false positives per tenth of the capture: {fp_when:?}");
    for (c, q) in &e.classes {
        println!("{} detected as: {}", c.name(), hints(&q.detected_as));
    }
    Ok(())
}
