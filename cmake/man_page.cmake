# Writes the man page OUT of the program BIN with help2man, from its --help
# and --version, so that the page cannot drift from them. NAME is the
# one-line description. For a program with COMMANDS (a ;-list), the --help
# of each command goes in a COMMANDS section, without the lines from COMMON
# on, which every command's --help repeats. SEE_ALSO is that section's text.
# Run as: cmake -DBIN=... -DOUT=... -DNAME=... -DVERSION=... [-DCOMMANDS=...]
#               [-DCOMMON=...] [-DSEE_ALSO=...] -DHELP2MAN=... -P man_page.cmake
set(inc "${OUT}.h2m")
file(WRITE ${inc} "")
if(COMMANDS)
  file(APPEND ${inc} "[COMMANDS]\n")
  foreach(cmd ${COMMANDS})
    execute_process(COMMAND ${BIN} ${cmd} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${BIN} ${cmd} --help exited ${rc}")
    endif()
    if(COMMON)
      string(FIND "${text}" "${COMMON}" at)
      if(at GREATER -1)
        string(SUBSTRING "${text}" 0 ${at} text)
      endif()
    endif()
    # roff: a backslash is \e; a line may not begin with . or '.
    string(REPLACE "\\" "\\e" text "${text}")
    string(REGEX REPLACE "\n([.'])" "\n\\\\&\\1" text "${text}")
    file(APPEND ${inc} ".SS ${cmd}\n.nf\n${text}.fi\n")
  endforeach()
endif()
if(SEE_ALSO)
  file(APPEND ${inc} "[SEE ALSO]\n${SEE_ALSO}\n")
endif()
execute_process(
  COMMAND ${HELP2MAN} --no-info --name=${NAME} --version-string=${VERSION} --include=${inc}
          --output=${OUT} ${BIN}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed for ${BIN}")
endif()
