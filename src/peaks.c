/* peaks.c - measured peak rates, their per-device cache, the roofline. */
#include "peaks.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ranges.h"
#include "rng.h"

#define CACHE_MAGIC "gptscope-peaks 1"
#define CACHE_MAX_BYTES 4096
/* Plausible ranges: anything outside is a corrupt or foreign cache file. */
#define BW_MIN 1e6
#define BW_MAX 1e16
#define FLOPS_MIN 1e6
#define FLOPS_MAX 1e19

/* Timings aim at this long per sample, so launch and timer overheads vanish. */
#define TARGET_S 0.05
#define SAMPLES 3

static double seconds_since(uint64_t t0) { return (double)(gs_now_ns() - t0) * 1e-9; }

/* Repetitions that make one sample last about TARGET_S, given one run's time. */
static int reps_for(double one_s)
{
    if (one_s <= 0)
        return 64;
    double r = TARGET_S / one_s;
    return r < 1 ? 1 : r > 64 ? 64 : (int)r;
}

/* Copy bandwidth: bytes read plus bytes written, best of SAMPLES. The
 * buffers are far larger than any cache (256 MiB each, less if that fails). */
static int measure_bw(gs_backend *be, double *out, gs_error *err)
{
    const gs_backend_ops *op = be->ops;
    if (!op->copy)
        return gs_error_set(err, GS_ERR_RUNTIME, "the %s backend has no copy op to measure bandwidth with", op->name);
    size_t bytes = (size_t)256 << 20;
    void *a = NULL, *b = NULL;
    for (; bytes >= ((size_t)16 << 20); bytes /= 2) {
        a = op->alloc(be, bytes);
        b = a ? op->alloc(be, bytes) : NULL;
        if (a && b)
            break;
        if (a)
            op->free(be, a);
        a = b = NULL;
    }
    if (!a)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of %s memory for the bandwidth measurement", op->name);
    /* Touch the source (first-touch page faults must not be timed) and warm up. */
    char *host = calloc(1, (size_t)1 << 20);
    int rc = host ? GS_OK : GS_ERR_RUNTIME;
    for (size_t off = 0; rc == GS_OK && off < bytes; off += (size_t)1 << 20)
        rc = op->upload(be, (char *)a + off, host, (size_t)1 << 20);
    free(host);
    rc |= op->copy(be, b, a, bytes);
    rc |= op->synchronize(be);
    uint64_t t0 = gs_now_ns();
    rc |= op->copy(be, b, a, bytes);
    rc |= op->synchronize(be);
    int reps = reps_for(seconds_since(t0));
    double best = 0;
    for (int s = 0; rc == GS_OK && s < SAMPLES; s++) {
        t0 = gs_now_ns();
        for (int r = 0; r < reps; r++)
            rc |= op->copy(be, s & 1 ? a : b, s & 1 ? b : a, bytes);
        rc |= op->synchronize(be);
        double dt = seconds_since(t0);
        double bw = dt > 0 ? 2.0 * (double)bytes * reps / dt : 0;
        if (bw > best)
            best = bw;
    }
    op->free(be, a);
    op->free(be, b);
    if (rc)
        return gs_error_set(err, GS_ERR_RUNTIME, "the %s copy failed while measuring bandwidth", op->name);
    *out = best;
    return GS_OK;
}

/* One product out[S][S] = in[S][S] . W^T at size S; best rate of SAMPLES.
 * Returns -1 when it could not allocate or the precision is refused. */
static int time_matmul(gs_backend *be, gs_dtype dt, int S, double *rate, double *one_s, gs_error *err)
{
    const gs_backend_ops *op = be->ops;
    size_t count = (size_t)S * S;
    float *host = malloc(count * sizeof(float));
    void *w = op->alloc(be, count * gs_dtype_size(dt));
    float *x = op->alloc(be, count * sizeof(float));
    float *y = op->alloc(be, count * sizeof(float));
    int rc = host && w && x && y ? GS_OK : -1;
    if (rc == GS_OK) {
        gs_rng rng;
        gs_rng_seed(&rng, 7);
        for (size_t i = 0; i < count; i++)
            host[i] = gs_rng_uniform(&rng) - 0.5f; /* never time all-zero data */
        gs_error e2 = {0};
        rc = op->upload_weights(be, w, host, count, dt, &e2) ? -1 : GS_OK;
    }
    if (rc == GS_OK)
        rc = op->upload(be, x, host, count * sizeof(float));
    if (rc == GS_OK) {
        op->matmul(be, y, x, w, dt, NULL, S, S, S); /* warm-up: cuBLAS heuristics, page faults */
        rc = op->synchronize(be);
        uint64_t t0 = gs_now_ns();
        op->matmul(be, y, x, w, dt, NULL, S, S, S);
        rc |= op->synchronize(be);
        *one_s = seconds_since(t0);
        int reps = reps_for(*one_s);
        *rate = 0;
        for (int s = 0; rc == GS_OK && s < SAMPLES; s++) {
            t0 = gs_now_ns();
            for (int r = 0; r < reps; r++)
                op->matmul(be, y, x, w, dt, NULL, S, S, S);
            rc |= op->synchronize(be);
            double t = seconds_since(t0);
            double fl = t > 0 ? 2.0 * (double)S * S * S * reps / t : 0;
            if (fl > *rate)
                *rate = fl;
        }
        if (rc)
            rc = gs_error_set(err, GS_ERR_RUNTIME, "the %s matmul failed while measuring FLOP/s", op->name);
    }
    free(host);
    if (w)
        op->free(be, w);
    if (x)
        op->free(be, x);
    if (y)
        op->free(be, y);
    return rc;
}

/* The fastest precision the backend takes (fp16 first on a device with
 * half-precision matrix units; fp32 on the CPU, whose fp16 weights are
 * widened to fp32 before the multiply), at a size that makes one product
 * long enough to be compute-bound (S grows to 4096 at most). */
static int measure_flops(gs_backend *be, gs_peaks *p, gs_error *err)
{
    static const gs_dtype order[] = {GS_DTYPE_F16, GS_DTYPE_F32};
    size_t first = strcmp(be->ops->name, "cpu") == 0 ? 1 : 0;
    for (size_t i = first; i < sizeof order / sizeof order[0]; i++) {
        double rate = 0, one = 0, best = 0;
        for (int S = 512; S <= 4096; S *= 2) {
            int rc = time_matmul(be, order[i], S, &rate, &one, err);
            if (rc > 0)
                return rc;
            if (rc < 0)
                break; /* refused, or too big: keep what the smaller sizes gave */
            if (rate > best)
                best = rate;
            if (one > 0.01)
                break; /* 10 ms per product: launch overheads are noise by now */
        }
        if (best > 0) {
            p->flops_per_s = best;
            snprintf(p->precision, sizeof p->precision, "%s", gs_dtype_name(order[i]));
            return GS_OK;
        }
    }
    return gs_error_set(err, GS_ERR_RUNTIME, "no matrix product could be timed on the %s backend", be->ops->name);
}

int gs_peaks_measure(gs_backend *be, gs_peaks *p, gs_error *err)
{
    memset(p, 0, sizeof *p);
    snprintf(p->backend, sizeof p->backend, "%s", be->ops->name);
    snprintf(p->device, sizeof p->device, "%s", be->device_name);
    int rc = measure_bw(be, &p->bw_bytes_per_s, err);
    if (rc == GS_OK)
        rc = measure_flops(be, p, err);
    return rc;
}

int gs_peaks_cache_path(const char *backend, const char *device, char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[1024];
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/gptscope", xdg);
    else if (home && home[0])
        n = snprintf(dir, sizeof dir, "%s/.cache/gptscope", home);
    else
        return -1;
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    char name[160];
    size_t k = 0;
    for (const char *s = device; *s && k < 100; s++, k++) {
        char ch = *s;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '.' || ch == '-' || ch == '_';
        name[k] = keep ? ch : '_';
    }
    name[k] = '\0';
    n = snprintf(buf, cap, "%s/peaks-%s-%s.txt", dir, backend, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int gs_peaks_format(const gs_peaks *p, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     CACHE_MAGIC "\nbackend %s\ndevice %s\nbandwidth_bytes_per_s %.6e\nflops_per_s %.6e\n"
                                 "precision %s\n",
                     p->backend, p->device, p->bw_bytes_per_s, p->flops_per_s, p->precision);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int parse_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_cache(const char *text, size_t len, const char *backend, const char *device, gs_peaks *p)
{
    if (len == 0 || len > CACHE_MAX_BYTES || memchr(text, '\0', len))
        return -1;
    char buf[CACHE_MAX_BYTES + 1];
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (buf[len - 1] != '\n')
        return -1; /* a torn write */
    enum { K_BACKEND = 1, K_DEVICE = 2, K_BW = 4, K_FLOPS = 8, K_PREC = 16, K_ALL = 31 };
    unsigned seen = 0;
    int line_no = 0;
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        if (line_no++ == 0) {
            if (strcmp(line, CACHE_MAGIC) != 0)
                return -1;
            continue;
        }
        char *sp = strchr(line, ' ');
        if (!sp)
            return -1;
        *sp = '\0';
        const char *key = line, *val = sp + 1;
        unsigned bit;
        if (strcmp(key, "backend") == 0) {
            bit = K_BACKEND;
            if (strcmp(val, backend) != 0)
                return -1;
            snprintf(p->backend, sizeof p->backend, "%s", val);
        } else if (strcmp(key, "device") == 0) {
            bit = K_DEVICE;
            if (strcmp(val, device) != 0)
                return -1; /* two devices whose names reduce to the same file name */
            snprintf(p->device, sizeof p->device, "%s", val);
        } else if (strcmp(key, "bandwidth_bytes_per_s") == 0) {
            bit = K_BW;
            if (parse_number(val, BW_MIN, BW_MAX, &p->bw_bytes_per_s))
                return -1;
        } else if (strcmp(key, "flops_per_s") == 0) {
            bit = K_FLOPS;
            if (parse_number(val, FLOPS_MIN, FLOPS_MAX, &p->flops_per_s))
                return -1;
        } else if (strcmp(key, "precision") == 0) {
            bit = K_PREC;
            if (strcmp(val, "fp16") != 0 && strcmp(val, "fp32") != 0 && strcmp(val, "bf16") != 0)
                return -1;
            snprintf(p->precision, sizeof p->precision, "%s", val);
        } else {
            return -1;
        }
        if (seen & bit)
            return -1; /* a key twice: not a file we wrote */
        seen |= bit;
    }
    if (seen != K_ALL)
        return -1;
    p->from_cache = 1;
    return 0;
}

int gs_peaks_parse(const char *text, size_t len, const char *backend, const char *device, gs_peaks *p)
{
    memset(p, 0, sizeof *p);
    int rc = parse_cache(text, len, backend, device, p);
    if (rc)
        memset(p, 0, sizeof *p); /* nothing of a refused file leaks out */
    return rc;
}

static int read_cache(const char *path, const char *backend, const char *device, gs_peaks *p)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char buf[CACHE_MAX_BYTES + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return gs_peaks_parse(buf, n, backend, device, p);
}

/* Best effort: the folder is made, the file written beside and renamed in,
 * so a reader never sees half a file. */
static void write_cache(const char *path, const gs_peaks *p)
{
    char dir[1200], tmp[1300], text[CACHE_MAX_BYTES];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || gs_peaks_format(p, text, sizeof text) < 0)
        return;
    *slash = '\0';
    char *parent = strrchr(dir, '/');
    if (parent) {
        *parent = '\0';
        mkdir(dir, 0755); /* ~/.cache may not exist yet */
        *parent = '/';
    }
    mkdir(dir, 0755);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return;
    int ok = fputs(text, f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0)
        remove(tmp);
}

int gs_peaks_get(gs_backend *be, int force, gs_peaks *p, gs_error *err)
{
    char path[1200];
    int have_path = gs_peaks_cache_path(be->ops->name, be->device_name, path, sizeof path) == 0;
    if (have_path && !force && read_cache(path, be->ops->name, be->device_name, p) == 0)
        return GS_OK;
    int rc = gs_peaks_measure(be, p, err);
    if (rc == GS_OK && have_path)
        write_cache(path, p);
    return rc;
}

void gs_roofline_eval(const gs_peaks *p, double flops, double bytes, double seconds, gs_roofline *r)
{
    memset(r, 0, sizeof *r);
    r->intensity = bytes > 0 ? flops / bytes : 0;
    if (seconds > 0) {
        r->flops_per_s = flops / seconds;
        r->bytes_per_s = bytes / seconds;
    }
    if (p->flops_per_s <= 0 || p->bw_bytes_per_s <= 0)
        return;
    double bw_roof = r->intensity * p->bw_bytes_per_s;
    r->attainable_flops_per_s = bw_roof < p->flops_per_s ? bw_roof : p->flops_per_s;
    double t_flops = flops / p->flops_per_s, t_bytes = bytes / p->bw_bytes_per_s;
    r->floor_s = t_flops > t_bytes ? t_flops : t_bytes;
    r->compute_bound = t_flops > t_bytes;
    if (seconds > 0)
        r->pct_of_roofline = 100.0 * r->floor_s / seconds;
}
