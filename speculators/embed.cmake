# Turns the shipped model file into a C++ source (a byte array), so the
# library carries its model and a fresh build needs no data files.
#   cmake -DINPUT=model.json -DOUTPUT=shipped_model.cpp -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" len)
math(EXPR bytes "${len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" body "${body}")
file(WRITE "${OUTPUT}.tmp"
"// Generated from speculators/model/builtin.json by speculators/embed.cmake. Do not edit.\n"
"#include <string_view>\n"
"namespace specula::speculators {\n"
"namespace {\n"
"const unsigned char kShippedModel[] = {\n${body}0x00};\n"
"}  // namespace\n"
"std::string_view ShippedModelText() {\n"
"  return std::string_view(reinterpret_cast<const char*>(kShippedModel), ${bytes});\n"
"}\n"
"}  // namespace specula::speculators\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
