/* kv_cache.c - block allocation for the paged KV cache. */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

int kv_cache_init(gs_kv_cache *kv, int n_blocks, int block_size, int max_seqs,
                  int max_blocks_per_seq, gs_error *err)
{
    memset(kv, 0, sizeof *kv);
    if (n_blocks < 1 || block_size < 1 || max_seqs < 1 || max_blocks_per_seq < 1)
        return gs_error_set(err, GS_ERR_INPUT,
                            "kv_cache: blocks %d, block_size %d, sequences %d must all be positive",
                            n_blocks, block_size, max_seqs);
    if ((long)n_blocks * block_size > (1L << 30) || (long)max_seqs * max_blocks_per_seq > (1L << 28))
        return gs_error_set(err, GS_ERR_INPUT, "kv_cache: %d blocks of %d tokens is too large",
                            n_blocks, block_size);
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->max_seqs = max_seqs;
    kv->max_blocks_per_seq = max_blocks_per_seq;
    kv->free_list = malloc((size_t)n_blocks * sizeof(int));
    kv->block_owner = malloc((size_t)n_blocks * sizeof(int));
    kv->tables = malloc((size_t)max_seqs * (size_t)max_blocks_per_seq * sizeof(int));
    kv->seq_blocks = calloc((size_t)max_seqs, sizeof(int));
    kv->seq_tokens = calloc((size_t)max_seqs, sizeof(int));
    kv->seq_open = calloc((size_t)max_seqs, 1);
    if (!kv->free_list || !kv->block_owner || !kv->tables || !kv->seq_blocks || !kv->seq_tokens ||
        !kv->seq_open) {
        kv_cache_destroy(kv);
        return gs_error_set(err, GS_ERR_RUNTIME, "out of host memory for the KV-cache tables");
    }
    /* Pushed in reverse so block 0 is handed out first: maps read left to right. */
    for (int i = 0; i < n_blocks; i++) {
        kv->free_list[i] = n_blocks - 1 - i;
        kv->block_owner[i] = -1;
    }
    kv->n_free = n_blocks;
    for (long i = 0; i < (long)max_seqs * max_blocks_per_seq; i++)
        kv->tables[i] = -1;
    return GS_OK;
}

void kv_cache_destroy(gs_kv_cache *kv)
{
    free(kv->free_list);
    free(kv->block_owner);
    free(kv->tables);
    free(kv->seq_blocks);
    free(kv->seq_tokens);
    free(kv->seq_open);
    memset(kv, 0, sizeof *kv);
}

int kv_cache_alloc_block(gs_kv_cache *kv)
{
    if (kv->n_free == 0)
        return -1;
    return kv->free_list[--kv->n_free];
}

void kv_cache_release_block(gs_kv_cache *kv, int block)
{
    kv->block_owner[block] = -1;
    kv->free_list[kv->n_free++] = block;
}

int kv_cache_seq_open(gs_kv_cache *kv)
{
    for (int s = 0; s < kv->max_seqs; s++) {
        if (!kv->seq_open[s]) {
            kv->seq_open[s] = 1;
            kv->seq_blocks[s] = 0;
            kv->seq_tokens[s] = 0;
            return s;
        }
    }
    return -1;
}

int kv_cache_blocks_needed(const gs_kv_cache *kv, int seq_tokens, int n_new)
{
    int have = (seq_tokens + kv->block_size - 1) / kv->block_size;
    int need = (seq_tokens + n_new + kv->block_size - 1) / kv->block_size;
    return need - have;
}

int kv_cache_seq_grow(gs_kv_cache *kv, int seq, int n_new)
{
    int more = kv_cache_blocks_needed(kv, kv->seq_tokens[seq], n_new);
    if (more > kv->n_free || kv->seq_blocks[seq] + more > kv->max_blocks_per_seq)
        return -1;
    int *row = kv->tables + (long)seq * kv->max_blocks_per_seq;
    for (int i = 0; i < more; i++) {
        int b = kv_cache_alloc_block(kv);
        kv->block_owner[b] = seq;
        row[kv->seq_blocks[seq]++] = b;
    }
    kv->seq_tokens[seq] += n_new;
    return 0;
}

int kv_cache_slot(const gs_kv_cache *kv, int seq, int pos)
{
    int block = kv->tables[(long)seq * kv->max_blocks_per_seq + pos / kv->block_size];
    return block * kv->block_size + pos % kv->block_size;
}

void kv_cache_seq_close(gs_kv_cache *kv, int seq)
{
    int *row = kv->tables + (long)seq * kv->max_blocks_per_seq;
    /* Released last-first so a re-admitted sequence gets the same blocks back. */
    for (int i = kv->seq_blocks[seq] - 1; i >= 0; i--) {
        kv_cache_release_block(kv, row[i]);
        row[i] = -1;
    }
    kv->seq_blocks[seq] = 0;
    kv->seq_tokens[seq] = 0;
    kv->seq_open[seq] = 0;
}

void kv_cache_stats(const gs_kv_cache *kv, gs_kv_stats *st)
{
    memset(st, 0, sizeof *st);
    st->blocks_free = kv->n_free;
    st->blocks_used = kv->n_blocks - kv->n_free;
    for (int s = 0; s < kv->max_seqs; s++) {
        if (kv->seq_open[s]) {
            st->seqs_open++;
            st->tokens_stored += kv->seq_tokens[s];
        }
    }
    st->slots_allocated = (long)st->blocks_used * kv->block_size;
    st->fragmentation = st->slots_allocated ? 1.0 - (double)st->tokens_stored / (double)st->slots_allocated : 0.0;
    st->preemptions = kv->preemptions;
}

int kv_cache_check(const gs_kv_cache *kv, gs_error *err)
{
    int owned = 0;
    for (int s = 0; s < kv->max_seqs; s++) {
        const int *row = kv->tables + (long)s * kv->max_blocks_per_seq;
        if (!kv->seq_open[s] && (kv->seq_blocks[s] || kv->seq_tokens[s]))
            return gs_error_set(err, GS_ERR_RUNTIME, "closed sequence %d holds blocks", s);
        int need = (kv->seq_tokens[s] + kv->block_size - 1) / kv->block_size;
        if (need != kv->seq_blocks[s])
            return gs_error_set(err, GS_ERR_RUNTIME, "sequence %d: %d tokens in %d blocks", s,
                                kv->seq_tokens[s], kv->seq_blocks[s]);
        for (int i = 0; i < kv->max_blocks_per_seq; i++) {
            int b = row[i];
            if (i < kv->seq_blocks[s]) {
                if (b < 0 || b >= kv->n_blocks || kv->block_owner[b] != s)
                    return gs_error_set(err, GS_ERR_RUNTIME, "sequence %d: table entry %d = %d not owned",
                                        s, i, b);
                owned++;
            } else if (b != -1) {
                return gs_error_set(err, GS_ERR_RUNTIME, "sequence %d: stale table entry %d", s, i);
            }
        }
    }
    if (owned + kv->n_free != kv->n_blocks)
        return gs_error_set(err, GS_ERR_RUNTIME, "%d owned + %d free != %d blocks", owned, kv->n_free,
                            kv->n_blocks);
    unsigned char *seen = calloc((size_t)kv->n_blocks, 1);
    if (!seen)
        return gs_error_set(err, GS_ERR_RUNTIME, "out of memory checking the KV cache");
    int rc = GS_OK;
    for (int i = 0; i < kv->n_free && rc == GS_OK; i++) {
        int b = kv->free_list[i];
        if (b < 0 || b >= kv->n_blocks || kv->block_owner[b] != -1)
            rc = gs_error_set(err, GS_ERR_RUNTIME, "free list entry %d = %d is owned", i, b);
        else if (seen[b]++)
            rc = gs_error_set(err, GS_ERR_RUNTIME, "block %d is on the free list twice", b);
    }
    free(seen);
    return rc;
}
