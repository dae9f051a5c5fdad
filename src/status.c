/* status.c - the one place error messages are formatted. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

int gs_error_set(gs_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
