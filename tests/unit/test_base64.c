/* Base64: RFC 4648's test vectors both ways, bytes that are not text, and decoding that skips
 * what is not in the alphabet. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"

static const char *const vectors[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

Test(base64, rfc4648_vectors_both_ways)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *e = cbx__base64_encode(vectors[i][0], strlen(vectors[i][0]));
        cr_assert_str_eq(e, vectors[i][1]);
        free(e);
        unsigned char *d = NULL;
        size_t n = 0;
        cr_assert_eq(cbx__base64_decode(vectors[i][1], &d, &n), 0);
        cr_assert_eq(n, strlen(vectors[i][0]));
        cr_assert_str_eq((char *)d, vectors[i][0]);
        free(d);
    }
}

Test(base64, any_bytes_round_trip)
{
    unsigned char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= sizeof in; len += 37) {
        char *e = cbx__base64_encode(in, len);
        cr_assert_eq(strlen(e), (len + 2) / 3 * 4);
        unsigned char *d = NULL;
        size_t n = 0;
        cr_assert_eq(cbx__base64_decode(e, &d, &n), 0);
        cr_assert_eq(n, len);
        cr_assert_eq(memcmp(d, in, len), 0);
        free(d);
        free(e);
    }
}

Test(base64, decoding_skips_line_breaks_and_spaces)
{
    unsigned char *d = NULL;
    size_t n = 0;
    cr_assert_eq(cbx__base64_decode("Zm9v\nYmFy \r\n", &d, &n), 0);
    cr_assert_eq(n, 6);
    cr_assert_str_eq((char *)d, "foobar");
    free(d);
}
