# The single header needs nothing but a C++20 compiler and -pthread:
# compiles tests/consumers/cmake_consumer/main.cpp against it alone and runs
# it (through EMULATOR when cross-compiling). Then checks that the header
# leaks no macro of its own beyond the documented WEFT_VERSION ones.
#   cmake -DCOMPILER=... -DSOURCE_DIR=... -DBINARY_DIR=... [-DEMULATOR=...] -P single_header.cmake
set(_program "${BINARY_DIR}/single_header_consumer")
execute_process(COMMAND "${COMPILER}" -std=c++20 -pthread -I "${SOURCE_DIR}/single_include"
                        "${SOURCE_DIR}/tests/consumers/cmake_consumer/main.cpp" -o "${_program}"
                RESULT_VARIABLE _status ERROR_VARIABLE _err)
if(NOT _status EQUAL 0)
    message(FATAL_ERROR "the single header did not compile with `${COMPILER} -std=c++20 -pthread`:\n${_err}")
endif()
separate_arguments(_emulator UNIX_COMMAND "${EMULATOR}") # a space-separated command
execute_process(COMMAND ${_emulator} "${_program}" RESULT_VARIABLE _status OUTPUT_VARIABLE _out)
if(NOT _status EQUAL 0 OR NOT _out MATCHES "weft [0-9.]+: 42")
    message(FATAL_ERROR "the single-header program failed (${_status}): ${_out}")
endif()

file(WRITE "${BINARY_DIR}/macros.cpp" "#include <weft/weft.hpp>\n")
execute_process(COMMAND "${COMPILER}" -std=c++20 -dM -E -I "${SOURCE_DIR}/single_include" "${BINARY_DIR}/macros.cpp"
                RESULT_VARIABLE _status OUTPUT_VARIABLE _macros)
string(REGEX MATCHALL "#define [A-Za-z_]*[Ww][Ee][Ff][Tt][A-Za-z0-9_]*" _ours "${_macros}")
set(_allowed "#define WEFT_VERSION" "#define WEFT_VERSION_MAJOR" "#define WEFT_VERSION_MINOR"
             "#define WEFT_VERSION_PATCH")
list(REMOVE_ITEM _ours ${_allowed})
if(_ours)
    message(FATAL_ERROR "the single header leaks macros: ${_ours}")
endif()
message(STATUS "single header: compiles alone, runs, defines only the WEFT_VERSION macros")
