/* The common case of demmi_rf.ziggurat in one pass over the array: an optional compiled kernel.
 *
 * For each element j, with u = (float)a[j] and i = layer[j]:
 *     slow = |u| >= bound[i];   v = slow ? 0 : u * width[i];   out[j] = out[j] + v (adding) or v;
 * and the slow positions j are listed, in order, in `slow` (the count is returned).
 *
 * These are exactly the float32 operations of the numpy path (_fast and _fast_blocks in ziggurat.py), each
 * correctly rounded: int32 -> float32 conversion, fabsf, a comparison, one multiplication, one addition.
 * Built with -ffp-contract=off so that the compiler never fuses the multiply and the add; ziggurat.py checks
 * once per process that this kernel and the numpy path give the same bits before using it, and
 * tests/test_ziggurat.py compares them on every shape and scale. Only the Python buffer protocol is used (no
 * numpy headers); the caller passes C-contiguous arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

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

static PyMethodDef methods[] = {
    {"fast_path", fast_path, METH_VARARGS,
     "fast_path(words, layers, bound, width, out, slow, add) -> number of slow positions"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zigfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__zigfast(void) { return PyModule_Create(&module); }
