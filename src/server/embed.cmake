# Turn a file into a C source defining `const char *const NAME` (NUL-terminated) and `NAME_len`.
# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* generated from ${IN} by embed.cmake */\n#include <stddef.h>\nstatic const unsigned char bytes[] = {\n${body}0x00};\nextern const char *const ${NAME};\nextern const size_t ${NAME}_len;\nconst char *const ${NAME} = (const char *)bytes;\nconst size_t ${NAME}_len = ${len};\n")
