/* The normal sampler of demmi_rf.ziggurat in C: an optional compiled kernel, with three more routines.
 *
 * fast_path -- the common case in one pass over the array. For each element j, with u = (float)a[j] and
 * i = layer[j]:
 *     slow = |u| >= bound[i];   v = slow ? 0 : u * width[i];   out[j] = out[j] + v (adding) or v;
 * and the slow positions j are listed, in order, in `slow` (the count is returned). These are exactly the
 * float32 operations of the numpy path (_fast and _fast_blocks in ziggurat.py), each correctly rounded:
 * int32 -> float32 conversion, fabsf, a comparison, one multiplication, one addition.
 *
 * slow_path -- every round of the wedge / tail resolution (_slow_round in ziggurat.py) until nothing is
 * pending, with the same bit generator calls in the same order and with the same counts (it calls the
 * generator's Python method random_raw(n) itself), and the same float64 operations in the same order:
 * the wedge bounds, f(x) by exp_f64 (Cody-Waite reduction with rint = round-half-even, Taylor series by
 * Horner, 2^k from its bit pattern), the tail's log_f64 (frexp, artanh series by Horner), and the float32
 * roundings of the stored values. No libm exp/log is used; frexp, nearbyint and copysign are exact.
 *
 * exp_array -- portable_math._exp_f64 on a float64 array (the tone-curve tables of the exposure atoms).
 *
 * quantize_table -- the composition's quantisation (clip to [0, 255], round half to even, uint8) of an atom's
 * float32 table on the 256 levels, as bytes (degradations/_arrays.py: table_lookup_uint8).
 *
 * scale_u16 -- the last step of the motion atom's uint8 path (degradations/motion.py): on uint16 sums,
 * dst[i] = ((src[i] + b) * m) >> 16, an integer form of rint(fl32(S) * fl32(1/L)) that motion.py accepts for a
 * length only after checking it on every possible sum.
 *
 * seed_state -- numpy's SeedSequence mixing and generate_state(4, uint64) for a sample's key words (rng.py).
 *
 * pcg64_keyed, pcg64_next, pcg64_fill, pcg64_below -- numpy's PCG64 seeded from a SeedSequence
 * (of a SHA-256 digest's words: SHA-256 of FIPS 180-4, checked against hashlib), and its raw
 * 64-bit words (random_raw: the 128-bit LCG step s = s * M + inc, then the XSL-RR output
 * rotr64(hi(s) ^ lo(s), s >> 122)) from a state held in a 4-word buffer (state high, state low, inc high,
 * inc low; updated in place): one word, or n words stored or compared with a threshold (rng.py: Stream,
 * raw_words, raw_below). Integer arithmetic only: the same words on every machine.
 *
 * Built with -ffp-contract=off so that the compiler never fuses a multiply and an add; ziggurat.py checks
 * once per process that both entry points give the numpy path's bits (and leave the generator at the same
 * position) before using them, and tests/test_ziggurat.py compares them on many inputs. Only the Python
 * buffer protocol is used (no numpy headers); the caller passes C-contiguous arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *fast_path(PyObject *self, PyObject *args) {
    Py_buffer words, layers, bound, width, out, slow;
    int add;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*w*p", &words, &layers, &bound, &width, &out, &slow, &add)) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t n = layers.len;
    if (words.len != 4 * n || out.len != 4 * n || slow.len < 8 * n || bound.len != 4 * 256 ||
        width.len != 4 * 256) {
        PyErr_SetString(PyExc_ValueError,
                        "fast_path: expected n int32 words, n uint8 layers, two float32 tables of 256, n float32 "
                        "outputs and room for n int64 slow positions");
        goto done;
    }
    {
        const int32_t *a = (const int32_t *)words.buf;
        const uint8_t *layer = (const uint8_t *)layers.buf;
        const float *b = (const float *)bound.buf;
        const float *w = (const float *)width.buf;
        float *o = (float *)out.buf;
        int64_t *s = (int64_t *)slow.buf;
        Py_ssize_t k = 0;
        Py_BEGIN_ALLOW_THREADS
        if (add) {
            for (Py_ssize_t j = 0; j < n; j++) {
                const float u = (float)a[j];
                const Py_ssize_t i = layer[j]; /* widened before use: no narrow-type index arithmetic */
                const int is_slow = fabsf(u) >= b[i];
                const float v = is_slow ? 0.0f : u * w[i];
                o[j] = o[j] + v;
                s[k] = (int64_t)j; /* kept only when slow: k advances past it */
                k += is_slow;
            }
        } else {
            for (Py_ssize_t j = 0; j < n; j++) {
                const float u = (float)a[j];
                const Py_ssize_t i = layer[j]; /* widened before use: no narrow-type index arithmetic */
                const int is_slow = fabsf(u) >= b[i];
                o[j] = is_slow ? 0.0f : u * w[i];
                s[k] = (int64_t)j;
                k += is_slow;
            }
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromSsize_t(k);
    }
done:
    PyBuffer_Release(&words);
    PyBuffer_Release(&layers);
    PyBuffer_Release(&bound);
    PyBuffer_Release(&width);
    PyBuffer_Release(&out);
    PyBuffer_Release(&slow);
    return result;
}

/* ---- the slow path ------------------------------------------------------------------------------------ */

#define TWO_M31 4.656612873077392578125e-10 /* 2^-31 */
#define TWO_M53 1.1102230246251565404236316680908203125e-16 /* 2^-53 */

/* Constants of demmi_rf.portable_math, passed in by ziggurat.py (so there is one source of the values). */
typedef struct {
    double ln2_hi, ln2_lo, log2e, sqrt_half;
    double taylor[15]; /* 1/n!, n = 0..14 */
    double atanh[13];  /* 1/(2j+1), j = 0..12 */
} math_consts;

/* 2^k for integral k in [-1022, 1023] from its bit pattern (_pow2). */
static double pow2(double k) {
    const uint64_t bits = ((uint64_t)((int64_t)k + 1023)) << 52;
    double out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* _exp_f64, operation by operation. */
static double exp_f64(double z, const math_consts *c) {
    const double k = nearbyint(z * c->log2e); /* default rounding mode: half to even, like np.rint */
    const double r = (z - k * c->ln2_hi) - k * c->ln2_lo;
    double p = c->taylor[14];
    for (int n = 13; n >= 0; n--) {
        p = p * r;
        p = p + c->taylor[n];
    }
    return p * pow2(k);
}

/* _log_f64, operation by operation (v > 0). */
static double log_f64(double v, const math_consts *c) {
    int ei;
    double m = frexp(v, &ei); /* exact */
    if (m < c->sqrt_half) {
        m = m * 2.0;
        ei -= 1;
    }
    const double e = (double)ei;
    const double f = m - 1.0;
    const double s = f / (f + 2.0);
    const double z = s * s;
    double p = c->atanh[12];
    for (int j = 11; j >= 0; j--) {
        p = p * z;
        p = p + c->atanh[j];
    }
    return e * c->ln2_hi + (2.0 * s * p + e * c->ln2_lo);
}

/* bitgen.random_raw(n) as a buffer of n uint64 (the caller releases it). */
static int random_raw(PyObject *bitgen, Py_ssize_t n, Py_buffer *view) {
    PyObject *arr = PyObject_CallMethod(bitgen, "random_raw", "n", n);
    if (arr == NULL) {
        return -1;
    }
    const int rc = PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS);
    Py_DECREF(arr); /* the view holds its own reference */
    if (rc < 0) {
        return -1;
    }
    if (view->len != 8 * n || view->itemsize != 8) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "slow_path: random_raw did not return n 64-bit words");
        return -1;
    }
    return 0;
}

static int get_table(PyObject *obj, Py_buffer *view, Py_ssize_t nbytes, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    if (view->len != nbytes) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "slow_path: %s has the wrong size", what);
        return -1;
    }
    return 0;
}

static PyObject *slow_path(PyObject *self, PyObject *args) {
    PyObject *bitgen, *o_words, *o_layers, *o_x, *o_f, *o_lo, *o_hi, *o_bound, *o_width, *o_consts, *o_out;
    double r_edge, scale;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOddO", &bitgen, &o_words, &o_layers, &o_x, &o_f, &o_lo, &o_hi,
                          &o_bound, &o_width, &o_consts, &r_edge, &scale, &o_out)) {
        return NULL;
    }
    Py_buffer bw = {0}, bl = {0}, bx = {0}, bf = {0}, blo = {0}, bhi = {0}, bb = {0}, bwd = {0}, bc = {0};
    Py_buffer bo = {0};
    int have[10] = {0};
    PyObject *result = NULL;
    void *mem = NULL;
    if (PyObject_GetBuffer(o_words, &bw, PyBUF_C_CONTIGUOUS) < 0) goto done;
    have[0] = 1;
    if (PyObject_GetBuffer(o_layers, &bl, PyBUF_C_CONTIGUOUS) < 0) goto done;
    have[1] = 1;
    if (get_table(o_x, &bx, 8 * 257, "x") < 0) goto done;
    have[2] = 1;
    if (get_table(o_f, &bf, 8 * 257, "f") < 0) goto done;
    have[3] = 1;
    if (get_table(o_lo, &blo, 8 * 256, "lo") < 0) goto done;
    have[4] = 1;
    if (get_table(o_hi, &bhi, 8 * 256, "hi") < 0) goto done;
    have[5] = 1;
    if (get_table(o_bound, &bb, 4 * 256, "bound") < 0) goto done;
    have[6] = 1;
    if (get_table(o_width, &bwd, 4 * 256, "width") < 0) goto done;
    have[7] = 1;
    if (get_table(o_consts, &bc, (Py_ssize_t)sizeof(math_consts), "consts") < 0) goto done;
    have[8] = 1;
    if (PyObject_GetBuffer(o_out, &bo, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto done;
    have[9] = 1;
    const Py_ssize_t n = bl.len;
    if (bw.len != 4 * n || bo.len != 4 * n) {
        PyErr_SetString(PyExc_ValueError, "slow_path: expected n int32 words, n uint8 layers, n float32 outputs");
        goto done;
    }
    {
        const double *xe = (const double *)bx.buf, *fe = (const double *)bf.buf;
        const double *lo = (const double *)blo.buf, *hi = (const double *)bhi.buf;
        const float *bound = (const float *)bb.buf, *width = (const float *)bwd.buf;
        math_consts consts;
        memcpy(&consts, bc.buf, sizeof consts);
        float *out = (float *)bo.buf;
        /* pending (word, layer, output position), the tail list and the rejected ones of a round */
        const size_t cap = n > 0 ? (size_t)n : 1;
        mem = PyMem_Malloc(cap * (sizeof(int32_t) + 1 + 3 * sizeof(Py_ssize_t)) + 16);
        if (mem == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        Py_ssize_t *pos = (Py_ssize_t *)mem;
        Py_ssize_t *todo = pos + cap;  /* round-local indices of the tail positions */
        Py_ssize_t *again = todo + cap; /* output positions of the rejected wedges */
        int32_t *a = (int32_t *)(again + cap);
        uint8_t *li = (uint8_t *)(a + cap);
        memcpy(a, bw.buf, (size_t)n * sizeof(int32_t));
        memcpy(li, bl.buf, (size_t)n);
        for (Py_ssize_t j = 0; j < n; j++) {
            pos[j] = j;
        }
        Py_ssize_t m = n;
        while (m > 0) {
            /* a: one uniform per pending position */
            Py_buffer raw;
            if (random_raw(bitgen, m, &raw) < 0) goto done;
            const uint64_t *word = (const uint64_t *)raw.buf;
            Py_ssize_t nt = 0, ng = 0;
            for (Py_ssize_t j = 0; j < m; j++) {
                const Py_ssize_t i = li[j];
                const double u = (double)a[j] * TWO_M31;
                const double x = u * xe[i];
                const double uni = (double)(word[j] >> 11) * TWO_M53;
                const double w = 1.0 - fabs(u);
                int accept = uni < w * lo[i];
                const int is_tail = i == 0;
                if ((uni <= w * hi[i]) && !accept && !is_tail) { /* b: between the bounds, compare with f */
                    const double f_low = fe[i];
                    accept = f_low + uni * (fe[i + 1] - f_low) < exp_f64(-0.5 * x * x, &consts);
                }
                out[pos[j]] = (float)(x * scale);
                if (is_tail) {
                    todo[nt++] = j;
                } else if (!accept) {
                    again[ng++] = pos[j];
                }
            }
            PyBuffer_Release(&raw);
            /* c: the tail, all U1 then all U2 per try, until every tail position is accepted */
            while (nt > 0) {
                if (random_raw(bitgen, 2 * nt, &raw) < 0) goto done;
                word = (const uint64_t *)raw.buf;
                Py_ssize_t keep = 0;
                for (Py_ssize_t k = 0; k < nt; k++) {
                    const double l1 = log_f64((double)((word[k] >> 11) + 1) * TWO_M53, &consts);
                    const double l2 = log_f64((double)((word[nt + k] >> 11) + 1) * TWO_M53, &consts);
                    const double alpha = l1 / -r_edge;
                    const int ok = -2.0 * l2 > alpha * alpha;
                    const Py_ssize_t j = todo[k];
                    out[pos[j]] = (float)(copysign(r_edge + alpha, (double)a[j]) * scale);
                    if (!ok) {
                        todo[keep++] = j;
                    }
                }
                PyBuffer_Release(&raw);
                nt = keep;
            }
            if (ng == 0) {
                break;
            }
            /* d: fresh words and layers for the rejected ones (as _draw_words), then the common case */
            Py_buffer rw, rl;
            if (random_raw(bitgen, (ng + 1) / 2, &rw) < 0) goto done;
            if (random_raw(bitgen, (ng + 7) / 8, &rl) < 0) {
                PyBuffer_Release(&rw);
                goto done;
            }
            const uint64_t *ww = (const uint64_t *)rw.buf, *lw = (const uint64_t *)rl.buf;
            Py_ssize_t next = 0;
            for (Py_ssize_t g = 0; g < ng; g++) {
                const uint32_t half = (uint32_t)(ww[g >> 1] >> (32 * (g & 1)));
                const int32_t a2 = (int32_t)(half | 1u);
                const uint8_t l2 = (uint8_t)(lw[g >> 3] >> (8 * (g & 7)));
                const float uf = (float)a2;
                const int is_slow = fabsf(uf) >= bound[l2];
                out[again[g]] = is_slow ? 0.0f : uf * width[l2];
                if (is_slow) { /* next < = g: compacting in place is safe */
                    a[next] = a2;
                    li[next] = l2;
                    pos[next] = again[g];
                    next++;
                }
            }
            PyBuffer_Release(&rw);
            PyBuffer_Release(&rl);
            m = next;
        }
        Py_INCREF(Py_None);
        result = Py_None;
    }
done:
    PyMem_Free(mem);
    Py_buffer *views[10] = {&bw, &bl, &bx, &bf, &blo, &bhi, &bb, &bwd, &bc, &bo};
    for (int q = 0; q < 10; q++) {
        if (have[q]) PyBuffer_Release(views[q]);
    }
    return result;
}

/* out[j] = exp_f64(z[j]) for n float64 values (portable_math._exp_f64, operation by operation; z in [-708, 709],
 * checked by the caller), with the constants as for slow_path. */
static PyObject *exp_array(PyObject *self, PyObject *args) {
    Py_buffer src, consts, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &src, &consts, &out)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (src.len != out.len || src.len % 8 != 0 || consts.len != (Py_ssize_t)sizeof(math_consts)) {
        PyErr_SetString(PyExc_ValueError, "exp_array: expected n float64 inputs, the constants, n float64 outputs");
    } else {
        math_consts c;
        memcpy(&c, consts.buf, sizeof c);
        const double *z = (const double *)src.buf;
        double *o = (double *)out.buf;
        const Py_ssize_t n = src.len / 8;
        for (Py_ssize_t j = 0; j < n; j++) {
            o[j] = exp_f64(z[j], &c);
        }
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&consts);
    PyBuffer_Release(&out);
    return result;
}

/* numpy's SeedSequence (numpy/random/bit_generator.pyx, O'Neill's seed_seq_fe with a pool of 4 uint32 words)
 * on n >= 1 entropy words and no spawn key, then generate_state(4, np.uint64): the state a PCG64 is seeded with.
 * All arithmetic is on uint32 (mod 2^32), so it is exact; ziggurat's caller checks it against numpy once per
 * process and uses numpy's SeedSequence otherwise. */
#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_MULT_L 0xca01f9ddu
#define SS_MIX_MULT_R 0x4973f715u

static uint32_t ss_hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= SS_MULT_A;
    value *= *hash_const;
    value ^= value >> 16;
    return value;
}

static uint32_t ss_mix(uint32_t x, uint32_t y) {
    uint32_t result = SS_MIX_MULT_L * x - SS_MIX_MULT_R * y;
    result ^= result >> 16;
    return result;
}

/* numpy's SeedSequence(e[0..n-1]).generate_state(4, np.uint64) into o[0..3] */
static void ss_state(const uint32_t *e, Py_ssize_t n, uint64_t *o) {
    uint32_t pool[4], hc = SS_INIT_A;
    for (int i = 0; i < 4; i++) {
        pool[i] = ss_hashmix(i < n ? e[i] : 0u, &hc);
    }
    for (int src = 0; src < 4; src++) {
        for (int dst = 0; dst < 4; dst++) {
            if (src != dst) {
                pool[dst] = ss_mix(pool[dst], ss_hashmix(pool[src], &hc));
            }
        }
    }
    for (Py_ssize_t src = 4; src < n; src++) {
        for (int dst = 0; dst < 4; dst++) {
            pool[dst] = ss_mix(pool[dst], ss_hashmix(e[src], &hc));
        }
    }
    uint32_t hb = SS_INIT_B, st[8];
    for (int i = 0; i < 8; i++) {
        uint32_t d = pool[i % 4];
        d ^= hb;
        hb *= SS_MULT_B;
        d *= hb;
        d ^= d >> 16;
        st[i] = d;
    }
    for (int j = 0; j < 4; j++) { /* numpy: the uint32 words read as little-endian uint64 pairs */
        o[j] = (uint64_t)st[2 * j] | ((uint64_t)st[2 * j + 1] << 32);
    }
}

static PyObject *seed_state(PyObject *self, PyObject *args) {
    Py_buffer words, out;
    if (!PyArg_ParseTuple(args, "y*w*", &words, &out)) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t n = words.len / 4;
    if (words.len % 4 != 0 || n < 1 || out.len != 32) {
        PyErr_SetString(PyExc_ValueError, "seed_state: expected n >= 1 uint32 words and room for 4 uint64");
    } else {
        ss_state((const uint32_t *)words.buf, n, (uint64_t *)out.buf);
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&words);
    PyBuffer_Release(&out);
    return result;
}

/* PCG64 (O'Neill 2014, PCG-XSL-RR 128/64 as numpy's pcg64.h): one LCG step s <- s * M + inc (mod 2^128), then
 * the output of the new state. The LCG is a serial chain (each step waits for the previous 128-bit product), so
 * long runs use PCG_LANES interleaved chains: word j + L comes from word j's state by the jumped LCG
 * s <- s * M^L + inc * (M^(L-1) + ... + M + 1), the same states, hence the same words, in the same order. */
#define PCG_MULT_HI 2549297995355413924ULL
#define PCG_MULT_LO 4865540595714422341ULL
#define PCG_LANES 4

typedef struct {
    uint64_t hi, lo;
} u128;

/* a * b + c (mod 2^128) */
static inline u128 u128_muladd(u128 a, u128 b, u128 c) {
    u128 r;
#if defined(__SIZEOF_INT128__) && !defined(DEMMI_RF_NO_INT128)
    const unsigned __int128 x = ((unsigned __int128)a.hi << 64) | a.lo;
    const unsigned __int128 y = ((unsigned __int128)b.hi << 64) | b.lo;
    const unsigned __int128 z = ((unsigned __int128)c.hi << 64) | c.lo;
    const unsigned __int128 v = x * y + z;
    r.hi = (uint64_t)(v >> 64);
    r.lo = (uint64_t)v;
#else
    /* the low 128 bits of the product from 64-bit halves: a.lo * b.lo in full, the cross terms' low halves */
    const uint64_t a0 = a.lo & 0xFFFFFFFFULL, a1 = a.lo >> 32, b0 = b.lo & 0xFFFFFFFFULL, b1 = b.lo >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFULL) + (p10 & 0xFFFFFFFFULL);
    const uint64_t lo = (mid << 32) | (p00 & 0xFFFFFFFFULL);
    uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32) + a.hi * b.lo + a.lo * b.hi;
    r.lo = lo + c.lo;
    r.hi = hi + c.hi + (r.lo < lo);
#endif
    return r;
}

static inline uint64_t pcg_output(u128 s) {
    const uint64_t x = s.hi ^ s.lo;
    const unsigned rot = (unsigned)(s.hi >> 58);
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

typedef struct {
    u128 state, inc;
} pcg128;

/* The next n words of s in order: stored in words[j] (words != NULL) or compared, below[j] = word < threshold;
 * s is advanced by n steps (left at the state of the last word). */
static void pcg_run(pcg128 *s, Py_ssize_t n, uint64_t *words, uint8_t *below, uint64_t threshold) {
    const u128 mult = {PCG_MULT_HI, PCG_MULT_LO}, zero = {0, 0};
    Py_ssize_t j = 0;
    if (n >= 4 * PCG_LANES) {
        u128 lane[PCG_LANES], jump_mult = {0, 1}, jump_add = {0, 0};
        for (int k = 0; k < PCG_LANES; k++) { /* lane k: the state of word k; the jump: L steps at once */
            s->state = u128_muladd(s->state, mult, s->inc);
            lane[k] = s->state;
            jump_mult = u128_muladd(jump_mult, mult, zero);
            jump_add = u128_muladd(jump_add, mult, s->inc);
        }
        const Py_ssize_t full = (n / PCG_LANES) * PCG_LANES;
        for (; j < full; j += PCG_LANES) {
            if (words != NULL) {
                for (int k = 0; k < PCG_LANES; k++) {
                    words[j + k] = pcg_output(lane[k]);
                }
            } else {
                for (int k = 0; k < PCG_LANES; k++) {
                    below[j + k] = pcg_output(lane[k]) < threshold;
                }
            }
            s->state = lane[PCG_LANES - 1]; /* the state of word j + L - 1, the last one emitted */
            for (int k = 0; k < PCG_LANES; k++) {
                lane[k] = u128_muladd(lane[k], jump_mult, jump_add);
            }
        }
    }
    for (; j < n; j++) { /* the rest one step at a time from the last emitted word's state */
        s->state = u128_muladd(s->state, mult, s->inc);
        const uint64_t w = pcg_output(s->state);
        if (words != NULL) {
            words[j] = w;
        } else {
            below[j] = w < threshold;
        }
    }
}

static int pcg_state_of(Py_buffer *state, pcg128 *s) {
    if (state->len != 32) {
        PyErr_SetString(PyExc_ValueError, "pcg64: expected a state of 4 uint64 words");
        return 0;
    }
    const uint64_t *w = (const uint64_t *)state->buf;
    s->state.hi = w[0];
    s->state.lo = w[1];
    s->inc.hi = w[2];
    s->inc.lo = w[3];
    return 1;
}

static void pcg_state_back(Py_buffer *state, const pcg128 *s) {
    uint64_t *w = (uint64_t *)state->buf;
    w[0] = s->state.hi;
    w[1] = s->state.lo;
}

/* pcg64_fill (compare = 0: the words into a uint64 array) and pcg64_below (compare = 1: word < threshold into
 * a byte array), the state advanced in place */
static PyObject *pcg64_run(PyObject *args, int compare) {
    Py_buffer state, out;
    unsigned long long threshold = 0;
    const int parsed = compare ? PyArg_ParseTuple(args, "w*Kw*", &state, &threshold, &out)
                               : PyArg_ParseTuple(args, "w*w*", &state, &out);
    if (!parsed) {
        return NULL;
    }
    PyObject *result = NULL;
    pcg128 s;
    if (!compare && out.len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "pcg64_fill: expected a uint64 output array");
    } else if (pcg_state_of(&state, &s)) {
        Py_BEGIN_ALLOW_THREADS
        if (compare) {
            pcg_run(&s, out.len, NULL, (uint8_t *)out.buf, (uint64_t)threshold);
        } else {
            pcg_run(&s, out.len / 8, (uint64_t *)out.buf, NULL, 0);
        }
        Py_END_ALLOW_THREADS
        pcg_state_back(&state, &s);
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&state);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *pcg64_fill(PyObject *self, PyObject *args) { return pcg64_run(args, 0); }

static PyObject *pcg64_below(PyObject *self, PyObject *args) { return pcg64_run(args, 1); }

/* SHA-256 (FIPS 180-4), for pcg64_keyed: the digest of n bytes into 32 bytes */
static const uint32_t SHA_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

static inline uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++) {
        w[t] = ((uint32_t)p[4 * t] << 24) | ((uint32_t)p[4 * t + 1] << 16) | ((uint32_t)p[4 * t + 2] << 8) | p[4 * t + 3];
    }
    for (int t = 16; t < 64; t++) {
        const uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        const uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 64; t++) {
        const uint32_t t1 = k + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ((e & f) ^ (~e & g)) + SHA_K[t] + w[t];
        const uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha256(const uint8_t *msg, Py_ssize_t n, uint8_t digest[32]) {
    uint32_t h[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                     0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    Py_ssize_t i = 0;
    for (; i + 64 <= n; i += 64) {
        sha_block(h, msg + i);
    }
    uint8_t tail[128] = {0};
    const Py_ssize_t rest = n - i;
    memcpy(tail, msg + i, (size_t)rest);
    tail[rest] = 0x80;
    const Py_ssize_t len = rest < 56 ? 64 : 128;
    const uint64_t bits = (uint64_t)n * 8u;
    for (int j = 0; j < 8; j++) {
        tail[len - 1 - j] = (uint8_t)(bits >> (8 * j));
    }
    sha_block(h, tail);
    if (len == 128) {
        sha_block(h, tail + 64);
    }
    for (int j = 0; j < 8; j++) {
        digest[4 * j] = (uint8_t)(h[j] >> 24);
        digest[4 * j + 1] = (uint8_t)(h[j] >> 16);
        digest[4 * j + 2] = (uint8_t)(h[j] >> 8);
        digest[4 * j + 3] = (uint8_t)h[j];
    }
}

/* numpy's PCG64(SeedSequence(e[0..n-1])): o[4..7] = the SeedSequence's 4 uint64 words (s0..s3), o[0..3] = the
 * PCG64 state (pcg64_set_seed: initstate = s0:s1, initseq = s2:s3, high word first; then PCG's srandom: state = 0,
 * inc = 2 initseq + 1, one step, state += initstate, one step) */
static void pcg_seed_from_words(const uint32_t *e, Py_ssize_t n, uint64_t *o) {
    ss_state(e, n, o + 4);
    const u128 mult = {PCG_MULT_HI, PCG_MULT_LO}, zero = {0, 0}, one = {0, 1}, init = {o[4], o[5]};
    pcg128 s;
    s.inc.hi = (o[6] << 1) | (o[7] >> 63);
    s.inc.lo = (o[7] << 1) | 1u;
    s.state = u128_muladd(zero, mult, s.inc);
    s.state = u128_muladd(s.state, one, init);
    s.state = u128_muladd(s.state, mult, s.inc);
    o[0] = s.state.hi;
    o[1] = s.state.lo;
    o[2] = s.inc.hi;
    o[3] = s.inc.lo;
}

/* pcg64_keyed(material, out): out (12 uint64) = pcg_seed_from_words(SHA-256(material) read as eight
 * little-endian 32-bit words) in out[0..7], and the 32 digest bytes in out[8..11] */
static PyObject *pcg64_keyed(PyObject *self, PyObject *args) {
    Py_buffer material, out;
    if (!PyArg_ParseTuple(args, "y*w*", &material, &out)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (out.len != 96) {
        PyErr_SetString(PyExc_ValueError, "pcg64_keyed: expected room for 12 uint64");
    } else {
        uint64_t *o = (uint64_t *)out.buf;
        uint8_t digest[32];
        uint32_t words[8];
        sha256((const uint8_t *)material.buf, material.len, digest);
        for (int j = 0; j < 8; j++) { /* little-endian words on any byte order */
            words[j] = (uint32_t)digest[4 * j] | ((uint32_t)digest[4 * j + 1] << 8) |
                       ((uint32_t)digest[4 * j + 2] << 16) | ((uint32_t)digest[4 * j + 3] << 24);
        }
        pcg_seed_from_words(words, 8, o);
        memcpy(o + 8, digest, 32);
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&material);
    PyBuffer_Release(&out);
    return result;
}

/* the next word of the state in the first 4 uint64 of the buffer (advanced in place), as a Python int */
static PyObject *pcg64_next(PyObject *self, PyObject *arg) {
    Py_buffer state;
    if (PyObject_GetBuffer(arg, &state, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    if (state.len < 32) {
        PyErr_SetString(PyExc_ValueError, "pcg64_next: expected a state of 4 uint64 words");
    } else {
        uint64_t *w = (uint64_t *)state.buf;
        const u128 mult = {PCG_MULT_HI, PCG_MULT_LO}, inc = {w[2], w[3]};
        u128 st = {w[0], w[1]};
        st = u128_muladd(st, mult, inc);
        w[0] = st.hi;
        w[1] = st.lo;
        result = PyLong_FromUnsignedLongLong(pcg_output(st));
    }
    PyBuffer_Release(&state);
    return result;
}

/* quantize_table(src) -> bytes or None: the composition's quantisation of a float32 table (an atom's map on the
 * levels 0..255): rint(clip(x, 0, 255)) as uint8, round half to even (nearbyintf in the default rounding mode),
 * one byte per entry; None when an entry is NaN (numpy's cast of NaN is undefined: the caller's numpy path runs) */
static PyObject *quantize_table(PyObject *self, PyObject *arg) {
    Py_buffer src;
    if (PyObject_GetBuffer(arg, &src, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t n = src.len / 4;
    const float *x = (const float *)src.buf;
    int has_nan = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        has_nan |= x[i] != x[i];
    }
    if (src.len % 4 != 0) {
        PyErr_SetString(PyExc_ValueError, "quantize_table: expected a float32 array");
    } else if (has_nan) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else if ((result = PyBytes_FromStringAndSize(NULL, n)) != NULL) {
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < n; i++) {
            float v = x[i] < 0.0f ? 0.0f : x[i];
            v = v > 255.0f ? 255.0f : v;
            o[i] = (uint8_t)nearbyintf(v);
        }
    }
    PyBuffer_Release(&src);
    return result;
}

/* scale_u16(src, dst, b, m) -> None: dst[i] = ((src[i] + b) * m) >> 16 for uint16 src and uint8 dst of the same
 * length; integer arithmetic only (src[i] + b in uint16 and the result below 256: the caller's verified range). The
 * 16-bit high-part multiplication vectorises (pmulhuw) at -O3. */
/* kept out of line: inlined into its caller (16-bit arguments converted from unsigned int), GCC 12 vectorises the
 * product as a 32-bit one (pmuludq), about five times slower than the high-part multiplication */
#if defined(__GNUC__)
#define DEMMI_NOINLINE __attribute__((noinline))
#define DEMMI_RESTRICT __restrict__
#else
#define DEMMI_NOINLINE
#define DEMMI_RESTRICT
#endif
DEMMI_NOINLINE static void scale_u16_run(const uint16_t *DEMMI_RESTRICT in, uint8_t *DEMMI_RESTRICT out, size_t n,
                                         uint16_t bias, uint16_t mult) {
    for (size_t i = 0; i < n; i++) {
        const uint16_t v = (uint16_t)(in[i] + bias);
        out[i] = (uint8_t)(((uint32_t)v * mult) >> 16);
    }
}

static PyObject *scale_u16(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    unsigned int b, m;
    if (!PyArg_ParseTuple(args, "y*w*II", &src, &dst, &b, &m)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (src.len != 2 * dst.len || b > 0xFFFFu || m > 0xFFFFu) {
        PyErr_SetString(PyExc_ValueError, "scale_u16: expected n uint16 sums, n uint8 outputs, b and m below 2**16");
    } else {
        scale_u16_run((const uint16_t *)src.buf, (uint8_t *)dst.buf, (size_t)dst.len, (uint16_t)b, (uint16_t)m);
        Py_INCREF(Py_None);
        result = Py_None;
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return result;
}

static PyMethodDef methods[] = {
    {"pcg64_keyed", pcg64_keyed, METH_VARARGS,
     "pcg64_keyed(material, out) -> None: out[:4] = the state (state hi, lo, inc hi, lo) of "
     "PCG64(SeedSequence(SHA-256(material) as 8 little-endian uint32 words)), out[4:8] = the SeedSequence's "
     "generate_state(4, uint64), out[8:] = the digest"},
    {"quantize_table", quantize_table, METH_O,
     "quantize_table(float32 array) -> bytes or None: rint(clip(x, 0, 255)) as uint8 bytes; None if a NaN"},
    {"scale_u16", scale_u16, METH_VARARGS,
     "scale_u16(src, dst, b, m) -> None: dst = ((src + b) * m) >> 16, uint16 in, uint8 out (same length)"},
    {"pcg64_next", pcg64_next, METH_O, "pcg64_next(state) -> int: the next PCG64 word; state advanced in place"},
    {"pcg64_fill", pcg64_fill, METH_VARARGS,
     "pcg64_fill(state, out) -> None: out = the next len(out) PCG64 words; state (4 uint64) advanced in place"},
    {"pcg64_below", pcg64_below, METH_VARARGS,
     "pcg64_below(state, t, out) -> None: out[j] = (next word < t) as bytes 0/1; state advanced in place"},
    {"fast_path", fast_path, METH_VARARGS,
     "fast_path(words, layers, bound, width, out, slow, add) -> number of slow positions"},
    {"slow_path", slow_path, METH_VARARGS,
     "slow_path(bitgen, words, layers, x, f, lo, hi, bound, width, consts, r, scale, out) -> None: every round "
     "of the wedge / tail resolution for the pending words and layers, into out (float32, same length)"},
    {"seed_state", seed_state, METH_VARARGS,
     "seed_state(words, out) -> None: out = SeedSequence(words).generate_state(4, np.uint64)"},
    {"exp_array", exp_array, METH_VARARGS, "exp_array(z, consts, out) -> None: out = portable exp(z), float64"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zigfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__zigfast(void) { return PyModule_Create(&module); }
