// The rows of docs/errors.md that no other test file covers: arguments a
// constructor refuses, and a result's value asked for on an error.
#include <weft/weft.hpp>

#include <cstring>

#include <unistd.h>

#include "support/catch.hpp"
#include "support/util.hpp"

using namespace std::chrono_literals;

#if defined(__cpp_exceptions) // every case checks what a throw reports
using weft_test::raised;

TEST_CASE("a barrier of zero participants is invalid_argument", "[errors]") {
    REQUIRE(raised([] { weft::barrier b(0); }) == weft::errc::invalid_argument);
}

TEST_CASE("an interval with a zero or negative period is invalid_argument", "[errors]") {
    REQUIRE(raised([] { weft::interval i(0ms); }) == weft::errc::invalid_argument);
    REQUIRE(raised([] { weft::interval i(-5ms); }) == weft::errc::invalid_argument);
}

TEST_CASE("result::value() on an error raises that error, with a message saying what to check", "[errors]") {
    const weft::result<int> failed = weft::errc::timed_out;
    REQUIRE_FALSE(failed.has_value());
    try {
        (void)failed.value();
        FAIL("value() of an error returned");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::timed_out);
        REQUIRE(std::strstr(e.what(), "check has_value() first") != nullptr);
    }
}

TEST_CASE("an executor destroyed by one of its own tasks panics with a message", "[errors]") {
#if defined(WEFT_TEST_TSAN)
    SUCCEED("skipped under TSan: it does not support threads started in a forked child");
    return;
#endif
    // The panic ends the process: in a child, with the message on a pipe.
    const weft_test::child_report child = weft_test::run_in_child([](int fd) {
        weft_test::panic_report_fd = fd;
        weft::set_panic_handler(&weft_test::report_panic_and_exit);
        auto* ex = new weft::executor<1>();
        ex->spawn([ex] { delete ex; }).detach();
        ::pause();
    });
    REQUIRE(child.exit_code == 42); // the handler ran
    REQUIRE(child.text.find("destroyed by one of its own tasks") != std::string::npos);
}
#endif
