// weft::task on its own: laziness, inline awaiting by symmetric transfer,
// results and exceptions, and the empty-task errors.
#include <weft/weft.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "support/catch.hpp"

namespace {

weft::task<int> value(int x) { co_return x; }

weft::task<std::unique_ptr<int>> move_only(int x) { co_return std::make_unique<int>(x); }

#if defined(__cpp_exceptions) // used by the cases that check what a throw reports
weft::task<void> fail() {
    throw std::logic_error("inline failure");
    co_return;
}
#endif

// Each level awaits the next inline: without symmetric transfer every level
// would be a nested resume() on the worker's stack.
weft::task<std::uint64_t> depth(std::uint64_t n) {
    if (n == 0) {
        co_return 0;
    }
    co_return 1 + co_await depth(n - 1);
}

} // namespace

TEST_CASE("a task is lazy: it does not run until awaited or spawned", "[task]") {
    int runs = 0;
    auto body = [](int* r) -> weft::task<int> {
        ++*r;
        co_return 1;
    };
    {
        auto t = body(&runs);
        REQUIRE(t.valid());
    }
    REQUIRE(runs == 0);
}

TEST_CASE("co_await runs a child inline and returns its value", "[task]") {
    weft::executor<1, 64> ex;
    auto parent = []() -> weft::task<int> {
        int a = co_await value(20);
        auto p = co_await move_only(22);
        co_return a + *p;
    };
    REQUIRE(ex.block_on(parent()) == 42);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("an exception thrown inline propagates to the awaiting parent", "[task]") {
    weft::executor<1, 64> ex;
    auto parent = []() -> weft::task<std::string> {
        try {
            co_await fail();
        } catch (const std::logic_error& e) {
            co_return e.what();
        }
        co_return "";
    };
    REQUIRE(ex.block_on(parent()) == "inline failure");
}
#endif

TEST_CASE("a chain of 1,000,000 inline awaits neither schedules nor overflows the stack", "[task]") {
    // Workers get a 256 KiB stack: far too small for a million nested frames.
    weft::settings s;
    s.stack_size = 256 * 1024;
    weft::executor<1, 64> ex(s);
    REQUIRE(ex.block_on(depth(1'000'000)) == 1'000'000);
    // One task was spawned (the root) and polled once: nothing scheduled inline.
    const auto m = ex.metrics();
    REQUIRE(m.spawned_tasks == 1);
    REQUIRE(m.workers[0].polls == 1);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("awaiting an empty (moved-from) task raises invalid_handle", "[task][errors]") {
    weft::executor<1, 64> ex;
    auto parent = []() -> weft::task<bool> {
        auto t = value(1);
        auto moved = std::move(t);
        bool raised = false;
        try {
            co_await std::move(t);
        } catch (const weft::error& e) {
            raised = e.code() == weft::errc::invalid_handle;
        }
        co_return raised&& co_await std::move(moved) == 1;
    };
    REQUIRE(ex.block_on(parent()));
}

TEST_CASE("spawning an empty task raises invalid_handle", "[task][errors]") {
    weft::executor<1, 64> ex;
    auto t = value(1);
    auto keep = std::move(t);
    REQUIRE_THROWS_AS(ex.spawn(std::move(t)), weft::error);
    REQUIRE(ex.block_on(std::move(keep)) == 1);
}
#endif

TEST_CASE("a task that is destroyed unawaited destroys its arguments", "[task]") {
    auto counter = std::make_shared<int>(0);
    auto body = [](std::shared_ptr<int> c) -> weft::task<int> { co_return *c; };
    {
        auto t = body(counter);
        REQUIRE(counter.use_count() == 2);
    }
    REQUIRE(counter.use_count() == 1);
}
