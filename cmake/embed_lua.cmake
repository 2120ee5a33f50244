# Writes OUT, a C file that embeds each Lua script of SCRIPTS (a ;-list of
# paths) as a struct exw_script named exw_lua_<name>, with its SHA-1 (what
# EVALSHA takes), byte for byte as the file holds it.
# Run as: cmake -DOUT=... -DSCRIPTS=... -P embed_lua.cmake
set(body "/* Generated from the scripts of common/lua/ by cmake/embed_lua.cmake: do not edit. */\n")
string(APPEND body "#include \"exw/scripts.h\"\n\n#include <string.h>\n")
set(table "")
foreach(path ${SCRIPTS})
  get_filename_component(name ${path} NAME_WE)
  file(READ ${path} hex HEX)
  file(SHA1 ${path} sha)
  file(SIZE ${path} size)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
  # Break the literal every 64 bytes so that the generated lines stay short.
  string(REGEX REPLACE "((\\\\x[0-9a-f][0-9a-f]){64})" "\\1\"\n    \"" escaped "${escaped}")
  string(APPEND body "\nconst struct exw_script exw_lua_${name} = {\n")
  string(APPEND body "    \"${name}\",\n    \"${escaped}\",\n    ${size},\n    \"${sha}\",\n};\n")
  string(APPEND table "    &exw_lua_${name},\n")
endforeach()
string(APPEND body "\nstatic const struct exw_script *const all[] = {\n${table}};\n")
string(APPEND body "\nconst struct exw_script *exw_script_by_sha1(const char *sha1)\n{\n")
string(APPEND body "    size_t i;\n\n    for (i = 0; i < sizeof(all) / sizeof(*all); i++) {\n")
string(APPEND body "        if (strcmp(all[i]->sha1, sha1) == 0)\n            return all[i];\n    }\n")
string(APPEND body "    return NULL;\n}\n")
file(WRITE ${OUT}.tmp "${body}")
# Touch the output only when it changes, so that a rebuild stays incremental.
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
