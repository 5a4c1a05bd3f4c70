/* libpq, loaded when the postgres executor is first used rather than when the program starts
 * (as core/curl_lib.h does for libcurl): libpq brings TLS, Kerberos and LDAP libraries
 * with it, which a `cbx --version` or a shell command has no use for.
 *
 * cbx__pq_load dlopens CBX_LIBPQ_SONAME (libpq.so.5) once and looks up the functions below into
 * the table cbx__pq; after this header, PQxxx(...) in the including file calls cbx__pq.xxx. Only
 * libpq's headers (libpq-dev) are needed at build time. Thread-safe (pthread_once); the library
 * is never unloaded.
 */
#ifndef CBX_EXECUTORS_DB_PQ_LIB_H
#define CBX_EXECUTORS_DB_PQ_LIB_H

#include <libpq-fe.h>

#include "cbx/err.h"

#define CBX__PQ_FUNCS(X)                                                                           \
    X(connectStartParams)                                                                          \
    X(connectPoll)                                                                                 \
    X(status)                                                                                      \
    X(socket)                                                                                      \
    X(errorMessage)                                                                                \
    X(finish)                                                                                      \
    X(setnonblocking)                                                                              \
    X(sendQueryParams)                                                                             \
    X(sendPrepare)                                                                                 \
    X(sendQueryPrepared)                                                                           \
    X(flush)                                                                                       \
    X(consumeInput)                                                                                \
    X(isBusy)                                                                                      \
    X(getResult)                                                                                   \
    X(resultStatus)                                                                                \
    X(resultErrorField)                                                                            \
    X(resultErrorMessage)                                                                          \
    X(clear)                                                                                       \
    X(ntuples)                                                                                     \
    X(nfields)                                                                                     \
    X(fname)                                                                                       \
    X(ftype)                                                                                       \
    X(getvalue)                                                                                    \
    X(getisnull)                                                                                   \
    X(getlength)                                                                                   \
    X(cmdStatus)                                                                                   \
    X(cmdTuples)                                                                                   \
    X(getCancel)                                                                                   \
    X(cancel)                                                                                      \
    X(freeCancel)                                                                                  \
    X(conninfoParse)                                                                               \
    X(conninfoFree)                                                                                \
    X(transactionStatus)                                                                           \
    X(notifies)                                                                                    \
    X(freemem)                                                                                     \
    X(backendPID)                                                                                  \
    X(setNoticeReceiver)

typedef struct cbx__pq_api {
#define CBX__PQ_FIELD(name) __typeof__(PQ##name) *name;
    CBX__PQ_FUNCS(CBX__PQ_FIELD)
#undef CBX__PQ_FIELD
} cbx__pq_api;

/* Filled by cbx__pq_load; read only after it has returned 0. */
extern cbx__pq_api cbx__pq;

/* Load libpq once per process; later calls return the first call's answer. 0, or CBX_EPLUGIN
 * with dlopen's or dlsym's reason in *err (err may be NULL). */
int cbx__pq_load(cbx_err *err);

#define PQconnectStartParams cbx__pq.connectStartParams
#define PQconnectPoll        cbx__pq.connectPoll
#define PQstatus             cbx__pq.status
#define PQsocket             cbx__pq.socket
#define PQerrorMessage       cbx__pq.errorMessage
#define PQfinish             cbx__pq.finish
#define PQsetnonblocking     cbx__pq.setnonblocking
#define PQsendQueryParams    cbx__pq.sendQueryParams
#define PQsendPrepare        cbx__pq.sendPrepare
#define PQsendQueryPrepared  cbx__pq.sendQueryPrepared
#define PQflush              cbx__pq.flush
#define PQconsumeInput       cbx__pq.consumeInput
#define PQisBusy             cbx__pq.isBusy
#define PQgetResult          cbx__pq.getResult
#define PQresultStatus       cbx__pq.resultStatus
#define PQresultErrorField   cbx__pq.resultErrorField
#define PQresultErrorMessage cbx__pq.resultErrorMessage
#define PQclear              cbx__pq.clear
#define PQntuples            cbx__pq.ntuples
#define PQnfields            cbx__pq.nfields
#define PQfname              cbx__pq.fname
#define PQftype              cbx__pq.ftype
#define PQgetvalue           cbx__pq.getvalue
#define PQgetisnull          cbx__pq.getisnull
#define PQgetlength          cbx__pq.getlength
#define PQcmdStatus          cbx__pq.cmdStatus
#define PQcmdTuples          cbx__pq.cmdTuples
#define PQgetCancel          cbx__pq.getCancel
#define PQcancel             cbx__pq.cancel
#define PQfreeCancel         cbx__pq.freeCancel
#define PQconninfoParse      cbx__pq.conninfoParse
#define PQconninfoFree       cbx__pq.conninfoFree
#define PQtransactionStatus  cbx__pq.transactionStatus
#define PQnotifies           cbx__pq.notifies
#define PQfreemem            cbx__pq.freemem
#define PQbackendPID         cbx__pq.backendPID
#define PQsetNoticeReceiver  cbx__pq.setNoticeReceiver

#endif
