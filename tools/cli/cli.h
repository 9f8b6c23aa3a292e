/* ucaas-auth, the command-line credential helper: what its parts share. */
#ifndef UCAASAUTH_CLI_H
#define UCAASAUTH_CLI_H

#include "cache.h"

/* main.c: usage (exit status 2), a failure's message (1), the operands. */
int usage(void);
int failed(int status);
int no_options(int argc, char **argv);
/* At most one PROFILE operand: 0, -1 for usage, -2 for a bad name. */
int profile_arg(int argc, char **argv, const char **ret);
int load_profile(const char *name, struct config **config,
                 const struct profile **ret);
/* Opens the PROFILE operand's handle: 0, or the exit status. */
int open_handle(int argc, char **argv, struct ucaasauth **ret);

/* store.c */
int cmd_keygen(int argc, char **argv);
int cmd_store(int argc, char **argv);
/* show.c */
int cmd_header(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_flush(int argc, char **argv);
int cmd_check(int argc, char **argv);
/* reject.c */
int cmd_reject(int argc, char **argv);
int cmd_curl(int argc, char **argv);

#endif
