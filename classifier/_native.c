/* Compiled inner loops of the linear classifier (optional: every function here has a pure-Python
 * twin in segment.py / linear.py that gives the same result, and the package works without it).
 *
 * cut()       the glue around jieba-rs in Segmenter._cut_cached: typed-token split, jieba's Han
 *             block split, buffering of single-character steps for the HMM; the same tokens.
 * hash_table() an open-addressing table (int64 key -> int32 column) for the n-gram vocabularies.
 * xw()        X @ W for the character n-gram, word n-gram and cue blocks of a batch without
 *             building X: per text, its TF-IDF entries in column order, each block L2-normalised,
 *             accumulated in float32 exactly as scipy's CSR x dense product does, so the result
 *             is bit-identical to building the CSR matrix and multiplying.
 *
 * cues()      the named chat cues of features.cue_matrix (literal alternations, prefixes,
 *             character classes), the same values as its regular expressions.
 * add_batch() GroupScorer.add_many's per-message accounting (counts, members, days, hours,
 *             floods), calling back into the scorer for what is rare or intricate (a new member
 *             or day, answers, questions); the scorer ends in the same state.
 * jsonl()     messages.jsonl lines of a batch, byte for byte as orjson writes them (a record it
 *             cannot write the same way goes to the Python writer).
 *
 * Built with -ffp-contract=off: a fused multiply-add would round differently from numpy/scipy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ buffers */

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, Py_ssize_t itemsize, char kind, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    char fk = *f;
    int ok = b->view.itemsize == itemsize;
    if (kind == 'i') ok = ok && (fk == 'q' || fk == 'l' || fk == 'i');
    if (kind == 'f') ok = ok && (fk == 'f' || fk == 'd');
    if (!ok) {
        PyBuffer_Release(&b->view);
        b->held = 0;
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous %s%d array", name,
                     kind == 'i' ? "int" : "float", (int)(8 * itemsize));
        return -1;
    }
    return 0;
}

static void rel_buf(Buf *b) {
    if (b->held) PyBuffer_Release(&b->view);
    b->held = 0;
}

/* ------------------------------------------------------------------ attribute access */

/* Attribute names, interned once (module init). */
static PyObject *S_NAMES[42];
static PyObject *ONE, *S_SYSTEM;
enum {
    A_LABELS, A_MEMBERS, A_OPEN_DAYS, A_HOUR_M, A_HOUR_E, A_THRESHOLD, A_FLOOD_S, A_MESSAGES, A_SYSTEM, A_SEQ,
    A_EFFECTIVE, A_EXP_EFF, A_EXP_ADS, A_UNKNOWN, A_UNDATED, A_FLOOD, A_FIRST, A_LAST, A_FIRST_TS, A_LAST_TS,
    A_HAS_REPLY, A_OPEN, A_NEW_MEMBER, A_OPEN_DAY, A_TRACK, A_ADD_Q, A_BAD_LABEL, A_KEY, A_COUNT_MSG, A_COUNT_EFF,
    A_BEST, A_ADS, A_RECENT, A_SENDER, A_SENDER_ID, A_TIME, A_TEXT, A_KIND, A_REPLY_TO, A_STRIP, A_GROUP, A_MSG_ID, A_N
};
static const char *S_STR[A_N] = {
    "labels", "_members", "_open_days", "_hour_messages", "_hour_effective", "relevance_threshold", "_flood_s",
    "messages", "system", "_seq", "effective", "expected_effective", "expected_ads", "unknown_sender", "undated",
    "flood", "_first", "_last", "_first_ts", "_last_ts", "_has_reply_data", "_open", "_new_member", "_open_day",
    "_track_answers", "_add_question", "_unknown_label", "key", "messages", "effective", "best", "ads", "recent",
    "sender", "sender_id", "time", "text", "kind", "reply_to", "strip", "group", "msg_id"};

/* Plain object slots of a class (its __slots__), read and written at their offsets; any other
 * attribute, or an object of another class, goes through getattr / setattr. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t off[A_N];
} Slots;

static void slots_init(Slots *sl, PyObject *type) {
    sl->type = PyType_Check(type) ? (PyTypeObject *)type : NULL;
    for (int a = 0; a < A_N; a++) {
        sl->off[a] = -1;
        if (sl->type == NULL) continue;
        PyObject *d = PyObject_GetAttr(type, S_NAMES[a]);
        if (d == NULL) {
            PyErr_Clear();
            continue;
        }
        if (Py_TYPE(d) == &PyMemberDescr_Type && PyType_IsSubtype(sl->type, PyDescr_TYPE(d))) {
            PyMemberDef *md = ((PyMemberDescrObject *)d)->d_member;
            if (md->type == T_OBJECT_EX && !(md->flags & READONLY)) sl->off[a] = md->offset;
        }
        Py_DECREF(d);
    }
}

static PyObject *fget(PyObject *o, const Slots *sl, int a) {
    if (Py_TYPE(o) == sl->type && sl->off[a] >= 0) {
        PyObject *v = *(PyObject **)((char *)o + sl->off[a]);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(o, S_NAMES[a]);
}

/* o.a = v (v stolen) */
static int fset_steal(PyObject *o, const Slots *sl, int a, PyObject *v) {
    if (v == NULL) return -1;
    if (Py_TYPE(o) == sl->type && sl->off[a] >= 0) {
        PyObject **at = (PyObject **)((char *)o + sl->off[a]);
        PyObject *old = *at;
        *at = v;
        Py_XDECREF(old);
        return 0;
    }
    int r = PyObject_SetAttr(o, S_NAMES[a], v);
    Py_DECREF(v);
    return r;
}

static int finc(PyObject *o, const Slots *sl, int a) {
    PyObject *v = fget(o, sl, a);
    if (v == NULL) return -1;
    PyObject *w = PyNumber_Add(v, ONE);
    Py_DECREF(v);
    return fset_steal(o, sl, a, w);
}

/* ------------------------------------------------------------------ segmentation glue */

static int is_block_char(Py_UCS4 c) {
    /* jieba's re_han_default: [\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-] */
    return (c >= 0x4E00 && c <= 0x9FD5) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '#' || c == '&' || c == '.' || c == '_' ||
           c == '%' || c == '-';
}

/* (.{1,4})\1\1 anywhere in s[a:b] (a block holds no newline, so '.' is any character). */
static int is_periodic(int kind, const void *data, Py_ssize_t a, Py_ssize_t b) {
    for (Py_ssize_t i = a; i < b; i++) {
        for (Py_ssize_t L = 1; L <= 4 && i + 3 * L <= b; L++) {
            Py_ssize_t j = 0;
            for (; j < L; j++) {
                Py_UCS4 c = PyUnicode_READ(kind, data, i + j);
                if (PyUnicode_READ(kind, data, i + L + j) != c || PyUnicode_READ(kind, data, i + 2 * L + j) != c) break;
            }
            if (j == L) return 1;
        }
    }
    return 0;
}

/* segment._tie_prone: a part of s[0:n] between inert characters (inert[c] for ASCII c) is periodic. */
static int is_tie_prone(int kind, const void *data, Py_ssize_t n, const char *inert) {
    Py_ssize_t a = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c >= 128 || !inert[c]) continue;
        }
        if (i > a && is_periodic(kind, data, a, i)) return 1;
        a = i + 1;
    }
    return 0;
}

static int append_steal(PyObject *out, PyObject *item) {
    if (item == NULL) return -1;
    int r = PyList_Append(out, item);
    Py_DECREF(item);
    return r;
}

/* Append every item of an iterable (a tuple or list of tokens). */
static int extend_from(PyObject *out, PyObject *seq) {
    if (seq == NULL) return -1;
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of tokens");
    Py_DECREF(seq);
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_Append(out, items[i]) < 0) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* not freq.get(w): absent, or a prefix entry with frequency 0 */
static int not_a_word(PyObject *freq, PyObject *w) {
    PyObject *v = PyDict_GetItemWithError(freq, w);
    if (v == NULL) return PyErr_Occurred() ? -1 : 1;
    int t = PyObject_IsTrue(v);
    return t < 0 ? -1 : !t;
}

static int append_chars(PyObject *out, PyObject *s, Py_ssize_t a, Py_ssize_t b) {
    for (Py_ssize_t i = a; i < b; i++)
        if (append_steal(out, PyUnicode_Substring(s, i, i + 1)) < 0) return -1;
    return 0;
}

typedef struct {
    PyObject *rj_cut, *freq, *hmm_cut, *periodic_cut;
    char inert[128];
} Engine;

/* segment._flush */
static int flush_buf(PyObject *out, PyObject *blk, Py_ssize_t a, Py_ssize_t b, Engine *e) {
    if (b - a == 1) return append_steal(out, PyUnicode_Substring(blk, a, b));
    PyObject *buf = PyUnicode_Substring(blk, a, b);
    if (buf == NULL) return -1;
    int nw = not_a_word(e->freq, buf);
    int r;
    if (nw < 0) r = -1;
    else if (nw) r = extend_from(out, PyObject_CallOneArg(e->hmm_cut, buf));
    else r = append_chars(out, buf, 0, b - a);
    Py_DECREF(buf);
    return r;
}

/* One Han block: jieba-rs route, single-character steps (and unknown Latin runs) buffered. */
static int cut_block(PyObject *out, PyObject *blk, Engine *e) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(blk);
    if (is_tie_prone(PyUnicode_KIND(blk), PyUnicode_DATA(blk), n, e->inert))
        return extend_from(out, PyObject_CallOneArg(e->periodic_cut, blk));
    PyObject *words = PyObject_CallFunctionObjArgs(e->rj_cut, blk, Py_False, NULL);
    if (words == NULL) return -1;
    PyObject *fast = PySequence_Fast(words, "rjieba cut did not return a sequence");
    Py_DECREF(words);
    if (fast == NULL) return -1;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast), pos = 0, start = -1;
    PyObject **items = PySequence_Fast_ITEMS(fast);
    int r = 0;
    for (Py_ssize_t i = 0; i < m && r == 0; i++) {
        PyObject *w = items[i];
        if (!PyUnicode_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "rjieba cut returned a non-string token");
            r = -1;
            break;
        }
        Py_ssize_t L = PyUnicode_GET_LENGTH(w);
        int buffered = L == 1;
        if (!buffered && PyUnicode_IS_ASCII(w)) {
            int nw = not_a_word(e->freq, w);
            if (nw < 0) { r = -1; break; }
            buffered = nw;
        }
        if (buffered) {
            if (start < 0) start = pos;
        } else {
            if (start >= 0) {
                r = flush_buf(out, blk, start, pos, e);
                start = -1;
            }
            if (r == 0) r = PyList_Append(out, w);
        }
        pos += L;
    }
    Py_DECREF(fast);
    if (r == 0 && pos != n) {
        PyErr_SetString(PyExc_ValueError, "rjieba tokens do not cover the block");
        return -1;
    }
    if (r == 0 && start >= 0) r = flush_buf(out, blk, start, pos, e);
    return r;
}

/* Segmenter._lcut on part = s[a:b] (no typed-token character inside); whitespace tokens dropped. */
static int cut_part(PyObject *out, PyObject *s, Py_ssize_t a, Py_ssize_t b, Engine *e) {
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t i = a;
    while (i < b) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (is_block_char(c)) {
            Py_ssize_t j = i + 1;
            while (j < b && is_block_char(PyUnicode_READ(kind, data, j))) j++;
            PyObject *blk = PyUnicode_Substring(s, i, j);
            if (blk == NULL) return -1;
            int r = cut_block(out, blk, e);
            Py_DECREF(blk);
            if (r < 0) return -1;
            i = j;
        } else {
            /* outside blocks every character is a token ("\r\n" one token); whitespace is dropped */
            Py_ssize_t w = (c == '\r' && i + 1 < b && PyUnicode_READ(kind, data, i + 1) == '\n') ? 2 : 1;
            if (!Py_UNICODE_ISSPACE(c))
                if (append_steal(out, PyUnicode_Substring(s, i, i + 1)) < 0) return -1;
            i += w;
        }
    }
    return 0;
}

static PyObject *native_cut(PyObject *self, PyObject *args) {
    PyObject *norm, *names, *inert;
    Engine e;
    if (!PyArg_ParseTuple(args, "UO!OO!OOU:cut", &norm, &PyDict_Type, &names, &e.rj_cut, &PyDict_Type, &e.freq,
                          &e.hmm_cut, &e.periodic_cut, &inert))
        return NULL;
    memset(e.inert, 0, sizeof e.inert);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(inert); i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(inert, i);
        if (c >= 128) {
            PyErr_SetString(PyExc_ValueError, "inert characters must be ASCII");
            return NULL;
        }
        e.inert[c] = 1;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(norm), start = 0;
    int kind = PyUnicode_KIND(norm);
    const void *data = PyUnicode_DATA(norm);
    for (Py_ssize_t i = 0; i <= n; i++) {
        PyObject *name = NULL;
        if (i < n) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 0xE000 || c > 0xF8FF) continue; /* typed tokens are private-use characters */
            PyObject *ch = PyUnicode_FromOrdinal(c);
            if (ch == NULL) goto fail;
            name = PyDict_GetItemWithError(names, ch);
            Py_DECREF(ch);
            if (name == NULL) {
                if (PyErr_Occurred()) goto fail;
                continue;
            }
            Py_INCREF(name); /* held across the calls into Python below */
        }
        int rc = (i > start && cut_part(out, norm, start, i, &e) < 0) || (name != NULL && PyList_Append(out, name) < 0);
        Py_XDECREF(name);
        if (rc) goto fail;
        start = i + 1;
    }
    PyObject *t = PyList_AsTuple(out);
    Py_DECREF(out);
    return t;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ n-gram tables */

static inline uint64_t mix(uint64_t k) { return k * 0x9E3779B97F4A7C15ULL; }

/* hash_table(keys int64[n], cols int64[n], bits) -> bytes: 2**bits slots of (uint64 key+1, int32 col) */
typedef struct {
    uint64_t key; /* stored key + 1; 0 = empty */
    int32_t col;
    int32_t pad;
} Slot;

static PyObject *native_hash_table(PyObject *self, PyObject *args) {
    PyObject *ko, *co;
    int bits;
    if (!PyArg_ParseTuple(args, "OOi:hash_table", &ko, &co, &bits)) return NULL;
    if (bits < 1 || bits > 30) {
        PyErr_SetString(PyExc_ValueError, "hash_table: bits out of range");
        return NULL;
    }
    Buf kb, cb;
    if (get_buf(ko, &kb, 8, 'i', 0, "keys") < 0) return NULL;
    if (get_buf(co, &cb, 8, 'i', 0, "cols") < 0) { rel_buf(&kb); return NULL; }
    Py_ssize_t n = kb.view.len / 8, cap = (Py_ssize_t)1 << bits;
    PyObject *res = NULL;
    if (cb.view.len / 8 != n || n * 2 > cap) {
        PyErr_SetString(PyExc_ValueError, "hash_table: keys and cols differ in length, or the table is too small");
        goto done;
    }
    res = PyBytes_FromStringAndSize(NULL, cap * (Py_ssize_t)sizeof(Slot));
    if (res == NULL) goto done;
    Slot *tab = (Slot *)PyBytes_AS_STRING(res);
    memset(tab, 0, cap * sizeof(Slot));
    const int64_t *keys = (const int64_t *)kb.view.buf, *cols = (const int64_t *)cb.view.buf;
    uint64_t mask = (uint64_t)cap - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = (uint64_t)keys[i] + 1, h = mix(k) >> (64 - bits);
        while (tab[h].key && tab[h].key != k) h = (h + 1) & mask;
        tab[h].key = k;
        tab[h].col = (int32_t)cols[i];
    }
done:
    rel_buf(&kb);
    rel_buf(&cb);
    return res;
}

typedef struct {
    const Slot *slots;
    int bits;
    uint64_t mask;
} Table;

static inline int32_t find(const Table *t, uint64_t key) {
    uint64_t k = key + 1, h = mix(k) >> (64 - t->bits);
    for (;;) {
        const Slot *s = &t->slots[h];
        if (s->key == k) return s->col;
        if (!s->key) return -1;
        h = (h + 1) & t->mask;
    }
}

static int table_from(PyObject *bytes, int bits, Table *t) {
    if (!PyBytes_Check(bytes) || bits < 1 || bits > 30 ||
        PyBytes_GET_SIZE(bytes) != ((Py_ssize_t)1 << bits) * (Py_ssize_t)sizeof(Slot)) {
        PyErr_SetString(PyExc_ValueError, "xw: not a hash table of that size");
        return -1;
    }
    t->slots = (const Slot *)PyBytes_AS_STRING(bytes);
    t->bits = bits;
    t->mask = ((uint64_t)1 << bits) - 1;
    return 0;
}

/* ------------------------------------------------------------------ X @ W */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void sort_cols(int32_t *c, Py_ssize_t n) {
    if (n > 32) {
        qsort(c, n, sizeof(int32_t), cmp_i32);
        return;
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t v = c[i];
        Py_ssize_t j = i;
        while (j > 0 && c[j - 1] > v) { c[j] = c[j - 1]; j--; }
        c[j] = v;
    }
}

typedef struct {
    const float *W; /* (rows, K) */
    const double *Wd;
    Py_ssize_t K;
    const float *logtab;
    Py_ssize_t nlog;
} Dot;

/* y += a * W[row] (one CSR entry), in the weights' width, as scipy's product accumulates */
static void add_row(float a, Py_ssize_t row, const Dot *d, float *y, double *yd) {
    if (y) {
        const float *w = d->W + row * d->K;
        for (Py_ssize_t k = 0; k < d->K; k++) {
            float p = a * w[k];
            y[k] = y[k] + p;
        }
    } else {
        const double *w = d->Wd + row * d->K;
        double ad = (double)a;
        for (Py_ssize_t k = 0; k < d->K; k++) {
            double p = ad * w[k];
            yd[k] = yd[k] + p;
        }
    }
}

/* One block of one text: cols (unsorted, repeated = term frequency) -> sorted TF-IDF entries,
 * L2-normalised as linear._Vocab._tfidf does, each added to y (float32 or float64 accumulate). */
static int add_block(int32_t *cols, Py_ssize_t n, const float *idf, Py_ssize_t offset, const Dot *d, float *y,
                     double *yd, float *vals) {
    if (n == 0) return 0;
    sort_cols(cols, n);
    Py_ssize_t u = 0;
    double sq = 0.0;
    for (Py_ssize_t i = 0; i < n;) {
        Py_ssize_t j = i + 1;
        while (j < n && cols[j] == cols[i]) j++;
        Py_ssize_t tf = j - i;
        if (tf >= d->nlog) return -1;
        float v = (1.0f + d->logtab[tf]) * idf[cols[i]];
        float v2 = v * v;
        sq += (double)v2;
        cols[u] = cols[i];
        vals[u++] = v;
        i = j;
    }
    float norm = (float)sqrt(sq);
    for (Py_ssize_t i = 0; i < u; i++) add_row(vals[i] / norm, offset + cols[i], d, y, yd);
    return 0;
}

static inline uint64_t cp1(int kind, const void *data, Py_ssize_t len, Py_ssize_t i) {
    /* code point + 1 of "\x02" + text + "\x03" at position i */
    if (i == 0) return 0x02 + 1;
    if (i == len + 1) return 0x03 + 1;
    return (uint64_t)PyUnicode_READ(kind, data, i - 1) + 1;
}

/* xw(norms, lo, hi, char_tab, char_bits, char_idf, ids, lens, uni_col, pair_tab, pair_bits, word_idf,
 *    cues, W, n_char, n_word, logtab, out) -> 0, or -1 when a term frequency is past logtab
 *    (the caller then takes the plain path). out (n, K) must be zero-filled. */
static PyObject *native_xw(PyObject *self, PyObject *args) {
    PyObject *norms, *ctab_o, *cidf_o, *ids_o, *lens_o, *ucol_o, *ptab_o, *widf_o, *q_o, *W_o, *log_o, *out_o;
    int lo, hi, cbits, pbits;
    Py_ssize_t nc, nw;
    if (!PyArg_ParseTuple(args, "O!iiOiOOOOOiOOOnnOO:xw", &PyList_Type, &norms, &lo, &hi, &ctab_o, &cbits, &cidf_o,
                          &ids_o, &lens_o, &ucol_o, &ptab_o, &pbits, &widf_o, &q_o, &W_o, &nc, &nw, &log_o, &out_o))
        return NULL;
    if (lo < 1 || hi > 3 || lo > hi) {
        PyErr_SetString(PyExc_ValueError, "xw: character n-gram range must lie within 1..3");
        return NULL;
    }
    Table ct, pt;
    if (table_from(ctab_o, cbits, &ct) < 0 || table_from(ptab_o, pbits, &pt) < 0) return NULL;
    Buf cidf = {0}, ids = {0}, lens = {0}, ucol = {0}, widf = {0}, q = {0}, W = {0}, lg = {0}, out = {0};
    PyObject *res = NULL;
    int32_t *cols = NULL;
    float *vals = NULL;
    if (get_buf(cidf_o, &cidf, 4, 'f', 0, "char_idf") < 0 || get_buf(ids_o, &ids, 8, 'i', 0, "ids") < 0 ||
        get_buf(lens_o, &lens, 8, 'i', 0, "lens") < 0 || get_buf(ucol_o, &ucol, 8, 'i', 0, "uni_col") < 0 ||
        get_buf(widf_o, &widf, 4, 'f', 0, "word_idf") < 0 || get_buf(q_o, &q, 4, 'f', 0, "cues") < 0 ||
        get_buf(log_o, &lg, 4, 'f', 0, "logtab") < 0)
        goto done;
    int wide = 0;
    if (PyObject_GetBuffer(W_o, &W.view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    W.held = 1;
    wide = W.view.itemsize == 8;
    if (get_buf(out_o, &out, wide ? 8 : 4, 'f', 1, "out") < 0 || (W.view.itemsize != 4 && W.view.itemsize != 8) ||
        W.view.ndim != 2 || out.view.ndim != 2) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "xw: W and out must be 2-d float arrays of one width");
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(norms), K = W.view.shape[1], nq = 0;
    Py_ssize_t n_cols_char = cidf.view.len / 4, n_cols_word = widf.view.len / 4, n_ids = ids.view.len / 8;
    if (q.view.ndim == 2 && q.view.shape[0] == n) nq = q.view.shape[1];
    if (out.view.shape[0] != n || out.view.shape[1] != K || lens.view.len / 8 != n || n_cols_char != nc ||
        n_cols_word != nw || (q.view.ndim != 2 || q.view.shape[0] != n) || W.view.shape[0] != nc + nw + nq) {
        PyErr_SetString(PyExc_ValueError, "xw: array shapes do not fit together");
        goto done;
    }
    Dot d = {wide ? NULL : (const float *)W.view.buf, wide ? (const double *)W.view.buf : NULL, K,
             (const float *)lg.view.buf, lg.view.len / 4};
    const int64_t *idp = (const int64_t *)ids.view.buf, *lenp = (const int64_t *)lens.view.buf,
                  *ucp = (const int64_t *)ucol.view.buf;
    Py_ssize_t n_uni = ucol.view.len / 8, cap = 0, off = 0;
    const float *qp = (const float *)q.view.buf;
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *s = PyList_GET_ITEM(norms, r);
        if (!PyUnicode_Check(s)) {
            PyErr_SetString(PyExc_TypeError, "xw: norms must be strings");
            goto done;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(s), m = len + 2, tl = lenp[r];
        if (tl < 0 || off + tl > n_ids) {
            PyErr_SetString(PyExc_ValueError, "xw: token counts exceed the ids");
            goto done;
        }
        Py_ssize_t need = 3 * m + 2 * tl + 1;
        if (need > cap) {
            cap = need * 2;
            int32_t *c2 = realloc(cols, cap * sizeof(int32_t));
            float *v2 = c2 ? realloc(vals, cap * sizeof(float)) : NULL;
            if (c2) cols = c2;
            if (!v2) { PyErr_NoMemory(); goto done; }
            vals = v2;
        }
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        float *y = wide ? NULL : (float *)out.view.buf + r * K;
        double *yd = wide ? (double *)out.view.buf + r * K : NULL;
        /* character block */
        Py_ssize_t c = 0;
        for (int k = lo; k <= hi; k++) {
            for (Py_ssize_t i = 0; i + k <= m; i++) {
                uint64_t key = 0;
                for (int t = 0; t < k; t++) key = (key << 21) | cp1(kind, data, len, i + t);
                int32_t col = find(&ct, key);
                if (col >= 0) cols[c++] = col;
            }
        }
        if (add_block(cols, c, (const float *)cidf.view.buf, 0, &d, y, yd, vals) < 0) goto too_long;
        /* word block: unigrams, then bigrams of two known tokens */
        c = 0;
        const int64_t *ti = idp + off;
        for (Py_ssize_t i = 0; i < tl; i++) {
            int64_t a = ti[i];
            if (a >= 0 && a < n_uni && ucp[a] >= 0) cols[c++] = (int32_t)ucp[a];
        }
        for (Py_ssize_t i = 0; i + 1 < tl; i++) {
            int64_t a = ti[i], b = ti[i + 1];
            if (a < 0 || b < 0) continue;
            int32_t col = find(&pt, ((uint64_t)a << 32) | (uint64_t)b);
            if (col >= 0) cols[c++] = col;
        }
        if (add_block(cols, c, (const float *)widf.view.buf, nc, &d, y, yd, vals) < 0) goto too_long;
        off += tl;
        /* cue block: the non-zero values of the dense cue row, in column order */
        for (Py_ssize_t j = 0; j < nq; j++) {
            float a = qp[r * nq + j];
            if (a != 0.0f) add_row(a, nc + nw + j, &d, y, yd);
        }
    }
    res = PyLong_FromLong(0);
    goto done;
too_long:
    res = PyLong_FromLong(-1);
done:
    free(cols);
    free(vals);
    rel_buf(&cidf); rel_buf(&ids); rel_buf(&lens); rel_buf(&ucol); rel_buf(&widf);
    rel_buf(&q); rel_buf(&W); rel_buf(&lg); rel_buf(&out);
    return res;
}


/* ------------------------------------------------------------------ messages.jsonl */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Out;

static int out_reserve(Out *o, Py_ssize_t extra) {
    if (o->n + extra <= o->cap) return 0;
    Py_ssize_t cap = o->cap ? o->cap : 1 << 16;
    while (cap < o->n + extra) cap *= 2;
    char *p = realloc(o->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static int out_put(Out *o, const char *s, Py_ssize_t n) {
    if (out_reserve(o, n) < 0) return -1;
    memcpy(o->p + o->n, s, n);
    o->n += n;
    return 0;
}

/* A JSON string as orjson writes it: UTF-8, \" \\ \b \t \n \f \r, other controls as \u00xx.
 * Encoded straight from the string's code points (no cached UTF-8 copy per string).
 * Returns 1 when the string cannot be written here (lone surrogates: orjson refuses them). */
static int out_str(Out *o, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (out_reserve(o, 6 * n + 2) < 0) return -1;
    char *w = o->p + o->n;
    *w++ = '"';
    static const char hex[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\') {
                *w++ = (char)c;
                continue;
            }
            *w++ = '\\';
            switch (c) {
                case '"': *w++ = '"'; break;
                case '\\': *w++ = '\\'; break;
                case '\b': *w++ = 'b'; break;
                case '\t': *w++ = 't'; break;
                case '\n': *w++ = 'n'; break;
                case '\f': *w++ = 'f'; break;
                case '\r': *w++ = 'r'; break;
                default:
                    *w++ = 'u'; *w++ = '0'; *w++ = '0'; *w++ = hex[c >> 4]; *w++ = hex[c & 15];
            }
        } else if (c < 0x800) {
            *w++ = (char)(0xC0 | (c >> 6));
            *w++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            if (c >= 0xD800 && c <= 0xDFFF) return 1;
            *w++ = (char)(0xE0 | (c >> 12));
            *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *w++ = (char)(0x80 | (c & 0x3F));
        } else {
            *w++ = (char)(0xF0 | (c >> 18));
            *w++ = (char)(0x80 | ((c >> 12) & 0x3F));
            *w++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *w++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *w++ = '"';
    o->n = w - o->p;
    return 0;
}

static char *put2(char *w, int v) {
    *w++ = (char)('0' + v / 10);
    *w++ = (char)('0' + v % 10);
    return w;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]" as orjson writes a datetime; 1 = not writable here. */
static int out_time(Out *o, PyObject *t) {
    if (t == Py_None) return out_put(o, "null", 4);
    if (!PyDateTime_CheckExact(t)) return 1;
    int year = PyDateTime_GET_YEAR(t), us = PyDateTime_DATE_GET_MICROSECOND(t);
    if (year < 1 || year > 9999) return 1;
    char buf[48], *w = buf;
    *w++ = '"';
    w = put2(put2(w, year / 100), year % 100);
    *w++ = '-';
    w = put2(w, PyDateTime_GET_MONTH(t));
    *w++ = '-';
    w = put2(w, PyDateTime_GET_DAY(t));
    *w++ = 'T';
    w = put2(w, PyDateTime_DATE_GET_HOUR(t));
    *w++ = ':';
    w = put2(w, PyDateTime_DATE_GET_MINUTE(t));
    *w++ = ':';
    w = put2(w, PyDateTime_DATE_GET_SECOND(t));
    if (us) {
        *w++ = '.';
        w = put2(put2(put2(w, us / 10000), us / 100 % 100), us % 100);
    }
    int k = (int)(w - buf);
    PyObject *tz = PyDateTime_DATE_GET_TZINFO(t);
    if (tz != Py_None) {
        PyObject *off = PyObject_CallMethod(tz, "utcoffset", "O", t);
        if (off == NULL) return -1;
        if (off == Py_None || !PyDelta_Check(off)) {
            Py_DECREF(off);
            return 1;
        }
        int days = PyDateTime_DELTA_GET_DAYS(off), secs = PyDateTime_DELTA_GET_SECONDS(off),
            dus = PyDateTime_DELTA_GET_MICROSECONDS(off);
        Py_DECREF(off);
        long total = (long)days * 86400 + secs;
        if (dus || total % 60) return 1; /* an offset with seconds: left to orjson */
        char sign = total < 0 ? '-' : '+';
        if (total < 0) total = -total;
        k += snprintf(buf + k, sizeof buf - k, "%c%02ld:%02ld", sign, total / 3600, total / 60 % 60);
    }
    buf[k++] = '"';
    return out_put(o, buf, k);
}

/* The Message fields in declaration order: the keys of a messages.jsonl record. */
static const int JSONL_FIELDS[8] = {A_GROUP, A_SENDER, A_SENDER_ID, A_TIME, A_TEXT, A_KIND, A_MSG_ID, A_REPLY_TO};

/* jsonl(batch, index, frags, system_frag, message_type, fallback) -> bytes: one line per record,
 * each ending in a newline: {<the record's fields>,<frag>}. fallback(m, frag) -> bytes writes a
 * line (without its newline) the compiled writer does not. */
static PyObject *native_jsonl(PyObject *self, PyObject *args) {
    PyObject *batch_l, *index_l, *frags_l, *sys_frag, *mtype, *fallback;
    if (!PyArg_ParseTuple(args, "O!O!O!SOO:jsonl", &PyList_Type, &batch_l, &PyList_Type, &index_l, &PyList_Type,
                          &frags_l, &sys_frag, &mtype, &fallback))
        return NULL;
    /* Tuples of the inputs, owned here: a callback (a tzinfo, the fallback) cannot free a record
     * or a fragment while it is being written. */
    PyObject *batch = PySequence_Tuple(batch_l), *index = PySequence_Tuple(index_l), *frags = PySequence_Tuple(frags_l);
    PyObject *res = NULL;
    Out o = {NULL, 0, 0};
    if (batch == NULL || index == NULL || frags == NULL) goto fail;
    Py_ssize_t n = PyTuple_GET_SIZE(batch), nf = PyTuple_GET_SIZE(frags);
    if (PyTuple_GET_SIZE(index) != n) {
        PyErr_SetString(PyExc_ValueError, "jsonl: batch and index differ in length");
        goto fail;
    }
    Slots ms;
    slots_init(&ms, mtype);
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *m = PyTuple_GET_ITEM(batch, r);
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(index, r));
        if (i == -1 && PyErr_Occurred()) goto fail;
        if (i >= nf) {
            PyErr_SetString(PyExc_IndexError, "jsonl: index past the fragments");
            goto fail;
        }
        PyObject *frag = i < 0 ? sys_frag : PyTuple_GET_ITEM(frags, i);
        if (!PyBytes_Check(frag)) {
            PyErr_SetString(PyExc_TypeError, "jsonl: fragments must be bytes");
            goto fail;
        }
        Py_ssize_t start = o.n;
        int plain = (PyObject *)Py_TYPE(m) == mtype;
        for (int f = 0; f < 8 && plain; f++) {
            const char *key = S_STR[JSONL_FIELDS[f]];
            if (out_put(&o, f ? ",\"" : "{\"", 2) < 0 || out_put(&o, key, strlen(key)) < 0 || out_put(&o, "\":", 2) < 0)
                goto fail;
            PyObject *v = fget(m, &ms, JSONL_FIELDS[f]);
            if (v == NULL) goto fail;
            int rc = JSONL_FIELDS[f] == A_TIME ? out_time(&o, v) : (PyUnicode_CheckExact(v) ? out_str(&o, v) : 1);
            Py_DECREF(v);
            if (rc < 0) goto fail;
            if (rc > 0) plain = 0;
        }
        if (plain) {
            if (out_put(&o, ",", 1) < 0 || out_put(&o, PyBytes_AS_STRING(frag), PyBytes_GET_SIZE(frag)) < 0 ||
                out_put(&o, "}\n", 2) < 0)
                goto fail;
            continue;
        }
        o.n = start;
        PyObject *line = PyObject_CallFunctionObjArgs(fallback, m, frag, NULL);
        if (line == NULL) goto fail;
        int rc = PyBytes_Check(line) ? out_put(&o, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line)) : -2;
        Py_DECREF(line);
        if (rc == -2) PyErr_SetString(PyExc_TypeError, "jsonl: the fallback must return bytes");
        if (rc < 0 || out_put(&o, "\n", 1) < 0) goto fail;
    }
    res = PyBytes_FromStringAndSize(o.p ? o.p : "", o.n);
fail:
    free(o.p);
    Py_XDECREF(batch);
    Py_XDECREF(index);
    Py_XDECREF(frags);
    return res;
}

/* A float as orjson writes it, if repr() writes it the same way (no exponent, finite).
 * Fast path: a value with at most four decimals (what the writer rounds to) is the double
 * nearest k / 10000, whose shortest repr is that decimal without trailing zeros. */
static int out_float(Out *o, PyObject *v) {
    if (!PyFloat_CheckExact(v)) return 1; /* an int, a bool, a numpy scalar: orjson's own rules */
    double x = PyFloat_AS_DOUBLE(v);
    if ((x > 0.0 || (x == 0.0 && !signbit(x))) && x < 1e9) {
        long long k = llround(x * 10000.0);
        if ((double)k / 10000.0 == x) {
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%lld.", k / 10000);
            int frac = (int)(k % 10000), digits = 4;
            if (frac == 0) {
                buf[n++] = '0';
            } else {
                while (frac % 10 == 0) { frac /= 10; digits--; }
                for (int d = digits - 1; d >= 0; d--) { buf[n + d] = (char)('0' + frac % 10); frac /= 10; }
                n += digits;
            }
            return out_put(o, buf, n);
        }
    }
    char *r = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL) return -1;
    int ok = strpbrk(r, "eEni") == NULL;
    int rc = ok ? out_put(o, r, strlen(r)) : 1;
    PyMem_Free(r);
    return rc;
}

/* frags(labels, rows, rel4, rel, p_eff, threshold, sure_bar, names, on_topic, question) -> list:
 * per distinct text the classification half of its messages.jsonl line, as orjson writes
 *   {"label":..,"probs":{name: p, ..},"relevance":..,"effective":..,"sure":..,"system":false}
 * without its braces; None where a value would not be written the same way (the caller then
 * writes that one). effective: on_topic, or a question with rel >= threshold; sure: effective
 * and (p_eff is None or p_eff >= sure_bar). */
static PyObject *native_frags(PyObject *self, PyObject *args) {
    PyObject *labels, *rows, *rel4, *rel, *peff, *names, *on_topic, *question;
    double threshold, bar;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!ddO!UU:frags", &PyList_Type, &labels, &PyList_Type, &rows, &PyList_Type,
                          &rel4, &PyList_Type, &rel, &PyList_Type, &peff, &threshold, &bar, &PyTuple_Type, &names,
                          &on_topic, &question))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(labels), k = PyTuple_GET_SIZE(names);
    if (PyList_GET_SIZE(rows) != n || PyList_GET_SIZE(rel4) != n || PyList_GET_SIZE(rel) != n ||
        PyList_GET_SIZE(peff) != n) {
        PyErr_SetString(PyExc_ValueError, "frags: lists differ in length");
        return NULL;
    }
    for (Py_ssize_t j = 0; j < k; j++)
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, j))) {
            PyErr_SetString(PyExc_TypeError, "frags: label names must be strings");
            return NULL;
        }
    PyObject *res = PyList_New(n);
    if (res == NULL) return NULL;
    Out o = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lab = PyList_GET_ITEM(labels, i), *row = PyList_GET_ITEM(rows, i);
        if (!PyUnicode_Check(lab) || !PyList_Check(row) || PyList_GET_SIZE(row) != k) {
            PyErr_SetString(PyExc_TypeError, "frags: a label must be a str and a row a list of one float per name");
            goto fail;
        }
        int is_on = PyUnicode_Compare(lab, on_topic) == 0, is_q = !is_on && PyUnicode_Compare(lab, question) == 0;
        if (PyErr_Occurred()) goto fail;
        double r = PyFloat_AsDouble(PyList_GET_ITEM(rel, i));
        if (r == -1.0 && PyErr_Occurred()) goto fail;
        int eff = is_on || (is_q && r >= threshold), sure = 0;
        if (eff) {
            PyObject *pe = PyList_GET_ITEM(peff, i);
            if (pe == Py_None) sure = 1;
            else {
                double p = PyFloat_AsDouble(pe);
                if (p == -1.0 && PyErr_Occurred()) goto fail;
                sure = p >= bar;
            }
        }
        o.n = 0;
        int rc = out_put(&o, "\"label\":", 8);
        if (rc == 0) rc = out_str(&o, lab);
        if (rc == 0) rc = out_put(&o, ",\"probs\":{", 10);
        for (Py_ssize_t j = 0; j < k && rc == 0; j++) {
            if (j) rc = out_put(&o, ",", 1);
            if (rc == 0) rc = out_str(&o, PyTuple_GET_ITEM(names, j));
            if (rc == 0) rc = out_put(&o, ":", 1);
            if (rc == 0) rc = out_float(&o, PyList_GET_ITEM(row, j));
        }
        if (rc == 0) rc = out_put(&o, "},\"relevance\":", 14);
        if (rc == 0) rc = out_float(&o, PyList_GET_ITEM(rel4, i));
        if (rc == 0) rc = eff ? out_put(&o, ",\"effective\":true", 17) : out_put(&o, ",\"effective\":false", 18);
        if (rc == 0) rc = sure ? out_put(&o, ",\"sure\":true", 12) : out_put(&o, ",\"sure\":false", 13);
        if (rc == 0) rc = out_put(&o, ",\"system\":false", 15);
        if (rc < 0) goto fail;
        PyObject *b;
        if (rc > 0) {
            b = Py_None;
            Py_INCREF(b);
        } else if ((b = PyBytes_FromStringAndSize(o.p, o.n)) == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(res, i, b);
    }
    free(o.p);
    return res;
fail:
    free(o.p);
    Py_DECREF(res);
    return NULL;
}

/* ------------------------------------------------------------------ chat cues */

#define NB 256
typedef struct {
    Py_UCS4 *cp;         /* all literals' code points, concatenated */
    Py_ssize_t *start;   /* literal i: cp[start[i] .. start[i] + len[i]) */
    Py_ssize_t *len;
    Py_ssize_t n;
    Py_ssize_t bstart[NB + 1]; /* bucket of first code point % NB: ids[bstart[b] .. bstart[b+1]), ascending */
    Py_ssize_t *ids;
} Lits;

typedef struct {
    Lits q_word, q_start, ad_word, trade, phatic;
    Py_UCS4 *laugh, *qf_head, *qf_tail, *only;
    Py_ssize_t n_laugh, n_qf_head, n_qf_tail, n_only;
    Py_UCS4 tok[8]; /* contact, url, qq, phone, wxid, price, mention, num */
} CueSpec;

static void lits_free(Lits *l) {
    PyMem_Free(l->cp); PyMem_Free(l->start); PyMem_Free(l->len); PyMem_Free(l->ids);
}

static void spec_free(PyObject *cap) {
    CueSpec *c = PyCapsule_GetPointer(cap, "groupscore.cues");
    if (c == NULL) return;
    lits_free(&c->q_word); lits_free(&c->q_start); lits_free(&c->ad_word); lits_free(&c->trade);
    lits_free(&c->phatic);
    PyMem_Free(c->laugh); PyMem_Free(c->qf_head); PyMem_Free(c->qf_tail); PyMem_Free(c->only);
    PyMem_Free(c);
}

static int lits_from(PyObject *seq, Lits *l) {
    PyObject *fast = PySequence_Fast(seq, "cue_spec: expected a sequence of literals");
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast), total = 0;
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(items[i]) || PyUnicode_GET_LENGTH(items[i]) == 0) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_TypeError, "cue_spec: literals must be non-empty strings");
            return -1;
        }
        total += PyUnicode_GET_LENGTH(items[i]);
    }
    l->n = n;
    l->cp = PyMem_Malloc((total + 1) * sizeof(Py_UCS4));
    l->start = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    l->len = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    l->ids = PyMem_Malloc((n + 1) * sizeof(Py_ssize_t));
    if (!l->cp || !l->start || !l->len || !l->ids) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0, count[NB] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *u = items[i];
        Py_ssize_t L = PyUnicode_GET_LENGTH(u);
        l->start[i] = at;
        l->len[i] = L;
        for (Py_ssize_t j = 0; j < L; j++) l->cp[at + j] = PyUnicode_READ_CHAR(u, j);
        count[l->cp[at] % NB]++;
        at += L;
    }
    l->bstart[0] = 0;
    for (int b = 0; b < NB; b++) l->bstart[b + 1] = l->bstart[b] + count[b];
    Py_ssize_t fill[NB];
    memcpy(fill, l->bstart, sizeof fill);
    for (Py_ssize_t i = 0; i < n; i++) l->ids[fill[l->cp[l->start[i]] % NB]++] = i;
    Py_DECREF(fast);
    return 0;
}

static int chars_from(PyObject *u, Py_UCS4 **out, Py_ssize_t *n) {
    if (!PyUnicode_Check(u)) {
        PyErr_SetString(PyExc_TypeError, "cue_spec: expected a string of characters");
        return -1;
    }
    *n = PyUnicode_GET_LENGTH(u);
    *out = PyMem_Malloc((*n + 1) * sizeof(Py_UCS4));
    if (*out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *n; i++) (*out)[i] = PyUnicode_READ_CHAR(u, i);
    return 0;
}

static int in_chars(Py_UCS4 c, const Py_UCS4 *set, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (set[i] == c) return 1;
    return 0;
}

/* The first literal (in the alternation's order) that matches at s[i:], or -1; its length in *len. */
static Py_ssize_t lit_at(const Lits *l, int kind, const void *data, Py_ssize_t n, Py_ssize_t i, Py_ssize_t *len) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    int b = c % NB;
    for (Py_ssize_t k = l->bstart[b]; k < l->bstart[b + 1]; k++) {
        Py_ssize_t id = l->ids[k], L = l->len[id];
        const Py_UCS4 *p = l->cp + l->start[id];
        if (p[0] != c || i + L > n) continue;
        Py_ssize_t j = 1;
        while (j < L && PyUnicode_READ(kind, data, i + j) == p[j]) j++;
        if (j == L) {
            *len = L;
            return id;
        }
    }
    return -1;
}

static PyObject *native_cue_spec(PyObject *self, PyObject *args) {
    PyObject *qw, *qs, *ad, *tr, *ph, *laugh, *qf_head, *qf_tail, *only, *tok;
    if (!PyArg_ParseTuple(args, "OOOOOUUUUU:cue_spec", &qw, &qs, &ad, &tr, &ph, &laugh, &qf_head, &qf_tail, &only,
                          &tok))
        return NULL;
    if (PyUnicode_GET_LENGTH(tok) != 8) {
        PyErr_SetString(PyExc_ValueError, "cue_spec: expected the 8 token characters");
        return NULL;
    }
    CueSpec *c = PyMem_Calloc(1, sizeof(CueSpec));
    if (c == NULL) return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(c, "groupscore.cues", spec_free);
    if (cap == NULL) {
        PyMem_Free(c);
        return NULL;
    }
    if (lits_from(qw, &c->q_word) < 0 || lits_from(qs, &c->q_start) < 0 || lits_from(ad, &c->ad_word) < 0 ||
        lits_from(tr, &c->trade) < 0 || lits_from(ph, &c->phatic) < 0 ||
        chars_from(laugh, &c->laugh, &c->n_laugh) < 0 || chars_from(qf_head, &c->qf_head, &c->n_qf_head) < 0 ||
        chars_from(qf_tail, &c->qf_tail, &c->n_qf_tail) < 0 || chars_from(only, &c->only, &c->n_only) < 0) {
        Py_DECREF(cap);
        return NULL;
    }
    for (int k = 0; k < 8; k++) c->tok[k] = PyUnicode_READ_CHAR(tok, k);
    return cap;
}

/* cues(norms, spec, out): out (n, 17) float64, the columns 3.. of features.cue_matrix in order. */
static PyObject *native_cues(PyObject *self, PyObject *args) {
    PyObject *norms, *cap, *out_o;
    if (!PyArg_ParseTuple(args, "O!OO:cues", &PyList_Type, &norms, &cap, &out_o)) return NULL;
    CueSpec *c = PyCapsule_GetPointer(cap, "groupscore.cues");
    if (c == NULL) return NULL;
    Buf out;
    if (get_buf(out_o, &out, 8, 'f', 1, "out") < 0) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(norms);
    if (out.view.ndim != 2 || out.view.shape[0] != n || out.view.shape[1] != 17) {
        rel_buf(&out);
        PyErr_SetString(PyExc_ValueError, "cues: out must be (n, 17)");
        return NULL;
    }
    double *o = (double *)out.view.buf;
    for (Py_ssize_t r = 0; r < n; r++, o += 17) {
        PyObject *s = PyList_GET_ITEM(norms, r);
        if (!PyUnicode_Check(s)) {
            rel_buf(&out);
            PyErr_SetString(PyExc_TypeError, "cues: norms must be strings");
            return NULL;
        }
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        Py_ssize_t len = PyUnicode_GET_LENGTH(s), L;
        /* '$' matches at the end and before a final newline */
        Py_ssize_t end = (len && PyUnicode_READ(kind, data, len - 1) == '\n') ? len - 1 : len;
        int qmark = 0, has[8] = {0}, cjk = 0, only = 1, laugh = end > 0, q_word = 0;
        Py_ssize_t latin = 0, digits = 0, ads = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            Py_UCS4 ch = PyUnicode_READ(kind, data, i);
            if (ch == '?') qmark = 1;
            for (int k = 0; k < 8; k++)
                if (ch == c->tok[k]) has[k] = 1;
            if (ch >= 0x4e00 && ch <= 0x9fff) cjk = 1;
            if (ch >= 'a' && ch <= 'z') latin++;
            if (ch == c->tok[7] || Py_UNICODE_ISDIGIT(ch)) digits++;
            if (only && !in_chars(ch, c->only, c->n_only)) only = 0;
            if (laugh && i < end && !in_chars(ch, c->laugh, c->n_laugh)) laugh = 0;
            if (!q_word && lit_at(&c->q_word, kind, data, len, i, &L) >= 0) q_word = 1;
        }
        for (Py_ssize_t i = 0; i < len;) { /* findall: leftmost, first alternative, no overlap */
            if (lit_at(&c->ad_word, kind, data, len, i, &L) >= 0) {
                ads++;
                i += L;
            } else {
                i++;
            }
        }
        /* [head][tail]*$ | [?]$ */
        Py_ssize_t p = end;
        while (p > 0 && in_chars(PyUnicode_READ(kind, data, p - 1), c->qf_tail, c->n_qf_tail)) p--;
        int q_final = (p > 0 && in_chars(PyUnicode_READ(kind, data, p - 1), c->qf_head, c->n_qf_head)) ||
                      (end > 0 && PyUnicode_READ(kind, data, end - 1) == '?');
        Py_ssize_t m = len > 1 ? len : 1;
        o[0] = qmark;
        o[1] = q_final;
        o[2] = q_word;
        o[3] = len && lit_at(&c->q_start, kind, data, len, 0, &L) >= 0;
        o[4] = (double)(ads < 3 ? ads : 3) / 3.0;
        o[5] = len && lit_at(&c->trade, kind, data, len, 0, &L) >= 0;
        o[6] = has[0];
        o[7] = has[1];
        o[8] = has[2] || has[3] || has[4];
        o[9] = has[5];
        o[10] = len > 0 && only;
        o[11] = len > 0 && laugh;
        o[12] = len <= 8 && len && lit_at(&c->phatic, kind, data, len, 0, &L) >= 0;
        o[13] = has[6];
        o[14] = (double)latin / (double)m;
        o[15] = (double)digits / (double)m;
        o[16] = !cjk;
    }
    rel_buf(&out);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ group accounting */

typedef struct {
    long long messages, system, seq, effective, unknown, undated, flood;
    double exp_eff, exp_ads;
    PyObject *first, *last; /* owned */
    int has_first_ts, has_last_ts;
    double first_ts, last_ts;
} Acc;

static long long get_ll(PyObject *o, int a, int *err) {
    PyObject *v = PyObject_GetAttr(o, S_NAMES[a]);
    if (v == NULL) { *err = 1; return 0; }
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) *err = 1;
    return x;
}

static double get_d(PyObject *o, int a, int *err) {
    PyObject *v = PyObject_GetAttr(o, S_NAMES[a]);
    if (v == NULL) { *err = 1; return 0; }
    double x = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (x == -1.0 && PyErr_Occurred()) *err = 1;
    return x;
}

static int set_steal(PyObject *o, int a, PyObject *v) {
    if (v == NULL) return -1;
    int r = PyObject_SetAttr(o, S_NAMES[a], v);
    Py_DECREF(v);
    return r;
}

static int set_seq(PyObject *sc, Acc *c) { return set_steal(sc, A_SEQ, PyLong_FromLongLong(c->seq)); }

static int acc_write(PyObject *sc, Acc *c) {
    /* stops at the first failure, its exception set */
    if (set_steal(sc, A_MESSAGES, PyLong_FromLongLong(c->messages)) < 0 ||
        set_steal(sc, A_SYSTEM, PyLong_FromLongLong(c->system)) < 0 || set_seq(sc, c) < 0 ||
        set_steal(sc, A_EFFECTIVE, PyLong_FromLongLong(c->effective)) < 0 ||
        set_steal(sc, A_UNKNOWN, PyLong_FromLongLong(c->unknown)) < 0 ||
        set_steal(sc, A_UNDATED, PyLong_FromLongLong(c->undated)) < 0 ||
        set_steal(sc, A_FLOOD, PyLong_FromLongLong(c->flood)) < 0 ||
        set_steal(sc, A_EXP_EFF, PyFloat_FromDouble(c->exp_eff)) < 0 ||
        set_steal(sc, A_EXP_ADS, PyFloat_FromDouble(c->exp_ads)) < 0 ||
        PyObject_SetAttr(sc, S_NAMES[A_FIRST], c->first) < 0 || PyObject_SetAttr(sc, S_NAMES[A_LAST], c->last) < 0)
        return -1;
    if ((c->has_first_ts ? set_steal(sc, A_FIRST_TS, PyFloat_FromDouble(c->first_ts))
                         : PyObject_SetAttr(sc, S_NAMES[A_FIRST_TS], Py_None)) < 0)
        return -1;
    return c->has_last_ts ? set_steal(sc, A_LAST_TS, PyFloat_FromDouble(c->last_ts))
                          : PyObject_SetAttr(sc, S_NAMES[A_LAST_TS], Py_None);
}

/* list[i] += 1 for a list of ints */
static int list_inc(PyObject *list, Py_ssize_t i) {
    if (!PyList_Check(list) || i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_TypeError, "add_batch: expected a list of counts");
        return -1;
    }
    PyObject *v = PyNumber_Add(PyList_GET_ITEM(list, i), ONE);
    if (v == NULL) return -1;
    PyList_SetItem(list, i, v); /* steals v, drops the old item */
    return 0;
}

static int str_true(PyObject *v) { return v != NULL && PyUnicode_Check(v) ? PyUnicode_GET_LENGTH(v) > 0 : PyObject_IsTrue(v); }


static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* (t - epoch).total_seconds(), exactly as Python computes it; NULL + error, or a new float */
static PyObject *timestamp(PyObject *t, PyObject *epoch_naive, PyObject *epoch_utc) {
    if (PyDateTime_CheckExact(t) && PyDateTime_DATE_GET_TZINFO(t) == Py_None) {
        long long days = days_from_civil(PyDateTime_GET_YEAR(t), PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t));
        long long us = ((days * 86400 + PyDateTime_DATE_GET_HOUR(t) * 3600LL + PyDateTime_DATE_GET_MINUTE(t) * 60LL +
                         PyDateTime_DATE_GET_SECOND(t)) * 1000000LL) + PyDateTime_DATE_GET_MICROSECOND(t);
        if (us > -(1LL << 53) && us < (1LL << 53)) return PyFloat_FromDouble((double)us / 1e6);
    }
    PyObject *tz = PyDateTime_Check(t) ? PyDateTime_DATE_GET_TZINFO(t) : Py_None;
    PyObject *delta = PyNumber_Subtract(t, tz == Py_None ? epoch_naive : epoch_utc);
    if (delta == NULL) return NULL;
    PyObject *r = PyObject_CallMethod(delta, "total_seconds", NULL);
    Py_DECREF(delta);
    return r;
}

/* add_batch(scorer, batch, index, labels, rel, p_eff, p_ad, consts) -> number effective.
 * consts = (ad, question, on_topic, flood_kinds, flood_memory, epoch_naive, epoch_utc, message_type,
 *           member_type) */
static PyObject *native_add_batch(PyObject *self, PyObject *args) {
    PyObject *sc, *lists[6], *consts;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!O!:add_batch", &sc, &PyList_Type, &lists[0], &PyList_Type, &lists[1],
                          &PyList_Type, &lists[2], &PyList_Type, &lists[3], &PyList_Type, &lists[4], &PyList_Type,
                          &lists[5], &PyTuple_Type, &consts))
        return NULL;
    PyObject *L_AD, *L_Q, *L_ON, *flood_kinds, *ep_naive, *ep_utc, *msg_type, *member_type;
    Py_ssize_t flood_memory;
    if (!PyArg_ParseTuple(consts, "UUUO!nOOOO:add_batch consts", &L_AD, &L_Q, &L_ON, &PyFrozenSet_Type, &flood_kinds,
                          &flood_memory, &ep_naive, &ep_utc, &msg_type, &member_type))
        return NULL;
    Slots ms, mb_sl;
    slots_init(&ms, msg_type);
    slots_init(&mb_sl, member_type);
    /* Tuples of the inputs, owned here: the scorer's methods called below cannot free a record,
     * a label or a probability that is still in use. */
    PyObject *tup[6] = {NULL};
    for (int k = 0; k < 6; k++)
        if ((tup[k] = PySequence_Tuple(lists[k])) == NULL) {
            for (int j = 0; j < k; j++) Py_DECREF(tup[j]);
            return NULL;
        }
    PyObject *batch = tup[0], *index = tup[1], *labels = tup[2], *rel = tup[3], *peff = tup[4], *pad = tup[5];
    Py_ssize_t n = PyTuple_GET_SIZE(batch), nl = PyTuple_GET_SIZE(labels);
    if (PyTuple_GET_SIZE(index) != n || PyTuple_GET_SIZE(rel) != nl || PyTuple_GET_SIZE(peff) != nl ||
        PyTuple_GET_SIZE(pad) != nl) {
        for (int k = 0; k < 6; k++) Py_DECREF(tup[k]);
        PyErr_SetString(PyExc_ValueError, "add_batch: lists differ in length");
        return NULL;
    }
    int err = 0;
    Acc c = {0};
    c.messages = get_ll(sc, A_MESSAGES, &err);
    c.system = get_ll(sc, A_SYSTEM, &err);
    c.seq = get_ll(sc, A_SEQ, &err);
    c.effective = get_ll(sc, A_EFFECTIVE, &err);
    c.unknown = get_ll(sc, A_UNKNOWN, &err);
    c.undated = get_ll(sc, A_UNDATED, &err);
    c.flood = get_ll(sc, A_FLOOD, &err);
    c.exp_eff = get_d(sc, A_EXP_EFF, &err);
    c.exp_ads = get_d(sc, A_EXP_ADS, &err);
    double threshold = get_d(sc, A_THRESHOLD, &err), flood_s = get_d(sc, A_FLOOD_S, &err);
    if (err) {
        for (int k = 0; k < 6; k++) Py_DECREF(tup[k]);
        return NULL;
    }
    PyObject *fts = PyObject_GetAttr(sc, S_NAMES[A_FIRST_TS]), *lts = PyObject_GetAttr(sc, S_NAMES[A_LAST_TS]);
    c.first = PyObject_GetAttr(sc, S_NAMES[A_FIRST]);
    c.last = PyObject_GetAttr(sc, S_NAMES[A_LAST]);
    PyObject *labels_d = PyObject_GetAttr(sc, S_NAMES[A_LABELS]), *members = PyObject_GetAttr(sc, S_NAMES[A_MEMBERS]),
             *open_days = PyObject_GetAttr(sc, S_NAMES[A_OPEN_DAYS]),
             *hour_m = PyObject_GetAttr(sc, S_NAMES[A_HOUR_M]), *hour_e = PyObject_GetAttr(sc, S_NAMES[A_HOUR_E]);
    long long n_eff = 0;
    PyObject *result = NULL;
    if (!fts || !lts || !c.first || !c.last || !labels_d || !members || !open_days || !hour_m || !hour_e) goto done;
    if (!PyDict_Check(labels_d) || !PyDict_Check(members) || !PyDict_Check(open_days)) {
        PyErr_SetString(PyExc_TypeError, "add_batch: not a GroupScorer");
        goto done;
    }
    if ((c.has_first_ts = fts != Py_None)) c.first_ts = PyFloat_AsDouble(fts);
    if ((c.has_last_ts = lts != Py_None)) c.last_ts = PyFloat_AsDouble(lts);
    if (PyErr_Occurred()) goto done;

    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *msg = PyTuple_GET_ITEM(batch, r), *kind = NULL, *key = NULL, *member = NULL, *t = NULL, *ts = NULL,
                 *day = NULL, *text = NULL, *reply_to = NULL;
        int ok = 0;
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(index, r));
        if (i == -1 && PyErr_Occurred()) goto done;
        c.messages++;
        if (i >= nl) {
            PyErr_SetString(PyExc_IndexError, "add_batch: index past the labels");
            goto done;
        }
        if ((kind = fget(msg, &ms, A_KIND)) == NULL) goto done;
        int is_system = i < 0 || PyTuple_GET_ITEM(labels, i) == Py_None ||
                        (PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, "system") == 0);
        if (is_system) {
            c.system++;
            Py_DECREF(kind);
            continue;
        }
        PyObject *label = PyTuple_GET_ITEM(labels, i), *relv = PyTuple_GET_ITEM(rel, i),
                 *pe = PyTuple_GET_ITEM(peff, i), *pa = PyTuple_GET_ITEM(pad, i);
        PyObject *count = PyDict_GetItemWithError(labels_d, label);
        if (count == NULL) {
            if (!PyErr_Occurred() && acc_write(sc, &c) == 0) {
                PyObject *x = PyObject_CallMethodOneArg(sc, S_NAMES[A_BAD_LABEL], label);
                Py_XDECREF(x);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "unknown label");
            }
            Py_DECREF(kind);
            goto done;
        }
        {
            PyObject *inc = PyNumber_Add(count, ONE);
            if (inc == NULL || PyDict_SetItem(labels_d, label, inc) < 0) { Py_XDECREF(inc); goto msg_fail; }
            Py_DECREF(inc);
        }
        c.seq++;
        int is_on = PyUnicode_Check(label) && PyUnicode_Compare(label, L_ON) == 0;
        int is_q = !is_on && PyUnicode_Check(label) && PyUnicode_Compare(label, L_Q) == 0;
        int is_ad = !is_on && !is_q && PyUnicode_Check(label) && PyUnicode_Compare(label, L_AD) == 0;
        double rv = relv == Py_None ? 0.0 : PyFloat_AsDouble(relv);
        if (PyErr_Occurred()) goto msg_fail;
        int effective = is_on || (is_q && rv >= threshold);
        double best = -1.0, pev = 0.0;
        if (pe != Py_None && (pev = PyFloat_AsDouble(pe)) == -1.0 && PyErr_Occurred()) goto msg_fail;
        if (effective) {
            c.effective++;
            n_eff++;
            best = pe == Py_None ? 1.0 : pev;
        }
        if (pe == Py_None) {
            if (effective) c.exp_eff += 1.0;
        } else {
            c.exp_eff += pev;
        }
        if (pa == Py_None) {
            if (is_ad) c.exp_ads += 1.0;
        } else {
            double pav = PyFloat_AsDouble(pa);
            if (pav == -1.0 && PyErr_Occurred()) goto msg_fail;
            c.exp_ads += pav;
        }
        /* key = msg.sender_id or msg.sender */
        if ((key = fget(msg, &ms, A_SENDER_ID)) == NULL) goto msg_fail;
        int kt = str_true(key);
        if (kt < 0) goto msg_fail;
        if (!kt) {
            Py_DECREF(key);
            if ((key = fget(msg, &ms, A_SENDER)) == NULL) goto msg_fail;
            if ((kt = str_true(key)) < 0) goto msg_fail;
        }
        if (kt) {
            member = PyDict_GetItemWithError(members, key);
            if (member != NULL) {
                Py_INCREF(member);
            } else {
                if (PyErr_Occurred()) goto msg_fail;
                PyObject *sender = fget(msg, &ms, A_SENDER);
                if (sender == NULL) goto msg_fail;
                int st = str_true(sender);
                if (st < 0) { Py_DECREF(sender); goto msg_fail; }
                member = PyObject_CallMethodObjArgs(sc, S_NAMES[A_NEW_MEMBER], key, st ? sender : key, NULL);
                Py_DECREF(sender);
                if (member == NULL) goto msg_fail;
            }
            Py_SETREF(key, fget(member, &mb_sl, A_KEY));
            if (key == NULL) goto msg_fail;
            if (finc(member, &mb_sl, A_COUNT_MSG) < 0) goto msg_fail;
            if (effective) {
                if (finc(member, &mb_sl, A_COUNT_EFF) < 0) goto msg_fail;
                PyObject *mbo = fget(member, &mb_sl, A_BEST);
                if (mbo == NULL) goto msg_fail;
                double mb = PyFloat_AsDouble(mbo);
                Py_DECREF(mbo);
                if (mb == -1.0 && PyErr_Occurred()) goto msg_fail;
                if (best > mb && fset_steal(member, &mb_sl, A_BEST, PyFloat_FromDouble(best)) < 0) goto msg_fail;
            }
            if (is_ad && finc(member, &mb_sl, A_ADS) < 0) goto msg_fail;
        } else {
            c.unknown++;
        }
        if ((t = fget(msg, &ms, A_TIME)) == NULL) goto msg_fail;
        if (t == Py_None) {
            c.undated++;
        } else {
            if (!PyDateTime_Check(t)) {
                PyErr_SetString(PyExc_TypeError, "add_batch: a message time must be a datetime");
                goto msg_fail;
            }
            if ((ts = timestamp(t, ep_naive, ep_utc)) == NULL) goto msg_fail;
            double tsv = PyFloat_AsDouble(ts);
            if (tsv == -1.0 && PyErr_Occurred()) goto msg_fail;
            if (!c.has_first_ts || tsv < c.first_ts) {
                c.has_first_ts = 1;
                c.first_ts = tsv;
                Py_INCREF(t);
                Py_SETREF(c.first, t);
            }
            if (!c.has_last_ts || tsv >= c.last_ts) {
                c.has_last_ts = 1;
                c.last_ts = tsv;
                Py_INCREF(t);
                Py_SETREF(c.last, t);
            }
            PyObject *d = PyDate_FromDate(PyDateTime_GET_YEAR(t), PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t));
            if (d == NULL) goto msg_fail;
            day = PyDict_GetItemWithError(open_days, d);
            if (day != NULL) {
                Py_INCREF(day);
            } else if (!PyErr_Occurred()) {
                day = PyObject_CallMethodOneArg(sc, S_NAMES[A_OPEN_DAY], d);
            }
            Py_DECREF(d);
            if (day == NULL) goto msg_fail;
            if (!PyList_Check(day) || PyList_GET_SIZE(day) != 4) {
                PyErr_SetString(PyExc_TypeError, "add_batch: a day record must be a list of four");
                goto msg_fail;
            }
            if (list_inc(day, 0) < 0) goto msg_fail;
            if (kt && PySet_Add(PyList_GET_ITEM(day, 3), key) < 0) goto msg_fail;
            int h = PyDateTime_DATE_GET_HOUR(t);
            if (list_inc(hour_m, h) < 0) goto msg_fail;
            if (effective) {
                if (list_inc(day, 1) < 0 || list_inc(hour_e, h) < 0) goto msg_fail;
                if (kt) {
                    PyObject *bests = PyList_GET_ITEM(day, 2);
                    PyObject *prev = PyDict_GetItemWithError(bests, key);
                    if (prev == NULL && PyErr_Occurred()) goto msg_fail;
                    double pv = prev == NULL ? -1.0 : PyFloat_AsDouble(prev);
                    if (pv == -1.0 && PyErr_Occurred()) goto msg_fail;
                    if (best > pv) {
                        PyObject *b = PyFloat_FromDouble(best);
                        if (b == NULL || PyDict_SetItem(bests, key, b) < 0) { Py_XDECREF(b); goto msg_fail; }
                        Py_DECREF(b);
                    }
                }
            }
        }
        /* flood: the same text again from the same member within the window */
        if (member != NULL) {
            int fk = PySet_Contains(flood_kinds, kind);
            if (fk < 0) goto msg_fail;
            if (fk) {
                PyObject *raw = fget(msg, &ms, A_TEXT);
                if (raw == NULL) goto msg_fail;
                text = PyObject_CallMethodNoArgs(raw, S_NAMES[A_STRIP]);
                Py_DECREF(raw);
                if (text == NULL) goto msg_fail;
                int tt = str_true(text);
                if (tt < 0) goto msg_fail;
                if (tt) {
                    PyObject *recent = fget(member, &mb_sl, A_RECENT);
                    if (recent == NULL) goto msg_fail;
                    if (!PyDict_Check(recent)) {
                        Py_DECREF(recent);
                        PyErr_SetString(PyExc_TypeError, "add_batch: member.recent must be a dict");
                        goto msg_fail;
                    }
                    PyObject *prev = PyDict_GetItemWithError(recent, text);
                    int rc = 0;
                    if (prev != NULL) {
                        Py_INCREF(prev);
                        rc = PyDict_DelItem(recent, text);
                        if (rc == 0) {
                            int flood = ts == NULL || prev == Py_None;
                            if (!flood) {
                                double pv = PyFloat_AsDouble(prev);
                                if (pv == -1.0 && PyErr_Occurred()) rc = -1;
                                else {
                                    double now = PyFloat_AsDouble(ts);
                                    if (now == -1.0 && PyErr_Occurred()) rc = -1;
                                    else flood = now - pv <= flood_s;
                                }
                            }
                            if (flood) c.flood++;
                        }
                        Py_DECREF(prev);
                    } else if (PyErr_Occurred()) {
                        rc = -1;
                    }
                    if (rc == 0) rc = PyDict_SetItem(recent, text, ts ? ts : Py_None);
                    if (rc == 0 && PyDict_GET_SIZE(recent) > flood_memory) {
                        Py_ssize_t pos = 0;
                        PyObject *oldest, *v;
                        if (PyDict_Next(recent, &pos, &oldest, &v)) {
                            Py_INCREF(oldest);
                            rc = PyDict_DelItem(recent, oldest);
                            Py_DECREF(oldest);
                        }
                    }
                    Py_DECREF(recent);
                    if (rc < 0) goto msg_fail;
                }
            }
        }
        /* answers and questions: the scorer's own methods */
        if ((reply_to = fget(msg, &ms, A_REPLY_TO)) == NULL) goto msg_fail;
        int rt = str_true(reply_to);
        if (rt < 0) goto msg_fail;
        PyObject *k_arg = key; /* a falsy key is passed as it is, as the Python loop does */
        PyObject *ts_arg = ts ? ts : Py_None;
        if (rt) {
            if (PyObject_SetAttr(sc, S_NAMES[A_HAS_REPLY], Py_True) < 0) goto msg_fail;
            PyObject *x = PyObject_CallMethodObjArgs(sc, S_NAMES[A_TRACK], msg, label, k_arg, ts_arg, NULL);
            if (x == NULL) goto msg_fail;
            Py_DECREF(x);
        } else if (ts != NULL) {
            PyObject *open_q = PyObject_GetAttr(sc, S_NAMES[A_OPEN]);
            if (open_q == NULL) goto msg_fail;
            int open_n = PyObject_IsTrue(open_q);
            Py_DECREF(open_q);
            if (open_n < 0) goto msg_fail;
            if (open_n) {
                PyObject *x = PyObject_CallMethodObjArgs(sc, S_NAMES[A_TRACK], msg, label, k_arg, ts_arg, NULL);
                if (x == NULL) goto msg_fail;
                Py_DECREF(x);
            }
        }
        if (is_q) {
            if (set_seq(sc, &c) < 0) goto msg_fail;
            PyObject *rf = relv == Py_None ? PyFloat_FromDouble(0.0) : (Py_INCREF(relv), relv);
            if (rf == NULL) goto msg_fail;
            PyObject *x = PyObject_CallMethodObjArgs(sc, S_NAMES[A_ADD_Q], msg, k_arg, ts_arg, rf, NULL);
            Py_DECREF(rf);
            if (x == NULL) goto msg_fail;
            Py_DECREF(x);
        }
        ok = 1;
    msg_fail:
        Py_XDECREF(kind); Py_XDECREF(key); Py_XDECREF(member); Py_XDECREF(t); Py_XDECREF(ts);
        Py_XDECREF(day); Py_XDECREF(text); Py_XDECREF(reply_to);
        if (!ok) goto done;
    }
    result = PyLong_FromLongLong(n_eff);
done:
    if (c.first && c.last) {
        if (result == NULL) {
            PyObject *et, *ev, *tb;
            PyErr_Fetch(&et, &ev, &tb);
            acc_write(sc, &c);
            PyErr_Restore(et, ev, tb);
        } else if (acc_write(sc, &c) < 0) {
            Py_CLEAR(result);
        }
    }
    Py_XDECREF(fts); Py_XDECREF(lts); Py_XDECREF(c.first); Py_XDECREF(c.last);
    Py_XDECREF(labels_d); Py_XDECREF(members); Py_XDECREF(open_days); Py_XDECREF(hour_m); Py_XDECREF(hour_e);
    for (int k = 0; k < 6; k++) Py_DECREF(tup[k]);
    return result;
}

/* ------------------------------------------------------------------ distinct texts */

/* distinct(batch, message_type) -> (index, texts): scoring.distinct_index. */
static PyObject *native_distinct(PyObject *self, PyObject *args) {
    PyObject *batch_l, *mtype;
    if (!PyArg_ParseTuple(args, "O!O:distinct", &PyList_Type, &batch_l, &mtype)) return NULL;
    Slots ms;
    slots_init(&ms, mtype);
    PyObject *batch = PySequence_Tuple(batch_l), *seen = PyDict_New(), *index = PyList_New(0), *texts = PyList_New(0);
    PyObject *res = NULL;
    if (!batch || !seen || !index || !texts) goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(batch);
    for (Py_ssize_t r = 0; r < n; r++) {
        PyObject *m = PyTuple_GET_ITEM(batch, r);
        PyObject *kind = fget(m, &ms, A_KIND);
        if (kind == NULL) goto done;
        int sys = PyUnicode_Check(kind) ? PyUnicode_CompareWithASCIIString(kind, "system") == 0
                                        : PyObject_RichCompareBool(kind, S_SYSTEM, Py_EQ);
        Py_DECREF(kind);
        if (sys < 0) goto done;
        PyObject *pos;
        if (sys) {
            pos = PyLong_FromLong(-1);
        } else {
            PyObject *text = fget(m, &ms, A_TEXT);
            if (text == NULL) goto done;
            pos = PyDict_GetItemWithError(seen, text);
            if (pos != NULL) {
                Py_INCREF(pos);
            } else if (!PyErr_Occurred()) {
                pos = PyLong_FromSsize_t(PyList_GET_SIZE(texts));
                if (pos != NULL && (PyDict_SetItem(seen, text, pos) < 0 || PyList_Append(texts, text) < 0))
                    Py_CLEAR(pos);
            }
            Py_DECREF(text);
        }
        if (pos == NULL) goto done;
        int rc = PyList_Append(index, pos);
        Py_DECREF(pos);
        if (rc < 0) goto done;
    }
    res = PyTuple_Pack(2, index, texts);
done:
    Py_XDECREF(batch); Py_XDECREF(seen); Py_XDECREF(index); Py_XDECREF(texts);
    return res;
}

static PyMethodDef methods[] = {
    {"cut", native_cut, METH_VARARGS, "cut(norm, token_names, rj_cut, freq, hmm_cut, periodic_cut, inert) -> tuple of tokens"},
    {"hash_table", native_hash_table, METH_VARARGS, "hash_table(keys, cols, bits) -> bytes"},
    {"add_batch", native_add_batch, METH_VARARGS, "add_batch(scorer, batch, index, labels, rel, p_eff, p_ad, consts) -> int"},
    {"cue_spec", native_cue_spec, METH_VARARGS, "cue_spec(q_word, q_start, ad_word, trade, phatic, laugh, qf_head, qf_tail, only, tokens) -> capsule"},
    {"cues", native_cues, METH_VARARGS, "cues(norms, spec, out) -> None"},
    {"distinct", native_distinct, METH_VARARGS, "distinct(batch, message_type) -> (index, texts)"},
    {"frags", native_frags, METH_VARARGS, "frags(labels, rows, rel4, rel, p_eff, threshold, sure_bar, names, on_topic, question) -> list"},
    {"jsonl", native_jsonl, METH_VARARGS, "jsonl(batch, index, frags, system_frag, message_type, fallback) -> bytes"},
    {"xw", native_xw, METH_VARARGS, "xw(...) -> 0, or -1 if a term frequency is past the log table"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Compiled inner loops (optional).", -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    if ((ONE = PyLong_FromLong(1)) == NULL || (S_SYSTEM = PyUnicode_InternFromString("system")) == NULL) return NULL;
    for (int a = 0; a < A_N; a++)
        if ((S_NAMES[a] = PyUnicode_InternFromString(S_STR[a])) == NULL) return NULL;
    return PyModule_Create(&module);
}
