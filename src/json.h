/* json.h - a small, strict JSON reader for checkpoint headers and config.json.
 *
 * The whole text is parsed into a tree of values held in one array (RFC 8259:
 * objects, arrays, strings with every escape, numbers, true, false, null).
 * It is strict because its input is untrusted: invalid UTF-8, control
 * characters in strings, lone surrogates, leading zeros, trailing commas and
 * anything after the top-level value are errors, nesting is limited, and
 * nothing is read past the length given. On error it reports the byte offset
 * of the first offending character, so the caller can print "PATH: offset N".
 * Duplicate object keys are kept (gs_json_get returns the first); callers
 * that care, such as the safetensors reader, check for them. */
#ifndef GS_JSON_H
#define GS_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GS_JSON_NULL = 0,
    GS_JSON_BOOL,
    GS_JSON_NUMBER,
    GS_JSON_STRING,
    GS_JSON_ARRAY,
    GS_JSON_OBJECT
} gs_json_type;

typedef struct gs_json_value {
    gs_json_type type;
    size_t offset;        /* byte offset of the value's first character in the text */
    const char *key;      /* member name (decoded, NUL-terminated) inside an object, else NULL */
    size_t key_len;       /* bytes of key (a key may contain \u0000) */
    const char *str;      /* STRING: decoded UTF-8, NUL-terminated */
    size_t len;           /* STRING: bytes of str; ARRAY, OBJECT: number of children */
    double number;        /* NUMBER: the value (finite) */
    int is_integer;       /* NUMBER written without fraction or exponent that fits int64 */
    int64_t integer;      /* NUMBER: the value when is_integer */
    int boolean;          /* BOOL: 0 or 1 */
    int first_child;      /* ARRAY, OBJECT: index of the first child, -1 when empty */
    int next_sibling;     /* index of the next member or element, -1 at the end */
} gs_json_value;

typedef struct gs_json_doc {
    gs_json_value *values; /* values[0] is the root */
    int n_values;
    int cap_values;
    char *strings;         /* every decoded string and key, one allocation */
    size_t error_offset;   /* on a syntax error: offset of the first bad byte */
    char error[160];       /* on error: what was wrong, without path or offset */
} gs_json_doc;

/* Parses text[0..len) (no NUL needed). Returns 0 (GS_OK), GS_ERR_INPUT on a
 * syntax error (doc->error, doc->error_offset) or GS_ERR_RUNTIME when memory
 * runs out. max_depth bounds the nesting of arrays and objects (1 = a flat
 * object). Call gs_json_free in every case. */
int gs_json_parse(gs_json_doc *doc, const char *text, size_t len, int max_depth);
void gs_json_free(gs_json_doc *doc);

const gs_json_value *gs_json_root(const gs_json_doc *doc);
/* First child of an array or object (NULL if none or not a container). */
const gs_json_value *gs_json_child(const gs_json_doc *doc, const gs_json_value *v);
/* The next sibling in the same array or object, or NULL. */
const gs_json_value *gs_json_next(const gs_json_doc *doc, const gs_json_value *v);
/* The first member of obj named key, or NULL (also when obj is not an object). */
const gs_json_value *gs_json_get(const gs_json_doc *doc, const gs_json_value *obj, const char *key);
/* "null", "boolean", "number", "string", "array", "object". */
const char *gs_json_type_name(gs_json_type t);

#endif
