# Turns a text file into a C string constant (gat_std_source) without needing
# xxd: bytes are written as hex escapes, 32 per line.
file(READ "${IN}" HEX HEX)
string(LENGTH "${HEX}" N)
set(BODY "")
set(I 0)
while(I LESS N)
  string(SUBSTRING "${HEX}" ${I} 64 CHUNK)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" CHUNK "${CHUNK}")
  string(APPEND BODY "  \"${CHUNK}\"\n")
  math(EXPR I "${I} + 64")
endwhile()
file(WRITE "${OUT}" "/* generated from std.gat by cmake/embed.cmake; do not edit */\nconst char gat_std_source[] =\n${BODY}  \"\";\n")
