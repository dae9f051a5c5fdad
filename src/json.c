/* json.c - the strict JSON reader declared in json.h.
 *
 * Recursive descent over a byte range; the recursion is bounded by max_depth.
 * Values live in one growing array and are linked by index (not pointer) while
 * parsing, because the array may move when it grows. Decoded strings go into
 * one buffer sized up front: a string never decodes to more bytes than its
 * quoted source text, so the buffer can never overflow. */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

/* Longest number token we accept; real headers use a few digits. */
#define JSON_MAX_NUMBER 256

typedef struct parser {
    const unsigned char *s;
    size_t n, i;
    gs_json_doc *doc;
    int max_depth;
    size_t str_used;
} parser;

static int fail(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->doc->error, sizeof p->doc->error, fmt, ap);
    va_end(ap);
    p->doc->error_offset = at;
    return GS_ERR_INPUT;
}

/* Describes the byte at i for an error message ("end of text", "'x'", "byte 0x07"). */
static int fail_unexpected(parser *p, const char *expected)
{
    if (p->i >= p->n)
        return fail(p, p->i, "unexpected end of text, expected %s", expected);
    unsigned c = p->s[p->i];
    if (c >= 0x20 && c < 0x7f)
        return fail(p, p->i, "unexpected '%c', expected %s", (char)c, expected);
    return fail(p, p->i, "unexpected byte 0x%02x, expected %s", c, expected);
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->i++;
    }
}

static int new_value(parser *p, gs_json_type t, int *out)
{
    gs_json_doc *d = p->doc;
    if (d->n_values == d->cap_values) {
        if (d->cap_values > INT_MAX / 2) {
            snprintf(d->error, sizeof d->error, "too many values");
            return GS_ERR_RUNTIME;
        }
        int cap = d->cap_values ? 2 * d->cap_values : 16;
        gs_json_value *v = realloc(d->values, (size_t)cap * sizeof *v);
        if (!v) {
            snprintf(d->error, sizeof d->error, "out of memory");
            return GS_ERR_RUNTIME;
        }
        d->values = v;
        d->cap_values = cap;
    }
    gs_json_value *v = &d->values[d->n_values];
    memset(v, 0, sizeof *v);
    v->type = t;
    v->offset = p->i;
    v->first_child = -1;
    v->next_sibling = -1;
    *out = d->n_values++;
    return GS_OK;
}

static int hex4(parser *p, size_t at, unsigned *out)
{
    if (p->n - at < 4)
        return fail(p, at, "unexpected end of text in a \\u escape");
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        unsigned c = p->s[at + k], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return fail(p, at + k, "invalid hex digit in a \\u escape");
        v = v * 16 + d;
    }
    *out = v;
    return GS_OK;
}

/* Length of the valid UTF-8 sequence starting at i (2..4), or 0 if invalid. */
static size_t utf8_len(const parser *p, size_t i)
{
    const unsigned char *s = p->s;
    size_t left = p->n - i;
    unsigned c = s[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        if (c == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 0;
    if (left < need)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++)
        if (s[i + k] < 0x80 || s[i + k] > 0xBF)
            return 0;
    return need;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* At an opening quote: decodes the string into the strings buffer. */
static int parse_string(parser *p, const char **out, size_t *out_len)
{
    char *start = p->doc->strings + p->str_used, *o = start;
    p->i++; /* the opening quote */
    for (;;) {
        if (p->i >= p->n)
            return fail(p, p->i, "unexpected end of text inside a string");
        unsigned c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return fail(p, p->i, "control character 0x%02x inside a string (must be escaped)", c);
        if (c >= 0x80) {
            size_t k = utf8_len(p, p->i);
            if (!k)
                return fail(p, p->i, "invalid UTF-8 inside a string");
            memcpy(o, p->s + p->i, k);
            o += k;
            p->i += k;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            p->i++;
            continue;
        }
        size_t esc = p->i;
        if (p->i + 1 >= p->n)
            return fail(p, p->i + 1, "unexpected end of text in an escape");
        unsigned e = p->s[p->i + 1];
        p->i += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp = 0;
            if (hex4(p, p->i, &cp))
                return GS_ERR_INPUT;
            p->i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(p, esc, "unpaired low surrogate \\u%04X", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo = 0;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                    return fail(p, esc, "unpaired high surrogate \\u%04X", cp);
                if (hex4(p, p->i + 2, &lo))
                    return GS_ERR_INPUT;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, esc, "unpaired high surrogate \\u%04X", cp);
                p->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o = put_utf8(o, cp);
            break;
        }
        default:
            if (e >= 0x20 && e < 0x7f)
                return fail(p, esc, "invalid escape \\%c", (char)e);
            return fail(p, esc, "invalid escape (backslash then byte 0x%02x)", e);
        }
    }
    *o++ = '\0';
    *out = start;
    *out_len = (size_t)(o - start) - 1;
    p->str_used += (size_t)(o - start);
    return GS_OK;
}

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *p, gs_json_value *v)
{
    size_t b = p->i, i = p->i;
    int integer = 1;
    if (i < p->n && p->s[i] == '-')
        i++;
    if (i >= p->n || !is_digit(p->s[i]))
        return fail(p, i, "expected a digit in a number");
    if (p->s[i] == '0') {
        i++;
        if (i < p->n && is_digit(p->s[i]))
            return fail(p, i, "leading zero in a number");
    } else {
        while (i < p->n && is_digit(p->s[i]))
            i++;
    }
    if (i < p->n && p->s[i] == '.') {
        integer = 0;
        i++;
        if (i >= p->n || !is_digit(p->s[i]))
            return fail(p, i, "expected a digit after the decimal point");
        while (i < p->n && is_digit(p->s[i]))
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        integer = 0;
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->n || !is_digit(p->s[i]))
            return fail(p, i, "expected a digit in the exponent");
        while (i < p->n && is_digit(p->s[i]))
            i++;
    }
    if (i - b > JSON_MAX_NUMBER)
        return fail(p, b, "number longer than %d characters", JSON_MAX_NUMBER);

    /* strtod follows LC_NUMERIC, which a UI may have set from the environment:
     * spell the decimal point the way the current locale wants it. */
    char buf[JSON_MAX_NUMBER + 16];
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp ? strlen(dp) : 0;
    if (dpl == 0 || dpl > 8) {
        dp = ".";
        dpl = 1;
    }
    size_t k = 0;
    for (size_t j = b; j < i; j++) {
        if (p->s[j] == '.') {
            memcpy(buf + k, dp, dpl);
            k += dpl;
        } else {
            buf[k++] = (char)p->s[j];
        }
    }
    buf[k] = '\0';
    errno = 0;
    char *end = NULL;
    double d = strtod(buf, &end);
    if (end != buf + k)
        return fail(p, b, "number could not be converted");
    if (!isfinite(d))
        return fail(p, b, "number out of range");
    v->number = d;
    if (integer) {
        /* Exact integer value, for sizes and offsets past 2^53. */
        int neg = p->s[b] == '-';
        uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int fits = 1;
        for (size_t j = b + (size_t)neg; j < i; j++) {
            unsigned dg = p->s[j] - '0';
            if (mag > (limit - dg) / 10) {
                fits = 0;
                break;
            }
            mag = mag * 10 + dg;
        }
        if (fits) {
            v->is_integer = 1;
            if (neg)
                v->integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            else
                v->integer = (int64_t)mag;
        }
    }
    p->i = i;
    return GS_OK;
}

static int match_word(parser *p, const char *w)
{
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0)
        return 0;
    p->i += l;
    return 1;
}

static int parse_value(parser *p, int depth, int *out);

/* Appends child to parent's list; last is the previous child or -1. */
static void link_child(parser *p, int parent, int *last, int child)
{
    gs_json_value *vs = p->doc->values;
    if (*last < 0)
        vs[parent].first_child = child;
    else
        vs[*last].next_sibling = child;
    *last = child;
    vs[parent].len++;
}

static int parse_array(parser *p, int depth, int self)
{
    int last = -1, rc;
    p->i++; /* [ */
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return GS_OK;
    }
    for (;;) {
        int child;
        skip_ws(p);
        if ((rc = parse_value(p, depth, &child)))
            return rc;
        link_child(p, self, &last, child);
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return GS_OK;
        }
        return fail_unexpected(p, "',' or ']'");
    }
}

static int parse_object(parser *p, int depth, int self)
{
    int last = -1, rc;
    p->i++; /* { */
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return GS_OK;
    }
    for (;;) {
        const char *key;
        size_t key_len;
        int child;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != '"')
            return fail_unexpected(p, "a string key");
        if ((rc = parse_string(p, &key, &key_len)))
            return rc;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':')
            return fail_unexpected(p, "':' after an object key");
        p->i++;
        skip_ws(p);
        if ((rc = parse_value(p, depth, &child)))
            return rc;
        p->doc->values[child].key = key;
        p->doc->values[child].key_len = key_len;
        link_child(p, self, &last, child);
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return GS_OK;
        }
        return fail_unexpected(p, "',' or '}'");
    }
}

/* depth: containers already open around this value. */
static int parse_value(parser *p, int depth, int *out)
{
    int rc, idx;
    if (p->i >= p->n)
        return fail_unexpected(p, "a value");
    unsigned c = p->s[p->i];
    switch (c) {
    case '{':
    case '[':
        if (depth + 1 > p->max_depth)
            return fail(p, p->i, "nesting deeper than %d levels", p->max_depth);
        if ((rc = new_value(p, c == '{' ? GS_JSON_OBJECT : GS_JSON_ARRAY, &idx)))
            return rc;
        rc = c == '{' ? parse_object(p, depth + 1, idx) : parse_array(p, depth + 1, idx);
        break;
    case '"': {
        const char *s;
        size_t l;
        if ((rc = new_value(p, GS_JSON_STRING, &idx)))
            return rc;
        rc = parse_string(p, &s, &l);
        if (!rc) {
            p->doc->values[idx].str = s;
            p->doc->values[idx].len = l;
        }
        break;
    }
    case 't':
    case 'f':
    case 'n':
        if ((rc = new_value(p, c == 'n' ? GS_JSON_NULL : GS_JSON_BOOL, &idx)))
            return rc;
        if (match_word(p, "true"))
            p->doc->values[idx].boolean = 1;
        else if (!match_word(p, "false") && !match_word(p, "null"))
            return fail_unexpected(p, "a value");
        rc = GS_OK;
        break;
    default:
        if (c != '-' && !is_digit(c))
            return fail_unexpected(p, "a value");
        if ((rc = new_value(p, GS_JSON_NUMBER, &idx)))
            return rc;
        rc = parse_number(p, &p->doc->values[idx]);
        break;
    }
    *out = idx;
    return rc;
}

int gs_json_parse(gs_json_doc *doc, const char *text, size_t len, int max_depth)
{
    memset(doc, 0, sizeof *doc);
    parser p = {(const unsigned char *)text, len, 0, doc, max_depth < 1 ? 1 : max_depth, 0};
    /* Every decoded string plus its NUL fits in the bytes of its quoted source. */
    doc->strings = malloc(len + 1);
    if (!doc->strings) {
        snprintf(doc->error, sizeof doc->error, "out of memory");
        return GS_ERR_RUNTIME;
    }
    int root, rc;
    skip_ws(&p);
    if ((rc = parse_value(&p, 0, &root)))
        return rc;
    skip_ws(&p);
    if (p.i != p.n)
        return fail(&p, p.i, "unexpected characters after the JSON value");
    return GS_OK;
}

void gs_json_free(gs_json_doc *doc)
{
    free(doc->values);
    free(doc->strings);
    doc->values = NULL;
    doc->strings = NULL;
    doc->n_values = doc->cap_values = 0;
}

const gs_json_value *gs_json_root(const gs_json_doc *doc)
{
    return doc->n_values > 0 ? &doc->values[0] : NULL;
}

const gs_json_value *gs_json_child(const gs_json_doc *doc, const gs_json_value *v)
{
    if (!v || (v->type != GS_JSON_ARRAY && v->type != GS_JSON_OBJECT) || v->first_child < 0)
        return NULL;
    return &doc->values[v->first_child];
}

const gs_json_value *gs_json_next(const gs_json_doc *doc, const gs_json_value *v)
{
    return v && v->next_sibling >= 0 ? &doc->values[v->next_sibling] : NULL;
}

const gs_json_value *gs_json_get(const gs_json_doc *doc, const gs_json_value *obj, const char *key)
{
    if (!obj || obj->type != GS_JSON_OBJECT)
        return NULL;
    size_t kl = strlen(key);
    for (const gs_json_value *c = gs_json_child(doc, obj); c; c = gs_json_next(doc, c))
        if (c->key_len == kl && memcmp(c->key, key, kl) == 0)
            return c;
    return NULL;
}

const char *gs_json_type_name(gs_json_type t)
{
    switch (t) {
    case GS_JSON_NULL: return "null";
    case GS_JSON_BOOL: return "boolean";
    case GS_JSON_NUMBER: return "number";
    case GS_JSON_STRING: return "string";
    case GS_JSON_ARRAY: return "array";
    case GS_JSON_OBJECT: return "object";
    }
    return "?";
}
