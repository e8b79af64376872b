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
