// CBAM's memory-bound passes, fused: the CPU kernels behind ablation/attention/native.py.
//
// Every tensor is a float32 (N, A, B) block, contiguous: NCHW features are (N, C, HW) and
// channels_last ones (N, HW, C). "Per-A" vectors are (N, A), "per-B" vectors (N, B).
// Each kernel reads the big tensor once (twice for dual_reduce: dy and x) and writes at most
// one big tensor; sums accumulate in double. Threads: OpenMP, the runtime torch has loaded.
//
// Plain C ABI (extern "C"), no torch headers: it compiles in about a second.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace {

// GCC/Clang vector extensions: 8 floats (AVX2 registers; emulated where narrower).
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

inline f8 load8(const float* p) {
  f8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// Reductions over B of v[n, a, b] * w[n, b] (w may be null: 1) for every row (n, a).
// Outputs (each may be null): sum, max, and the first b where the max is reached. K vectors
// of 8 lanes (2 for long rows, 1 for short ones, where combining the lanes is the larger
// cost) keep their own sum, max and argmax over the row; then the lanes and the tail are
// combined.
template <bool Weighted, bool WithIndex, int K>
void pool_inner_rows(const float* v, int64_t n, int64_t a_len, int64_t b_len, const float* w,
                     float* sum, float* mx, int64_t* arg, int threads) {
  const int64_t rows = n * a_len;
  const int64_t body = b_len - b_len % (8 * K);
  const i8 iota = {0, 1, 2, 3, 4, 5, 6, 7};
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v + r * b_len;
    const float* wr = Weighted ? w + (r / a_len) * b_len : nullptr;
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
    if (sum) sum[r] = total;
    if (mx) mx[r] = best;
    if (WithIndex) arg[r] = best_at;
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
        if (so) so[j] = sj;
        if (mo) mo[j] = mj;
        if (WithIndex) ao[j] = atj;
      }
    }
  }
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
