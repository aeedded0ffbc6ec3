# Compiles one snippet that must not compile, and checks that the compiler
# said why in the words of weft's static_assert: the snippet's first line is
# `// expect: <text>`. Run by CTest:
#   cmake -DCOMPILER=... -DINCLUDE=... -DSOURCE=... -P check.cmake
file(STRINGS "${SOURCE}" _first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" _expect "${_first}")
if(_expect STREQUAL _first OR _expect STREQUAL "")
    message(FATAL_ERROR "${SOURCE}: the first line must be `// expect: <what the compiler says>`")
endif()
execute_process(COMMAND "${COMPILER}" -std=c++20 -fsyntax-only -I "${INCLUDE}" "${SOURCE}"
                RESULT_VARIABLE _status OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(_status EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but it must not")
endif()
string(FIND "${_out}${_err}" "${_expect}" _at)
if(_at EQUAL -1)
    message(FATAL_ERROR "${SOURCE} failed to compile, but not with \"${_expect}\":\n${_out}${_err}")
endif()
message(STATUS "${SOURCE}: refused with \"${_expect}\"")
