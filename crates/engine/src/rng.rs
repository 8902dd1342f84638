//! A tiny deterministic PRNG (SplitMix64) for weight initialisation and dropout masks, so the
//! engine needs no `rand` dependency. Same seed, same numbers, on every platform.

/// SplitMix64: 64 bits of state, passes BigCrush, one add and three xor-shift-multiplies a draw.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }
}

/// The SplitMix64 finaliser: a good 64-bit hash, used for counter-based dropout masks.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Glorot (Xavier) uniform values, Keras's default kernel initialiser:
/// U(-l, l) with l = sqrt(6 / (fan_in + fan_out)).
pub fn glorot_uniform(len: usize, fan_in: usize, fan_out: usize, seed: u64) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.uniform(-limit, limit)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let a = glorot_uniform(1000, 10, 20, 7);
        let b = glorot_uniform(1000, 10, 20, 7);
        assert_eq!(a, b);
        let limit = (6.0f32 / 30.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= limit));
        let mean: f32 = a.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.05);
        assert_ne!(a, glorot_uniform(1000, 10, 20, 8));
    }
}
