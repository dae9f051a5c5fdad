/* test_gemv_mma_layout.c - host emulation of the operand layout of the
 * tensor-core decode GEMV (kernels/cuda/gemv_mma.cu), so its index math is
 * checked on machines without a GPU:
 *
 *  - mma.m16n8k16 as the PTX ISA defines its f16 / bf16 fragments ("Matrix
 *    Fragments for mma.m16n8k16 with floating point type"; g = lane >> 2,
 *    t = lane & 3, element i of a register pair in its low (even i) or high
 *    half): A[g + 8 ((i >> 1) & 1)][2t + (i & 1) + 8 (i >> 2)] for a0..a7,
 *    B[2t + (i & 1) + 8 (i >> 1)][g] for b0..b3, D[g + 8 (i >> 1)][2t + (i & 1)]
 *    for c0..c3; the emulation checks that these place every element of A and
 *    B exactly once;
 *  - the kernel's operands: lane (g, t) loads the 8 halves at columns
 *    8t .. 8t + 7 of a 32-column group from rows g and g + 8 of w (two uint4,
 *    lo and hi) and from token g of the staged rows (xs), and issues
 *    mma(a = {lo.x, hi.x, lo.y, hi.y}, b = {xs.x, xs.y}) then
 *    mma(a = {lo.z, hi.z, lo.w, hi.w}, b = {xs.z, xs.w}); the two must add up
 *    to the plain 32-term dot product of every (row, token) pair, on integer
 *    data so the check is exact;
 *  - where the results land: the S == 1 store (register i of n-tile nt is
 *    row g + 8 (i >> 1), token 8 nt + 2t + (i & 1)) and the S > 1 reduction's
 *    inverse (row r, token j read from lane (r & 7) * 4 + (j & 7) / 2,
 *    register (j / 8) * 4 + (r >> 3) * 2 + (j & 1)) agree with the emulation;
 *  - the staged rows' width KP = round_up(kc, 64) + 32 halves: the LDS.128 of
 *    every quarter warp (8 lanes: 64 bytes of token g, 64 of token g + 1)
 *    touches 32 different banks, KP holds the chunk rounded up to 32, and the
 *    widest chunk keeps 8 * NT rows of halves, 8 * NT fp32 rows and the norm's
 *    two weight rows within the 104 KB staging cap (the kernel's formulas,
 *    restated). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

/* ---- mma.m16n8k16 per the PTX ISA's fragment tables ---- */

static int a_row(int lane, int i) { return (lane >> 2) + 8 * ((i >> 1) & 1); }
static int a_col(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 2); }
static int b_row(int lane, int i) { return 2 * (lane & 3) + (i & 1) + 8 * (i >> 1); }
static int b_col(int lane) { return lane >> 2; }
static int c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
static int c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

static uint32_t half_of(uint32_t word, int i) { return (word >> (16 * (i & 1))) & 0xffffu; }

/* d += A . B with the halves read as unsigned integers. Returns 0 when some
 * element of A or B is given by no lane or by two. */
static int mma_emul(long d[32][4], const uint32_t a[32][4], const uint32_t b[32][2])
{
    long A[16][16], B[16][8];
    int seen_a[16][16] = {{0}}, seen_b[16][8] = {{0}};
    for (int lane = 0; lane < 32; lane++) {
        for (int i = 0; i < 8; i++) {
            const int r = a_row(lane, i), c = a_col(lane, i);
            A[r][c] = half_of(a[lane][i / 2], i);
            seen_a[r][c]++;
        }
        for (int i = 0; i < 4; i++) {
            const int r = b_row(lane, i), c = b_col(lane);
            B[r][c] = half_of(b[lane][i / 2], i);
            seen_b[r][c]++;
        }
    }
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            if (seen_a[r][c] != 1 || (c < 8 && seen_b[r][c] != 1))
                return 0;
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++) {
            long s = 0;
            for (int kk = 0; kk < 16; kk++)
                s += A[c_row(lane, i)][kk] * B[kk][c_col(lane, i)];
            d[lane][i] += s;
        }
    return 1;
}

/* ---- the kernel's operands for one 32-column group ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t next16(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 59); /* 0 .. 31: sums stay small and exact */
}

/* Word q of the uint4 that a 16-byte load of halves p[0..7] gives: halves 2q
 * (low) and 2q + 1 (high), as memory is little-endian. */
static uint32_t word_of(const uint16_t *p, int q) { return (uint32_t)p[2 * q] | (uint32_t)p[2 * q + 1] << 16; }

static void test_group_product(void)
{
    uint16_t W[16][32], X[16][32]; /* 16 rows of w, 16 tokens (two n-tiles), one group */
    int ok_cover = 1, ok_sum = 1, ok_store = 1, ok_reduce = 1;
    for (int trial = 0; trial < 64; trial++) {
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 32; c++)
                W[r][c] = (uint16_t)next16(), X[r][c] = (uint16_t)next16();
        long acc[2][32][4];
        memset(acc, 0, sizeof acc);
        for (int nt = 0; nt < 2; nt++) {
            for (int j = 0; j < 2; j++) {
                uint32_t a[32][4], b[32][2];
                for (int lane = 0; lane < 32; lane++) {
                    const int g = lane >> 2, t = lane & 3;
                    const uint16_t *lo = &W[g][8 * t], *hi = &W[g + 8][8 * t], *xs = &X[8 * nt + g][8 * t];
                    a[lane][0] = word_of(lo, 2 * j);
                    a[lane][1] = word_of(hi, 2 * j);
                    a[lane][2] = word_of(lo, 2 * j + 1);
                    a[lane][3] = word_of(hi, 2 * j + 1);
                    b[lane][0] = word_of(xs, 2 * j);
                    b[lane][1] = word_of(xs, 2 * j + 1);
                }
                ok_cover &= mma_emul(acc[nt], a, b);
            }
        }
        /* every (row, token) is the full 32-term dot product, found where the kernel's stores look */
        long D[16][16];
        for (int nt = 0; nt < 2; nt++)
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < 4; i++) {
                    const int g = lane >> 2, t = lane & 3;
                    const int row = g + 8 * (i >> 1), tok = 8 * nt + 2 * t + (i & 1); /* the S == 1 store */
                    if (row != c_row(lane, i) || tok != 8 * nt + c_col(lane, i))
                        ok_store = 0;
                    D[row][tok] = acc[nt][lane][i];
                }
        for (int r = 0; r < 16; r++)
            for (int tok = 0; tok < 16; tok++) {
                long s = 0;
                for (int c = 0; c < 32; c++)
                    s += (long)W[r][c] * X[tok][c];
                ok_sum &= D[r][tok] == s;
                /* the S > 1 reduction's read of (r, tok) */
                const int src_lane = (r & 7) * 4 + (tok & 7) / 2, reg = (tok / 8) * 4 + (r >> 3) * 2 + (tok & 1);
                ok_reduce &= acc[reg / 4][src_lane][reg % 4] == s;
            }
    }
    tap_ok(ok_cover, "the PTX fragment tables give every element of A (16 x 16) and B (16 x 8) to exactly one lane");
    tap_ok(ok_sum, "two mmas on {lo.x, hi.x, lo.y, hi.y} / {lo.z, hi.z, lo.w, hi.w} give each 32-column dot product");
    tap_ok(ok_store, "the S == 1 store's (row, token) of each accumulator register matches the C fragment table");
    tap_ok(ok_reduce, "the S > 1 reduction reads each (row, token) from the lane and register that hold it");
}

/* ---- the staged rows ---- */

#define STAGE_CAP (104 * 1024)
static int stage_kp(int kc) { return ((kc + 63) & ~63) + 32; }
static long stage_bytes(int nt, int kc) { return 8L * nt * stage_kp(kc) * 2 + (8L * nt * 4 + 8) * kc; }
static int max_chunk(int nt)
{
    int kc = STAGE_CAP / (8 * nt * 2 + 8 * nt * 4 + 8) / 64 * 64;
    while (stage_bytes(nt, kc) > STAGE_CAP)
        kc -= 64;
    return kc;
}

static void test_staging(void)
{
    int conflict_free = 1, fits = 1;
    for (int kc = 32; kc <= 1856; kc += 32) {
        const int kp = stage_kp(kc);
        fits &= kp >= ((kc + 31) & ~31) && kp % 64 == 32;
        for (int nt = 0; nt < 2 && conflict_free; nt++)
            for (int grp = 0; grp < (kc + 31) / 32; grp++)
                for (int qw = 0; qw < 4; qw++) { /* quarter warps: lanes 8 qw .. 8 qw + 7 */
                    int banks[32] = {0};
                    for (int lane = 8 * qw; lane < 8 * qw + 8; lane++) {
                        const int g = lane >> 2, t = lane & 3;
                        const long byte = 2L * ((long)(8 * nt + g) * kp + 32 * grp + 8 * t);
                        for (int w = 0; w < 4; w++)
                            banks[(byte / 4 + w) % 32]++;
                    }
                    for (int b = 0; b < 32; b++)
                        conflict_free &= banks[b] == 1;
                }
    }
    tap_ok(conflict_free, "LDS.128 of every quarter warp hits 32 different banks for every chunk width");
    tap_ok(fits, "KP holds the chunk rounded up to 32 and is 32 (mod 64) halves");
    const int c1 = max_chunk(1), c2 = max_chunk(2);
    tap_ok(stage_bytes(1, c1) <= STAGE_CAP && stage_bytes(2, c2) <= STAGE_CAP && stage_bytes(1, c1 + 64) > STAGE_CAP &&
               stage_bytes(2, c2 + 64) > STAGE_CAP && c1 >= 1600 && c2 >= 768 && c1 % 64 == 0 && c2 % 64 == 0,
           "the widest chunks (%d at n <= 8, %d at n > 8) are the widest that fit the staging cap; k = 768 takes one "
           "chunk at any n, 1600 at n <= 8",
           c1, c2);
}

int main(void)
{
    test_group_product();
    test_staging();
    return tap_done();
}
