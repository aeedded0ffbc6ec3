// Timers: sleeps never fire early, timeouts cancel what they wrap, intervals
// keep their schedule, capacity runs out cleanly, aborted tasks give their
// timers back, a blocked worker does not stall the others' timers, and an
// idle executor does not wake up before its next deadline.
#include <weft/weft.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

using namespace std::chrono_literals;

namespace {

struct many_timers : weft::default_options {
    static constexpr std::uint32_t max_timers = 16384;
};

struct four_timers : weft::default_options {
    static constexpr std::uint32_t max_timers = 4;
};

struct fine_timers : weft::default_options {
    static constexpr std::uint64_t timer_resolution_ns = 100'000; // 100 us
};

// Sets a flag when destroyed: shows that a cancelled coroutine's locals die.
struct destroy_flag {
    std::atomic<bool>* flag;
    ~destroy_flag() { flag->store(true); }
};

} // namespace

TEST_CASE("10,000 concurrent sleeps all fire, none early", "[time]") {
    weft::executor<2, 256, many_timers> ex;
    const std::size_t count = weft_test::scaled(10'000);
    std::atomic<std::size_t> early{0};
    std::atomic<std::size_t> failed{0};
    std::vector<weft::join_handle<void>> handles;
    std::mt19937 rng(42);
    for (std::size_t i = 0; i < count; ++i) {
        const auto delay = std::chrono::microseconds(rng() % 200'000);
        handles.push_back(ex.spawn([&, delay]() -> weft::task<> {
            const auto deadline = weft::clock::now() + delay;
            auto slept = co_await weft::sleep_until(deadline);
            if (!slept) {
                failed.fetch_add(1);
            }
            if (weft::clock::now() < deadline) {
                early.fetch_add(1);
            }
        }));
    }
    for (auto& h : handles) {
        h.get();
    }
    REQUIRE(failed.load() == 0);
    REQUIRE(early.load() == 0);
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("100 tasks x 100 sequential sleeps fire in order, none early", "[time]") {
    weft::executor<2> ex;
    const std::size_t rounds = weft_test::scaled(100);
    std::atomic<std::size_t> bad{0};
    std::vector<weft::join_handle<void>> handles;
    for (std::uint32_t t = 0; t < 100; ++t) {
        handles.push_back(ex.spawn([&, t]() -> weft::task<> {
            std::minstd_rand rng(t + 1);
            auto previous = weft::clock::now();
            for (std::size_t i = 0; i < rounds; ++i) {
                const auto deadline = weft::clock::now() + std::chrono::microseconds(rng() % 3000);
                co_await weft::sleep_until(deadline);
                const auto now = weft::clock::now();
                if (now < deadline || now < previous) {
                    bad.fetch_add(1);
                }
                previous = now;
            }
        }));
    }
    for (auto& h : handles) {
        h.get();
    }
    REQUIRE(bad.load() == 0);
}

TEST_CASE("a 100 us resolution fires short sleeps, none early", "[time]") {
    weft::executor<2, 256, fine_timers> ex;
    const std::size_t rounds = weft_test::scaled(300);
    const std::size_t early = ex.block_on([&]() -> weft::task<std::size_t> {
        std::size_t n = 0;
        for (std::size_t i = 0; i < rounds; ++i) {
            const auto deadline = weft::clock::now() + 300us;
            co_await weft::sleep_until(deadline);
            n += weft::clock::now() < deadline ? 1u : 0u;
        }
        co_return n;
    }());
    REQUIRE(early == 0);
}

TEST_CASE("zero, negative and past deadlines complete at once", "[time]") {
    weft::executor<1> ex;
    ex.block_on([]() -> weft::task<> {
        REQUIRE((co_await weft::sleep_for(0ms)).has_value());
        REQUIRE((co_await weft::sleep_for(-5s)).has_value());
        REQUIRE((co_await weft::sleep_until(weft::clock::now() - 1h)).has_value());
        REQUIRE((co_await weft::sleep_until(weft::clock::time_point::min())).has_value());
    }());
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("a loop of due sleeps still yields to other tasks (budget)", "[time]") {
    weft::executor<1> ex;
    std::atomic<bool> other_ran{false};
    ex.block_on([&]() -> weft::task<> {
        auto h = weft::spawn([&]() { other_ran.store(true); });
        while (!other_ran.load()) {
            co_await weft::sleep_for(0ms); // never suspends for time, but spends budget
        }
        co_await h;
    }());
    REQUIRE(other_ran.load());
    REQUIRE(ex.metrics().workers[0].budget_forced_yields >= 1);
}

TEST_CASE("sleeps far beyond the wheel's range are accepted and cancellable", "[time]") {
    weft::executor<2> ex;
    auto century =
        ex.spawn([]() -> weft::task<> { co_await weft::sleep_for(std::chrono::hours(24 * 365 * 100)); });
    auto forever =
        ex.spawn([]() -> weft::task<> { co_await weft::sleep_until(weft::clock::time_point::max()); });
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().armed_timers == 2; }));
    century.abort();
    forever.abort();
    REQUIRE(weft_test::join_aborted(century));
    REQUIRE(weft_test::join_aborted(forever));
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("when every timer is in use, a sleep returns capacity_exhausted; aborting frees them", "[time]") {
    weft::executor<2, 256, four_timers> ex;
    std::vector<weft::join_handle<void>> sleepers;
    for (int i = 0; i < 4; ++i) {
        sleepers.push_back(ex.spawn([]() -> weft::task<> { co_await weft::sleep_for(1h); }));
    }
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().armed_timers == 4; }));
    const auto full =
        ex.block_on([]() -> weft::task<weft::result<void>> { co_return co_await weft::sleep_for(1ms); }());
    REQUIRE_FALSE(full.has_value());
    REQUIRE(full.error() == weft::errc::capacity_exhausted);
    const auto timed = ex.block_on([]() -> weft::task<weft::result<int>> {
        co_return co_await weft::timeout(1s, []() -> weft::task<int> { co_return 1; }());
    }());
    REQUIRE(timed.error() == weft::errc::capacity_exhausted);
    for (auto& h : sleepers) {
        h.abort();
    }
    for (auto& h : sleepers) {
        REQUIRE(weft_test::join_aborted(h));
    }
    REQUIRE(ex.metrics().armed_timers == 0);
    const auto after =
        ex.block_on([]() -> weft::task<weft::result<void>> { co_return co_await weft::sleep_for(1ms); }());
    REQUIRE(after.has_value());
}

TEST_CASE("timeout returns the value of an operation that finishes in time", "[time]") {
    weft::executor<2> ex;
    const auto r = ex.block_on([]() -> weft::task<weft::result<int>> {
        co_return co_await weft::timeout(10s, []() -> weft::task<int> {
            co_await weft::sleep_for(1ms);
            co_return 42;
        }());
    }());
    REQUIRE(r.has_value());
    REQUIRE(*r == 42);
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("timeout cancels a slow operation: its coroutines are destroyed, its timer removed", "[time]") {
    weft::executor<2> ex;
    std::atomic<bool> destroyed{false};
    std::atomic<bool> finished{false};
    const auto r = ex.block_on([&]() -> weft::task<weft::result<void>> {
        co_return co_await weft::timeout(5ms, [&]() -> weft::task<> {
            destroy_flag guard{&destroyed};
            co_await weft::sleep_for(1h);
            finished.store(true);
        }());
    }());
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.error() == weft::errc::timed_out);
    REQUIRE(destroyed.load());
    REQUIRE_FALSE(finished.load());
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("timeout wraps any awaitable: a sleep, a join handle", "[time]") {
    weft::executor<2> ex;
    std::atomic<bool> release{false};
    std::atomic<bool> slow_done{false};
    ex.block_on([&]() -> weft::task<> {
        auto slept = co_await weft::timeout(1h, weft::sleep_for(1ms));
        REQUIRE(slept.has_value());
        REQUIRE(slept->has_value());
        auto late = co_await weft::timeout(1ms, weft::sleep_for(1h));
        REQUIRE(late.error() == weft::errc::timed_out);

        auto slow = weft::spawn([&]() -> weft::task<int> {
            while (!release.load()) {
                co_await weft::sleep_for(1ms);
            }
            slow_done.store(true);
            co_return 5;
        });
        auto joined = co_await weft::timeout(5ms, std::move(slow));
        REQUIRE(joined.error() == weft::errc::timed_out); // the handle was dropped: the task goes on
        release.store(true);
    }());
    REQUIRE(weft_test::wait_until([&] { return slow_done.load(); }));
}

TEST_CASE("nested timeouts: the outer one firing first cancels both", "[time]") {
    weft::executor<2> ex;
    std::atomic<int> destroyed{0};
    const auto r = ex.block_on([&]() -> weft::task<weft::result<void>> {
        co_return co_await weft::timeout(5ms, [&]() -> weft::task<> {
            struct count_on_exit {
                std::atomic<int>* n;
                ~count_on_exit() { n->fetch_add(1); }
            } guard{&destroyed};
            (void)co_await weft::timeout(1h, weft::sleep_for(1h));
        }());
    }());
    REQUIRE(r.error() == weft::errc::timed_out);
    REQUIRE(destroyed.load() == 1);
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("the inner timeout firing first leaves the outer one running", "[time]") {
    weft::executor<2> ex;
    const auto r = ex.block_on([&]() -> weft::task<weft::result<int>> {
        co_return co_await weft::timeout(1h, [&]() -> weft::task<int> {
            auto inner = co_await weft::timeout(2ms, weft::sleep_for(1h));
            REQUIRE(inner.error() == weft::errc::timed_out);
            co_await weft::sleep_for(2ms); // the task goes on sleeping normally after a timeout
            co_return 9;
        }());
    }());
    REQUIRE(r.has_value());
    REQUIRE(*r == 9);
    REQUIRE(ex.metrics().armed_timers == 0);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("an exception inside a timeout reaches the awaiter", "[time]") {
    weft::executor<1> ex;
    REQUIRE_THROWS_AS(ex.block_on([]() -> weft::task<> {
        (void)co_await weft::timeout(1h, []() -> weft::task<int> {
            co_await weft::sleep_for(1ms);
            throw std::runtime_error("inner");
        }());
    }()),
                      std::runtime_error);
}
#endif

TEST_CASE("a timeout that has expired before it starts does not run the operation", "[time]") {
    weft::executor<1> ex;
    std::atomic<bool> ran{false};
    const auto r = ex.block_on([&]() -> weft::task<weft::result<void>> {
        co_return co_await weft::timeout_at(weft::clock::now() - 1s, [&]() -> weft::task<> {
            ran.store(true);
            co_return;
        }());
    }());
    REQUIRE(r.error() == weft::errc::timed_out);
    REQUIRE_FALSE(ran.load());
}

TEST_CASE("aborting a task removes its timer and timeout at once", "[time]") {
    weft::executor<2> ex;
    std::atomic<bool> started{false};
    auto h = ex.spawn([&]() -> weft::task<> {
        started.store(true);
        (void)co_await weft::timeout(1h, weft::sleep_for(2h));
    });
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().armed_timers == 2; }));
    h.abort();
    REQUIRE(weft_test::join_aborted(h));
    REQUIRE(ex.metrics().armed_timers == 0);
}

TEST_CASE("interval: burst keeps the schedule, skip drops missed ticks, delay restarts", "[time]") {
    weft::executor<2> ex;
    ex.block_on([]() -> weft::task<> {
        const auto period = 2ms;
        {
            const auto start = weft::clock::now();
            weft::interval every(start, period);
            for (int i = 0; i < 5; ++i) {
                auto at = co_await every.tick();
                REQUIRE(at.has_value());
                REQUIRE(*at == start + i * period);
                REQUIRE(weft::clock::now() >= *at);
            }
        }
        {
            weft::interval every(period, weft::missed_tick::burst);
            const auto first = *(co_await every.tick());
            std::this_thread::sleep_for(5 * period); // miss ticks
            const auto second = *(co_await every.tick());
            REQUIRE(second == first + period); // burst: the missed tick comes now
        }
        {
            weft::interval every(period, weft::missed_tick::skip);
            const auto first = *(co_await every.tick());
            std::this_thread::sleep_for(5 * period);
            const auto behind = weft::clock::now();
            const auto late = *(co_await every.tick()); // the missed tick fires at once ...
            REQUIRE(late == first + period);
            REQUIRE(every.next() > behind); // ... and the ones after it are dropped
            REQUIRE((every.next() - first) % period == weft::clock::duration::zero());
        }
        {
            weft::interval every(period, weft::missed_tick::delay);
            (void)co_await every.tick();
            std::this_thread::sleep_for(5 * period);
            const auto late = weft::clock::now();
            (void)co_await every.tick();            // the late tick fires at once ...
            REQUIRE(every.next() >= late + period); // ... and the schedule restarts from it
        }
    }());
}

TEST_CASE("a worker blocked for 500 ms does not stall timers on the other worker", "[time][stall]") {
    weft::executor<2> ex;
    std::atomic<bool> blocking{false};
    std::atomic<std::int64_t> blocker_end{0};
    std::atomic<std::int64_t> sleeper_end{0};
    const auto since = [start = weft::clock::now()] {
        return std::chrono::duration_cast<std::chrono::microseconds>(weft::clock::now() - start).count();
    };
    auto blocker = ex.spawn([&] {
        blocking.store(true);
        std::this_thread::sleep_for(500ms); // a driver call that blocks its thread
        blocker_end.store(since());
    });
    REQUIRE(weft_test::wait_until([&] { return blocking.load(); }));
    // Let the blocked worker's peer park in the driver first: the stall
    // comes when the driver's sleeper is the one that gets blocked, which
    // the next case covers; here the sleep must simply not wait for it.
    auto sleeper = ex.spawn([&]() -> weft::task<> {
        co_await weft::sleep_for(10ms);
        sleeper_end.store(since());
    });
    sleeper.get();
    blocker.get();
    REQUIRE(sleeper_end.load() < blocker_end.load());
}

TEST_CASE("a timer wake that lands on a worker which then blocks hands the driver over", "[time][stall]") {
    weft::executor<2> ex;
    std::atomic<std::int64_t> blocker_end{0};
    std::atomic<std::int64_t> ticker_end{0};
    const auto since = [start = weft::clock::now()] {
        return std::chrono::duration_cast<std::chrono::microseconds>(weft::clock::now() - start).count();
    };
    // Both workers park; the one in epoll is woken by this timer, runs the
    // task, which blocks its thread. Meanwhile another task needs 20 timer
    // firings: without a hand-off they wait for the blocker.
    auto blocker = ex.spawn([&]() -> weft::task<> {
        co_await weft::sleep_for(20ms);
        std::this_thread::sleep_for(500ms);
        blocker_end.store(since());
    });
    auto ticker = ex.spawn([&]() -> weft::task<> {
        co_await weft::sleep_for(40ms); // after the blocker started blocking
        for (int i = 0; i < 20; ++i) {
            co_await weft::sleep_for(1ms);
        }
        ticker_end.store(since());
    });
    ticker.get();
    blocker.get();
    REQUIRE(ticker_end.load() < blocker_end.load());
}

TEST_CASE("an idle executor with a pending 1 s timer does not wake up before it", "[time][idle]") {
    weft::settings s;
    s.thread_name_prefix = "tmridle";
    weft::executor<2> ex(s);
    std::atomic<bool> fired{false};
    auto h = ex.spawn([&]() -> weft::task<> {
        co_await weft::sleep_for(1s);
        fired.store(true);
    });
    REQUIRE(weft_test::wait_until([&] {
        const auto m = ex.metrics();
        return m.armed_timers == 1 && m.parked_workers == 2;
    }));
    std::this_thread::sleep_for(50ms); // both are inside their futex / epoll_wait now
    const std::uint64_t before = weft_test::worker_context_switches("tmridle");
    std::this_thread::sleep_for(500ms);
    const std::uint64_t after = weft_test::worker_context_switches("tmridle");
    REQUIRE_FALSE(fired.load());
    REQUIRE(after == before);
    h.get();
    REQUIRE(fired.load());
}

TEST_CASE("a worker that never parks still fires timers (non-blocking polls between tasks)", "[time]") {
    weft::executor<1> ex; // one worker, kept busy: it never sleeps in the driver
    std::atomic<bool> stop{false};
    auto spinner = ex.spawn([&]() -> weft::task<> {
        while (!stop.load()) {
            co_await weft::yield_now();
        }
    });
    const auto polls_before = ex.metrics().driver_polls;
    auto sleeper = ex.spawn([&]() -> weft::task<> {
        for (int i = 0; i < 10; ++i) {
            co_await weft::sleep_for(1ms);
        }
        stop.store(true);
    });
    sleeper.get();
    spinner.get();
    REQUIRE(ex.metrics().driver_polls > polls_before);
}

TEST_CASE("a loop of already expired timeouts spends budget and lets other tasks run", "[time]") {
    weft::executor<1> ex;
    std::atomic<bool> other_ran{false};
    const long expired = ex.block_on([&]() -> weft::task<long> {
        auto other = weft::spawn([&]() { other_ran.store(true); });
        long count = 0;
        const auto past = weft::clock::now() - 1s;
        while (!other_ran.load()) {
            auto r = co_await weft::timeout_at(past, weft::sleep_for(1ms));
            count += r ? 0 : 1;
        }
        // Deep enough to overflow a worker's stack if each one nested a resume.
        for (std::uint64_t i = 0; i < weft_test::scaled(200'000); ++i) {
            auto r = co_await weft::timeout_at(past, weft::sleep_for(1ms));
            count += r ? 0 : 1;
        }
        co_await other;
        co_return count;
    }());
    REQUIRE(other_ran.load());
    REQUIRE(expired >= static_cast<long>(weft_test::scaled(200'000)));
}

TEST_CASE("a burst of due timers waits in the wheel and never overflows to the global queue", "[time]") {
    // One worker with a 64-slot queue; 1,000 sleeps share one deadline. A
    // poll fires only as many as the queue has room for, so none of the
    // woken tasks overflows to the global queue, where it would wait behind
    // every queued task (timer_many's p99 lateness).
    weft::executor<1, 64, many_timers> ex;
    const std::size_t count = 1'000;
    std::atomic<std::size_t> armed{0};
    std::atomic<std::size_t> woken{0};
    std::uint64_t overflows_before = 0;
    ex.block_on([&]() -> weft::task<> {
        const auto deadline = weft::clock::now() + 50ms;
        std::vector<weft::join_handle<void>> handles;
        for (std::size_t i = 0; i < count; ++i) {
            handles.push_back(weft::spawn([&, deadline]() -> weft::task<> {
                armed.fetch_add(1);
                if (co_await weft::sleep_until(deadline)) {
                    woken.fetch_add(1);
                }
            }));
        }
        while (armed.load() < count) {
            co_await weft::yield_now(); // the spawns overflow; let them all arm
        }
        overflows_before = ex.metrics().workers[0].overflows;
        for (auto& h : handles) {
            co_await h;
        }
    }());
    REQUIRE(woken.load() == count);
    REQUIRE(ex.metrics().workers[0].overflows == overflows_before);
}
