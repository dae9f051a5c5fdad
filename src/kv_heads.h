/* kv_heads.h - MHA to GQA to MQA: fewer key/value heads by mean pooling.
 *
 * A model trained with n_kv_head key/value heads is converted to N of them
 * (N divides the model's n_kv_head, hence n_head): new KV head j is the mean
 * of the K projections (rows and biases) of old KV heads j*f .. j*f+f-1,
 * f = n_kv_head / N, and the same for V. Query head h read old KV head
 * h / (n_head / n_kv_head); it now reads the mean of that head and its f-1
 * neighbours. No training follows, so the quality cost shows; the KV cache
 * and the attention's K/V reads shrink by f. */
#ifndef GS_KV_HEADS_H
#define GS_KV_HEADS_H

#include "model.h"
#include "status.h"

/* out = in with n_kv_head key/value heads (in is not changed). n_kv_head ==
 * in's own is a plain copy. GS_ERR_INPUT naming optimizations.kv_heads when
 * n_kv_head is < 1, above the model's, or does not divide it. */
int gs_convert_kv_heads(gs_model *out, const gs_model *in, int n_kv_head, gs_error *err);

#endif
