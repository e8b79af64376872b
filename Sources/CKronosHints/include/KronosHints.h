// Instructions and hints that Swift cannot spell. Header-only: the functions inline into the kernels.
#ifndef KRONOS_HINTS_H
#define KRONOS_HINTS_H

// Asks for bytes u·slice ..< (u+1)·slice of `base`, one cache line at a time: the matvec kernels
// fetch the next group of weight rows a slice per unit of the current one (past the last row for
// the last group: a prefetch never faults).
static inline __attribute__((always_inline)) void kronos_prefetch_slice(const void *base, long u, long slice) {
    const char *p = (const char *)base;
    for (long o = u * slice, end = (u + 1) * slice; o < end; o += 64) __builtin_prefetch(p + o, 0, 3);
}

// 256-bit vectors as Swift sees them: SIMD8<Int32>, SIMD32<UInt8>, SIMD32<Int8>.
typedef int kronos_i32x8 __attribute__((ext_vector_type(8)));
typedef unsigned char kronos_u8x32 __attribute__((ext_vector_type(32)));
typedef signed char kronos_i8x32 __attribute__((ext_vector_type(32)));
typedef float kronos_f32x8 __attribute__((ext_vector_type(8)));
typedef float kronos_f32x4 __attribute__((ext_vector_type(4)));
typedef signed char kronos_i8x8 __attribute__((ext_vector_type(8)));
typedef unsigned char kronos_u8x8 __attribute__((ext_vector_type(8)));
typedef unsigned short kronos_u16x8 __attribute__((ext_vector_type(8)));
typedef unsigned short kronos_u16x4 __attribute__((ext_vector_type(4)));
typedef _Float16 kronos_f16x8 __attribute__((ext_vector_type(8)));
typedef _Float16 kronos_f16x4 __attribute__((ext_vector_type(4)));

// Lane conversions of the decoders and the f16 cache, exact (every value is representable). Written
// here rather than with the standard library's generic SIMD initializers: those come out as shared
// out-of-line functions of which a binary keeps one copy, so the engine built for x86-64-v3 and the
// baseline one would call the same code (a scalar loop in one build, VEX instructions in the other:
// slow in one, illegal on older processors in the other). These inline into each caller and compile
// for its build (vcvtdq2ps / vpmovsxbd / vpmovzxbd / vcvtph2ps with x86-64-v3; SSE2 and libgcc's
// f16 widening without). tools/check-baseline-isa.py checks the binaries.
static inline __attribute__((always_inline)) kronos_f32x8 kronos_f32_from_i32x8(kronos_i32x8 v) {
    return __builtin_convertvector(v, kronos_f32x8);
}
static inline __attribute__((always_inline)) kronos_i32x8 kronos_i32_from_i8x8(kronos_i8x8 v) {
    return __builtin_convertvector(v, kronos_i32x8);
}
static inline __attribute__((always_inline)) kronos_i32x8 kronos_i32_from_u8x8(kronos_u8x8 v) {
    return __builtin_convertvector(v, kronos_i32x8);
}
// f16 bit patterns -> f32.
static inline __attribute__((always_inline)) kronos_f32x8 kronos_f32_from_f16x8(kronos_u16x8 bits) {
    return __builtin_convertvector((kronos_f16x8)bits, kronos_f32x8);
}
static inline __attribute__((always_inline)) kronos_f32x4 kronos_f32_from_f16x4(kronos_u16x4 bits) {
    return __builtin_convertvector((kronos_f16x4)bits, kronos_f32x4);
}
// One 32-value block of int8 activations (the integer path's quantizer, IntegerActivations.swift):
// d = max|x| / 127; codes x · (1/d) rounded to nearest, ties to even (1.5·2^23 added, the integer read
// from the low mantissa bits; 1/d is 0 for a zero block, so are its codes); *sum = Σ codes. Each step
// rounds on its own (no fused multiply-add: contraction is off here), so any build computes the same
// bits. Inlines into each caller and compiles for its processor.
static inline __attribute__((always_inline))
void kronos_quantize32(const float *x, signed char *q, float *d, int *sum) {
#pragma clang fp contract(off)
    kronos_f32x8 v[4];
    __builtin_memcpy(v, x, sizeof v);
    kronos_i32x8 magnitude = (kronos_i32x8)v[0] & 0x7FFFFFFF;
    for (int i = 1; i < 4; i++) {
        kronos_i32x8 a = (kronos_i32x8)v[i] & 0x7FFFFFFF;
        magnitude = __builtin_elementwise_max(magnitude, a);  // (non-negative floats order as integers)
    }
    int top = __builtin_reduce_max(magnitude);
    float amax;
    __builtin_memcpy(&amax, &top, 4);
    float scale = amax / 127.0f;
    float inverse = scale > 0 ? 1.0f / scale : 0.0f;
    *d = scale;
    kronos_i32x8 total = 0;
    for (int i = 0; i < 4; i++) {
        kronos_f32x8 scaled = v[i] * inverse;
        kronos_f32x8 r = scaled + 12582912.0f;
        kronos_i32x8 code = (kronos_i32x8)r - 0x4B400000;
        total += code;
        kronos_i8x8 narrow = __builtin_convertvector(code, kronos_i8x8);
        __builtin_memcpy(q + 8 * i, &narrow, 8);
    }
    *sum = __builtin_reduce_add(total);
}

// The largest of v[0 ..< n] (n >= 1; -infinity for no finite value), 8 lanes at a time: the same
// value in any order for finite values (softmaxInPlace's maximum; the scalar loop it replaced, Swift's
// max, did not vectorize and took a third of a softmax).
static inline __attribute__((always_inline)) float kronos_max_f32(const float *v, long n) {
    kronos_f32x8 m = -__builtin_inff();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        kronos_f32x8 x;
        __builtin_memcpy(&x, v + i, sizeof x);
        m = __builtin_elementwise_max(m, x);
    }
    float r = __builtin_reduce_max(m);
    for (; i < n; i++) r = v[i] > r ? v[i] : r;
    return r;
}

// Lane i: x[i] clamped to [lo[i], hi[i]]: x if x > lo, else lo; then that if below hi, else hi (a NaN
// lane becomes lo, as Swift's clamped(lowerBound:upperBound:) of a quiet NaN).
static inline __attribute__((always_inline))
kronos_f32x8 kronos_clamp8f(kronos_f32x8 x, kronos_f32x8 lo, kronos_f32x8 hi) {
    kronos_i32x8 up = x > lo;
    kronos_i32x8 a = (up & (kronos_i32x8)x) | (~up & (kronos_i32x8)lo);
    kronos_i32x8 down = (kronos_f32x8)a < hi;
    return (kronos_f32x8)((down & a) | (~down & (kronos_i32x8)hi));
}

#if defined(__x86_64__)
#include <immintrin.h>

// 1 when this processor (and the OS) run everything `-target-cpu haswell` lets the compiler emit
// (x86-64-v3: AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE, POPCNT): the engine built for it may run.
static inline int kronos_cpu_has_x86_64_v3(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")
        && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("lzcnt")
        && __builtin_cpu_supports("movbe") && __builtin_cpu_supports("popcnt");
}

// 1 when this processor (and the OS) run AVX-512 F / BW / VL with VNNI: the int8 kernels of the
// KronosVNNI module may be called. Everything below that names avx512vnni needs it.
static inline int kronos_cpu_has_avx512_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

// Lane i: acc[i] + a[4i]·b[4i] + ... + a[4i+3]·b[4i+3], a unsigned and b signed bytes, products and
// sums exact in 32 bits, wrapping (vpdpbusd; 32 byte products per instruction).
static inline __attribute__((always_inline, target("avx512vnni,avx512vl")))
kronos_i32x8 kronos_dpbusd(kronos_i32x8 acc, kronos_u8x32 a, kronos_i8x32 b) {
    return (kronos_i32x8)_mm256_dpbusd_epi32((__m256i)acc, (__m256i)a, (__m256i)b);
}

// kronos_dpbusd's sums without VNNI: pairs of products summed in 16 bits with saturation (vpmaddubsw),
// then pairs of those in 32 bits (vpmaddwd by 1). Equal to kronos_dpbusd where no pair
// a[2j]·b[2j] + a[2j+1]·b[2j+1] leaves the 16-bit range (the caller's operands see to it).
static inline __attribute__((always_inline, target("avx2")))
kronos_i32x8 kronos_maddubs_dot(kronos_i32x8 acc, kronos_u8x32 a, kronos_i8x32 b) {
    __m256i p = _mm256_maddubs_epi16((__m256i)a, (__m256i)b);
    return (kronos_i32x8)_mm256_add_epi32((__m256i)acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

// Byte i: a[i] where b[i] > 0, -a[i] where b[i] < 0, 0 where b[i] = 0 (vpsignb).
static inline __attribute__((always_inline, target("avx2")))
kronos_i8x32 kronos_sign8(kronos_i8x32 a, kronos_i8x32 b) {
    return (kronos_i8x32)_mm256_sign_epi8((__m256i)a, (__m256i)b);
}

// Byte i: |a[i]| as an unsigned byte (|-128| = 128) (vpabsb).
static inline __attribute__((always_inline, target("avx2")))
kronos_u8x32 kronos_abs8(kronos_i8x32 a) {
    return (kronos_u8x32)_mm256_abs_epi8((__m256i)a);
}

// Lane r (r < 4): the sum of lanes 0-3 of p_r; lane 4 + r: the sum of lanes 4-7 of p_r (exact,
// wrapping): 4 vectors that each hold two rows' partial sums -> the 8 rows' totals (3 vphaddd).
static inline __attribute__((always_inline, target("avx2")))
kronos_i32x8 kronos_sum4x2x4(kronos_i32x8 p0, kronos_i32x8 p1, kronos_i32x8 p2, kronos_i32x8 p3) {
    return (kronos_i32x8)_mm256_hadd_epi32(_mm256_hadd_epi32((__m256i)p0, (__m256i)p1), _mm256_hadd_epi32((__m256i)p2, (__m256i)p3));
}

// Lane r: the sum of the 8 lanes of p_r (exact, wrapping): 8 vectors of partial sums -> one vector
// of totals (6 vphaddd, 2 vperm2i128, 1 vpaddd).
static inline __attribute__((always_inline, target("avx2")))
kronos_i32x8 kronos_sum8x8(kronos_i32x8 p0, kronos_i32x8 p1, kronos_i32x8 p2, kronos_i32x8 p3,
                           kronos_i32x8 p4, kronos_i32x8 p5, kronos_i32x8 p6, kronos_i32x8 p7) {
    __m256i a = (__m256i)kronos_sum4x2x4(p0, p1, p2, p3), b = (__m256i)kronos_sum4x2x4(p4, p5, p6, p7);
    // a = [p0 p1 p2 p3 (lanes 0-3 sums) | p0 p1 p2 p3 (lanes 4-7 sums)], b likewise for p4...p7.
    return (kronos_i32x8)_mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

// The 16 bytes at a in the low half, the 16 at b in the high half (vinserti128).
static inline __attribute__((always_inline, target("avx2")))
kronos_u8x32 kronos_pair16(const void *a, const void *b) {
    return (kronos_u8x32)_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                                 _mm_loadu_si128((const __m128i *)b), 1);
}

// The 16 bytes at p in both halves (vbroadcasti128).
static inline __attribute__((always_inline, target("avx2")))
kronos_i8x32 kronos_broadcast16(const void *p) {
    return (kronos_i8x32)_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
}

// Byte i: the low / high nibble of v[i] (vpand; vpsrlw, vpand).
static inline __attribute__((always_inline, target("avx2")))
kronos_u8x32 kronos_low_nibbles(kronos_u8x32 v) {
    return (kronos_u8x32)_mm256_and_si256((__m256i)v, _mm256_set1_epi8(0x0F));
}
static inline __attribute__((always_inline, target("avx2")))
kronos_u8x32 kronos_high_nibbles(kronos_u8x32 v) {
    return (kronos_u8x32)_mm256_and_si256(_mm256_srli_epi16((__m256i)v, 4), _mm256_set1_epi8(0x0F));
}

// Lane i as a float (vcvtdq2ps: exact below 2^24).
static inline __attribute__((always_inline, target("avx2")))
kronos_f32x8 kronos_float8(kronos_i32x8 v) {
    return (kronos_f32x8)_mm256_cvtepi32_ps((__m256i)v);
}


// The int8 GEMM's tile at 512 bits (KronosWideVNNI.gemm): Y rows 0 ..< R (R <= 8 input rows, `ldy`
// apart), lanes 0 ..< count (<= 16) = the 16 weight rows of one repacked group (`group`, `blocks`
// 32-column blocks of 640 bytes: per block, quads j = 0 ..< 8 of 64 bytes (byte 4r + i: weight row r's
// code 4j + i, unsigned: q4 codes as they are, q8_0 codes + 128), then the 16 rows' scales d_w and
// their 16 minimums m_w as f32). Input row i: codes xcodes + i · columns, scales xd + i · nb, code
// sums xs + i · nb (nb = columns / 32). The arithmetic is the integer path's, lane by lane:
//   acc = 0; per block u: I = Σ c·q exactly (biased codes start from -128 · S, so I is Σ c·q);
//   acc = fma(float(I), d_w · d_x, acc); with minimums: acc = fma(m_w, d_x · float(S), acc);
//   y = acc + bias (0 without).
// R is a constant where this inlines (the loops over it unroll, the accumulators stay in registers).
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512vnni")))
void kronos_vnni512_tile(const int R, const unsigned char *group, long blocks, const signed char *xcodes,
                         long columns, const float *xd, const int *xs, int minimum, float *y, long ldy,
                         long count, const float *bias) {
    const long nb = columns / 32;
    __m512 f[8];
    for (int i = 0; i < R; i++) f[i] = _mm512_setzero_ps();
    for (long u = 0; u < blocks; u++) {
        const unsigned char *b = group + u * 640;
        __m512i acc[8];
        for (int i = 0; i < R; i++)
            acc[i] = minimum ? _mm512_setzero_si512() : _mm512_set1_epi32(-128 * xs[i * nb + u]);
        for (int j = 0; j < 8; j++) {
            __m512i w = _mm512_loadu_si512((const void *)(b + 64 * j));
            for (int i = 0; i < R; i++) {
                int quad;
                __builtin_memcpy(&quad, xcodes + i * columns + 32 * u + 4 * j, 4);
                acc[i] = _mm512_dpbusd_epi32(acc[i], w, _mm512_set1_epi32(quad));
            }
        }
        __m512 sw = _mm512_loadu_ps((const float *)(b + 512));
        for (int i = 0; i < R; i++)
            f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), _mm512_mul_ps(sw, _mm512_set1_ps(xd[i * nb + u])), f[i]);
        if (minimum) {
            __m512 mw = _mm512_loadu_ps((const float *)(b + 576));
            for (int i = 0; i < R; i++)
                f[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xd[i * nb + u] * (float)xs[i * nb + u]), f[i]);
        }
    }
    __mmask16 lanes = count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
    __m512 bv = bias ? _mm512_maskz_loadu_ps(lanes, bias) : _mm512_setzero_ps();
    for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(y + i * ldy, lanes, _mm512_add_ps(f[i], bv));
}

// Attention of a prefill in 512-bit registers (KronosWideVNNI, AVX512.attend): the same numbers as
// the engine's attendRows, bit for bit, for every (query, key) and (query, column).
//
// Scores of R (1...2) queries (query i: hd floats at q + i·qStride) against the 16 keys of one block
// of kt (kt + d·ldk: the 16 keys' values of dimension d), lane = key: per query, 8 partial sums a_j
// (j = 0 ..< 8) by fused multiply-add over d = 8m + j for d < 8·(hd / 8), in m order from 0; then
// ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)); then the tail's products added one by one (a
// multiply, then an add); times scale. Written to out + i·ld [16].
static inline __attribute__((always_inline, target("avx512f")))
void kronos_scores16(const int R, const float *q, long qStride, long hd, const float *kt, long ldk, float scale,
                     float *out, long ld) {
#pragma clang fp contract(off)
    __m512 a[2][8];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < 8; j++) a[i][j] = _mm512_setzero_ps();
    const long full = hd / 8 * 8;
    for (long m = 0; m < full; m += 8) {
        for (int j = 0; j < 8; j++) {
            __m512 k = _mm512_load_ps(kt + (m + j) * ldk);
            for (int i = 0; i < R; i++) a[i][j] = _mm512_fmadd_ps(_mm512_set1_ps(q[i * qStride + m + j]), k, a[i][j]);
        }
    }
    for (int i = 0; i < R; i++) {
        __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), _mm512_add_ps(a[i][2], a[i][3])),
                                 _mm512_add_ps(_mm512_add_ps(a[i][4], a[i][5]), _mm512_add_ps(a[i][6], a[i][7])));
        for (long d = full; d < hd; d++) {
            __m512 product = _mm512_mul_ps(_mm512_set1_ps(q[i * qStride + d]), _mm512_load_ps(kt + d * ldk));
            s = _mm512_add_ps(s, product);
        }
        _mm512_storeu_ps(out + i * ld, _mm512_mul_ps(s, _mm512_set1_ps(scale)));
    }
}

// 16 rows of hd values (row r at rows[r], f32, or f16 when half is 1) -> kt + d·ldk [16] for d < hd
// (kt: 64-byte aligned rows): the keys of one block transposed for kronos_scores16, 16 dimensions at
// a time through a 16 x 16 shuffle network. Values are moved or widened exactly (f16 -> f32).
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl")))
void kronos_transpose16(const void *const *rows, int half, long hd, float *kt, long ldk) {
    for (long d0 = 0; d0 < hd; d0 += 16) {
        long left = hd - d0;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 r[16], t[16];
        for (int i = 0; i < 16; i++)
            r[i] = half ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const unsigned short *)rows[i] + d0))
                        : _mm512_maskz_loadu_ps(m, (const float *)rows[i] + d0);
        // Pairs of rows interleaved, then quads, then the 128-bit lanes twice: r[i] lane j -> t[j] lane i.
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; i++) {
            t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
            t[i + 4] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
            t[i + 8] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
            t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
        }
        for (int i = 0; i < 4; i++) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0x88);
            r[i + 4] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 4], 0xDD);
            r[i + 12] = _mm512_shuffle_f32x4(t[i + 8], t[i + 12], 0xDD);
        }
        for (int j = 0; j < 16 && j < left; j++) _mm512_store_ps(kt + (d0 + j) * ldk, r[j]);
    }
}

// Weighted values of R (1...4) queries, lane = column: out_i[c] = Σ_p w_i[p] · v[p][c] by fused
// multiply-add in p order from 0, p < visible + i (query i sees one row more than the one before it),
// for columns c < hd (rows of v are ldv floats apart; w_i at w + i·ld), written to out + i·outStride.
static inline __attribute__((always_inline, target("avx512f")))
void kronos_values(const int R, const float *w, long ld, long visible, const float *v, long ldv, long hd,
                   float *out, long outStride) {
#pragma clang fp contract(off)
    for (long c = 0; c < hd; c += 64) {
        // 4 vectors of 16 columns, masked past hd (a masked-off lane is neither read nor written).
        __m512 acc[4][4];
        __mmask16 mask[4];
        for (int k = 0; k < 4; k++) {
            long left = hd - c - 16 * k;
            mask[k] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
        }
        for (int i = 0; i < R; i++)
            for (int k = 0; k < 4; k++) acc[i][k] = _mm512_setzero_ps();
        for (long p = 0; p < visible + R - 1; p++) {
            __m512 row[4];
            for (int k = 0; k < 4; k++) row[k] = _mm512_maskz_loadu_ps(mask[k], v + p * ldv + c + 16 * k);
            for (int i = 0; i < R; i++) {
                if (p >= visible + i) continue;
                __m512 weight = _mm512_set1_ps(w[i * ld + p]);
                for (int k = 0; k < 4; k++) acc[i][k] = _mm512_fmadd_ps(weight, row[k], acc[i][k]);
            }
        }
        for (int i = 0; i < R; i++)
            for (int k = 0; k < 4; k++) _mm512_mask_storeu_ps(out + i * outStride + c + 16 * k, mask[k], acc[i][k]);
    }
}

// A repacked block's codes (repackGroup's layout) from 16 rows' 32 codes (rows + 32r): quad j
// (j = 0 ..< 8) of row r to b + 64j + 4r. Two 8x8 transposes of 32-bit words (rows 0-7 to the first
// 32 bytes of each quad, rows 8-15 to the second) instead of 128 scattered 4-byte stores (AVX2.gemm's
// repack was 28 % of its time on Zen 3, measured).
static inline __attribute__((always_inline, target("avx2")))
void kronos_quads16(const unsigned char *rows, unsigned char *b) {
    for (int h = 0; h < 2; h++) {
        __m256i r[8], t[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_si256((const __m256i *)(rows + 32 * (8 * h + i)));
        // Words of rows i, i+1 interleaved: (w0 w1 | w4 w5) and (w2 w3 | w6 w7).
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
        }
        // Rows i ..< i+4 of word pairs (w0 | w4), (w1 | w5), (w2 | w6), (w3 | w7).
        for (int i = 0; i < 8; i += 4) {
            r[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
            r[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
            r[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
            r[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
        }
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_si256((__m256i *)(b + 64 * j + 32 * h), _mm256_permute2x128_si256(r[j], r[j + 4], 0x20));
            _mm256_storeu_si256((__m256i *)(b + 64 * (j + 4) + 32 * h),
                                _mm256_permute2x128_si256(r[j], r[j + 4], 0x31));
        }
    }
}

// The int8 GEMM's tile for AVX2 without VNNI (KronosWideAVX2.gemm): kronos_vnni512_tile's contract
// and arithmetic, bit for bit, on the same repacked group except that q8_0 codes are stored signed
// (repackGroup, biased: false), for one half of the group: its weight rows 8h ..< 8h + 8 (one ymm
// lane each; `count` of them are written) times R (1...4) input rows. vpdpbusd is emulated per
// 32-bit lane as vpmaddubsw (unsigned x signed bytes, pairs summed in 16 bits) + vpmaddwd by 1.
// Exact: a signed q8_0 code c enters as |c| <= 128 with the input's sign flipped where c < 0
// (vpsignb; pairs <= 2 · 128 · 127 = 32512 < 2^15); q4 codes are at most 15, so the 16-bit pairs of
// a whole block (8 quads: 16 products <= 16 · 15 · 127 = 30480 < 2^15) are summed in 16 bits before
// one vpmaddwd per block (integer sums: the order does not change them).
// Per 8 rows x R inputs the weights are loaded (and their |c| taken) once: with 16 rows x 1 input the
// group's loads and vpabsb were per input (measured 0.6x the speed on Zen 3), and a 40 KB group (2048
// columns) streamed from L2 for every input.
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_avx2_tile(const int R, const unsigned char *group, int h, long blocks, const signed char *xcodes,
                      long columns, const float *xd, const int *xs, int minimum, float *y, long ldy,
                      long count, const float *bias) {
#pragma clang fp contract(off)
    const long nb = columns / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[4];
    for (int i = 0; i < R; i++) f[i] = _mm256_setzero_ps();
    for (long u = 0; u < blocks; u++) {
        const unsigned char *b = group + u * 640 + 32 * h;
        const signed char *x = xcodes + 32 * u;
        __m256i acc[4];
        for (int i = 0; i < R; i++) acc[i] = _mm256_setzero_si256();
        if (minimum) {
            for (int j = 0; j < 8; j++) {
                __m256i w = _mm256_loadu_si256((const __m256i *)(b + 64 * j));
                for (int i = 0; i < R; i++) {
                    int quad;
                    __builtin_memcpy(&quad, x + i * columns + 4 * j, 4);
                    acc[i] = _mm256_add_epi16(acc[i], _mm256_maddubs_epi16(w, _mm256_set1_epi32(quad)));
                }
            }
            for (int i = 0; i < R; i++) acc[i] = _mm256_madd_epi16(acc[i], ones);
        } else {
            for (int j = 0; j < 8; j++) {
                __m256i w = _mm256_loadu_si256((const __m256i *)(b + 64 * j));
                __m256i a = _mm256_abs_epi8(w);
                for (int i = 0; i < R; i++) {
                    int quad;
                    __builtin_memcpy(&quad, x + i * columns + 4 * j, 4);
                    __m256i p = _mm256_maddubs_epi16(a, _mm256_sign_epi8(_mm256_set1_epi32(quad), w));
                    acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
                }
            }
        }
        __m256 sw = _mm256_loadu_ps((const float *)(b + 512));
        for (int i = 0; i < R; i++)
            f[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]), _mm256_mul_ps(sw, _mm256_set1_ps(xd[i * nb + u])), f[i]);
        if (minimum) {
            __m256 mw = _mm256_loadu_ps((const float *)(b + 576));
            for (int i = 0; i < R; i++)
                f[i] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xd[i * nb + u] * (float)xs[i * nb + u]), f[i]);
        }
    }
    // The bias as plain loads behind a branch: written as `bias ? bias[r] : 0` in one loop, the compiler
    // made it a vmaskmovps that, with no bias (a null pointer, every lane masked off), took a
    // fault-suppression assist on every tile (Zen 3: a fifth of the GEMM's time, measured).
    for (int i = 0; i < R; i++) {
        float *out = y + i * ldy;
        if (count == 8) {
            if (bias)
                _mm256_storeu_ps(out, _mm256_add_ps(f[i], _mm256_loadu_ps(bias)));
            else  // (+ 0 as the reference adds it: -0 comes out +0)
                _mm256_storeu_ps(out, _mm256_add_ps(f[i], _mm256_setzero_ps()));
        } else {
            float lanes[8];
            _mm256_storeu_ps(lanes, f[i]);
            if (bias)
                for (long r = 0; r < count; r++) out[r] = lanes[r] + bias[r];
            else
                for (long r = 0; r < count; r++) out[r] = lanes[r] + 0.0f;
        }
    }
}

// Attention of a prefill in 256-bit registers (KronosWideAVX2, AVX2.scores / transpose / values): for
// x86-64-v3 processors without AVX-512, the 512-bit kernels' contracts on the same transposed keys, and
// the same numbers as the engine's attendRows, bit for bit. The narrow path (attendRows) reads each key
// row per query block and adds each score's 8 lanes across a vector; with the keys transposed once per
// (sequence, head) the lanes are keys and no horizontal sums are left (Zen 3, base heads of 52: 28 % of
// the f32 peak before, see BENCHMARKS.md).
//
// Scores of R (1...2) queries against the 16 keys of one block of kt (kronos_scores16's contract and
// order): the 8 partial sums a_j (d = 8m + j) are built a pair of j at a time, so that 2 queries x 2 j
// x 2 halves of 16 keys fit the 16 registers; pair jp's sum goes into quarter jp / 2, first as itself,
// then added: quarters (a0 + a1) + (a2 + a3) and (a4 + a5) + (a6 + a7), then their sum, exactly
// ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)).
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_scores16_avx2(const int R, const float *q, long qStride, long hd, const float *kt, long ldk, float scale,
                          float *out, long ld) {
#pragma clang fp contract(off)
    const long full = hd / 8 * 8;
    __m256 quarter[2][2][2];  // [query][half of the sum][half of the keys]
    for (int jp = 0; jp < 4; jp++) {
        __m256 a[2][2][2];  // [query][j of the pair][half of the keys]
        for (int i = 0; i < R; i++)
            for (int j = 0; j < 2; j++) a[i][j][0] = a[i][j][1] = _mm256_setzero_ps();
        for (long m = 0; m < full; m += 8) {
            for (int j = 0; j < 2; j++) {
                const long d = m + 2 * jp + j;
                __m256 k0 = _mm256_load_ps(kt + d * ldk), k1 = _mm256_load_ps(kt + d * ldk + 8);
                for (int i = 0; i < R; i++) {
                    __m256 b = _mm256_broadcast_ss(q + i * qStride + d);
                    a[i][j][0] = _mm256_fmadd_ps(b, k0, a[i][j][0]);
                    a[i][j][1] = _mm256_fmadd_ps(b, k1, a[i][j][1]);
                }
            }
        }
        for (int i = 0; i < R; i++)
            for (int h = 0; h < 2; h++) {
                __m256 pair = _mm256_add_ps(a[i][0][h], a[i][1][h]);
                __m256 *sum = &quarter[i][jp / 2][h];
                *sum = jp % 2 == 0 ? pair : _mm256_add_ps(*sum, pair);
            }
    }
    for (int i = 0; i < R; i++)
        for (int h = 0; h < 2; h++) {
            __m256 s = _mm256_add_ps(quarter[i][0][h], quarter[i][1][h]);
            for (long d = full; d < hd; d++) {
                __m256 k = _mm256_load_ps(kt + d * ldk + 8 * h);
                s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_broadcast_ss(q + i * qStride + d), k));
            }
            _mm256_storeu_ps(out + i * ld + 8 * h, _mm256_mul_ps(s, _mm256_set1_ps(scale)));
        }
}

// 8 x 8 transpose of floats: r[i] lane j -> t[j] lane i (r is overwritten): pairs of rows interleaved,
// then quads, then the 128-bit halves.
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_transpose8x8_avx2(__m256 r[8], __m256 t[8]) {
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
}

// kronos_transpose16's contract in 256-bit registers: 16 rows of hd values (f32, or f16 when half is 1)
// -> kt + d·ldk [16] for d < hd (kt 32-byte aligned rows), 8 rows x 8 dimensions at a time through an
// 8 x 8 shuffle network; a last partial group of dimensions goes through a zeroed row copy.
static inline __attribute__((always_inline, target("avx2,fma,f16c")))
void kronos_transpose16_avx2(const void *const *rows, int half, long hd, float *kt, long ldk) {
    for (int g = 0; g < 2; g++)
        for (long d0 = 0; d0 < hd; d0 += 8) {
            const long left = hd - d0;
            __m256 r[8], t[8];
            for (int i = 0; i < 8; i++) {
                const void *row = rows[8 * g + i];
                if (left >= 8) {
                    r[i] = half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const unsigned short *)row + d0)))
                                : _mm256_loadu_ps((const float *)row + d0);
                } else {
                    unsigned short h16[8] = {0};
                    float f32[8] = {0};
                    if (half) {
                        __builtin_memcpy(h16, (const unsigned short *)row + d0, 2 * left);
                        r[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h16));
                    } else {
                        __builtin_memcpy(f32, (const float *)row + d0, 4 * left);
                        r[i] = _mm256_loadu_ps(f32);
                    }
                }
            }
            kronos_transpose8x8_avx2(r, t);
            for (int j = 0; j < 8 && j < left; j++) _mm256_store_ps(kt + (d0 + j) * ldk + 8 * g, t[j]);
        }
}

// Packing for the packed f32 GEMM. Six depth-contiguous rows (rows[i] + p, p < kc) -> panel [kc][6]:
// 8 depths at a time through an 8 x 8 transpose (two zero rows), each depth's 8 lanes stored at
// panel + 6p in ascending p (a store's last 2 lanes are overwritten by the next; the panel needs 2
// floats of room past its end).
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_pack6_avx2(const float *const *rows, long kc, float *panel) {
    long p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 r[8], t[8];
        for (int i = 0; i < 6; i++) r[i] = _mm256_loadu_ps(rows[i] + p);
        r[6] = r[7] = _mm256_setzero_ps();
        kronos_transpose8x8_avx2(r, t);
        for (int j = 0; j < 8; j++) _mm256_storeu_ps(panel + 6 * (p + j), t[j]);
    }
    for (; p < kc; p++)
        for (int i = 0; i < 6; i++) panel[6 * p + i] = rows[i][p];
}

// Row-contiguous operands (a Gram's transposed rows): for p < kc, `count` (≤ width, width 6 or 16)
// floats from src + p·stride -> panel + p·width, the lanes past count zero.
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_pack_columns_avx2(const float *src, long stride, long kc, int width, int count, float *panel) {
    if (count == width && width == 16) {
        for (long p = 0; p < kc; p++) {
            _mm256_store_ps(panel + 16 * p, _mm256_loadu_ps(src + p * stride));
            _mm256_store_ps(panel + 16 * p + 8, _mm256_loadu_ps(src + p * stride + 8));
        }
    } else if (count == width && width == 6) {
        for (long p = 0; p < kc; p++) {
            const float *s = src + p * stride;
            _mm_storeu_ps(panel + 6 * p, _mm_loadu_ps(s));
            panel[6 * p + 4] = s[4];
            panel[6 * p + 5] = s[5];
        }
    } else {
        for (long p = 0; p < kc; p++)
            for (int i = 0; i < width; i++) panel[width * p + i] = i < count ? src[p * stride + i] : 0.0f;
    }
}

// The register tile of the packed f32 GEMM (KronosWideEngine/PackedGemm.swift; calibration's passes,
// whose sums need not follow dot()'s order): C [6, 16] (row stride ldc) = start + Σ_p ap[p] ⊗ bp[p] for
// p < kc, each element summed by fused multiply-add in p order. ap: 6 values per p (a column of six rows
// of A); bp: 16 per p (a row of sixteen columns of B), 32-byte aligned; start: C itself when
// accumulate is 1, else the 16 values of init in every row (0 without init). 12 accumulators, 2 B
// vectors and one broadcast A value fill 15 of the 16 registers: 8 loads per 12 fused multiply-adds.
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_gemm6x16_avx2(long kc, const float *ap, const float *bp, float *c, long ldc, const float *init,
                          int accumulate) {
    __m256 c0[6], c1[6];
    if (accumulate) {
        for (int i = 0; i < 6; i++) {
            c0[i] = _mm256_loadu_ps(c + i * ldc);
            c1[i] = _mm256_loadu_ps(c + i * ldc + 8);
        }
    } else {
        const __m256 s0 = init ? _mm256_loadu_ps(init) : _mm256_setzero_ps();
        const __m256 s1 = init ? _mm256_loadu_ps(init + 8) : _mm256_setzero_ps();
        for (int i = 0; i < 6; i++) { c0[i] = s0; c1[i] = s1; }
    }
#pragma clang loop unroll_count(4)
    for (long p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(bp + 16 * p), b1 = _mm256_load_ps(bp + 16 * p + 8);
        for (int i = 0; i < 6; i++) {
            const __m256 a = _mm256_broadcast_ss(ap + 6 * p + i);
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
        }
    }
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(c + i * ldc, c0[i]);
        _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
    }
}

// kronos_values' contract in 256-bit registers, for NV (1...3) vectors of columns from c (the last
// one partial, lanes past hd neither read nor written by vmaskmovps, when PART is 1): R (1...4) queries
// x NV accumulators (12 of the 16 registers at most), each value row loaded once for all queries;
// out_i[c'] = Σ_p w_i[p] · v[p][c'] by fused multiply-add in p order from 0, p < visible + i.
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_values_avx2_columns(const int R, const int NV, const int PART, const float *w, long ld, long visible,
                                const float *v, long ldv, long c, long hd, float *out, long outStride) {
#pragma clang fp contract(off)
    __m256 acc[4][3];
    const long left = hd - c - 8 * (NV - 1);
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int i = 0; i < R; i++)
        for (int k = 0; k < NV; k++) acc[i][k] = _mm256_setzero_ps();
    for (long p = 0; p < visible + R - 1; p++) {
        __m256 row[3];
        const float *vp = v + p * ldv + c;
        for (int k = 0; k < NV; k++)
            row[k] = PART && k == NV - 1 ? _mm256_maskload_ps(vp + 8 * k, mask) : _mm256_loadu_ps(vp + 8 * k);
        for (int i = 0; i < R; i++) {
            if (p >= visible + i) continue;
            __m256 weight = _mm256_broadcast_ss(w + i * ld + p);
            for (int k = 0; k < NV; k++) acc[i][k] = _mm256_fmadd_ps(weight, row[k], acc[i][k]);
        }
    }
    for (int i = 0; i < R; i++)
        for (int k = 0; k < NV; k++) {
            float *o = out + i * outStride + c + 8 * k;
            if (PART && k == NV - 1) _mm256_maskstore_ps(o, mask, acc[i][k]);
            else _mm256_storeu_ps(o, acc[i][k]);
        }
}

// All hd columns, 24 at a time (kronos_values_avx2_columns).
static inline __attribute__((always_inline, target("avx2,fma")))
void kronos_values_avx2(const int R, const float *w, long ld, long visible, const float *v, long ldv, long hd,
                        float *out, long outStride) {
#define KRONOS_VALUES_COLUMNS(NV, PART) \
    kronos_values_avx2_columns(R, NV, PART, w, ld, visible, v, ldv, c, hd, out, outStride)
    for (long c = 0; c < hd; c += 24) {
        const long columns = hd - c < 24 ? hd - c : 24, vectors = (columns + 7) / 8;
        const int part = columns % 8 != 0;
        if (vectors == 3) { if (part) KRONOS_VALUES_COLUMNS(3, 1); else KRONOS_VALUES_COLUMNS(3, 0); }
        else if (vectors == 2) { if (part) KRONOS_VALUES_COLUMNS(2, 1); else KRONOS_VALUES_COLUMNS(2, 0); }
        else { if (part) KRONOS_VALUES_COLUMNS(1, 1); else KRONOS_VALUES_COLUMNS(1, 0); }
    }
#undef KRONOS_VALUES_COLUMNS
}

// Peak loops (kronos-bench peak): `rounds` rounds of 12 independent chains of one instruction, enough
// to hide its latency on current cores (and few enough for the 16 vector registers of AVX2), so the
// time measures throughput alone. Each returns a value derived from every chain, so the work cannot
// be dropped; the operands come from `seed` at run time, so nothing folds at compile time. Per round:
//   kronos_peak_dpbusd512: 12 · 64 int8 multiply-adds (vpdpbusd zmm);
//   kronos_peak_dpbusd256: 12 · 32 (vpdpbusd ymm, the width of the int8 kernels);
//   kronos_peak_maddubs256: 12 · 32 (vpmaddubsw + vpmaddwd + vpaddd ymm: AVX2 without VNNI; the
//     chain feeds its own bytes back, or the compiler would hoist the invariant products);
//   kronos_peak_fma512 / kronos_peak_fma256: 12 · 16 / 12 · 8 f32 fused multiply-adds.
#define KRONOS_PEAK_CHAINS(T, zero, step, fold)                                                          \
    T a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero;                                \
    T a6 = zero, a7 = zero, a8 = zero, a9 = zero, a10 = zero, a11 = zero;                              \
    for (long r = 0; r < rounds; r++) {                                                                \
        a0 = step(a0); a1 = step(a1); a2 = step(a2); a3 = step(a3); a4 = step(a4); a5 = step(a5);      \
        a6 = step(a6); a7 = step(a7); a8 = step(a8); a9 = step(a9); a10 = step(a10); a11 = step(a11);  \
    }                                                                                                  \
    T all = fold(fold(fold(a0, a1), fold(a2, a3)), fold(fold(fold(a4, a5), fold(a6, a7)),             \
                 fold(fold(a8, a9), fold(a10, a11))));

static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vnni")))
int kronos_peak_dpbusd512(long rounds, int seed) {
    __m512i u = _mm512_set1_epi32(seed | 0x01010101), s = _mm512_set1_epi32(seed ^ 0x02030405);
#define STEP(a) _mm512_dpbusd_epi32(a, u, s)
    KRONOS_PEAK_CHAINS(__m512i, _mm512_setzero_si512(), STEP, _mm512_add_epi32)
#undef STEP
    return _mm512_reduce_add_epi32(all);
}

static inline __attribute__((always_inline, target("avx512vnni,avx512vl,avx2")))
int kronos_peak_dpbusd256(long rounds, int seed) {
    __m256i u = _mm256_set1_epi32(seed | 0x01010101), s = _mm256_set1_epi32(seed ^ 0x02030405);
#define STEP(a) _mm256_dpbusd_epi32(a, u, s)
    KRONOS_PEAK_CHAINS(__m256i, _mm256_setzero_si256(), STEP, _mm256_add_epi32)
#undef STEP
    return _mm256_extract_epi32(all, 0) + _mm256_extract_epi32(all, 7);
}

static inline __attribute__((always_inline, target("avx2")))
int kronos_peak_maddubs256(long rounds, int seed) {
    __m256i u = _mm256_set1_epi32(seed | 0x01010101), ones = _mm256_set1_epi16(1);
#define STEP(a) _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), ones))
    KRONOS_PEAK_CHAINS(__m256i, _mm256_set1_epi32(seed ^ 0x02030405), STEP, _mm256_add_epi32)
#undef STEP
    return _mm256_extract_epi32(all, 0) + _mm256_extract_epi32(all, 7);
}

static inline __attribute__((always_inline, target("avx512f")))
float kronos_peak_fma512(long rounds, float seed) {
    __m512 m = _mm512_set1_ps(1.0f - 1e-7f * seed), c = _mm512_set1_ps(1e-7f * seed);
#define STEP(a) _mm512_fmadd_ps(a, m, c)
    KRONOS_PEAK_CHAINS(__m512, _mm512_set1_ps(seed), STEP, _mm512_add_ps)
#undef STEP
    return _mm512_reduce_add_ps(all);
}

static inline __attribute__((always_inline, target("avx2,fma")))
float kronos_peak_fma256(long rounds, float seed) {
    __m256 m = _mm256_set1_ps(1.0f - 1e-7f * seed), c = _mm256_set1_ps(1e-7f * seed);
#define STEP(a) _mm256_fmadd_ps(a, m, c)
    KRONOS_PEAK_CHAINS(__m256, _mm256_set1_ps(seed), STEP, _mm256_add_ps)
#undef STEP
    float lanes[8];
    _mm256_storeu_ps(lanes, all);
    return lanes[0] + lanes[7];
}
#undef KRONOS_PEAK_CHAINS

#else
static inline int kronos_cpu_has_avx512_vnni(void) { return 0; }
static inline int kronos_cpu_has_x86_64_v3(void) { return 0; }
#endif

// kronos_sum4x8f: with AVX2 in the including code's target (the engine built for x86-64-v3), vhaddps;
// else (the baseline engine, other processors) the same sums in the same order in plain C.
#if defined(__x86_64__) && defined(__AVX2__)
// Lane r: the sum of the 8 lanes of p_r in the order ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
// (4 vhaddps, then the two halves added): 4 vectors of partial sums -> their 4 totals.
static inline __attribute__((always_inline, target("avx2")))
kronos_f32x4 kronos_sum4x8f(kronos_f32x8 p0, kronos_f32x8 p1, kronos_f32x8 p2, kronos_f32x8 p3) {
    __m256 a = _mm256_hadd_ps(_mm256_hadd_ps((__m256)p0, (__m256)p1), _mm256_hadd_ps((__m256)p2, (__m256)p3));
    return (kronos_f32x4)_mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
}
#else
// kronos_sum4x8f's sums in the same order, for other processors.
static inline __attribute__((always_inline))
kronos_f32x4 kronos_sum4x8f(kronos_f32x8 p0, kronos_f32x8 p1, kronos_f32x8 p2, kronos_f32x8 p3) {
    kronos_f32x8 p[4] = {p0, p1, p2, p3};
    kronos_f32x4 r;
    for (int i = 0; i < 4; i++) r[i] = ((p[i][0] + p[i][1]) + (p[i][2] + p[i][3])) + ((p[i][4] + p[i][5]) + (p[i][6] + p[i][7]));
    return r;
}
#endif

#endif
