/* The dynamodb executor: DynamoDB's JSON API (DynamoDB_20120810) over HTTP, requests signed with
 * SigV4 by libcurl (CURLOPT_AWS_SIGV4), sent through the http executor's machinery - a curl multi
 * handle driven by the runtime's loop (executors/http.h), a context of this type's own per
 * runtime - with item attributes converted between plain JSON and DynamoDB's typed values.
 *
 * Files: dynamodb.c (the type, requests, responses, pagination), ddb_attr.c (values).
 */
#ifndef CBX_EXECUTORS_DB_DDB_H
#define CBX_EXECUTORS_DB_DDB_H

#include <jansson.h>

/* A plain JSON value as a DynamoDB AttributeValue (new reference; NULL when out of memory):
 * null {"NULL": true}, booleans {"BOOL"}, numbers {"N": "text"}, strings {"S"}, arrays {"L"},
 * objects {"M"}. */
json_t *cbx__ddb_to_attr(const json_t *v);
/* An object of plain values as a map of AttributeValues (an item, a key, the values of
 * expression_attribute_values). NULL when out of memory. */
json_t *cbx__ddb_to_item(const json_t *obj);
/* An AttributeValue as plain JSON: S strings, N numbers (integers when they are), BOOL, NULL,
 * L arrays, M objects, SS/NS/BS arrays, B its base64 text. Unknown shapes are copied as they
 * are. New reference; NULL when out of memory. */
json_t *cbx__ddb_from_attr(const json_t *av);
/* A map of AttributeValues (an item) as a plain object. */
json_t *cbx__ddb_from_item(const json_t *item);

#endif
