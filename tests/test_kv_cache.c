/* test_kv_cache.c - the paged KV cache's allocation, release and invariants. */
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "rng.h"
#include "tap.h"

static void test_basics(void)
{
    gs_kv_cache kv;
    gs_error err = {0};
    tap_ok(kv_cache_init(&kv, 8, 4, 3, 4, &err) == GS_OK, "init 8 blocks of 4 tokens");
    int s0 = kv_cache_seq_open(&kv), s1 = kv_cache_seq_open(&kv), s2 = kv_cache_seq_open(&kv);
    tap_ok(s0 == 0 && s1 == 1 && s2 == 2, "three sequence slots open");
    tap_ok(kv_cache_seq_open(&kv) == -1, "a fourth slot is refused");
    tap_ok(kv_cache_seq_grow(&kv, s0, 5) == 0 && kv.seq_blocks[s0] == 2, "5 tokens take 2 blocks");
    tap_ok(kv_cache_seq_grow(&kv, s0, 3) == 0 && kv.seq_blocks[s0] == 2, "3 more fill the second block");
    tap_ok(kv_cache_seq_grow(&kv, s0, 1) == 0 && kv.seq_blocks[s0] == 3, "the 9th token opens a third block");
    tap_ok(kv_cache_slot(&kv, s0, 0) == kv.tables[0] * 4 && kv_cache_slot(&kv, s0, 6) == kv.tables[1] * 4 + 2,
           "slots follow the block table");
    tap_ok(kv_cache_seq_grow(&kv, s0, 8) == -1 && kv.seq_blocks[s0] == 3 && kv.seq_tokens[s0] == 9,
           "growing past the table row fails and changes nothing");
    tap_ok(kv_cache_seq_grow(&kv, s1, 16) == 0 && kv.n_free == 1, "second sequence takes 4 blocks");
    int before = kv.n_free;
    tap_ok(kv_cache_seq_grow(&kv, s2, 8) == -1 && kv.n_free == before && kv.seq_blocks[s2] == 0,
           "all-or-nothing: a grow that does not fit takes no block");
    tap_ok(kv_cache_check(&kv, &err) == GS_OK, "invariants hold (%s)", err.msg);
    gs_kv_stats st;
    kv_cache_stats(&kv, &st);
    tap_ok(st.blocks_used == 7 && st.tokens_stored == 25 && st.slots_allocated == 28,
           "stats: 7 blocks used, 25 tokens in 28 slots");
    tap_ok(st.fragmentation > 0.10 && st.fragmentation < 0.11, "fragmentation 3/28");
    kv_cache_seq_close(&kv, s0);
    tap_ok(kv.n_free == 4 && kv_cache_check(&kv, &err) == GS_OK, "closing returns the blocks");
    kv_cache_seq_close(&kv, s1);
    kv_cache_seq_close(&kv, s2);
    kv_cache_stats(&kv, &st);
    tap_ok(kv.n_free == 8 && st.blocks_used == 0 && st.fragmentation == 0.0, "everything free at the end");
    kv_cache_destroy(&kv);
    tap_ok(kv_cache_init(&kv, 0, 16, 1, 1, &err) == GS_ERR_INPUT, "zero blocks is bad input");
    tap_ok(kv_cache_init(&kv, 1 << 30, 16, 1, 1, &err) == GS_ERR_INPUT, "absurd sizes are refused");
}

/* Random opens, grows and closes; the invariants must hold after every one. */
static void test_random_ops(void)
{
    gs_kv_cache kv;
    gs_error err = {0};
    kv_cache_init(&kv, 37, 16, 8, 20, &err);
    gs_rng rng;
    gs_rng_seed(&rng, 99);
    int bad = 0, grows = 0, refusals = 0;
    for (int it = 0; it < 20000 && !bad; it++) {
        int op = (int)(gs_rng_next(&rng) % 10);
        int s = (int)(gs_rng_next(&rng) % 8);
        if (op == 0) {
            if (kv.seq_open[s])
                kv_cache_seq_close(&kv, s);
            else
                kv_cache_seq_open(&kv);
        } else if (kv.seq_open[s]) {
            int n = 1 + (int)(gs_rng_next(&rng) % 40);
            int free_before = kv.n_free, tok_before = kv.seq_tokens[s];
            int need = kv_cache_blocks_needed(&kv, tok_before, n);
            if (kv_cache_seq_grow(&kv, s, n) == 0) {
                grows++;
                bad |= kv.n_free != free_before - need || kv.seq_tokens[s] != tok_before + n;
            } else {
                refusals++;
                bad |= kv.n_free != free_before || kv.seq_tokens[s] != tok_before;
            }
        }
        if (kv_cache_check(&kv, &err) != GS_OK)
            bad = 1;
    }
    tap_ok(!bad, "20000 random operations keep every invariant (%d grows, %d refusals) %s", grows, refusals,
           bad ? err.msg : "");
    /* Every slot of every open sequence is distinct: no two tokens share a cache row. */
    int rows = kv.n_blocks * kv.block_size;
    unsigned char *used = calloc((size_t)rows, 1);
    int dup = 0;
    for (int s = 0; s < kv.max_seqs; s++)
        for (int p = 0; kv.seq_open[s] && p < kv.seq_tokens[s]; p++) {
            int slot = kv_cache_slot(&kv, s, p);
            dup |= slot < 0 || slot >= rows || used[slot]++;
        }
    tap_ok(!dup, "no two tokens share a cache slot");
    free(used);
    kv_cache_destroy(&kv);
}

int main(void)
{
    test_basics();
    test_random_ops();
    return tap_done();
}
