/* test_gemvq_tricks.c - host emulation of the bit tricks of the CUDA decode
 * GEMV for quantized weights (kernels/cuda/gemv_quant.cu), so they are checked
 * on machines without a GPU:
 *
 *  - __byte_perm as PTX's prmt defines it (byte i of the result is byte
 *    s[4i..4i+2] of {y:x}), and the folded int4 unpack: PRMT(split word,
 *    0x3F000000, 0x7054 | t << 8) is the float 0.5 + q / 256 exactly, for every
 *    word value's nibbles;
 *  - the staged-input swizzle xs_chunk(q) = q ^ ((q >> 3) & 7): a permutation
 *    of each aligned group of 8 chunks (so it stays inside a row padded to 32
 *    floats), and conflict-free for the LDS.128 of any quarter warp (8
 *    consecutive lanes) in the int4 (32 inputs a lane) and int8 (16) patterns;
 *  - the precision of the folded sum, 256 sum F x - (128 + zero) sum x per
 *    32-weight vector, then times the scale, in fp32 with fused multiply-adds
 *    as the kernel does it, against a double product over the dequantized
 *    weights: the GPU test's bound is 1e-4 of the norm, this asks for 2e-5
 *    (zero-mean and all-positive inputs, groups of 32 / 64 / 128, k = 768,
 *    1600, 6400). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

static uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
    uint8_t b[8];
    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)(x >> (8 * i));
        b[4 + i] = (uint8_t)(y >> (8 * i));
    }
    uint32_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (uint32_t)b[(s >> (4 * i)) & 7] << (8 * i);
    return r;
}

static float as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The kernel's unpack_word_q4f. */
static void unpack_q4f(uint32_t word, float *f)
{
    const uint32_t lo = word & 0x0F0F0F0Fu, hi = (word >> 4) & 0x0F0F0F0Fu;
    for (unsigned t = 0; t < 4; t++) {
        f[2 * t] = as_float(byte_perm(lo, 0x3F000000u, 0x7054u | (t << 8)));
        f[2 * t + 1] = as_float(byte_perm(hi, 0x3F000000u, 0x7054u | (t << 8)));
    }
}

static int xs_chunk(int q) { return q ^ ((q >> 3) & 7); }

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static void test_unpack(void)
{
    /* every byte value in every byte position: covers every nibble pair */
    int bad = 0;
    for (uint32_t b = 0; b < 256; b++)
        for (int pos = 0; pos < 4; pos++) {
            const uint32_t word = (b << (8 * pos)) | (0x5Au << (8 * ((pos + 1) % 4)));
            float f[8];
            unpack_q4f(word, f);
            for (int i = 0; i < 8; i++) {
                const unsigned q = (word >> (4 * i)) & 0xfu;
                bad += f[i] != 0.5f + (float)q / 256.0f;
            }
        }
    tap_ok(bad == 0, "folded int4 unpack is 0.5 + q / 256 exactly (%d mismatches)", bad);
}

static void test_swizzle(void)
{
    int perm_ok = 1;
    for (int g = 0; g < 64; g++) {
        int seen = 0;
        for (int i = 0; i < 8; i++) {
            const int p = xs_chunk(8 * g + i);
            if (p / 8 != g)
                perm_ok = 0;
            seen |= 1 << (p % 8);
        }
        perm_ok &= seen == 0xff;
    }
    tap_ok(perm_ok, "xs_chunk permutes each aligned group of 8 chunks");
    /* The lanes of a quarter warp hold 8 consecutive vector indices v (a
     * warp's v start is a multiple of 32); a lane reads chunk
     * v * (E / 4) + c for its word part c. Conflict-free: the 8 chunk
     * positions mod 8 (16 bytes each of a 128-byte bank row) all differ. */
    int conflicts = 0;
    for (int e = 16; e <= 32; e += 16) {
        const int cpv = e / 4; /* 16-byte chunks per vector */
        for (int v0 = 0; v0 < 256; v0 += 8)
            for (int c = 0; c < cpv; c++) {
                int seen = 0;
                for (int l = 0; l < 8; l++)
                    seen |= 1 << (xs_chunk((v0 + l) * cpv + c) % 8);
                conflicts += seen != 0xff;
            }
    }
    tap_ok(conflicts == 0, "staged inputs: quarter-warp LDS.128 conflict-free for int4 and int8 (%d conflicts)",
           conflicts);
}

/* One row: the folded fp32 sum (as the kernel) and the double reference. */
static void row_sums(int k, int group, double dc, double *err2, double *ref2)
{
    static float x[6400], s[200];
    static uint8_t q[6400];
    static int z[200];
    for (int c = 0; c < k; c++) {
        x[c] = (float)(dc + (2.0 * urand() - 1.0));
        q[c] = (uint8_t)(urand() * 16);
    }
    for (int i = 0; i < k / group; i++) {
        s[i] = (float)(1e-3 + urand() * 0.1);
        z[i] = (int)(urand() * 16);
    }
    double ref = 0;
    float acc = 0.0f;
    for (int v = 0; v < k / 32; v++) {
        const int gi = v * 32 / group;
        float part = 0.0f, xsum = 0.0f;
        for (int wi = 0; wi < 4; wi++) {
            uint32_t w = 0;
            for (int t = 0; t < 8; t++)
                w |= (uint32_t)q[v * 32 + wi * 8 + t] << (4 * t);
            float f[8];
            unpack_q4f(w, f);
            for (int t = 0; t < 8; t++) {
                const int c = v * 32 + wi * 8 + t;
                xsum += x[c];
                part = fmaf(f[t], x[c], part);
                ref += (double)((float)(q[c] - z[gi]) * s[gi]) * x[c];
            }
        }
        const float cz = -(128.0f + (float)z[gi]);
        acc = fmaf(s[gi], fmaf(256.0f, part, cz * xsum), acc);
    }
    *err2 += ((double)acc - ref) * ((double)acc - ref);
    *ref2 += ref * ref;
}

static void test_precision(void)
{
    static const int ks[] = {768, 1600, 6400}, groups[] = {32, 64, 128};
    static const double dcs[] = {0.0, 0.5};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int d = 0; d < 2; d++) {
                double err2 = 0, ref2 = 0;
                for (int r = 0; r < 300; r++)
                    row_sums(ks[a], groups[b], dcs[d], &err2, &ref2);
                const double rel = sqrt(err2 / ref2);
                tap_ok(rel < 2e-5, "folded int4 sum k=%d g%d inputs %s: rel err %.2e", ks[a], groups[b],
                       dcs[d] > 0 ? "mean 0.5" : "mean 0", rel);
            }
}

int main(void)
{
    test_unpack();
    test_swizzle();
    test_precision();
    return tap_done();
}
