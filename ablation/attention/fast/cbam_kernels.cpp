// CBAM's memory-bound passes, fused: the CPU kernels behind ablation/attention/fast/native.py.
//
// Every tensor is a float32 (N, A, B) block, contiguous: NCHW features are (N, C, HW) and
// channels_last ones (N, HW, C). "Per-A" vectors are (N, A), "per-B" vectors (N, B).
// Each kernel reads the big tensor once (twice for dual_reduce: dy and x) and writes at most
// one big tensor; pools sum in float vector lanes, dual_reduce's column sums and the conv
// weight's gradient in double. `cbam_infer` is the whole inference forward (several passes,
// each sample's in the cache); `cbam_conv_*` the spatial gate's k x k conv for training.
// Threads: OpenMP, the runtime torch has loaded.
//
// Plain C ABI (extern "C"), no torch headers: it compiles in a few seconds.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include <omp.h>

namespace {

// GCC/Clang vector extensions: 8 floats (AVX2 registers; emulated where narrower).
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

inline f8 load8(const float* p) {
  f8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// Reductions over B of one row v[b] * w[b] (w may be null: 1): sum, max and the first b
// where the max is reached. K vectors of 8 lanes (2 for long rows, 1 for short ones, where
// combining the lanes is the larger cost) keep their own sum, max and argmax over the row;
// then the lanes and the tail are combined.
template <bool Weighted, bool WithIndex, int K>
inline void reduce_row(const float* row, const float* wr, int64_t b_len, float* sum_out,
                       float* max_out, int64_t* arg_out) {
  const int64_t body = b_len - b_len % (8 * K);
  const i8 iota = {0, 1, 2, 3, 4, 5, 6, 7};
  f8 s[K], m[K];
  i8 at[K], idx[K];
  for (int k = 0; k < K; ++k) {
    s[k] = f8{};
    m[k] = f8{} - INFINITY;
    at[k] = i8{};
    idx[k] = iota + 8 * k;
  }
  for (int64_t b0 = 0; b0 < body; b0 += 8 * K) {
    for (int k = 0; k < K; ++k) {
      f8 t = load8(row + b0 + 8 * k);
      if (Weighted) t *= load8(wr + b0 + 8 * k);
      s[k] += t;
      const i8 gt = t > m[k];
      m[k] = gt ? t : m[k];
      if (WithIndex) {
        at[k] = gt ? idx[k] : at[k];
        idx[k] += 8 * K;
      }
    }
  }
  float total = 0.0f, best = -INFINITY;
  int64_t best_at = 0;
  for (int j = 0; j < 8; ++j) {
    for (int k = 0; k < K; ++k) {
      total += s[k][j];
      if (m[k][j] > best || (WithIndex && m[k][j] == best && at[k][j] < best_at)) {
        best = m[k][j];
        best_at = at[k][j];
      }
    }
  }
  for (int64_t b = body; b < b_len; ++b) {  // the tail comes after every lane's index
    const float t = Weighted ? row[b] * wr[b] : row[b];
    total += t;
    if (t > best) {
      best = t;
      best_at = b;
    }
  }
  if (sum_out) *sum_out = total;
  if (max_out) *max_out = best;
  if (WithIndex) *arg_out = best_at;
}

// reduce_row for every row (n, a) of v[n, a, b] * w[n, b].
template <bool Weighted, bool WithIndex, int K>
void pool_inner_rows(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                     float* sum, float* mx, int64_t* arg, int threads) {
  const int64_t rows = n * a_len;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = Weighted ? w + (r / a_len) * b_len : nullptr;
    reduce_row<Weighted, WithIndex, K>(v + r * b_len, wr, b_len, sum ? sum + r : nullptr,
                                       mx ? mx + r : nullptr, WithIndex ? arg + r : nullptr);
  }
}

template <bool Weighted, bool WithIndex>
void pool_inner_k(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                  float* sum, float* mx, int64_t* arg, int threads) {
  if (b_len < 128)
    pool_inner_rows<Weighted, WithIndex, 1>(v, n, a_len, b_len, w, sum, mx, arg, threads);
  else
    pool_inner_rows<Weighted, WithIndex, 2>(v, n, a_len, b_len, w, sum, mx, arg, threads);
}

void pool_inner(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                float* sum, float* mx, int64_t* arg, int threads) {
  if (w && arg)
    pool_inner_k<true, true>(v, n, a_len, b_len, w, sum, mx, arg, threads);
  else if (w)
    pool_inner_k<true, false>(v, n, a_len, b_len, w, sum, mx, arg, threads);
  else if (arg)
    pool_inner_k<false, true>(v, n, a_len, b_len, w, sum, mx, arg, threads);
  else
    pool_inner_k<false, false>(v, n, a_len, b_len, w, sum, mx, arg, threads);
}

// Reductions over A of v[n, a, b] * w[n, a] (w may be null: 1) for every column (n, b).
// A task walks down all rows of one sample over a strip of 8K columns (K = 4, 2 or 1
// vectors), its sums, maxima and argmaxima in registers; the last columns (fewer than 8)
// go one by one.
template <int K, bool WithIndex>
void outer_strip(const float* base, int64_t a_len, int64_t b_len, const float* wi, float* sum,
                 float* mx, int64_t* arg) {
  f8 s[K], m[K];
  i8 at[K];
  for (int k = 0; k < K; ++k) {
    s[k] = f8{};
    m[k] = f8{} - INFINITY;
    at[k] = i8{};
  }
  for (int64_t a = 0; a < a_len; ++a) {
    const float* row = base + a * b_len;
    const float wa = wi ? wi[a] : 1.0f;
    const i8 ai = i8{} + static_cast<int32_t>(a);
    for (int k = 0; k < K; ++k) {
      const f8 t = load8(row + 8 * k) * wa;
      s[k] += t;
      const i8 gt = t > m[k];
      m[k] = gt ? t : m[k];
      if (WithIndex) at[k] = gt ? ai : at[k];
    }
  }
  for (int k = 0; k < K; ++k) {
    for (int j = 0; j < 8; ++j) {
      if (sum) sum[8 * k + j] = s[k][j];
      if (mx) mx[8 * k + j] = m[k][j];
      if (WithIndex) arg[8 * k + j] = at[k][j];
    }
  }
}

// The same for `width` (fewer than 8) columns, one at a time.
template <bool WithIndex>
void outer_columns(const float* base, int64_t a_len, int64_t b_len, int64_t width,
                   const float* wi, float* sum, float* mx, int64_t* arg) {
  for (int64_t j = 0; j < width; ++j) {
    float sj = 0.0f, mj = -INFINITY;
    int64_t atj = 0;
    for (int64_t a = 0; a < a_len; ++a) {
      const float x = base[a * b_len + j] * (wi ? wi[a] : 1.0f);
      sj += x;
      if (x > mj) {
        mj = x;
        atj = a;
      }
    }
    if (sum) sum[j] = sj;
    if (mx) mx[j] = mj;
    if (WithIndex) arg[j] = atj;
  }
}

template <bool WithIndex>
void pool_outer_strips(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                       float* sum, float* mx, int64_t* arg, int threads) {
  // Per sample: full strips of 32 columns, then at most one of 16, one of 8, one of 1-7.
  const int64_t full = b_len / 32, rest = b_len % 32;
  const int64_t per_sample = full + (rest >= 16) + (rest % 16 >= 8) + (rest % 8 > 0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < n * per_sample; ++task) {
    const int64_t i = task / per_sample;
    int64_t t = task % per_sample, b0, width;
    if (t < full) {
      b0 = 32 * t;
      width = 32;
    } else {
      b0 = 32 * full;
      t -= full;
      width = 0;
      const int64_t parts[3] = {16, 8, 1};
      for (int64_t part : parts) {
        const int64_t left = b_len - b0;
        const bool has = part == 1 ? left > 0 : left >= part;
        if (!has) continue;
        if (t == 0) {
          width = part == 1 ? left : part;
          break;
        }
        b0 += part;
        --t;
      }
    }
    const float* base = v + i * a_len * b_len + b0;
    const float* wi = w ? w + i * a_len : nullptr;
    const int64_t o = i * b_len + b0;
    float* so = sum ? sum + o : nullptr;
    float* mo = mx ? mx + o : nullptr;
    int64_t* ao = WithIndex ? arg + o : nullptr;
    if (width == 32) {
      outer_strip<4, WithIndex>(base, a_len, b_len, wi, so, mo, ao);
    } else if (width == 16) {
      outer_strip<2, WithIndex>(base, a_len, b_len, wi, so, mo, ao);
    } else if (width == 8) {
      outer_strip<1, WithIndex>(base, a_len, b_len, wi, so, mo, ao);
    } else {
      outer_columns<WithIndex>(base, a_len, b_len, width, wi, so, mo, ao);
    }
  }
}

// Reductions over A of one sample's columns [b0, b1) (no argmax), strips of 32, 16 and 8
// columns in registers, then the last columns one by one. sum and mx are indexed by b.
inline void reduce_cols(const float* v, int64_t a_len, int64_t b_len, int64_t b0, int64_t b1,
                        const float* wa, float* sum, float* mx) {
  int64_t b = b0;
  for (; b + 32 <= b1; b += 32)
    outer_strip<4, false>(v + b, a_len, b_len, wa, sum ? sum + b : nullptr,
                          mx ? mx + b : nullptr, nullptr);
  if (b + 16 <= b1) {
    outer_strip<2, false>(v + b, a_len, b_len, wa, sum ? sum + b : nullptr,
                          mx ? mx + b : nullptr, nullptr);
    b += 16;
  }
  if (b + 8 <= b1) {
    outer_strip<1, false>(v + b, a_len, b_len, wa, sum ? sum + b : nullptr,
                          mx ? mx + b : nullptr, nullptr);
    b += 8;
  }
  outer_columns<false>(v + b, a_len, b_len, b1 - b, wa, sum ? sum + b : nullptr,
                       mx ? mx + b : nullptr, nullptr);
}

void pool_outer(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                float* sum, float* mx, int64_t* arg, int threads) {
  if (arg)
    pool_outer_strips<true>(v, n, a_len, b_len, w, sum, mx, arg, threads);
  else
    pool_outer_strips<false>(v, n, a_len, b_len, w, sum, mx, arg, threads);
}

// out = (v * g1 + h1) * g2 + h2a + h2b. g1, h1, g2 are per-A or per-B (template flag: per-B)
// or absent (1, 0, 1); h2a is per-A, h2b per-B, each optional. out may be v (in place).
struct Term {
  const float* p;  // null: absent
  bool per_b;
};

template <bool G1B, bool H1B, bool G2B>
void gate_rows(const float* v, int64_t n, int64_t a_len, int64_t b_len, Term g1, Term h1,
               Term g2, const float* h2a, const float* h2b, float* out, int threads) {
  const int64_t rows = n * a_len;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r / a_len;
    const float* src = v + r * b_len;
    float* dst = out + r * b_len;
    // Per-B terms point at their row of B values; per-A and absent ones are scalars.
    const float* g1v = G1B ? g1.p + i * b_len : nullptr;
    const float* h1v = H1B ? h1.p + i * b_len : nullptr;
    const float* g2v = G2B ? g2.p + i * b_len : nullptr;
    const float g1s = G1B ? 1.0f : (g1.p ? g1.p[r] : 1.0f);
    const float h1s = H1B ? 0.0f : (h1.p ? h1.p[r] : 0.0f);
    const float g2s = G2B ? 1.0f : (g2.p ? g2.p[r] : 1.0f);
    const float h2s = h2a ? h2a[r] : 0.0f;
    const float* h2v = h2b ? h2b + i * b_len : nullptr;
    if (h2v) {
#pragma omp simd
      for (int64_t b = 0; b < b_len; ++b) {
        const float t = src[b] * (G1B ? g1v[b] : g1s) + (H1B ? h1v[b] : h1s);
        dst[b] = t * (G2B ? g2v[b] : g2s) + h2s + h2v[b];
      }
    } else {
#pragma omp simd
      for (int64_t b = 0; b < b_len; ++b) {
        const float t = src[b] * (G1B ? g1v[b] : g1s) + (H1B ? h1v[b] : h1s);
        dst[b] = t * (G2B ? g2v[b] : g2s) + h2s;
      }
    }
  }
}


// The spatial gate's k x k convolution (one output channel, zero padding k / 2, stride 1) on
// H x W planes, a row at a time: o[w] += scale * sum_{ky, kx} weight[ky, kx] *
// map[h + ky - k/2, w + kx - k/2]. With Flip, the transpose (the gradient of the map from
// the output's gradient g passed as `map`): o[w] += sum weight[ky, kx] * g[h - ky + k/2,
// w - kx + k/2]. K > 0 fixes k at compile time: the interior columns (every tap inside the
// row) then take all k taps of a kernel row in one vectorised pass.
template <int K, bool Flip>
void conv_row_k(const float* map, const float* weight, float scale, int64_t k, int64_t h_len,
                int64_t w_len, int64_t h, float* o) {
  if (K > 0) k = K;
  const int64_t r = k / 2;
  for (int64_t ky = 0; ky < k; ++ky) {
    const int64_t ih = Flip ? h - ky + r : h + ky - r;
    if (ih < 0 || ih >= h_len) continue;
    const float* row = map + ih * w_len;
    const float* wk = weight + ky * k;
    // Column w reads row[w + s * (kx - r)], s = -1 when flipped.
    auto tap = [&](int64_t w, int64_t kx) {
      const int64_t at = Flip ? w - kx + r : w + kx - r;
      return at >= 0 && at < w_len ? wk[kx] * row[at] : 0.0f;
    };
    const int64_t lo = r < w_len ? r : w_len, hi = w_len - r > lo ? w_len - r : lo;
    if (K > 0) {
      for (int64_t w = 0; w < lo; ++w)
        for (int64_t kx = 0; kx < K; ++kx) o[w] += scale * tap(w, kx);
      for (int64_t w = hi; w < w_len; ++w)
        for (int64_t kx = 0; kx < K; ++kx) o[w] += scale * tap(w, kx);
      float wv[K > 0 ? K : 1];
      for (int kx = 0; kx < K; ++kx) wv[kx] = wk[Flip ? K - 1 - kx : kx] * scale;
      const float* base = row - r;  // base[w + j] = row[w + j - r]
#pragma omp simd
      for (int64_t w = lo; w < hi; ++w) {
        float acc = 0.0f;
        for (int j = 0; j < K; ++j) acc += wv[j] * base[w + j];
        o[w] += acc;
      }
    } else {
      for (int64_t w = 0; w < w_len; ++w)
        for (int64_t kx = 0; kx < k; ++kx) o[w] += scale * tap(w, kx);
    }
  }
}

template <bool Flip>
void conv_row_any(const float* map, const float* weight, float scale, int64_t k, int64_t h_len,
                  int64_t w_len, int64_t h, float* o) {
  switch (k) {
    case 3: conv_row_k<3, Flip>(map, weight, scale, k, h_len, w_len, h, o); break;
    case 5: conv_row_k<5, Flip>(map, weight, scale, k, h_len, w_len, h, o); break;
    case 7: conv_row_k<7, Flip>(map, weight, scale, k, h_len, w_len, h, o); break;
    default: conv_row_k<0, Flip>(map, weight, scale, k, h_len, w_len, h, o); break;
  }
}

void conv_row(const float* map, const float* weight, float scale, int64_t h_len, int64_t w_len,
              int64_t k, int64_t h, float* o) {
  conv_row_any<false>(map, weight, scale, k, h_len, w_len, h, o);
}

void conv_row_transposed(const float* g, const float* weight, int64_t h_len, int64_t w_len,
                         int64_t k, int64_t h, float* o) {
  conv_row_any<true>(g, weight, 1.0f, k, h_len, w_len, h, o);
}

// The weight's gradient from one output row: for every kx, the sum over w of g[w] *
// map_row[w + kx - k/2] (map_row: the input row that kernel row ky reads), added to vsum[kx]
// (8 lanes, the interior columns, 8 at a time when K > 0 fixes k) and ssum[kx] (the rest).
template <int K>
void conv_weight_row_k(const float* g, const float* row, int64_t k, int64_t w_len, f8* vsum,
                       float* ssum) {
  if (K > 0) k = K;
  const int64_t r = k / 2;
  const int64_t lo = r < w_len ? r : w_len, hi = w_len - r > lo ? w_len - r : lo;
  int64_t w = lo;  // columns [lo, w) go to the vector sums
  if (K > 0) {
    f8 acc[K > 0 ? K : 1];
    for (int j = 0; j < K; ++j) acc[j] = vsum[j];
    for (; w + 8 <= hi; w += 8) {
      const f8 gv = load8(g + w);
      for (int j = 0; j < K; ++j) acc[j] += gv * load8(row + w + j - r);
    }
    for (int j = 0; j < K; ++j) vsum[j] = acc[j];
  }
  for (int64_t kx = 0; kx < k; ++kx) {  // the edges [0, lo), and [w, w_len) with the tail
    const int64_t dx = kx - r;
    const int64_t first = dx < 0 ? -dx : 0, end = dx > 0 ? w_len - dx : w_len;  // v + dx inside
    float total = 0.0f;
    for (int64_t v = first; v < (lo < end ? lo : end); ++v) total += g[v] * row[v + dx];
    for (int64_t v = w > first ? w : first; v < end; ++v) total += g[v] * row[v + dx];
    ssum[kx] += total;
  }
}

void conv_weight_row(const float* g, const float* row, int64_t k, int64_t w_len, f8* vsum,
                     float* ssum) {
  switch (k) {
    case 3: conv_weight_row_k<3>(g, row, k, w_len, vsum, ssum); break;
    case 5: conv_weight_row_k<5>(g, row, k, w_len, vsum, ssum); break;
    case 7: conv_weight_row_k<7>(g, row, k, w_len, vsum, ssum); break;
    default: conv_weight_row_k<0>(g, row, k, w_len, vsum, ssum); break;
  }
}

// ---------------------------------------------------------------------------------------
// Inference: the whole CBAM forward of a batch in one call, no autograd state.
//
// Per sample, the passes over its (A, B) map run back to back, so the second and third read
// come from the cache rather than from memory (a 256x56x56 sample is 3.2 MB: L3; from 28x28
// down, L2): channel-first pools x over space, runs the MLP, pools x * a over channels,
// convolves, and writes y = x * a * b (y may be x: in place, the output pass touches only
// cached lines). Where the MLP's weights outweigh a sample's map (deep stages: 2048 x 128
// x 2 weights, 7x7 maps), the MLP runs once for the batch between two passes instead, so
// its weights are read once. Samples go whole to threads; a remainder (fewer samples than
// threads: batch 1) is shared by all threads, step by step, with a barrier after each step.

enum Order { kChannelFirst = 0, kSpatialFirst = 1, kParallel = 2 };

struct Infer {
  const float* x;
  float* y;
  int64_t n, a_len, b_len;  // NCHW: (C, HW) per sample; channels_last: (HW, C)
  int64_t c, hw, height, width;
  bool channels_last;
  int order;
  // Channel gate (w0 null: off): Linear(C, hidden), ReLU, Linear(hidden, C) (a null bias
  // is 0); pools avg/max.
  const float *w0, *b0, *w1, *b1;
  int64_t hidden;
  bool c_avg, c_max;
  // Spatial gate (conv null: off): conv weight (1, maps, k, k), the avg and max maps at
  // their slots (-1: absent); eval-mode BatchNorm as scale and shift (1, 0 without).
  const float* conv;
  int64_t k;
  int s_avg_slot, s_max_slot;
  float bn_scale, bn_shift;
  bool mlp_per_sample;  // the MLP inside each sample's passes, or once for the batch
  // Scratch: descriptors (n, 2, c) (sums, then maxima), MLP hidden sums (n, hidden),
  // gates a (n, c) and b (n, hw), spatial maps (n, 2, hw) (sums, then maxima).
  float *desc, *hsum, *a, *smaps, *b;
};

// Who does a step of one sample: one thread all of it, or all threads a share each.
struct Part {
  int tid, nt;
  bool shared;
};

inline int64_t min64(int64_t u, int64_t v) { return u < v ? u : v; }

inline float relu(float z) { return z > 0.0f ? z : 0.0f; }

// This thread's share [lo, hi) of `len`, in units of `align` (vector-friendly cuts).
inline void share(int64_t len, const Part& p, int64_t align, int64_t* lo, int64_t* hi) {
  if (!p.shared) {
    *lo = 0;
    *hi = len;
    return;
  }
  const int64_t units = (len + align - 1) / align;
  *lo = min64(len, units * p.tid / p.nt * align);
  *hi = min64(len, units * (p.tid + 1) / p.nt * align);
}

inline void sync(const Part& p) {
  if (p.shared) {
#pragma omp barrier
  }
}

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

inline float dot(const float* u, const float* v, int64_t len) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < len; ++j) s += u[j] * v[j];
  return s;
}

// Rows [a0, a1) of one sample: sum and max of each row times the per-B weight w.
void rows_reduce(const float* v, int64_t a0, int64_t a1, int64_t b_len, const float* w,
                 float* sum, float* mx) {
  for (int64_t r = a0; r < a1; ++r) {
    float* so = sum ? sum + r : nullptr;
    float* mo = mx ? mx + r : nullptr;
    const float* row = v + r * b_len;
    if (w && b_len >= 128)
      reduce_row<true, false, 2>(row, w, b_len, so, mo, nullptr);
    else if (w)
      reduce_row<true, false, 1>(row, w, b_len, so, mo, nullptr);
    else if (b_len >= 128)
      reduce_row<false, false, 2>(row, w, b_len, so, mo, nullptr);
    else
      reduce_row<false, false, 1>(row, w, b_len, so, mo, nullptr);
  }
}

// Channel descriptors of sample i: sums and maxima over space of x (b null) or x * b.
void channel_pool(const Infer& S, int64_t i, const Part& p, const float* b) {
  const float* xi = S.x + i * S.a_len * S.b_len;
  float* sum = S.c_avg ? S.desc + i * 2 * S.c : nullptr;
  float* mx = S.c_max ? S.desc + (i * 2 + 1) * S.c : nullptr;
  int64_t lo, hi;
  share(S.c, p, 8, &lo, &hi);
  if (S.channels_last)  // (HW, C): over rows, columns [lo, hi)
    reduce_cols(xi, S.a_len, S.b_len, lo, hi, b, sum, mx);
  else  // (C, HW): rows [lo, hi)
    rows_reduce(xi, lo, hi, S.b_len, b, sum, mx);
}

// Spatial maps of sample i: sums and maxima over channels of x (a null) or x * a.
void spatial_pool(const Infer& S, int64_t i, const Part& p, const float* a) {
  const float* xi = S.x + i * S.a_len * S.b_len;
  float* sum = S.s_avg_slot >= 0 ? S.smaps + i * 2 * S.hw : nullptr;
  float* mx = S.s_max_slot >= 0 ? S.smaps + (i * 2 + 1) * S.hw : nullptr;
  int64_t lo, hi;
  share(S.hw, p, 8, &lo, &hi);
  if (S.channels_last)  // (HW, C): rows [lo, hi)
    rows_reduce(xi, lo, hi, S.b_len, a, sum, mx);
  else  // (C, HW): over rows, columns [lo, hi)
    reduce_cols(xi, S.a_len, S.b_len, lo, hi, a, sum, mx);
}

// b of sample i: sigmoid(BN(conv_kxk([avg map, max map]))) with zero padding, rows [lo, hi).
void spatial_conv(const Infer& S, int64_t i, const Part& p) {
  const int64_t h_len = S.height, w_len = S.width, k = S.k;
  float* out = S.b + i * S.hw;
  int64_t lo, hi;
  share(h_len, p, 1, &lo, &hi);
  for (int64_t h = lo; h < hi; ++h) {
    float* o = out + h * w_len;
    for (int64_t w = 0; w < w_len; ++w) o[w] = 0.0f;
    for (int plane = 0; plane < 2; ++plane) {
      const int slot = plane == 0 ? S.s_avg_slot : S.s_max_slot;
      if (slot < 0) continue;
      const float scale = plane == 0 ? 1.0f / static_cast<float>(S.c) : 1.0f;  // sum -> mean
      conv_row(S.smaps + (i * 2 + plane) * S.hw, S.conv + slot * k * k, scale, h_len, w_len, k,
               h, o);
    }
    for (int64_t w = 0; w < w_len; ++w) o[w] = sigmoid(o[w] * S.bn_scale + S.bn_shift);
  }
}

// y = x * a * b for sample i (either gate may be off), rows [lo, hi) of its (A, B) view.
void apply_gates(const Infer& S, int64_t i, const Part& p) {
  const float* ai = S.w0 ? S.a + i * S.c : nullptr;
  const float* bi = S.conv ? S.b + i * S.hw : nullptr;
  const float* per_a = S.channels_last ? bi : ai;
  const float* per_b = S.channels_last ? ai : bi;
  const int64_t b_len = S.b_len;
  int64_t lo, hi;
  share(S.a_len, p, 1, &lo, &hi);
  for (int64_t r = lo; r < hi; ++r) {
    const float* src = S.x + (i * S.a_len + r) * b_len;
    float* dst = S.y + (i * S.a_len + r) * b_len;
    const float g = per_a ? per_a[r] : 1.0f;
    if (per_b) {
#pragma omp simd
      for (int64_t j = 0; j < b_len; ++j) dst[j] = src[j] * g * per_b[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < b_len; ++j) dst[j] = src[j] * g;
    }
  }
}

// Before the MLP: the spatial gate where it comes first or alongside, then the channel
// descriptors (of x * b when spatial-first); with no channel gate, the output.
void infer_first(const Infer& S, int64_t i, const Part& p) {
  const bool spatial_now = S.conv && (!S.w0 || S.order != kChannelFirst);
  if (spatial_now) {
    spatial_pool(S, i, p, nullptr);
    sync(p);
    spatial_conv(S, i, p);
    sync(p);
  }
  if (!S.w0) {
    apply_gates(S, i, p);
    return;
  }
  const bool weighted = S.conv && S.order == kSpatialFirst;
  channel_pool(S, i, p, weighted ? S.b + i * S.hw : nullptr);
}

// After the MLP: the spatial gate of x * a (channel-first), then the output.
void infer_second(const Infer& S, int64_t i, const Part& p) {
  if (S.conv && S.order == kChannelFirst) {
    spatial_pool(S, i, p, S.a + i * S.c);
    sync(p);
    spatial_conv(S, i, p);
    sync(p);
  }
  apply_gates(S, i, p);
}

// a = sigmoid(sum over pools of W1 relu(W0 d + b0) + b1) for samples [i0, i1): each
// weight row is read once for all of them.
void channel_mlp(const Infer& S, int64_t i0, int64_t i1, const Part& p) {
  const int64_t c = S.c, hidden = S.hidden;
  const float inv_hw = 1.0f / static_cast<float>(S.hw);
  const float pools = static_cast<float>(S.c_avg + S.c_max);
  int64_t lo, hi;
  share(hidden, p, 1, &lo, &hi);
  for (int64_t j = lo; j < hi; ++j) {
    const float* row = S.w0 + j * c;
    const float bias0 = S.b0 ? S.b0[j] : 0.0f;
    for (int64_t i = i0; i < i1; ++i) {
      float h = 0.0f;
      if (S.c_avg) h += relu(dot(row, S.desc + i * 2 * c, c) * inv_hw + bias0);
      if (S.c_max) h += relu(dot(row, S.desc + (i * 2 + 1) * c, c) + bias0);
      S.hsum[i * hidden + j] = h;
    }
  }
  sync(p);
  share(c, p, 8, &lo, &hi);
  for (int64_t ch = lo; ch < hi; ++ch) {
    const float* row = S.w1 + ch * hidden;
    const float bias1 = S.b1 ? pools * S.b1[ch] : 0.0f;
    for (int64_t i = i0; i < i1; ++i)
      S.a[i * c + ch] = sigmoid(dot(row, S.hsum + i * hidden, hidden) + bias1);
  }
  sync(p);
}

// One sample from start to end, its MLP included (where the MLP's weights are small next to
// the sample: the sample's map stays in the cache from the first read to the output).
void infer_sample(const Infer& S, int64_t i, const Part& p) {
  infer_first(S, i, p);
  if (S.w0 && S.mlp_per_sample) {
    sync(p);
    channel_mlp(S, i, i + 1, p);
    infer_second(S, i, p);
  }
}

void infer(const Infer& S, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const Part one{0, 1, false};
    const Part all{omp_get_thread_num(), omp_get_num_threads(), true};
    const int64_t whole = S.n / all.nt * all.nt;  // samples that go whole to a thread
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < whole; ++i) infer_sample(S, i, one);
    for (int64_t i = whole; i < S.n; ++i) infer_sample(S, i, all);
    if (S.w0 && !S.mlp_per_sample) {  // one MLP for the batch, between two passes
#pragma omp barrier
      channel_mlp(S, 0, S.n, all);
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < whole; ++i) infer_second(S, i, one);
      for (int64_t i = whole; i < S.n; ++i) infer_second(S, i, all);
    }
  }
}

}  // namespace

extern "C" {

void cbam_pool_inner(const float* v, int64_t n, int64_t a, int64_t b, const float* w,
                     float* sum, float* mx, int64_t* arg, int threads) {
  pool_inner(v, n, a, b, w, sum, mx, arg, threads);
}

void cbam_pool_outer(const float* v, int64_t n, int64_t a, int64_t b, const float* w,
                     float* sum, float* mx, int64_t* arg, int threads) {
  pool_outer(v, n, a, b, w, sum, mx, arg, threads);
}

void cbam_gate(const float* v, int64_t n, int64_t a, int64_t b, const float* g1, int g1_per_b,
               const float* h1, int h1_per_b, const float* g2, int g2_per_b, const float* h2a,
               const float* h2b, float* out, int threads) {
  const Term t1{g1, g1 && g1_per_b}, t2{h1, h1 && h1_per_b}, t3{g2, g2 && g2_per_b};
  const int code = (t1.per_b ? 4 : 0) | (t2.per_b ? 2 : 0) | (t3.per_b ? 1 : 0);
  switch (code) {
    case 0: gate_rows<false, false, false>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 1: gate_rows<false, false, true>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 2: gate_rows<false, true, false>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 3: gate_rows<false, true, true>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 4: gate_rows<true, false, false>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 5: gate_rows<true, false, true>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    case 6: gate_rows<true, true, false>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
    default: gate_rows<true, true, true>(v, n, a, b, t1, t2, t3, h2a, h2b, out, threads); break;
  }
}

// With p = dy * x: out_a[n, a] = sum_b p * wb[n, b] and out_b[n, b] = sum_a p * wa[n, a]
// (a null weight is 1; a null output is not computed), reading dy and x once.
void cbam_dual_reduce(const float* dy, const float* x, int64_t n, int64_t a_len, int64_t b_len,
                      const float* wa, const float* wb, float* out_a, float* out_b, int threads) {
  const int64_t chunks = (a_len + 63) / 64;  // rows per task: out_b is summed per chunk
  const int64_t tasks = n * chunks;
  std::unique_ptr<double[]> partial(out_b ? new double[tasks * b_len] : nullptr);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t i = task / chunks;
    const int64_t a0 = (task % chunks) * 64;
    const int64_t a1 = a0 + 64 < a_len ? a0 + 64 : a_len;
    double* acc = out_b ? partial.get() + task * b_len : nullptr;
    if (acc)
      for (int64_t b = 0; b < b_len; ++b) acc[b] = 0.0;
    const float* wbr = wb ? wb + i * b_len : nullptr;
    for (int64_t a = a0; a < a1; ++a) {
      const int64_t r = i * a_len + a;
      const float* d = dy + r * b_len;
      const float* xr = x + r * b_len;
      const float wav = wa ? wa[r] : 1.0f;
      float s = 0.0f;
      if (acc && out_a) {
#pragma omp simd reduction(+ : s)
        for (int64_t b = 0; b < b_len; ++b) {
          const float p = d[b] * xr[b];
          s += p * (wbr ? wbr[b] : 1.0f);
          acc[b] += p * wav;
        }
      } else if (acc) {
#pragma omp simd
        for (int64_t b = 0; b < b_len; ++b) acc[b] += d[b] * xr[b] * wav;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t b = 0; b < b_len; ++b) s += d[b] * xr[b] * (wbr ? wbr[b] : 1.0f);
      }
      if (out_a) out_a[r] = static_cast<float>(s);
    }
  }
  if (out_b) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double* first = partial.get() + i * chunks * b_len;
      for (int64_t c = 1; c < chunks; ++c) {
        const double* other = first + c * b_len;
#pragma omp simd
        for (int64_t b = 0; b < b_len; ++b) first[b] += other[b];
      }
      for (int64_t b = 0; b < b_len; ++b) out_b[i * b_len + b] = static_cast<float>(first[b]);
    }
  }
}

}  // extern "C"

// The whole CBAM forward without autograd: see `infer` above. x and y are (n, C, H, W)
// (channels_last: (n, H, W, C)), y may be x; w0 null turns the channel gate off, conv null the spatial
// gate; bn_* null: no BatchNorm (otherwise eval mode: running statistics).
extern "C" void cbam_infer(const float* x, float* y, int64_t n, int64_t c, int64_t height,
                           int64_t width, int channels_last, int order, const float* w0,
                           const float* b0, const float* w1, const float* b1, int64_t hidden,
                           int c_avg, int c_max, const float* conv, int64_t k, int s_avg_slot,
                           int s_max_slot, const float* bn_weight, const float* bn_bias,
                           const float* bn_mean, const float* bn_var, double bn_eps,
                           int threads) {
  Infer S{};
  S.x = x;
  S.y = y;
  S.n = n;
  S.c = c;
  S.hw = height * width;
  S.height = height;
  S.width = width;
  S.channels_last = channels_last != 0;
  S.a_len = S.channels_last ? S.hw : c;
  S.b_len = S.channels_last ? c : S.hw;
  S.order = order;
  S.w0 = w0;
  S.b0 = b0;
  S.w1 = w1;
  S.b1 = b1;
  S.hidden = hidden;
  S.c_avg = c_avg != 0;
  S.c_max = c_max != 0;
  S.conv = conv;
  S.k = k;
  S.s_avg_slot = s_avg_slot;
  S.s_max_slot = s_max_slot;
  S.bn_scale = 1.0f;
  S.bn_shift = 0.0f;
  if (bn_mean) {
    const double scale = (bn_weight ? *bn_weight : 1.0) / std::sqrt(*bn_var + bn_eps);
    S.bn_scale = static_cast<float>(scale);
    S.bn_shift = static_cast<float>((bn_bias ? *bn_bias : 0.0) - *bn_mean * scale);
  }
  // Per sample when the weights take less room than a quarter of a sample's map.
  S.mlp_per_sample = 2 * c * hidden * 4 <= S.hw * c;
  std::unique_ptr<float[]> scratch(new float[n * (2 * c + hidden + c + 2 * S.hw + S.hw)]);
  S.desc = scratch.get();
  S.hsum = S.desc + n * 2 * c;
  S.a = S.hsum + n * hidden;
  S.smaps = S.a + n * c;
  S.b = S.smaps + n * 2 * S.hw;
  infer(S, threads);
}

// The spatial gate's convolution in training (autograd runs BatchNorm and the sigmoid):
// out (n, 1, H, W) = conv_kxk(maps (n, planes, H, W), weight (1, planes, k, k)), zero
// padding k / 2. Rows go to threads.
extern "C" void cbam_conv_forward(const float* maps, int64_t n, int64_t planes, int64_t height,
                                  int64_t width, const float* weight, int64_t k, float* out,
                                  int threads) {
  const int64_t hw = height * width;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t row = 0; row < n * height; ++row) {
    const int64_t i = row / height, h = row % height;
    float* o = out + i * hw + h * width;
    for (int64_t w = 0; w < width; ++w) o[w] = 0.0f;
    for (int64_t p = 0; p < planes; ++p)
      conv_row(maps + (i * planes + p) * hw, weight + p * k * k, 1.0f, height, width, k, h, o);
  }
}

// Its backward from g = dL/dout (n, 1, H, W): grad_maps (n, planes, H, W) and grad_weight
// (1, planes, k, k), each skipped when null. The weight's gradient sums in double.
extern "C" void cbam_conv_backward(const float* g, const float* maps, const float* weight,
                                   int64_t n, int64_t planes, int64_t height, int64_t width,
                                   int64_t k, float* grad_maps, float* grad_weight,
                                   int threads) {
  const int64_t hw = height * width, r = k / 2;
  if (grad_maps) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < n * planes * height; ++row) {
      const int64_t plane_row = row / height, h = row % height;
      const int64_t i = plane_row / planes, p = plane_row % planes;
      float* o = grad_maps + plane_row * hw + h * width;
      for (int64_t w = 0; w < width; ++w) o[w] = 0.0f;
      conv_row_transposed(g + i * hw, weight + p * k * k, height, width, k, h, o);
    }
  }
  if (grad_weight) {  // samples to threads; float sums within a sample, double across
    const int64_t taps = planes * k * k;
    std::unique_ptr<double[]> partial(new double[threads * taps]());
#pragma omp parallel num_threads(threads)
    {
      double* acc = partial.get() + omp_get_thread_num() * taps;
      std::unique_ptr<f8[]> vsum(new f8[taps]);
      std::unique_ptr<float[]> ssum(new float[taps]);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          vsum[tap] = f8{};
          ssum[tap] = 0.0f;
        }
        for (int64_t h = 0; h < height; ++h) {
          const float* gr = g + i * hw + h * width;
          for (int64_t p = 0; p < planes; ++p) {
            for (int64_t ky = 0; ky < k; ++ky) {
              const int64_t ih = h + ky - r;
              if (ih < 0 || ih >= height) continue;
              const int64_t at = (p * k + ky) * k;
              conv_weight_row(gr, maps + (i * planes + p) * hw + ih * width, k, width,
                              vsum.get() + at, ssum.get() + at);
            }
          }
        }
        for (int64_t tap = 0; tap < taps; ++tap) {
          double total = ssum[tap];
          for (int lane = 0; lane < 8; ++lane) total += vsum[tap][lane];
          acc[tap] += total;
        }
      }
    }
    for (int64_t tap = 0; tap < taps; ++tap) {
      double total = 0.0;
      for (int t = 0; t < threads; ++t) total += partial[t * taps + tap];
      grad_weight[tap] = static_cast<float>(total);
    }
  }
}
