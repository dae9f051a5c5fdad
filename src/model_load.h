/* model_load.h - reading and writing checkpoints into the fp32 master.
 *
 * Formats: llama2.c checkpoints (7 int32 header, fp32 arrays), llm.c GPT-2
 * checkpoints (256 int32 header, magic 20240326, fp32 version 3 or bf16
 * version 5), and safetensors with Hugging Face GPT-2 or Llama tensor names
 * (F32, F16 or BF16). Files are untrusted: every size is checked against the
 * file length before anything is read, and a bad file yields GS_ERR_INPUT with
 * one line "PATH: offset N: what" (or "PATH: what" when no offset applies). */
#ifndef GS_MODEL_LOAD_H
#define GS_MODEL_LOAD_H

#include "model.h"

typedef enum {
    GS_FORMAT_AUTO = 0,
    GS_FORMAT_LLAMA2C,
    GS_FORMAT_LLMC,
    GS_FORMAT_SAFETENSORS
} gs_model_format;

/* "auto", "llama2c", "llmc", "safetensors"; returns -1 for an unknown name. */
int gs_model_format_parse(const char *name);
const char *gs_model_format_name(gs_model_format f);

/* Hints a format cannot carry (safetensors has no head count: the loader reads
 * "<stem>.config.json" or "config.json" beside the file if present, then
 * these; fields <= 0 are unset). llama2c and llmc headers carry the whole
 * shape and ignore them. */
typedef struct gs_load_hints {
    int n_head;
    int n_kv_head;
    int n_ctx;
} gs_load_hints;

/* Loads path into m (allocated by the loader). fmt GS_FORMAT_AUTO detects the
 * format from the file's first bytes. hints may be NULL. */
int gs_model_load(gs_model *m, const char *path, gs_model_format fmt, const gs_load_hints *hints,
                  gs_error *err);
/* Detects the format of an open file's first bytes; GS_ERR_INPUT if unknown. */
int gs_model_detect_format(const char *path, gs_model_format *out, gs_error *err);

/* Writes m in fmt (not AUTO). llama2c needs a Llama-style model, llmc a
 * GPT-2 one; safetensors takes both (HF names; GPT-2 Conv1D weights written
 * [in][out] as HF does, Llama q/k rows permuted to HF's rotate_half layout).
 * A safetensors file gets "<stem>.config.json" beside it (head counts, eps,
 * rope theta), which gs_model_load reads back, so no hints are needed.
 * Used by tests (round trips) and to share synthetic models. */
int gs_model_save(const gs_model *m, const char *path, gs_model_format fmt, gs_error *err);

#endif
