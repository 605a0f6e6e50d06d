//! Streaming half-space trees (Tan, Ting and Liu, IJCAI 2011): an ensemble of random trees
//! over the unit hypercube whose nodes count how much baseline traffic fell into their
//! half-space. A point that lands early in sparsely populated nodes is anomalous.
//!
//! The trees are complete binary trees stored as arrays (node `i` has children `2i+1` and
//! `2i+2`), so a descent touches one cache line per level and allocates nothing.

/// A small deterministic generator (splitmix64), so the same seed builds the same trees.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        super::sketch::mix64(self.0)
    }

    /// A uniform float in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// An ensemble of half-space trees over `dims`-dimensional points in [0, 1]^dims.
#[derive(Debug, Clone)]
pub struct HsTrees {
    dims: usize,
    depth: u32,
    nodes_per_tree: usize,
    trees: usize,
    dim: Vec<u16>,
    split: Vec<f32>,
    mass: Vec<u32>,
    size_limit: u32,
    trained: u64,
}

impl HsTrees {
    /// `trees` trees of depth `depth` (1..=16) over `dims` dimensions (at least 1).
    pub fn new(dims: usize, trees: usize, depth: u32, seed: u64) -> Self {
        let dims = dims.clamp(1, usize::from(u16::MAX));
        let depth = depth.clamp(1, 16);
        let trees = trees.max(1);
        let nodes_per_tree = (1usize << (depth + 1)) - 1;
        let internal = (1usize << depth) - 1;
        let mut rng = SplitMix::new(seed);
        let mut dim = vec![0u16; trees * nodes_per_tree];
        let mut split = vec![0f32; trees * nodes_per_tree];
        for t in 0..trees {
            // Each tree gets its own random work space around the unit cube: a point s in
            // [0,1] per dimension and a range s ± 2·max(s, 1-s), which covers the cube.
            let mut lo = vec![0f32; dims];
            let mut hi = vec![0f32; dims];
            for q in 0..dims {
                let s = rng.next_f32();
                let r = 2.0 * s.max(1.0 - s);
                lo[q] = s - r;
                hi[q] = s + r;
            }
            // Build breadth-first, carrying each node's box.
            let mut boxes: Vec<(Vec<f32>, Vec<f32>)> = vec![(lo, hi)];
            for node in 0..internal {
                let (blo, bhi) = boxes[node].clone();
                let q = (rng.next_u64() % dims as u64) as usize;
                let p = (blo[q] + bhi[q]) / 2.0;
                dim[t * nodes_per_tree + node] = q as u16;
                split[t * nodes_per_tree + node] = p;
                let mut left_hi = bhi.clone();
                left_hi[q] = p;
                let mut right_lo = blo.clone();
                right_lo[q] = p;
                boxes.push((blo, left_hi));
                boxes.push((right_lo, bhi));
            }
        }
        HsTrees {
            dims,
            depth,
            nodes_per_tree,
            trees,
            dim,
            split,
            mass: vec![0; trees * nodes_per_tree],
            size_limit: 1,
            trained: 0,
        }
    }

    /// Number of dimensions a point must have.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Points learned so far.
    pub fn trained(&self) -> u64 {
        self.trained
    }

    /// Sets the mass below which a descent stops when scoring (the paper's size limit).
    pub fn set_size_limit(&mut self, limit: u32) {
        self.size_limit = limit.max(1);
    }

    #[inline]
    fn child(&self, base: usize, node: usize, x: &[f32]) -> usize {
        let q = usize::from(self.dim[base + node]);
        let v = x.get(q).copied().unwrap_or(0.0);
        if v < self.split[base + node] {
            2 * node + 1
        } else {
            2 * node + 2
        }
    }

    /// Adds `x` to the reference mass profile of every tree.
    pub fn learn(&mut self, x: &[f32]) {
        for t in 0..self.trees {
            let base = t * self.nodes_per_tree;
            let mut node = 0;
            for _ in 0..self.depth {
                self.mass[base + node] = self.mass[base + node].saturating_add(1);
                node = self.child(base, node, x);
            }
            self.mass[base + node] = self.mass[base + node].saturating_add(1);
        }
        self.trained += 1;
    }

    /// Mass score of `x`: the sum over trees of `mass · 2^depth` at the node where the
    /// descent ends (a leaf, or the first node lighter than the size limit). High for
    /// points in dense regions of the baseline, low for anomalies.
    pub fn score(&self, x: &[f32]) -> f64 {
        let mut total = 0u64;
        for t in 0..self.trees {
            let base = t * self.nodes_per_tree;
            let mut node = 0;
            let mut d = 0;
            while d < self.depth && self.mass[base + node] >= self.size_limit {
                node = self.child(base, node, x);
                d += 1;
            }
            total += u64::from(self.mass[base + node]) << d;
        }
        total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_score_lower_than_inliers() {
        let mut h = HsTrees::new(4, 25, 10, 42);
        let mut rng = SplitMix::new(7);
        // Baseline: a cluster around (0.3, 0.6, 0.5, 0.2) with a little spread.
        let point = |rng: &mut SplitMix, c: [f32; 4]| -> [f32; 4] {
            let mut p = c;
            for v in &mut p {
                *v += (rng.next_f32() - 0.5) * 0.1;
            }
            p
        };
        let centre = [0.3, 0.6, 0.5, 0.2];
        for _ in 0..5_000 {
            h.learn(&point(&mut rng, centre));
        }
        h.set_size_limit(5);
        assert_eq!(h.trained(), 5_000);
        let inliers: Vec<f64> = (0..200)
            .map(|_| h.score(&point(&mut rng, centre)))
            .collect();
        let outliers: Vec<f64> = (0..200)
            .map(|_| h.score(&point(&mut rng, [0.9, 0.1, 0.9, 0.9])))
            .collect();
        let max_out = outliers.iter().copied().fold(0.0, f64::max);
        let mut sorted = inliers.clone();
        sorted.sort_by(f64::total_cmp);
        // Every outlier scores below the 5th percentile of the inliers.
        assert!(
            max_out < sorted[10],
            "outlier {max_out} vs inlier p5 {}",
            sorted[10]
        );
    }

    #[test]
    fn same_seed_same_trees() {
        let a = HsTrees::new(3, 4, 6, 1);
        let b = HsTrees::new(3, 4, 6, 1);
        assert_eq!(a.split, b.split);
        assert_eq!(a.dim, b.dim);
    }
}
