/* How cbx connects to NATS (workers, --remote, the cluster stores, workflow events, the nats
 * executor): the options live in the environment variables libcbx reads - NATS_URL, NATS_TOKEN,
 * NATS_USER, NATS_PASSWORD, NATS_CREDS, NATS_CA, NATS_CERT, NATS_KEY, NATS_TLS - set by the
 * flags below (which win), by the environment itself, or by the configuration file's nats:
 * section (which fills only what the environment lacks). */
#ifndef CBX_CLI_NATS_OPTS_H
#define CBX_CLI_NATS_OPTS_H

#include <jansson.h>

/* Option ids of the flags (past every subcommand's own). */
enum {
    CLI_OPT_NATS_TOKEN = 900,
    CLI_OPT_NATS_USER,
    CLI_OPT_NATS_PASSWORD,
    CLI_OPT_NATS_CREDS,
    CLI_OPT_NATS_CA,
    CLI_OPT_NATS_CERT,
    CLI_OPT_NATS_KEY,
    CLI_OPT_NATS_TLS,
};

/* The flags, for a subcommand's option table. */
#define CLI_OPTS_NATS                                                                              \
    {"nats-token", 0, 1, CLI_OPT_NATS_TOKEN}, {"nats-user", 0, 1, CLI_OPT_NATS_USER},              \
        {"nats-password", 0, 1, CLI_OPT_NATS_PASSWORD}, {"nats-creds", 0, 1, CLI_OPT_NATS_CREDS},  \
        {"nats-ca", 0, 1, CLI_OPT_NATS_CA}, {"nats-cert", 0, 1, CLI_OPT_NATS_CERT},                \
        {"nats-key", 0, 1, CLI_OPT_NATS_KEY},                                                      \
    {                                                                                              \
        "nats-tls", 0, 0, CLI_OPT_NATS_TLS                                                         \
    }

/* Their lines for a --help text. */
extern const char cli_nats_opts_help[];

/* 1 when id is one of the flags (its variable set from val), else 0. */
int cli_nats_option(int id, const char *val);

/* The configuration file's nats: mapping {url, token, user, password, creds, ca, cert, key, tls}:
 * each key's variable set where the environment lacks it (file: the configuration file, for
 * paths relative to it). 0, or -1 with a message in why (len bytes) and *bad the key at fault. */
int cli_nats_config(const json_t *section, const char *file, char *why, size_t len,
                    const char **bad);

#endif
