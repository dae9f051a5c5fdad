/* kv_cache.h - the paged KV cache's bookkeeping (PagedAttention style).
 *
 * The cache is n_blocks fixed-size blocks of block_size token slots. Each
 * sequence owns a block table (logical block -> physical block); free blocks
 * sit on a free list. The K and V tensors themselves live in backend memory
 * (forward.c); this module only decides which slot a token goes to, so the
 * profiler and the KV-cache view can read its state without touching the
 * device. */
#ifndef GS_KV_CACHE_H
#define GS_KV_CACHE_H

#include "status.h"

typedef struct gs_kv_cache {
    int block_size;          /* tokens per block */
    int n_blocks;            /* physical blocks */
    int max_seqs;            /* sequence slots (rows of the block table) */
    int max_blocks_per_seq;  /* block-table row length: ceil(n_ctx / block_size) */
    int *free_list;          /* [n_blocks] stack of free block ids */
    int n_free;
    int *tables;             /* [max_seqs][max_blocks_per_seq], -1 where unused */
    int *seq_blocks;         /* [max_seqs] blocks held */
    int *seq_tokens;         /* [max_seqs] token slots in use */
    unsigned char *seq_open; /* [max_seqs] */
    int *block_owner;        /* [n_blocks] owning sequence or -1 when free */
    long preemptions;        /* counted by the engine, shown by the views */
} gs_kv_cache;

typedef struct gs_kv_stats {
    int blocks_used, blocks_free, seqs_open;
    long tokens_stored;      /* slots holding a token */
    long slots_allocated;    /* blocks_used * block_size */
    double fragmentation;    /* 1 - tokens_stored / slots_allocated (internal, last-block waste) */
    long preemptions;
} gs_kv_stats;

int kv_cache_init(gs_kv_cache *kv, int n_blocks, int block_size, int max_seqs,
                  int max_blocks_per_seq, gs_error *err);
void kv_cache_destroy(gs_kv_cache *kv);

/* Pops a free block; -1 when none is left. */
int kv_cache_alloc_block(gs_kv_cache *kv);
void kv_cache_release_block(gs_kv_cache *kv, int block);

/* Opens an empty sequence slot; -1 when every slot is taken. */
int kv_cache_seq_open(gs_kv_cache *kv);
/* Makes room for n_new more tokens: all or nothing. Returns 0, or -1 when the
 * free blocks (or the block-table row) do not suffice; nothing changes then. */
int kv_cache_seq_grow(gs_kv_cache *kv, int seq, int n_new);
/* Blocks kv_cache_seq_grow(seq, n_new) would take from the free list. */
int kv_cache_blocks_needed(const gs_kv_cache *kv, int seq_tokens, int n_new);
/* Physical slot (block * block_size + offset) of position pos of seq. */
int kv_cache_slot(const gs_kv_cache *kv, int seq, int pos);
/* Returns every block of seq to the free list and closes the slot. */
void kv_cache_seq_close(gs_kv_cache *kv, int seq);

void kv_cache_stats(const gs_kv_cache *kv, gs_kv_stats *st);
/* Checks every invariant (each block free xor owned by one open sequence,
 * counts agree, tables hold exactly the owned blocks). 0 when sound, else a
 * message in err. For tests and debug builds. */
int kv_cache_check(const gs_kv_cache *kv, gs_error *err);

#endif
