/* peaks.h - the device's peak rates, measured, and the roofline.
 *
 * Bandwidth comes from a large device-to-device copy through the backend's
 * copy op, FLOP/s from a large matrix product through its matmul in the
 * fastest precision the backend accepts (fp16 where it can, else fp32):
 * measured on this machine rather than copied from a datasheet, so the
 * roofline is one the code can reach. Both are measured once per device and
 * cached in a small text file ($XDG_CACHE_HOME/gptscope/, else
 * ~/.cache/gptscope/) keyed by the device name; a cache file that does not
 * parse, names another device or holds an implausible figure is ignored and
 * the peaks are measured again. */
#ifndef GS_PEAKS_H
#define GS_PEAKS_H

#include <stddef.h>

#include "backend.h"
#include "status.h"

typedef struct gs_peaks {
    char backend[16];           /* "cpu", "cuda" */
    char device[128];           /* gs_backend.device_name */
    double bw_bytes_per_s;      /* copy: bytes read plus bytes written, per second */
    double flops_per_s;         /* matrix product in `precision` */
    char precision[8];          /* "fp16", "fp32" */
    int from_cache;             /* 1: read back from the cache file; 0: measured in this run */
} gs_peaks;

/* Measures both peaks now (a second or two on a CPU, less on a GPU). */
int gs_peaks_measure(gs_backend *be, gs_peaks *p, gs_error *err);

/* The cached peaks of be's device, or measured and cached when there are
 * none, the file is bad, or force is set. A cache that cannot be written is
 * not an error (the peaks are still returned). */
int gs_peaks_get(gs_backend *be, int force, gs_peaks *p, gs_error *err);

/* The cache file for a device: DIR/peaks-BACKEND-DEVICE.txt with the name
 * reduced to [A-Za-z0-9._-]. 0, or -1 when no cache folder is known (no
 * XDG_CACHE_HOME and no HOME) or the path does not fit. */
int gs_peaks_cache_path(const char *backend, const char *device, char *buf, size_t cap);

/* The cache file's text, and its strict reader: 0 when text is a complete
 * record for this backend and device with plausible figures, else -1. */
int gs_peaks_format(const gs_peaks *p, char *buf, size_t cap);
int gs_peaks_parse(const char *text, size_t len, const char *backend, const char *device, gs_peaks *p);

/* ---- the roofline ---- */
typedef struct gs_roofline {
    double flops_per_s;        /* achieved: flops / seconds */
    double bytes_per_s;        /* achieved: bytes / seconds */
    double intensity;          /* FLOPs per byte (0 without bytes) */
    double attainable_flops_per_s; /* min(peak FLOP/s, intensity * peak bandwidth) */
    double floor_s;            /* the roofline's time: max(flops / peak FLOP/s, bytes / peak bandwidth) */
    double pct_of_roofline;    /* 100 * floor_s / seconds: achieved over attainable, also for ops without FLOPs */
    int compute_bound;         /* 1: the FLOP term dominates floor_s; 0: memory */
} gs_roofline;

/* Work of flops and bytes done in seconds against peaks p. Zero seconds or
 * zero peaks give zero rates and percentages. */
void gs_roofline_eval(const gs_peaks *p, double flops, double bytes, double seconds, gs_roofline *r);

#endif
