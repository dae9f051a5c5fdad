/* test_op_cost.c - the analytic model against values worked out by hand.
 *
 * Two small shapes with the arithmetic written out beside each expected
 * value, then GPT-2 124M and the TinyLlama shape checked against their
 * parameter counts, prefill and decode batches, naive vs fused attention,
 * fused vs unfused residual/norm, and the sliding window with sinks against
 * a brute-force count. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attention_args.h"
#include "op_cost.h"
#include "presets.h"
#include "tap.h"

static gs_op_cost cost(const gs_cost_config *c, const char *name, const gs_step_shape *st)
{
    gs_op_cost o;
    int rc = gs_op_cost_of(c, name, st, &o);
    if (rc)
        tap_diag("unknown op %s", name);
    return o;
}

static void check(const gs_cost_config *c, const char *name, const gs_step_shape *st, double flops,
                  double bytes, const char *what)
{
    gs_op_cost o = cost(c, name, st);
    int good = o.flops == flops && o.bytes == bytes &&
               o.bytes == o.weight_bytes + o.act_bytes + o.kv_bytes + o.score_bytes;
    tap_ok(good, "%s %s: %.0f FLOPs, %.0f bytes", what, name, flops, bytes);
    if (!good)
        tap_diag("got %.0f FLOPs, %.0f bytes", o.flops, o.bytes);
}

/* GPT-2 style: L=2, heads 2, C=8 (head_dim 4, KV=8, Q3=24), H=32, V=10. */
static gs_model_shape small_gpt2(void)
{
    gs_model_shape s = {.arch = GS_ARCH_GPT2, .n_layer = 2, .n_head = 2, .n_kv_head = 2, .n_embd = 8,
                        .n_hidden = 32, .n_ctx = 16, .vocab = 10, .tied_embedding = 1, .norm_eps = 1e-5f};
    return s;
}

/* Llama style: L=2, heads 4, KV heads 2, C=8 (head_dim 2, KV=4, Q3=16), H=12, V=10. */
static gs_model_shape small_llama(void)
{
    gs_model_shape s = {.arch = GS_ARCH_LLAMA, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_embd = 8,
                        .n_hidden = 12, .n_ctx = 16, .vocab = 10, .norm_eps = 1e-5f, .rope_theta = 10000};
    return s;
}

static void test_gpt2_prefill(void)
{
    gs_cost_config c = {.shape = small_gpt2(), .weight_dtype = GS_DTYPE_F32, .kv_elem_bytes = 4,
                        .attn_variant = GS_ATTN_NAIVE};
    gs_step_shape st = {0};
    gs_step_shape_add_seq(&st, 0, 4, 0, 0); /* one prompt of 4 tokens */
    st.n_logits = 1;
    tap_ok(st.n_tokens == 4 && st.n_seqs == 1 && st.attn_pairs == 1 + 2 + 3 + 4 && st.attn_keys == 4,
           "prefill of 4: 4 tokens, 1 seq, 10 pairs (1+2+3+4), 4 keys");
    const char *w = "gpt2 prefill n=4";
    /* ids, positions, rows, slots: 4 ints x 4 tokens x 4 B + 1 logit row x 4 B */
    check(&c, "upload_inputs", &st, 0, 4 * 4 * 4 + 1 * 4, w);
    /* 1 add per element: 4*8; wte and wpe rows 2*4*8*4 B + x written 4*8*4 B */
    check(&c, "embed", &st, 4 * 8, 2 * 4 * 8 * 4 + 4 * 8 * 4, w);
    /* LayerNorm 8 FLOPs/elem: 4*8*8; gain+bias 2*8*4 B + x read, out written 2*4*8*4 B */
    check(&c, "norm_attn", &st, 4 * 8 * 8, 2 * 8 * 4 + 2 * 4 * 8 * 4, w);
    check(&c, "norm_mlp", &st, 4 * 8 * 8, 2 * 8 * 4 + 2 * 4 * 8 * 4, w);
    /* 2*n*C*Q3 + bias n*Q3; W 24*8*4 B + bias 24*4 B + in 4*8*4 B + out 4*24*4 B */
    check(&c, "matmul_qkv", &st, 2 * 4 * 8 * 24 + 4 * 24, 24 * 8 * 4 + 24 * 4 + 4 * 8 * 4 + 4 * 24 * 4, w);
    /* k,v read from qkv 4*2*8*4 B, written to the cache 4*2*8*4 B */
    check(&c, "kv_store", &st, 0, 4 * 2 * 8 * 4 + 4 * 2 * 8 * 4, w);
    /* 4*C*pairs + 5*heads*pairs; q in + out 2*4*8*4 B, K,V 4 keys*2*8*4 B,
     * naive scores written + read 2*2 heads*10 pairs*4 B */
    check(&c, "attention", &st, 4 * 8 * 10 + 5 * 2 * 10, 2 * 4 * 8 * 4 + 4 * 2 * 8 * 4 + 2 * 2 * 10 * 4, w);
    check(&c, "matmul_out", &st, 2 * 4 * 8 * 8 + 4 * 8, 8 * 8 * 4 + 8 * 4 + 4 * 8 * 4 + 4 * 8 * 4, w);
    /* x += y: n*C adds; x, y read and x written 3*4*8*4 B */
    check(&c, "residual_attn", &st, 4 * 8, 3 * 4 * 8 * 4, w);
    check(&c, "residual_mlp", &st, 4 * 8, 3 * 4 * 8 * 4, w);
    check(&c, "matmul_up", &st, 2 * 4 * 8 * 32 + 4 * 32, 32 * 8 * 4 + 32 * 4 + 4 * 8 * 4 + 4 * 32 * 4, w);
    /* 9 FLOPs/elem over n*H; read + write 2*4*32*4 B */
    check(&c, "gelu", &st, 4 * 32 * 9, 2 * 4 * 32 * 4, w);
    check(&c, "matmul_down", &st, 2 * 4 * 32 * 8 + 4 * 8, 8 * 32 * 4 + 8 * 4 + 4 * 32 * 4 + 4 * 8 * 4, w);
    /* 1 row of 8 read and written */
    check(&c, "gather_last", &st, 0, 2 * 1 * 8 * 4, w);
    check(&c, "norm_final", &st, 1 * 8 * 8, 2 * 8 * 4 + 2 * 1 * 8 * 4, w);
    /* 2*R*C*V, head 10*8*4 B (no bias), in 1*8*4 B, out 1*10*4 B */
    check(&c, "matmul_logits", &st, 2 * 1 * 8 * 10, 10 * 8 * 4 + 1 * 8 * 4 + 1 * 10 * 4, w);
    check(&c, "download_logits", &st, 0, 1 * 10 * 4, w);
    /* fused: x, y read, x and out written 4*4*8*4 B; add + LayerNorm 4*8 + 4*8*8 */
    check(&c, "residual_norm_mlp", &st, 4 * 8 + 4 * 8 * 8, 2 * 8 * 4 + 4 * 4 * 8 * 4, w);
    check(&c, "residual_norm_attn", &st, 4 * 8 + 4 * 8 * 8, 2 * 8 * 4 + 4 * 4 * 8 * 4, w);

    gs_op_cost o;
    tap_ok(gs_op_cost_of(&c, "no_such_op", &st, &o) == -1 && o.bytes == 0 && o.flops == 0,
           "an unknown op name is -1 with a zero cost");

    /* fp16 weights: matrices at 2 B, the bias stays fp32. */
    c.weight_dtype = GS_DTYPE_F16;
    check(&c, "matmul_qkv", &st, 2 * 4 * 8 * 24 + 4 * 24, 24 * 8 * 2 + 24 * 4 + 4 * 8 * 4 + 4 * 24 * 4,
          "gpt2 fp16");
    check(&c, "norm_attn", &st, 4 * 8 * 8, 2 * 8 * 4 + 2 * 4 * 8 * 4, "gpt2 fp16 (gains stay fp32)");
    c.weight_dtype = GS_DTYPE_F32;
    /* fused attention: no score bytes, same FLOPs */
    c.attn_variant = GS_ATTN_FUSED;
    check(&c, "attention", &st, 4 * 8 * 10 + 5 * 2 * 10, 2 * 4 * 8 * 4 + 4 * 2 * 8 * 4, "gpt2 fused");
    c.attn_variant = GS_ATTN_NAIVE;

    /* Whole step, unfused. Per layer (bytes, FLOPs): norm_attn 320/256,
     * qkv 1376/1632, kv_store 512/0, attention 672/420, out 544/544,
     * residual_attn 384/32, norm_mlp 320/256, up 1792/2176, gelu 1024/1152,
     * down 1696/2080, residual_mlp 384/32: 9024 B, 8580 FLOPs. Per step:
     * upload 68/0, embed 384/32, gather 64/0, norm_final 128/64,
     * logits 392/160, download 40/0. */
    gs_op_cost t;
    gs_step_cost(&c, &st, &t);
    double bytes = 68 + 384 + 2 * 9024 + 64 + 128 + 392 + 40, flops = 32 + 2 * 8580 + 64 + 160;
    tap_ok(t.bytes == bytes && t.flops == flops, "gpt2 prefill step: %.0f B, %.0f FLOPs (got %.0f, %.0f)",
           bytes, flops, t.bytes, t.flops);
    /* Fused: norm_attn once, residual_norm_mlp x2, residual_norm_attn x1,
     * residual_mlp x1 (2432 B) instead of 2 x (320 + 384 + 320 + 384)
     * (2816 B); the FLOPs are the same. */
    c.fused = 1;
    gs_op_cost tf;
    gs_step_cost(&c, &st, &tf);
    tap_ok(tf.bytes == bytes - (2816 - 2432) && tf.flops == flops, "gpt2 fused step saves 384 B, same FLOPs");
    /* No logits this step (a prefill chunk): the four logits ops drop out. */
    st.n_logits = 0;
    gs_step_cost(&c, &st, &t);
    tap_ok(t.bytes == tf.bytes - (4 + 64 + 128 + 392 + 40) && t.flops == tf.flops - (64 + 160),
           "a step without logits has no logits ops (and 4 B less upload)");
    gs_step_shape none = {0};
    gs_step_cost(&c, &none, &t);
    tap_ok(t.bytes == 0 && t.flops == 0, "an empty step costs nothing");
}

static void test_llama_decode(void)
{
    gs_cost_config c = {.shape = small_llama(), .weight_dtype = GS_DTYPE_F16, .kv_elem_bytes = 2,
                        .attn_variant = GS_ATTN_FUSED};
    gs_step_shape st = {0};
    gs_step_shape_add_seq(&st, 5, 1, 0, 0); /* position 5: sees 6 */
    gs_step_shape_add_seq(&st, 3, 1, 0, 0); /* position 3: sees 4 */
    st.n_logits = 2;
    tap_ok(st.n_tokens == 2 && st.n_seqs == 2 && st.attn_pairs == 6 + 4 && st.attn_keys == 6 + 4,
           "decode of two sequences at 5 and 3: 10 pairs, 10 keys");
    const char *w = "llama decode n=2";
    /* no positional table: wte rows 2*8*4 B + x 2*8*4 B, no FLOPs */
    check(&c, "embed", &st, 0, 2 * 8 * 4 + 2 * 8 * 4, w);
    /* RMSNorm 4 FLOPs/elem, gain only */
    check(&c, "norm_attn", &st, 2 * 8 * 4, 8 * 4 + 2 * 2 * 8 * 4, w);
    /* no bias; W 16*8 at 2 B */
    check(&c, "matmul_qkv", &st, 2 * 2 * 8 * 16, 16 * 8 * 2 + 2 * 8 * 4 + 2 * 16 * 4, w);
    /* (C+KV)/2 = 6 pairs per token, 6 FLOPs each; q,k read and written 2*2*12*4 B */
    check(&c, "rope", &st, 2 * 6 * 6, 2 * 2 * 12 * 4, w);
    /* k,v read 2*2*4*4 B fp32, cache written 2*2*4*2 B */
    check(&c, "kv_store", &st, 0, 2 * 2 * 4 * 4 + 2 * 2 * 4 * 2, w);
    /* 4*C*10 + 5*4 heads*10; q, out 2*2*8*4 B; 10 keys * (K+V) 2 * KV 4 * 2 B */
    check(&c, "attention", &st, 4 * 8 * 10 + 5 * 4 * 10, 2 * 2 * 8 * 4 + 10 * 2 * 4 * 2, w);
    check(&c, "matmul_up", &st, 2 * 2 * 8 * 12, 12 * 8 * 2 + 2 * 8 * 4 + 2 * 12 * 4, w);
    check(&c, "matmul_gate", &st, 2 * 2 * 8 * 12, 12 * 8 * 2 + 2 * 8 * 4 + 2 * 12 * 4, w);
    /* 4 FLOPs/elem; up, gate read, up written 3*2*12*4 B */
    check(&c, "swiglu", &st, 2 * 12 * 4, 3 * 2 * 12 * 4, w);
    check(&c, "matmul_down", &st, 2 * 2 * 12 * 8, 8 * 12 * 2 + 2 * 12 * 4 + 2 * 8 * 4, w);
    check(&c, "matmul_logits", &st, 2 * 2 * 8 * 10, 10 * 8 * 2 + 2 * 8 * 4 + 2 * 10 * 4, w);
    check(&c, "residual_norm_attn", &st, 2 * 8 + 2 * 8 * 4, 8 * 4 + 4 * 2 * 8 * 4, w);
    c.attn_variant = GS_ATTN_NAIVE;
    /* naive adds scores written and read: 2 * 4 heads * 10 pairs * 4 B */
    check(&c, "attention", &st, 4 * 8 * 10 + 5 * 4 * 10, 2 * 2 * 8 * 4 + 10 * 2 * 4 * 2 + 2 * 4 * 10 * 4,
          "llama naive");

    /* Greedy ids picked in the pass: both rows' logits read and compared
     * once (2*10 compares, 2*10*4 B) and an id written each (2*4 B); only
     * the ids cross back (2*4 B) and download_logits has nothing to move. */
    gs_op_cost logits_step, ids_step;
    gs_step_cost(&c, &st, &logits_step);
    st.n_ids = 2;
    const char *wi = "llama decode n=2, ids";
    check(&c, "sample_argmax", &st, 2 * 10, 2 * 10 * 4 + 2 * 4, wi);
    check(&c, "download_ids", &st, 0, 2 * 4, wi);
    check(&c, "download_logits", &st, 0, 0, wi);
    gs_step_cost(&c, &st, &ids_step);
    /* The step swaps download_logits (2*10*4 B) for sample_argmax and download_ids (88 + 8 B). */
    tap_ok(ids_step.bytes == logits_step.bytes - 2 * 10 * 4 + (2 * 10 * 4 + 2 * 4) + 2 * 4 &&
               ids_step.flops == logits_step.flops + 2 * 10,
           "a step reading back ids: sample_argmax and download_ids replace download_logits (%.0f B, %.0f FLOPs)",
           ids_step.bytes, ids_step.flops);
}

/* Independent count: mark the visible positions of every token. */
static void brute_window(int n_cached, int n_new, int window, int n_sink, long *pairs, long *keys)
{
    char seen[256] = {0};
    *pairs = 0;
    *keys = 0;
    for (int p = n_cached; p < n_cached + n_new; p++)
        for (int j = 0; j <= p; j++) {
            int vis = window <= 0 || j > p - window || j < n_sink;
            if (vis) {
                (*pairs)++;
                if (!seen[j]++)
                    (*keys)++;
            }
        }
}

static void test_window(void)
{
    /* By hand: window 4, sinks 2, positions 10, 11, 12. Each sees its last 4
     * plus positions 0 and 1: 6 pairs each, 18; keys: 7..12 and 0, 1: 8. */
    gs_step_shape st = {0};
    gs_step_shape_add_seq(&st, 10, 3, 4, 2);
    tap_ok(st.attn_pairs == 18 && st.attn_keys == 8, "window 4 + 2 sinks at 10..12: 18 pairs, 8 keys");
    int bad = 0, cases = 0;
    for (int c0 = 0; c0 < 20; c0++)
        for (int n = 1; n < 12; n++)
            for (int w = 0; w < 8; w++)
                for (int s = 0; s < 4; s++) {
                    if (w == 0 && s > 0)
                        continue;
                    gs_step_shape t = {0};
                    long p, k;
                    gs_step_shape_add_seq(&t, c0, n, w, s);
                    brute_window(c0, n, w, s, &p, &k);
                    cases++;
                    if (t.attn_pairs != p || t.attn_keys != k) {
                        if (bad++ < 3)
                            tap_diag("cached %d new %d window %d sinks %d: %lld/%lld pairs, %lld/%lld keys", c0,
                                     n, w, s, (long long)t.attn_pairs, (long long)p, (long long)t.attn_keys,
                                     (long long)k);
                    }
                }
    tap_ok(bad == 0, "pairs and keys equal a brute-force count in %d window/sink cases", cases);
    /* A window limits a long decode's KV reads: position 999 with window 128 reads 128 rows. */
    gs_step_shape d = {0};
    gs_step_shape_add_seq(&d, 999, 1, 128, 0);
    tap_ok(d.attn_keys == 128 && d.attn_pairs == 128, "window 128 at position 999 reads 128 rows");
}

static void test_real_shapes(void)
{
    gs_model_shape g = gs_preset_find("gpt2-124m")->shape;
    gs_cost_config c = {.shape = g, .weight_dtype = GS_DTYPE_F32, .kv_elem_bytes = 4,
                        .attn_variant = GS_ATTN_FUSED};
    gs_step_shape st = {0};
    gs_step_shape_add_seq(&st, 0, 1, 0, 0);
    st.n_logits = 1;
    gs_op_cost t;
    gs_step_cost(&c, &st, &t);
    /* Decode of one token reads every parameter once, except that only one
     * row of wte and wpe is gathered, and the tied head reads wte whole. */
    double params = (double)gs_shape_param_count(&g), C = g.n_embd;
    double expect_w = 4.0 * (params - (double)g.n_ctx * C + 2 * C);
    tap_ok(t.weight_bytes == expect_w, "gpt2-124m decode reads %.0f weight bytes (got %.0f)", expect_w,
           t.weight_bytes);
    /* ~2 FLOPs per parameter used (wpe is a lookup): within 1% */
    double two_n = 2.0 * (params - (double)g.n_ctx * C);
    tap_ok(fabs(t.flops / two_n - 1) < 0.01, "gpt2-124m decode FLOPs %.3g ~ 2N %.3g", t.flops, two_n);
    tap_ok(gs_op_cost_intensity(&t) < 1.0, "gpt2-124m decode is memory-bound by the model (AI %.2f)",
           gs_op_cost_intensity(&t));
    /* Batch 16, greedy: 16 x 50257 fp32 logits (3.2 MB) cross PCIe, or 16 ids (64 B). */
    gs_step_shape b16 = {.n_tokens = 16, .n_seqs = 16, .n_logits = 16};
    gs_op_cost dl, di;
    gs_op_cost_of(&c, "download_logits", &b16, &dl);
    b16.n_ids = 16;
    gs_op_cost_of(&c, "download_ids", &b16, &di);
    tap_ok(dl.bytes == 16.0 * 50257 * 4 && di.bytes == 64,
           "gpt2-124m batch 16: logits read back are %.0f B, greedy ids %.0f B", dl.bytes, di.bytes);

    /* Prefill of 512 tokens: weights read once for all of them, so the
     * intensity grows with the batch. */
    gs_step_shape pf = {0};
    gs_step_shape_add_seq(&pf, 0, 512, 0, 0);
    pf.n_logits = 1;
    gs_op_cost tp;
    gs_step_cost(&c, &pf, &tp);
    gs_op_cost qd, qp;
    gs_op_cost_of(&c, "matmul_qkv", &st, &qd);
    gs_op_cost_of(&c, "matmul_qkv", &pf, &qp);
    tap_ok(qp.weight_bytes == qd.weight_bytes && qp.flops == 512 * qd.flops,
           "matmul_qkv: same weight bytes for 1 and 512 tokens, 512x the FLOPs");
    tap_ok(gs_op_cost_intensity(&tp) > 50, "gpt2-124m prefill 512 has AI %.0f > 50", gs_op_cost_intensity(&tp));
    /* attention pairs of a 512 prefill: 512*513/2 */
    tap_ok(pf.attn_pairs == 512LL * 513 / 2, "prefill 512 attends 131328 pairs");

    gs_model_shape l = gs_preset_find("llama-1b")->shape;
    gs_cost_config cl = {.shape = l, .weight_dtype = GS_DTYPE_F16, .kv_elem_bytes = 4,
                         .attn_variant = GS_ATTN_FUSED};
    gs_step_cost(&cl, &st, &t);
    /* Matrices at 2 B: per layer Q3*C + C*C + 3*H*C, plus the head V*C;
     * fp32: two RMSNorm gains per layer, the final gain, one wte row. */
    double Cl = l.n_embd, H = l.n_hidden, V = l.vocab, L = l.n_layer, Q3 = gs_shape_qkv_dim(&l);
    double mats = L * (Q3 * Cl + Cl * Cl + 3 * H * Cl) + V * Cl;
    double want = 2 * mats + 4 * (L * 2 * Cl + Cl) + 4 * Cl;
    tap_ok(t.weight_bytes == want, "llama-1b fp16 decode reads %.0f weight bytes (got %.0f)", want,
           t.weight_bytes);
    /* GQA: K and V rows are KV = 4 heads * 64 = 256 wide. At position 1000
     * the attention reads 1001 rows * 2 * 256 * 4 B per layer. */
    gs_step_shape d = {0};
    gs_step_shape_add_seq(&d, 1000, 1, 0, 0);
    d.n_logits = 1;
    gs_op_cost a;
    gs_op_cost_of(&cl, "attention", &d, &a);
    tap_ok(a.kv_bytes == 1001.0 * 2 * 256 * 4, "llama-1b decode at 1000 reads 1001 KV rows of 256");
}

int main(void)
{
    test_gpt2_prefill();
    test_llama_decode();
    test_window();
    test_real_shapes();
    return tap_done();
}
