/* config_yaml.c - reads a configuration file with libyaml.
 *
 * This file knows YAML's structure only: one document holding a mapping whose
 * values are scalars or (for sections such as "workload") mappings of
 * scalars. Each scalar goes to gs_config_set with its dotted key path, so the
 * types and ranges live in config.c's key table alone.
 *
 * The event API is used rather than yaml_parser_load: the document API
 * resolves aliases silently, and we want to point at the "*name" itself when
 * refusing one. Refused: unknown keys, a key given twice (or two spellings of
 * one setting), aliases, tags, a second document, a list or mapping where a
 * value belongs. Every error is "FILE:LINE:COLUMN: what", 1-based, at the
 * start of the offending node. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* A configuration is a few hundred bytes; a file this large is a mistake. */
#define MAX_FILE_BYTES (1 << 20)
#define MAX_KEYS_PER_MAPPING 64
#define MAX_KEY_LEN 64

/* A key already given: its name and where. */
typedef struct seen_key {
    char name[2 * MAX_KEY_LEN + 2]; /* full path: "workload.batch" */
    size_t offset;                  /* of the field it sets */
    size_t line;                    /* 0-based, as in yaml_mark_t */
} seen_key;

typedef struct yaml_ctx {
    yaml_parser_t parser;
    const char *path;
    const unsigned char *text; /* the whole file, to turn a byte offset into line:column */
    size_t len;
    gs_config *c;
    gs_error *err;
    /* Every value set so far, by field: "format" and "model.format" (or
     * "model.path" and "model.preset") set one field, and giving both is a
     * contradiction, not a case for "the last one wins". */
    seen_key values[MAX_KEYS_PER_MAPPING];
    int n_values;
} yaml_ctx;

static int at(yaml_ctx *y, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(yaml_ctx *y, yaml_mark_t m, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return gs_error_set(y->err, GS_ERR_INPUT, "%s:%zu:%zu: %s", y->path, m.line + 1, m.column + 1,
                        what);
}

/* Reader errors (bad UTF-8, control characters) carry a byte offset only. */
static yaml_mark_t mark_of_offset(const yaml_ctx *y, size_t off)
{
    yaml_mark_t m = { off, 0, 0 };
    for (size_t i = 0; i < off && i < y->len; i++) {
        if (y->text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if ((y->text[i] & 0xc0) != 0x80) { /* count characters, not UTF-8 bytes */
            m.column++;
        }
    }
    return m;
}

/* The first byte of the character at a mark's line and column, or 0. */
static int char_at(const yaml_ctx *y, yaml_mark_t m)
{
    size_t i = 0, line = 0, col = 0;
    for (; i < y->len && line < m.line; i++)
        line += y->text[i] == '\n';
    for (; i < y->len && y->text[i] != '\n'; i++) {
        if ((y->text[i] & 0xc0) == 0x80) /* UTF-8 continuation byte */
            continue;
        if (col++ == m.column)
            return y->text[i];
    }
    return 0;
}

/* Next event, or the parser's own error with its position. */
static int next_event(yaml_ctx *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return GS_OK;
    yaml_parser_t *p = &y->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return gs_error_set(y->err, GS_ERR_RUNTIME, "%s: out of memory while reading YAML", y->path);
    const char *problem = p->problem ? p->problem : "YAML syntax error";
    if (p->error == YAML_READER_ERROR)
        return at(y, mark_of_offset(y, p->problem_offset), "%s", problem);
    /* libyaml's words for a tab are obscure; a student needs to hear "tab". */
    const char *hint = char_at(y, p->problem_mark) == '\t'
                           ? "; indent with spaces: YAML does not allow tabs there"
                           : "";
    if (p->context && (p->context_mark.line != p->problem_mark.line ||
                       p->context_mark.column != p->problem_mark.column))
        return at(y, p->problem_mark, "%s (%s that starts at %zu:%zu)%s", problem, p->context,
                  p->context_mark.line + 1, p->context_mark.column + 1, hint);
    return at(y, p->problem_mark, "%s%s", problem, hint);
}

static const char *kind_name(yaml_event_type_t t)
{
    switch (t) {
    case YAML_SCALAR_EVENT:
        return "a single value";
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence (a list)";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "something else";
    }
}

/* Refuses what a configuration has no use for, at the node that has it. */
static int check_node(yaml_ctx *y, const yaml_event_t *ev)
{
    if (ev->type == YAML_ALIAS_EVENT)
        return at(y, ev->start_mark,
                  "aliases (*%s) are not supported in configuration files; write the value out",
                  (const char *)ev->data.alias.anchor);
    const yaml_char_t *tag = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.tag
                             : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.tag
                             : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                                                                     : NULL;
    if (tag)
        return at(y, ev->start_mark, "tags (%s) are not supported in configuration files",
                  (const char *)tag);
    return GS_OK;
}

/* The child keys of a section ("batch prompt_len ..."), for "unknown key". */
static void list_keys(const char *prefix, char *buf, size_t cap)
{
    int n;
    const gs_config_key *keys = gs_config_keys(&n);
    size_t plen = strlen(prefix), o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 1 < cap; i++) {
        const char *name = keys[i].name;
        if (plen && (strncmp(name, prefix, plen) != 0 || name[plen] != '.'))
            continue;
        const char *rest = plen ? name + plen + 1 : name;
        size_t rlen = strcspn(rest, ".");
        /* Skip repeats ("model" and "model.arch" both start a top-level "model"). */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            const char *other = keys[j].name;
            if (plen && (strncmp(other, prefix, plen) != 0 || other[plen] != '.'))
                continue;
            const char *orest = plen ? other + plen + 1 : other;
            seen = strcspn(orest, ".") == rlen && strncmp(orest, rest, rlen) == 0;
        }
        if (!seen) {
            int w = snprintf(buf + o, cap - o, "%s%.*s", o ? ", " : "", (int)rlen, rest);
            o = w < 0 || (size_t)w >= cap - o ? cap - 1 : o + (size_t)w; /* stop when full */
        }
    }
}

/* Does any key live under "name."? */
static int is_section(const char *name)
{
    int n;
    const gs_config_key *keys = gs_config_keys(&n);
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (strncmp(keys[i].name, name, len) == 0 && keys[i].name[len] == '.')
            return 1;
    return 0;
}

/* YAML's spellings of "no value". */
static int is_null(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"));
}

/* Hands one scalar value to the key table. */
static int set_scalar(yaml_ctx *y, const char *key, yaml_mark_t kmark, const yaml_event_t *ev)
{
    const gs_config_key *k = gs_config_key_find(key);
    for (int i = 0; i < y->n_values; i++)
        if (y->values[i].offset == k->offset) /* same name in a mapping was caught before */
            return at(y, kmark, "%s sets the same thing as %s at line %zu; give only one", key,
                      y->values[i].name, y->values[i].line + 1);
    if (y->n_values == MAX_KEYS_PER_MAPPING) /* unreachable: fewer fields than that */
        return at(y, kmark, "too many keys");
    seen_key *v = &y->values[y->n_values++];
    snprintf(v->name, sizeof v->name, "%s", key);
    v->offset = k->offset;
    v->line = kmark.line;

    const char *value = (const char *)ev->data.scalar.value;
    if (memchr(value, '\0', ev->data.scalar.length))
        return at(y, ev->start_mark, "%s: contains a NUL character", key);
    gs_error e;
    /* A bare "key:" gives the empty string, which each type reports clearly. */
    if (gs_config_set(y->c, key, is_null(ev) ? "" : value, &e))
        return at(y, ev->start_mark, "%s", e.msg);
    /* In YAML a quoted scalar is a string: "16" is not the number 16. Saying
     * so teaches YAML better than reading it anyway. */
    int numeric = k->type == GS_KEY_INT || k->type == GS_KEY_U64 || k->type == GS_KEY_FLOAT ||
                  k->type == GS_KEY_BOOL;
    if (numeric && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return at(y, ev->start_mark, "%s: write %s without quotes (a quoted value is a string)",
                  key, value);
    return GS_OK;
}

/* Reads the mapping whose MAPPING-START was just consumed, up to its end.
 * prefix is "" at the top level, "workload" etc. below. */
static int read_mapping(yaml_ctx *y, const char *prefix)
{
    seen_key seen[MAX_KEYS_PER_MAPPING];
    int n_seen = 0;
    for (;;) {
        yaml_event_t kev, vev;
        int rc = next_event(y, &kev);
        if (rc)
            return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return GS_OK;
        }
        if ((rc = check_node(y, &kev))) {
            yaml_event_delete(&kev);
            return rc;
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = at(y, kev.start_mark, "a key must be a plain word, not %s", kind_name(kev.type));
            yaml_event_delete(&kev);
            return rc;
        }

        /* "workload" + "batch" -> "workload.batch" */
        const char *kname = (const char *)kev.data.scalar.value;
        yaml_mark_t kmark = kev.start_mark;
        char full[2 * MAX_KEY_LEN + 2], name[MAX_KEY_LEN];
        int known = kev.data.scalar.length < MAX_KEY_LEN && !memchr(kname, '\0', kev.data.scalar.length);
        if (known) {
            strcpy(name, kname);
            snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", name);
        }
        const gs_config_key *k = known ? gs_config_key_find(full) : NULL;
        int section = known && !*prefix && is_section(full);
        if (!k && !section) {
            char list[512], shown[48];
            /* Echo at most a short, printable part of what was written. */
            size_t i = 0;
            for (; i < sizeof shown - 1 && i < kev.data.scalar.length; i++) {
                unsigned char ch = (unsigned char)kname[i];
                shown[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
            }
            shown[i] = '\0';
            list_keys(prefix, list, sizeof list);
            const char *moved = known ? gs_config_key_moved(full) : NULL;
            if (moved)
                rc = at(y, kmark, "%s", moved);
            else
                rc = at(y, kmark, "unknown key \"%s%s%s%s\" (%s%s: %s)", prefix, *prefix ? "." : "",
                    shown, i < kev.data.scalar.length ? "..." : "",
                    *prefix ? "keys of " : "top-level keys", prefix, list);
            yaml_event_delete(&kev);
            return rc;
        }
        yaml_event_delete(&kev);

        /* Duplicates: libyaml accepts them and the last would silently win. */
        for (int i = 0; i < n_seen; i++)
            if (strcmp(seen[i].name, full) == 0)
                return at(y, kmark, "duplicate key \"%s\" (first given at line %zu)", full,
                          seen[i].line + 1);
        if (n_seen == MAX_KEYS_PER_MAPPING) /* unreachable: there are fewer keys */
            return at(y, kmark, "too many keys");
        strcpy(seen[n_seen].name, full);
        seen[n_seen].line = kmark.line;
        n_seen++;

        if ((rc = next_event(y, &vev)))
            return rc;
        if ((rc = check_node(y, &vev))) {
            yaml_event_delete(&vev);
            return rc;
        }
        if (vev.type == YAML_SCALAR_EVENT && k) {
            rc = set_scalar(y, full, kmark, &vev);
        } else if (vev.type == YAML_MAPPING_START_EVENT && section) {
            rc = read_mapping(y, full);
        } else {
            char list[512];
            list_keys(full, list, sizeof list);
            if (section && k)
                rc = at(y, vev.start_mark, "%s: expected a value or a mapping (%s), got %s", full,
                        list, kind_name(vev.type));
            else if (section)
                rc = at(y, vev.start_mark, "%s: expected a mapping (%s), got %s", full, list,
                        kind_name(vev.type));
            else
                rc = at(y, vev.start_mark, "%s: expected a single value, got %s", full,
                        kind_name(vev.type));
        }
        yaml_event_delete(&vev);
        if (rc)
            return rc;
    }
}

/* stream-start, then nothing or one document holding a mapping (or nothing). */
static int read_stream(yaml_ctx *y)
{
    yaml_event_t ev;
    int rc = next_event(y, &ev);
    if (rc)
        return rc;
    yaml_event_delete(&ev); /* STREAM-START */

    if ((rc = next_event(y, &ev)))
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty, or only comments */
        yaml_event_delete(&ev);
        return GS_OK;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */

    if ((rc = next_event(y, &ev)))
        return rc;
    if (!(rc = check_node(y, &ev))) {
        if (ev.type == YAML_MAPPING_START_EVENT)
            rc = read_mapping(y, "");
        else if (!(ev.type == YAML_SCALAR_EVENT && is_null(&ev))) /* "---" alone is empty */
            rc = at(y, ev.start_mark, "expected a mapping of keys (model: ..., workload: ...), got %s",
                    kind_name(ev.type));
    }
    yaml_event_delete(&ev);
    if (rc)
        return rc;

    if ((rc = next_event(y, &ev)))
        return rc;
    yaml_event_delete(&ev); /* DOCUMENT-END */

    if ((rc = next_event(y, &ev)))
        return rc;
    if (ev.type == YAML_DOCUMENT_START_EVENT)
        rc = at(y, ev.start_mark, "a second document; a configuration file holds one");
    yaml_event_delete(&ev);
    return rc;
}

/* Every event up to the end of the stream, for the parser's errors alone. */
static int check_syntax(yaml_ctx *y)
{
    for (;;) {
        yaml_event_t ev;
        int rc = next_event(y, &ev);
        if (rc)
            return rc;
        int end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end)
            return GS_OK;
    }
}

/* The whole file in memory: the parser reads it, and reader errors (which
 * give a byte offset) are turned into line:column from it. */
static int read_file(const char *path, unsigned char **out, size_t *len, gs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return gs_error_set(err, GS_ERR_INPUT, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return gs_error_set(err, GS_ERR_RUNTIME, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > MAX_FILE_BYTES) {
                free(buf);
                fclose(f);
                return gs_error_set(err, GS_ERR_INPUT,
                                    "%s: larger than %d bytes; not a configuration file?", path,
                                    MAX_FILE_BYTES);
            }
            unsigned char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                fclose(f);
                return gs_error_set(err, GS_ERR_RUNTIME, "%s: out of memory", path);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            int bad = ferror(f), e = errno;
            fclose(f);
            if (bad) { /* a directory, an I/O error */
                free(buf);
                return gs_error_set(err, GS_ERR_INPUT, "%s: %s", path, strerror(e));
            }
            break;
        }
    }
    *out = buf;
    *len = n;
    return GS_OK;
}

int gs_config_load_yaml(gs_config *c, const char *path, gs_error *err)
{
    unsigned char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err);
    if (rc)
        return rc;
    /* Work on a copy so a bad file leaves c as it was. */
    gs_config tmp = *c;
    yaml_ctx y = { .path = path, .text = text, .len = len, .c = &tmp, .err = err };
    /* Two passes: the first only checks the syntax, so a syntax error is
     * reported where it is even when an earlier value looks wrong because of
     * it ("batch: 2" followed by a badly indented line reads as "2 gen_len"). */
    for (int pass = 0; pass < 2 && rc == GS_OK; pass++) {
        if (!yaml_parser_initialize(&y.parser)) {
            rc = gs_error_set(err, GS_ERR_RUNTIME, "%s: out of memory", path);
            break;
        }
        yaml_parser_set_input_string(&y.parser, text, len);
        rc = pass == 0 ? check_syntax(&y) : read_stream(&y);
        yaml_parser_delete(&y.parser);
    }
    free(text);
    if (rc == GS_OK)
        *c = tmp;
    return rc;
}
