/* model_load.c - checkpoint formats: names, detection, dispatch, shared helpers.
 *
 * The formats themselves live in model_load_llama2c.c, model_load_llmc.c and
 * model_load_safetensors.c, each behind one gs_format_ops. This file holds the
 * table of them and what they all need: a reader that never reads outside the
 * file, the "PATH: offset N: what" error line, fp16/bf16 conversions and a
 * writer that removes its file when any write fails. */
#include "model_load_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define GS_LD_BIG_ENDIAN 1
#else
#define GS_LD_BIG_ENDIAN 0
#endif

/* Elements converted per step when a 16-bit tensor is widened or narrowed. */
#define GS_LD_CHUNK 65536

/* Probe order matters only for speed and messages: the llm.c magic and the
 * safetensors '{' are cheap and certain, llama2.c has no magic at all. */
static const gs_format_ops *const formats[] = {&gs_format_llmc, &gs_format_safetensors,
                                               &gs_format_llama2c};
#define N_FORMATS ((int)(sizeof formats / sizeof formats[0]))

static const gs_format_ops *format_ops(gs_model_format f)
{
    for (int i = 0; i < N_FORMATS; i++)
        if (formats[i]->format == f)
            return formats[i];
    return NULL;
}

int gs_model_format_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "auto") == 0)
        return GS_FORMAT_AUTO;
    for (int i = 0; i < N_FORMATS; i++)
        if (strcmp(name, formats[i]->name) == 0)
            return (int)formats[i]->format;
    return -1;
}

const char *gs_model_format_name(gs_model_format f)
{
    if (f == GS_FORMAT_AUTO)
        return "auto";
    const gs_format_ops *ops = format_ops(f);
    return ops ? ops->name : "unknown";
}

/* ---- errors ---- */

/* errno values that mean the machine failed us rather than the user. */
static int errno_status(int e)
{
    switch (e) {
    case ENOMEM:
    case EIO:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return GS_ERR_RUNTIME;
    default:
        return GS_ERR_INPUT;
    }
}

int gs_ld_fail(gs_error *err, const char *path, uint64_t offset, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gs_error_set(err, GS_ERR_INPUT, "%s: offset %llu: %s", path, (unsigned long long)offset,
                        what);
}

int gs_ld_fail_path(gs_error *err, const char *path, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gs_error_set(err, GS_ERR_INPUT, "%s: %s", path, what);
}

int gs_ld_validate_shape(const gs_model_shape *s, const char *path, uint64_t offset,
                         const char *where, gs_error *err)
{
    gs_error e;
    if (gs_shape_validate(s, &e) == GS_OK)
        return GS_OK;
    const char *why = e.msg;
    if (strncmp(why, "model: ", 7) == 0)
        why += 7;
    return gs_ld_fail(err, path, offset, "%s: %s", where, why);
}

/* ---- reading ---- */

int gs_ld_open(gs_ld_file *f, const char *path, gs_error *err)
{
    struct stat st;
    f->path = path;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    f->size_bytes = 0;
    if (f->fd < 0) {
        int e = errno;
        return gs_error_set(err, errno_status(e), "%s: %s", path, strerror(e));
    }
    if (fstat(f->fd, &st) != 0) {
        int e = errno;
        gs_ld_close(f);
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        gs_ld_close(f);
        return gs_ld_fail_path(err, path, "%s",
                               S_ISDIR(st.st_mode) ? "is a directory, not a model file"
                                                   : "not a regular file");
    }
    f->size_bytes = (uint64_t)st.st_size;
    return GS_OK;
}

void gs_ld_close(gs_ld_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

int gs_ld_read(const gs_ld_file *f, uint64_t offset, void *buf, size_t n, const char *what,
               gs_error *err)
{
    uint64_t end;
    if (!gs_ld_add(offset, n, &end) || end > f->size_bytes)
        return gs_ld_fail(err, f->path, offset, "file is %llu bytes, %s needs bytes up to %llu",
                          (unsigned long long)f->size_bytes, what,
                          (unsigned long long)(gs_ld_add(offset, n, &end) ? end : UINT64_MAX));
    unsigned char *p = buf;
    while (n > 0) {
        /* pread takes an off_t; end <= size_bytes, which came from an off_t. */
        ssize_t got = pread(f->fd, p, n, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            return gs_error_set(err, GS_ERR_RUNTIME, "%s: offset %llu: read failed: %s", f->path,
                                (unsigned long long)offset, strerror(e));
        }
        if (got == 0)
            return gs_error_set(err, GS_ERR_RUNTIME,
                                "%s: offset %llu: read failed: the file shrank while being read",
                                f->path, (unsigned long long)offset);
        p += got;
        n -= (size_t)got;
        offset += (uint64_t)got;
    }
    return GS_OK;
}

size_t gs_ld_dtype_size(gs_ld_dtype dt)
{
    return dt == GS_DT_F32 ? 4 : 2;
}

const char *gs_ld_dtype_name(gs_ld_dtype dt)
{
    switch (dt) {
    case GS_DT_F32: return "F32";
    case GS_DT_F16: return "F16";
    case GS_DT_BF16: return "BF16";
    }
    return "?";
}


#if GS_LD_BIG_ENDIAN
static void swap32(void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
}
#endif

int gs_ld_read_floats(const gs_ld_file *f, uint64_t offset, float *dst, size_t n, gs_ld_dtype dt,
                      const char *what, gs_error *err)
{
    uint64_t bytes;
    if (!gs_ld_mul(n, gs_ld_dtype_size(dt), &bytes) || bytes > SIZE_MAX)
        return gs_ld_fail(err, f->path, offset, "%s: size overflows", what);
    if (dt == GS_DT_F32) {
        int rc = gs_ld_read(f, offset, dst, (size_t)bytes, what, err);
#if GS_LD_BIG_ENDIAN
        if (!rc)
            swap32(dst, n);
#endif
        return rc;
    }
    uint16_t *buf = malloc((n < GS_LD_CHUNK ? n : GS_LD_CHUNK) * 2 + 2);
    if (!buf)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory reading %s", f->path);
    int rc = GS_OK;
    for (size_t done = 0; done < n && !rc;) {
        size_t k = n - done < GS_LD_CHUNK ? n - done : GS_LD_CHUNK;
        rc = gs_ld_read(f, offset + done * 2, buf, k * 2, what, err);
        for (size_t i = 0; i < k && !rc; i++) {
            const unsigned char *b = (const unsigned char *)&buf[i];
            uint16_t h = (uint16_t)(b[0] | b[1] << 8);
            dst[done + i] = dt == GS_DT_F16 ? gs_ld_f16_to_f32(h) : gs_ld_bf16_to_f32(h);
        }
        done += k;
    }
    free(buf);
    return rc;
}

/* ---- writing ---- */

int gs_ld_writer_open(gs_ld_writer *w, const char *path, gs_error *err)
{
    w->path = path;
    w->errno_saved = 0;
    w->fp = fopen(path, "wb");
    if (!w->fp) {
        int e = errno;
        return gs_error_set(err, errno_status(e), "%s: %s", path, strerror(e));
    }
    return GS_OK;
}

void gs_ld_write(gs_ld_writer *w, const void *p, size_t n)
{
    if (w->errno_saved || n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, w->fp) != n)
        w->errno_saved = errno ? errno : EIO;
}

void gs_ld_write_i32(gs_ld_writer *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                          (unsigned char)(u >> 24)};
    gs_ld_write(w, b, 4);
}

void gs_ld_write_floats(gs_ld_writer *w, const float *x, size_t n, gs_ld_dtype dt)
{
    if (dt == GS_DT_F32 && !GS_LD_BIG_ENDIAN) {
        gs_ld_write(w, x, n * sizeof(float));
        return;
    }
    unsigned char buf[4096];
    size_t es = gs_ld_dtype_size(dt), per = sizeof buf / es;
    for (size_t done = 0; done < n && !w->errno_saved;) {
        size_t k = n - done < per ? n - done : per;
        for (size_t i = 0; i < k; i++) {
            unsigned char *b = buf + i * es;
            if (dt == GS_DT_F32) {
                uint32_t u;
                memcpy(&u, &x[done + i], 4);
                b[0] = (unsigned char)u;
                b[1] = (unsigned char)(u >> 8);
                b[2] = (unsigned char)(u >> 16);
                b[3] = (unsigned char)(u >> 24);
            } else {
                uint16_t h = dt == GS_DT_F16 ? gs_ld_f32_to_f16(x[done + i])
                                             : gs_ld_f32_to_bf16(x[done + i]);
                b[0] = (unsigned char)h;
                b[1] = (unsigned char)(h >> 8);
            }
        }
        gs_ld_write(w, buf, k * es);
        done += k;
    }
}

int gs_ld_writer_close(gs_ld_writer *w, gs_error *err)
{
    int e = w->errno_saved;
    if (w->fp && fclose(w->fp) != 0 && !e)
        e = errno ? errno : EIO;
    w->fp = NULL;
    if (e) {
        remove(w->path); /* never leave a truncated checkpoint behind */
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: write failed: %s", w->path, strerror(e));
    }
    return GS_OK;
}

/* ---- detection and dispatch ---- */

static int detect_open(const gs_ld_file *f, gs_model_format *out, gs_error *err)
{
    unsigned char head[GS_LD_PROBE_BYTES];
    size_t n = f->size_bytes < sizeof head ? (size_t)f->size_bytes : sizeof head;
    int rc = gs_ld_read(f, 0, head, n, "the format probe", err);
    if (rc)
        return rc;
    char near[340] = "";
    for (int i = 0; i < N_FORMATS; i++) {
        char why[300] = "";
        int p = formats[i]->probe(f, head, n, why, sizeof why);
        if (p == GS_PROBE_YES) {
            *out = formats[i]->format;
            return GS_OK;
        }
        /* Keep the first near miss: it is why a file meant as that format failed. */
        if (p == GS_PROBE_NEAR && !near[0])
            snprintf(near, sizeof near, "; as %s: %s", formats[i]->name, why);
    }
    return gs_ld_fail_path(err, f->path,
                           "unknown model format (expected llama2c, llmc or safetensors)%s%s",
                           f->size_bytes == 0 ? "; the file is empty" : "", near);
}

int gs_model_detect_format(const char *path, gs_model_format *out, gs_error *err)
{
    gs_ld_file f;
    if (!path)
        return gs_error_set(err, GS_ERR_INPUT, "model: no path given");
    int rc = gs_ld_open(&f, path, err);
    if (rc)
        return rc;
    rc = detect_open(&f, out, err);
    gs_ld_close(&f);
    return rc;
}

int gs_model_load(gs_model *m, const char *path, gs_model_format fmt, const gs_load_hints *hints,
                  gs_error *err)
{
    memset(m, 0, sizeof *m);
    if (!path)
        return gs_error_set(err, GS_ERR_INPUT, "model: no path given");
    if (fmt != GS_FORMAT_AUTO && !format_ops(fmt))
        return gs_error_set(err, GS_ERR_INPUT, "%s: unknown model format %d", path, (int)fmt);
    static const gs_load_hints no_hints = {0, 0, 0};
    gs_ld_file f;
    int rc = gs_ld_open(&f, path, err);
    if (rc)
        return rc;
    if (fmt == GS_FORMAT_AUTO)
        rc = detect_open(&f, &fmt, err);
    if (!rc)
        rc = format_ops(fmt)->load(m, &f, hints ? hints : &no_hints, err);
    gs_ld_close(&f);
    if (rc)
        gs_model_free(m);
    return rc;
}

int gs_model_save(const gs_model *m, const char *path, gs_model_format fmt, gs_error *err)
{
    if (!path)
        return gs_error_set(err, GS_ERR_INPUT, "model: no path given");
    if (!m || !m->data)
        return gs_error_set(err, GS_ERR_INPUT, "%s: no model to save", path);
    const gs_format_ops *ops = format_ops(fmt);
    if (!ops)
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: choose a format to save in (llama2c, llmc or safetensors)", path);
    /* Every format here derives the head size from n_embd / n_head. */
    if (gs_shape_q_dim(&m->shape) != m->shape.n_embd)
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: a model with pruned heads (%d x %d != n_embd %d) cannot be saved in these formats",
                            path, m->shape.n_head, gs_shape_head_dim(&m->shape), m->shape.n_embd);
    if (m->shape.arch == GS_ARCH_GPT2 && m->shape.n_kv_head != m->shape.n_head)
        return gs_error_set(err, GS_ERR_INPUT,
                            "%s: a GPT-2 style model with %d key/value heads for %d heads cannot be saved in these formats",
                            path, m->shape.n_kv_head, m->shape.n_head);
    return ops->save(m, path, err);
}
