/* tap.h - a tiny Test Anything Protocol writer for the C unit tests.
 * Each check prints "ok N - name" or "not ok N - name"; tap_done prints the
 * plan and returns the exit status, so automake's TAP driver counts every
 * check. Header-only on purpose: each test is one translation unit. */
#ifndef GS_TAP_H
#define GS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count_;
static int tap_failed_;

static void tap_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static void tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_count_);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        tap_failed_++;
    fflush(stdout);
}

/* A diagnostic line, shown by the harness in the log. */
static void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void tap_skip(const char *why) __attribute__((unused));
static void tap_skip(const char *why)
{
    printf("ok %d # SKIP %s\n", ++tap_count_, why);
}

static int tap_done(void) __attribute__((unused));
static int tap_done(void)
{
    printf("1..%d\n", tap_count_);
    return tap_failed_ ? 1 : 0;
}

/* Path of the shared model directory (tests read stories260K.bin there). */
static const char *tap_models_dir(void) __attribute__((unused));
static const char *tap_models_dir(void)
{
    const char *d = getenv("GS_MODELS_DIR");
    return d ? d : GS_DEFAULT_MODELS_DIR;
}

#endif
