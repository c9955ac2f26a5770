// Native kernels of deltanas's sparse engine: one delta frame as a program of sparse ops.
//
// Layout: every map is channels last, (positions, C), float32. A message is the list of changed positions
// (int32 row-major indices), their changes (n x C floats) and its count (int64). Python (deltanas/engine/
// _native.py) allocates every buffer as a torch tensor and encodes the program as int64 words:
//   [opcode, length, args...]   (pointers as integers, doubles bit-cast)
// The matching reference, op by op, is the pure-PyTorch path in deltanas/engine/_nodes.py; tests run both.
// Matrix products go to the BLAS that torch ships (sgemm_ found in the already loaded libtorch_cpu).

#include <Python.h>
#include <dlfcn.h>
#include <omp.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DELTANAS_AVX2 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

typedef void (*sgemm_fn)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*, const int*);
sgemm_fn g_sgemm = nullptr;

// Row-major C[m x n] = A[m x k] (lda) * B[k x n] (ldb) (+ beta C), through column-major BLAS.
void blas_gemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc, float beta) {
    if (m <= 0 || n <= 0) return;
    const float one = 1.0f;
    g_sgemm("N", "N", &n, &m, &k, &one, b, &ldb, a, &lda, &beta, c, &ldc);
}

// A weight as the kernels take it: the row-major k x n matrix (for BLAS) and the same in panels of 8 columns,
// panel-major and zero padded (panel p, row kk, column j at (p * k + kk) * 8 + j), for the small-m kernel.
struct Weight {
    const float* dense;
    const float* panels;
    int k, n;
};

// Below this many rows BLAS spends more time packing the weight than multiplying (measured on Lite0's shapes).
int SMALL_M = 96;

#ifdef DELTANAS_AVX2
template <int ROWS, bool TWO>
inline void kernel_rows(int k, const float* __restrict a, int lda, const float* __restrict p0,
                        const float* __restrict p1, float* __restrict c, int ldc, int cols) {
    __m256 acc0[ROWS], acc1[ROWS];
    for (int i = 0; i < ROWS; ++i) { acc0[i] = _mm256_setzero_ps(); acc1[i] = _mm256_setzero_ps(); }
    for (int kk = 0; kk < k; ++kk) {
        __m256 w0 = _mm256_loadu_ps(p0 + (int64_t)kk * 8);
        __m256 w1 = TWO ? _mm256_loadu_ps(p1 + (int64_t)kk * 8) : _mm256_setzero_ps();
        for (int i = 0; i < ROWS; ++i) {
            __m256 x = _mm256_broadcast_ss(a + (int64_t)i * lda + kk);
            acc0[i] = _mm256_fmadd_ps(x, w0, acc0[i]);
            if (TWO) acc1[i] = _mm256_fmadd_ps(x, w1, acc1[i]);
        }
    }
    for (int i = 0; i < ROWS; ++i) {
        float* row = c + (int64_t)i * ldc;
        if (cols >= 16 || (!TWO && cols >= 8)) {
            _mm256_storeu_ps(row, acc0[i]);
            if (TWO) _mm256_storeu_ps(row + 8, acc1[i]);
        } else {
            alignas(32) float tmp[16];
            _mm256_store_ps(tmp, acc0[i]);
            _mm256_store_ps(tmp + 8, acc1[i]);
            for (int j = 0; j < cols; ++j) row[j] = tmp[j];
        }
    }
}

template <bool TWO>
void kernel_block(int rows, int k, const float* a, int lda, const float* p0, const float* p1, float* c, int ldc,
                  int cols) {
    switch (rows) {
        case 4: kernel_rows<4, TWO>(k, a, lda, p0, p1, c, ldc, cols); break;
        case 3: kernel_rows<3, TWO>(k, a, lda, p0, p1, c, ldc, cols); break;
        case 2: kernel_rows<2, TWO>(k, a, lda, p0, p1, c, ldc, cols); break;
        default: kernel_rows<1, TWO>(k, a, lda, p0, p1, c, ldc, cols); break;
    }
}
#endif

inline int threads_for(int64_t work);

// C[m x n] (ldc) = A[m x k] (lda) * W: the panel kernel for few rows, BLAS for many.
void gemm(int m, const float* a, int lda, const Weight& w, float* c, int ldc) {
    if (m <= 0) return;
#ifdef DELTANAS_AVX2
    if (m < SMALL_M) {
        const int k = w.k, n = w.n, pairs = (n + 15) / 16;
        #pragma omp parallel for num_threads(threads_for((int64_t)m * n * k / 4)) schedule(static)
        for (int q = 0; q < pairs; ++q) {
            const int col = q * 16, cols = std::min(16, n - col);
            const float* p0 = w.panels + (int64_t)(2 * q) * k * 8;
            const float* p1 = p0 + (int64_t)k * 8;
            for (int r = 0; r < m; r += 4) {
                const int rows = std::min(4, m - r);
                if (cols > 8) kernel_block<true>(rows, k, a + (int64_t)r * lda, lda, p0, p1, c + (int64_t)r * ldc + col, ldc, cols);
                else kernel_block<false>(rows, k, a + (int64_t)r * lda, lda, p0, p1, c + (int64_t)r * ldc + col, ldc, cols);
            }
        }
        return;
    }
#endif
    blas_gemm(m, w.n, w.k, a, lda, w.dense, w.n, c, ldc, 0.0f);
}

struct Msg {
    int32_t* idx;
    float* val;
    int64_t* count;
};

struct Args {
    const int64_t* w;
    int i = 0;
    explicit Args(const int64_t* words) : w(words) {}
    int64_t next() { return w[i++]; }
    template <class T> T* ptr() { return reinterpret_cast<T*>(w[i++]); }
    Weight weight() {
        Weight x;
        x.dense = ptr<float>(); x.panels = ptr<float>(); x.k = (int)next(); x.n = (int)next();
        return x;
    }
    double real() { double d; std::memcpy(&d, &w[i++], sizeof d); return d; }
    Msg msg() { Msg m; m.idx = ptr<int32_t>(); m.val = ptr<float>(); m.count = ptr<int64_t>(); return m; }
};

inline int threads_for(int64_t work) {
    // below ~32k multiply-adds a parallel region costs more than it saves
    int t = omp_get_max_threads();
    return work < 32768 ? 1 : t;
}

// Keep only rows flagged in keep[] (in place, order kept); returns the new count.
int64_t compact(int32_t* idx, float* val, const uint8_t* keep, int64_t n, int64_t c) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!keep[i]) continue;
        if (k != i) {
            idx[k] = idx[i];
            std::memcpy(val + k * c, val + i * c, sizeof(float) * c);
        }
        ++k;
    }
    return k;
}

std::vector<uint8_t>& keep_scratch(int64_t n) {
    static thread_local std::vector<uint8_t> keep;
    if ((int64_t)keep.size() < n) keep.resize(n);
    return keep;
}

// -- ops ------------------------------------------------------------------------------------------------

// The frame (planar, C x positions) against the last one (kept planar too): rows where any channel changed.
// A frame holding NaN or infinity leaves the count at -1 (the caller refuses it) and the state as it was.
void op_input(Args& a) {
    const float* __restrict x = a.ptr<float>();
    float* __restrict state = a.ptr<float>();
    int64_t hw = a.next(), c = a.next();
    Msg out = a.msg();
    std::vector<uint8_t>& changed = keep_scratch(hw);
    uint8_t* __restrict flags = changed.data();
    int finite = 1;
    #pragma omp parallel for reduction(& : finite) num_threads(threads_for(hw * c)) schedule(static)
    for (int64_t p0 = 0; p0 < hw; p0 += 4096) {
        const int64_t p1 = std::min(hw, p0 + 4096);
        for (int64_t p = p0; p < p1; ++p) flags[p] = 0;
        for (int64_t ch = 0; ch < c; ++ch) {
            const float* __restrict xp = x + ch * hw;
            const float* __restrict sp = state + ch * hw;
            #pragma omp simd reduction(& : finite)
            for (int64_t p = p0; p < p1; ++p) {
                finite &= std::isfinite(xp[p]) ? 1 : 0;
                flags[p] |= xp[p] != sp[p];
            }
        }
    }
    if (!finite) { *out.count = -1; return; }
    // the changed rows, in order: each thread counts its range of positions, then fills from its offset
    const int threads = std::min(64, threads_for(hw * c));
    int64_t first[65] = {0};
    #pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t p0 = hw * t / nt, p1 = hw * (t + 1) / nt;
        int64_t count = 0;
        for (int64_t p = p0; p < p1; ++p) count += flags[p];
        first[t + 1] = count;
        #pragma omp barrier
        int64_t n = 0;
        for (int u = 0; u < t; ++u) n += first[u + 1];
        for (int64_t p = p0; p < p1; ++p) {
            if (!flags[p]) continue;
            float* row = out.val + n * c;
            for (int64_t ch = 0; ch < c; ++ch) {
                float v = x[ch * hw + p];
                row[ch] = v - state[ch * hw + p];
                state[ch * hw + p] = v;
            }
            out.idx[n++] = (int32_t)p;
        }
        #pragma omp barrier
        if (t == nt - 1) *out.count = n;
    }
}

void op_affine(Args& a) {
    Msg in = a.msg(), out = a.msg();
    const float* scale = a.ptr<float>();
    int64_t c = a.next(), n = *in.count;
    std::memcpy(out.idx, in.idx, sizeof(int32_t) * n);
    #pragma omp parallel for num_threads(threads_for(n * c)) schedule(static)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch) out.val[i * c + ch] = in.val[i * c + ch] * scale[ch];
    *out.count = n;
}

inline float row_norm(const float* row, const float* weight, int64_t c) {
    float s = 0.0f;
    if (weight) {
        #pragma omp simd reduction(+ : s)
        for (int64_t ch = 0; ch < c; ++ch) s += row[ch] * row[ch] * weight[ch];
    } else {
        #pragma omp simd reduction(+ : s)
        for (int64_t ch = 0; ch < c; ++ch) s += row[ch] * row[ch];
    }
    return std::sqrt(s);
}

inline float act(int64_t kind, float x, float p0, float p1) {
    switch (kind) {
        case 0: return x > 0.0f ? x : 0.0f;                                     // relu
        case 1: return x < p0 ? p0 : (x > p1 ? p1 : x);                         // hardtanh(p0, p1), relu6
        case 2: return x / (1.0f + std::exp(-x));                               // silu
        case 3: { float r = std::min(std::max(x + 3.0f, 0.0f), 6.0f); return x * r / 6.0f; }  // hardswish
        case 4: return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;         // hardsigmoid
        case 5: return 1.0f / (1.0f + std::exp(-x));                            // sigmoid
        case 6: return std::tanh(x);                                            // tanh
        case 7: return x > 0.0f ? x : x * p0;                                   // leaky_relu(p0)
        case 8: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));  // gelu
    }
    return x;
}

template <int KIND>
inline bool act_row(float* __restrict s, const float* __restrict d, float* __restrict o, int64_t c, float p0,
                    float p1) {
    int any = 0;
    #pragma omp simd reduction(| : any)
    for (int64_t ch = 0; ch < c; ++ch) {
        float old = s[ch], now = old + d[ch];
        s[ch] = now;
        float y;
        if (KIND == 1) y = std::min(std::max(now, p0), p1) - std::min(std::max(old, p0), p1);
        else if (KIND == 0) y = std::max(now, 0.0f) - std::max(old, 0.0f);
        else y = act(KIND, now, p0, p1) - act(KIND, old, p0, p1);
        o[ch] = y;
        any |= y != 0.0f;
    }
    return any;
}

typedef bool (*act_row_fn)(float*, const float*, float*, int64_t, float, float);
const act_row_fn ACT_ROWS[] = {act_row<0>, act_row<1>, act_row<2>, act_row<3>, act_row<4>, act_row<5>, act_row<6>,
                               act_row<7>, act_row<8>};

// An activation in front of a gate, run inside it (act_gate): f(state + d) - f(state) per row into a scratch
// row, never written out as a message; rows whose output did not change drop out, as op_act drops them.
struct ActPrefix {
    float* state = nullptr;
    int64_t kind = 0;
    float p0 = 0.0f, p1 = 0.0f;
};

// A running-reference gate: the change joins what is held back (acc); what passes leaves it.
// kind 0: norm > value x key norm (a, w); 1: norm > value x the mean norm over all positions (t);
// 2: the top ceil(value x positions) positions by norm (p). With an activation prefix, in.val holds the
// activation's input change and ``act_out_count`` receives how many rows its output changed.
void gate(Args& a, const ActPrefix* prefix, int64_t* act_out_count) {
    Msg in = a.msg(), out = a.msg();
    float* acc = a.ptr<float>();
    int64_t c = a.next(), hw = a.next(), kind = a.next();
    double value = a.real();
    const float* weight = a.ptr<float>();
    const float* key_norm = a.ptr<float>();
    uint8_t* dirty = a.ptr<uint8_t>();
    int32_t* dirty_list = a.ptr<int32_t>();
    int64_t* dirty_count = a.ptr<int64_t>();
    double* macs = a.ptr<double>();
    int64_t norm_cost = a.next();
    int64_t n = *in.count;
    const act_row_fn act = prefix ? ACT_ROWS[prefix->kind] : nullptr;
    // the change of row i as the gate sees it: the message's, or the activation's output change (nullptr: none)
    auto change = [&](int64_t i, float* scratch) -> const float* {
        const float* d = in.val + i * c;
        if (!act) return d;
        return act(prefix->state + (int64_t)in.idx[i] * c, d, scratch, c, prefix->p0, prefix->p1) ? scratch : nullptr;
    };
    // 0: held back, 1: passes, 2: no change reached the gate
    std::vector<uint8_t>& keep = keep_scratch(n);
    uint8_t* __restrict status = keep.data();
    int64_t seen = 0;
    if (kind == 0) {
        // One pass over each row: its held-back value plus the change goes straight into the output (passes) or
        // back into acc (held). A row not dirty holds nothing back (acc is zero there): acc is not read, and
        // not written when the row passes. Each thread takes a contiguous range of rows and writes what passes
        // from its range's first slot on; the ranges are joined after.
        const float limit = (float)value * key_norm[0];
        int64_t lo[64], kept[64];
        int threads = 1;
        static thread_local std::vector<float> ones;
        if (!weight && (int64_t)ones.size() < c) ones.assign(c, 1.0f);
        const float* __restrict wt = weight ? weight : ones.data();  // times one: exact
        #pragma omp parallel num_threads(std::min(64, threads_for(n * c * 3))) reduction(+ : seen)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            if (t == 0) threads = nt;
            const int64_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
            lo[t] = i0;
            static thread_local std::vector<float> scratch_row;
            if ((int64_t)scratch_row.size() < c) scratch_row.resize(c);
            int64_t slot = i0;
            for (int64_t i = i0; i < i1; ++i) {
                if (i + 2 < i1) {
                    __builtin_prefetch(acc + (int64_t)in.idx[i + 2] * c);
                    if (act) __builtin_prefetch(prefix->state + (int64_t)in.idx[i + 2] * c);
                }
                const float* __restrict d = change(i, scratch_row.data());
                if (!d) { status[i] = 2; continue; }
                ++seen;
                const int32_t p = in.idx[i];
                float* __restrict row = acc + (int64_t)p * c;
                float* __restrict v = out.val + slot * c;
                const bool held_before = dirty[p];
                float sq = 0.0f;
                if (held_before) {
                    #pragma omp simd reduction(+ : sq)
                    for (int64_t ch = 0; ch < c; ++ch) { v[ch] = row[ch] + d[ch]; sq += wt[ch] * v[ch] * v[ch]; }
                } else {
                    #pragma omp simd reduction(+ : sq)
                    for (int64_t ch = 0; ch < c; ++ch) { v[ch] = d[ch]; sq += wt[ch] * v[ch] * v[ch]; }
                }
                if (std::sqrt(sq) > limit) {  // passed: the reference is up to date again, nothing held here
                    status[i] = 1;
                    out.idx[slot++] = p;
                    if (held_before) for (int64_t ch = 0; ch < c; ++ch) row[ch] = 0.0f;  // loops: c may be 3
                } else {
                    status[i] = 0;
                    for (int64_t ch = 0; ch < c; ++ch) row[ch] = v[ch];
                }
            }
            kept[t] = slot - i0;
        }
        int64_t m = 0;
        for (int t = 0; t < threads; ++t) {
            if (m != lo[t] && kept[t]) {
                std::memmove(out.idx + m, out.idx + lo[t], sizeof(int32_t) * kept[t]);
                std::memmove(out.val + m * c, out.val + lo[t] * c, sizeof(float) * kept[t] * c);
            }
            m += kept[t];
        }
        for (int64_t i = 0; i < n; ++i) {
            const int32_t p = in.idx[i];
            if (status[i] == 0 && !dirty[p]) { dirty[p] = 1; dirty_list[(*dirty_count)++] = p; }
        }
        *out.count = m;
        *macs += (double)norm_cost * seen * c;
        if (act_out_count) *act_out_count = seen;
        return;
    }
    int64_t m = 0;
    auto pass = [&](int32_t p) {
        float* row = acc + (int64_t)p * c;
        std::memcpy(out.val + m * c, row, sizeof(float) * c);
        std::memset(row, 0, sizeof(float) * c);
        out.idx[m++] = p;
    };
    // frame-relative or top-p: over every position holding a change back
    std::vector<float> scratch_row(act ? c : 0);
    for (int64_t i = 0; i < n; ++i) {
        const float* __restrict d = change(i, scratch_row.data());
        if (!d) continue;
        ++seen;
        int32_t p = in.idx[i];
        float* __restrict row = acc + (int64_t)p * c;
        #pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) row[ch] += d[ch];
        if (!dirty[p]) { dirty[p] = 1; dirty_list[(*dirty_count)++] = p; }
    }
    if (act_out_count) *act_out_count = seen;
    int64_t k = *dirty_count;
    std::vector<std::pair<float, int32_t>> held;
    held.reserve(k);
    double total = 0.0;
    for (int64_t j = 0; j < k; ++j) {
        int32_t p = dirty_list[j];
        float s = row_norm(acc + (int64_t)p * c, weight, c);
        if (s > 0.0f) { held.emplace_back(s, p); total += s; }
    }
    *macs += (double)norm_cost * k * c;
    if (kind == 1) {
        float limit = (float)(value * (total / (double)hw));
        for (auto& h : held) if (h.first > limit) pass(h.second);
    } else {
        int64_t want = (int64_t)std::ceil(std::round(value * (double)hw * 1e6) / 1e6);
        want = std::max<int64_t>(1, std::min<int64_t>(hw, want));
        if ((int64_t)held.size() > want) {  // ties: the lower position first
            std::nth_element(held.begin(), held.begin() + want, held.end(), [](const auto& x, const auto& y) {
                return x.first > y.first || (x.first == y.first && x.second < y.second);
            });
            held.resize(want);
        }
        std::sort(held.begin(), held.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
        for (auto& h : held) pass(h.second);
    }
    *out.count = m;
}

void op_gate(Args& a) { gate(a, nullptr, nullptr); }

// An activation and the gate it feeds, fused: [act's output count, act state, kind, p0, p1, gate's args...].
void op_act_gate(Args& a) {
    int64_t* act_out_count = a.ptr<int64_t>();
    ActPrefix prefix;
    prefix.state = a.ptr<float>();
    prefix.kind = a.next();
    prefix.p0 = (float)a.real();
    prefix.p1 = (float)a.real();
    gate(a, &prefix, act_out_count);
}

// Zero what a gate held back over the last group (at a key frame).
void op_gate_reset(Args& a) {
    float* acc = a.ptr<float>();
    int64_t c = a.next();
    uint8_t* dirty = a.ptr<uint8_t>();
    int32_t* dirty_list = a.ptr<int32_t>();
    int64_t* dirty_count = a.ptr<int64_t>();
    for (int64_t j = 0; j < *dirty_count; ++j) {
        int32_t p = dirty_list[j];
        std::memset(acc + (int64_t)p * c, 0, sizeof(float) * c);
        dirty[p] = 0;
    }
    *dirty_count = 0;
}

// 1 x 1 convolution without padding: the changed rows (those on the stride's grid) times W (C_in x C_out).
void op_conv1(Args& a) {
    Msg in = a.msg(), out = a.msg();
    Weight w = a.weight();
    int64_t cin = w.k, cout = w.n, sh = a.next(), sw = a.next(), in_w = a.next();
    int64_t out_h = a.next(), out_w = a.next();
    float* rows = a.ptr<float>();
    double* macs = a.ptr<double>();
    int64_t pos_macs = a.next();
    int64_t n = *in.count;
    const float* src = in.val;
    int64_t m = n;
    if (sh == 1 && sw == 1) {
        std::memcpy(out.idx, in.idx, sizeof(int32_t) * n);
    } else {
        m = 0;
        for (int64_t i = 0; i < n; ++i) {
            int64_t p = in.idx[i], y = p / in_w, x = p % in_w;
            if (y % sh || x % sw || y / sh >= out_h || x / sw >= out_w) continue;
            out.idx[m] = (int32_t)((y / sh) * out_w + x / sw);
            std::memcpy(rows + m * cin, in.val + i * cin, sizeof(float) * cin);
            ++m;
        }
        src = rows;
    }
    gemm((int)m, src, (int)cin, w, out.val, (int)cout);
    *out.count = m;
    *macs += (double)m * pos_macs;
}

struct Window {
    int64_t in_h, in_w, in_c, out_h, out_w, out_c, kh, kw, sh, sw, ph, pw, dh, dw, hp, wp;
    void read(Args& a) {
        in_h = a.next(); in_w = a.next(); in_c = a.next(); out_h = a.next(); out_w = a.next(); out_c = a.next();
        kh = a.next(); kw = a.next(); sh = a.next(); sw = a.next(); ph = a.next(); pw = a.next();
        dh = a.next(); dw = a.next(); hp = a.next(); wp = a.next();
    }
    int64_t padded(int64_t p) const { return (p / in_w + ph) * wp + p % in_w + pw; }
    int64_t corner(int64_t o) const { return (o / out_w) * sh * wp + (o % out_w) * sw; }
    int64_t tap(int64_t i, int64_t j) const { return i * dh * wp + j * dw; }
};

// Calls f(i, j, oy, ox) for every tap (i, j) by which input (y, x) reaches output (oy, ox) of the window.
template <class F>
inline void for_reached(const Window& g, int y, int x, F&& f) {
    const int out_h = (int)g.out_h, out_w = (int)g.out_w, kh = (int)g.kh, kw = (int)g.kw;
    const int sh = (int)g.sh, sw = (int)g.sw, ph = (int)g.ph, pw = (int)g.pw, dh = (int)g.dh, dw = (int)g.dw;
    int oxs[64], js[64], nx = 0;
    for (int j = 0; j < kw && nx < 64; ++j) {
        int ox = x + pw - j * dw;
        if (ox < 0) break;
        if (sw > 1) { if (ox % sw) continue; ox /= sw; }
        if (ox < out_w) { oxs[nx] = ox; js[nx++] = j; }
    }
    for (int i = 0; i < kh; ++i) {
        int oy = y + ph - i * dh;
        if (oy < 0) break;
        if (sh > 1) { if (oy % sh) continue; oy /= sh; }
        if (oy >= out_h) continue;
        for (int k = 0; k < nx; ++k) f(i, js[k], oy, oxs[k]);
    }
}

// The output positions whose window holds a changed input position, row-major. mark (one int32 per output
// position, -1 between calls) is -1 again on return. The changed inputs mark what they reach (in parallel:
// every writer stores the same 0), then one scan lists the marked positions in order.
int64_t touched(const Window& g, const int32_t* idx, int64_t n, int32_t* mark, int32_t* out_idx) {
    const int in_w = (int)g.in_w, out_w = (int)g.out_w;
    #pragma omp parallel for num_threads(threads_for(n * g.kh * g.kw * 8)) schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        for_reached(g, idx[r] / in_w, idx[r] % in_w, [&](int, int, int oy, int ox) {
            __atomic_store_n(&mark[(int64_t)oy * out_w + ox], 0, __ATOMIC_RELAXED);
        });
    }
    int64_t m = 0;
    const int64_t positions = g.out_h * g.out_w;
    for (int64_t o = 0; o < positions; ++o) {
        if (mark[o] < 0) continue;
        mark[o] = -1;
        out_idx[m++] = (int32_t)o;
    }
    return m;
}

void scatter(const Window& g, const Msg& in, float* frame) {
    int64_t n = *in.count, c = g.in_c;
    for (int64_t r = 0; r < n; ++r) std::memcpy(frame + g.padded(in.idx[r]) * c, in.val + r * c, sizeof(float) * c);
}

void unscatter(const Window& g, const Msg& in, float* frame) {
    int64_t n = *in.count, c = g.in_c;
    for (int64_t r = 0; r < n; ++r) std::memset(frame + g.padded(in.idx[r]) * c, 0, sizeof(float) * c);
}

inline void dw_tap(float* __restrict o, const float* __restrict w, const float* __restrict src, int64_t c) {
    #pragma omp simd
    for (int64_t ch = 0; ch < c; ++ch) o[ch] += w[ch] * src[ch];
}

// Depthwise k x k: each reached output sums its window's changed inputs (mark, one int32 per position and
// -1 between calls, first finds the reached outputs, then gives each changed input position its row). The
// multiply-adds are exactly the (changed input, output) taps; outputs split between threads, each written
// once. Returns the multiply-adds done.
int64_t depthwise(const Window& g, const Msg& in, const float* __restrict w, int32_t* mark, Msg& out) {
    const int64_t c = g.in_c, n = *in.count;
    const int64_t m = touched(g, in.idx, n, mark, out.idx);
    *out.count = m;
    if (m == 0) return 0;
    for (int64_t r = 0; r < n; ++r) mark[in.idx[r]] = (int32_t)r;
    const int64_t in_h = g.in_h, in_w = g.in_w, out_w = g.out_w;
    int64_t taps = 0;
    #pragma omp parallel for reduction(+ : taps) num_threads(threads_for(m * c * g.kh * g.kw / 2)) schedule(static)
    for (int64_t k = 0; k < m; ++k) {
        float* __restrict o = out.val + k * c;
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = 0.0f;
        const int64_t oy = out.idx[k] / out_w, ox = out.idx[k] % out_w;
        for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t y = oy * g.sh - g.ph + i * g.dh;
            if (y < 0 || y >= in_h) continue;
            for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t x = ox * g.sw - g.pw + j * g.dw;
                if (x < 0 || x >= in_w) continue;
                const int32_t r = mark[y * in_w + x];
                if (r < 0) continue;
                dw_tap(o, w + (i * g.kw + j) * c, in.val + (int64_t)r * c, c);
                ++taps;
            }
        }
    }
    for (int64_t r = 0; r < n; ++r) mark[in.idx[r]] = -1;
    return taps * c;
}

// k x k convolution (dense or grouped: each reached output's window as a row of patches, one matrix product
// per group; depthwise: driven by the changed inputs).
// Each listed output position's whole window, read from a zero padded frame (depthwise: taps FMA per
// channel; otherwise gathered patches and one matrix product per group).
void windows(const Window& g, const float* frame, const int32_t* out_idx, int64_t m, bool depthwise,
             const float* w, const std::vector<Weight>& weights, int64_t groups, float* patches, float* out_val) {
    const int64_t taps = g.kh * g.kw, c = g.in_c;
    std::vector<int64_t> offsets(taps);
    for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) offsets[i * g.kw + j] = g.tap(i, j);
    if (depthwise) {
        #pragma omp parallel for num_threads(threads_for(m * c * taps)) schedule(static)
        for (int64_t r = 0; r < m; ++r) {
            float* o = out_val + r * c;
            const int64_t base = g.corner(out_idx[r]);
            for (int64_t ch = 0; ch < c; ++ch) o[ch] = 0.0f;
            for (int64_t t = 0; t < taps; ++t) dw_tap(o, w + t * c, frame + (base + offsets[t]) * c, c);
        }
        return;
    }
    const int64_t cg = c / groups, og = g.out_c / groups, row = taps * cg;
    for (int64_t gi = 0; gi < groups; ++gi) {
        #pragma omp parallel for num_threads(threads_for(m * row)) schedule(static)
        for (int64_t r = 0; r < m; ++r) {
            const int64_t base = g.corner(out_idx[r]);
            float* __restrict dst = patches + r * row;
            for (int64_t t = 0; t < taps; ++t) {
                const float* __restrict src = frame + (base + offsets[t]) * c + gi * cg;
                for (int64_t ch = 0; ch < cg; ++ch) dst[t * cg + ch] = src[ch];  // few channels: no memcpy call
            }
        }
        gemm((int)m, patches, (int)row, weights[gi], out_val + gi * og, (int)g.out_c);
    }
}

// The head of a windowed convolution's arguments (convk, keygate): messages, window, groups, weights.
struct WindowConv {
    Msg in, out;
    Window g;
    int64_t groups;
    bool depthwise;
    const float* w;  // depthwise: (taps, C); otherwise one Weight per group
    std::vector<Weight> weights;
    explicit WindowConv(Args& a) : in(a.msg()), out(a.msg()) {
        g.read(a);
        groups = a.next();
        depthwise = a.next() != 0;
        w = a.ptr<float>();
        if (!depthwise) for (int64_t gi = 0; gi < groups; ++gi) weights.push_back(a.weight());
    }
};

// k x k convolution (dense or grouped: each reached output's window; depthwise: driven by the changed inputs
// up to a share of them, then by the reached outputs).
void op_convk(Args& a) {
    WindowConv cv(a);
    Msg &in = cv.in, &out = cv.out;
    const Window& g = cv.g;
    float* frame = a.ptr<float>();
    int32_t* mark = a.ptr<int32_t>();
    float* patches = a.ptr<float>();
    double* macs = a.ptr<double>();
    int64_t pos_macs = a.next();
    if (cv.depthwise) {
        *macs += (double)depthwise(g, in, cv.w, mark, out);
        return;
    }
    int64_t m = touched(g, in.idx, *in.count, mark, out.idx);
    *out.count = m;
    if (m == 0) return;
    scatter(g, in, frame);
    windows(g, frame, out.idx, m, cv.depthwise, cv.w, cv.weights, cv.groups, patches, out.val);
    unscatter(g, in, frame);
    *macs += (double)m * pos_macs;
}

// A skip-convolution against the key frame (GatedDelta: top-p of the output units, or a threshold relative to
// the frame's mean input norm): the output of a selected unit is W(x - x_key) over its window, of any other
// zero. The change since the key frame is kept in a zero padded frame; the message is the output's change
// since the last frame, at the units selected now or then.
void op_keygate(Args& a) {
    WindowConv cv(a);
    Msg &in = cv.in, &out = cv.out;
    const Window& g = cv.g;
    float* since = a.ptr<float>();  // (Hp * Wp, C) padded: x - x_key
    uint8_t* dirty = a.ptr<uint8_t>();
    int32_t* dirty_list = a.ptr<int32_t>();
    int64_t* dirty_count = a.ptr<int64_t>();
    float* pooled = a.ptr<float>();  // (out positions,) zero between calls
    float* prev = a.ptr<float>();  // (out positions, C_out): the output's change since the key frame
    uint8_t* selected = a.ptr<uint8_t>();  // (out positions,) in the last selection
    int32_t* sel_list = a.ptr<int32_t>();
    int64_t* sel_count = a.ptr<int64_t>();
    int32_t* mark = a.ptr<int32_t>();
    float* patches = a.ptr<float>();
    float* fresh = a.ptr<float>();  // (out positions, C_out) scratch
    int64_t kind = a.next();  // 0: top-p, 1: threshold
    double value = a.real();
    double* macs = a.ptr<double>();
    int64_t pos_macs = a.next();
    const int64_t c = g.in_c, co = g.out_c, hw = g.in_h * g.in_w, units = g.out_h * g.out_w;
    if (*in.count == 0) { *out.count = 0; return; }  // nothing changed: the same selection, the same outputs
    for (int64_t r = 0; r < *in.count; ++r) {
        int32_t p = in.idx[r];
        float* __restrict row = since + g.padded(p) * c;
        const float* __restrict d = in.val + r * c;
        #pragma omp simd
        for (int64_t ch = 0; ch < c; ++ch) row[ch] += d[ch];
        if (!dirty[p]) { dirty[p] = 1; dirty_list[(*dirty_count)++] = p; }
    }
    // the gate: each output unit scores the largest input score in its window (squared norm for top-p, norm
    // for the threshold), computed where the input changed since the key frame (zero elsewhere)
    const int64_t k = *dirty_count;
    double total = 0.0;
    int64_t m = 0;  // touched units, listed in out.idx for now
    const int in_w = (int)g.in_w, out_w = (int)g.out_w;
    for (int64_t j = 0; j < k; ++j) {
        int32_t p = dirty_list[j];
        const float* row = since + g.padded(p) * c;
        float sq = 0.0f;
        #pragma omp simd reduction(+ : sq)
        for (int64_t ch = 0; ch < c; ++ch) sq += row[ch] * row[ch];
        if (sq <= 0.0f) continue;
        float score = kind == 0 ? sq : std::sqrt(sq);
        total += std::sqrt(sq);
        for_reached(g, p / in_w, p % in_w, [&](int, int, int oy, int ox) {
            int64_t o = (int64_t)oy * out_w + ox;
            if (mark[o] < 0) { mark[o] = 0; out.idx[m++] = (int32_t)o; }
            pooled[o] = std::max(pooled[o], score);
        });
    }
    *macs += (double)k * c;
    std::vector<std::pair<float, int32_t>> cand;
    cand.reserve(m);
    for (int64_t r = 0; r < m; ++r) {
        int32_t o = out.idx[r];
        cand.emplace_back(pooled[o], o);
        pooled[o] = 0.0f;
        mark[o] = -1;
    }
    if (kind == 0) {
        int64_t want = (int64_t)std::ceil(std::round(value * (double)units * 1e6) / 1e6);
        want = std::max<int64_t>(1, std::min<int64_t>(units, want));
        if ((int64_t)cand.size() > want) {  // ties: the lower position first (as the PyTorch path)
            std::nth_element(cand.begin(), cand.begin() + want, cand.end(), [](const auto& x, const auto& y) {
                return x.first > y.first || (x.first == y.first && x.second < y.second);
            });
            cand.resize(want);
        }
    } else {
        const float limit = (float)(value * (total / (double)hw));
        cand.erase(std::remove_if(cand.begin(), cand.end(), [&](const auto& x) { return !(x.first > limit); }),
                   cand.end());
    }
    // the selected units' outputs now
    std::vector<int32_t> now(cand.size());
    for (size_t r = 0; r < cand.size(); ++r) now[r] = cand[r].second;
    const int64_t n_now = (int64_t)now.size();
    if (n_now) windows(g, since, now.data(), n_now, cv.depthwise, cv.w, cv.weights, cv.groups, patches, fresh);
    *macs += (double)n_now * pos_macs;
    // the message: the change of the output at the units selected now or before
    int64_t n_out = 0;
    auto emit = [&](int32_t o, const float* value_now) {
        float* msg = out.val + n_out * co;
        float* kept = prev + (int64_t)o * co;
        int any = 0;
        for (int64_t ch = 0; ch < co; ++ch) {
            float v = value_now ? value_now[ch] : 0.0f;
            float d = v - kept[ch];
            msg[ch] = d;
            kept[ch] = v;
            any |= d != 0.0f;
        }
        if (any) out.idx[n_out++] = o;
    };
    for (int64_t r = 0; r < *sel_count; ++r) selected[sel_list[r]] = 2;  // 2: selected before, not (yet) now
    for (int64_t r = 0; r < n_now; ++r) {
        emit(now[r], fresh + r * co);
        selected[now[r]] = 1;
    }
    for (int64_t r = 0; r < *sel_count; ++r)
        if (selected[sel_list[r]] == 2) { emit(sel_list[r], nullptr); selected[sel_list[r]] = 0; }
    for (int64_t r = 0; r < n_now; ++r) sel_list[r] = now[r];
    *sel_count = n_now;
    *out.count = n_out;
}

// A key frame: nothing changed since it, nothing selected.
void op_keygate_reset(Args& a) {
    float* since = a.ptr<float>();
    int64_t c = a.next(), in_w = a.next(), pw_ = a.next(), ph_ = a.next(), wp = a.next();
    uint8_t* dirty = a.ptr<uint8_t>();
    int32_t* dirty_list = a.ptr<int32_t>();
    int64_t* dirty_count = a.ptr<int64_t>();
    float* prev = a.ptr<float>();
    int64_t co = a.next();
    uint8_t* selected = a.ptr<uint8_t>();
    int32_t* sel_list = a.ptr<int32_t>();
    int64_t* sel_count = a.ptr<int64_t>();
    for (int64_t j = 0; j < *dirty_count; ++j) {
        int64_t p = dirty_list[j];
        std::memset(since + ((p / in_w + ph_) * wp + p % in_w + pw_) * c, 0, sizeof(float) * c);
        dirty[p] = 0;
    }
    *dirty_count = 0;
    for (int64_t r = 0; r < *sel_count; ++r) {
        std::memset(prev + (int64_t)sel_list[r] * co, 0, sizeof(float) * co);
        selected[sel_list[r]] = 0;
    }
    *sel_count = 0;
}

// f(state + d) - f(state) at the changed rows; rows whose output did not change drop out.
void op_act(Args& a) {
    Msg in = a.msg(), out = a.msg();
    float* state = a.ptr<float>();
    int64_t c = a.next(), kind = a.next();
    float p0 = (float)a.real(), p1 = (float)a.real();
    int64_t n = *in.count;
    act_row_fn row = ACT_ROWS[kind];
    std::vector<uint8_t>& keep = keep_scratch(n);
    #pragma omp parallel for num_threads(threads_for(n * c * 4)) schedule(static)
    for (int64_t r = 0; r < n; ++r) {
        if (r + 2 < n) __builtin_prefetch(state + (int64_t)in.idx[r + 2] * c);  // rows lie scattered in the state
        keep[r] = row(state + (int64_t)in.idx[r] * c, in.val + r * c, out.val + r * c, c, p0, p1);
        out.idx[r] = in.idx[r];
    }
    *out.count = compact(out.idx, out.val, keep.data(), n, c);
}

// a + sign x b over the union of their rows; mark (one int32 per position) is -1 between calls.
void op_add(Args& a) {
    Msg x = a.msg(), y = a.msg(), out = a.msg();
    int64_t c = a.next();
    float sign = (float)a.real();
    int32_t* mark = a.ptr<int32_t>();
    int64_t nx = *x.count, ny = *y.count, m = nx;
    std::memcpy(out.idx, x.idx, sizeof(int32_t) * nx);
    std::memcpy(out.val, x.val, sizeof(float) * nx * c);
    for (int64_t r = 0; r < nx; ++r) mark[x.idx[r]] = (int32_t)r;
    for (int64_t r = 0; r < ny; ++r) {
        int32_t p = y.idx[r];
        const float* src = y.val + r * c;
        int32_t slot = mark[p];
        if (slot >= 0) {
            float* dst = out.val + (int64_t)slot * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] += sign * src[ch];
        } else {
            float* dst = out.val + m * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] = sign * src[ch];
            out.idx[m++] = p;
        }
    }
    for (int64_t r = 0; r < nx; ++r) mark[x.idx[r]] = -1;
    *out.count = m;
}

// Channel concatenation over the union of the inputs' rows.
void op_cat(Args& a) {
    Msg out = a.msg();
    int64_t ctot = a.next();
    int32_t* mark = a.ptr<int32_t>();
    int64_t inputs = a.next(), m = 0;
    for (int64_t k = 0; k < inputs; ++k) {
        Msg in = a.msg();
        int64_t c = a.next(), offset = a.next();
        for (int64_t r = 0; r < *in.count; ++r) {
            int32_t p = in.idx[r];
            int32_t slot = mark[p];
            if (slot < 0) {
                slot = mark[p] = (int32_t)m;
                out.idx[m] = p;
                std::memset(out.val + m * ctot, 0, sizeof(float) * ctot);
                ++m;
            }
            std::memcpy(out.val + (int64_t)slot * ctot + offset, in.val + r * c, sizeof(float) * c);
        }
    }
    for (int64_t r = 0; r < m; ++r) mark[out.idx[r]] = -1;
    *out.count = m;
}

// Max pooling: the input kept padded with -inf, the output kept; the windows a change reaches recomputed.
void op_maxpool(Args& a) {
    Msg in = a.msg(), out = a.msg();
    Window g; g.read(a);
    float* inp = a.ptr<float>();
    float* outp = a.ptr<float>();
    int32_t* mark = a.ptr<int32_t>();
    int64_t c = g.in_c, n = *in.count;
    for (int64_t r = 0; r < n; ++r) {
        float* s = inp + g.padded(in.idx[r]) * c;
        for (int64_t ch = 0; ch < c; ++ch) s[ch] += in.val[r * c + ch];
    }
    int64_t m = touched(g, in.idx, n, mark, out.idx);
    std::vector<uint8_t>& keep = keep_scratch(m);
    for (int64_t r = 0; r < m; ++r) {
        int64_t base = g.corner(out.idx[r]);
        float* o = out.val + r * c;
        float* kept = outp + (int64_t)out.idx[r] * c;
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = -INFINITY;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                const float* src = inp + (base + g.tap(i, j)) * c;
                for (int64_t ch = 0; ch < c; ++ch) o[ch] = std::max(o[ch], src[ch]);
            }
        bool any = false;
        for (int64_t ch = 0; ch < c; ++ch) {
            float d = o[ch] - kept[ch];
            kept[ch] = o[ch];
            o[ch] = d;
            any |= d != 0.0f;
        }
        keep[r] = any;
    }
    *out.count = compact(out.idx, out.val, keep.data(), m, c);
}

// Average pooling (linear): the window's sum of the change over its divisor.
void op_avgpool(Args& a) {
    Msg in = a.msg(), out = a.msg();
    Window g; g.read(a);
    float* frame = a.ptr<float>();
    int32_t* mark = a.ptr<int32_t>();
    const float* divisor = a.ptr<float>();
    int64_t c = g.in_c;
    int64_t m = touched(g, in.idx, *in.count, mark, out.idx);
    *out.count = m;
    if (m == 0) return;
    scatter(g, in, frame);
    for (int64_t r = 0; r < m; ++r) {
        int64_t base = g.corner(out.idx[r]);
        float* o = out.val + r * c;
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = 0.0f;
        for (int64_t i = 0; i < g.kh; ++i)
            for (int64_t j = 0; j < g.kw; ++j) {
                const float* src = frame + (base + g.tap(i, j)) * c;
                for (int64_t ch = 0; ch < c; ++ch) o[ch] += src[ch];
            }
        float inv = 1.0f / divisor[out.idx[r]];
        for (int64_t ch = 0; ch < c; ++ch) o[ch] *= inv;
    }
    unscatter(g, in, frame);
}

void op_global_pool(Args& a) {
    Msg in = a.msg(), out = a.msg();
    int64_t c = a.next(), hw = a.next(), n = *in.count;
    if (n == 0) { *out.count = 0; return; }
    std::vector<double> sum(c, 0.0);
    for (int64_t r = 0; r < n; ++r)
        for (int64_t ch = 0; ch < c; ++ch) sum[ch] += in.val[r * c + ch];
    for (int64_t ch = 0; ch < c; ++ch) out.val[ch] = (float)(sum[ch] / (double)hw);
    out.idx[0] = 0;
    *out.count = 1;
}

// Nearest upsampling: every output position copying a changed input (CSR lists per input position).
void op_nearest(Args& a) {
    Msg in = a.msg(), out = a.msg();
    int64_t c = a.next();
    const int32_t* offsets = a.ptr<int32_t>();
    const int32_t* targets = a.ptr<int32_t>();
    int64_t m = 0;
    for (int64_t r = 0; r < *in.count; ++r) {
        int32_t p = in.idx[r];
        for (int32_t k = offsets[p]; k < offsets[p + 1]; ++k) {
            out.idx[m] = targets[k];
            std::memcpy(out.val + m * c, in.val + r * c, sizeof(float) * c);
            ++m;
        }
    }
    *out.count = m;
}

// An output's kept value += its change.
void op_accumulate(Args& a) {
    Msg in = a.msg();
    float* state = a.ptr<float>();
    int64_t c = a.next(), n = *in.count;
    for (int64_t r = 0; r < n; ++r) {
        float* s = state + (int64_t)in.idx[r] * c;
        for (int64_t ch = 0; ch < c; ++ch) s[ch] += in.val[r * c + ch];
    }
}

// A key frame's mean per-position norm of an activation's output, from its kept input (what an a / w gate's
// threshold is relative to): mean_p sqrt(sum_c weight_c f(state_pc)^2).
#ifdef DELTANAS_AVX2
// relu (KIND 0) and hardtanh (KIND 1) with channels in multiples of 8: the same sums, eight channels a step
// (the generic loop does not vectorise the clamp and the weight together, and this pass reads every map).
template <int KIND>
double state_norm_sum_avx2(const float* __restrict state, int64_t hw, int64_t c, float p0, float p1,
                           const float* __restrict weight) {
    double total = 0.0;
    #pragma omp parallel for reduction(+ : total) num_threads(threads_for(hw * c)) schedule(static)
    for (int64_t p = 0; p < hw; ++p) {
        const float* __restrict row = state + p * c;
        const __m256 lo = _mm256_set1_ps(KIND == 1 ? p0 : 0.0f), hi = _mm256_set1_ps(p1);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t ch = 0; ch < c; ch += 8) {
            __m256 y = _mm256_max_ps(_mm256_loadu_ps(row + ch), lo);
            if (KIND == 1) y = _mm256_min_ps(y, hi);
            __m256 yy = _mm256_mul_ps(y, y);
            acc = weight ? _mm256_fmadd_ps(yy, _mm256_loadu_ps(weight + ch), acc) : _mm256_add_ps(yy, acc);
        }
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        total += std::sqrt(_mm_cvtss_f32(s4));
    }
    return total;
}
#endif

template <int KIND>
double state_norm_sum(const float* __restrict state, int64_t hw, int64_t c, float p0, float p1,
                      const float* __restrict weight) {
#ifdef DELTANAS_AVX2
    if ((KIND == 0 || KIND == 1) && c % 8 == 0) return state_norm_sum_avx2<KIND>(state, hw, c, p0, p1, weight);
#endif
    double total = 0.0;
    #pragma omp parallel for reduction(+ : total) num_threads(threads_for(hw * c)) schedule(static)
    for (int64_t p = 0; p < hw; ++p) {
        const float* __restrict row = state + p * c;
        float sq = 0.0f;
        if (weight) {
            #pragma omp simd reduction(+ : sq)
            for (int64_t ch = 0; ch < c; ++ch) {
                float x = row[ch];
                float y = KIND == 1 ? std::min(std::max(x, p0), p1) : KIND == 0 ? std::max(x, 0.0f) : act(KIND, x, p0, p1);
                sq += weight[ch] * y * y;
            }
        } else {
            #pragma omp simd reduction(+ : sq)
            for (int64_t ch = 0; ch < c; ++ch) {
                float x = row[ch];
                float y = KIND == 1 ? std::min(std::max(x, p0), p1) : KIND == 0 ? std::max(x, 0.0f) : act(KIND, x, p0, p1);
                sq += y * y;
            }
        }
        total += std::sqrt(sq);
    }
    return total;
}

typedef double (*norm_fn)(const float*, int64_t, int64_t, float, float, const float*);
const norm_fn NORMS[] = {state_norm_sum<0>, state_norm_sum<1>, state_norm_sum<2>, state_norm_sum<3>,
                         state_norm_sum<4>, state_norm_sum<5>, state_norm_sum<6>, state_norm_sum<7>,
                         state_norm_sum<8>};

void op_state_norm(Args& a) {
    const float* state = a.ptr<float>();
    int64_t hw = a.next(), c = a.next(), kind = a.next();
    float p0 = (float)a.real(), p1 = (float)a.real();
    const float* weight = a.ptr<float>();
    float* out = a.ptr<float>();
    *out = (float)(NORMS[kind](state, hw, c, p0, p1, weight) / (double)hw);
}

typedef void (*op_fn)(Args&);
const op_fn OPS[] = {nullptr, op_input, op_affine, op_gate, op_gate_reset, op_conv1, op_convk, op_act, op_add,
                     op_cat, op_maxpool, op_avgpool, op_global_pool, op_nearest, op_accumulate, op_state_norm,
                     op_keygate, op_keygate_reset, op_act_gate};
const int64_t N_OPS = sizeof(OPS) / sizeof(OPS[0]);

}  // namespace

extern "C" {

// Find the BLAS in the already loaded torch library. 0: ready.
int deltanas_init(const char* torch_library) {
    void* handle = dlopen(torch_library, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) handle = dlopen(torch_library, RTLD_LAZY);
    if (!handle) return 1;
    g_sgemm = reinterpret_cast<sgemm_fn>(dlsym(handle, "sgemm_"));
    return g_sgemm ? 0 : 2;
}

// Bumped whenever an op's words change: Python refuses a build of another version.
int deltanas_abi_version() { return 2; }

int deltanas_tune_small_m(int m) { int before = SMALL_M; if (m > 0) SMALL_M = m; return before; }

// Threads of the kernels' parallel loops (the caller's torch thread count); returns the previous one.
int deltanas_set_threads(int threads) {
    int before = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
    return before;
}

// Run a program: a sequence of [opcode, length, args...]. Returns 0, or the index of a bad instruction + 1.
int64_t deltanas_run(const int64_t* program, int64_t words) {
    int64_t pc = 0;
    while (pc < words) {
        int64_t op = program[pc], length = program[pc + 1];
        if (op <= 0 || op >= N_OPS || length < 2) return pc + 1;
        Args args(program + pc + 2);
        OPS[op](args);
        pc += length;
    }
    return 0;
}

}  // extern "C"

static PyModuleDef deltanas_kernels_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                              "deltanas's native engine kernels (loaded through ctypes)", -1,
                                              nullptr};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&deltanas_kernels_module); }
