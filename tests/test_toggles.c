/* test_toggles.c - stepping through the optimization toggles and validating
 * a pending set (src/toggles.c): pure logic, no model. */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "toggles.h"

static const char *val(const gs_config *c, int i)
{
    static char buf[64];
    gs_toggle_value(c, i, buf, sizeof buf);
    return buf;
}

int main(void)
{
    gs_config c;
    gs_config_defaults(&c);
    gs_error err = {0};

    tap_ok(!strcmp(val(&c, GS_TG_WEIGHTS), "fp32"), "weights default fp32");
    tap_ok(gs_toggle_step(&c, GS_TG_WEIGHTS, 1, 12, &err) == GS_OK && !strcmp(val(&c, GS_TG_WEIGHTS), "fp16"),
           "weights steps fp32 -> fp16");
    gs_toggle_step(&c, GS_TG_WEIGHTS, -1, 12, &err);
    gs_toggle_step(&c, GS_TG_WEIGHTS, -1, 12, &err);
    tap_ok(!strcmp(val(&c, GS_TG_WEIGHTS), "int4"), "weights wraps backwards fp32 -> int4 (%s)", val(&c, GS_TG_WEIGHTS));

    const char *a0 = val(&c, GS_TG_ATTENTION);
    char before[64];
    snprintf(before, sizeof before, "%s", a0);
    gs_toggle_step(&c, GS_TG_ATTENTION, 1, 12, &err);
    tap_ok(strcmp(before, val(&c, GS_TG_ATTENTION)) != 0, "attention changes (%s -> %s)", before,
           val(&c, GS_TG_ATTENTION));
    gs_toggle_step(&c, GS_TG_ATTENTION, 1, 12, &err);
    tap_ok(!strcmp(before, val(&c, GS_TG_ATTENTION)), "attention wraps back to %s", before);

    tap_ok(!strcmp(val(&c, GS_TG_WINDOW), "0"), "window default 0");
    gs_toggle_step(&c, GS_TG_WINDOW, 1, 12, &err);
    tap_ok(!strcmp(val(&c, GS_TG_WINDOW), "64"), "window + steps 0 -> 64");
    gs_toggle_step(&c, GS_TG_WINDOW, 1, 12, &err);
    tap_ok(!strcmp(val(&c, GS_TG_WINDOW), "128"), "window + steps 64 -> 128");
    gs_toggle_step(&c, GS_TG_WINDOW, -1, 12, &err);
    gs_toggle_step(&c, GS_TG_WINDOW, -1, 12, &err);
    tap_ok(!strcmp(val(&c, GS_TG_WINDOW), "0"), "window - steps back to 0");

    /* sinks without a window: the set is refused, naming the option */
    gs_config p = c;
    gs_toggle_step(&p, GS_TG_SINKS, 1, 12, &err);
    tap_ok(!strcmp(val(&p, GS_TG_SINKS), "1"), "sinks steps 0 -> 1");
    gs_error e2 = {0};
    tap_ok(gs_toggle_validate(&p, 12, &e2) != GS_OK && strstr(e2.msg, "optimizations.sinks") != NULL,
           "sinks without a window is refused naming the option: %s", e2.msg);
    gs_toggle_step(&p, GS_TG_WINDOW, 1, 12, &err);
    gs_error e3 = {0};
    tap_ok(gs_toggle_validate(&p, 12, &e3) == GS_OK, "sinks 1 with window 64 passes (%s)", e3.msg);

    /* sparsity: kind and ratio together */
    gs_config s = c;
    tap_ok(!strcmp(val(&s, GS_TG_SPARSITY), "none"), "sparsity default none");
    gs_toggle_step(&s, GS_TG_SPARSITY, 1, 12, &err);
    tap_ok(!strcmp(val(&s, GS_TG_SPARSITY), "unstructured:0.25"), "sparsity steps to unstructured:0.25 (%s)",
           val(&s, GS_TG_SPARSITY));
    gs_error e4 = {0};
    tap_ok(gs_toggle_validate(&s, 12, &e4) == GS_OK, "unstructured:0.25 validates (%s)", e4.msg);
    for (int i = 0; i < 3; i++)
        gs_toggle_step(&s, GS_TG_SPARSITY, 1, 12, &err);
    tap_ok(!strcmp(val(&s, GS_TG_SPARSITY), "2:4"), "sparsity reaches 2:4 (%s)", val(&s, GS_TG_SPARSITY));
    gs_error e5 = {0};
    tap_ok(gs_toggle_validate(&s, 12, &e5) == GS_OK, "2:4 validates (%s)", e5.msg);
    gs_toggle_step(&s, GS_TG_SPARSITY, -1, 12, &err);
    tap_ok(!strcmp(val(&s, GS_TG_SPARSITY), "unstructured:0.75"), "sparsity steps back (%s)",
           val(&s, GS_TG_SPARSITY));

    /* booleans, group size */
    gs_config b = c;
    char f0[64];
    snprintf(f0, sizeof f0, "%s", val(&b, GS_TG_FUSION));
    gs_toggle_step(&b, GS_TG_FUSION, 1, 12, &err);
    tap_ok(strcmp(f0, val(&b, GS_TG_FUSION)) != 0, "fusion flips %s -> %s", f0, val(&b, GS_TG_FUSION));
    gs_toggle_step(&b, GS_TG_GROUP, 1, 12, &err);
    tap_ok(!strcmp(val(&b, GS_TG_GROUP), "128") || !strcmp(val(&b, GS_TG_GROUP), "64") ||
               !strcmp(val(&b, GS_TG_GROUP), "32"),
           "group size steps among 32/64/128 (%s)", val(&b, GS_TG_GROUP));

    /* kv_heads: divisors of n_head when the key exists, else unavailable */
    gs_config k = c;
    if (gs_toggle_available(GS_TG_KV_HEADS)) {
        int seen = 0;
        for (int i = 0; i < 8; i++) {
            gs_toggle_step(&k, GS_TG_KV_HEADS, 1, 6, &err);
            int v = atoi(val(&k, GS_TG_KV_HEADS));
            seen |= v && 6 % v;
        }
        tap_ok(!seen, "kv_heads only takes divisors of 6");
    } else {
        gs_error e6 = {0};
        tap_ok(gs_toggle_step(&k, GS_TG_KV_HEADS, 1, 6, &e6) != GS_OK && strstr(e6.msg, "kv_heads") &&
                   !strcmp(val(&k, GS_TG_KV_HEADS), "n/a"),
               "kv_heads unavailable in this build says so: %s", e6.msg);
    }

    /* summary and diff */
    char sum[512], diff[256];
    gs_toggle_summary(&c, sum, sizeof sum);
    tap_ok(strncmp(sum, "weights=int4 ", 13) == 0 && strstr(sum, " window=0") != NULL, "summary: %s", sum);
    gs_toggle_diff(&c, &p, diff, sizeof diff);
    tap_ok(!strcmp(diff, "window=64 sinks=1"), "diff names what changed: '%s'", diff);
    gs_toggle_diff(&c, &c, diff, sizeof diff);
    tap_ok(diff[0] == 0, "diff of equal sets is empty");

    tap_ok(gs_vstat_find("variant.decode_ms") == GS_VS_DECODE_MS && gs_vstat_find("nope") == -1 &&
               !strcmp(gs_vstat_name(GS_VS_PPL), "variant.perplexity"),
           "variant counter names round-trip");
    return tap_done();
}
