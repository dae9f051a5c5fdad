/* test_peaks.c - the roofline arithmetic, the peaks cache (bad files are
 * never trusted), and the CPU backend's copy op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "peaks.h"
#include "tap.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fabs(b) + 1e-12; }

static void test_roofline(void)
{
    /* 100 GB/s and 1 TFLOP/s: the ridge point is 10 FLOPs per byte. */
    gs_peaks p = {.bw_bytes_per_s = 1e11, .flops_per_s = 1e12};
    gs_roofline r;
    /* 2 GFLOP over 1 GB in 20 ms: AI 2, attainable min(1e12, 2 * 1e11) = 2e11;
     * achieved 1e11 FLOP/s and 5e10 B/s; floor max(2e9/1e12, 1e9/1e11) = 10 ms: 50 %. */
    gs_roofline_eval(&p, 2e9, 1e9, 0.02, &r);
    tap_ok(near(r.intensity, 2) && near(r.attainable_flops_per_s, 2e11) && near(r.flops_per_s, 1e11) &&
               near(r.bytes_per_s, 5e10) && near(r.floor_s, 0.01) && near(r.pct_of_roofline, 50) &&
               !r.compute_bound,
           "memory-bound op: AI 2, attainable 200 GFLOP/s, 50%% of the roofline");
    /* 1 TFLOP over 1 GB in 2 s: AI 1000, attainable 1e12, floor 1 s: 50 %, compute. */
    gs_roofline_eval(&p, 1e12, 1e9, 2.0, &r);
    tap_ok(near(r.intensity, 1000) && near(r.attainable_flops_per_s, 1e12) && near(r.floor_s, 1.0) &&
               near(r.pct_of_roofline, 50) && r.compute_bound,
           "compute-bound op: AI 1000, attainable 1 TFLOP/s, 50%%");
    /* A copy (no FLOPs): 1 GB in 50 ms against a 10 ms floor: 20 %, memory. */
    gs_roofline_eval(&p, 0, 1e9, 0.05, &r);
    tap_ok(r.intensity == 0 && near(r.floor_s, 0.01) && near(r.pct_of_roofline, 20) && !r.compute_bound &&
               near(r.bytes_per_s, 2e10),
           "op without FLOPs: 20%% of the bandwidth roof");
    /* At the ridge exactly the two terms tie: memory (not strictly greater). */
    gs_roofline_eval(&p, 1e10, 1e9, 0.01, &r);
    tap_ok(near(r.pct_of_roofline, 100) && !r.compute_bound && near(r.attainable_flops_per_s, 1e12),
           "at the ridge point: 100%%, attainable equals the peak");
    gs_roofline_eval(&p, 1e9, 1e9, 0, &r);
    tap_ok(r.flops_per_s == 0 && r.pct_of_roofline == 0 && near(r.floor_s, 0.01), "zero seconds: no rates");
    gs_peaks none = {0};
    gs_roofline_eval(&none, 1e9, 1e9, 1, &r);
    tap_ok(r.attainable_flops_per_s == 0 && r.pct_of_roofline == 0 && near(r.flops_per_s, 1e9),
           "no peaks: achieved rates only");
}

static const char *GOOD = "gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\n"
                          "bandwidth_bytes_per_s 1.250000e+10\nflops_per_s 9.000000e+10\nprecision fp32\n";

static void test_parse(void)
{
    gs_peaks p;
    const char *dev = "Test CPU (2 threads)";
    tap_ok(gs_peaks_parse(GOOD, strlen(GOOD), "cpu", dev, &p) == 0 && p.bw_bytes_per_s == 1.25e10 &&
               p.flops_per_s == 9e10 && strcmp(p.precision, "fp32") == 0 && p.from_cache &&
               strcmp(p.device, dev) == 0,
           "a good cache file parses");
    char buf[1024];
    int n = gs_peaks_format(&p, buf, sizeof buf);
    gs_peaks q;
    tap_ok(n > 0 && gs_peaks_parse(buf, (size_t)n, "cpu", dev, &q) == 0 && q.bw_bytes_per_s == p.bw_bytes_per_s &&
               q.flops_per_s == p.flops_per_s,
           "format then parse round-trips");
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "empty"},
        {"gptscope-peaks 2\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32\n",
         "another format version"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nprecision fp32\n",
         "a missing key"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nflops_per_s 1e11\nprecision fp32\n",
         "a key twice"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s nan\nflops_per_s 1e11\nprecision fp32\n",
         "nan"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s -1e10\nflops_per_s 1e11\nprecision fp32\n",
         "a negative bandwidth"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e30\nprecision fp32\n",
         "implausible FLOP/s"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10x\nflops_per_s 1e11\nprecision fp32\n",
         "trailing junk after a number"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Other CPU\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32\n",
         "another device"},
        {"gptscope-peaks 1\nbackend cuda\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32\n",
         "another backend"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32",
         "no final newline (a torn write)"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision int3\n",
         "an unknown precision"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32\ncolour blue\n",
         "an unknown key"},
        {"gptscope-peaks 1\nbackend cpu\ndevice Test CPU (2 threads)\nbandwidth_bytes_per_s 1e10\nflops_per_s 1e11\nprecision fp32\n\n",
         "an empty line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gs_peaks z;
        z.bw_bytes_per_s = 123;
        int rc = gs_peaks_parse(bad[i].text, strlen(bad[i].text), "cpu", dev, &z);
        tap_ok(rc == -1 && z.bw_bytes_per_s == 0 && z.flops_per_s == 0, "refused: %s", bad[i].why);
    }
    char nul[200];
    size_t len = strlen(GOOD);
    memcpy(nul, GOOD, len);
    nul[20] = '\0';
    tap_ok(gs_peaks_parse(nul, len, "cpu", dev, &p) == -1, "refused: a NUL byte");
    char *big = malloc(8192);
    memset(big, 'x', 8192);
    tap_ok(gs_peaks_parse(big, 8192, "cpu", dev, &p) == -1, "refused: longer than any file we write");
    free(big);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_cache(void)
{
    char dir[] = "/tmp/gs_peaks_XXXXXX";
    if (!mkdtemp(dir)) {
        tap_skip("no temporary folder");
        return;
    }
    setenv("XDG_CACHE_HOME", dir, 1);
    char path[1200];
    tap_ok(gs_peaks_cache_path("cpu", "AMD EPYC 7B13 (2 threads)", path, sizeof path) == 0 &&
               strstr(path, "/gptscope/peaks-cpu-AMD_EPYC_7B13__2_threads_.txt") != NULL &&
               strncmp(path, dir, strlen(dir)) == 0,
           "cache path under XDG_CACHE_HOME, name reduced to safe characters: %s", path);
    gs_backend *be = NULL;
    gs_error err = {0};
    if (gs_backend_cpu_create(&be, 2, &err)) {
        tap_skip("no CPU backend");
        return;
    }
    /* A planted good file for this device is used as is: no measurement. */
    char text[1024];
    gs_peaks fake = {.bw_bytes_per_s = 3.5e9, .flops_per_s = 4.5e9};
    snprintf(fake.backend, sizeof fake.backend, "cpu");
    snprintf(fake.device, sizeof fake.device, "%s", be->device_name);
    snprintf(fake.precision, sizeof fake.precision, "fp32");
    gs_peaks_format(&fake, text, sizeof text);
    gs_peaks_cache_path("cpu", be->device_name, path, sizeof path);
    char sub[1200];
    snprintf(sub, sizeof sub, "%s/gptscope", dir);
    mkdir(sub, 0755);
    write_file(path, text);
    gs_peaks p;
    int rc = gs_peaks_get(be, 0, &p, &err);
    tap_ok(rc == 0 && p.from_cache && p.bw_bytes_per_s == 3.5e9 && p.flops_per_s == 4.5e9,
           "a good cache file for this device is used");
    /* A corrupt file is measured over, and replaced by a good one. */
    write_file(path, "gptscope-peaks 1\nbackend cpu\ndevice garbage\n");
    rc = gs_peaks_get(be, 0, &p, &err);
    tap_ok(rc == 0 && !p.from_cache && p.bw_bytes_per_s > 1e6 && p.flops_per_s > 1e6 &&
               strcmp(p.precision, "fp32") == 0,
           "a bad cache file is ignored: measured %.1f GB/s, %.1f GFLOP/s (%s)", p.bw_bytes_per_s * 1e-9,
           p.flops_per_s * 1e-9, p.precision);
    gs_peaks again;
    rc = gs_peaks_get(be, 0, &again, &err);
    /* The file keeps 7 significant digits. */
    tap_ok(rc == 0 && again.from_cache && fabs(again.bw_bytes_per_s / p.bw_bytes_per_s - 1) < 1e-5 &&
               fabs(again.flops_per_s / p.flops_per_s - 1) < 1e-5,
           "the measurement was cached and is read back");
    /* force: measured again even with a good file there. */
    write_file(path, text);
    rc = gs_peaks_get(be, 1, &p, &err);
    tap_ok(rc == 0 && !p.from_cache && p.bw_bytes_per_s != 3.5e9, "force measures again");
    remove(path);
    rmdir(sub);
    rmdir(dir);
    gs_backend_destroy(be);
}

static void test_copy(void)
{
    gs_backend *be = NULL;
    gs_error err = {0};
    gs_backend_cpu_create(&be, 3, &err);
    /* Several 1 MiB chunks and a ragged end, so every thread's share is checked. */
    size_t bytes = ((size_t)5 << 20) + 12345;
    unsigned char *a = be->ops->alloc(be, bytes), *b = be->ops->alloc(be, bytes);
    for (size_t i = 0; i < bytes; i++)
        a[i] = (unsigned char)(i * 131u + (i >> 20));
    memset(b, 0, bytes);
    int rc = be->ops->copy(be, b, a, bytes);
    rc |= be->ops->synchronize(be);
    tap_ok(rc == 0 && memcmp(a, b, bytes) == 0, "the CPU copy op copies %zu bytes exactly", bytes);
    rc = be->ops->copy(be, b, a, 100);
    tap_ok(rc == 0 && memcmp(a, b, 100) == 0, "a small copy");
    be->ops->free(be, a);
    be->ops->free(be, b);
    gs_backend_destroy(be);
}

int main(void)
{
    test_roofline();
    test_parse();
    test_copy();
    test_cache();
    return tap_done();
}
