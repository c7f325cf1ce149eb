/* sdseg phantom: write a synthetic EM-like stack and its exact mitochondria mask. */
#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"
#include "../core/phantom.h"
#include "../core/tiff.h"
#include "cli.h"

int cmd_phantom(int argc, char **argv)
{
    const char *out = NULL, *mask_out = NULL;
    int pages = 16, height = 256, width = 256;
    uint64_t seed = 1;
    const CliOpt opts[] = {
        {"out", CLI_STR, &out, "image stack to write (8-bit TIFF)", 1},
        {"mask-out", CLI_STR, &mask_out, "mask stack to write (8-bit TIFF, 0/255 like the EPFL labels)", 0},
        {"pages", CLI_INT, &pages, "number of slices", 0},
        {"height", CLI_INT, &height, "slice height in pixels", 0},
        {"width", CLI_INT, &width, "slice width in pixels", 0},
        {"seed", CLI_U64, &seed, "random seed (the stack is a pure function of size and seed)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "Synthetic EM-like stack (membranes, mitochondria, vesicles, blur, noise)\n"
                                   "with an exact mitochondria mask.", opts);
    if (st != CLI_RUN) return st;
    if (pages < 1 || pages > 4096 || height < 16 || width < 16 || height > 8192 || width > 8192)
        return cli_usage_error(argv[0], "size %d x %d x %d out of range (pages 1..4096, sides 16..8192)", pages,
                               height, width);
    size_t n = (size_t)pages * height * width;
    uint8_t *image = malloc(n), *mask = malloc(n);
    if (!image || !mask) {
        free(image), free(mask);
        return cli_usage_error(argv[0], "out of memory for %zu voxels", n);
    }
    double t0 = cli_now();
    int rc = phantom_make(pages, height, width, seed, image, mask);
    for (size_t i = 0; i < n && rc == SD_OK; i++) mask[i] = mask[i] ? 255 : 0;
    if (rc == SD_OK) rc = tiff_write_u8(out, pages, height, width, image);
    if (rc == SD_OK && mask_out && tiff_write_u8(mask_out, pages, height, width, mask) != SD_OK) {
        remove(out); /* both files or neither */
        rc = SD_ERR;
    }
    free(image);
    free(mask);
    if (rc != SD_OK) return cli_fail(argv[0], 1);
    printf("phantom: %d x %d x %d (seed %llu) in %.2f s -> %s%s%s\n", pages, height, width,
           (unsigned long long)seed, cli_now() - t0, out, mask_out ? ", " : "", mask_out ? mask_out : "");
    return 0;
}
