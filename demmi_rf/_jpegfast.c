/* The pixels of a baseline JPEG round trip (encode at quality q, decode) without the entropy coding: the jpeg
 * atom's optional compiled path (degradations/jpeg.py). The decoded pixels depend only on the lossy stages, so
 * this computes exactly those of libjpeg-turbo with its defaults (the library OpenCV and Pillow ship):
 *
 *   encoder: RGB -> YCbCr (JFIF, 16-bit fixed point, jccolor), 4:2:0 chroma by 2x2 sums with the alternating
 *            bias 1, 2 (jcsample h2v2), edges replicated (right edge at full resolution, bottom edge to an even
 *            row count, then each plane's rows to whole blocks), 8x8 integer forward DCT "islow" (Loeffler-
 *            Ligtenberg-Moschytz, CONST_BITS 13, PASS1_BITS 2; jfdctint), quantisation by the IJG tables scaled to
 *            q, rounded half away from zero (jcdctmgr: its 16-bit reciprocal equals the division for every input);
 *   decoder: dequantisation, integer inverse DCT "islow" (jidctint) with the post-IDCT range-limit table
 *            (clamp(v + 128) for v in [-512, 511], periodic with period 1024 beyond), "fancy" (triangular) h2v2
 *            chroma upsampling (jdsample: 3/4-1/4 weights, biases 8 and 7, edges replicated), YCbCr -> RGB
 *            (jdcolor, 16-bit fixed point).
 *
 * A gray image is one luminance plane (a one-component JPEG). Integer arithmetic only: the same bytes on every
 * machine and path. Two block coders and two sets of row loops: portable C, and AVX2 intrinsics (x86-64 with GCC
 * or Clang, chosen at run time when the CPU has AVX2: 8 int32 lanes per DCT pass with 8x8 transposes, libjpeg-
 * turbo's reciprocal quantiser, byte shuffles for the RGB (de)interleaving). jpeg.py uses this module only where
 * the AVX2 path runs (the portable one is slower than OpenCV's codec) and after a once-per-process probe shows it
 * gives OpenCV's bytes; the tests compare both paths with OpenCV on hundreds of images of every size class and
 * quality (tests/test_jpeg_kernel.py), and tests/jpeg_reference.py states the same computation in numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const int LUMA[64] = {16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
                             14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
                             18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
                             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
static const int CHROMA[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                               24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                               99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                               99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

/* jpeg_set_quality with force_baseline: the basic table scaled by 5000/q (q < 50) or 200 - 2q, rounded, in [1, 255] */
static void quality_table(const int *basic, int q, int32_t *out) {
    const long scale = q < 50 ? 5000L / q : 200L - 2L * q;
    for (int i = 0; i < 64; i++) {
        long t = (basic[i] * scale + 50L) / 100L;
        out[i] = (int32_t)(t < 1 ? 1 : (t > 255 ? 255 : t));
    }
}

#define C0298 2446
#define C0390 3196
#define C0541 4433
#define C0765 6270
#define C0899 7373
#define C1175 9633
#define C1501 12299
#define C1847 15137
#define C1961 16069
#define C2053 16819
#define C2562 20995
#define C3072 25172

/* one 8-point islow forward DCT on d[0..7] (stride s); pass 1 scales the even outputs by 4 and descales the odd
 * ones by 2^11, pass 2 descales the even ones by 4 and the odd ones by 2^15 */
static inline void fdct8(int32_t *d, int s, int pass1) {
    const int32_t t0 = d[0] + d[7 * s], t7 = d[0] - d[7 * s], t1 = d[s] + d[6 * s], t6 = d[s] - d[6 * s];
    const int32_t t2 = d[2 * s] + d[5 * s], t5 = d[2 * s] - d[5 * s], t3 = d[3 * s] + d[4 * s];
    const int32_t t4 = d[3 * s] - d[4 * s];
    const int32_t t10 = t0 + t3, t13 = t0 - t3, t11 = t1 + t2, t12 = t1 - t2;
    const int n = pass1 ? 11 : 15;
    const int32_t r = 1 << (n - 1);
    if (pass1) {
        d[0] = (t10 + t11) * 4;
        d[4 * s] = (t10 - t11) * 4;
    } else {
        d[0] = (t10 + t11 + 2) >> 2;
        d[4 * s] = (t10 - t11 + 2) >> 2;
    }
    int32_t z1 = (t12 + t13) * C0541;
    d[2 * s] = (z1 + t13 * C0765 + r) >> n;
    d[6 * s] = (z1 - t12 * C1847 + r) >> n;
    z1 = t4 + t7;
    int32_t z2 = t5 + t6, z3 = t4 + t6, z4 = t5 + t7;
    const int32_t z5 = (z3 + z4) * C1175;
    const int32_t u4 = t4 * C0298, u5 = t5 * C2053, u6 = t6 * C3072, u7 = t7 * C1501;
    z1 *= -C0899;
    z2 *= -C2562;
    z3 = z3 * -C1961 + z5;
    z4 = z4 * -C0390 + z5;
    d[7 * s] = (u4 + z1 + z3 + r) >> n;
    d[5 * s] = (u5 + z2 + z4 + r) >> n;
    d[3 * s] = (u6 + z2 + z3 + r) >> n;
    d[s] = (u7 + z1 + z4 + r) >> n;
}

/* one 8-point islow inverse DCT on d[0..7] (stride s): pass 1 descales by 2^11, pass 2 by 2^18 */
static inline void idct8(int32_t *d, int s, int pass1) {
    int32_t z2 = d[2 * s], z3 = d[6 * s];
    int32_t z1 = (z2 + z3) * C0541;
    const int32_t e2 = z1 - z3 * C1847, e3 = z1 + z2 * C0765;
    const int32_t e0 = (d[0] + d[4 * s]) * 8192, e1 = (d[0] - d[4 * s]) * 8192;
    const int32_t t10 = e0 + e3, t13 = e0 - e3, t11 = e1 + e2, t12 = e1 - e2;
    int32_t o0 = d[7 * s], o1 = d[5 * s], o2 = d[3 * s], o3 = d[s];
    z1 = o0 + o3;
    z2 = o1 + o2;
    z3 = o0 + o2;
    int32_t z4 = o1 + o3;
    const int32_t z5 = (z3 + z4) * C1175;
    o0 *= C0298;
    o1 *= C2053;
    o2 *= C3072;
    o3 *= C1501;
    z1 *= -C0899;
    z2 *= -C2562;
    z3 = z3 * -C1961 + z5;
    z4 = z4 * -C0390 + z5;
    o0 += z1 + z3;
    o1 += z2 + z4;
    o2 += z2 + z3;
    o3 += z1 + z4;
    const int n = pass1 ? 11 : 18;
    const int32_t r = 1 << (n - 1);
    d[0] = (t10 + o3 + r) >> n;
    d[7 * s] = (t10 - o3 + r) >> n;
    d[s] = (t11 + o2 + r) >> n;
    d[6 * s] = (t11 - o2 + r) >> n;
    d[2 * s] = (t12 + o1 + r) >> n;
    d[5 * s] = (t12 - o1 + r) >> n;
    d[3 * s] = (t13 + o0 + r) >> n;
    d[4 * s] = (t13 - o0 + r) >> n;
}

/* the post-IDCT range limit: clamp(v + 128, 0, 255) for v in [-512, 511], periodic with period 1024 */
static inline uint8_t range_limit(int32_t v) {
    const int32_t i = v & 1023;
    return (uint8_t)(i < 128 ? i + 128 : (i < 512 ? 255 : (i < 896 ? 0 : i - 896)));
}

/* encode and decode every 8x8 block of a plane (rows and columns multiples of 8) in place */
static void code_plane(uint8_t *p, Py_ssize_t rows, Py_ssize_t cols, const int32_t *q) {
    int32_t half[64], div[64];
    for (int i = 0; i < 64; i++) {
        div[i] = q[i] * 8;
        half[i] = div[i] / 2;
    }
    int32_t b[64];
    for (Py_ssize_t by = 0; by < rows; by += 8) {
        for (Py_ssize_t bx = 0; bx < cols; bx += 8) {
            uint8_t *blk = p + by * cols + bx;
            for (int r = 0; r < 8; r++) {
                for (int k = 0; k < 8; k++) {
                    b[r * 8 + k] = (int32_t)blk[r * cols + k] - 128;
                }
            }
            for (int r = 0; r < 8; r++) fdct8(b + r * 8, 1, 1);
            for (int k = 0; k < 8; k++) fdct8(b + k, 8, 0);
            for (int i = 0; i < 64; i++) {
                const int32_t t = b[i];
                const int32_t a = t < 0 ? -t : t;
                const int32_t v = (a + half[i]) / div[i];
                b[i] = (t < 0 ? -v : v) * q[i];
            }
            for (int k = 0; k < 8; k++) idct8(b + k, 8, 1);
            for (int r = 0; r < 8; r++) idct8(b + r * 8, 1, 0);
            for (int r = 0; r < 8; r++) {
                for (int k = 0; k < 8; k++) {
                    blk[r * cols + k] = range_limit(b[r * 8 + k]);
                }
            }
        }
    }
}

/* ---- the same block coding with AVX2 (x86-64 with GCC or Clang; chosen at run time when the CPU has AVX2) ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JPEG_HAVE_AVX2 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2")))

/* 8 vectors of 8 int32: rows in, columns out */
static inline AVX2 void transpose8(__m256i *r) {
    const __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

#define VADD _mm256_add_epi32
#define VSUB _mm256_sub_epi32
#define VMUL(a, c) _mm256_mullo_epi32((a), _mm256_set1_epi32(c))
#define VSRA(a, n) _mm256_srai_epi32((a), (n))
#define VRND(a, n) VSRA(VADD((a), _mm256_set1_epi32(1 << ((n) - 1))), (n))

/* fdct8 on 8 vectors (element j of the transform in d[j], one transform per lane) */
#define FDCT8_V(d, PASS1)                                                                                         \
    do {                                                                                                          \
        const int n_ = (PASS1) ? 11 : 15;                                                                         \
        const __m256i t0 = VADD(d[0], d[7]), t7 = VSUB(d[0], d[7]), t1 = VADD(d[1], d[6]), t6 = VSUB(d[1], d[6]); \
        const __m256i t2 = VADD(d[2], d[5]), t5 = VSUB(d[2], d[5]), t3 = VADD(d[3], d[4]), t4 = VSUB(d[3], d[4]); \
        const __m256i t10 = VADD(t0, t3), t13 = VSUB(t0, t3), t11 = VADD(t1, t2), t12 = VSUB(t1, t2);             \
        if (PASS1) {                                                                                              \
            d[0] = _mm256_slli_epi32(VADD(t10, t11), 2);                                                          \
            d[4] = _mm256_slli_epi32(VSUB(t10, t11), 2);                                                          \
        } else {                                                                                                  \
            d[0] = VRND(VADD(t10, t11), 2);                                                                       \
            d[4] = VRND(VSUB(t10, t11), 2);                                                                       \
        }                                                                                                         \
        __m256i z1 = VMUL(VADD(t12, t13), C0541);                                                                 \
        d[2] = VRND(VADD(z1, VMUL(t13, C0765)), n_);                                                              \
        d[6] = VRND(VSUB(z1, VMUL(t12, C1847)), n_);                                                              \
        z1 = VADD(t4, t7);                                                                                        \
        __m256i z2 = VADD(t5, t6), z3 = VADD(t4, t6), z4 = VADD(t5, t7);                                          \
        const __m256i z5 = VMUL(VADD(z3, z4), C1175);                                                             \
        const __m256i u4 = VMUL(t4, C0298), u5 = VMUL(t5, C2053), u6 = VMUL(t6, C3072), u7 = VMUL(t7, C1501);     \
        z1 = VMUL(z1, -C0899);                                                                                    \
        z2 = VMUL(z2, -C2562);                                                                                    \
        z3 = VADD(VMUL(z3, -C1961), z5);                                                                          \
        z4 = VADD(VMUL(z4, -C0390), z5);                                                                          \
        d[7] = VRND(VADD(VADD(u4, z1), z3), n_);                                                                  \
        d[5] = VRND(VADD(VADD(u5, z2), z4), n_);                                                                  \
        d[3] = VRND(VADD(VADD(u6, z2), z3), n_);                                                                  \
        d[1] = VRND(VADD(VADD(u7, z1), z4), n_);                                                                  \
    } while (0)

/* idct8 on 8 vectors */
#define IDCT8_V(d, PASS1)                                                                                         \
    do {                                                                                                          \
        const int n_ = (PASS1) ? 11 : 18;                                                                         \
        __m256i z1 = VMUL(VADD(d[2], d[6]), C0541);                                                               \
        const __m256i e2 = VSUB(z1, VMUL(d[6], C1847)), e3 = VADD(z1, VMUL(d[2], C0765));                         \
        const __m256i e0 = _mm256_slli_epi32(VADD(d[0], d[4]), 13), e1 = _mm256_slli_epi32(VSUB(d[0], d[4]), 13); \
        const __m256i t10 = VADD(e0, e3), t13 = VSUB(e0, e3), t11 = VADD(e1, e2), t12 = VSUB(e1, e2);             \
        __m256i o0 = d[7], o1 = d[5], o2 = d[3], o3 = d[1];                                                       \
        z1 = VADD(o0, o3);                                                                                        \
        __m256i z2 = VADD(o1, o2), z3 = VADD(o0, o2), z4 = VADD(o1, o3);                                          \
        const __m256i z5 = VMUL(VADD(z3, z4), C1175);                                                             \
        o0 = VMUL(o0, C0298);                                                                                     \
        o1 = VMUL(o1, C2053);                                                                                     \
        o2 = VMUL(o2, C3072);                                                                                     \
        o3 = VMUL(o3, C1501);                                                                                     \
        z1 = VMUL(z1, -C0899);                                                                                    \
        z2 = VMUL(z2, -C2562);                                                                                    \
        z3 = VADD(VMUL(z3, -C1961), z5);                                                                          \
        z4 = VADD(VMUL(z4, -C0390), z5);                                                                          \
        o0 = VADD(o0, VADD(z1, z3));                                                                              \
        o1 = VADD(o1, VADD(z2, z4));                                                                              \
        o2 = VADD(o2, VADD(z2, z3));                                                                              \
        o3 = VADD(o3, VADD(z1, z4));                                                                              \
        d[0] = VRND(VADD(t10, o3), n_);                                                                           \
        d[7] = VRND(VSUB(t10, o3), n_);                                                                           \
        d[1] = VRND(VADD(t11, o2), n_);                                                                           \
        d[6] = VRND(VSUB(t11, o2), n_);                                                                           \
        d[2] = VRND(VADD(t12, o1), n_);                                                                           \
        d[5] = VRND(VSUB(t12, o1), n_);                                                                           \
        d[3] = VRND(VADD(t13, o0), n_);                                                                           \
        d[4] = VRND(VSUB(t13, o0), n_);                                                                           \
    } while (0)

/* the quantiser of one table position as libjpeg-turbo's 16-bit reciprocal (jcdctmgr compute_reciprocal):
 * (|t| + c) * f >> s equals (|t| + d/2) / d for every |t| < 2^15 (checked for every d = 8q in the tests) */
static void reciprocal(int32_t d, int32_t *f, int32_t *c, int32_t *s) {
    int b = 0;
    while ((d >> (b + 1)) != 0) b++;
    int r = 16 + b;
    uint32_t fq = (uint32_t)((1u << r) / (uint32_t)d), fr = (uint32_t)((1u << r) % (uint32_t)d);
    int32_t cc = d / 2;
    if (fr == 0) {
        fq >>= 1;
        r--;
    } else if (fr <= (uint32_t)d / 2u) {
        cc++;
    } else {
        fq++;
    }
    *f = (int32_t)fq;
    *c = cc;
    *s = r;
}

static AVX2 void code_plane_avx2(uint8_t *p, Py_ssize_t rows, Py_ssize_t cols, const int32_t *q) {
    int32_t f[64], c[64], sh[64];
    for (int i = 0; i < 64; i++) reciprocal(q[i] * 8, &f[i], &c[i], &sh[i]);
    __m256i vf[8], vc[8], vs[8], vq[8];
    for (int v = 0; v < 8; v++) {
        vf[v] = _mm256_loadu_si256((const __m256i *)(f + 8 * v));
        vc[v] = _mm256_loadu_si256((const __m256i *)(c + 8 * v));
        vs[v] = _mm256_loadu_si256((const __m256i *)(sh + 8 * v));
        vq[v] = _mm256_loadu_si256((const __m256i *)(q + 8 * v));
    }
    const __m256i k128 = _mm256_set1_epi32(128), k255 = _mm256_set1_epi32(255), k1023 = _mm256_set1_epi32(1023);
    const __m256i k512 = _mm256_set1_epi32(512), k896 = _mm256_set1_epi32(896);
    __m256i d[8];
    for (Py_ssize_t by = 0; by < rows; by += 8) {
        for (Py_ssize_t bx = 0; bx < cols; bx += 8) {
            uint8_t *blk = p + by * cols + bx;
            for (int r = 0; r < 8; r++) {
                d[r] = VSUB(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(blk + r * cols))), k128);
            }
            transpose8(d); /* d[k]: column k, lanes = rows */
            FDCT8_V(d, 1);  /* d[u]: the rows' frequency u, lanes = rows */
            transpose8(d); /* d[r]: row r, lanes = frequencies u */
            FDCT8_V(d, 0);  /* d[v]: coefficient row v, lanes u */
            for (int v = 0; v < 8; v++) {
                const __m256i a = _mm256_abs_epi32(d[v]);
                const __m256i prod = _mm256_mullo_epi32(VADD(a, vc[v]), vf[v]);
                const __m256i qv = _mm256_sign_epi32(_mm256_srlv_epi32(prod, vs[v]), d[v]);
                d[v] = _mm256_mullo_epi32(qv, vq[v]);
            }
            IDCT8_V(d, 1);  /* d[r]: row r of the first pass, lanes u */
            transpose8(d); /* d[u], lanes r */
            IDCT8_V(d, 0);  /* d[k]: column k, lanes r */
            transpose8(d); /* d[r], lanes k */
            for (int r = 0; r < 8; r++) {
                const __m256i i = _mm256_and_si256(d[r], k1023);
                __m256i o = VSUB(i, k896);
                o = _mm256_andnot_si256(_mm256_cmpgt_epi32(k896, i), o);                 /* [512, 896): 0 */
                o = _mm256_blendv_epi8(o, k255, _mm256_cmpgt_epi32(k512, i));             /* [128, 512): 255 */
                o = _mm256_blendv_epi8(o, VADD(i, k128), _mm256_cmpgt_epi32(k128, i));    /* [0, 128): i + 128 */
                const __m256i w16 = _mm256_packus_epi32(o, o);
                const __m256i b8 = _mm256_packus_epi16(w16, w16);
                const __m128i row = _mm_unpacklo_epi32(_mm256_castsi256_si128(b8), _mm256_extracti128_si256(b8, 1));
                _mm_storel_epi64((__m128i *)(blk + r * cols), row);
            }
        }
    }
}
#endif

typedef void (*plane_coder)(uint8_t *, Py_ssize_t, Py_ssize_t, const int32_t *);

/* the block coder this machine runs: AVX2 when the CPU has it (path 0 = automatic, 1 = portable C, 2 = AVX2) */
static plane_coder choose_coder(int path) {
#ifdef JPEG_HAVE_AVX2
    if (path == 2 || (path == 0 && __builtin_cpu_supports("avx2"))) return code_plane_avx2;
#endif
    return path == 2 ? NULL : code_plane;
}

static inline Py_ssize_t round8(Py_ssize_t n) { return (n + 7) / 8 * 8; }

/* the gray round trip: one plane, rows and columns replicated to whole blocks */
static int gray(const uint8_t *src, uint8_t *dst, Py_ssize_t h, Py_ssize_t w, int quality, plane_coder code) {
    const Py_ssize_t hp = round8(h), wp = round8(w);
    uint8_t *p = (uint8_t *)malloc((size_t)(hp * wp));
    if (p == NULL) return -1;
    for (Py_ssize_t y = 0; y < hp; y++) {
        const uint8_t *s = src + (y < h ? y : h - 1) * w;
        uint8_t *o = p + y * wp;
        memcpy(o, s, (size_t)w);
        memset(o + w, s[w - 1], (size_t)(wp - w));
    }
    int32_t q[64];
    quality_table(LUMA, quality, q);
    code(p, hp, wp, q);
    for (Py_ssize_t y = 0; y < h; y++) memcpy(dst + y * w, p + y * wp, (size_t)w);
    free(p);
    return 0;
}

/* The colour conversions' constants, FIX(c) = round(c * 2^16) (jccolor, jdcolor), and their rounding terms */
#define Y_R 19595   /* 0.29900 */
#define Y_G 38470   /* 0.58700 */
#define Y_B 7471    /* 0.11400 */
#define CB_R (-11059) /* -0.16874 */
#define CB_G (-21709) /* -0.33126 */
#define CR_G (-27439) /* -0.41869 */
#define CR_B (-5329) /* -0.08131 */
#define ONE_HALF 32768 /* 0.5: the rounding term, and Cb's B weight and Cr's R weight */
#define CBCR_ROUND ((128 << 16) + 32767) /* the chroma offset 128 and ONE_HALF - 1 */
#define R_CR 91881  /* 1.40200 */
#define G_CB (-22554) /* -0.34414 */
#define G_CR (-46802) /* -0.71414 */
#define B_CB 116130 /* 1.77200 */

/* The row loops of the colour round trip in portable C (the AVX2 versions follow). */

/* RGB -> Y (uint8), Cb, Cr (int16) on one row of n pixels (jccolor: 16-bit fixed point, Y rounded half up,
 * chroma rounded with ONE_HALF - 1 and offset by 128) */
static void rgb_row(const uint8_t *s, Py_ssize_t n, uint8_t *yo, int16_t *cb, int16_t *cr) {
    for (Py_ssize_t x = 0; x < n; x++) {
        const int32_t r = s[3 * x], g = s[3 * x + 1], b = s[3 * x + 2];
        yo[x] = (uint8_t)((Y_R * r + Y_G * g + Y_B * b + ONE_HALF) >> 16);
        cb[x] = (int16_t)((CB_R * r + CB_G * g + ONE_HALF * b + CBCR_ROUND) >> 16);
        cr[x] = (int16_t)((ONE_HALF * r + CR_G * g + CR_B * b + CBCR_ROUND) >> 16);
    }
}

/* h2v2 downsampling of two rows (2n samples each): (a + b + c + d + bias) >> 2, bias 1, 2, 1, 2, ... */
static void down_row(const int16_t *a0, const int16_t *a1, Py_ssize_t n, uint8_t *o) {
    for (Py_ssize_t x = 0; x < n; x++) {
        o[x] = (uint8_t)((a0[2 * x] + a0[2 * x + 1] + a1[2 * x] + a1[2 * x + 1] + 1 + (int32_t)(x & 1)) >> 2);
    }
}

/* fancy h2v2 upsampling of one output row: column sums cs = 3 * near + far (jdsample h2v2_fancy_upsample), then
 * out[2x] = (3 cs[x] + cs[x-1] + 8) >> 4 and out[2x+1] = (3 cs[x] + cs[x+1] + 7) >> 4, edges replicated; n >= 2 */
static void fancy_row(const uint8_t *near_, const uint8_t *far_, Py_ssize_t n, int16_t *cs, int16_t *o) {
    for (Py_ssize_t x = 0; x < n; x++) cs[x] = (int16_t)(3 * near_[x] + far_[x]);
    o[0] = (int16_t)((4 * cs[0] + 8) >> 4);
    for (Py_ssize_t x = 1; x < n; x++) o[2 * x] = (int16_t)((3 * cs[x] + cs[x - 1] + 8) >> 4);
    for (Py_ssize_t x = 0; x < n - 1; x++) o[2 * x + 1] = (int16_t)((3 * cs[x] + cs[x + 1] + 7) >> 4);
    o[2 * n - 1] = (int16_t)((4 * cs[n - 1] + 7) >> 4);
}

/* YCbCr -> RGB on one row of n pixels (jdcolor: R = Y + Cr_r, G = Y + (Cb_g + Cr_g) >> 16, B = Y + Cb_b, clamped) */
static void ycc_row(const uint8_t *yr, const int16_t *cb, const int16_t *cr, Py_ssize_t n, uint8_t *o) {
    for (Py_ssize_t x = 0; x < n; x++) {
        const int32_t yy = yr[x], b = cb[x] - 128, r = cr[x] - 128;
        const int32_t rv = yy + ((R_CR * r + ONE_HALF) >> 16);
        const int32_t gv = yy + ((G_CB * b + ONE_HALF + G_CR * r) >> 16);
        const int32_t bv = yy + ((B_CB * b + ONE_HALF) >> 16);
        o[3 * x] = (uint8_t)(rv < 0 ? 0 : (rv > 255 ? 255 : rv));
        o[3 * x + 1] = (uint8_t)(gv < 0 ? 0 : (gv > 255 ? 255 : gv));
        o[3 * x + 2] = (uint8_t)(bv < 0 ? 0 : (bv > 255 ? 255 : bv));
    }
}

#ifdef JPEG_HAVE_AVX2
/* byte shuffles (pshufb masks, -1 = zero) between 16 interleaved RGB pixels (48 bytes, three 16-byte vectors) and
 * their R, G, B vectors: DEINT[3c + k][j] = where channel c's pixel j lies in interleaved vector k (byte 3j + c);
 * INTER[k][c][j] = which of channel c's pixels fills byte j of interleaved vector k (byte 16k + j) */
static int8_t DEINT[9][16];
static int8_t INTER[3][3][16];

static void init_shuffles(void) {
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 3; c++) {
            for (int j = 0; j < 16; j++) {
                const int byte = 16 * k + j, from = 3 * j + c;
                INTER[k][c][j] = (int8_t)(byte % 3 == c ? byte / 3 : -1);
                DEINT[3 * c + k][j] = (int8_t)(from / 16 == k ? from % 16 : -1);
            }
        }
    }
}

static inline AVX2 __m256i widen_lo(__m128i v) { return _mm256_cvtepu8_epi32(v); }
static inline AVX2 __m256i widen_hi(__m128i v) { return _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)); }

/* 16 int32 (two vectors, in order) -> 16 int16, saturated */
static inline AVX2 __m256i pack16(__m256i lo, __m256i hi) {
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
}

static AVX2 void rgb_row_avx2(const uint8_t *s, Py_ssize_t n, uint8_t *yo, int16_t *cb, int16_t *cr) {
    __m128i m[9];
    for (int i = 0; i < 9; i++) m[i] = _mm_loadu_si128((const __m128i *)DEINT[i]);
    Py_ssize_t x = 0;
    for (; x + 16 <= n; x += 16) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(s + 3 * x));
        const __m128i b = _mm_loadu_si128((const __m128i *)(s + 3 * x + 16));
        const __m128i c = _mm_loadu_si128((const __m128i *)(s + 3 * x + 32));
        const __m128i r8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, m[0]), _mm_shuffle_epi8(b, m[1])),
                                        _mm_shuffle_epi8(c, m[2]));
        const __m128i g8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, m[3]), _mm_shuffle_epi8(b, m[4])),
                                        _mm_shuffle_epi8(c, m[5]));
        const __m128i b8 = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, m[6]), _mm_shuffle_epi8(b, m[7])),
                                        _mm_shuffle_epi8(c, m[8]));
        __m256i yv[2], cbv[2], crv[2];
        for (int hlf = 0; hlf < 2; hlf++) {
            const __m256i r = hlf ? widen_hi(r8) : widen_lo(r8), g = hlf ? widen_hi(g8) : widen_lo(g8);
            const __m256i bb = hlf ? widen_hi(b8) : widen_lo(b8);
            const __m256i round = _mm256_set1_epi32(CBCR_ROUND);
            yv[hlf] = VSRA(VADD(VADD(VMUL(r, Y_R), VMUL(g, Y_G)), VADD(VMUL(bb, Y_B), _mm256_set1_epi32(ONE_HALF))), 16);
            /* the 0.5 weights as shifts: ONE_HALF * x = x << 15 */
            cbv[hlf] = VSRA(VADD(VADD(VMUL(r, CB_R), VMUL(g, CB_G)), VADD(_mm256_slli_epi32(bb, 15), round)), 16);
            crv[hlf] = VSRA(VADD(VADD(_mm256_slli_epi32(r, 15), VMUL(g, CR_G)), VADD(VMUL(bb, CR_B), round)), 16);
        }
        const __m256i y16 = pack16(yv[0], yv[1]);
        _mm_storeu_si128((__m128i *)(yo + x), _mm_packus_epi16(_mm256_castsi256_si128(y16),
                                                               _mm256_extracti128_si256(y16, 1)));
        _mm256_storeu_si256((__m256i *)(cb + x), pack16(cbv[0], cbv[1]));
        _mm256_storeu_si256((__m256i *)(cr + x), pack16(crv[0], crv[1]));
    }
    if (x < n) rgb_row(s + 3 * x, n - x, yo + x, cb + x, cr + x);
}

/* fancy h2v2 upsampling of one output row, 16 chroma samples (32 outputs) per step; the edges in C */
static AVX2 void fancy_row_avx2(const uint8_t *near_, const uint8_t *far_, Py_ssize_t n, int16_t *cs, int16_t *o) {
    Py_ssize_t x = 0;
    const __m256i three = _mm256_set1_epi16(3);
    for (; x + 16 <= n; x += 16) {
        const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(near_ + x)));
        const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(far_ + x)));
        _mm256_storeu_si256((__m256i *)(cs + x), _mm256_add_epi16(_mm256_mullo_epi16(a, three), b));
    }
    for (; x < n; x++) cs[x] = (int16_t)(3 * near_[x] + far_[x]);
    const __m256i k8 = _mm256_set1_epi16(8), k7 = _mm256_set1_epi16(7);
    x = 1;
    for (; x + 16 <= n - 1; x += 16) { /* x .. x + 15 all have both neighbours */
        const __m256i c0 = _mm256_loadu_si256((const __m256i *)(cs + x));
        const __m256i cl = _mm256_loadu_si256((const __m256i *)(cs + x - 1));
        const __m256i cn = _mm256_loadu_si256((const __m256i *)(cs + x + 1));
        const __m256i c3 = _mm256_mullo_epi16(c0, three);
        const __m256i ev = _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(c3, cl), k8), 4);
        const __m256i od = _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(c3, cn), k7), 4);
        const __m256i lo = _mm256_unpacklo_epi16(ev, od), hi = _mm256_unpackhi_epi16(ev, od);
        _mm256_storeu_si256((__m256i *)(o + 2 * x), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(o + 2 * x + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; x < n - 1; x++) {
        o[2 * x] = (int16_t)((3 * cs[x] + cs[x - 1] + 8) >> 4);
        o[2 * x + 1] = (int16_t)((3 * cs[x] + cs[x + 1] + 7) >> 4);
    }
    o[0] = (int16_t)((4 * cs[0] + 8) >> 4);
    o[1] = (int16_t)((3 * cs[0] + cs[1] + 7) >> 4);
    o[2 * n - 2] = (int16_t)((3 * cs[n - 1] + cs[n - 2] + 8) >> 4);
    o[2 * n - 1] = (int16_t)((4 * cs[n - 1] + 7) >> 4);
}

static AVX2 void ycc_row_avx2(const uint8_t *yr, const int16_t *cb, const int16_t *cr, Py_ssize_t n, uint8_t *o) {
    __m128i m[3][3];
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 3; c++) m[k][c] = _mm_loadu_si128((const __m128i *)INTER[k][c]);
    }
    const __m256i k128 = _mm256_set1_epi32(128), half = _mm256_set1_epi32(ONE_HALF);
    Py_ssize_t x = 0;
    for (; x + 16 <= n; x += 16) {
        const __m128i y8 = _mm_loadu_si128((const __m128i *)(yr + x));
        const __m256i cb16 = _mm256_loadu_si256((const __m256i *)(cb + x));
        const __m256i cr16 = _mm256_loadu_si256((const __m256i *)(cr + x));
        __m256i rv[2], gv[2], bv[2];
        for (int hlf = 0; hlf < 2; hlf++) {
            const __m256i yy = hlf ? widen_hi(y8) : widen_lo(y8);
            const __m128i cbh = hlf ? _mm256_extracti128_si256(cb16, 1) : _mm256_castsi256_si128(cb16);
            const __m128i crh = hlf ? _mm256_extracti128_si256(cr16, 1) : _mm256_castsi256_si128(cr16);
            const __m256i b = VSUB(_mm256_cvtepi16_epi32(cbh), k128), r = VSUB(_mm256_cvtepi16_epi32(crh), k128);
            rv[hlf] = VADD(yy, VSRA(VADD(VMUL(r, R_CR), half), 16));
            gv[hlf] = VADD(yy, VSRA(VADD(VADD(VMUL(b, G_CB), half), VMUL(r, G_CR)), 16));
            bv[hlf] = VADD(yy, VSRA(VADD(VMUL(b, B_CB), half), 16));
        }
        __m128i ch[3];
        const __m256i rr = pack16(rv[0], rv[1]), gg = pack16(gv[0], gv[1]), bb = pack16(bv[0], bv[1]);
        ch[0] = _mm_packus_epi16(_mm256_castsi256_si128(rr), _mm256_extracti128_si256(rr, 1));
        ch[1] = _mm_packus_epi16(_mm256_castsi256_si128(gg), _mm256_extracti128_si256(gg, 1));
        ch[2] = _mm_packus_epi16(_mm256_castsi256_si128(bb), _mm256_extracti128_si256(bb, 1));
        for (int k = 0; k < 3; k++) {
            const __m128i v = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(ch[0], m[k][0]), _mm_shuffle_epi8(ch[1], m[k][1])),
                                           _mm_shuffle_epi8(ch[2], m[k][2]));
            _mm_storeu_si128((__m128i *)(o + 3 * x + 16 * k), v);
        }
    }
    if (x < n) ycc_row(yr + x, cb + x, cr + x, n - x, o + 3 * x);
}
#endif

/* the row loops a round trip runs */
typedef struct {
    void (*rgb)(const uint8_t *, Py_ssize_t, uint8_t *, int16_t *, int16_t *);
    void (*down)(const int16_t *, const int16_t *, Py_ssize_t, uint8_t *);
    void (*fancy)(const uint8_t *, const uint8_t *, Py_ssize_t, int16_t *, int16_t *);
    void (*ycc)(const uint8_t *, const int16_t *, const int16_t *, Py_ssize_t, uint8_t *);
} row_loops;

static row_loops choose_rows(plane_coder code) {
    row_loops r = {rgb_row, down_row, fancy_row, ycc_row};
#ifdef JPEG_HAVE_AVX2
    if (code == code_plane_avx2) {
        r.rgb = rgb_row_avx2;
        r.fancy = fancy_row_avx2;
        r.ycc = ycc_row_avx2;
    }
#endif
    return r;
}

/* the colour round trip */
static int colour(const uint8_t *src, uint8_t *dst, Py_ssize_t h, Py_ssize_t w, int quality, plane_coder code) {
    const Py_ssize_t hy = round8(h), wy = round8(w);            /* luma plane: whole blocks */
    const Py_ssize_t hc = (h + 1) / 2, wc = (w + 1) / 2;         /* chroma's real size */
    const Py_ssize_t wcp = (w + 15) / 16 * 8, hcp = round8(hc);  /* chroma plane: whole blocks */
    const Py_ssize_t wfull = 2 * wcp;                            /* full-resolution columns the chroma reads */
    uint8_t *yp = (uint8_t *)malloc((size_t)(hy * wy));
    uint8_t *cbp = (uint8_t *)malloc((size_t)(hcp * wcp));
    uint8_t *crp = (uint8_t *)malloc((size_t)(hcp * wcp));
    int16_t *rowbuf = (int16_t *)malloc(sizeof(int16_t) * (size_t)(4 * wfull));
    int16_t *up = (int16_t *)malloc(sizeof(int16_t) * (size_t)(6 * wc + 8));
    uint8_t *yrow = (uint8_t *)malloc((size_t)wfull);
    const row_loops loops = choose_rows(code);
    int rc = -1;
    if (yp == NULL || cbp == NULL || crp == NULL || rowbuf == NULL || up == NULL || yrow == NULL) goto done;
    {
        /* colour conversion row pair by row pair (the last row repeated to an even count), the right edge
         * replicated at full resolution, chroma by 2x2 sums */
        for (Py_ssize_t i = 0; i < hc; i++) {
            for (int v = 0; v < 2; v++) {
                const Py_ssize_t y = 2 * i + v < h ? 2 * i + v : h - 1;
                int16_t *cb = rowbuf + v * wfull, *cr = rowbuf + (2 + v) * wfull;
                loops.rgb(src + y * w * 3, w, yrow, cb, cr);
                for (Py_ssize_t x = w; x < wfull; x++) {
                    yrow[x] = yrow[w - 1];
                    cb[x] = cb[w - 1];
                    cr[x] = cr[w - 1];
                }
                if (2 * i + v < hy) memcpy(yp + (2 * i + v) * wy, yrow, (size_t)wy);
            }
            loops.down(rowbuf, rowbuf + wfull, wcp, cbp + i * wcp);
            loops.down(rowbuf + 2 * wfull, rowbuf + 3 * wfull, wcp, crp + i * wcp);
        }
        /* rows beyond the image: the last luma row, the last chroma row */
        for (Py_ssize_t y = 2 * hc; y < hy; y++) memcpy(yp + y * wy, yp + (2 * hc - 1) * wy, (size_t)wy);
        for (Py_ssize_t y = hc; y < hcp; y++) {
            memcpy(cbp + y * wcp, cbp + (hc - 1) * wcp, (size_t)wcp);
            memcpy(crp + y * wcp, crp + (hc - 1) * wcp, (size_t)wcp);
        }
        int32_t ql[64], qc[64];
        quality_table(LUMA, quality, ql);
        quality_table(CHROMA, quality, qc);
        code(yp, hy, wy, ql);
        code(cbp, hcp, wcp, qc);
        code(crp, hcp, wcp, qc);
        /* fancy upsampling of each output row (the far chroma row is the one above for an even row, below for an
         * odd one, replicated at the top and bottom edges), then YCbCr -> RGB */
        int16_t *cs = up, *ucb = up + 2 * wc + 4, *ucr = up + 4 * wc + 6;
        for (Py_ssize_t y = 0; y < h; y++) {
            const Py_ssize_t i = y / 2;
            const Py_ssize_t far = (y & 1) ? (i + 1 < hc ? i + 1 : i) : (i > 0 ? i - 1 : 0);
            loops.fancy(cbp + i * wcp, cbp + far * wcp, wc, cs, ucb);
            loops.fancy(crp + i * wcp, crp + far * wcp, wc, cs, ucr);
            loops.ycc(yp + y * wy, ucb, ucr, w, dst + y * w * 3);
        }
        rc = 0;
    }
done:
    free(yp);
    free(cbp);
    free(crp);
    free(rowbuf);
    free(up);
    free(yrow);
    return rc;
}

/* roundtrip(src, dst, h, w, channels, quality, path=0) -> None: dst = the decoded JPEG of src (uint8, h x w x
 * channels, channels 1 or 3, C-contiguous), h and w at least 16; path 0 = the fastest this CPU runs, 1 = portable C,
 * 2 = AVX2 (ValueError where it is not built or the CPU lacks it) */
static PyObject *roundtrip(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    Py_ssize_t h, w;
    int channels, quality, path = 0;
    if (!PyArg_ParseTuple(args, "y*w*nnii|i", &src, &dst, &h, &w, &channels, &quality, &path)) return NULL;
    PyObject *result = NULL;
    plane_coder code = path >= 0 && path <= 2 ? choose_coder(path) : NULL;
    if ((channels != 1 && channels != 3) || h < 16 || w < 16 || quality < 1 || quality > 100 ||
        src.len != h * w * channels || dst.len != src.len) {
        PyErr_SetString(PyExc_ValueError,
                        "roundtrip: expected uint8 h x w x channels buffers (channels 1 or 3, h and w >= 16) and "
                        "a quality in [1, 100]");
    } else if (code == NULL) {
        PyErr_SetString(PyExc_ValueError, "roundtrip: path must be 0 (automatic), 1 (portable C) or 2 (AVX2, "
                                          "where it is built and the CPU has it)");
    } else {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = channels == 3 ? colour((const uint8_t *)src.buf, (uint8_t *)dst.buf, h, w, quality, code)
                           : gray((const uint8_t *)src.buf, (uint8_t *)dst.buf, h, w, quality, code);
        Py_END_ALLOW_THREADS
        if (rc != 0) {
            PyErr_NoMemory();
        } else {
            Py_INCREF(Py_None);
            result = Py_None;
        }
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

/* accelerated() -> bool: whether path 0 runs the AVX2 block coder on this CPU */
static PyObject *accelerated(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(choose_coder(0) != code_plane);
}

static PyMethodDef methods[] = {
    {"roundtrip", roundtrip, METH_VARARGS,
     "roundtrip(src, dst, h, w, channels, quality, path=0) -> None: dst = the pixels of src's baseline JPEG round "
     "trip (path 0 automatic, 1 portable C, 2 AVX2)"},
    {"accelerated", accelerated, METH_NOARGS, "accelerated() -> bool: whether the automatic path uses AVX2"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpegfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jpegfast(void) {
#ifdef JPEG_HAVE_AVX2
    init_shuffles();
#endif
    return PyModule_Create(&module);
}
