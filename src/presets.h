/* presets.h - named model shapes (`--model gpt2-124m`). */
#ifndef GS_PRESETS_H
#define GS_PRESETS_H

#include <stddef.h>

#include "model.h"

typedef struct gs_preset {
    const char *name;
    const char *description;
    gs_model_shape shape;
} gs_preset;

const gs_preset *gs_preset_find(const char *name); /* NULL if unknown */
size_t gs_preset_count(void);
const gs_preset *gs_preset_at(size_t i);
/* "gpt2-124m, gpt2-355m, ..." for error messages. */
const char *gs_preset_names(void);

#endif
