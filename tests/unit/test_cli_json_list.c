/* cli_json_list (cli/output.c) prints an array item by item as cli_print_json prints it whole:
 * the same bytes, for empty arrays, flat items and nested ones. */
#include "../../cli/output.c"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static char *printed(const json_t *arr, int streamed)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    if (streamed) {
        cli_json_list l;
        cli_json_list_begin(&l, f);
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) cr_assert_eq(cli_json_list_add(&l, v), 0);
        cr_assert_eq(cli_json_list_end(&l), 0);
    } else {
        cr_assert_eq(cli_print_json(f, arr), 0);
    }
    fclose(f);
    return buf;
}

static void same_as_whole(const char *text)
{
    json_error_t e;
    json_t *arr = json_loads(text, 0, &e);
    cr_assert_not_null(arr, "%s: %s", text, e.text);
    char *whole = printed(arr, 0), *streamed = printed(arr, 1);
    cr_assert_str_eq(streamed, whole);
    free(whole);
    free(streamed);
    json_decref(arr);
}

Test(cli_json_list, the_same_text_as_the_whole_array)
{
    same_as_whole("[]");
    same_as_whole("[1]");
    same_as_whole("[null, true, \"a\\nb\", 0.1, 13.918297]");
    same_as_whole("[{}, [], {\"a\": {\"b\": [1, {\"c\": []}]}, \"d\": \"x\\ny\"}]");
    same_as_whole("[{\"id\": \"e1\", \"params\": {\"argv\": [\"sh\", \"-c\", \"echo\"]},"
                  " \"outputs\": {\"stdout\": \"line\\n\"}}, {\"id\": \"e2\"}]");
}
