/* gather.h - copy chosen rows: out[i] = in[rows[i]] (the rows needing logits). */
#ifndef GS_CPU_GATHER_H
#define GS_CPU_GATHER_H

void cpu_gather_rows(float *out, const float *in, const int *rows, int n, int C);

#endif
