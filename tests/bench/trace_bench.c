/* trace_bench.c - speed and size of the trace path on a synthetic store of
 * realistic events (tests/synth_trace.c: ranges step > layer > op, kernels
 * with launch configurations on two streams, copies, syncs, DRAM metrics,
 * counters, KV snapshots). A benchmark, never a test: it prints figures for
 * tests/bench/PERFORMANCE.md beside their floors and the targets.
 *
 *   make -C build tests/bench/trace_bench
 *   build/tests/bench/trace_bench [--events N] [--dir DIR]
 *   build/tests/bench/trace_bench --seed FILE.gst      small trace for the fuzz corpus
 *
 * Times are wall clock and CPU time of this (single-threaded) process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../traces/export.h"
#include "../../traces/trace_reader.h"
#include "../../traces/trace_writer.h"
#include "../synth_trace.h"
#include "event_store.h"

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct timer { double wall, cpu; } timer;
static timer start(void) { return (timer){now_s(CLOCK_MONOTONIC), now_s(CLOCK_PROCESS_CPUTIME_ID)}; }
static timer stop(timer t)
{
    return (timer){now_s(CLOCK_MONOTONIC) - t.wall, now_s(CLOCK_PROCESS_CPUTIME_ID) - t.cpu};
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? -1 : (long long)sb.st_size;
}

static int write_gst(gs_event_store *s, const char *path)
{
    gs_trace_meta meta = {"bench", "bench host", "cuda: synthetic device", "model: gpt2-124m\n", 0};
    gs_trace_writer *w;
    gs_error err = {0};
    if (gs_trace_writer_open(&w, path, &meta, s, 0, &err) || gs_trace_writer_close(w, &err)) {
        fprintf(stderr, "trace_bench: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The floor for an output of n bytes: memcpy of it, and write(2) of it to a file in dir. */
static void floors(const char *dir, size_t n)
{
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a);
        free(b);
        return;
    }
    memset(a, 'x', n);
    memset(b, 'y', n);
    timer t = start();
    memcpy(b, a, n);
    timer m = stop(t);
    char path[1024];
    snprintf(path, sizeof path, "%s/floor.bin", dir);
    FILE *f = fopen(path, "wb");
    t = start();
    size_t w = f ? fwrite(a, 1, n, f) : 0;
    if (f)
        fclose(f);
    timer wr = stop(t);
    unlink(path);
    printf("floor: memcpy of %.1f MB %.3f s (%.2f GB/s); write(2) to a file %.3f s (%.2f GB/s)%s\n", n / 1e6, m.wall,
           n / m.wall / 1e9, wr.wall, n / wr.wall / 1e9, w == n ? "" : " (short write)");
    free(a);
    free(b);
}

int main(int argc, char **argv)
{
    uint64_t n_events = 1000000;
    const char *dir = "/tmp", *seed = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
            n_events = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = argv[++i];
        else {
            fprintf(stderr, "usage: trace_bench [--events N] [--dir DIR] | --seed FILE.gst\n");
            return 2;
        }
    }
    gs_synth_opts so;
    gs_synth_defaults(&so);
    if (seed) {
        /* Small and varied: 2 layers, every step sampled for metrics, a KV snapshot with a free run. */
        so.layers = 2;
        so.metrics_every = 1;
        so.kv_blocks = 16;
        gs_event_store *s = gs_store_create(0);
        long st = s ? gs_synth_fill(s, &so, 100) : -1;
        int rc = st < 0 || write_gst(s, seed);
        printf("%s: %llu events, %lld bytes\n", seed, s ? (unsigned long long)gs_store_count(s) : 0ULL, file_size(seed));
        gs_store_destroy(s);
        return rc;
    }

    gs_event_store *s = gs_store_create(0);
    timer t = start();
    long steps = s ? gs_synth_fill(s, &so, n_events) : -1;
    timer tb = stop(t);
    if (steps < 0) {
        fprintf(stderr, "trace_bench: out of memory\n");
        return 1;
    }
    uint64_t n = gs_store_count(s);
    printf("store: %llu events, %ld steps (%.1f events/step), built in %.3f s\n", (unsigned long long)n, steps,
           (double)n / steps, tb.wall);

    char json[1024], gz[1024], gst[1024], folded[1024], csv[1024];
    snprintf(json, sizeof json, "%s/trace_bench.json", dir);
    snprintf(gz, sizeof gz, "%s/trace_bench.json.gz", dir);
    snprintf(gst, sizeof gst, "%s/trace_bench.gst", dir);
    snprintf(folded, sizeof folded, "%s/trace_bench.folded", dir);
    snprintf(csv, sizeof csv, "%s/trace_bench.csv", dir);
    gs_export_info info = {"gptscope: cuda: synthetic device", "cuda: synthetic device", 0};
    gs_error err = {0};
    int rc = 0;

    t = start();
    rc |= gs_export_chrome(s, &info, json, &err);
    timer tj = stop(t);
    long long jsize = file_size(json);
    printf("chrome json: %.3f s wall, %.3f s cpu: %.2f M events/s (target >= 1), %.1f MB (%.0f bytes/event)\n", tj.wall,
           tj.cpu, n / tj.cpu / 1e6, jsize / 1e6, (double)jsize / n);
    t = start();
    rc |= gs_export_chrome(s, &info, gz, &err);
    timer tg = stop(t);
    printf("chrome json.gz: %.3f s wall, %.3f s cpu: %.2f M events/s, %.1f MB\n", tg.wall, tg.cpu, n / tg.cpu / 1e6,
           file_size(gz) / 1e6);
    t = start();
    rc |= gs_export_folded(s, folded, 1000, &err);
    timer tf = stop(t);
    t = start();
    rc |= gs_export_csv(s, csv, &err);
    timer tc = stop(t);
    printf("folded: %.3f s cpu; csv: %.3f s cpu\n", tf.cpu, tc.cpu);

    t = start();
    rc |= write_gst(s, gst);
    timer tw = stop(t);
    long long gsize = file_size(gst);
    printf("gst write: %.3f s wall, %.3f s cpu, %lld bytes: %.2f bytes/event (target <= 12)\n", tw.wall, tw.cpu, gsize,
           (double)gsize / n);
    gs_trace tr;
    t = start();
    int rrc = gs_trace_read_file(gst, &tr, &err);
    timer tr_t = stop(t);
    if (rrc) {
        fprintf(stderr, "trace_bench: %s\n", err.msg);
        rc = 1;
    } else {
        printf("gst read into a store: %.3f s wall, %.3f s cpu (target < 1 s), %llu events, %d warnings\n", tr_t.wall,
               tr_t.cpu, (unsigned long long)gs_store_count(tr.store), tr.n_warnings);
        if (gs_store_count(tr.store) != n)
            rc = 1;
        gs_trace_free(&tr);
    }
    if (jsize > 0)
        floors(dir, (size_t)jsize);
    if (rc)
        fprintf(stderr, "trace_bench: %s\n", err.msg[0] ? err.msg : "failed");
    unlink(json);
    unlink(gz);
    unlink(gst);
    unlink(folded);
    unlink(csv);
    gs_store_destroy(s);
    return rc ? 1 : 0;
}
