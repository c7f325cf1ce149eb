/* libFuzzer harness for the TIFF reader (make fuzz). Each input is handed to
 * tiff_read_stack through a memory file; a stack it accepts is written back as float32
 * and must read back bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/tiff.h"

static const char *memory_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_tiff", 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    return path;
}

static void round_trip(const Stack *s)
{
    static char out[64];
    if (!out[0]) snprintf(out, sizeof out, "/dev/shm/fuzz_tiff.%d.tif", (int)getpid());
    if (tiff_write_f32(out, s->pages, s->h, s->w, s->data) != 0) abort();
    Stack back;
    size_t n = (size_t)s->pages * s->h * s->w;
    if (tiff_read_stack(out, &back) != 0 || back.pages != s->pages || back.h != s->h || back.w != s->w ||
        memcmp(back.data, s->data, n * sizeof(float)) != 0)
        abort();
    stack_free(&back);
    remove(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Stack s;
    if (tiff_read_stack(memory_file(data, size), &s) != 0) return 0;
    if ((size_t)s.pages * s.h * s.w <= (1u << 16) && s.pages <= 64) round_trip(&s);
    stack_free(&s);
    return 0;
}
