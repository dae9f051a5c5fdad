/* model_load_internal.h - what the checkpoint readers and writers share.
 *
 * model_load.c owns the pieces every format needs: a bounds-checked reader
 * over an open file, the one error format ("PATH: offset N: what"), element
 * conversions (fp16, bf16, little-endian fp32) and a writer that remembers
 * its first failure. Each format file (model_load_llama2c.c, _llmc.c,
 * _safetensors.c) fills in one gs_format_ops; model_load.c lists them in one
 * table and dispatches through it, so detection, loading and saving never
 * switch on the format anywhere else. Tests include this header too, to reach
 * the conversions and the dtype-choosing writers. */
#ifndef GS_MODEL_LOAD_INTERNAL_H
#define GS_MODEL_LOAD_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "dtype.h"
#include "model_load.h"

/* The loaders' names for the conversions in dtype.c. */
#define gs_ld_f16_to_f32 gs_f16_to_f32
#define gs_ld_bf16_to_f32 gs_bf16_to_f32
#define gs_ld_f32_to_f16 gs_f32_to_f16
#define gs_ld_f32_to_bf16 gs_f32_to_bf16

/* ---- reading ---- */

/* An open checkpoint. Everything is read through gs_ld_read, which refuses
 * any range that does not lie inside size_bytes. */
typedef struct gs_ld_file {
    const char *path;
    int fd;
    uint64_t size_bytes;
} gs_ld_file;

/* Opens a regular file for reading. GS_ERR_INPUT "PATH: <strerror>" when it
 * cannot be opened (missing, not readable) or is not a regular file. */
int gs_ld_open(gs_ld_file *f, const char *path, gs_error *err);
void gs_ld_close(gs_ld_file *f);

/* Reads exactly n bytes at offset. A range past the end is GS_ERR_INPUT
 * "PATH: offset O: file is S bytes, WHAT needs bytes up to E"; a failing
 * read is GS_ERR_RUNTIME. */
int gs_ld_read(const gs_ld_file *f, uint64_t offset, void *buf, size_t n, const char *what,
               gs_error *err);

/* Element types stored in checkpoints (all little-endian). */
typedef enum { GS_DT_F32 = 0, GS_DT_F16, GS_DT_BF16 } gs_ld_dtype;
size_t gs_ld_dtype_size(gs_ld_dtype dt);
const char *gs_ld_dtype_name(gs_ld_dtype dt); /* "F32", "F16", "BF16" as safetensors spells them */

/* fp16/bf16 conversions: gs_ld_f16_to_f32 etc., aliases of dtype.h's. */

/* Reads n elements of dt at offset into dst as fp32. */
int gs_ld_read_floats(const gs_ld_file *f, uint64_t offset, float *dst, size_t n, gs_ld_dtype dt,
                      const char *what, gs_error *err);

static inline int32_t gs_ld_get_i32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (int32_t)u;
}
static inline uint64_t gs_ld_get_u64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int k = 7; k >= 0; k--)
        u = u << 8 | p[k];
    return u;
}

/* Checked size arithmetic: return 0 and leave *out alone on overflow. */
static inline int gs_ld_mul(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}
static inline int gs_ld_add(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

/* ---- errors ---- */

/* GS_ERR_INPUT "PATH: offset N: what". */
int gs_ld_fail(gs_error *err, const char *path, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* GS_ERR_INPUT "PATH: what" (no offset applies). */
int gs_ld_fail_path(gs_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* gs_shape_validate, with a failure restated as "PATH: offset N: WHERE: why". */
int gs_ld_validate_shape(const gs_model_shape *s, const char *path, uint64_t offset,
                         const char *where, gs_error *err);

/* ---- writing ---- */

/* A file being written; the first failure is kept and reported by close. */
typedef struct gs_ld_writer {
    FILE *fp;
    const char *path;
    int errno_saved; /* 0 while every write succeeded */
} gs_ld_writer;

int gs_ld_writer_open(gs_ld_writer *w, const char *path, gs_error *err);
void gs_ld_write(gs_ld_writer *w, const void *p, size_t n);
void gs_ld_write_i32(gs_ld_writer *w, int32_t v);
/* Writes n floats as little-endian elements of dt. */
void gs_ld_write_floats(gs_ld_writer *w, const float *x, size_t n, gs_ld_dtype dt);
/* Closes; on any failure removes the partial file and returns GS_ERR_RUNTIME
 * "PATH: write failed: <strerror>". */
int gs_ld_writer_close(gs_ld_writer *w, gs_error *err);

/* ---- formats ---- */

/* What a probe says about a file's first bytes. */
enum {
    GS_PROBE_NO = 0,   /* not this format */
    GS_PROBE_NEAR = 1, /* looks like it but cannot be (why says what does not fit) */
    GS_PROBE_YES = 2
};

/* One checkpoint format (the table lives in model_load.c). */
typedef struct gs_format_ops {
    gs_model_format format;
    const char *name;
    /* head: the first head_len bytes of f (up to GS_LD_PROBE_BYTES). */
    int (*probe)(const gs_ld_file *f, const unsigned char *head, size_t head_len, char *why,
                 size_t why_cap);
    int (*load)(gs_model *m, const gs_ld_file *f, const gs_load_hints *hints, gs_error *err);
    int (*save)(const gs_model *m, const char *path, gs_error *err);
} gs_format_ops;

#define GS_LD_PROBE_BYTES 1024

extern const gs_format_ops gs_format_llama2c;
extern const gs_format_ops gs_format_llmc;
extern const gs_format_ops gs_format_safetensors;

/* Writers with a choice of element type, for tests of the 16-bit readers:
 * llm.c takes F32 (version 3) or BF16 (version 5); safetensors takes F32,
 * F16 or BF16 (the config file beside it is written as by gs_model_save). */
int gs_ld_save_llmc(const gs_model *m, const char *path, gs_ld_dtype dt, gs_error *err);
int gs_ld_save_safetensors(const gs_model *m, const char *path, gs_ld_dtype dt, gs_error *err);

/* Path of the config file gs_model_save writes beside a safetensors file:
 * "<stem>.config.json" for "<stem>.safetensors", else "PATH.config.json".
 * Returns 0 if it does not fit in cap. */
int gs_ld_safetensors_config_path(const char *path, char *out, size_t cap);

#endif
