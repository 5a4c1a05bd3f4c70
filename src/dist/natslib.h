/* libnats, loaded when NATS is first used (the nats executor, a worker, a remote execution)
 * rather than when the program starts.
 *
 * As with libcurl (core/curl_lib.h), libcbx does not link libnats: a `cbx exec -- true`
 * should not load and relocate a NATS client (and its TLS libraries) it never uses. The first
 * use dlopens CBX_LIBNATS_SONAME and fills the table cbx__nats with the functions below; the
 * callers call them by their own names, which this header, included after <nats/nats.h>, maps
 * onto the table. The library is never
 * unloaded. Thread-safe: the load happens once (pthread_once).
 */
#ifndef CBX_DIST_NATSLIB_H
#define CBX_DIST_NATSLIB_H

#include <nats/nats.h>

#include "cbx/err.h"

/* X(name): a libnats function the executor calls. */
#define CBX__NATS_FUNCS(X)                                                                         \
    X(natsOptions_Create)                                                                          \
    X(natsOptions_Destroy)                                                                         \
    X(natsOptions_SetURL)                                                                          \
    X(natsOptions_SetToken)                                                                        \
    X(natsOptions_SetUserInfo)                                                                     \
    X(natsOptions_SetSecure)                                                                       \
    X(natsOptions_LoadCATrustedCertificates)                                                       \
    X(natsOptions_LoadCertificatesChain)                                                           \
    X(natsOptions_SetUserCredentialsFromFiles)                                                     \
    X(natsOptions_SetTimeout)                                                                      \
    X(natsOptions_SetName)                                                                         \
    X(natsOptions_SetMaxReconnect)                                                                 \
    X(natsOptions_SetRetryOnFailedConnect)                                                         \
    X(natsConnection_Connect)                                                                      \
    X(natsConnection_Destroy)                                                                      \
    X(natsConnection_Close)                                                                        \
    X(natsConnection_Status)                                                                       \
    X(natsConnection_IsClosed)                                                                     \
    X(natsConnection_PublishMsg)                                                                   \
    X(natsConnection_FlushTimeout)                                                                 \
    X(natsConnection_SubscribeSync)                                                                \
    X(natsSubscription_NextMsg)                                                                    \
    X(natsSubscription_AutoUnsubscribe)                                                            \
    X(natsSubscription_Destroy)                                                                    \
    X(natsInbox_Create)                                                                            \
    X(natsInbox_Destroy)                                                                           \
    X(natsMsg_Create)                                                                              \
    X(natsMsg_Destroy)                                                                             \
    X(natsMsg_GetData)                                                                             \
    X(natsMsg_GetDataLength)                                                                       \
    X(natsMsg_GetSubject)                                                                          \
    X(natsMsg_IsNoResponders)                                                                      \
    X(natsMsgHeader_Set)                                                                           \
    X(natsMsgHeader_Keys)                                                                          \
    X(natsMsgHeader_Get)                                                                           \
    X(natsStatus_GetText)                                                                          \
    X(nats_GetLastError)                                                                           \
    X(natsConnection_JetStream)                                                                    \
    X(jsOptions_Init)                                                                              \
    X(jsCtx_Destroy)                                                                               \
    X(jsPubOptions_Init)                                                                           \
    X(js_PublishMsg)                                                                               \
    X(jsPubAck_Destroy)                                                                            \
    X(js_KeyValue)                                                                                 \
    X(kvStore_Destroy)                                                                             \
    X(kvStore_Get)                                                                                 \
    X(kvEntry_Value)                                                                               \
    X(kvEntry_ValueLen)                                                                            \
    X(kvEntry_Revision)                                                                            \
    X(kvEntry_Destroy)                                                                             \
    X(kvStore_Put)                                                                                 \
    X(kvStore_Create)                                                                              \
    X(kvStore_Update)                                                                              \
    X(js_GetStreamInfo)                                                                            \
    X(jsStreamInfo_Destroy)                                                                        \
    X(jsStreamConfig_Init)                                                                         \
    X(js_AddStream)                                                                                \
    X(jsConsumerConfig_Init)                                                                       \
    X(js_AddConsumer)                                                                              \
    X(js_GetConsumerInfo)                                                                          \
    X(jsConsumerInfo_Destroy)                                                                      \
    X(jsSubOptions_Init)                                                                           \
    X(js_PullSubscribe)                                                                            \
    X(natsSubscription_Fetch)                                                                      \
    X(natsMsgList_Destroy)                                                                         \
    X(natsMsg_Ack)                                                                                 \
    X(natsMsg_NakWithDelay)                                                                        \
    X(natsMsg_Term)                                                                                \
    X(natsMsg_InProgress)                                                                          \
    X(natsMsg_GetMetaData)                                                                         \
    X(jsMsgMetaData_Destroy)                                                                       \
    X(kvConfig_Init)                                                                               \
    X(js_CreateKeyValue)                                                                           \
    X(natsConnection_Publish)                                                                      \
    X(natsConnection_Drain)                                                                        \
    X(kvStore_Keys)                                                                                \
    X(kvKeysList_Destroy)                                                                          \
    X(kvStore_Delete)                                                                              \
    X(natsConnection_PublishRequest)                                                               \
    X(js_PublishMsgAsync)                                                                          \
    X(natsOptions_SetSendAsap)                                                                     \
    X(natsOptions_SetEventLoop)                                                                    \
    X(natsConnection_ProcessReadEvent)                                                             \
    X(natsConnection_ProcessWriteEvent)                                                            \
    X(natsMsg_GetReply)                                                                            \
    X(natsConnection_Buffered)                                                                     \
    X(natsSubscription_QueuedMsgs)                                                                 \
    X(natsStatistics_Create)                                                                       \
    X(natsStatistics_GetCounts)                                                                    \
    X(natsStatistics_Destroy)                                                                      \
    X(natsConnection_GetStats)

typedef struct cbx__nats_api {
#define CBX__NATS_FIELD(name) __typeof__(name) *name;
    CBX__NATS_FUNCS(CBX__NATS_FIELD)
#undef CBX__NATS_FIELD
} cbx__nats_api;

/* Filled by cbx__nats_load; read only after it has returned 0. */
extern cbx__nats_api cbx__nats;

/* Load libnats and look up every function above, once per process; later calls return the
 * first call's answer. 0, or CBX_EPLUGIN with dlopen's or dlsym's reason in *err (may be NULL). */
int cbx__nats_load(cbx_err *err);

/* The text of a libnats failure: the library's last error on this thread when it is about s,
 * else the status's own text. Static or thread-local storage. libnats must be loaded. */
const char *cbx__nats_why(natsStatus s);

#ifndef CBX__NATSLIB_NO_MACROS
#define natsOptions_Create                    cbx__nats.natsOptions_Create
#define natsOptions_Destroy                   cbx__nats.natsOptions_Destroy
#define natsOptions_SetURL                    cbx__nats.natsOptions_SetURL
#define natsOptions_SetToken                  cbx__nats.natsOptions_SetToken
#define natsOptions_SetUserInfo               cbx__nats.natsOptions_SetUserInfo
#define natsOptions_SetSecure                 cbx__nats.natsOptions_SetSecure
#define natsOptions_LoadCATrustedCertificates cbx__nats.natsOptions_LoadCATrustedCertificates
#define natsOptions_SetTimeout                cbx__nats.natsOptions_SetTimeout
#define natsOptions_SetName                   cbx__nats.natsOptions_SetName
#define natsOptions_SetMaxReconnect           cbx__nats.natsOptions_SetMaxReconnect
#define natsOptions_SetRetryOnFailedConnect   cbx__nats.natsOptions_SetRetryOnFailedConnect
#define natsConnection_Connect                cbx__nats.natsConnection_Connect
#define natsConnection_Destroy                cbx__nats.natsConnection_Destroy
#define natsConnection_Close                  cbx__nats.natsConnection_Close
#define natsConnection_Status                 cbx__nats.natsConnection_Status
#define natsConnection_IsClosed               cbx__nats.natsConnection_IsClosed
#define natsConnection_PublishMsg             cbx__nats.natsConnection_PublishMsg
#define natsConnection_FlushTimeout           cbx__nats.natsConnection_FlushTimeout
#define natsConnection_SubscribeSync          cbx__nats.natsConnection_SubscribeSync
#define natsSubscription_NextMsg              cbx__nats.natsSubscription_NextMsg
#define natsSubscription_AutoUnsubscribe      cbx__nats.natsSubscription_AutoUnsubscribe
#define natsSubscription_Destroy              cbx__nats.natsSubscription_Destroy
#define natsInbox_Create                      cbx__nats.natsInbox_Create
#define natsInbox_Destroy                     cbx__nats.natsInbox_Destroy
#define natsMsg_Create                        cbx__nats.natsMsg_Create
#define natsMsg_Destroy                       cbx__nats.natsMsg_Destroy
#define natsMsg_GetData                       cbx__nats.natsMsg_GetData
#define natsMsg_GetDataLength                 cbx__nats.natsMsg_GetDataLength
#define natsMsg_GetSubject                    cbx__nats.natsMsg_GetSubject
#define natsMsg_IsNoResponders                cbx__nats.natsMsg_IsNoResponders
#define natsMsgHeader_Set                     cbx__nats.natsMsgHeader_Set
#define natsMsgHeader_Keys                    cbx__nats.natsMsgHeader_Keys
#define natsMsgHeader_Get                     cbx__nats.natsMsgHeader_Get
#define natsStatus_GetText                    cbx__nats.natsStatus_GetText
#define nats_GetLastError                     cbx__nats.nats_GetLastError
#define natsConnection_JetStream              cbx__nats.natsConnection_JetStream
#define jsOptions_Init                        cbx__nats.jsOptions_Init
#define jsCtx_Destroy                         cbx__nats.jsCtx_Destroy
#define jsPubOptions_Init                     cbx__nats.jsPubOptions_Init
#define js_PublishMsg                         cbx__nats.js_PublishMsg
#define jsPubAck_Destroy                      cbx__nats.jsPubAck_Destroy
#define js_KeyValue                           cbx__nats.js_KeyValue
#define kvStore_Destroy                       cbx__nats.kvStore_Destroy
#define kvStore_Get                           cbx__nats.kvStore_Get
#define kvEntry_Value                         cbx__nats.kvEntry_Value
#define kvEntry_ValueLen                      cbx__nats.kvEntry_ValueLen
#define kvEntry_Revision                      cbx__nats.kvEntry_Revision
#define kvEntry_Destroy                       cbx__nats.kvEntry_Destroy
#define kvStore_Put                           cbx__nats.kvStore_Put
#define kvStore_Create                        cbx__nats.kvStore_Create
#define kvStore_Update                        cbx__nats.kvStore_Update
#define js_GetStreamInfo                      cbx__nats.js_GetStreamInfo
#define jsStreamInfo_Destroy                  cbx__nats.jsStreamInfo_Destroy
#define jsStreamConfig_Init                   cbx__nats.jsStreamConfig_Init
#define js_AddStream                          cbx__nats.js_AddStream
#define jsConsumerConfig_Init                 cbx__nats.jsConsumerConfig_Init
#define js_AddConsumer                        cbx__nats.js_AddConsumer
#define js_GetConsumerInfo                    cbx__nats.js_GetConsumerInfo
#define jsConsumerInfo_Destroy                cbx__nats.jsConsumerInfo_Destroy
#define jsSubOptions_Init                     cbx__nats.jsSubOptions_Init
#define js_PullSubscribe                      cbx__nats.js_PullSubscribe
#define natsSubscription_Fetch                cbx__nats.natsSubscription_Fetch
#define natsMsgList_Destroy                   cbx__nats.natsMsgList_Destroy
#define natsMsg_Ack                           cbx__nats.natsMsg_Ack
#define natsMsg_NakWithDelay                  cbx__nats.natsMsg_NakWithDelay
#define natsMsg_Term                          cbx__nats.natsMsg_Term
#define natsMsg_InProgress                    cbx__nats.natsMsg_InProgress
#define natsMsg_GetMetaData                   cbx__nats.natsMsg_GetMetaData
#define jsMsgMetaData_Destroy                 cbx__nats.jsMsgMetaData_Destroy
#define kvConfig_Init                         cbx__nats.kvConfig_Init
#define js_CreateKeyValue                     cbx__nats.js_CreateKeyValue
#define natsConnection_Publish                cbx__nats.natsConnection_Publish
#define natsConnection_Drain                  cbx__nats.natsConnection_Drain
#define kvStore_Keys                          cbx__nats.kvStore_Keys
#define kvKeysList_Destroy                    cbx__nats.kvKeysList_Destroy
#define kvStore_Delete                        cbx__nats.kvStore_Delete
#define natsConnection_PublishRequest         cbx__nats.natsConnection_PublishRequest
#define js_PublishMsgAsync                    cbx__nats.js_PublishMsgAsync
#define natsOptions_SetSendAsap               cbx__nats.natsOptions_SetSendAsap
#define natsOptions_SetEventLoop              cbx__nats.natsOptions_SetEventLoop
#define natsConnection_ProcessReadEvent       cbx__nats.natsConnection_ProcessReadEvent
#define natsConnection_ProcessWriteEvent      cbx__nats.natsConnection_ProcessWriteEvent
#define natsMsg_GetReply                      cbx__nats.natsMsg_GetReply
#define natsConnection_Buffered               cbx__nats.natsConnection_Buffered
#define natsSubscription_QueuedMsgs           cbx__nats.natsSubscription_QueuedMsgs
#define natsStatistics_Create                 cbx__nats.natsStatistics_Create
#define natsStatistics_GetCounts              cbx__nats.natsStatistics_GetCounts
#define natsStatistics_Destroy                cbx__nats.natsStatistics_Destroy
#define natsConnection_GetStats               cbx__nats.natsConnection_GetStats

#define natsOptions_LoadCertificatesChain       cbx__nats.natsOptions_LoadCertificatesChain
#define natsOptions_SetUserCredentialsFromFiles cbx__nats.natsOptions_SetUserCredentialsFromFiles
#endif

#endif
