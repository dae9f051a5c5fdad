/* toggles.h - the optimization toggles as a list a person steps through.
 *
 * Pure logic over gs_config, shared by the live run (which applies a set)
 * and the UI (which edits a pending copy): the settings in display order,
 * each one's value as text, the next/previous value of each, validation of
 * a whole pending set with one line naming the option, and the one-line
 * summary ("weights=fp32 kv=fp32 ...") that a toggle marker carries in
 * traces. Every value goes through gs_config_set, so the YAML key table
 * stays the one authority on names and ranges; a key this build's table
 * lacks (optimizations.kv_heads before it lands) shows as unavailable. */
#ifndef GS_TOGGLES_H
#define GS_TOGGLES_H

#include "config.h"
#include "status.h"

enum {
    GS_TG_WEIGHTS = 0, GS_TG_GROUP, GS_TG_KV, GS_TG_SPARSITY, GS_TG_ATTENTION, GS_TG_KV_HEADS,
    GS_TG_WINDOW, GS_TG_SINKS, GS_TG_GRAPHS, GS_TG_FUSION, GS_TG_COUNT
};

typedef struct gs_toggle {
    const char *label;   /* "weights": the summary key and the row's name */
    const char *key;     /* YAML path "optimizations.weights" */
    const char *help;    /* what the steps are, for the view */
} gs_toggle;

const gs_toggle *gs_toggle_at(int i);
/* 1 when this build's configuration has the toggle's key. */
int gs_toggle_available(int i);
/* The value as text: "int8", "64", "unstructured:0.5", "on"; "n/a" when unavailable. */
void gs_toggle_value(const gs_config *c, int i, char *buf, int cap);
/* Steps the value one choice forward (dir > 0) or back, wrapping. n_head
 * bounds kv_heads (its divisors). GS_ERR_INPUT naming the option when the
 * toggle is unavailable. Cross-key rules are not checked here: a pending
 * set may pass through invalid states (sinks before window). */
int gs_toggle_step(gs_config *c, int i, int dir, int n_head, gs_error *err);
/* The pending set as a whole: gs_config_validate plus kv_heads dividing
 * n_head. One line naming the option in err. */
int gs_toggle_validate(const gs_config *c, int n_head, gs_error *err);
/* "weights=fp32 group_size=64 kv=fp32 ..." over every available toggle. */
void gs_toggle_summary(const gs_config *c, char *buf, int cap);
/* The toggles whose values differ, "window=64 sinks=4" ("" when none). */
void gs_toggle_diff(const gs_config *from, const gs_config *to, char *buf, int cap);

/* ---- per-variant figures in the event store ----
 * A live run writes one MARKER per variant, named GS_VARIANT_TOGGLE (a
 * switch: this variant runs from the next step), GS_VARIANT_RUNNING (it runs
 * from the next step, no switch: the first variant, or a recording starting)
 * or GS_VARIANT_HISTORY (facts about an earlier variant, when a recording
 * starts), followed by the summary; value = the variant's number (1 = the
 * baseline). Its figures are COUNTER events named by gs_vstat_name with
 * aux = the variant's number. A live store keeps only recent steps, so the
 * run writes the baseline, previous and current variants again a few times
 * a second: a reader joining late (or a recording) still has them all. */
#define GS_VARIANT_TOGGLE "toggle "
#define GS_VARIANT_RUNNING "running "
#define GS_VARIANT_HISTORY "variant "

enum {
    GS_VS_DECODE_MS = 0,   /* median decode step, ms (the time between two tokens of one sequence) */
    GS_VS_DECODE_TPS,      /* median decode tokens/s */
    GS_VS_PREFILL_MS,      /* median prefill step, ms */
    GS_VS_WEIGHT_BYTES,
    GS_VS_KV_BYTES_TOKEN,  /* KV bytes per token (all layers, K and V) */
    GS_VS_PEAK_BYTES,      /* engine allocations: weights + activations + KV */
    GS_VS_KL,              /* quality against the baseline, when measured */
    GS_VS_TOP1,
    GS_VS_PPL,
    GS_VS_FIRST_STEP,      /* the first step the variant ran (store numbering) */
    GS_VS_COUNT
};
const char *gs_vstat_name(int i);  /* "variant.decode_ms" */
int gs_vstat_find(const char *name); /* index, or -1 */

#endif
