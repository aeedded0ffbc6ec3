# Runs one example program and checks what it printed: it must exit with
# status 0, write nothing a sanitizer would, and its standard output must
# match every regular expression given after the script. The output is
# echoed, so a failing CTest run shows it.
#
#   cmake -DPROGRAM=<executable> [-DPROGRAM_ARGS=<arg;...>] -P check_example.cmake <regex>...
#
# examples/CMakeLists.txt registers one such test per example.
cmake_minimum_required(VERSION 3.20)

if(NOT PROGRAM)
    message(FATAL_ERROR "check_example.cmake: pass -DPROGRAM=<executable>")
endif()

# The expressions are the arguments after `-P <script>`.
set(_expected "")
set(_first -1)
math(EXPR _last "${CMAKE_ARGC} - 1")
foreach(_i RANGE 1 ${_last})
    if(_first EQUAL -1 AND CMAKE_ARGV${_i} STREQUAL "-P")
        math(EXPR _first "${_i} + 2")
    elseif(NOT _first EQUAL -1 AND _i GREATER_EQUAL _first)
        list(APPEND _expected "${CMAKE_ARGV${_i}}")
    endif()
endforeach()

# A cross build runs the program through its emulator (a space-separated command).
separate_arguments(_emulator UNIX_COMMAND "${EMULATOR}")
execute_process(COMMAND ${_emulator} "${PROGRAM}" ${PROGRAM_ARGS}
                OUTPUT_VARIABLE _out
                ERROR_VARIABLE _err
                RESULT_VARIABLE _status)
message("---- ${PROGRAM} ${PROGRAM_ARGS}: standard output\n${_out}")
if(NOT _err STREQUAL "")
    message("---- standard error\n${_err}")
endif()

set(_failures "")
if(NOT _status STREQUAL "0")
    list(APPEND _failures "exit status ${_status}, expected 0")
endif()
if(_err MATCHES "Sanitizer|runtime error:")
    list(APPEND _failures "a sanitizer reported an error (see standard error)")
endif()
foreach(_regex IN LISTS _expected)
    if(NOT _out MATCHES "${_regex}")
        list(APPEND _failures "no output matches: ${_regex}")
    endif()
endforeach()

if(_failures)
    list(JOIN _failures "\n  " _report)
    message(FATAL_ERROR "check_example: ${PROGRAM}:\n  ${_report}")
endif()
list(LENGTH _expected _count)
message("check_example: exit status 0 and ${_count} expected output pattern(s) found")
