//! Exponential backoff between failed exchanges with the API server: doubling from `initial` up to `cap`, each
//! wait drawn at random between half the step and the whole (equal jitter), so nodes that lost the API server
//! together do not come back in step. Pure: the caller passes the random draw ([`random_unit`] in the daemon).

use std::time::Duration;

/// The delay before the next attempt after consecutive failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
}

/// A random number in `[0, 1)` from the system's random source (ring's `SystemRandom`), else from the clock's
/// nanoseconds and the pid: each node, and each attempt, draws its own.
pub fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let bits = match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
        }
    };
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Backoff {
    pub fn new(initial: Duration, cap: Duration) -> Backoff {
        Backoff { initial, cap, failures: 0 }
    }

    /// Records a failure and returns how long to wait before trying again: between half the current step and the
    /// step (`unit` in `[0, 1)` picks where), the step doubling from `initial` up to `cap`.
    pub fn fail(&mut self, unit: f64) -> Duration {
        let exp = self.initial.saturating_mul(2u32.saturating_pow(self.failures.min(20)));
        self.failures = self.failures.saturating_add(1);
        let base = exp.min(self.cap);
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 1.0 };
        base.mul_f64(0.5 + 0.5 * unit).min(self.cap)
    }

    /// Records a success: the next failure waits `initial` again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let waits: Vec<Duration> = (0..8).map(|_| b.fail(1.0)).collect();
        assert_eq!(waits[0], Duration::from_secs(1), "{waits:?}");
        assert_eq!(waits[1], Duration::from_secs(2), "{waits:?}");
        assert_eq!(waits[3], Duration::from_secs(8), "{waits:?}");
        assert_eq!(waits[7], Duration::from_secs(30));
        assert!(waits.windows(2).all(|p| p[0] <= p[1]), "{waits:?}");
        for _ in 0..100 {
            assert!(b.fail(1.0) <= Duration::from_secs(30), "no overflow after many failures");
        }
        assert_eq!(b.fail(f64::NAN), Duration::from_secs(30), "a bad draw is the step");
        b.succeed();
        assert_eq!(b.fail(0.0), Duration::from_millis(500), "half the first step at the lowest draw");
    }

    #[test]
    fn nodes_that_failed_together_retry_spread_over_half_the_step() {
        // 200 nodes with the same configuration (node_name "" everywhere) after one outage: the draws differ.
        let waits: Vec<Duration> = (0..200)
            .map(|_| Backoff::new(Duration::from_secs(10), Duration::from_secs(300)).fail(random_unit()))
            .collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(5) && *w <= Duration::from_secs(10)), "{waits:?}");
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 150, "retries in step: {} distinct waits of 200", distinct.len());
        let spread = *waits.iter().max().unwrap() - *waits.iter().min().unwrap();
        assert!(spread > Duration::from_secs(3), "spread {spread:?}");
    }
}
