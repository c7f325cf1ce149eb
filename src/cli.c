#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/err.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sdseg %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int cli_fail(const char *cmd, int status)
{
    fprintf(stderr, "sdseg %s: %s\n", cmd, sd_last_error());
    return status;
}

static void print_default(const CliOpt *o)
{
    switch (o->kind) {
    case CLI_STR:
        if (*(const char **)o->value) printf(" (default %s)", *(const char **)o->value);
        break;
    case CLI_INT: printf(" (default %d)", *(int *)o->value); break;
    case CLI_U64: printf(" (default %" PRIu64 ")", *(uint64_t *)o->value); break;
    case CLI_FLOAT: printf(" (default %g)", *(double *)o->value); break;
    case CLI_FLAG: break;
    }
}

static void print_help(const char *cmd, const char *summary, const CliOpt *opts)
{
    printf("usage: sdseg %s [options]\n%s\n\noptions:\n", cmd, summary);
    for (const CliOpt *o = opts; o->name; o++) {
        static const char *const metavar[] = {" S", " N", " N", " X", ""};
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->name, metavar[o->kind]);
        printf("  %-22s %s%s", left, o->help, o->required ? " (required)" : "");
        print_default(o);
        putchar('\n');
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

/* Store text into the option's variable; 0 when the text is a valid value. */
static int set_value(const CliOpt *o, const char *text)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_STR: *(const char **)o->value = text; return 0;
    case CLI_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < INT_MIN || v > INT_MAX) return -1;
        *(int *)o->value = (int)v;
        return 0;
    }
    case CLI_U64: {
        unsigned long long v = strtoull(text, &end, 0);
        if (errno || end == text || *end || strchr(text, '-')) return -1;
        *(uint64_t *)o->value = v;
        return 0;
    }
    case CLI_FLOAT: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v)) return -1;
        *(double *)o->value = v;
        return 0;
    }
    case CLI_FLAG: *(int *)o->value = 1; return 0;
    }
    return -1;
}

static const CliOpt *find_opt(const CliOpt *opts, const char *name, size_t len)
{
    for (const CliOpt *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

int cli_parse(int argc, char **argv, const char *summary, const CliOpt *opts)
{
    const char *cmd = argv[0];
    int nopts = 0;
    while (opts[nopts].name) nopts++;
    char seen[nopts + 1];
    memset(seen, 0, sizeof seen);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            print_help(cmd, summary, opts);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) return cli_usage_error(cmd, "unexpected argument '%s' (see --help)", arg);
        const char *name = arg + 2, *eq = strchr(name, '=');
        const CliOpt *o = find_opt(opts, name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) return cli_usage_error(cmd, "unknown option '%s' (see --help)", arg);
        const char *text = eq ? eq + 1 : NULL;
        if (o->kind == CLI_FLAG && text) return cli_usage_error(cmd, "--%s takes no value", o->name);
        if (o->kind != CLI_FLAG && !text) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "--%s needs a value", o->name);
            text = argv[++i];
        }
        if (set_value(o, text)) return cli_usage_error(cmd, "bad value '%s' for --%s", text, o->name);
        seen[o - opts] = 1;
    }
    for (int k = 0; k < nopts; k++)
        if (opts[k].required && !seen[k]) return cli_usage_error(cmd, "--%s is required (see --help)", opts[k].name);
    return CLI_RUN;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(Progress *p, const char *what, long total)
{
    p->what = what;
    p->total = total;
    p->start = p->last = cli_now();
    p->tty = isatty(STDERR_FILENO);
}

static void progress_print(const Progress *p, long done, double now)
{
    double elapsed = now - p->start;
    double pct = p->total > 0 ? 100.0 * (double)done / (double)p->total : 100.0;
    fprintf(stderr, "%s%s %ld/%ld (%.0f%%) %.1f s", p->tty ? "\r" : "", p->what, done, p->total, pct, elapsed);
    if (done > 0 && done < p->total)
        fprintf(stderr, ", ETA %.0f s", elapsed * (double)(p->total - done) / (double)done);
    fputs(p->tty ? "   " : "\n", stderr);
}

void progress_step(Progress *p, long done)
{
    double now = cli_now();
    if (now - p->last < (p->tty ? 0.25 : 10.0)) return;
    p->last = now;
    progress_print(p, done, now);
}

void progress_end(Progress *p)
{
    progress_print(p, p->total, cli_now());
    if (p->tty) fputc('\n', stderr);
}
