/* backend_cpu.h - what the CPU backend shows beyond the backend table:
 * its worker pool, for collectors that need to reach every thread that
 * runs an op (per-thread hardware counters, cpu_counters.h). */
#ifndef GS_BACKEND_CPU_H
#define GS_BACKEND_CPU_H

#include "backend.h"

struct gs_pool;

/* The pool the CPU backend runs its ops on; NULL for any other backend. */
struct gs_pool *gs_backend_cpu_pool(const gs_backend *be);

#endif
