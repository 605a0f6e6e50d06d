//! Streaming half-space trees (Tan, Ting and Liu, IJCAI 2011): an ensemble of random trees
//! over the unit hypercube whose nodes count how much baseline traffic fell into their
//! half-space. A point that lands early in sparsely populated nodes is anomalous.
//!
//! The trees are complete binary trees stored as arrays of three-level blocks, one cache
//! line each, so a descent of depth 10 touches four cache lines and allocates nothing.

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

/// Grid of the split points: splits lie on multiples of `2^-13` in `[-4, 4)` (each tree's
/// work space lies within `[-2, 3]`), so a node stores its split in 16 bits and a whole
/// node fits in 8 bytes.
const SPLIT_OFFSET: f32 = 4.0;
const SPLIT_STEP: f32 = 1.0 / 8192.0;

/// Most dimensions of a point.
pub const MAX_DIMS: usize = 64;

/// A point's coordinates on the grid of the splits: the largest `q` whose split point
/// `q · 2^-13 - 4` is at most the coordinate, so that a node compares two integers (and
/// exactly as it would compare the coordinate with its split point). A missing coordinate
/// counts as 0, NaN as +∞.
struct Grid([i32; MAX_DIMS]);

impl Grid {
    #[inline]
    fn of(x: &[f32], dims: usize) -> Grid {
        let zero = (SPLIT_OFFSET / SPLIT_STEP) as i32;
        let mut g = [zero; MAX_DIMS];
        for (q, &v) in g.iter_mut().zip(x).take(dims) {
            *q = if v.is_nan() {
                i32::MAX
            } else {
                // `v / 2^-13` is exact (a power of two); `as` truncates towards zero and
                // saturates (far-out coordinates stay beyond every split), and one step
                // down makes the floor (`f32::floor` is a library call on baseline x86_64).
                let t = v / SPLIT_STEP;
                let i = t as i32;
                let floor = if (i as f32) > t { i - 1 } else { i };
                floor.saturating_add(zero)
            };
        }
        Grid(g)
    }
}

/// One tree node: the mass that fell into it, and (for internal nodes) the dimension and
/// the quantised split point (`split · 2^-13 - 4`) of its half-spaces.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C)]
struct Node {
    mass: u32,
    dim: u16,
    split: u16,
}

impl Node {
    #[inline]
    fn split_point(self) -> f32 {
        f32::from(self.split) * SPLIT_STEP - SPLIT_OFFSET
    }
}

/// Levels of a tree kept together in one cache line: a block holds a subtree of three
/// levels (7 nodes of 8 bytes), so a descent of depth 10 touches 4 lines instead of one
/// or more per level.
const BLOCK_LEVELS: u32 = 3;

/// Seven nodes of a three-level subtree in breadth-first order (the eighth is unused),
/// aligned to a cache line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
struct Block([Node; 8]);

/// Where a descent is: block index (within the tree) and position in the block.
#[derive(Clone, Copy, Default)]
struct Pos {
    block: u32,
    at: u32,
}

impl Pos {
    /// The left (`right == false`) or right child. Children of the block's bottom level
    /// (positions 3 to 6) are the roots of its 8 child blocks, numbered breadth-first.
    #[inline]
    fn child(self, right: bool) -> Pos {
        let r = u32::from(right);
        if self.at < 3 {
            Pos {
                block: self.block,
                at: 2 * self.at + 1 + r,
            }
        } else {
            Pos {
                block: 8 * self.block + 1 + 2 * (self.at - 3) + r,
                at: 0,
            }
        }
    }
}

/// An ensemble of half-space trees over `dims`-dimensional points in [0, 1]^dims.
///
/// Each tree is a complete binary tree stored as blocks of three levels per cache line
/// (a subtree of three levels in 64 bytes).
#[derive(Debug, Clone)]
pub struct HsTrees {
    dims: usize,
    depth: u32,
    blocks_per_tree: usize,
    blocks: Vec<Block>,
    size_limit: u32,
    trained: u64,
}

impl HsTrees {
    /// `trees` trees of depth `depth` (1..=16) over `dims` dimensions (1..=64).
    pub fn new(dims: usize, trees: usize, depth: u32, seed: u64) -> Self {
        let dims = dims.clamp(1, MAX_DIMS);
        let depth = depth.clamp(1, 16);
        let trees = trees.max(1);
        // Levels 0..=depth in rows of blocks of BLOCK_LEVELS levels, 8 times as many blocks
        // per row as in the row above.
        let rows = (depth + 1).div_ceil(BLOCK_LEVELS);
        let blocks_per_tree: usize = (0..rows).map(|r| 1usize << (3 * r)).sum();
        let mut rng = SplitMix::new(seed);
        let mut blocks = vec![Block::default(); trees * blocks_per_tree];
        for t in 0..trees {
            let tree = &mut blocks[t * blocks_per_tree..(t + 1) * blocks_per_tree];
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
            let mut level: Vec<(Pos, Vec<f32>, Vec<f32>)> = vec![(Pos::default(), lo, hi)];
            for _ in 0..depth {
                let mut next = Vec::with_capacity(level.len() * 2);
                for (pos, blo, bhi) in level {
                    let q = (rng.next_u64() % dims as u64) as usize;
                    let mid = (blo[q] + bhi[q]) / 2.0;
                    let split = ((mid + SPLIT_OFFSET) / SPLIT_STEP)
                        .round()
                        .clamp(0.0, f32::from(u16::MAX)) as u16;
                    let node = &mut tree[pos.block as usize].0[pos.at as usize];
                    node.dim = q as u16;
                    node.split = split;
                    let p = node.split_point();
                    let mut left_hi = bhi.clone();
                    left_hi[q] = p;
                    let mut right_lo = blo.clone();
                    right_lo[q] = p;
                    next.push((pos.child(false), blo, left_hi));
                    next.push((pos.child(true), right_lo, bhi));
                }
                level = next;
            }
        }
        HsTrees {
            dims,
            depth,
            blocks_per_tree,
            blocks,
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

    /// Whether the point lies in the right half-space of `node`: its coordinate, on the
    /// grid of the splits, at or above the split.
    #[inline]
    fn goes_right(node: Node, x: &Grid) -> bool {
        x.0[usize::from(node.dim) % MAX_DIMS] >= i32::from(node.split)
    }

    /// Adds `x` to the reference mass profile of every tree.
    pub fn learn(&mut self, x: &[f32]) {
        let x = &Grid::of(x, self.dims);
        for tree in self.blocks.chunks_exact_mut(self.blocks_per_tree) {
            let mut pos = Pos::default();
            for _ in 0..self.depth {
                let Some(node) = tree
                    .get_mut(pos.block as usize)
                    .and_then(|b| b.0.get_mut(pos.at as usize))
                else {
                    break;
                };
                node.mass = node.mass.saturating_add(1);
                pos = pos.child(Self::goes_right(*node, x));
            }
            if let Some(node) = tree
                .get_mut(pos.block as usize)
                .and_then(|b| b.0.get_mut(pos.at as usize))
            {
                node.mass = node.mass.saturating_add(1);
            }
        }
        self.trained += 1;
    }

    /// Mass score of `x`: the sum over trees of `mass · 2^depth` at the node where the
    /// descent ends (a leaf, or the first node lighter than the size limit). High for
    /// points in dense regions of the baseline, low for anomalies.
    ///
    /// The trees descend side by side, one block (three levels) per turn: every tree's
    /// next block is asked for before any of them is read, so their cache misses (the
    /// forest is larger than a core's L2 cache) overlap instead of following one another
    /// down each tree. The sum is of integers, so the order changes nothing.
    pub fn score(&self, x: &[f32]) -> f64 {
        const DONE: usize = usize::MAX;
        let x = &Grid::of(x, self.dims);
        let (depth, limit) = (self.depth, self.size_limit);
        // The side taken is computed, not branched on (it is as good as random, and a
        // mispredicted branch per level cost more than the rest of the step); the branches
        // left follow the block pattern and predict well.
        let right = |n: Node| usize::from(Self::goes_right(n, x));
        let bpt = self.blocks_per_tree;
        // Block rows of a tree: a descent ends within this many turns.
        let rows = (depth + 1).div_ceil(BLOCK_LEVELS);
        let mut total = 0u64;
        for group in self.blocks.chunks(bpt * SIDE_BY_SIDE) {
            let trees = group.len() / bpt;
            // Per tree of the group: the block (index in `group`) it reads next, or DONE.
            // Every tree still descending is at the same depth `d` at the start of a turn.
            let mut next = [DONE; SIDE_BY_SIDE];
            for (t, b) in next.iter_mut().enumerate().take(trees) {
                *b = t * bpt;
            }
            let mut d = 0;
            for _ in 0..rows {
                for &b in &next[..trees] {
                    if b != DONE {
                        super::table::prefetch(group.as_ptr().wrapping_add(b));
                    }
                }
                for (t, slot) in next[..trees].iter_mut().enumerate() {
                    let bi = *slot;
                    if bi == DONE {
                        continue;
                    }
                    *slot = DONE;
                    let base = t * bpt;
                    // A block past the tree's end (never, while the depth checks hold) ends
                    // the descent with no mass, as a missing node would.
                    let Some(b) = group.get(bi).filter(|_| bi < base + bpt) else {
                        continue;
                    };
                    let n = b.0[0];
                    if d == depth || n.mass < limit {
                        total += u64::from(n.mass) << d;
                        continue;
                    }
                    let at = 1 + right(n);
                    let n = b.0[at];
                    if d + 1 == depth || n.mass < limit {
                        total += u64::from(n.mass) << (d + 1);
                        continue;
                    }
                    let at = 2 * at + 1 + right(n);
                    let n = b.0[at & 7];
                    if d + 2 == depth || n.mass < limit {
                        total += u64::from(n.mass) << (d + 2);
                        continue;
                    }
                    *slot = base + 8 * (bi - base) + 1 + 2 * (at - 3) + right(n);
                }
                d += 3;
            }
        }
        total as f64
    }
}

/// Trees that [`HsTrees::score`] descends side by side: enough to keep a core's
/// outstanding misses busy.
const SIDE_BY_SIDE: usize = 16;

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

    /// The score of one tree descended on its own, the way the paper defines it.
    fn serial_score(h: &HsTrees, x: &[f32]) -> f64 {
        let x = &Grid::of(x, h.dims);
        let mut total = 0u64;
        for tree in h.blocks.chunks_exact(h.blocks_per_tree) {
            let mut pos = Pos::default();
            let mut d = 0;
            let mut node = tree[0].0[0];
            while d < h.depth && node.mass >= h.size_limit {
                pos = pos.child(HsTrees::goes_right(node, x));
                node = tree[pos.block as usize].0[pos.at as usize];
                d += 1;
            }
            total += u64::from(node.mass) << d;
        }
        total as f64
    }

    #[test]
    fn blocked_descent_matches_the_definition() {
        // Depths that end inside a block and at its bottom.
        for depth in [4, 8, 10] {
            let mut h = HsTrees::new(3, 21, depth, 9);
            let mut rng = SplitMix::new(3);
            for _ in 0..3_000 {
                let p = [rng.next_f32(), rng.next_f32() * 0.3, 0.5];
                h.learn(&p);
            }
            // The layout is a tree: every node has its own place, and every point that
            // entered a node went on to exactly one of its children.
            for tree in h.blocks.chunks_exact(h.blocks_per_tree) {
                assert_eq!(tree[0].0[0].mass, 3_000);
                let mut level = vec![Pos::default()];
                let mut seen = std::collections::HashSet::new();
                for d in 0..=depth {
                    let mut next = Vec::new();
                    for p in level {
                        assert!(seen.insert((p.block, p.at)), "node placed twice");
                        if d < depth {
                            let (l, r) = (p.child(false), p.child(true));
                            let m = |q: Pos| tree[q.block as usize].0[q.at as usize].mass;
                            assert_eq!(m(p), m(l) + m(r));
                            next.extend([l, r]);
                        }
                    }
                    level = next;
                }
                assert_eq!(seen.len(), (1 << (depth + 1)) - 1);
            }
            for limit in [1, 20, 400] {
                h.set_size_limit(limit);
                for _ in 0..200 {
                    let p = [rng.next_f32() * 1.4 - 0.2, rng.next_f32(), rng.next_f32()];
                    assert_eq!(
                        h.score(&p),
                        serial_score(&h, &p),
                        "depth {depth} limit {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_grid_compares_like_the_split_points() {
        let mut rng = SplitMix::new(5);
        for _ in 0..100_000 {
            let v = rng.next_f32() * 7.0 - 3.5;
            let split = (rng.next_u64() % 65_536) as u16;
            let node = Node {
                mass: 0,
                dim: 0,
                split,
            };
            let p = node.split_point();
            // The coordinate itself, a split point, and its neighbours.
            for v in [v, p, p.next_up(), p.next_down()] {
                assert_eq!(
                    HsTrees::goes_right(node, &Grid::of(&[v], 1)),
                    v >= p,
                    "{v} vs {p}"
                );
            }
        }
        assert!(HsTrees::goes_right(
            Node {
                mass: 0,
                dim: 0,
                split: u16::MAX
            },
            &Grid::of(&[f32::NAN], 1)
        ));
    }

    #[test]
    fn same_seed_same_trees() {
        let a = HsTrees::new(3, 4, 6, 1);
        let b = HsTrees::new(3, 4, 6, 1);
        assert_eq!(a.blocks, b.blocks);
    }
}
