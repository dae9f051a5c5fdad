/* cmd_info.c - `gptscope info`: what this build and machine can do. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "build_config.h"
#include "cli.h"
#include "commands.h"
#include "cuda_probe.h"
#include "presets.h"

int cmd_info(int argc, char **argv)
{
    gs_cli cli;
    gs_error err = {0};
    int rc = gs_cli_parse(&cli, "info", 0, argc, argv, &err);
    if (rc)
        return gs_report(&err);
    if (cli.help) {
        printf("usage: gptscope info\n\nLists backends, devices, model presets and whether CUPTI can trace.\n\noptions:\n");
        gs_cli_print_options(0);
        return 0;
    }
    if (cli.n_args > 0) {
        fprintf(stderr, "gptscope info: unexpected argument '%s'\n", cli.args[0]);
        return 2;
    }
    printf("gptscope %s\n\nbackends:\n", PACKAGE_VERSION);
    gs_backend *cpu = NULL;
    if (gs_backend_cpu_create(&cpu, 0, &err) == GS_OK) {
        size_t fr = 0, tot = 0;
        cpu->ops->mem_info(cpu, &fr, &tot);
        printf("  cpu    available: %s, %.1f GiB RAM (%.1f GiB free)\n", cpu->device_name,
               (double)tot / (1 << 30), (double)fr / (1 << 30));
        gs_backend_destroy(cpu);
    }
    gs_cuda_probe p;
    gs_cuda_probe_run(&p);
    if (!p.compiled) {
        printf("  cuda   not built: %s\n", p.reason);
    } else if (p.device_count <= 0) {
        printf("  cuda   built (runtime %d.%d), no usable device: %s\n", p.runtime_version / 1000,
               (p.runtime_version % 1000) / 10, p.reason);
    } else {
        printf("  cuda   available (runtime %d.%d, driver %d.%d)\n",
               p.runtime_version / 1000, (p.runtime_version % 1000) / 10, p.driver_version / 1000,
               (p.driver_version % 1000) / 10);
        for (int i = 0; i < p.device_count && i < GS_CUDA_MAX_DEVICES; i++) {
            const gs_cuda_probe_device *d = &p.devices[i];
            printf("         device %d: %s, sm_%d%d, %d SMs, %.1f GiB (%.1f GiB free), L2 %.0f MiB\n", i, d->name,
                   d->cc_major, d->cc_minor, d->sm_count, (double)d->total_bytes / (1 << 30),
                   (double)d->free_bytes / (1 << 30), (double)d->l2_bytes / (1 << 20));
        }
    }
    printf("\nprofiler:\n  host ranges  yes (step > layer > op wall time)\n");
    if (p.cupti_usable)
        printf("  CUPTI        usable (version %d)\n", p.cupti_version);
    else
        printf("  CUPTI        not usable: %s\n", p.cupti_reason);
    printf("\nmodel presets (synthetic weights from --seed):\n");
    for (size_t i = 0; i < gs_preset_count(); i++) {
        const gs_preset *pr = gs_preset_at(i);
        printf("  %-12s %7.1fM params  %s\n", pr->name, (double)gs_shape_param_count(&pr->shape) / 1e6,
               pr->description);
    }
    printf("\ncheckpoint formats: llama2c, llmc (GPT-2, fp32/bf16), safetensors (Hugging Face GPT-2 and Llama names)\n");
    return 0;
}
