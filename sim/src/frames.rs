//! The bytes of the frames the NIC builds, between the data path that builds them and the
//! sink that receives them: a byte arena in fixed-size chunks, each frame a [`FrameBuf`]
//! view into it.
//!
//! A frame is written once, at its exact length, where the arena's current chunk has room;
//! the scheduler and the in-flight records move only the 12-byte view, and the departure
//! frees it. A chunk counts the frames it holds and is reused as soon as the last one is
//! freed — at once when it is the chunk being filled, so that with a few frames in flight
//! the same chunk is rewritten and stays in the cache. Frames leave roughly in the order
//! they were built, so a chunk empties soon after the next one starts filling; a frame held
//! long (a copy waiting for a gap) keeps only its own chunk.

/// Bytes per chunk: a few hundred minimum-size frames, and the largest jumbo frame. A frame
/// longer than this gets a chunk of its own length.
const CHUNK: usize = 64 * 1024;

/// Where a frame's bytes are in [`Frames`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameBuf {
    chunk: u32,
    offset: u32,
    len: u32,
}

impl FrameBuf {
    /// The frame's length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

struct Chunk {
    bytes: Box<[u8]>,
    /// Bytes handed out from the start.
    used: usize,
    /// Frames handed out and not yet freed.
    live: u32,
}

impl Chunk {
    fn new(size: usize) -> Chunk {
        Chunk {
            bytes: vec![0; size].into_boxed_slice(),
            used: 0,
            live: 0,
        }
    }

    /// What stands in [`Frames::chunks`] for the chunk held out as the current one: no
    /// bytes, no frames.
    fn stand_in() -> Chunk {
        Chunk {
            bytes: Box::default(),
            used: 0,
            live: 0,
        }
    }
}

/// The frame arena (see the module documentation).
///
/// The chunk being filled is held out of the chunk list (its place there an empty
/// stand-in): allocating from it is a few loads and stores on the arena itself,
/// with no look-up of the chunk by number.
pub struct Frames {
    chunks: Vec<Chunk>,
    /// Chunks holding no frame, other than the current one.
    free: Vec<u32>,
    /// The chunk being filled: chunk number [`Frames::current`], whose entry in
    /// [`Frames::chunks`] is an empty stand-in meanwhile.
    cur: Chunk,
    /// The current chunk's number.
    current: u32,
}

impl Default for Frames {
    fn default() -> Self {
        Frames::new()
    }
}

impl Frames {
    /// An arena with one empty chunk.
    pub fn new() -> Frames {
        Frames {
            chunks: vec![Chunk::stand_in()],
            free: Vec::new(),
            cur: Chunk::new(CHUNK),
            current: 0,
        }
    }

    /// A new frame of exactly `len` bytes (their contents unspecified: the caller writes
    /// every byte), and where it is.
    #[inline(always)]
    pub fn alloc(&mut self, len: usize) -> (FrameBuf, &mut [u8]) {
        let offset = self.cur.used;
        // `used` never exceeds the chunk's length: the room left needs no overflow check.
        if len > self.cur.bytes.len() - offset {
            return self.alloc_in_next(len);
        }
        let c = &mut self.cur;
        c.used = offset + len;
        c.live += 1;
        let buf = FrameBuf {
            chunk: self.current,
            offset: offset as u32,
            len: len as u32,
        };
        (buf, &mut c.bytes[offset..][..len])
    }

    /// Two new frames of `a` and `b` bytes, where [`Frames::alloc`] of `a` then of `b`
    /// would put them (so the second right after the first when both fit in the current
    /// chunk): one room check for both.
    #[inline(always)]
    pub fn alloc_two(&mut self, a: usize, b: usize) -> (FrameBuf, FrameBuf, &mut [u8], &mut [u8]) {
        let offset = self.cur.used;
        if a + b > self.cur.bytes.len() - offset {
            return self.alloc_two_apart(a, b);
        }
        let c = &mut self.cur;
        c.used = offset + a + b;
        c.live += 2;
        let first = FrameBuf {
            chunk: self.current,
            offset: offset as u32,
            len: a as u32,
        };
        let second = FrameBuf {
            chunk: self.current,
            offset: (offset + a) as u32,
            len: b as u32,
        };
        let (x, y) = c.bytes[offset..][..a + b].split_at_mut(a);
        (first, second, x, y)
    }

    /// [`Frames::alloc_two`] when the two do not both fit in the current chunk: one
    /// [`Frames::alloc`] after the other.
    #[cold]
    #[inline(never)]
    fn alloc_two_apart(
        &mut self,
        a: usize,
        b: usize,
    ) -> (FrameBuf, FrameBuf, &mut [u8], &mut [u8]) {
        let first = self.alloc(a).0;
        let second = self.alloc(b).0;
        debug_assert_eq!(second.chunk, self.current);
        if first.chunk == self.current {
            let (x, y) = self.cur.bytes.split_at_mut(second.offset as usize);
            let x = &mut x[first.offset as usize..][..a];
            (first, second, x, &mut y[..b])
        } else {
            // The first frame's chunk is back in the list: disjoint from the current one.
            let x = &mut self.chunks[first.chunk as usize].bytes[first.offset as usize..][..a];
            let y = &mut self.cur.bytes[second.offset as usize..][..b];
            (first, second, x, y)
        }
    }

    /// [`Frames::alloc`] when the current chunk has no room: the next chunk is an empty one
    /// big enough (the current one itself when it holds nothing), or a new one.
    #[cold]
    #[inline(never)]
    fn alloc_in_next(&mut self, len: usize) -> (FrameBuf, &mut [u8]) {
        let reuse_current = self.cur.live == 0 && self.cur.bytes.len() >= len;
        if !reuse_current {
            let next = match self
                .free
                .iter()
                .position(|&i| self.chunks[i as usize].bytes.len() >= len)
            {
                Some(k) => self.free.swap_remove(k),
                None => {
                    self.chunks.push(Chunk::new(len.max(CHUNK)));
                    (self.chunks.len() - 1) as u32
                }
            };
            if self.cur.live == 0 {
                self.free.push(self.current);
            }
            // The current chunk back in its place, the next one out of its place.
            let next_chunk = std::mem::replace(&mut self.chunks[next as usize], Chunk::stand_in());
            self.chunks[self.current as usize] = std::mem::replace(&mut self.cur, next_chunk);
            self.current = next;
        }
        let c = &mut self.cur;
        c.used = len;
        c.live += 1;
        let buf = FrameBuf {
            chunk: self.current,
            offset: 0,
            len: len as u32,
        };
        (buf, &mut c.bytes[..len])
    }

    /// The chunk numbered `chunk`.
    #[inline(always)]
    fn chunk(&self, chunk: u32) -> &Chunk {
        if chunk == self.current {
            &self.cur
        } else {
            &self.chunks[chunk as usize]
        }
    }

    /// The bytes of `buf`.
    #[inline(always)]
    pub fn bytes(&self, buf: FrameBuf) -> &[u8] {
        let start = buf.offset as usize;
        &self.chunk(buf.chunk).bytes[start..start + buf.len as usize]
    }

    /// Frees `buf`, which must not be used again.
    #[inline(always)]
    pub fn free(&mut self, buf: FrameBuf) {
        if buf.chunk == self.current {
            let c = &mut self.cur;
            c.live -= 1;
            if c.live == 0 {
                c.used = 0;
            }
        } else {
            let c = &mut self.chunks[buf.chunk as usize];
            c.live -= 1;
            if c.live == 0 {
                self.free.push(buf.chunk);
            }
        }
    }

    /// Hands the bytes of `buf` to `f`, then frees `buf` ([`Frames::bytes`] and
    /// [`Frames::free`] with the chunk found once: a departure's last use of its frame).
    #[inline(always)]
    pub fn release(&mut self, buf: FrameBuf, f: impl FnOnce(&[u8])) {
        let range = buf.offset as usize..buf.offset as usize + buf.len as usize;
        if buf.chunk == self.current {
            let c = &mut self.cur;
            f(&c.bytes[range]);
            c.live -= 1;
            if c.live == 0 {
                c.used = 0;
            }
        } else {
            let c = &mut self.chunks[buf.chunk as usize];
            f(&c.bytes[range]);
            c.live -= 1;
            if c.live == 0 {
                self.free.push(buf.chunk);
            }
        }
    }

    /// Forgets every frame (a reset of the NIC, whose queues are gone): every chunk is free.
    pub fn clear(&mut self) {
        self.free.clear();
        self.cur.used = 0;
        self.cur.live = 0;
        for (i, c) in self.chunks.iter_mut().enumerate() {
            c.used = 0;
            c.live = 0;
            if i as u32 != self.current {
                self.free.push(i as u32);
            }
        }
    }

    /// Frames allocated and not yet freed: none once a run has finished (every frame built
    /// was transmitted or dropped).
    pub fn live(&self) -> usize {
        self.chunks.iter().map(|c| c.live as usize).sum::<usize>() + self.cur.live as usize
    }

    /// Bytes the arena holds in all its chunks, used or not.
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes.len()).sum::<usize>() + self.cur.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frames: &mut Frames, len: usize, fill: u8) -> FrameBuf {
        let (buf, bytes) = frames.alloc(len);
        bytes.fill(fill);
        buf
    }

    #[test]
    fn frames_keep_their_bytes_while_others_come_and_go() {
        let mut f = Frames::new();
        let mut live = std::collections::VecDeque::new();
        // Far more bytes than a chunk, freed in order with up to 40 frames in flight.
        for i in 0..20_000u32 {
            let len = 60 + (i as usize * 37) % 1500;
            live.push_back((frame(&mut f, len, i as u8), len, i as u8));
            if live.len() > 40 {
                let (buf, len, fill) = live.pop_front().expect("non-empty");
                assert_eq!(f.bytes(buf), &vec![fill; len][..]);
                f.free(buf);
            }
        }
        assert_eq!(f.live(), live.len());
        for (buf, len, fill) in live {
            assert_eq!(f.bytes(buf), &vec![fill; len][..]);
            f.free(buf);
        }
        assert_eq!(f.live(), 0);
        // 40 frames of at most 1.5 KB fit in one chunk: the arena did not grow beyond two.
        assert!(f.capacity() <= 2 * CHUNK, "{} bytes", f.capacity());
    }

    /// Two frames allocated together land where one allocation after the other would put
    /// them, whether both fit in the current chunk or not, and keep their bytes.
    #[test]
    fn two_frames_together_land_where_one_after_the_other_would() {
        let mut together = Frames::new();
        let mut apart = Frames::new();
        let mut live = std::collections::VecDeque::new();
        for i in 0..20_000u32 {
            let a = 60 + (i as usize * 37) % 1500;
            let b = if i % 97 == 0 {
                CHUNK + 10
            } else {
                70 + (i as usize * 53) % 1500
            };
            let (fa, fb, x, y) = together.alloc_two(a, b);
            x.fill(i as u8);
            y.fill(!(i as u8));
            let ea = apart.alloc(a).0;
            let eb = apart.alloc(b).0;
            assert_eq!((fa, fb), (ea, eb), "pair {i}");
            live.push_back((fa, fb, i as u8));
            if live.len() > 40 {
                let (fa, fb, fill) = live.pop_front().expect("non-empty");
                assert!(together.bytes(fa).iter().all(|&v| v == fill));
                assert!(together.bytes(fb).iter().all(|&v| v == !fill));
                together.free(fa);
                together.free(fb);
                apart.free(fa);
                apart.free(fb);
            }
        }
        assert_eq!(together.live(), 2 * live.len());
        assert_eq!(together.capacity(), apart.capacity());
    }

    #[test]
    fn the_current_chunk_is_rewritten_once_empty() {
        let mut f = Frames::new();
        let a = frame(&mut f, 100, 1);
        f.free(a);
        let b = frame(&mut f, 100, 2);
        assert_eq!(a, b);
        assert_eq!(f.bytes(b), &[2; 100][..]);
    }

    #[test]
    fn a_frame_held_long_keeps_only_its_chunk() {
        let mut f = Frames::new();
        let held = frame(&mut f, 1000, 7);
        for i in 0..10_000u32 {
            let b = frame(&mut f, 1500, i as u8);
            f.free(b);
        }
        assert_eq!(f.bytes(held), &[7; 1000][..]);
        assert!(f.capacity() <= 2 * CHUNK, "{} bytes", f.capacity());
        f.free(held);
    }

    #[test]
    fn frames_longer_than_a_chunk_get_their_own() {
        let mut f = Frames::new();
        let small = frame(&mut f, 10, 1);
        let big = frame(&mut f, 3 * CHUNK, 2);
        let after = frame(&mut f, 10, 3);
        assert_eq!(f.bytes(small), &[1; 10][..]);
        assert_eq!(f.bytes(big).len(), 3 * CHUNK);
        assert!(f.bytes(big).iter().all(|&b| b == 2));
        assert_eq!(f.bytes(after), &[3; 10][..]);
        for b in [small, big, after] {
            f.free(b);
        }
        let empty = frame(&mut f, 0, 0);
        assert!(empty.is_empty());
        assert_eq!(f.bytes(empty), &[] as &[u8]);
    }

    #[test]
    fn clear_frees_every_chunk() {
        let mut f = Frames::new();
        for _ in 0..100 {
            frame(&mut f, 1500, 0);
        }
        let before = f.capacity();
        f.clear();
        for _ in 0..100 {
            frame(&mut f, 1500, 0);
        }
        assert_eq!(f.capacity(), before);
    }
}
