/* dtype.h - the element types weights can be stored in, and conversions. */
#ifndef GS_DTYPE_H
#define GS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* F32/F16/BF16 are plain element types. I8 and Q4_G* are weight-matrix
 * formats: a matrix of them is a packed block (kernels/quant_layout.h) with
 * its scales, read by kernels that dequantize in registers. */
typedef enum {
    GS_DTYPE_F32 = 0,
    GS_DTYPE_F16 = 1,
    GS_DTYPE_BF16 = 2,
    GS_DTYPE_I8 = 3,       /* int8, symmetric, one fp32 scale per output row */
    GS_DTYPE_Q4_G32 = 4,   /* int4, groups of 32 along a row, fp16 scale and zero point per group */
    GS_DTYPE_Q4_G64 = 5,
    GS_DTYPE_Q4_G128 = 6
} gs_dtype;

/* Bytes of one element for F32/F16/BF16; 1 for I8; 0 for Q4 (use gs_weight_bytes). */
size_t gs_dtype_size(gs_dtype dt);
/* "fp32", "fp16", "bf16", "int8", "int4-g32", "int4-g64", "int4-g128". */
const char *gs_dtype_name(gs_dtype dt);
static inline int gs_dtype_is_quant(gs_dtype dt) { return dt >= GS_DTYPE_I8 && dt <= GS_DTYPE_Q4_G128; }
static inline int gs_dtype_is_q4(gs_dtype dt) { return dt >= GS_DTYPE_Q4_G32 && dt <= GS_DTYPE_Q4_G128; }
/* Group size of a Q4 format (32, 64, 128), 0 otherwise. */
static inline int gs_dtype_group(gs_dtype dt) { return gs_dtype_is_q4(dt) ? 32 << (dt - GS_DTYPE_Q4_G32) : 0; }
/* The Q4 format of a group size, or -1 when there is none. */
int gs_dtype_q4(int group);
/* Bytes a rows x cols weight matrix takes in dt (packed data and scales). */
size_t gs_weight_bytes(gs_dtype dt, long rows, long cols);

float gs_f16_to_f32(uint16_t h);
float gs_bf16_to_f32(uint16_t h);
uint16_t gs_f32_to_f16(float f);  /* round to nearest even */
uint16_t gs_f32_to_bf16(float f); /* round to nearest even */

/* KV-cache element types (GS_KV_*, kernels/kv_format.h). */
const char *gs_kv_dtype_name(int kv_dtype); /* "fp32", "fp16", "int8", "fp8" */
/* fp8 e4m3 (OCP): round to nearest even, saturating at +-448 (infinities
 * too), subnormals kept, NaN -> 0x7f; decoding is exact (0x7f/0xff: NaN). */
uint8_t gs_f32_to_e4m3(float f);
float gs_e4m3_to_f32(uint8_t b);

#endif
