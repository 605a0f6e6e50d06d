//! Detector quality on generated traffic it was not tuned on: ROC AUC per attack class and the
//! false-positive rate at the detector's alert threshold.
//!
//! `cargo run --release -p shadownet-host --example detector_eval -- [SEED] [DURATION_S]`

use shadownet_host::analysis::{
    detector::{ClassHint, Detector, DetectorConfig, NCLASS},
    trafficgen::{AttackClass, Label, Scenario, generate},
};

/// Area under the ROC curve by the rank statistic (ties count half).
fn auc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|s| (*s, true))
        .chain(neg.iter().map(|s| (*s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let p = pos.len() as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * neg.len() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let duration: f64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1200.0);
    let scenario = Scenario::preset_mixed(seed, duration);
    let cfg = DetectorConfig::default();
    let threshold = cfg.alert_threshold;
    let mut det = Detector::new(cfg)?;
    let mut benign = Vec::new();
    // Which class hint each false positive carried: where the false positives come from.
    let mut fp_hints = [0u64; NCLASS];
    // False positives per tenth of the capture: whether they cluster around the attacks.
    let mut fp_when = [0u64; 10];
    // Which class hint the detected frames of each attack carried.
    let mut hit_hints = vec![[0u64; NCLASS]; AttackClass::ALL.len()];
    let span_ns = (duration * 1e9) as u64;
    let mut t0 = None;
    let mut attacks: Vec<Vec<f32>> = vec![Vec::new(); AttackClass::ALL.len()];
    let mut frames = 0u64;
    for f in generate(&scenario)? {
        frames += 1;
        let Some(v) = det.observe_frame(f.ts_ns, &f.frame)? else {
            continue;
        };
        let t0 = *t0.get_or_insert(f.ts_ns);
        if v.learning {
            continue;
        }
        let hint = ClassHint::ALL
            .iter()
            .position(|c| *c == v.class_hint)
            .unwrap_or(NCLASS - 1);
        match f.label {
            Label::Benign => {
                if v.score >= threshold {
                    fp_hints[hint] += 1;
                    let tenth = (f.ts_ns - t0) * 10 / span_ns.max(1);
                    fp_when[(tenth as usize).min(9)] += 1;
                }
                benign.push(v.score)
            }
            Label::Attack(c) => {
                if let Some(i) = AttackClass::ALL.iter().position(|x| *x == c) {
                    attacks[i].push(v.score);
                    if v.score >= threshold {
                        hit_hints[i][hint] += 1;
                    }
                }
            }
        }
    }
    let fp = benign.iter().filter(|s| **s >= threshold).count();
    println!(
        "seed {seed}, {duration} s, {frames} frames; {} benign frames scored, false positives at threshold {threshold}: {fp} ({:.4}%)",
        benign.len(),
        100.0 * fp as f64 / benign.len().max(1) as f64
    );
    println!(
        "{:<20} {:>9} {:>8} {:>12}",
        "class", "frames", "AUC", "detected"
    );
    for (i, c) in AttackClass::ALL.iter().enumerate() {
        let hit = attacks[i].iter().filter(|s| **s >= threshold).count();
        println!(
            "{:<20} {:>9} {:>8.4} {:>11.1}%",
            c.name(),
            attacks[i].len(),
            auc(&attacks[i], &benign),
            100.0 * hit as f64 / attacks[i].len().max(1) as f64
        );
    }
    let by_hint: Vec<String> = ClassHint::ALL
        .iter()
        .zip(fp_hints)
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{c:?} {n}"))
        .collect();
    println!("false positives by class hint: {}", by_hint.join(", "));
    println!("false positives per tenth of the capture: {fp_when:?}");
    for (i, c) in AttackClass::ALL.iter().enumerate() {
        let h: Vec<String> = ClassHint::ALL
            .iter()
            .zip(hit_hints[i])
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("{c:?} {n}"))
            .collect();
        println!("{} detected as: {}", c.name(), h.join(", "));
    }
    Ok(())
}
