/* test_cuda_attention.c - the CUDA KV store and attention (kernels/cuda/attention.cu)
 * against their CPU twins (cpu_kv_store, and cpu_attention_ref in double), on
 * fresh random data, for both variants (GS_ATTN_NAIVE, GS_ATTN_FUSED).
 *
 * Each case builds a paged cache for one to seventy sequences of different
 * lengths with scattered (shuffled) block tables, stores every history row
 * through cuda_kv_store and through cpu_kv_store (with padding rows of slot -1
 * sprinkled in) and requires the two caches to be byte-identical, guard zones
 * untouched. Then one attention call over tokens of those sequences:
 *   prefill-shaped: many tokens per sequence at causal positions (the fused
 *     path's tiled kernel), also interleaved with decode tokens of other
 *     sequences (which its split-K kernel takes), batches of sequences with
 *     1-9 tokens each, and a sequence whose step tokens sit at scattered
 *     positions;
 *   decode-shaped: one token per sequence at positions up to ~3000 (the fused
 *     path's split-K kernel with several chunks and the reduce).
 * Over MHA, GQA (8/2, 12/2), MQA, head_dim 5, 8, 12, 16, 64, 128, 256, block
 * sizes 4 and 16, sliding windows with and without sinks, and caches one float
 * off 16-byte alignment (the fused kernels' 4-byte copy path).
 * Every block-table entry that no token of the call can see points at a block
 * that was never stored (all NaN), so a kernel reading an invisible position
 * fails the "all finite" check. Outputs are poisoned with 0xFF bytes before
 * each run; agreement is ||gpu - ref|| / ||ref|| < 1e-5 over the whole output.
 * Too small a scratch must be refused with cudaErrorInvalidValue.
 * Each fused run is repeated with token_seq_host (the host's copy of the
 * rows' sequences): the output must be byte-identical, and a call of more
 * than 64 tokens must launch only the kernels some row needs (counted as the
 * nodes of a graph recording: no decode kernel for a pure prefill).
 *
 * Each case also runs fused with half_ok = 1 (a run in half-precision
 * weights). Where cuda_attention_tensor_cores says the call takes the
 * tensor-core prefill (head_dim 32/64/128, more than 64 tokens, aligned
 * caches) the tolerance is 2e-3 (q, k, v and p rounded to fp16, fp32
 * accumulation); elsewhere half_ok must change nothing (1e-5). The "tc" cases
 * must take the tensor-core path, checked by the routing function and by an
 * error above 1e-6 (the fp32 kernels stay below it). Inside a block two key
 * groups take alternate key tiles and merge; past 1024 positions the
 * tensor-core prefill also splits a row tile's key tiles into chunks merged
 * by a second kernel (the "split" cases: a second sequence's tile with
 * nothing in chunk 1, a window with sinks at head_dim 128). Grids of more
 * than 1.5 blocks an SM take the 128-register variant (the 32-head case).
 * Where the tensor-core prefill takes every row, cuda_attention_half's fp16
 * and bf16 outputs must be that fp32 output rounded, bit for bit.
 *
 * Every case runs for each KV element type (fp32, fp16, int8, fp8 e4m3):
 * cuda_kv_store must write the same bytes as cpu_kv_store (int8: the same
 * scales too; the never-stored block and scales are 0xFF bytes, NaN in fp32,
 * fp16, fp8 and as an int8 scale), and the reference is cpu_attention_ref
 * reading the same quantized cache: it dequantizes exactly as the kernels do,
 * so the tolerance stays 1e-5.
 *
 * Each run draws a new seed and prints it; GS_TEST_SEED=<n> replays a run.
 * Without a CUDA device it prints "1..0 # SKIP no CUDA device" and exits 0.
 *
 *   test_cuda_attention            the TAP test (seconds)
 *   test_cuda_attention --bench [NAME]   both variants' times at GPT-2 and Llama
 *                                        shapes, prefills also fused with half_ok
 *                                        ("tc": the tensor-core prefill) and in
 *                                        TFLOP/s (2 n^2 d per head, causal)
 *                                        (NAME: only cases containing it) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpu_test_util.h"

#include "attention.h"
#include "dtype.h"
#include "cuda/attention_cuda.h"
#include "../tap.h"
#include "test_support.h" /* tests/tap.h: relative, as tests/ is not on the include path */

#define TOL 1e-5
#define TOL_HALF 2e-3 /* the tensor-core prefill: fp16 q, k, v and p, fp32 accumulation */
#define MAX_SEQ 80

/* ---- checks ---- */

/* ---- the visibility rule, restated (test-side: which blocks a call may read) ---- */

static int visible(int window, int n_sink, int pos, int p)
{
    if (p > pos)
        return 0;
    if (window <= 0)
        return 1;
    int lo = pos - window + 1 > 0 ? pos - window + 1 : 0;
    int sink_end = n_sink < lo ? (n_sink > 0 ? n_sink : 0) : lo;
    return p >= lo || p < sink_end;
}

/* ---- the hybrid's row rule, restated (test-side: which fused kernels a call needs) ---- */

/* Which kernels of a fused call of more than 64 tokens have rows: the decode
 * kernel (a row sharing its 16-row tile with fewer than 4 rows of its
 * sequence) and the prefill kernel (the others). */
static void hybrid_rows(const int *seq, int n, int *dec, int *pf)
{
    *dec = *pf = 0;
    for (int t = 0; t < n; t++) {
        int t0 = t / 16 * 16, share = 0;
        for (int r = t0; r < t0 + 16 && r < n; r++)
            share += seq[r] == seq[t];
        if (share < 4)
            *dec = 1;
        else
            *pf = 1;
    }
}

/* Kernels one cuda_attention call launches: the nodes of a graph recording
 * of it (-1: the recording failed). */
static int launches(float *out, const float *qkv, const void *k, const void *v, const gs_attn_args *a,
                    void *scratch, size_t sb)
{
    cudaStream_t st;
    cudaGraph_t g = NULL;
    size_t nodes = 0;
    cuda_or_bail(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
    int ok = cudaStreamBeginCapture(st, cudaStreamCaptureModeRelaxed) == cudaSuccess;
    int rc = ok ? cuda_attention(out, qkv, k, v, a, scratch, sb, st) : -1;
    ok = ok && cudaStreamEndCapture(st, &g) == cudaSuccess && rc == 0 && cudaGraphGetNodes(g, NULL, &nodes) == cudaSuccess;
    if (g)
        cudaGraphDestroy(g);
    cudaStreamDestroy(st);
    cudaGetLastError();
    return ok ? (int)nodes : -1;
}

/* ---- one case ---- */

typedef struct attn_case {
    const char *what;
    int n_head, n_kv_head, head_dim, block_size, window, n_sink;
    int n_seq;          /* sequences in the cache and the call */
    int len[4];         /* history of each (random_seqs: len[0] is the largest) */
    int step[4];        /* tokens of each in the call: its last positions (random_seqs: step[0] each) */
    int random_seqs;    /* n_seq sequences of random length in [1, len[0]] */
    int interleave;     /* tokens of the sequences alternate instead of one sequence after another */
    int scatter;        /* sequence 0's tokens at random distinct positions, not its last ones */
    int cache_off;      /* k/v caches one float off 16-byte alignment */
    float q_scale;      /* q multiplied by this: larger is a peakier softmax */
    int random_steps;   /* random_seqs: each sequence has 1 + irand(step[0]) tokens in the call */
    int expect_tc;      /* with half_ok the call must take the tensor-core prefill */
} attn_case;

static const char *const kv_name[GS_KV_N_DTYPES] = {"fp32", "fp16", "int8", "fp8"};

/* cuda_attention_half: where it fits (the tensor-core prefill takes every
 * row: tc, and no row the decode kernel's by the host's rows), its fp16 and
 * bf16 outputs must be got (the fp32 tensor-core output) rounded to nearest
 * even, bit for bit, every element written (poisoned with 0xFFFF, a NaN no
 * rounding of a finite value gives), guards untouched; without
 * token_seq_host it must refuse. Where it does not fit it must say so. */
static void check_half_output(gs_attn_args *ad, const int *tseq, const float *got, size_t out_count, int tc,
                              const float *qkv, const void *k, const void *v, void *scratch, size_t sb,
                              const char *kv, const char *what)
{
    int dec = 1, pf = 1;
    if (ad->n_tokens > 64)
        hybrid_rows(tseq, ad->n_tokens, &dec, &pf);
    ad->token_seq_host = tseq;
    const int fits = cuda_attention_half_fits(ad, k, v), want = tc && !dec;
    char why[160] = "";
    int ok = fits == want, n_bad = 0;
    if (fits) {
        dbuf d_h = dbuf_new((out_count + 1) / 2, 0);
        uint16_t *h = xmalloc(d_h.count * 4);
        for (int bf = 0; bf < 2 && ok; bf++) {
            dbuf_poison(&d_h);
            int rc = cuda_attention_half(d_h.p, bf, qkv, k, v, ad, scratch, sb, 0);
            if (!ran_ok(rc, why, sizeof why)) {
                ok = 0;
                break;
            }
            dbuf_get(&d_h, h);
            for (size_t i = 0; i < out_count; i++)
                n_bad += h[i] != (bf ? gs_f32_to_bf16(got[i]) : gs_f32_to_f16(got[i]));
            ok = n_bad == 0 && dbuf_guards_ok(&d_h);
            if (!ok)
                snprintf(why, sizeof why, "%s: %d elements differ%s", bf ? "bf16" : "fp16", n_bad,
                         dbuf_guards_ok(&d_h) ? "" : ", GUARD ZONE OVERWRITTEN");
        }
        ad->token_seq_host = NULL;
        if (ok && cuda_attention_half(d_h.p, 0, qkv, k, v, ad, scratch, sb, 0) != (int)cudaErrorInvalidValue) {
            ok = 0;
            snprintf(why, sizeof why, "ran without token_seq_host");
        }
        free(h);
        dbuf_free(&d_h);
    } else if (!ok) {
        snprintf(why, sizeof why, "fits %d, expected %d (tc %d, decode rows %d)", fits, want, tc, dec);
    }
    ad->token_seq_host = NULL;
    tap_ok(ok, "attention half output %s %s: %s%s%s", kv, what,
           fits ? "fp16 and bf16 rows equal the fp32 output rounded, bit for bit" : "not taken (as expected)",
           ok ? "" : "; ", ok ? "" : why);
}

static void run_case(const attn_case *c, int kt)
{
    const int nh = c->n_head, nkv = c->n_kv_head, hd = c->head_dim, bs = c->block_size;
    const int q_dim = nh * hd, kv_dim = nkv * hd, stride = q_dim + 2 * kv_dim;
    const int n_seq = c->n_seq;
    int len[MAX_SEQ], step[MAX_SEQ];
    for (int s = 0; s < n_seq; s++) {
        len[s] = c->random_seqs ? 1 + irand(c->len[0]) : c->len[s];
        int want = !c->random_seqs ? c->step[s] : c->random_steps ? 1 + irand(c->step[0]) : c->step[0];
        step[s] = want < len[s] ? want : len[s];
    }
    int mb = 1;
    for (int s = 0; s < n_seq; s++)
        mb = (len[s] + bs - 1) / bs > mb ? (len[s] + bs - 1) / bs : mb;

    /* Block ids: a shuffled pool with spares, so tables are scattered. Every
     * table entry gets its own block; the spare never_stored stays NaN. */
    const int n_blocks = n_seq * mb + 3;
    int *perm = xmalloc((size_t)n_blocks * sizeof(int));
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = irand(i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    const int never_stored = perm[n_seq * mb];
    int *tables = xmalloc((size_t)n_seq * mb * sizeof(int));
    for (int i = 0; i < n_seq * mb; i++)
        tables[i] = perm[i];

    /* History rows of every sequence; the store takes them all, with a
     * padding row (slot -1, its own random data) every 37 rows. */
    int *hoff = xmalloc((size_t)n_seq * sizeof(int));
    int n_hist = 0;
    for (int s = 0; s < n_seq; s++) {
        hoff[s] = n_hist;
        n_hist += len[s];
    }
    int n_store = 0;
    for (int stored = 0; stored < n_hist; n_store++)
        stored += n_store % 37 != 0;
    n_store++; /* and one padding row last */
    float *store = xmalloc((size_t)n_store * stride * sizeof(float));
    int *slot = xmalloc((size_t)n_store * sizeof(int));
    int *store_row_of = xmalloc((size_t)n_hist * sizeof(int)); /* history row -> its store row */
    for (int i = 0, hrow = 0, s = 0, p = 0; i < n_store; i++) {
        float *row = store + (size_t)i * stride;
        for (int k = 0; k < stride; k++)
            row[k] = frand();
        if (i % 37 == 0 || hrow == n_hist) {
            slot[i] = -1;
            continue;
        }
        while (p == len[s]) {
            s++;
            p = 0;
        }
        slot[i] = tables[s * mb + p / bs] * bs + p % bs;
        store_row_of[hrow++] = i;
        p++;
    }

    /* Caches in 4-byte words (dbuf's unit), tails 0xFF on both sides. */
    const size_t cache_rows = (size_t)n_blocks * bs;
    const size_t cache_count = (cache_rows * kv_dim * gs_kv_elem_size(kt) + 3) / 4;
    const size_t scale_count = kt == GS_KV_I8 ? cache_rows * nkv : 1;
    float *kc = xmalloc(cache_count * sizeof(float)), *vc = xmalloc(cache_count * sizeof(float));
    float *ksc = xmalloc(scale_count * sizeof(float)), *vsc = xmalloc(scale_count * sizeof(float));
    memset(kc, 0xFF, cache_count * sizeof(float));
    memset(vc, 0xFF, cache_count * sizeof(float));
    memset(ksc, 0xFF, scale_count * sizeof(float));
    memset(vsc, 0xFF, scale_count * sizeof(float));
    const int i8 = kt == GS_KV_I8;
    cpu_kv_store(kc, vc, i8 ? ksc : NULL, i8 ? vsc : NULL, kt, store, slot, n_store, stride, q_dim, kv_dim, hd);

    dbuf d_store = dbuf_from(store, (size_t)n_store * stride, 0), d_slot = dbuf_from(slot, n_store, 0);
    dbuf d_k = dbuf_new(cache_count, c->cache_off), d_v = dbuf_new(cache_count, c->cache_off);
    dbuf d_ks = dbuf_new(scale_count, 0), d_vs = dbuf_new(scale_count, 0);
    char why[160] = "";
    int rc = cuda_kv_store(d_k.p, d_v.p, i8 ? d_ks.p : NULL, i8 ? d_vs.p : NULL, kt, d_store.p, d_slot.p, n_store,
                           stride, q_dim, kv_dim, hd, 0);
    int store_ok = ran_ok(rc, why, sizeof why);
    if (store_ok) {
        size_t most = cache_count > scale_count ? cache_count : scale_count;
        float *got = xmalloc(most * sizeof(float));
        dbuf_get(&d_k, got);
        int same_k = !memcmp(got, kc, cache_count * sizeof(float));
        dbuf_get(&d_v, got);
        int same_v = !memcmp(got, vc, cache_count * sizeof(float));
        dbuf_get(&d_ks, got);
        int same_s = !memcmp(got, ksc, scale_count * sizeof(float));
        dbuf_get(&d_vs, got);
        same_s = same_s && !memcmp(got, vsc, scale_count * sizeof(float));
        int guards = dbuf_guards_ok(&d_k) && dbuf_guards_ok(&d_v) && dbuf_guards_ok(&d_ks) && dbuf_guards_ok(&d_vs);
        snprintf(why, sizeof why, "%s%s%s%s", same_k ? "" : " K CACHE DIFFERS", same_v ? "" : " V CACHE DIFFERS",
                 same_s ? "" : " SCALES DIFFER", guards ? "" : " GUARD ZONE OVERWRITTEN");
        store_ok = same_k && same_v && same_s && guards;
        free(got);
    }
    tap_ok(store_ok, "kv_store %s %s: %d rows (%d with slot -1), kv_dim %d, bs=%d%s: same bytes as cpu_kv_store%s",
           kv_name[kt], c->what, n_store, n_store - n_hist, kv_dim, bs, c->cache_off ? ", misaligned cache" : "", why);

    /* The call's tokens. */
    int n_tok = 0;
    for (int s = 0; s < n_seq; s++)
        n_tok += step[s];
    int *tseq = xmalloc((size_t)n_tok * sizeof(int)), *tpos = xmalloc((size_t)n_tok * sizeof(int));
    int *seq_pos = xmalloc((size_t)n_tok * sizeof(int)), *seq_start = xmalloc((size_t)n_seq * sizeof(int));
    for (int s = 0, k = 0; s < n_seq; s++) {
        seq_start[s] = k;
        if (s == 0 && c->scatter) {
            /* step[0] distinct positions out of len[0], ascending */
            for (int p = 0, need = step[0]; p < len[0] && need > 0; p++)
                if (irand(len[0] - p) < need) {
                    seq_pos[k++] = p;
                    need--;
                }
        } else {
            for (int i = 0; i < step[s]; i++)
                seq_pos[k++] = len[s] - step[s] + i;
        }
    }
    if (c->interleave) { /* round robin over the sequences */
        int taken[MAX_SEQ] = {0};
        for (int t = 0; t < n_tok;)
            for (int s = 0; s < n_seq; s++)
                if (taken[s] < step[s]) {
                    tseq[t] = s;
                    tpos[t++] = seq_pos[seq_start[s] + taken[s]++];
                }
    } else {
        for (int s = 0, t = 0; s < n_seq; s++)
            for (int i = 0; i < step[s]; i++, t++) {
                tseq[t] = s;
                tpos[t] = seq_pos[seq_start[s] + i];
            }
    }
    int max_pos = 0;
    float *qkv = xmalloc((size_t)n_tok * stride * sizeof(float));
    for (int t = 0; t < n_tok; t++) {
        memcpy(qkv + (size_t)t * stride, store + (size_t)store_row_of[hoff[tseq[t]] + tpos[t]] * stride,
               stride * sizeof(float));
        for (int k = 0; k < q_dim; k++)
            qkv[(size_t)t * stride + k] *= c->q_scale;
        max_pos = tpos[t] + 1 > max_pos ? tpos[t] + 1 : max_pos;
    }

    /* Entries of blocks that no token sees now point at the never-stored block. */
    char *used = calloc((size_t)n_seq * mb, 1);
    if (!used) {
        printf("Bail out! out of host memory\n");
        exit(2);
    }
    for (int t = 0; t < n_tok; t++)
        for (int p = 0; p <= tpos[t]; p++)
            if (visible(c->window, c->n_sink, tpos[t], p))
                used[tseq[t] * mb + p / bs] = 1;
    int unused = 0;
    for (int i = 0; i < n_seq * mb; i++)
        if (!used[i]) {
            tables[i] = never_stored;
            unused++;
        }

    gs_attn_args a = {.n_tokens = n_tok, .n_head = nh, .n_kv_head = nkv, .head_dim = hd, .qkv_stride = stride,
                      .block_size = bs, .max_blocks_per_seq = mb, .max_pos = max_pos, .token_seq = tseq,
                      .token_pos = tpos, .block_tables = tables, .window = c->window, .n_sink = c->n_sink,
                      .kv_dtype = kt, .k_scale = i8 ? ksc : NULL, .v_scale = i8 ? vsc : NULL};
    const size_t out_count = (size_t)n_tok * q_dim;
    float *ref = xmalloc(out_count * sizeof(float)), *got = xmalloc(out_count * sizeof(float));
    for (size_t i = 0; i < out_count; i++)
        ref[i] = NAN;
    cpu_attention_ref(ref, qkv, kc, vc, &a);
    int ref_ok = all_finite(ref, out_count);

    dbuf d_qkv = dbuf_from(qkv, (size_t)n_tok * stride, 0);
    dbuf d_seq = dbuf_from(tseq, n_tok, 0), d_pos = dbuf_from(tpos, n_tok, 0);
    dbuf d_tab = dbuf_from(tables, (size_t)n_seq * mb, 0);
    dbuf d_out = dbuf_new(out_count, 0);
    gs_attn_args ad = a;
    ad.token_seq = d_seq.p;
    ad.token_pos = d_pos.p;
    ad.block_tables = d_tab.p;
    ad.k_scale = i8 ? d_ks.p : NULL;
    ad.v_scale = i8 ? d_vs.p : NULL;
    static const char *vname[] = {"naive", "fused", "fused half_ok"};
    for (int run = 0; run < 3; run++) {
        /* run 2: fused with half_ok, the tensor-core prefill where the call is
         * eligible (fp16 operands: TOL_HALF), else the fp32 kernels (TOL). */
        const int variant = run == 0 ? GS_ATTN_NAIVE : GS_ATTN_FUSED, half = run == 2;
        ad.variant = variant;
        ad.half_ok = half;
        const int tc = half && cuda_attention_tensor_cores(&ad, d_k.p, d_v.p);
        const double tol = tc ? TOL_HALF : TOL;
        size_t sb = cuda_attention_scratch_bytes(&ad);
        void *scratch = NULL;
        if (sb)
            cuda_or_bail(cudaMalloc(&scratch, sb), "cudaMalloc scratch");
        dbuf_poison(&d_out);
        rc = cuda_attention(d_out.p, d_qkv.p, d_k.p, d_v.p, &ad, scratch, sb, 0);
        char shape[200];
        snprintf(shape, sizeof shape,
                 "%s %s: heads %d/%d hd=%d bs=%d window=%d sinks=%d, %d seqs, %d tokens, max_pos %d, %d idle table "
                 "entries%s, scratch %zu B",
                 kv_name[kt], c->what, nh, nkv, hd, bs, c->window, c->n_sink, n_seq, n_tok, max_pos, unused,
                 c->cache_off ? ", misaligned cache" : "", sb);
        if (!ran_ok(rc, why, sizeof why)) {
            tap_ok(0, "attention %s %s: %s", vname[run], shape, why);
        } else {
            dbuf_get(&d_out, got);
            int fin = all_finite(got, out_count), guards = dbuf_guards_ok(&d_out);
            double err = gs_test_rel_err(got, ref, out_count);
            /* The tensor-core path rounds q and p to fp16 (~3e-4 relative each):
             * an error below 1e-6 (what the fp32 kernels reach) would mean it did not run. */
            int routed = !half || !c->expect_tc || (tc && err > 1e-6);
            tap_ok(store_ok && ref_ok && fin && guards && err < tol && routed,
                   "attention %s %s (rel err %.2e < %.0e)%s%s%s%s", vname[run], shape, err, tol,
                   !half ? "" : tc ? ", tensor cores" : ", fp32 fallback", fin ? "" : ", NOT all written/finite",
                   guards ? "" : ", GUARD ZONE OVERWRITTEN", ref_ok ? "" : ", REFERENCE NOT FINITE");
            if (!routed)
                tap_diag("expected the tensor-core prefill: routed %d, rel err %.2e", tc, err);
        }
        if (variant == GS_ATTN_FUSED) {
            /* With the host's copy of token_seq a hybrid call launches only
             * the kernels that have rows, and writes the same bytes. */
            float *again = xmalloc(out_count * sizeof(float));
            int base = launches(d_out.p, d_qkv.p, d_k.p, d_v.p, &ad, scratch, sb);
            ad.token_seq_host = tseq;
            int fewer = launches(d_out.p, d_qkv.p, d_k.p, d_v.p, &ad, scratch, sb);
            dbuf_poison(&d_out);
            int rc2 = cuda_attention(d_out.p, d_qkv.p, d_k.p, d_v.p, &ad, scratch, sb, 0);
            ad.token_seq_host = NULL;
            int ran = ran_ok(rc2, why, sizeof why);
            if (ran)
                dbuf_get(&d_out, again);
            int same = ran && rc == 0 && !memcmp(again, got, out_count * sizeof(float));
            /* Without it a hybrid call launches the decode kernel and the
             * prefill's (the tensor-core prefill: two when split over keys). */
            int dec = 1, pf = 1;
            if (n_tok > 64)
                hybrid_rows(tseq, n_tok, &dec, &pf);
            int want = n_tok > 64 ? dec + (pf ? base - 1 : 0) : base;
            tap_ok(same && base > 0 && fewer == want, "attention %s %s %s with token_seq_host: %d kernels (%d without, "
                   "%d expected), %s", vname[run], kv_name[kt], c->what, fewer, base, want,
                   same ? "the same bytes" : ran ? "OUTPUT DIFFERS" : why);
            free(again);
        }
        if (half)
            check_half_output(&ad, tseq, got, out_count, tc, d_qkv.p, d_k.p, d_v.p, scratch, sb, kv_name[kt], c->what);
        cudaFree(scratch);
    }

    dbuf_free(&d_store), dbuf_free(&d_slot), dbuf_free(&d_k), dbuf_free(&d_v), dbuf_free(&d_qkv);
    dbuf_free(&d_seq), dbuf_free(&d_pos), dbuf_free(&d_tab), dbuf_free(&d_out), dbuf_free(&d_ks), dbuf_free(&d_vs);
    free(perm), free(tables), free(hoff), free(store), free(slot), free(store_row_of), free(kc), free(vc);
    free(ksc), free(vsc);
    free(tseq), free(tpos), free(seq_pos), free(seq_start), free(qkv), free(used), free(ref), free(got);
}

/* Too small a scratch is refused before anything runs (the library prints one
 * line naming the sizes to stderr). */
static void test_scratch_check(void)
{
    const int n = 3, nh = 4, hd = 16, bs = 4, stride = 3 * nh * hd;
    int seq[3] = {0, 1, 2}, pos[3] = {2999, 1000, 5}, table[3 * 750];
    for (int i = 0; i < 3 * 750; i++)
        table[i] = i;
    dbuf d_seq = dbuf_from(seq, n, 0), d_pos = dbuf_from(pos, n, 0), d_tab = dbuf_from(table, 3 * 750, 0);
    gs_attn_args a = {.n_tokens = n, .n_head = nh, .n_kv_head = nh, .head_dim = hd, .qkv_stride = stride,
                      .block_size = bs, .max_blocks_per_seq = 750, .max_pos = 3000, .token_seq = d_seq.p,
                      .token_pos = d_pos.p, .block_tables = d_tab.p};
    for (int variant = GS_ATTN_NAIVE; variant <= GS_ATTN_FUSED; variant++) {
        a.variant = variant;
        size_t sb = cuda_attention_scratch_bytes(&a);
        void *scratch = NULL;
        if (sb)
            cuda_or_bail(cudaMalloc(&scratch, sb), "cudaMalloc scratch");
        /* out, qkv and the caches are never touched: the check comes first */
        int rc = sb ? cuda_attention(NULL, NULL, NULL, NULL, &a, scratch, sb - 1, 0) : -1;
        cudaError_t sync = cudaDeviceSynchronize();
        tap_ok(sb > 0 && rc == (int)cudaErrorInvalidValue && sync == cudaSuccess,
               "attention %s: a scratch one byte short of %zu is refused (rc %d)", variant ? "fused" : "naive", sb,
               rc);
        cudaFree(scratch);
    }
    dbuf_free(&d_seq), dbuf_free(&d_pos), dbuf_free(&d_tab);

    /* The short plan (batch-1 decode, <= 256 positions, few heads, head_dim
     * <= 64) runs unsplit: no scratch. One position more, or head_dim 128,
     * splits as before and needs the partials' scratch. */
    gs_attn_args d = {.n_tokens = 1, .n_head = 16, .n_kv_head = 16, .head_dim = 64, .qkv_stride = 3 * 16 * 64,
                      .block_size = 16, .max_blocks_per_seq = 64, .max_pos = 256, .variant = GS_ATTN_FUSED};
    const size_t short_sb = cuda_attention_scratch_bytes(&d);
    d.max_pos = 257;
    const size_t long_sb = cuda_attention_scratch_bytes(&d);
    d.max_pos = 256, d.head_dim = 128, d.qkv_stride = 3 * 16 * 128;
    const size_t wide_sb = cuda_attention_scratch_bytes(&d);
    tap_ok(short_sb == 0 && long_sb > 0 && wide_sb > 0,
           "fused decode: 256 positions of 16 heads unsplit (scratch %zu), 257 (%zu) and head_dim 128 (%zu) split",
           short_sb, long_sb, wide_sb);
}

/* ---- --bench: times at model shapes ---- */

typedef struct bench_case {
    const char *what;
    int n_head, n_kv_head, head_dim, n_seq, len, step;
    int kt; /* KV element type: GS_KV_F32 (0), F16 or FP8 */
} bench_case;

/* Median time of one tiny kernel (a one-row kv_store) between two events: the
 * launch-and-timing floor under every figure below. */
static double launch_floor_us(cudaEvent_t e0, cudaEvent_t e1)
{
    float ms[31];
    dbuf d_k = dbuf_new(64, 0), d_v = dbuf_new(64, 0), d_row = dbuf_new(192, 0), d_slot = dbuf_new(1, 0);
    int zero = 0;
    dbuf_put(&d_slot, &zero);
    for (int r = -1; r < 31; r++) {
        cudaEventRecord(e0, 0);
        cuda_kv_store(d_k.p, d_v.p, NULL, NULL, GS_KV_F32, d_row.p, d_slot.p, 1, 192, 64, 64, 64, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        if (r >= 0)
            cudaEventElapsedTime(&ms[r], e0, e1);
    }
    qsort(ms, 31, sizeof ms[0], cmp_float);
    dbuf_free(&d_k), dbuf_free(&d_v), dbuf_free(&d_row), dbuf_free(&d_slot);
    return ms[15] * 1e3;
}

/* only: run the cases whose name contains it (NULL: all) */
static int bench(const char *only)
{
    static const bench_case cases[] = {
        {"gpt2 decode b=1 ctx=1024", 12, 12, 64, 1, 1024, 1, GS_KV_F32},
        {"gpt2 decode b=16 ctx=1024", 12, 12, 64, 16, 1024, 1, GS_KV_F32},
        {"gpt2 decode b=128 ctx=512", 12, 12, 64, 128, 512, 1, GS_KV_F32},
        {"gpt2 prefill 1024", 12, 12, 64, 1, 1024, 1024, GS_KV_F32},
        {"gpt2 prefill 1024 kv fp16", 12, 12, 64, 1, 1024, 1024, GS_KV_F16},
        {"gpt2 prefill 1024 kv fp8", 12, 12, 64, 1, 1024, 1024, GS_KV_FP8},
        {"llama1b decode b=1 ctx=4096", 32, 8, 64, 1, 4096, 1, GS_KV_F32},
        {"llama1b decode b=16 ctx=2048", 32, 8, 64, 16, 2048, 1, GS_KV_F32},
        {"llama1b prefill 1024", 32, 8, 64, 1, 1024, 1024, GS_KV_F32},
        {"llama1b prefill 1024 kv fp16", 32, 8, 64, 1, 1024, 1024, GS_KV_F16},
        {"llama8b decode b=1 ctx=4096", 32, 8, 128, 1, 4096, 1, GS_KV_F32},
        {"llama8b prefill 2048", 32, 8, 128, 1, 2048, 2048, GS_KV_F32},
    };
    const int bs = 16, REPS = 30;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    printf("# median of %d runs after a warm-up; KV GB/s counts the cache bytes each call must read once\n", REPS);
    printf("# one tiny kernel between two events: %.1f us\n", launch_floor_us(e0, e1));
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const bench_case *c = &cases[ci];
        if (only && !strstr(c->what, only))
            continue;
        const int hd = c->head_dim, q_dim = c->n_head * hd, kv_dim = c->n_kv_head * hd, stride = q_dim + 2 * kv_dim;
        const int mb = (c->len + bs - 1) / bs, n_blocks = c->n_seq * mb, n_tok = c->n_seq * c->step;
        int *perm = xmalloc((size_t)n_blocks * sizeof(int)), *tseq = xmalloc((size_t)n_tok * sizeof(int));
        int *tpos = xmalloc((size_t)n_tok * sizeof(int));
        for (int i = 0; i < n_blocks; i++)
            perm[i] = i;
        for (int i = n_blocks - 1; i > 0; i--) {
            int j = irand(i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int s = 0, t = 0; s < c->n_seq; s++)
            for (int i = 0; i < c->step; i++, t++) {
                tseq[t] = s;
                tpos[t] = c->len - c->step + i;
            }
        size_t cache_count = (size_t)n_blocks * bs * kv_dim, qkv_count = (size_t)n_tok * stride;
        float *h = xmalloc((cache_count > qkv_count ? cache_count : qkv_count) * sizeof(float));
        for (size_t i = 0; i < cache_count || i < qkv_count; i++)
            h[i] = frand();
        /* The cache as c->kt elements (the same random values, encoded). */
        const size_t es = gs_kv_elem_size(c->kt), cache_words = (cache_count * es + 3) / 4;
        uint32_t *hc = xmalloc(cache_words * 4);
        for (size_t i = 0; i < cache_count; i++) {
            if (c->kt == GS_KV_F16)
                ((uint16_t *)hc)[i] = gs_kv_f32_to_f16(h[i]);
            else if (c->kt == GS_KV_FP8)
                ((uint8_t *)hc)[i] = gs_kv_f32_to_e4m3(h[i]);
            else
                ((float *)hc)[i] = h[i];
        }
        dbuf d_k = dbuf_from(hc, cache_words, 0), d_v = dbuf_from(hc, cache_words, 0), d_qkv = dbuf_from(h, qkv_count, 0);
        free(hc);
        dbuf d_seq = dbuf_from(tseq, n_tok, 0), d_pos = dbuf_from(tpos, n_tok, 0), d_tab = dbuf_from(perm, n_blocks, 0);
        dbuf d_out = dbuf_new((size_t)n_tok * q_dim, 0);
        gs_attn_args a = {.n_tokens = n_tok, .n_head = c->n_head, .n_kv_head = c->n_kv_head, .head_dim = hd,
                          .qkv_stride = stride, .block_size = bs, .max_blocks_per_seq = mb, .max_pos = c->len,
                          .token_seq = d_seq.p, .token_pos = d_pos.p, .block_tables = d_tab.p, .kv_dtype = c->kt,
                          .token_seq_host = tseq}; /* as the forward pass gives it: no idle decode blocks */
        double kv_bytes = (double)c->n_seq * c->len * kv_dim * 2 * es;
        /* Causal prefill FLOPs: QK^T and PV, 2 * 2 * d per (query, visible key) pair, n^2 / 2 pairs per head. */
        double flops = c->step > 1 ? (double)c->n_seq * 4.0 * c->step * c->step / 2 * hd * c->n_head : 0;
        printf("%-30s", c->what);
        /* naive, fused (fp32), and for prefills fused with half_ok: the tensor-core prefill */
        static const char *rname[] = {"naive", "fused", "tc"};
        for (int run = 0; run < (c->step > 1 ? 3 : 2); run++) {
            a.variant = run ? GS_ATTN_FUSED : GS_ATTN_NAIVE;
            a.half_ok = run == 2;
            const char *name = run == 2 && !cuda_attention_tensor_cores(&a, d_k.p, d_v.p) ? "half(fp32!)" : rname[run];
            size_t sb = cuda_attention_scratch_bytes(&a);
            void *scratch = NULL;
            if (sb && cudaMalloc(&scratch, sb) != cudaSuccess) {
                cudaGetLastError();
                printf("  %s: no memory for %zu B of scratch", name, sb);
                continue;
            }
            float ms[REPS];
            int rc = cuda_attention(d_out.p, d_qkv.p, d_k.p, d_v.p, &a, scratch, sb, 0);
            for (int r = 0; r < REPS && rc == 0; r++) {
                cudaEventRecord(e0, 0);
                rc = cuda_attention(d_out.p, d_qkv.p, d_k.p, d_v.p, &a, scratch, sb, 0);
                cudaEventRecord(e1, 0);
                cudaEventSynchronize(e1);
                cudaEventElapsedTime(&ms[r], e0, e1);
            }
            if (rc != 0 || cudaDeviceSynchronize() != cudaSuccess) {
                printf("  %s failed", name);
            } else {
                qsort(ms, REPS, sizeof ms[0], cmp_float);
                double us = ms[REPS / 2] * 1e3;
                if (flops > 0)
                    printf("  %s %8.1f us %6.1f TFLOP/s", name, us, flops / (us * 1e6));
                else
                    printf("  %s %9.1f us %7.1f KV GB/s", name, us, kv_bytes / (us * 1e3));
            }
            cudaFree(scratch);
        }
        printf("\n");
        dbuf_free(&d_k), dbuf_free(&d_v), dbuf_free(&d_qkv), dbuf_free(&d_seq), dbuf_free(&d_pos);
        dbuf_free(&d_tab), dbuf_free(&d_out);
        free(perm), free(tseq), free(tpos), free(h);
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return 0;
}

int main(int argc, char **argv)
{
    if (!gpu_test_device_or_skip())
        return 0;
    const uint64_t seed = rng_seed_from_env();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench(argc > 2 ? argv[2] : NULL);
    tap_diag("seed %llu (replay with GS_TEST_SEED=%llu)", (unsigned long long)seed, (unsigned long long)seed);

    /* what, heads, kv heads, head_dim, block_size, window, sinks, n_seq, len[], step[],
     * random_seqs, interleave, scatter, cache_off, q_scale, random_steps */
    static const attn_case cases[] = {
        /* prefill-shaped: more tokens than the fused path's split-K limit */
        {"prefill MHA", 4, 4, 64, 16, 0, 0, 3, {150, 70, 9}, {150, 70, 9}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"prefill GQA", 8, 2, 128, 16, 0, 0, 2, {120, 45}, {120, 45}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"prefill MQA", 8, 1, 8, 4, 0, 0, 3, {100, 33, 5}, {100, 33, 5}, 0, 0, 0, 0, 3.0f, 0, 0},
        {"prefill hd16 window+sinks", 4, 2, 16, 4, 20, 3, 2, {130, 60}, {130, 60}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"prefill window", 4, 4, 64, 16, 33, 0, 3, {140, 20, 77}, {140, 20, 77}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"chunked prefill among decodes", 8, 2, 64, 16, 0, 0, 3, {300, 700, 1200}, {90, 1, 1}, 0, 1, 0, 0, 2.0f, 0, 0},
        {"chunked prefill, window+sinks", 8, 2, 64, 4, 100, 4, 3, {900, 400, 150}, {80, 1, 30}, 0, 1, 0, 0, 2.0f, 0, 0},
        {"scattered positions, window 8", 4, 2, 64, 4, 8, 2, 1, {600}, {70}, 0, 0, 1, 0, 2.0f, 0, 0},
        {"scattered positions", 4, 4, 16, 16, 0, 0, 2, {500, 30}, {70, 30}, 0, 1, 1, 0, 1.0f, 0, 0},
        {"many decodes (mixed tiles)", 4, 1, 64, 16, 0, 0, 70, {400}, {1}, 1, 0, 0, 0, 2.0f, 0, 0},
        /* sequences of 1-9 tokens side by side: tiles whose rows go partly to
         * the fused path's tiled kernel, partly to its split-K kernel */
        {"random batch", 8, 2, 64, 16, 0, 0, 24, {700}, {9}, 1, 0, 0, 0, 2.0f, 1, 0},
        {"random batch, window+sinks", 4, 4, 32, 4, 60, 3, 30, {500}, {9}, 1, 0, 0, 0, 2.0f, 1, 0},
        {"random batch interleaved", 8, 1, 128, 16, 0, 0, 20, {900}, {9}, 1, 1, 0, 0, 2.0f, 1, 0},
        {"prefill hd256", 4, 2, 256, 16, 0, 0, 2, {100, 20}, {100, 20}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"prefill hd5 (scalar copies)", 3, 1, 5, 4, 0, 0, 2, {90, 40}, {90, 40}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"prefill misaligned", 4, 2, 64, 16, 0, 0, 2, {100, 50}, {100, 50}, 0, 0, 0, 1, 1.0f, 0, 0},
        {"prefill GQA 12/2", 12, 2, 32, 16, 0, 0, 1, {130}, {130}, 0, 0, 0, 0, 2.0f, 0, 0},
        /* decode-shaped: one token per sequence */
        {"decode MHA", 4, 4, 64, 16, 0, 0, 3, {3000, 1100, 37}, {1, 1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode GQA", 8, 2, 128, 4, 0, 0, 3, {2900, 700, 130}, {1, 1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode MQA", 8, 1, 8, 16, 0, 0, 2, {3100, 17}, {1, 1}, 0, 0, 0, 0, 3.0f, 0, 0},
        {"decode hd16", 4, 4, 16, 4, 0, 0, 3, {2500, 1000, 1}, {1, 1, 1}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"decode window", 4, 2, 64, 16, 500, 0, 3, {3000, 1200, 300}, {1, 1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode window+sinks", 8, 2, 64, 4, 300, 4, 3, {2999, 600, 310}, {1, 1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode window>pos, sinks", 4, 2, 8, 4, 1000, 3, 2, {800, 40}, {1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode window=1", 4, 2, 8, 4, 1, 0, 2, {30, 12}, {1, 1}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"decode hd5 (scalar copies)", 3, 1, 5, 4, 0, 0, 2, {1500, 40}, {1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode hd12", 4, 2, 12, 16, 0, 0, 1, {900}, {1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode hd256", 4, 1, 256, 16, 0, 0, 2, {2000, 64}, {1, 1}, 0, 0, 0, 0, 1.0f, 0, 0},
        {"decode hd256 MHA, window+sinks", 2, 2, 256, 16, 700, 2, 2, {1500, 90}, {1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode misaligned", 4, 2, 64, 16, 0, 0, 2, {1500, 800}, {1, 1}, 0, 0, 0, 1, 2.0f, 0, 0},
        {"decode GQA 12/2", 12, 2, 64, 16, 0, 0, 2, {2000, 300}, {1, 1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"decode batch 64", 4, 2, 64, 16, 0, 0, 64, {2000}, {1}, 1, 0, 0, 0, 2.0f, 0, 0},
        /* short histories of few heads: the decode kernel's short plan (one
         * block a head, 8 warps over up to 256 positions, no split) */
        {"short decode b1 ctx 150 (gpt2-355m)", 16, 16, 64, 16, 0, 0, 1, {150}, {1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"short decode ctx 65", 12, 12, 64, 16, 0, 0, 1, {65}, {1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"short decode 2 seqs ctx 256 + 70", 12, 12, 64, 16, 0, 0, 2, {256, 70}, {1, 1}, 0, 0, 0, 0, 3.0f, 0, 0},
        {"short decode window 100 + 4 sinks", 8, 8, 64, 4, 100, 4, 1, {250}, {1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"short decode hd5 (scalar copies)", 3, 3, 5, 4, 0, 0, 1, {140}, {1}, 0, 0, 0, 0, 2.0f, 0, 0},
        {"short decode hd32 misaligned", 4, 4, 32, 16, 0, 0, 1, {200}, {1}, 0, 0, 0, 1, 2.0f, 0, 0},
        {"first token", 4, 4, 8, 4, 0, 0, 1, {1}, {1}, 0, 0, 0, 0, 1.0f, 0, 0},
        /* few tokens of a prefill next to a decode: the split-K kernel with several tokens */
        {"short prefill + decode", 4, 2, 64, 16, 0, 0, 2, {40, 3000}, {40, 1}, 0, 1, 0, 0, 2.0f, 0, 0},
        {"short prefill window=1", 4, 2, 8, 4, 1, 0, 2, {30, 12}, {6, 1}, 0, 0, 0, 0, 1.0f, 0, 0},
        /* the tensor-core prefill (half_ok, head_dim 32/64/128): its 64-row
         * tiles, passes over several sequences in one tile, rows left to the
         * decode kernel, GQA/MQA, sinks and windows with gaps between them */
        {"tc prefill 1024 (gpt2)", 12, 12, 64, 16, 0, 0, 1, {1024}, {1024}, 0, 0, 0, 0, 1.0f, 0, 1},
        {"tc 300 + 77 prefill, 2 decodes", 12, 4, 64, 16, 0, 0, 4, {300, 77, 900, 500}, {300, 77, 1, 1}, 0, 0, 0,
         0, 2.0f, 0, 1},
        {"tc 300 + 77 prefill interleaved with decodes", 12, 4, 64, 16, 0, 0, 4, {300, 77, 900, 500},
         {300, 77, 1, 1}, 0, 1, 0, 0, 2.0f, 0, 1},
        {"tc MQA hd32", 8, 1, 32, 16, 0, 0, 2, {400, 150}, {400, 150}, 0, 0, 0, 0, 2.0f, 0, 1},
        {"tc GQA hd128", 8, 2, 128, 16, 0, 0, 2, {333, 90}, {333, 90}, 0, 0, 0, 0, 1.0f, 0, 1},
        {"tc window 128 + 4 sinks", 12, 4, 64, 16, 128, 4, 2, {700, 300}, {700, 300}, 0, 0, 0, 0, 2.0f, 0, 1},
        {"tc chunked prefill, window 128 + 4 sinks", 12, 4, 64, 4, 128, 4, 3, {900, 400, 150}, {200, 1, 30}, 0, 1,
         0, 0, 2.0f, 0, 1},
        {"tc scattered positions, window 8 + 2 sinks", 4, 2, 64, 4, 8, 2, 1, {600}, {70}, 0, 0, 1, 0, 2.0f, 0, 1},
        {"tc scattered positions hd32", 4, 4, 32, 16, 0, 0, 2, {500, 30}, {70, 30}, 0, 1, 1, 0, 1.0f, 0, 1},
        {"tc prefill bs=4, q peaky", 4, 2, 64, 4, 0, 0, 2, {260, 130}, {200, 130}, 0, 0, 0, 0, 4.0f, 0, 1},
        /* 256 blocks: the variant fitting two blocks an SM (128 registers) */
        {"tc prefill 512, 32 heads", 32, 8, 64, 16, 0, 0, 1, {512}, {512}, 0, 0, 0, 0, 1.0f, 0, 1},
        /* past 16 key tiles a row tile is split over keys and merged by tc_reduce_kernel */
        {"tc prefill 300 after 1900 (split over keys)", 8, 2, 64, 16, 0, 0, 2, {2200, 100}, {300, 100}, 0, 0, 0, 0,
         2.0f, 0, 1},
        {"tc prefill 200 after 2000, window 1500 + 4 sinks (split)", 8, 8, 128, 16, 1500, 4, 1, {2200}, {200}, 0, 0,
         0, 0, 2.0f, 0, 1},
    };
    /* GS_TEST_KV=int8,fp8 (names of kv_name) runs those element types only:
     * racecheck of the whole program takes longer than one device call. */
    const char *only_kv = getenv("GS_TEST_KV");
    for (int kt = GS_KV_F32; kt < GS_KV_N_DTYPES; kt++) {
        if (only_kv && !strstr(only_kv, kv_name[kt]))
            continue;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i], kt);
    }
    test_scratch_check();
    return tap_done();
}
