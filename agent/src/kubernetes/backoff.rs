//! Exponential backoff between failed exchanges with the API server: doubling from `initial` up to `cap`, with a
//! little deterministic jitter so nodes restarted together do not retry in step. Pure.

use std::time::Duration;

/// The delay before the next attempt after consecutive failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
    /// A per-node value in 0..1000 spreading retries by up to 10 %.
    spread: u64,
}

impl Backoff {
    pub fn new(initial: Duration, cap: Duration, spread_seed: &str) -> Backoff {
        let spread = spread_seed.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 1000;
        Backoff { initial, cap, failures: 0, spread }
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn fail(&mut self) -> Duration {
        let exp = self.initial.saturating_mul(2u32.saturating_pow(self.failures.min(20)));
        self.failures = self.failures.saturating_add(1);
        let base = exp.min(self.cap);
        let jitter = base.mul_f64(self.spread as f64 / 10_000.0);
        (base + jitter).min(self.cap)
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
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), "node-a");
        let waits: Vec<Duration> = (0..8).map(|_| b.fail()).collect();
        assert!(waits[0] >= Duration::from_secs(1) && waits[0] <= Duration::from_millis(1100), "{waits:?}");
        assert!(waits[1] >= Duration::from_secs(2) && waits[1] <= Duration::from_millis(2200), "{waits:?}");
        assert!(waits[3] >= Duration::from_secs(8), "{waits:?}");
        for w in &waits {
            assert!(*w <= Duration::from_secs(30), "never past the cap: {waits:?}");
        }
        assert_eq!(waits[7], Duration::from_secs(30));
        assert!(waits.windows(2).all(|p| p[0] <= p[1]), "{waits:?}");
        for _ in 0..100 {
            assert!(b.fail() <= Duration::from_secs(30), "no overflow after many failures");
        }
        b.succeed();
        assert!(b.fail() <= Duration::from_millis(1100));
    }

    #[test]
    fn nodes_spread_their_retries() {
        let a = Backoff::new(Duration::from_secs(10), Duration::from_secs(300), "node-a").fail();
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300), "node-b").fail();
        assert_ne!(a, b);
    }
}
