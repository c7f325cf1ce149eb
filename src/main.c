/* sdseg: the command-line entry point; dispatches to src/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

/* Add new commands here (prototype and table entry). */
int cmd_prep(int argc, char **argv);
int cmd_phantom(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_segment(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train_seg(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_train_vae(int argc, char **argv);
int cmd_fidelity(int argc, char **argv);
int cmd_train_ddpm(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);

static const Command commands[] = {
    {"prep", cmd_prep, "cut TIFF stacks into train/val tile datasets"},
    {"phantom", cmd_phantom, "write a synthetic EM-like stack with an exact mask"},
    {"info", cmd_info, "validate and describe a TIFF stack or a tile dataset"},
    {"segment", cmd_segment, "segment whole stacks: blended tiles -> probability and mask stacks"},
    {"eval", cmd_eval, "score a segmentation: IoU, Dice, sweep, object scores and measurements"},
    {"train-seg", cmd_train_seg, "train the segmentation U-Net (seed or improved recipe), resumable"},
    {"predict", cmd_predict, "raw network output (logits) for an NCHW .npy batch"},
    {"train-vae", cmd_train_vae, "train the seed's VAE (its recipe, defects switchable), resumable"},
    {"train-ddpm", cmd_train_ddpm, "train the latent diffusion U-Net through a frozen VAE, resumable"},
    {"sample", cmd_sample, "generate images (and masks) with the latent diffusion model"},
    {"encode", cmd_encode, "encode a stack (or its tiles) into VAE latents (.npy)"},
    {"decode", cmd_decode, "decode VAE latents (.npy) into an 8-bit image stack"},
    {"fidelity", cmd_fidelity, "how real synthetic tiles look: FD/KID on U-Net features, histogram, spectrum"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sdseg <command> [options]   (sdseg <command> --help for its options)\n\ncommands:\n");
    for (const Command *c = commands; c->name; c++) fprintf(f, "  %-12s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (const Command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "sdseg: unknown command '%s' (sdseg --help lists them)\n", argv[1]);
    return 2;
}
