// An executor used in a child process after fork() (where its threads do
// not exist) raises errc::used_after_fork instead of hanging, its
// destructor returns at once there, a new executor in the child works, and
// the parent's executor is unaffected.
#include <weft/weft.hpp>

#include <csignal>
#include <cstdlib>
#include <unistd.h>

#include <sys/wait.h>

#include "support/catch.hpp"
#include "support/util.hpp"

#if defined(__cpp_exceptions) // every case checks what a throw reports
namespace {

template <class F>
bool raises_used_after_fork(F f) {
    return weft_test::raised(f) == weft::errc::used_after_fork;
}

} // namespace

TEST_CASE("an executor used in a forked child raises used_after_fork; the parent's keeps working",
          "[fork][errors]") {
    weft::executor<2, 64> ex;
    REQUIRE(ex.spawn([] { return 1; }).get() == 1);
    weft::notify never;
    auto waiting = ex.spawn([&never]() -> weft::task<void> { co_await never.notified(); });

    const weft_test::child_report child = weft_test::run_in_child([&] {
        int failures = 0;
        failures += raises_used_after_fork([&] { (void)ex.spawn([] {}); }) ? 0 : 1;
        failures += raises_used_after_fork([&] { (void)ex.spawn_pinned(0, [] {}); }) ? 0 : 2;
        failures +=
            raises_used_after_fork([&] { (void)ex.block_on([]() -> weft::task<int> { co_return 1; }()); })
                ? 0
                : 4;
        failures += raises_used_after_fork([&] { (void)ex.spawn_blocking([] {}); }) ? 0 : 8;
        failures += raises_used_after_fork([&] { waiting.get(); }) ? 0 : 16;
        failures += raises_used_after_fork([&] { ex.shutdown(); }) ? 0 : 32;
#if !defined(WEFT_TEST_TSAN) &&                                                                              \
    !defined(WEFT_TEST_EMULATED) // neither TSan nor qemu-user starts threads in a forked child
        {
            weft::executor<2, 64> fresh;
            failures += fresh.block_on([]() -> weft::task<int> { co_return 42; }()) == 42 ? 0 : 64;
        }
#endif
        return failures; // and `ex`'s destructor is not run by _Exit: see the next test
    });
    REQUIRE(child.exit_code == 0);

    // The parent's executor is untouched.
    never.notify_one();
    waiting.get();
    REQUIRE(ex.spawn([] { return 2; }).get() == 2);
}

TEST_CASE("an executor destroyed in a forked child returns at once", "[fork][errors]") {
    auto* ex = new weft::executor<2, 64>();
    REQUIRE(ex->spawn([] { return 1; }).get() == 1);
    weft::notify never;
    auto waiting = ex->spawn([&never]() -> weft::task<void> { co_await never.notified(); });
    auto blocking = ex->spawn_blocking([] { return 3; });
    REQUIRE(blocking.get() == 3); // a blocking thread exists (idle, kept alive)
    const weft_test::child_report child = weft_test::run_in_child([&] {
        delete ex; // would wait forever for its threads without the fork check
        return 0;
    });
    REQUIRE(child.exit_code == 0);
    never.notify_one();
    waiting.get();
    delete ex;
}
#endif
