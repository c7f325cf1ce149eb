/* sdseg: the command-line entry point; dispatches to src/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

/* Add new commands here (prototype and table entry). */

static const Command commands[] = {
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
