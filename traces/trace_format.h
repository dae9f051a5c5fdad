/* trace_format.h - the .gst trace file layout (little-endian throughout).
 *
 *   header   0  8  magic "GSTRACE\x1a"
 *            8  2  format major      (a reader refuses a larger major)
 *           10  2  format minor      (a larger minor only adds optional things)
 *           12  4  body length B     (<= GS_TRACE_MAX_HEADER)
 *           16  B  body: program version, host, device, configuration YAML
 *                  (each a varint length + bytes), clock origin (8 bytes, ns)
 *         16+B  4  CRC-32 (zlib) of bytes 0 .. 16+B
 *   chunks, each self-delimiting:
 *            0  4  sync "GSCK" (lets a reader find the next chunk after damage)
 *            4  1  type (GS_CHUNK_*)
 *            5  3  zero
 *            8  4  compressed payload length C (<= GS_TRACE_MAX_CHUNK)
 *           12  4  uncompressed length U (<= GS_TRACE_MAX_CHUNK)
 *           16  4  CRC-32 of bytes 4..16 and of the C payload bytes
 *           20  C  zlib stream
 *
 * Payloads (after inflate):
 *   STRINGS: varint first_id, varint n, then n x (varint len, bytes). Ids are
 *            consecutive from first_id; the writer numbers them 0, 1, 2 ...
 *   EVENTS:  varint n, then n events. Timestamps are deltas (zigzag) from the
 *            previous event's t_ns in the same chunk (the first from 0), steps
 *            likewise, so every chunk decodes on its own:
 *            u8 kind, u8 level, varint name, zigzag layer, varint track,
 *            zigzag step delta, zigzag t delta, varint dur_ns,
 *            zigzag aux delta (from the previous event of the same kind),
 *            device records, syncs and metrics: zigzag range_id delta (from
 *            the previous such event), then by kind:
 *              counters, markers, metrics: 8 bytes IEEE double value;
 *              copies and sets: varint bytes;
 *              kernels: varint grid x y z, block x y z, registers, shared bytes;
 *              KV blocks: varint first block, n blocks, zigzag seq, total.
 *            Major 2 (this layout) replaced major 1's plain aux.
 *   END:     varint total events, varint total strings (a clean finish). */
#ifndef GS_TRACE_FORMAT_H
#define GS_TRACE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define GS_TRACE_MAGIC "GSTRACE\x1a"
#define GS_TRACE_MAGIC_LEN 8
#define GS_TRACE_MAJOR 2
#define GS_TRACE_MINOR 0
#define GS_TRACE_HEADER_FIXED 16
#define GS_TRACE_MAX_HEADER (4u << 20)
#define GS_CHUNK_SYNC "GSCK"
#define GS_CHUNK_HEADER 20
#define GS_TRACE_MAX_CHUNK (16u << 20)

enum { GS_CHUNK_STRINGS = 1, GS_CHUNK_EVENTS = 2, GS_CHUNK_END = 3 };

/* ---- little helpers shared by writer and reader ---- */
static inline void gs_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void gs_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void gs_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t gs_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t gs_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gs_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t gs_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t gs_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

#endif
