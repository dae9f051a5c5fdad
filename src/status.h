/* status.h - error reporting shared by every module.
 *
 * Functions that can fail return an int status and fill a gs_error with one
 * line that says what went wrong and where (file, offset or line:column).
 * The status doubles as the process exit code (see main.c). */
#ifndef GS_STATUS_H
#define GS_STATUS_H

enum {
    GS_OK = 0,
    GS_ERR_RUNTIME = 1, /* the machine failed us: out of memory, device error */
    GS_ERR_INPUT = 2    /* the user gave us something wrong: file, option, YAML */
};

typedef struct gs_error {
    int code;
    char msg[512];
} gs_error;

/* Formats the message into err (if err is not NULL) and returns code. */
int gs_error_set(gs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
