//! When each request of a flow is due: an open-loop schedule made before
//! anything is sent, from a rate profile (holds and linear ramps), an
//! arrival process (uniform or Poisson) and a seed.
//!
//! Arrivals are made in "work" space, where the profile's cumulative count
//! Λ(t) = ∫ rate grows by one per request: uniform arrivals sit at 0, 1,
//! 2, … and Poisson ones are separated by exponential gaps of mean 1.
//! Each is mapped back to time through Λ⁻¹, which is exact for linear
//! ramps (a quadratic per segment). So a Poisson flow on a ramp is a
//! non-homogeneous Poisson process with exactly that rate, and a uniform
//! hold of 400/s for 90 s schedules exactly 36 000 requests.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How requests are spread within the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced: 1/rate apart.
    Uniform,
    /// A Poisson process: exponential gaps, seeded.
    Poisson,
}

/// One piece of a rate profile: the rate goes linearly from `from` to `to`
/// (per second) over `length` (a hold when they are equal).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    pub from: f64,
    pub to: f64,
    pub length: Duration,
}

impl Segment {
    pub fn hold(rate: f64, length: Duration) -> Segment {
        Segment {
            from: rate,
            to: rate,
            length,
        }
    }

    /// Requests the segment holds: Λ over its length.
    fn work(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.length.as_secs_f64()
    }

    /// The offset into the segment at which Λ reaches `u` (0 ≤ u ≤ work):
    /// the root of `(to-from)/(2T)·t² + from·t = u`, in the form that
    /// stays exact when the ramp is flat.
    fn time_of(&self, u: f64) -> f64 {
        let t_len = self.length.as_secs_f64();
        if t_len == 0.0 {
            return 0.0;
        }
        let a = (self.to - self.from) / (2.0 * t_len);
        let b = self.from;
        let disc = (b * b + 4.0 * a * u).max(0.0);
        let denom = b + disc.sqrt();
        if denom <= 0.0 {
            // A ramp up from 0 at u = 0.
            return 0.0;
        }
        (2.0 * u / denom).min(t_len)
    }
}

/// A flow's rate over time.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub segments: Vec<Segment>,
}

impl Profile {
    /// The same shape at `factor` times the rate: one of `n` generators
    /// sharing a flow runs `scaled(1/n)`, and their superposition is the
    /// flow's (exactly so for Poisson arrivals).
    pub fn scaled(&self, factor: f64) -> Profile {
        Profile {
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    from: s.from * factor,
                    to: s.to * factor,
                    length: s.length,
                })
                .collect(),
        }
    }

    /// The whole length of the profile.
    pub fn length(&self) -> Duration {
        self.segments.iter().map(|s| s.length).sum()
    }

    /// The intended rate at `t` seconds into the profile (0 after it).
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.segments {
            let len = s.length.as_secs_f64();
            if t < start + len {
                let f = if len == 0.0 { 0.0 } else { (t - start) / len };
                return s.from + (s.to - s.from) * f;
            }
            start += len;
        }
        0.0
    }

    /// Requests the profile intends between `a` and `b` seconds (Λ(b) − Λ(a)).
    pub fn intended(&self, a: f64, b: f64) -> f64 {
        self.cumulative(b) - self.cumulative(a)
    }

    /// Λ(t).
    fn cumulative(&self, t: f64) -> f64 {
        let mut start = 0.0;
        let mut total = 0.0;
        for s in &self.segments {
            let len = s.length.as_secs_f64();
            if t <= start {
                break;
            }
            let into = (t - start).min(len);
            let f = if len == 0.0 { 0.0 } else { into / len };
            let rate_there = s.from + (s.to - s.from) * f;
            total += (s.from + rate_there) / 2.0 * into;
            start += len;
        }
        total
    }
}

/// The due times of a flow's requests, as offsets from its start, in
/// order. Deterministic in (`profile`, `arrival`, `seed`, `stream`): a
/// scenario gives each flow its own stream of the run's seed.
pub struct Schedule {
    segments: Vec<Segment>,
    /// Index of the segment being walked, its start time and the work
    /// before it.
    seg: usize,
    seg_start: f64,
    seg_work_before: f64,
    /// The next arrival in work space.
    next_u: f64,
    arrival: Arrival,
    rng: ChaCha8Rng,
}

impl Schedule {
    pub fn new(profile: &Profile, arrival: Arrival, seed: u64, stream: u64) -> Schedule {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let mut s = Schedule {
            segments: profile.segments.clone(),
            seg: 0,
            seg_start: 0.0,
            seg_work_before: 0.0,
            next_u: 0.0,
            arrival,
            rng,
        };
        if arrival == Arrival::Poisson {
            s.next_u = s.gap();
        }
        s
    }

    /// An exponential gap of mean 1.
    fn gap(&mut self) -> f64 {
        // 1 - U is in (0, 1]: its logarithm is finite.
        let u: f64 = self.rng.random();
        -(1.0 - u).ln()
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let seg = *self.segments.get(self.seg)?;
            let work = seg.work();
            let u = self.next_u - self.seg_work_before;
            if u < work {
                let t = self.seg_start + seg.time_of(u);
                self.next_u += match self.arrival {
                    Arrival::Uniform => 1.0,
                    Arrival::Poisson => self.gap(),
                };
                return Some(Duration::from_secs_f64(t));
            }
            self.seg += 1;
            self.seg_start += seg.length.as_secs_f64();
            self.seg_work_before += work;
        }
    }
}

#[cfg(test)]
mod tests;
