/* Shared command-line helpers for src/cmd_*.c: long options with --help generated from
 * a table, one-line usage errors, and a progress line with an ETA.
 *
 *     const char *in = NULL; int tile = 256; double lr = 1e-3; int quiet = 0;
 *     const CliOpt opts[] = {
 *         {"in", CLI_STR, &in, "input TIFF stack", 1},
 *         {"tile", CLI_INT, &tile, "tile size in pixels", 0},
 *         {"lr", CLI_FLOAT, &lr, "learning rate", 0},
 *         {"quiet", CLI_FLAG, &quiet, "no progress output", 0},
 *         {NULL},
 *     };
 *     int st = cli_parse(argc, argv, "cut a stack into tiles", opts);
 *     if (st != CLI_RUN) return st;
 *
 * Options are written --name value or --name=value; the value a variable holds before
 * parsing is its default and is shown by --help. */
#ifndef SDSEG_CLI_H
#define SDSEG_CLI_H

#include <stdint.h>

typedef enum {
    CLI_STR,   /* const char ** */
    CLI_INT,   /* int * */
    CLI_U64,   /* uint64_t * (seeds) */
    CLI_FLOAT, /* double * */
    CLI_FLAG,  /* int *, set to 1 when present (takes no value) */
} CliKind;

typedef struct {
    const char *name; /* "tile" for --tile; NULL ends the table */
    CliKind kind;
    void *value;
    const char *help;
    int required;
} CliOpt;

/* cli_parse returns CLI_RUN when the command should go on; otherwise the exit status
 * the command should return: 0 after printing --help to stdout, 2 after a usage error
 * (one line on stderr). argv[0] is the command name. */
#define CLI_RUN (-1)
int cli_parse(int argc, char **argv, const char *summary, const CliOpt *opts);

/* Print "sdseg <cmd>: <message>" (printf-style) to stderr; returns 2 (bad usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "sdseg <cmd>: <sd_last_error()>" to stderr; returns `status`. */
int cli_fail(const char *cmd, int status);

/* A progress line on stderr: rewritten in place on a terminal (at most 4 times a
 * second), otherwise one line every 10 seconds; progress_end prints the final line. */
typedef struct {
    const char *what;
    long total;
    double start, last;
    int tty;
} Progress;

void progress_start(Progress *p, const char *what, long total);
void progress_step(Progress *p, long done);
void progress_end(Progress *p);
double cli_now(void); /* monotonic seconds */

#endif
