/* dtype.h - the element types weights can be stored in, and conversions. */
#ifndef GS_DTYPE_H
#define GS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GS_DTYPE_F32 = 0, GS_DTYPE_F16 = 1, GS_DTYPE_BF16 = 2 } gs_dtype;

size_t gs_dtype_size(gs_dtype dt);
const char *gs_dtype_name(gs_dtype dt);

float gs_f16_to_f32(uint16_t h);
float gs_bf16_to_f32(uint16_t h);
uint16_t gs_f32_to_f16(float f);  /* round to nearest even */
uint16_t gs_f32_to_bf16(float f); /* round to nearest even */

#endif
