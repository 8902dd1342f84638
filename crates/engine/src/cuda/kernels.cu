// Modelsmith's CUDA kernels, compiled at run time by NVRTC (see kernels.rs).
//
// Every kernel mirrors one CPU loop of the engine, with the same arithmetic in the same order
// where that order decides the result (dropout masks, argmax ties, Keras's optimizer updates), so
// the two backends agree to rounding. Layouts: NHWC activations, flat `[rows, channels]` views for
// per-channel work. Element-wise kernels use grid-stride loops so one launch shape fits any size.
// Reductions never use atomics: partial sums per block, then one pass in a fixed order, so a run
// repeats bit for bit.

typedef unsigned long long u64;

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// ---- activations (codes match cuda::kernels::act_code) -------------------------------------

// erf through the same Chebyshev fit of erfc as the CPU (activation.rs), in double.
__device__ float erf_nr(float xf) {
    double x = (double)xf;
    double z = fabs(x);
    double t = 1.0 / (1.0 + 0.5 * z);
    double r = t * exp(-z * z - 1.26551223 +
                       t * (1.00002368 +
                       t * (0.37409196 +
                       t * (0.09678418 +
                       t * (-0.18628806 +
                       t * (0.27886807 +
                       t * (-1.13520398 +
                       t * (1.48851587 +
                       t * (-0.82215223 + t * 0.17087277)))))))));
    double v = 1.0 - r;
    return (float)(x >= 0.0 ? v : -v);
}

__device__ float act_apply(int act, float alpha, float x) {
    switch (act) {
    case 1: return fmaxf(x, 0.0f);
    case 2: return x > 0.0f ? x : alpha * x;
    case 3: return x > 0.0f ? x : alpha * (expf(x) - 1.0f);
    case 4: return 0.5f * x * (1.0f + erf_nr(x * 0.70710678118654752f));
    case 5: return 1.0f / (1.0f + expf(-x));
    case 6: return tanhf(x);
    default: return x;
    }
}

// f'(x) from the input x (read by gelu only) and the output y = f(x).
__device__ float act_derivative(int act, float alpha, float x, float y) {
    switch (act) {
    case 1: return y > 0.0f ? 1.0f : 0.0f;
    case 2: return y > 0.0f ? 1.0f : alpha;
    case 3: return y > 0.0f ? 1.0f : y + alpha;
    case 4: {
        float cdf = 0.5f * (1.0f + erf_nr(x * 0.70710678118654752f));
        float pdf = expf(-0.5f * x * x) * 0.3989423f;
        return cdf + x * pdf;
    }
    case 5: return y * (1.0f - y);
    case 6: return 1.0f - y * y;
    default: return 1.0f;
    }
}

// y[i] = act(x[i])
extern "C" __global__ void act_forward(float* y, const float* x, long long n, int act,
                                       float alpha) {
    GRID_STRIDE(i, n) { y[i] = act_apply(act, alpha, x[i]); }
}

// In place on rows of c values: v = y + bias; pre = v (when given); y = act(v).
extern "C" __global__ void bias_act_forward(float* y, float* pre, const float* bias, long long n,
                                            int c, int act, float alpha) {
    GRID_STRIDE(i, n) {
        float v = y[i];
        if (bias) v += bias[i % c];
        if (pre) pre[i] = v;
        y[i] = act_apply(act, alpha, v);
    }
}

// dx = dy * act'(x, y), or dx += when accumulate (an activation layer feeding its input).
extern "C" __global__ void act_backward(float* dx, const float* dy, const float* x, const float* y,
                                        long long n, int act, float alpha, int accumulate) {
    GRID_STRIDE(i, n) {
        float d = dy[i] * act_derivative(act, alpha, x ? x[i] : 0.0f, y[i]);
        dx[i] = accumulate ? dx[i] + d : d;
    }
}

// y += x (residual sums, gradient fan-out, flatten's backward).
extern "C" __global__ void add_into(float* y, const float* x, long long n) {
    GRID_STRIDE(i, n) { y[i] += x[i]; }
}

// y = x * scale (optimizer-free utilities: evaluation copies, tests).
extern "C" __global__ void scale_into(float* y, const float* x, long long n, float scale) {
    GRID_STRIDE(i, n) { y[i] = x[i] * scale; }
}

// ---- dropout: the CPU's counter-based mask (layers/dropout.rs), bit for bit -------------------

__device__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// base = mix64(mix64(seed ^ K) + step) comes from the host; element i keeps when its 24-bit draw
// mix64(base + i) >> 40 is at least `threshold`.
extern "C" __global__ void dropout_forward(float* y, float* mask, const float* x, long long n,
                                           u64 base, u64 threshold, float scale) {
    GRID_STRIDE(i, n) {
        u64 u = mix64(base + (u64)i) >> 40;
        float m = u >= threshold ? scale : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

// dx += dy * mask
extern "C" __global__ void dropout_backward(float* dx, const float* dy, const float* mask,
                                            long long n) {
    GRID_STRIDE(i, n) { dx[i] += dy[i] * mask[i]; }
}

// ---- pooling (TensorFlow semantics: padded cells never win a max; averages divide by the
// number of valid cells) ---------------------------------------------------------------------

struct PoolGeom {
    int n, h, w, c, oh, ow, k, stride, pad_top, pad_left;
};

// One thread per output [n, oh, ow, c]. argmax (when given) receives the first maximum's index
// within its example, (iy * w + ix) * c + ch, as the CPU's backwards scan leaves it.
extern "C" __global__ void max_pool_forward(float* y, unsigned int* argmax, const float* x,
                                            PoolGeom g) {
    long long total = (long long)g.n * g.oh * g.ow * g.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % g.c);
        long long r = i / g.c;
        int ox = (int)(r % g.ow);
        r /= g.ow;
        int oy = (int)(r % g.oh);
        int b = (int)(r / g.oh);
        int y0 = oy * g.stride - g.pad_top, x0 = ox * g.stride - g.pad_left;
        int ky0 = max(y0, 0), ky1 = min(y0 + g.k, g.h);
        int kx0 = max(x0, 0), kx1 = min(x0 + g.k, g.w);
        const float* img = x + (long long)b * g.h * g.w * g.c;
        int best_idx = (ky0 * g.w + kx0) * g.c + ch;
        float best = img[best_idx];
        for (int iy = ky0; iy < ky1; iy++) {
            for (int ix = kx0; ix < kx1; ix++) {
                int idx = (iy * g.w + ix) * g.c + ch;
                float v = img[idx];
                if (v > best) {
                    best = v;
                    best_idx = idx;
                }
            }
        }
        y[i] = best;
        if (argmax) argmax[i] = (unsigned int)best_idx;
    }
}

// One thread per input element: gathers the gradients of the outputs whose window chose it, in
// increasing output order (no atomics, so the result is deterministic).
extern "C" __global__ void max_pool_backward(float* dx, const float* dy,
                                             const unsigned int* argmax, PoolGeom g) {
    long long total = (long long)g.n * g.h * g.w * g.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % g.c);
        long long r = i / g.c;
        int ix = (int)(r % g.w);
        r /= g.w;
        int iy = (int)(r % g.h);
        int b = (int)(r / g.h);
        unsigned int self = (unsigned int)((iy * g.w + ix) * g.c + ch);
        int oy0 = max(0, (iy + g.pad_top - g.k + g.stride) / g.stride);
        int oy1 = min(g.oh - 1, (iy + g.pad_top) / g.stride);
        int ox0 = max(0, (ix + g.pad_left - g.k + g.stride) / g.stride);
        int ox1 = min(g.ow - 1, (ix + g.pad_left) / g.stride);
        long long out_base = (long long)b * g.oh * g.ow * g.c;
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++) {
            for (int ox = ox0; ox <= ox1; ox++) {
                long long o = out_base + ((long long)oy * g.ow + ox) * g.c + ch;
                if (argmax[o] == self) sum += dy[o];
            }
        }
        dx[i] += sum;
    }
}

__device__ void window(const PoolGeom& g, int oy, int ox, int* ky0, int* ky1, int* kx0, int* kx1) {
    int y0 = oy * g.stride - g.pad_top, x0 = ox * g.stride - g.pad_left;
    *ky0 = max(y0, 0);
    *ky1 = min(y0 + g.k, g.h);
    *kx0 = max(x0, 0);
    *kx1 = min(x0 + g.k, g.w);
}

extern "C" __global__ void avg_pool_forward(float* y, const float* x, PoolGeom g) {
    long long total = (long long)g.n * g.oh * g.ow * g.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % g.c);
        long long r = i / g.c;
        int ox = (int)(r % g.ow);
        r /= g.ow;
        int oy = (int)(r % g.oh);
        int b = (int)(r / g.oh);
        int ky0, ky1, kx0, kx1;
        window(g, oy, ox, &ky0, &ky1, &kx0, &kx1);
        const float* img = x + (long long)b * g.h * g.w * g.c;
        float acc = 0.0f;
        for (int iy = ky0; iy < ky1; iy++)
            for (int ix = kx0; ix < kx1; ix++) acc += img[(iy * g.w + ix) * g.c + ch];
        y[i] = acc * (1.0f / (float)((ky1 - ky0) * (kx1 - kx0)));
    }
}

extern "C" __global__ void avg_pool_backward(float* dx, const float* dy, PoolGeom g) {
    long long total = (long long)g.n * g.h * g.w * g.c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % g.c);
        long long r = i / g.c;
        int ix = (int)(r % g.w);
        r /= g.w;
        int iy = (int)(r % g.h);
        int b = (int)(r / g.h);
        int oy0 = max(0, (iy + g.pad_top - g.k + g.stride) / g.stride);
        int oy1 = min(g.oh - 1, (iy + g.pad_top) / g.stride);
        int ox0 = max(0, (ix + g.pad_left - g.k + g.stride) / g.stride);
        int ox1 = min(g.ow - 1, (ix + g.pad_left) / g.stride);
        long long out_base = (long long)b * g.oh * g.ow * g.c;
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++) {
            for (int ox = ox0; ox <= ox1; ox++) {
                int ky0, ky1, kx0, kx1;
                window(g, oy, ox, &ky0, &ky1, &kx0, &kx1);
                if (iy < ky0 || iy >= ky1 || ix < kx0 || ix >= kx1) continue;
                float inv = 1.0f / (float)((ky1 - ky0) * (kx1 - kx0));
                sum += dy[out_base + ((long long)oy * g.ow + ox) * g.c + ch] * inv;
            }
        }
        dx[i] += sum;
    }
}

// y[b, ch] = mean over hw of x[b, :, ch]; one thread per output.
extern "C" __global__ void global_avg_pool_forward(float* y, const float* x, int n, int hw, int c) {
    long long total = (long long)n * c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        long long b = i / c;
        const float* img = x + b * hw * c;
        float acc = 0.0f;
        for (int p = 0; p < hw; p++) acc += img[(long long)p * c + ch];
        y[i] = acc * (1.0f / (float)hw);
    }
}

extern "C" __global__ void global_avg_pool_backward(float* dx, const float* dy, int n, int hw,
                                                    int c) {
    long long total = (long long)n * hw * c;
    float inv = 1.0f / (float)hw;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        long long b = i / ((long long)hw * c);
        dx[i] += dy[b * c + ch] * inv;
    }
}

// ---- per-channel reductions (batch norm, bias gradients) ------------------------------------
//
// Blocks of 32 x 8 threads: x walks channels (coalesced), y walks rows; block (bx, by) covers
// channels bx*32.. and rows by*8, by*8 + 8*gridDim.y, ... Each block writes its partial sums to
// part[by * c + ch] in double; channel_finalize adds the partials in order.

// kind 0: Σ a;  kind 1: Σ (a - mean)^2;  kind 2: Σ a and Σ a*b.
extern "C" __global__ void channel_partials(double* part_a, double* part_b, const float* a,
                                            const float* b, const float* mean, long long rows,
                                            int c, int kind) {
    __shared__ double sa[8][33];
    __shared__ double sb[8][33];
    int ch = blockIdx.x * 32 + threadIdx.x;
    double acc_a = 0.0, acc_b = 0.0;
    if (ch < c) {
        float m = kind == 1 ? mean[ch] : 0.0f;
        for (long long r = (long long)blockIdx.y * 8 + threadIdx.y; r < rows;
             r += 8LL * gridDim.y) {
            float v = a[r * c + ch];
            if (kind == 1) {
                double d = (double)(v - m);
                acc_a += d * d;
            } else {
                acc_a += (double)v;
                if (kind == 2) acc_b += (double)(v * b[r * c + ch]);
            }
        }
    }
    sa[threadIdx.y][threadIdx.x] = acc_a;
    sb[threadIdx.y][threadIdx.x] = acc_b;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        double ta = 0.0, tb = 0.0;
        for (int k = 0; k < 8; k++) {
            ta += sa[k][threadIdx.x];
            tb += sb[k][threadIdx.x];
        }
        part_a[(long long)blockIdx.y * c + ch] = ta;
        if (kind == 2) part_b[(long long)blockIdx.y * c + ch] = tb;
    }
}

// out[ch] = (accumulate ? out[ch] : 0) + scale * Σ_p part[p * c + ch]; out_b likewise when given.
extern "C" __global__ void channel_finalize(float* out_a, float* out_b, const double* part_a,
                                            const double* part_b, int parts, int c, double scale,
                                            int accumulate) {
    GRID_STRIDE(ch, c) {
        double ta = 0.0, tb = 0.0;
        for (int p = 0; p < parts; p++) {
            ta += part_a[(long long)p * c + ch];
            if (out_b) tb += part_b[(long long)p * c + ch];
        }
        float va = (float)(ta * scale);
        out_a[ch] = accumulate ? out_a[ch] + va : va;
        if (out_b) {
            float vb = (float)(tb * scale);
            out_b[ch] = accumulate ? out_b[ch] + vb : vb;
        }
    }
}

// ---- batch norm (Keras semantics: biased batch variance, momentum on running statistics) ----

// Training: invstd from the batch variance and the running statistics updated; eval: mean and
// invstd from the running statistics.
extern "C" __global__ void bn_statistics(float* mean, float* invstd, float* running_mean,
                                         float* running_var, const float* var, int c,
                                         float momentum, float eps, int train) {
    GRID_STRIDE(ch, c) {
        if (train) {
            invstd[ch] = 1.0f / sqrtf(var[ch] + eps);
            running_mean[ch] = momentum * running_mean[ch] + (1.0f - momentum) * mean[ch];
            running_var[ch] = momentum * running_var[ch] + (1.0f - momentum) * var[ch];
        } else {
            mean[ch] = running_mean[ch];
            invstd[ch] = 1.0f / sqrtf(running_var[ch] + eps);
        }
    }
}

// xhat = (x - mean) * invstd;  y = gamma * xhat + beta
extern "C" __global__ void bn_apply(float* y, float* xhat, const float* x, const float* mean,
                                    const float* invstd, const float* gamma, const float* beta,
                                    long long n, int c) {
    GRID_STRIDE(i, n) {
        int ch = (int)(i % c);
        float xh = (x[i] - mean[ch]) * invstd[ch];
        xhat[i] = xh;
        y[i] = gamma[ch] * xh + beta[ch];
    }
}

// Batch statistics: dx += gamma·invstd/m · (m·dy - Σdy - x̂·Σ(dy·x̂)); fixed ones: dx += gamma·invstd·dy.
extern "C" __global__ void bn_backward(float* dx, const float* dy, const float* xhat,
                                       const float* gamma, const float* invstd,
                                       const float* sum_dy, const float* sum_dy_xhat, long long n,
                                       int c, float m, int batch_stats) {
    GRID_STRIDE(i, n) {
        int ch = (int)(i % c);
        if (batch_stats) {
            float k = gamma[ch] * invstd[ch] / m;
            dx[i] += k * (m * dy[i] - sum_dy[ch] - xhat[i] * sum_dy_xhat[ch]);
        } else {
            dx[i] += gamma[ch] * invstd[ch] * dy[i];
        }
    }
}

// ---- convolution helpers: TensorFlow's asymmetric "same" padding made explicit -------------

// dst [n, hp, wp, c] = src [n, h, w, c] placed at (pad_top, pad_left), zeros elsewhere.
extern "C" __global__ void pad_nhwc(float* dst, const float* src, int n, int h, int w, int c,
                                    int hp, int wp, int pad_top, int pad_left) {
    long long total = (long long)n * hp * wp * c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        long long r = i / c;
        int px = (int)(r % wp);
        r /= wp;
        int py = (int)(r % hp);
        long long b = r / hp;
        int iy = py - pad_top, ix = px - pad_left;
        dst[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                     ? src[((b * h + iy) * w + ix) * c + ch]
                     : 0.0f;
    }
}

// dx [n, h, w, c] += the interior of dpadded [n, hp, wp, c].
extern "C" __global__ void crop_add_nhwc(float* dx, const float* dpadded, int n, int h, int w,
                                         int c, int hp, int wp, int pad_top, int pad_left) {
    long long total = (long long)n * h * w * c;
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        long long r = i / c;
        int ix = (int)(r % w);
        r /= w;
        int iy = (int)(r % h);
        long long b = r / h;
        dx[i] += dpadded[((b * hp + iy + pad_top) * wp + ix + pad_left) * c + ch];
    }
}

// ---- data: batches gathered on the device from the resident training set --------------------

// xb[j, :] = data[order[offset + j], :];  yb[j] = labels[order[offset + j]]
extern "C" __global__ void gather_batch(float* xb, unsigned int* yb, const float* data,
                                        const unsigned int* labels, const unsigned int* order,
                                        long long offset, int batch, int per_example) {
    long long total = (long long)batch * per_example;
    GRID_STRIDE(i, total) {
        long long j = i / per_example;
        long long e = i % per_example;
        long long src = (long long)order[offset + j];
        xb[i] = data[src * per_example + e];
        if (e == 0) yb[j] = labels[src];
    }
}

// ---- loss: mean softmax cross-entropy (loss.rs), one thread per row --------------------------

// dlogits = (softmax - onehot) / n; row_loss[r] = log Σ exp(z - max) - (z_label - max);
// row_correct[r] = 1 when the first maximum is at the label.
extern "C" __global__ void softmax_xent(float* dlogits, float* row_loss, float* row_correct,
                                        const float* logits, const unsigned int* labels, int n,
                                        int k, float inv_n) {
    GRID_STRIDE(r, n) {
        const float* z = logits + r * k;
        float* d = dlogits + r * k;
        int label = (int)labels[r];
        float mx = z[0];
        int arg = 0;
        for (int j = 1; j < k; j++) {
            if (z[j] > mx) {
                mx = z[j];
                arg = j;
            }
        }
        float sum = 0.0f;
        for (int j = 0; j < k; j++) {
            float e = expf(z[j] - mx);
            d[j] = e;
            sum += e;
        }
        row_loss[r] = logf(sum) - (z[label] - mx);
        row_correct[r] = arg == label ? 1.0f : 0.0f;
        float s = (1.0f / sum) * inv_n;
        for (int j = 0; j < k; j++) d[j] *= s;
        d[label] -= inv_n;
    }
}

// One block of 256 threads: totals[0] += Σ row_loss, totals[1] += Σ row_correct, totals[2] +=
// n (all double). When the batch's mean loss is not finite and none was seen before, records the
// step and the loss in bad[0..2] (bad[0] starts at -1) so the host learns it at its next read.
extern "C" __global__ void accumulate_metrics(double* totals, double* bad, const float* row_loss,
                                              const float* row_correct, int n, long long step) {
    __shared__ double sl[256];
    __shared__ double sc[256];
    double l = 0.0, c = 0.0;
    for (int r = threadIdx.x; r < n; r += 256) {
        l += (double)row_loss[r];
        c += (double)row_correct[r];
    }
    sl[threadIdx.x] = l;
    sc[threadIdx.x] = c;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sl[threadIdx.x] += sl[threadIdx.x + s];
            sc[threadIdx.x] += sc[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        totals[0] += sl[0];
        totals[1] += sc[0];
        totals[2] += (double)n;
        double mean = sl[0] / (double)n;
        if (!isfinite(mean) && bad[0] < 0.0) {
            bad[0] = (double)step;
            bad[1] = mean;
        }
    }
}

// ---- gradient clipping -----------------------------------------------------------------------

// g = clamp(g, -clip, clip)
extern "C" __global__ void clip_value(float* g, long long n, float clip) {
    GRID_STRIDE(i, n) { g[i] = fminf(fmaxf(g[i], -clip), clip); }
}

// part[blockIdx.x] = Σ g^2 over this block's grid-stride share (blocks of 256 threads).
extern "C" __global__ void sum_squares(double* part, const float* g, long long n) {
    __shared__ double s[256];
    double acc = 0.0;
    GRID_STRIDE(i, n) { acc += (double)g[i] * (double)g[i]; }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = s[0];
}

// Keras global_clipnorm: g *= max_norm / norm when norm > max_norm; a non-finite norm leaves the
// gradients untouched (as clip_grad_norm on the CPU). Every block re-adds the partials in order.
extern "C" __global__ void clip_by_norm(float* g, long long n, const double* part, int parts,
                                        float max_norm) {
    __shared__ float scale;
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int p = 0; p < parts; p++) total += part[p];
        float norm = (float)sqrt(total);
        scale = (isfinite(norm) && norm > max_norm) ? max_norm / norm : 1.0f;
    }
    __syncthreads();
    if (scale == 1.0f) return;
    GRID_STRIDE(i, n) { g[i] *= scale; }
}

// ---- optimizer updates (optim.rs, Keras 3 semantics), over all parameters at once ------------

extern "C" __global__ void sgd_update(float* w, const float* g, long long n, float lr, float wd) {
    GRID_STRIDE(i, n) {
        float gi = g[i] + wd * w[i];
        w[i] -= lr * gi;
    }
}

// v = m*v - lr*g;  w += v  (Nesterov: w += m*v - lr*g)
extern "C" __global__ void sgd_momentum_update(float* w, const float* g, float* v, long long n,
                                               float lr, float momentum, float wd, int nesterov) {
    GRID_STRIDE(i, n) {
        float gi = g[i] + wd * w[i];
        float vi = -gi * lr + v[i] * momentum;
        v[i] = vi;
        if (nesterov) {
            w[i] += -gi * lr + vi * momentum;
        } else {
            w[i] += vi;
        }
    }
}

// Adam / AdamW; alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t) from the host; decay = lr * wd for
// AdamW's decoupled decay (applied first), l2 = wd for Adam's coupled one.
extern "C" __global__ void adam_update(float* w, const float* g, float* m, float* v, long long n,
                                       float alpha, float beta1, float beta2, float eps, float l2,
                                       float decay) {
    GRID_STRIDE(i, n) {
        float wi = w[i];
        if (decay != 0.0f) wi -= wi * decay;
        float gi = g[i] + l2 * wi;
        float mi = m[i] + (gi - m[i]) * (1.0f - beta1);
        float vi = v[i] + (gi * gi - v[i]) * (1.0f - beta2);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - alpha * mi / (sqrtf(vi) + eps);
    }
}

// RMSprop (Keras 3): mom and avg are null unless momentum > 0 / centered.
extern "C" __global__ void rmsprop_update(float* w, const float* g, float* vel, float* mom,
                                          float* avg, long long n, float lr, float rho,
                                          float momentum, float eps, float wd) {
    GRID_STRIDE(i, n) {
        float gi = g[i] + wd * w[i];
        float v = rho * vel[i] + (1.0f - rho) * (gi * gi);
        vel[i] = v;
        float denom;
        if (avg) {
            float a = rho * avg[i] + (1.0f - rho) * gi;
            avg[i] = a;
            denom = v - a * a + eps;
        } else {
            denom = v + eps;
        }
        float inc = lr * gi / sqrtf(denom);
        if (mom) {
            float mo = momentum * mom[i] + inc;
            mom[i] = mo;
            w[i] -= mo;
        } else {
            w[i] -= inc;
        }
    }
}

// Adagrad (Keras 3): acc += g^2;  w -= lr * g / sqrt(acc + eps)
extern "C" __global__ void adagrad_update(float* w, const float* g, float* acc, long long n,
                                          float lr, float eps, float wd) {
    GRID_STRIDE(i, n) {
        float gi = g[i] + wd * w[i];
        float a = acc[i] + gi * gi;
        acc[i] = a;
        w[i] -= lr * gi / sqrtf(a + eps);
    }
}

// x[i] = value (optimizer slots' initial values, e.g. Adagrad's accumulator).
extern "C" __global__ void fill(float* x, long long n, float value) {
    GRID_STRIDE(i, n) { x[i] = value; }
}
