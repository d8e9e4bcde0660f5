//! Sentence vectors kept as bytes: each vector scaled so that its largest
//! component is ±127. A quarter of the memory of `f32`, and a scan of
//! 100,000 entries reads a quarter as much (it is bound by memory, not
//! arithmetic); a cosine moves by about 0.001, well under the thresholds'
//! steps.

/// One vector, quantised.
pub struct Quantised {
    values: Vec<i8>,
    scale: f32,
}

impl Quantised {
    /// `vector` as `dim` bytes (cut or padded with zeros).
    pub fn new(vector: &[f32], dim: usize) -> Quantised {
        let (values, scale) = quantise(vector, dim);
        Quantised { values, scale }
    }
}

fn quantise(vector: &[f32], dim: usize) -> (Vec<i8>, f32) {
    let mut values = vec![0i8; dim];
    let largest = vector.iter().take(dim).fold(0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        return (values, 0.0);
    }
    let scale = largest / 127.0;
    for (q, x) in values.iter_mut().zip(vector) {
        *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    (values, scale)
}

/// Many vectors of `dim` values, one after another.
pub struct Rows {
    dim: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
}

impl Rows {
    /// `dim` is at least 1, so that rows can be told apart.
    pub fn with_capacity(dim: usize, rows: usize) -> Rows {
        let dim = dim.max(1);
        Rows { dim, values: Vec::with_capacity(rows * dim), scales: Vec::with_capacity(rows) }
    }

    /// Adds a vector (a missing one, without an embedding model, is zeros).
    pub fn push(&mut self, vector: &[f32]) {
        let (values, scale) = quantise(vector, self.dim);
        self.values.extend(values);
        self.scales.push(scale);
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    /// Row `i` as floats again.
    pub fn get(&self, i: usize) -> Vec<f32> {
        let scale = self.scales[i];
        self.values[i * self.dim..(i + 1) * self.dim].iter().map(|&q| q as f32 * scale).collect()
    }

    /// The cosine of row `i` with `query`.
    pub fn dot(&self, i: usize, query: &Quantised) -> f32 {
        dot_i8(&self.values[i * self.dim..(i + 1) * self.dim], &query.values) as f32 * self.scales[i] * query.scale
    }

    /// The `k` rows most like `query`, best first.
    pub fn top(&self, query: &Quantised, k: usize) -> Vec<(usize, f32)> {
        let mut top: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
        for (i, (row, scale)) in self.values.chunks_exact(self.dim).zip(&self.scales).enumerate() {
            let s = dot_i8(row, &query.values) as f32 * scale * query.scale;
            if top.len() < k || s > top[top.len() - 1].1 {
                let at = top.partition_point(|&(_, t)| t >= s);
                top.insert(at, (i, s));
                top.truncate(k);
            }
        }
        top
    }
}

/// Sixteen lanes, so the compiler vectorises it.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for k in 0..16 {
            lanes[k] += i32::from(x[k]) * i32::from(y[k]);
        }
    }
    lanes.iter().sum()
}

/// The dot product of two float vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut a8 = a.chunks_exact(8);
    let mut b8 = b.chunks_exact(8);
    for (x, y) in (&mut a8).zip(&mut b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIM: usize = 384;

    /// A repeatable random unit vector (xorshift).
    fn unit(seed: u32) -> Vec<f32> {
        let mut state = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut v: Vec<f32> = (0..DIM)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2001) as f32 - 1000.0
            })
            .collect();
        let norm = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    #[test]
    fn quantised_cosines_are_within_a_thousandth() {
        let mut rows = Rows::with_capacity(DIM, 20);
        let vectors: Vec<Vec<f32>> = (0..20).map(unit).collect();
        vectors.iter().for_each(|v| rows.push(v));
        let query = unit(99);
        let q = Quantised::new(&query, DIM);
        for (i, v) in vectors.iter().enumerate() {
            assert!((rows.dot(i, &q) - dot(v, &query)).abs() < 1e-3, "row {i}");
            let back = rows.get(i);
            assert!((dot(&back, v) - 1.0).abs() < 1e-3);
        }
        let top = rows.top(&q, 3);
        let mut exact: Vec<(usize, f32)> = vectors.iter().map(|v| dot(v, &query)).enumerate().collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), exact[..3].iter().map(|t| t.0).collect::<Vec<_>>());
    }

    #[test]
    fn a_missing_vector_is_zeros() {
        let mut rows = Rows::with_capacity(DIM, 1);
        rows.push(&[]);
        assert_eq!(rows.dot(0, &Quantised::new(&unit(1), DIM)), 0.0);
    }
}
