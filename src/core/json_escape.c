/* JSON string escapes, one byte at a time. */
#include "core/json_escape.h"

size_t cbx__json_escape(unsigned char c, char out[7], int upper)
{
    if (c >= 0x20 && c != '"' && c != '\\')
        return 0;
    const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    out[0] = '\\';
    switch (c) {
    case '"':
    case '\\':
        out[1] = (char)c;
        return 2;
    case '\b':
        out[1] = 'b';
        return 2;
    case '\f':
        out[1] = 'f';
        return 2;
    case '\n':
        out[1] = 'n';
        return 2;
    case '\r':
        out[1] = 'r';
        return 2;
    case '\t':
        out[1] = 't';
        return 2;
    default:
        out[1] = 'u';
        out[2] = '0';
        out[3] = '0';
        out[4] = hex[c >> 4];
        out[5] = hex[c & 15];
        return 6;
    }
}
