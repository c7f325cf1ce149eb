/* Error reporting: functions that can fail return SD_ERR (-1) after recording a
 * one-line message with sd_fail(); callers print sd_last_error() and exit non-zero. */
#ifndef SDSEG_ERR_H
#define SDSEG_ERR_H

#define SD_OK 0
#define SD_ERR (-1)

/* Record a printf-style message for this thread and return SD_ERR. */
int sd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message recorded on this thread ("" if none). */
const char *sd_last_error(void);
/* Print "sdseg: <message>" to stderr and exit(code). */
void sd_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
