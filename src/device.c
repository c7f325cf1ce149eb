#include "device.h"

#include <string.h>

#include "../core/err.h"
#include "../cpu/cpu.h"
#include "../gpu/gpu.h"

/* Builds without nvcc have no gpu/ objects: these weak definitions stand in and say so.
 * When gpu/backend.cu is linked, its strong definitions replace them. */
__attribute__((weak)) int gpu_backend_open(Backend *be, int fast)
{
    (void)be;
    (void)fast;
    return sd_fail("this sdseg was built without CUDA (no nvcc at build time)");
}

__attribute__((weak)) void gpu_backend_close(Backend *be) { (void)be; }

int device_open(const char *name, int fast, Backend *be)
{
    if (!strcmp(name, "cpu")) {
        *be = cpu_backend();
        return SD_OK;
    }
    if (!strcmp(name, "cuda")) return gpu_backend_open(be, fast);
    return sd_fail("unknown device '%s' (use cpu or cuda)", name);
}

void device_close(Backend *be)
{
    if (!strcmp(be->name, "cpu")) cpu_ctx_destroy(be->ctx);
    else gpu_backend_close(be);
}
