# cmake -DINPUT=<file> -DOUTPUT=<cpp> -DSYMBOL=<name> -P embed_binary.cmake
# Writes a C++ source defining `const unsigned char SYMBOL[]` and
# `const size_t SYMBOL_size` in namespace specula::sandbox.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUTPUT}"
  "// Generated from ${INPUT} by embed_binary.cmake. Do not edit.\n"
  "#include <cstddef>\n"
  "namespace specula::sandbox {\n"
  "extern const unsigned char ${SYMBOL}[] = {${bytes}};\n"
  "extern const size_t ${SYMBOL}_size = sizeof(${SYMBOL});\n"
  "}  // namespace specula::sandbox\n")
