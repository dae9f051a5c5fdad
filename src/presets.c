/* presets.c - the table of built-in model shapes.
 * GPT-2 sizes follow OpenAI's released models; llama-1b follows TinyLlama-1.1B
 * (22 layers, GQA with 4 KV heads); the tiny presets keep tests fast. */
#include "presets.h"

#include <string.h>

#define GPT2(L, H, C, T, V) \
    { GS_ARCH_GPT2, (L), (H), (H), (C), 4 * (C), (T), (V), 1, 1e-5f, 10000.0f, 0 }
#define LLAMA(L, H, KV, C, F, T, V, TIED) \
    { GS_ARCH_LLAMA, (L), (H), (KV), (C), (F), (T), (V), (TIED), 1e-5f, 10000.0f, 0 }

static const gs_preset presets[] = {
    {"gpt2-124m", "GPT-2 small: 12 layers, 12 heads, 768 wide", GPT2(12, 12, 768, 1024, 50257)},
    {"gpt2-355m", "GPT-2 medium: 24 layers, 16 heads, 1024 wide", GPT2(24, 16, 1024, 1024, 50257)},
    {"gpt2-774m", "GPT-2 large: 36 layers, 20 heads, 1280 wide", GPT2(36, 20, 1280, 1024, 50257)},
    {"gpt2-1558m", "GPT-2 XL: 48 layers, 25 heads, 1600 wide", GPT2(48, 25, 1600, 1024, 50257)},
    {"llama-1b", "Llama style 1.1B (TinyLlama shape): 22 layers, 32 heads, 4 KV heads, 2048 wide",
     LLAMA(22, 32, 4, 2048, 5632, 2048, 32000, 0)},
    {"llama-110m", "Llama style 110M (stories110M shape): 12 layers, 12 heads, 768 wide",
     LLAMA(12, 12, 12, 768, 2048, 1024, 32000, 1)},
    {"gpt2-tiny", "tiny GPT-2 for tests: 2 layers, 4 heads, 64 wide", GPT2(2, 4, 64, 128, 256)},
    {"llama-tiny", "tiny Llama for tests: 2 layers, 8 heads, 4 KV heads, 64 wide",
     LLAMA(2, 8, 4, 64, 172, 128, 256, 0)},
};

size_t gs_preset_count(void) { return sizeof presets / sizeof presets[0]; }

const gs_preset *gs_preset_at(size_t i)
{
    return i < gs_preset_count() ? &presets[i] : NULL;
}

const gs_preset *gs_preset_find(const char *name)
{
    for (size_t i = 0; i < gs_preset_count(); i++)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

const char *gs_preset_names(void)
{
    static char buf[512];
    if (!buf[0]) {
        size_t off = 0;
        for (size_t i = 0; i < gs_preset_count() && off < sizeof buf; i++) {
            size_t len = strlen(presets[i].name);
            if (off + len + 3 >= sizeof buf)
                break;
            if (i) {
                memcpy(buf + off, ", ", 2);
                off += 2;
            }
            memcpy(buf + off, presets[i].name, len);
            off += len;
            buf[off] = '\0';
        }
    }
    return buf;
}
