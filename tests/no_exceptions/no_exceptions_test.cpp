// Built with -fno-exceptions -fno-rtti: the runtime works, and misuse goes
// to the panic handler with the same message a weft::error would carry.
// No Catch2 here (it needs exceptions): the program exits non-zero on the
// first failed check.
#include <weft/weft.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../support/util.hpp"

namespace {

int checks = 0;
int failures = 0;

void check(bool ok, const char* what) {
    ++checks;
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

weft::task<int> child(int x) {
    co_await weft::yield_now();
    co_return 2 * x;
}

weft::task<int> root() {
    auto h = weft::spawn(child(21));
    co_return co_await h;
}

// Timers and timeouts report through weft::result, not exceptions.
weft::task<int> timers() {
    using namespace std::chrono_literals;
    int ok = 0;
    ok += (co_await weft::sleep_for(1ms)).has_value() ? 1 : 0;
    auto late = co_await weft::timeout(1ms, weft::sleep_for(1h));
    ok += !late && late.error() == weft::errc::timed_out ? 1 : 0;
    auto in_time = co_await weft::timeout(1h, child(4));
    ok += in_time && *in_time == 8 ? 1 : 0;
    co_return ok;
}

// A frame pool whose only class fits no frame, set to fail.
struct no_room : weft::default_options {
    static constexpr bool use_frame_pool = true;
    static constexpr std::array<weft::frame_pool_class, 1> frame_pool_classes{{{16, 1}}};
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::fail;
};

struct pooled : weft::default_options {
    static constexpr bool use_frame_pool = true;
};

// Runs `misuse` in a child process whose panic handler reports the code and
// message through a pipe; checks both.
template <class F>
void expect_panic(F misuse, weft::errc code, const char* fragment) {
    const weft_test::child_report report = weft_test::run_in_child([&misuse](int fd) {
        weft_test::panic_report_fd = fd;
        weft::set_panic_handler(&weft_test::report_panic_and_exit);
        misuse(); // returning means it did not panic: the child exits with 0
    });
    check(report.exit_code == 42, "the misuse reached the panic handler");
    check(std::atoi(report.text.c_str()) == static_cast<int>(code), "the panic carries the weft::errc");
    check(report.text.find(fragment) != std::string::npos, "the panic message says what happened");
}

} // namespace

int main() {
    {
        weft::executor<2, 64> ex;
        check(ex.block_on(root()) == 42, "block_on runs tasks without exceptions");
        check(ex.block_on(timers()) == 3, "sleep and timeout work without exceptions");
    }
    {
        weft::executor<2, 64, pooled> ex;
        check(ex.block_on(root()) == 42, "tasks run with the frame pool without exceptions");
    }
    expect_panic(
        [] {
            weft::result<int> nothing = weft::errc::timed_out;
            (void)nothing.value();
        },
        weft::errc::timed_out, "result::value() called on an error");
    expect_panic([] { (void)weft::spawn(child(1)); }, weft::errc::no_current_executor,
                 "outside any executor");
    expect_panic(
        [] {
            weft::executor<1, 64> ex;
            auto nested = [&ex]() -> weft::task<int> { co_return ex.block_on(child(1)); };
            (void)ex.block_on(nested());
        },
        weft::errc::nested_runtime, "cannot start a runtime from within a runtime");
    expect_panic(
        [] {
            weft::executor<1, 64> ex;
            ex.shutdown();
            (void)ex.spawn(child(1));
        },
        weft::errc::executor_shut_down, "shut down");
    expect_panic(
        [] {
            weft::settings s;
            s.worker_scheduling = {weft::sched_policy::fifo, 1000};
            weft::executor<1, 64> ex(s);
        },
        weft::errc::invalid_argument, "priority 1000 is out of range for SCHED_FIFO");
    expect_panic(
        [] {
            weft::executor<1, 64, no_room> ex;
            (void)ex.spawn([] { return 1; });
        },
        weft::errc::capacity_exhausted, "frame pool");
    std::printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
