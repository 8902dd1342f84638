//! Run-time selection of the instruction set for our own loops.
//!
//! We ship one portable x86-64 binary (no `-C target-cpu=native`), so by default every loop we
//! write compiles for SSE2 only. [`simd_fn!`] compiles a function body three times — with AVX-512
//! (F, VL, BW, DQ) + FMA, with AVX2 + FMA, and portable — and calls the best one the CPU supports.
//! The check runs once per process; afterwards dispatch is one relaxed atomic load and a branch.
//!
//! Bodies are plain Rust written so that LLVM auto-vectorises them (fixed-size lane arrays,
//! `chunks_exact`, no early exits); the target features only widen what LLVM may emit. They must
//! not use `f32::mul_add` (a libm call on the portable build): write `a * b + c`.
//!
//! `MODELSMITH_SIMD=portable|avx2|avx512` caps the level (for tests and measurements); a level
//! the CPU lacks is never chosen.

use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction-set levels a [`simd_fn!`] body is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Baseline x86-64 (SSE2) or any other architecture.
    Portable = 1,
    /// x86-64-v3: AVX2 + FMA.
    Avx2 = 2,
    /// x86-64-v4: AVX-512 F/VL/BW/DQ + AVX2 + FMA.
    Avx512 = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(0);

fn detect() -> Level {
    choose(
        supported(),
        std::env::var("MODELSMITH_SIMD").ok().as_deref(),
    )
}

/// The level to use: the CPU's best, lowered to the `MODELSMITH_SIMD` cap if one is set (an
/// unknown cap is no cap); never above what the CPU supports.
fn choose(supported: Level, cap: Option<&str>) -> Level {
    let cap = match cap {
        Some("portable") => Level::Portable,
        Some("avx2") => Level::Avx2,
        _ => Level::Avx512,
    };
    supported.min(cap)
}

/// The best level this CPU supports.
fn supported() -> Level {
    #[cfg(target_arch = "x86_64")]
    let best = if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        Level::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Level::Avx2
    } else {
        Level::Portable
    };
    #[cfg(not(target_arch = "x86_64"))]
    let best = Level::Portable;
    best
}

/// The level every [`simd_fn!`] uses in this process (detected on first use).
#[inline]
pub(crate) fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Portable,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let l = detect();
            LEVEL.store(l as u8, Ordering::Relaxed);
            l
        }
    }
}

/// Defines `fn name(args) { body }` compiled per [`Level`] and dispatched at run time.
///
/// Arguments must be plain identifiers (no patterns, no generics). The body sees exactly the
/// arguments; it is inlined into each variant, so helpers it calls should be `#[inline]` (std's
/// iterator adapters are) to be compiled with the wider instructions too.
macro_rules! simd_fn {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                use $crate::backend::simd::{level, Level};
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                match level() {
                    // SAFETY: `level()` only reports a level whose features the CPU has.
                    Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    Level::Avx2 => return unsafe { v3($($arg),*) },
                    Level::Portable => {}
                }
            }
            imp($($arg),*)
        }
    };
}

pub(crate) use simd_fn;

/// Runs `f` monomorphised for the activation, so the inner loops vectorise.
macro_rules! with_act {
    ($act:expr, |$f:ident| $body:expr) => {
        match $act {
            $crate::Activation::Linear => {
                let $f = |x: f32| x;
                $body
            }
            $crate::Activation::Relu => {
                let $f = |x: f32| x.max(0.0);
                $body
            }
            a => {
                let $f = move |x: f32| a.apply(x);
                $body
            }
        }
    };
}

pub(crate) use with_act;

#[cfg(test)]
mod tests {
    use super::*;

    simd_fn! {
        fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
            y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
        }
    }

    #[test]
    fn dispatch_runs_the_body() {
        let mut y = vec![1.0f32; 37];
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        axpy(&mut y, 2.0, &x);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, 1.0 + 2.0 * i as f32);
        }
    }

    #[test]
    fn the_level_is_capped_and_never_above_the_cpu() {
        use Level::*;
        for (cpu, cap, want) in [
            (Avx512, None, Avx512),
            (Avx512, Some("avx2"), Avx2),
            (Avx512, Some("portable"), Portable),
            (Avx2, None, Avx2),
            (Avx2, Some("avx512"), Avx2),
            (Portable, Some("avx2"), Portable),
            (Avx512, Some("nonsense"), Avx512),
        ] {
            assert_eq!(choose(cpu, cap), want, "{cpu:?} capped by {cap:?}");
        }
        // This process's level is what its CPU and environment give.
        let env = std::env::var("MODELSMITH_SIMD").ok();
        assert_eq!(level(), choose(supported(), env.as_deref()));
        #[cfg(target_arch = "x86_64")]
        if level() == Avx512 {
            assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"));
        }
    }
}
