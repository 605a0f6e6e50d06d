//! The built-in detector's quality on labelled traffic: every frame is scored as the shadow's
//! analysis would score it, and the scores are compared with the ground truth — ROC AUC of
//! each attack class against the benign frames, the false-positive rate and each class's
//! detection rate at the alert threshold, and how long after a class's first scored frame
//! it was first detected.
//!
//! What `shadowctl traffic eval` reports for a capture and its `labels.csv`, and what the
//! README's detector quality table is measured with (on generated traffic the detector was
//! not tuned on).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    detector::{ClassHint, Detector, DetectorConfig, DetectorError},
    trafficgen::{AttackClass, Label},
};

/// Area under the ROC curve of scores `pos` (should be high) against `neg` (should be low),
/// by the rank statistic with ties counted half; `None` when either side is empty.
pub fn roc_auc(pos: &[f32], neg: &[f32]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
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
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * neg.len() as f64))
}

/// One attack class's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassQuality {
    /// Its frames the detector scored (after the baseline; frames it could not read are
    /// not scored).
    pub scored: u64,
    /// ROC AUC against the benign frames (`None` without benign or without scored frames).
    pub auc: Option<f64>,
    /// Frames scored at or above the threshold.
    pub detected: u64,
    /// Seconds from the class's first scored frame to its first detected one.
    pub first_detection_s: Option<f64>,
    /// The class hints its detected frames carried (which rule or the trees caught it).
    pub detected_as: BTreeMap<ClassHint, u64>,
}

/// The figures of a whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The alert threshold the rates are measured at.
    pub threshold: f32,
    /// Frames given.
    pub frames: u64,
    /// Frames seen while the detector learnt its baseline (not scored).
    pub learning: u64,
    /// Frames the detector could not read (malformed) or that carry no IP packet.
    pub unread: u64,
    /// Benign frames scored.
    pub benign_scored: u64,
    /// Benign frames scored at or above the threshold.
    pub false_positives: u64,
    /// The class hints of the false positives.
    pub false_positives_by_hint: BTreeMap<ClassHint, u64>,
    /// Per attack class present in the traffic.
    pub classes: BTreeMap<AttackClass, ClassQuality>,
}

impl Evaluation {
    /// False positives per benign frame scored (0 without benign frames).
    pub fn false_positive_rate(&self) -> f64 {
        self.false_positives as f64 / self.benign_scored.max(1) as f64
    }
}

#[derive(Default)]
struct ClassScores {
    scores: Vec<f32>,
    first_ns: Option<u64>,
    first_detected_ns: Option<u64>,
    detected_as: BTreeMap<ClassHint, u64>,
}

/// Scores labelled frames one at a time; [`Evaluator::finish`] gives the figures.
pub struct Evaluator {
    det: Detector,
    threshold: f32,
    frames: u64,
    learning: u64,
    unread: u64,
    benign: Vec<f32>,
    fp_by_hint: BTreeMap<ClassHint, u64>,
    fp_ns: Vec<u64>,
    classes: BTreeMap<AttackClass, ClassScores>,
}

impl Evaluator {
    /// A fresh detector with `cfg` (it learns its baseline from the first frames given).
    pub fn new(cfg: DetectorConfig) -> Result<Evaluator, DetectorError> {
        let threshold = cfg.alert_threshold;
        Ok(Evaluator {
            det: Detector::new(cfg)?,
            threshold,
            frames: 0,
            learning: 0,
            unread: 0,
            benign: Vec::new(),
            fp_by_hint: BTreeMap::new(),
            fp_ns: Vec::new(),
            classes: BTreeMap::new(),
        })
    }

    /// Scores one frame captured at `ts_ns` whose ground truth is `label`. Frames must come
    /// in capture order.
    pub fn frame(&mut self, ts_ns: u64, frame: &[u8], label: Label) {
        self.frames += 1;
        let v = match self.det.observe_frame(ts_ns, frame) {
            Ok(Some(v)) => v,
            Ok(None) | Err(_) => {
                self.unread += 1;
                return;
            }
        };
        if v.learning {
            self.learning += 1;
            return;
        }
        let hit = v.score >= self.threshold;
        match label {
            Label::Benign => {
                self.benign.push(v.score);
                if hit {
                    *self.fp_by_hint.entry(v.class_hint).or_default() += 1;
                    self.fp_ns.push(ts_ns);
                }
            }
            Label::Attack(c) => {
                let s = self.classes.entry(c).or_default();
                s.scores.push(v.score);
                s.first_ns.get_or_insert(ts_ns);
                if hit {
                    s.first_detected_ns.get_or_insert(ts_ns);
                    *s.detected_as.entry(v.class_hint).or_default() += 1;
                }
            }
        }
    }

    /// When each false positive was captured (ns, as given to [`Evaluator::frame`]).
    pub fn false_positive_times(&self) -> &[u64] {
        &self.fp_ns
    }

    /// The figures.
    pub fn finish(&self) -> Evaluation {
        let classes = self
            .classes
            .iter()
            .map(|(c, s)| {
                let q = ClassQuality {
                    scored: s.scores.len() as u64,
                    auc: roc_auc(&s.scores, &self.benign),
                    detected: s.scores.iter().filter(|x| **x >= self.threshold).count() as u64,
                    first_detection_s: s
                        .first_ns
                        .zip(s.first_detected_ns)
                        .map(|(a, b)| b.saturating_sub(a) as f64 * 1e-9),
                    detected_as: s.detected_as.clone(),
                };
                (*c, q)
            })
            .collect();
        Evaluation {
            threshold: self.threshold,
            frames: self.frames,
            learning: self.learning,
            unread: self.unread,
            benign_scored: self.benign.len() as u64,
            false_positives: self.fp_ns.len() as u64,
            false_positives_by_hint: self.fp_by_hint.clone(),
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::trafficgen::{Scenario, generate};

    #[test]
    fn auc_ranks_and_counts_ties_half() {
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(roc_auc(&[1.0], &[1.0]), Some(0.5));
        // One of the two positives ties the negative: (1 + 0.5) / 2.
        assert_eq!(roc_auc(&[2.0, 1.0], &[1.0]), Some(0.75));
        assert_eq!(roc_auc(&[], &[1.0]), None);
        assert_eq!(roc_auc(&[1.0], &[]), None);
    }

    #[test]
    fn a_port_scan_after_the_baseline_is_told_from_benign_traffic() {
        let s = Scenario {
            duration_s: 30.0,
            benign_pps: 300.0,
            attacks: vec![
                "port_scan:start=22,duration=5,rate=200"
                    .parse()
                    .expect("spec"),
            ],
            ..Scenario::default()
        };
        let cfg = DetectorConfig {
            baseline_s: 15.0,
            ..DetectorConfig::default()
        };
        let mut ev = Evaluator::new(cfg).expect("config");
        let mut frames = 0;
        for f in generate(&s).expect("scenario") {
            ev.frame(f.ts_ns, &f.frame, f.label);
            frames += 1;
        }
        let e = ev.finish();
        assert_eq!(e.frames, frames);
        assert!(e.learning > 0 && e.benign_scored > 0, "{e:?}");
        assert_eq!(e.classes.len(), 1, "{e:?}");
        let scan = &e.classes[&AttackClass::PortScan];
        assert!(scan.scored > 500, "{scan:?}");
        assert!(scan.auc.is_some_and(|a| a > 0.95), "{scan:?}");
        assert!(
            scan.detected > 0 && scan.first_detection_s.is_some(),
            "{scan:?}"
        );
        assert!(
            scan.detected_as.contains_key(&ClassHint::PortScan),
            "{scan:?}"
        );
        assert!(e.false_positive_rate() < 0.01, "{e:?}");
        assert_eq!(e.false_positives as usize, ev.false_positive_times().len());
    }
}
