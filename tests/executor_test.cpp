// The executor's contract: block_on, spawn from inside and outside, join
// handles (await, get, detach, abort, is_finished), yield, and the errors a
// person gets for misuse.
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

weft::task<int> child(int x) {
    co_await weft::yield_now();
    co_return 2 * x;
}

weft::task<int> root() {
    auto h = weft::spawn(child(21));
    co_return co_await h;
}

#if defined(__cpp_exceptions) // used by the cases that check what a throw reports
weft::task<int> thrower() {
    co_await weft::yield_now();
    throw std::runtime_error("boom");
}
#endif

weft::task<void> never_finishes(std::atomic<bool>* release) {
    while (!release->load()) {
        co_await weft::yield_now();
    }
}

struct destroy_flag {
    std::atomic<int>* counter;
    explicit destroy_flag(std::atomic<int>* c) : counter(c) {}
    destroy_flag(destroy_flag&& o) noexcept : counter(std::exchange(o.counter, nullptr)) {}
    ~destroy_flag() {
        if (counter != nullptr) {
            counter->fetch_add(1);
        }
    }
};

} // namespace

TEST_CASE("block_on returns the task's value", "[executor]") {
    weft::executor<2, 64> ex;
    REQUIRE(ex.block_on(root()) == 42);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("block_on rethrows the task's exception", "[executor]") {
    weft::executor<2, 64> ex;
    REQUIRE_THROWS_WITH(ex.block_on(thrower()), "boom");
}

TEST_CASE("a task's exception reaches whoever awaits its handle", "[executor]") {
    weft::executor<2, 64> ex;
    auto catcher = []() -> weft::task<std::string> {
        auto h = weft::spawn(thrower());
        try {
            co_await h;
        } catch (const std::runtime_error& e) {
            co_return e.what();
        }
        co_return "no exception";
    };
    REQUIRE(ex.block_on(catcher()) == "boom");
}

TEST_CASE("a task's exception reaches get() on an outside thread", "[executor]") {
    weft::executor<2, 64> ex;
    auto h = ex.spawn(thrower());
    REQUIRE_THROWS_AS(h.get(), std::runtime_error);
}
#endif

TEST_CASE("spawn of a plain callable returns its value through the handle", "[executor]") {
    weft::executor<2, 64> ex;
    auto h = ex.spawn([] { return std::string("hello"); });
    REQUIRE(h.get() == "hello");
    auto v = ex.spawn([] {});
    v.get();
    REQUIRE_FALSE(v.valid());
}

TEST_CASE("spawn of a lambda returning a task keeps the lambda's captures alive", "[executor]") {
    weft::executor<2, 64> ex;
    std::string text = "captured";
    auto h = ex.spawn([text]() -> weft::task<std::size_t> {
        co_await weft::yield_now();
        co_return text.size();
    });
    REQUIRE(h.get() == text.size());
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("block_on on a worker thread raises nested_runtime with a message saying what to do",
          "[executor][errors]") {
    weft::executor<2, 64> ex;
    auto nested = [&ex]() -> weft::task<std::string> {
        try {
            (void)ex.block_on(child(1));
        } catch (const weft::error& e) {
            REQUIRE(e.code() == weft::errc::nested_runtime);
            co_return e.what();
        }
        co_return "";
    };
    const std::string message = ex.block_on(nested());
    CHECK(message.find("cannot start a runtime from within a runtime") != std::string::npos);
    CHECK(message.find("co_await") != std::string::npos);
}

TEST_CASE("block_on of another executor on a worker thread is also nested_runtime", "[executor][errors]") {
    weft::executor<1, 64> outer;
    weft::executor<1, 64> inner;
    auto nested = [&inner]() -> weft::task<bool> {
        try {
            (void)inner.block_on(child(1));
        } catch (const weft::error& e) {
            co_return e.code() == weft::errc::nested_runtime;
        }
        co_return false;
    };
    REQUIRE(outer.block_on(nested()));
}

TEST_CASE("weft::spawn with no current executor raises no_current_executor", "[executor][errors]") {
    try {
        (void)weft::spawn(child(1));
        FAIL("spawn did not raise");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::no_current_executor);
        REQUIRE(std::string(e.what()).find("executor::spawn") != std::string::npos);
    }
}

TEST_CASE("spawning after shutdown raises executor_shut_down and destroys the task", "[executor][errors]") {
    weft::executor<2, 64> ex;
    ex.shutdown();
    std::atomic<int> destroyed{0};
    auto work = [](destroy_flag) -> weft::task<int> { co_return 1; };
    try {
        (void)ex.spawn(work(destroy_flag(&destroyed)));
        FAIL("spawn did not raise");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::executor_shut_down);
    }
    REQUIRE(destroyed.load() == 1);
}

TEST_CASE("get() on a worker thread raises blocking_on_worker", "[executor][errors]") {
    weft::executor<2, 64> ex;
    auto body = []() -> weft::task<bool> {
        auto h = weft::spawn(child(1));
        try {
            (void)h.get();
        } catch (const weft::error& e) {
            co_return e.code() == weft::errc::blocking_on_worker&& h.valid();
        }
        co_return false;
    };
    REQUIRE(ex.block_on(body()));
}

TEST_CASE("a join handle joins once; a second join raises invalid_handle", "[executor][errors]") {
    weft::executor<2, 64> ex;
    auto h = ex.spawn(child(2));
    REQUIRE(h.get() == 4);
    REQUIRE_FALSE(h.valid());
    try {
        (void)h.get();
        FAIL("second get did not raise");
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::invalid_handle);
    }
}
#endif

TEST_CASE("abort of a task that has not started: it never runs", "[executor][abort]") {
    weft::executor<1, 64> ex;
    std::atomic<bool> release{false};
    std::atomic<int> ran{0};
    std::atomic<int> destroyed{0};
    // Keep the only worker busy so the victim stays queued.
    auto blocker = ex.spawn([&release]() {
        while (!release.load())
            std::this_thread::yield();
    });
    auto victim_fn = [](std::atomic<int>* r, destroy_flag) -> weft::task<int> {
        r->fetch_add(1);
        co_return 7;
    };
    auto victim = ex.spawn(victim_fn(&ran, destroy_flag(&destroyed)));
    victim.abort();
    release.store(true);
    blocker.get();
    REQUIRE(weft_test::join_aborted(victim));
    REQUIRE(ran.load() == 0);
    REQUIRE(destroyed.load() == 1);
}

TEST_CASE("abort of a suspended task destroys it without resuming it", "[executor][abort]") {
    weft::executor<2, 64> ex;
    std::atomic<bool> release{false};
    std::atomic<int> destroyed{0};
    std::atomic<int> resumed{0};
    auto waiter_fn = [](std::atomic<bool>* rel, std::atomic<int>* res, destroy_flag) -> weft::task<void> {
        auto h = weft::spawn(never_finishes(rel));
        co_await h; // suspends here until aborted
        res->fetch_add(1);
    };
    auto waiter = ex.spawn(waiter_fn(&release, &resumed, destroy_flag(&destroyed)));
    // Wait until the waiter is suspended on its join (its child is live).
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 2; }));
    waiter.abort();
    REQUIRE(weft_test::wait_until([&] { return waiter.is_finished(); }));
    REQUIRE(destroyed.load() == 1);
    REQUIRE(weft_test::join_aborted(waiter));
    release.store(true); // the child, detached by the waiter's destruction, ends
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
    REQUIRE(resumed.load() == 0);
}

TEST_CASE("abort of a finished task changes nothing", "[executor][abort]") {
    weft::executor<2, 64> ex;
    auto h = ex.spawn(child(5));
    REQUIRE(weft_test::wait_until([&] { return h.is_finished(); }));
    h.abort();
    REQUIRE(h.get() == 10);
}

TEST_CASE("is_finished turns true once the task is done", "[executor]") {
    weft::executor<2, 64> ex;
    std::atomic<bool> release{false};
    auto h = ex.spawn(never_finishes(&release));
    REQUIRE_FALSE(h.is_finished());
    release.store(true);
    REQUIRE(weft_test::wait_until([&] { return h.is_finished(); }));
    h.get();
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
namespace {
std::atomic<int> g_reported{0};
void count_report(std::exception_ptr) noexcept { g_reported.fetch_add(1); }
} // namespace

TEST_CASE("an exception in a detached task goes to the handler and the worker keeps running", "[executor]") {
    weft::executor<1, 64> ex;
    g_reported.store(0);
    auto previous = weft::set_unhandled_exception_handler(&count_report);
    ex.spawn(thrower()).detach();
    REQUIRE(weft_test::wait_until([] { return g_reported.load() == 1; }));
    REQUIRE(ex.block_on(child(4)) == 8); // the single worker still runs tasks
    // A finished task's exception that nobody reads is reported when its handle goes.
    {
        auto h = ex.spawn(thrower());
        REQUIRE(weft_test::wait_until([&] { return h.is_finished(); }));
    }
    REQUIRE(g_reported.load() == 2);
    weft::set_unhandled_exception_handler(previous);
}
#endif

TEST_CASE("weft::spawn from inside a task needs no executor type", "[executor]") {
    weft::executor<2, 64> ex;
    auto fan = []() -> weft::task<int> {
        std::vector<weft::join_handle<int>> handles;
        for (int i = 0; i < 100; ++i) {
            handles.push_back(weft::spawn(child(i)));
        }
        int sum = 0;
        for (auto& h : handles) {
            sum += co_await h;
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(fan()) == 9900);
}

TEST_CASE("executor::spawn from a worker goes to that worker's own queue", "[executor]") {
    weft::executor<2, 64> ex;
    auto body = [&ex]() -> weft::task<int> { co_return co_await ex.spawn(child(3)); };
    const auto before = ex.metrics().remote_schedules;
    REQUIRE(ex.block_on(body()) == 6);
    // Only block_on's own spawn came from outside.
    REQUIRE(ex.metrics().remote_schedules - before == 1);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("yield_now outside a task raises no_current_executor", "[executor][errors]") {
    // A coroutine type that is not a weft task, driving yield_now by hand.
    auto a = weft::yield_now();
    REQUIRE_FALSE(a.await_ready());
    REQUIRE_THROWS_AS(a.await_suspend(std::noop_coroutine()), weft::error);
}
#endif

namespace {
struct big_result {
    std::array<char, 70'000> bytes{};
};
} // namespace

TEST_CASE("a task with a result larger than 64 KiB can be aborted and joined", "[executor][abort]") {
    weft::executor<2, 64> ex;
    std::atomic<bool> release{false};
    auto body = [](std::atomic<bool>* rel) -> weft::task<big_result> {
        while (!rel->load()) {
            co_await weft::yield_now();
        }
        co_return big_result{};
    };
    auto h = ex.spawn(body(&release));
    h.abort();
    REQUIRE(weft_test::join_aborted(h));
    auto done = ex.spawn(body(&release));
    release.store(true);
    REQUIRE(done.get().bytes[69'999] == 0);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
namespace {
struct throwing_move {
    static inline std::atomic<int> alive{0};
    int value = 7;
    throwing_move() { alive.fetch_add(1); }
    throwing_move(const throwing_move& other) : value(other.value) { alive.fetch_add(1); }
    throwing_move(throwing_move&& other) : value(other.value) {
        if (other.value == 7) {
            throw std::runtime_error("move refused");
        }
        alive.fetch_add(1);
    }
    ~throwing_move() { alive.fetch_sub(1); }
};
} // namespace

TEST_CASE("a result whose move throws is not leaked when the join fails", "[executor]") {
    throwing_move::alive.store(0);
    {
        weft::executor<1, 64> ex;
        auto h = ex.spawn([]() -> weft::task<throwing_move> {
            const throwing_move result;
            co_return result; // copied in: no throw
        }());
        REQUIRE_THROWS_WITH(h.get(), "move refused");
    }
    REQUIRE(throwing_move::alive.load() == 0);
}

TEST_CASE("two tasks awaiting one join handle: one of them gets invalid_handle", "[executor][errors]") {
    weft::executor<2, 64> ex;
    std::atomic<bool> release{false};
    auto target = ex.spawn(never_finishes(&release));
    // Each awaiter reports whether it was refused. Whichever registers
    // second is refused at once, so the flag below only gets set then.
    std::atomic<int> refused{0};
    auto awaiter = [](weft::join_handle<void>* h, std::atomic<int>* r) -> weft::task<bool> {
        try {
            co_await *h;
        } catch (const weft::error& e) {
            r->fetch_add(1);
            co_return e.code() == weft::errc::invalid_handle;
        }
        co_return false;
    };
    auto first = ex.spawn(awaiter(&target, &refused));
    auto second = ex.spawn(awaiter(&target, &refused));
    REQUIRE(weft_test::wait_until([&] { return refused.load() == 1; }));
    release.store(true);
    const bool a = first.get();
    const bool b = second.get();
    REQUIRE(a != b); // exactly one was refused, with invalid_handle
}
#endif
