//! Splitting small batches across threads by space instead of by example.
//!
//! At batch 1 (inference on one request) the per-thread batch split leaves one thread idle. A
//! convolution's output rows are independent, so the image is cut into horizontal bands of
//! output rows, each a smaller convolution of its own input rows ([`band`]); the calling thread
//! computes the first band while pool threads compute the others ([`run_split`]).
//!
//! Waiting for the pool is the expensive part at this size (a sleeping thread takes tens of
//! microseconds to wake), so the caller spins briefly on a counter before falling back to
//! rayon's blocking wait, and a convolution is only split when it is large enough to pay for it.
//! Even so it loses on a busy machine, so it is opt-in (see [`spatial_on`]).

use super::ConvGeom;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Below this many multiply-adds per band a convolution is not worth splitting.
const MIN_BAND_MACS: usize = 1 << 18;

/// How long the caller spins for the pool's bands before blocking.
const SPIN: Duration = Duration::from_micros(200);

/// `MODELSMITH_CONV_SPATIAL=1` turns the spatial split on. It is off by default: on a quiet
/// machine it shortens one image's conv2 by about a third, but when other processes keep the
/// cores busy the pool thread often starts late and the call waits for it (measured: batch-1
/// p50 0.27 ms split vs 0.049 ms on the calling thread alone, load average 9 on 2 cores).
fn spatial_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("MODELSMITH_CONV_SPATIAL").as_deref() == Ok("1"))
}

/// Number of bands to cut a single-image convolution into (1 = don't split): one per thread,
/// with at least two output rows and [`MIN_BAND_MACS`] each.
pub(super) fn count(g: &ConvGeom, threads: usize) -> usize {
    count_when(g, threads, spatial_on())
}

/// [`count`] with the switch given.
pub(super) fn count_when(g: &ConvGeom, threads: usize, on: bool) -> usize {
    if g.n != 1 || threads < 2 || !on {
        return 1;
    }
    let macs = g.oh * g.ow * g.c_out * g.patch();
    threads.min(g.oh / 2).min(macs / MIN_BAND_MACS).max(1)
}

/// Output rows of band `i` of `bands`: even boundaries, so Winograd's 2x2 tiles never straddle
/// two bands.
pub(super) fn rows(g: &ConvGeom, i: usize, bands: usize) -> (usize, usize) {
    let per = g.oh.div_ceil(bands).next_multiple_of(2);
    ((i * per).min(g.oh), ((i + 1) * per).min(g.oh))
}

/// The convolution computing output rows `r0..r1` of image 0, as a convolution of its own:
/// its geometry and the input rows it reads (`y0..y0 + geometry.h`). Rows past the band's input
/// are padding in both, so results are identical to the whole image's.
pub(super) fn band(g: &ConvGeom, r0: usize, r1: usize) -> (ConvGeom, usize) {
    let first = (r0 * g.stride) as isize - g.pad_top as isize;
    let y0 = first.max(0) as usize;
    let end = ((r1 - 1) * g.stride + g.kh)
        .saturating_sub(g.pad_top)
        .min(g.h);
    let b = ConvGeom {
        n: 1,
        h: end.saturating_sub(y0).max(1).min(g.h - y0),
        oh: r1 - r0,
        pad_top: (-first).max(0) as usize,
        ..*g
    };
    (b, y0)
}

/// Runs `work(i)` for `i in 0..n`: `0` on the calling thread, the rest on the rayon pool.
/// Returns when all are done. The caller spins briefly before blocking (see the module doc).
pub(super) fn run_split(n: usize, work: &(dyn Fn(usize) + Sync)) {
    if n <= 1 {
        work(0);
        return;
    }
    let done = AtomicUsize::new(0);
    rayon::in_place_scope(|s| {
        for i in 1..n {
            let done = &done;
            s.spawn(move |_| {
                work(i);
                done.fetch_add(1, Ordering::Release);
            });
        }
        work(0);
        // Spin (bounded) so the common case, the pool finishing within microseconds of us,
        // doesn't put this thread to sleep; the scope's own wait covers everything else.
        let start = Instant::now();
        while done.load(Ordering::Acquire) < n - 1 && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Padding;

    fn geom(h: usize, k: usize, stride: usize, pad: Padding) -> ConvGeom {
        let (oh, pad_top) = pad.output_and_pad(h, k, stride).unwrap();
        ConvGeom {
            n: 1,
            h,
            w: 9,
            c_in: 3,
            oh,
            ow: 9,
            c_out: 16,
            kh: k,
            kw: k,
            stride,
            pad_top,
            pad_left: 0,
        }
    }

    #[test]
    fn bands_cover_every_output_row_once_and_read_the_right_input_rows() {
        for g in [
            geom(13, 3, 1, Padding::Valid),
            geom(13, 3, 1, Padding::Same),
            geom(28, 5, 2, Padding::Same),
            geom(8, 3, 2, Padding::Valid),
            geom(4, 3, 1, Padding::Same),
        ] {
            for bands in 1..=3 {
                let mut next = 0;
                for i in 0..bands {
                    let (r0, r1) = rows(&g, i, bands);
                    assert_eq!(r0, next.min(g.oh), "{g:?}");
                    next = r1;
                    if r0 == r1 {
                        continue;
                    }
                    let (b, y0) = band(&g, r0, r1);
                    // Output row j of the band reads input row y0 - pad + j*stride + ky, which
                    // must be the original's (r0 + j)*stride - pad_top + ky.
                    for j in 0..b.oh {
                        for ky in 0..g.kh {
                            let orig = ((r0 + j) * g.stride + ky) as isize - g.pad_top as isize;
                            let local = (j * g.stride + ky) as isize - b.pad_top as isize;
                            let inside_orig = orig >= 0 && (orig as usize) < g.h;
                            let inside_band = local >= 0 && (local as usize) < b.h;
                            assert_eq!(inside_orig, inside_band, "{g:?} band {r0}..{r1} j {j}");
                            if inside_orig {
                                assert_eq!(orig as usize, y0 + local as usize);
                            }
                        }
                    }
                }
                assert_eq!(next, g.oh, "{g:?} {bands} bands");
            }
        }
    }
}
