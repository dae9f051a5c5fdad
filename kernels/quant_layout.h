/* quant_layout.h - how a quantized weight matrix is laid out in memory.
 * Shared by the host quantizer (src/quant.c), the CPU kernels and the CUDA
 * kernels (plain C, no host-only calls), so all three agree byte for byte.
 *
 * A matrix is W[rows][cols] (rows = outputs m, cols = inputs k), one block:
 *
 * int8 (GS_DTYPE_I8), symmetric per output row:
 *   q     int8  [rows][cols]                at 0
 *   scale float [rows]                      at gs_q8_scale_offset(rows, cols)
 *   W[r][c] = q[r][c] * scale[r];  q in [-127, 127]
 *
 * int4 (GS_DTYPE_Q4_G*), asymmetric per group of g inputs along a row:
 *   q     nibbles, (cols + 1) / 2 bytes per row; byte c/2 of a row holds
 *         input c in its low nibble when c is even, in its high nibble when odd
 *   sz    fp16 pairs {scale, zero} [rows][groups]   at gs_q4_sz_offset(...)
 *         groups = ceil(cols / g); the last group of a row may be shorter
 *   W[r][c] = (q - zero) * scale of group c / g;  q, zero in [0, 15]
 *         (zero is an integer, held exactly in fp16)
 *
 * Sections start 256-byte aligned from the block's start so kernels can
 * read scales with vector loads. */
#ifndef GS_QUANT_LAYOUT_H
#define GS_QUANT_LAYOUT_H

#include <stddef.h>

#define GS_QUANT_ALIGN 256

static inline size_t gs_quant_align(size_t x) { return (x + GS_QUANT_ALIGN - 1) & ~(size_t)(GS_QUANT_ALIGN - 1); }

static inline size_t gs_q8_scale_offset(long rows, long cols) { return gs_quant_align((size_t)rows * (size_t)cols); }
static inline size_t gs_q8_bytes(long rows, long cols)
{
    return gs_quant_align(gs_q8_scale_offset(rows, cols) + (size_t)rows * 4);
}

static inline size_t gs_q4_row_bytes(long cols) { return (size_t)(cols + 1) / 2; }
static inline long gs_q4_groups(long cols, int group) { return (cols + group - 1) / group; }
static inline size_t gs_q4_sz_offset(long rows, long cols) { return gs_quant_align((size_t)rows * gs_q4_row_bytes(cols)); }
static inline size_t gs_q4_bytes(long rows, long cols, int group)
{
    return gs_quant_align(gs_q4_sz_offset(rows, cols) + (size_t)rows * (size_t)gs_q4_groups(cols, group) * 4);
}

#endif
