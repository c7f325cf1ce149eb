/* Every sdseg command is `int cmd_<name>(int argc, char **argv)` in src/cmd_<name>.c,
 * registered in the table of src/main.c. argv[0] is the command name; the return value
 * is the exit status (0 ok, 1 failure of the work, 2 bad usage or input). */
#ifndef SDSEG_COMMANDS_H
#define SDSEG_COMMANDS_H

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

#endif
