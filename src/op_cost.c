/* op_cost.c - the analytic model declared in op_cost.h.
 *
 * Conventions: activations are fp32 (4 bytes), weight matrices take the
 * weight precision, vectors (norm gains, biases) and embeddings stay fp32
 * (forward.c's place_weights). A multiply-add is 2 FLOPs; a transcendental
 * (exp, tanh) or a compare (a running max) counts as 1. Per-row work (a norm's square root, a softmax's
 * final reciprocal) is ignored: it is C times smaller than the per-element
 * work counted. Index arrays (token ids, positions, slots, block tables) are
 * charged once, to upload_inputs, not to every op that reads them. */
#include "op_cost.h"

#include <string.h>

#include "attention_args.h"

#define F32 4.0 /* bytes of an fp32 activation, gain or bias */

/* FLOPs per element of the elementwise ops. */
#define LAYERNORM_FLOPS 8 /* mean 1; variance: subtract, square, add 3; normalize: subtract, scale, gain, bias 4 */
#define RMSNORM_FLOPS 4   /* sum of squares: square, add 2; normalize: scale, gain 2 */
#define GELU_FLOPS 9      /* 0.5 x (1 + tanh(k (x + 0.044715 x^3))): x^3 2, *c 1, +x 1, *k 1, tanh 1, +1 1, *x 1, *0.5 1 */
#define SWIGLU_FLOPS 4    /* silu(u) g = u / (1 + exp(-u)) * g: exp, add, divide, multiply */
#define ROPE_PAIR_FLOPS 6 /* one rotated pair: 4 multiplies, 2 adds (sin and cos not counted) */
#define SOFTMAX_FLOPS 5   /* per score: scale, running max, subtract, exp, add to the sum */

void gs_step_shape_add_seq(gs_step_shape *st, int n_cached, int n_new, int window, int n_sink)
{
    if (n_new <= 0)
        return;
    if (n_sink < 0)
        n_sink = 0;
    st->n_seqs++;
    st->n_tokens += n_new;
    int last = n_cached + n_new - 1;
    if (window <= 0) {
        /* Token at p sees p + 1 positions: sum over p = c .. c+n-1. */
        st->attn_pairs += (int64_t)n_new * n_cached + (int64_t)n_new * (n_new + 1) / 2;
        st->attn_keys += last + 1;
        return;
    }
    /* Same rule as the kernels: window (lo, p], plus sinks below lo. */
    for (int p = n_cached; p <= last; p++) {
        int lo = p - window + 1 > 0 ? p - window + 1 : 0;
        int sinks = n_sink < lo ? n_sink : lo;
        st->attn_pairs += sinks + p + 1 - lo;
    }
    /* The union over the step's tokens: windows [lo(first), last] and the
     * sinks below lo(first) (later tokens' sinks are no wider than that). */
    int lo_first = n_cached - window + 1 > 0 ? n_cached - window + 1 : 0;
    st->attn_keys += (last - lo_first + 1) + (n_sink < lo_first ? n_sink : lo_first);
}

static double norm_flops(const gs_model_shape *s)
{
    return s->arch == GS_ARCH_GPT2 ? LAYERNORM_FLOPS : RMSNORM_FLOPS;
}

/* Gain (and bias for LayerNorm), fp32. */
static double norm_param_bytes(const gs_model_shape *s)
{
    return (s->arch == GS_ARCH_GPT2 ? 2.0 : 1.0) * s->n_embd * F32;
}

/* out[rows][m] = in[rows][k] . W[m][k]^T (+ bias): reads W once, in, writes out. */
static void matmul_cost(const gs_cost_config *c, double rows, double k, double m, int bias, gs_op_cost *o)
{
    o->flops = 2.0 * rows * k * m + (bias ? rows * m : 0.0);
    o->weight_bytes = m * k * (double)gs_dtype_size(c->weight_dtype) + (bias ? m * F32 : 0.0);
    o->act_bytes = rows * k * F32 + rows * m * F32;
}

int gs_op_cost_of(const gs_cost_config *c, const char *name, const gs_step_shape *st, gs_op_cost *o)
{
    const gs_model_shape *s = &c->shape;
    const double n = (double)st->n_tokens, R = (double)st->n_logits, I = (double)st->n_ids;
    const double C = s->n_embd, H = s->n_hidden, V = s->vocab, nh = s->n_head;
    const double KV = gs_shape_kv_dim(s), Q3 = gs_shape_qkv_dim(s), Q = gs_shape_q_dim(s);
    const int gpt2 = s->arch == GS_ARCH_GPT2, bias = gpt2;
    memset(o, 0, sizeof *o);

    if (strcmp(name, "upload_inputs") == 0) {
        /* Host to device: token id, position, block-table row and slot per
         * token, and the logit row indices. The block tables are left out:
         * their size is the cache's configuration, not the step's. */
        o->act_bytes = 4.0 * n * 4 + R * 4;
    } else if (strcmp(name, "embed") == 0) {
        /* x = wte[tok] (+ wpe[pos] for GPT-2): n gathered rows of each, fp32;
         * one add per element for GPT-2; x written. */
        o->flops = gpt2 ? n * C : 0.0;
        o->weight_bytes = (gpt2 ? 2.0 : 1.0) * n * C * F32;
        o->act_bytes = n * C * F32;
    } else if (strcmp(name, "norm_attn") == 0 || strcmp(name, "norm_mlp") == 0) {
        /* out = norm(x): x read, out written, gain (and bias) read. */
        o->flops = n * C * norm_flops(s);
        o->weight_bytes = norm_param_bytes(s);
        o->act_bytes = 2.0 * n * C * F32;
    } else if (strcmp(name, "matmul_qkv") == 0) {
        matmul_cost(c, n, C, Q3, bias, o);
    } else if (strcmp(name, "rope") == 0) {
        /* Rotates q and k in place: (Q + KV) / 2 pairs per token, read and written. */
        o->flops = n * (Q + KV) / 2.0 * ROPE_PAIR_FLOPS;
        o->act_bytes = 2.0 * n * (Q + KV) * F32;
    } else if (strcmp(name, "kv_store") == 0) {
        /* k and v of each new token read from qkv, written to the cache. */
        o->act_bytes = n * 2.0 * KV * F32;
        o->kv_bytes = n * 2.0 * KV * c->kv_elem_bytes;
    } else if (strcmp(name, "attention") == 0) {
        /* Per (head, attended position): q.k (2 hd), softmax, p.v (2 hd);
         * nh * hd = Q (C unless heads were pruned). q read and the output written once; each sequence's
         * distinct K and V rows read once (GQA: a KV head serves its group).
         * Naive attention writes the score matrix and reads it back: the
         * least any materializing version moves (the three-kernel CUDA one
         * moves it more often, padded to max_pos). */
        double pairs = (double)st->attn_pairs;
        o->flops = 4.0 * Q * pairs + SOFTMAX_FLOPS * nh * pairs;
        o->act_bytes = 2.0 * n * Q * F32;
        o->kv_bytes = (double)st->attn_keys * 2.0 * KV * c->kv_elem_bytes;
        if (c->attn_variant == GS_ATTN_NAIVE)
            o->score_bytes = 2.0 * nh * pairs * F32;
    } else if (strcmp(name, "matmul_out") == 0) {
        matmul_cost(c, n, Q, C, bias, o);
    } else if (strcmp(name, "residual_attn") == 0 || strcmp(name, "residual_mlp") == 0) {
        /* x += y: x and y read, x written. */
        o->flops = n * C;
        o->act_bytes = 3.0 * n * C * F32;
    } else if (strcmp(name, "residual_norm_mlp") == 0 || strcmp(name, "residual_norm_attn") == 0) {
        /* x += y, out = norm(x) in one pass: x and y read, x and out written
         * (unfused, the norm reads x again: 5 passes instead of 4). */
        o->flops = n * C + n * C * norm_flops(s);
        o->weight_bytes = norm_param_bytes(s);
        o->act_bytes = 4.0 * n * C * F32;
    } else if (strcmp(name, "matmul_up") == 0) {
        matmul_cost(c, n, C, H, bias, o);
    } else if (strcmp(name, "gelu") == 0) {
        /* In place over the hidden activations: read and written. */
        o->flops = n * H * GELU_FLOPS;
        o->act_bytes = 2.0 * n * H * F32;
    } else if (strcmp(name, "matmul_gate") == 0) {
        matmul_cost(c, n, C, H, 0, o);
    } else if (strcmp(name, "swiglu") == 0) {
        /* up = silu(up) * gate: up and gate read, up written. */
        o->flops = n * H * SWIGLU_FLOPS;
        o->act_bytes = 3.0 * n * H * F32;
    } else if (strcmp(name, "matmul_down") == 0) {
        matmul_cost(c, n, H, C, bias, o);
    } else if (strcmp(name, "gather_last") == 0) {
        /* The R rows that need logits copied out of x. */
        o->act_bytes = 2.0 * R * C * F32;
    } else if (strcmp(name, "norm_final") == 0) {
        o->flops = R * C * norm_flops(s);
        o->weight_bytes = norm_param_bytes(s);
        o->act_bytes = 2.0 * R * C * F32;
    } else if (strcmp(name, "matmul_logits") == 0) {
        /* The head is always a matrix in the weight precision (a tied fp32
         * head is wte itself; in half precision it gets its own copy). */
        matmul_cost(c, R, C, V, 0, o);
    } else if (strcmp(name, "download_logits") == 0) {
        /* Device to host: the rows of V fp32 logits whose ids were not picked in the pass. */
        o->act_bytes = (R - I) * V * F32;
    } else if (strcmp(name, "sample_argmax") == 0) {
        /* Greedy ids of I rows: each logit read and compared once, one id written. */
        o->flops = I * V;
        o->act_bytes = I * V * F32 + I * 4;
    } else if (strcmp(name, "download_ids") == 0) {
        /* Device to host: one int per row instead of V floats. */
        o->act_bytes = I * 4;
    } else {
        return -1;
    }
    o->bytes = o->weight_bytes + o->act_bytes + o->kv_bytes + o->score_bytes;
    return 0;
}

static void add_op(const gs_cost_config *c, const char *name, const gs_step_shape *st, double times,
                   gs_op_cost *t)
{
    gs_op_cost o;
    gs_op_cost_of(c, name, st, &o);
    t->flops += times * o.flops;
    t->weight_bytes += times * o.weight_bytes;
    t->act_bytes += times * o.act_bytes;
    t->kv_bytes += times * o.kv_bytes;
    t->score_bytes += times * o.score_bytes;
    t->bytes += times * o.bytes;
}

void gs_step_cost(const gs_cost_config *c, const gs_step_shape *st, gs_op_cost *t)
{
    const gs_model_shape *s = &c->shape;
    const double L = s->n_layer;
    memset(t, 0, sizeof *t);
    if (st->n_tokens <= 0)
        return;
    /* The op sequence of forward.c's gs_forward_step. */
    add_op(c, "upload_inputs", st, 1, t);
    add_op(c, "embed", st, 1, t);
    static const char *const per_layer[] = {"matmul_qkv", "kv_store", "attention", "matmul_out",
                                            "matmul_up", "matmul_down"};
    for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++)
        add_op(c, per_layer[i], st, L, t);
    if (s->arch == GS_ARCH_LLAMA) {
        add_op(c, "rope", st, L, t);
        add_op(c, "matmul_gate", st, L, t);
        add_op(c, "swiglu", st, L, t);
    } else {
        add_op(c, "gelu", st, L, t);
    }
    if (c->fused) {
        /* The first norm has no residual before it; the last residual feeds
         * the final norm, so it stays a plain add. */
        add_op(c, "norm_attn", st, 1, t);
        add_op(c, "residual_norm_mlp", st, L, t);
        add_op(c, "residual_norm_attn", st, L - 1, t);
        add_op(c, "residual_mlp", st, 1, t);
    } else {
        add_op(c, "norm_attn", st, L, t);
        add_op(c, "residual_attn", st, L, t);
        add_op(c, "norm_mlp", st, L, t);
        add_op(c, "residual_mlp", st, L, t);
    }
    if (st->n_logits > 0) {
        add_op(c, "gather_last", st, 1, t);
        add_op(c, "norm_final", st, 1, t);
        add_op(c, "matmul_logits", st, 1, t);
        if (st->n_ids > 0) {
            add_op(c, "sample_argmax", st, 1, t);
            add_op(c, "download_ids", st, 1, t);
        }
        if (st->n_logits > st->n_ids)
            add_op(c, "download_logits", st, 1, t);
    }
}

double gs_op_cost_intensity(const gs_op_cost *oc)
{
    return oc->bytes > 0 ? oc->flops / oc->bytes : 0.0;
}
