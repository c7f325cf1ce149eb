/* Training configurations addressed by name: a table of typed fields of a config struct,
 * so option names, checkpoint metadata keys ("cfg.<name>") and values travel as text that
 * round-trips exactly (doubles as %.17g). A resumed run reads back exactly the settings it
 * started with. Tables: vae_train_fields() (src/vae_trainer.c), seg_train_fields()
 * (src/seg_config.c). */
#ifndef SDSEG_CONFIG_FIELDS_H
#define SDSEG_CONFIG_FIELDS_H

#include <stddef.h>

#include "../core/safetensors.h"

typedef enum { CFG_INT, CFG_LONG, CFG_U64, CFG_DOUBLE, CFG_ENUM } CfgKind;

typedef struct {
    const char *key;
    CfgKind kind;
    size_t offset;            /* offsetof the field in the config struct */
    const char *const *names; /* CFG_ENUM: value i is names[i], NULL-terminated */
} CfgField;

#define CFG_MAX_FIELDS 40

typedef struct {
    const CfgField *field;
    int count; /* at most CFG_MAX_FIELDS */
} CfgTable;

/* Set field `key` of config c from text; SD_ERR for an unknown key or a bad value. */
int cfg_set(const CfgTable *t, void *c, const char *key, const char *text);
/* Field `key` as text. */
int cfg_get(const CfgTable *t, const void *c, const char *key, char *buf, size_t n);

/* Index of field `key`; exits (an internal error) when there is none, as for an option
 * table naming a field that does not exist. */
int cfg_index(const CfgTable *t, const char *key);
/* Set every field i whose given[i] is not NULL (the options a command was given). */
int cfg_apply(const CfgTable *t, void *c, const char *const *given);
/* For a resumed run with saved settings c: every given[i] must agree with c, except field
 * `growable` (e.g. "epochs"), which takes the given value. SD_ERR naming the option. */
int cfg_keep_saved(const CfgTable *t, void *c, const char *const *given, const char *growable);

/* The metadata entries "cfg.<key>" = value of every field, for a checkpoint. */
typedef struct {
    StMeta meta[CFG_MAX_FIELDS];
    char key[CFG_MAX_FIELDS][40], value[CFG_MAX_FIELDS][64];
    int count;
} CfgMeta;
void cfg_meta(const CfgTable *t, const void *c, CfgMeta *m);
/* Every field from a checkpoint's metadata; SD_ERR naming the file when one is missing or bad. */
int cfg_read(const CfgTable *t, const StFile *f, void *c);

#endif
