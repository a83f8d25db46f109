//! Statistics of the bench's samples: percentiles, means, latency samples with their timeouts
//! (one batch of them at a time), units, and the verdict words of the report's target tables.

use std::time::Duration;

/// Percentile `p` (0..=1) of `sorted` by the nearest rank; NaN for no samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `d` in ms.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A copy of `v`, sorted.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// The mean of `v` (0 for none).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Bytes in MB (10^6).
pub fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

/// `v` as "a, b, c", each with `places` decimals.
pub fn list(v: &[f64], places: usize) -> String {
    let v: Vec<String> = v.iter().map(|x| format!("{x:.places$}")).collect();
    v.join(", ")
}

/// A target table's verdict.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Latency samples (ms) and how many timed out.
#[derive(Default, Clone)]
pub struct Lat {
    pub samples: Vec<f64>,
    pub timeouts: usize,
}

impl Lat {
    /// `n` runs of `one`: a sample each, or a timeout where it gives none.
    pub fn batch(n: usize, mut one: impl FnMut() -> Option<f64>) -> Lat {
        let mut l = Lat::default();
        for _ in 0..n {
            match one() {
                Some(v) => l.samples.push(v),
                None => l.timeouts += 1,
            }
        }
        l
    }

    /// Add `other`'s samples and timeouts to these.
    pub fn absorb(&mut self, other: Lat) {
        self.samples.extend(other.samples);
        self.timeouts += other.timeouts;
    }

    pub fn sorted(&self) -> Vec<f64> {
        sorted(&self.samples)
    }

    /// The table cells `runs | p50 | p90 | max` (runs counting the timeouts), ms to 3 places.
    pub fn cells(&self) -> String {
        let s = self.sorted();
        format!(
            "{} | {:.3} | {:.3} | {:.3}",
            s.len() + self.timeouts,
            pct(&s, 0.5),
            pct(&s, 0.9),
            s.last().copied().unwrap_or(f64::NAN)
        )
    }
}

/// Latency of `subjects` (e.g. beds) in `total / batch` rounds of one batch each, interleaved (a
/// busy machine's noise then hits all alike); `one(i)` is one run on subject `i`. Per subject:
/// its samples and the p50 of each of its batches, in run order.
pub fn interleaved(
    subjects: usize,
    total: usize,
    batch: usize,
    mut one: impl FnMut(usize) -> Option<f64>,
) -> Vec<(Lat, Vec<f64>)> {
    let mut out = vec![(Lat::default(), Vec::new()); subjects];
    for _ in 0..total / batch {
        for (i, (lat, p50s)) in out.iter_mut().enumerate() {
            let this = Lat::batch(batch, || one(i));
            p50s.push(pct(&this.sorted(), 0.5));
            lat.absorb(this);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_samples_and_timeouts_and_cells_count_both() {
        let mut i = 0;
        let l = Lat::batch(5, || {
            i += 1;
            (i != 3).then_some(f64::from(i))
        });
        assert_eq!(
            (l.samples.as_slice(), l.timeouts),
            (&[1.0, 2.0, 4.0, 5.0][..], 1)
        );
        // 5 runs; nearest-rank p50 of 1, 2, 4, 5 is index round(1.5) = 2.
        assert_eq!(l.cells(), "5 | 4.000 | 5.000 | 5.000");
        let mut all = Lat::default();
        all.absorb(l.clone());
        all.absorb(l);
        assert_eq!((all.samples.len(), all.timeouts), (8, 2));
        assert!(pct(&[], 0.5).is_nan());
        assert_eq!(list(&[1.0, 2.26], 1), "1.0, 2.3");
    }

    #[test]
    fn interleaved_batches_take_turns() {
        let mut order = Vec::new();
        let r = interleaved(2, 6, 3, |i| {
            order.push(i);
            Some((order.len() * 10 + i) as f64)
        });
        assert_eq!(order, [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
        assert_eq!(r[0].0.samples, [10.0, 20.0, 30.0, 70.0, 80.0, 90.0]);
        assert_eq!(r[0].1, [20.0, 80.0]);
        assert_eq!(r[1].1, [51.0, 111.0]);
    }
}
