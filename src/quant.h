/* quant.h - weight quantization on the host: the formats of
 * kernels/quant_layout.h, written from fp32 masters, and read back.
 *
 * int8: symmetric per output row, scale = max|w| / 127.
 * int4: per group of g inputs, asymmetric: the group's range [lo, hi] is
 * widened to include 0, scale = (hi - lo) / 15 rounded to fp16, zero =
 * round(-lo / scale), so an exact zero (a pruned weight) stays exactly zero.
 * Both round to nearest. The dequantizer is the CPU twin every kernel that
 * reads these formats is tested against. */
#ifndef GS_QUANT_H
#define GS_QUANT_H

#include "dtype.h"

/* Writes src [rows][cols] into dst, gs_weight_bytes(dt, rows, cols) bytes
 * (padding zeroed). dt: F16, BF16, I8 or a Q4 format (F32 copies). */
void gs_quantize_matrix(gs_dtype dt, const float *src, long rows, long cols, void *dst);
/* Row r of a matrix stored in dt, back to fp32 in out[cols]. */
void gs_dequantize_row(gs_dtype dt, const void *blk, long rows, long cols, long r, float *out);
/* Elements [c0, c0 + len) of row r: what a kernel's tile dequantizes. */
void gs_dequantize_span(gs_dtype dt, const void *blk, long rows, long cols, long r, long c0, long len, float *out);

#endif
