/* Asking the results bucket whether a job's result is stored, without waiting for the answer: a
 * worker asks for each job it is given before running it (a job whose result is stored is not run
 * again), and reads the answers as they come, on its loop. */
#ifndef CBX_DIST_RESULTS_LOOKUP_H
#define CBX_DIST_RESULTS_LOOKUP_H

#include "dist/natslib.h"

/* Ask the server on nc for id's stored result, the answer to come to reply: a JetStream direct
 * get of the last message on the key's subject when direct, else the stream's message-get API (a
 * bucket made without direct gets). The publish's status. */
natsStatus cbx__lookup_ask(natsConnection *nc, const char *id, const char *reply, int direct);

/* What m, the answer to a cbx__lookup_ask with the same direct, says: 1 the result is stored
 * (*text: it, malloc'd and NUL-terminated; the caller frees it), 0 no result (none, a deleted
 * key, or an answer that is not understood), -1 the server has no direct gets on the bucket (ask
 * again with direct = 0). */
int cbx__lookup_answer(natsMsg *m, int direct, char **text);

/* 1 when id can be a key of the results bucket: 1 to 39 of [-/_=.A-Za-z0-9], not starting or
 * ending with '.'. */
int cbx__lookup_key_ok(const char *id);

#endif
