/* gather.c - row gather for the CPU backend; memcpy is the whole story. */
#include "gather.h"

#include <string.h>

void cpu_gather_rows(float *out, const float *in, const int *rows, int n, int C)
{
    for (int i = 0; i < n; i++)
        memmove(out + (size_t)i * C, in + (size_t)rows[i] * C, (size_t)C * sizeof(float));
}
