// Shutdown: nothing new is accepted, every task that never finished is
// destroyed (its destructors run) without being resumed, whoever joins it
// learns it was aborted, and nothing leaks (ASan's leak checker runs this).
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

struct counted {
    static inline std::atomic<int> alive{0};
    counted() { alive.fetch_add(1); }
    counted(const counted&) { alive.fetch_add(1); }
    ~counted() { alive.fetch_sub(1); }
};

weft::task<void> hold(counted, std::atomic<int>* resumed) {
    resumed->fetch_add(1);
    co_return;
}

weft::task<void> wait_forever(counted, std::atomic<bool>* release) {
    while (!release->load()) {
        co_await weft::yield_now();
    }
}

weft::task<void> join_forever(counted c, std::atomic<bool>* release, std::atomic<int>* after_join) {
    auto h = weft::spawn(wait_forever(c, release));
    co_await h;
    after_join->fetch_add(1);
}

struct lifo_options : weft::default_options {
    static constexpr weft::local_queue_order queue_order = weft::local_queue_order::lifo;
};

/// Returns once ex.shutdown(), called on another thread, refuses new tasks
/// (the workers see the shutdown flag, stored next, soon after), plus a
/// margin. Without exceptions a refused spawn cannot be observed: only
/// the margin.
template <class Executor>
void began_shutdown([[maybe_unused]] Executor& ex) {
#if defined(__cpp_exceptions)
    REQUIRE(weft_test::wait_until([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return weft_test::raised([&] { ex.spawn([] {}).detach(); }) == weft::errc::executor_shut_down;
    }));
#endif
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

} // namespace

TEST_CASE("shutdown with 10,000 pending tasks runs their destructors and never resumes them", "[shutdown]") {
    counted::alive.store(0);
    std::atomic<int> resumed{0};
    std::atomic<bool> release{false};
    {
        weft::executor<1, 256> ex;
        // The only worker is blocked, so everything below stays queued.
        std::atomic<bool> started{false};
        auto blocker = ex.spawn([&release, &started] {
            started.store(true);
            while (!release.load()) {
                std::this_thread::yield();
            }
        });
        REQUIRE(weft_test::wait_until([&] { return started.load(); }));
        std::vector<weft::join_handle<void>> kept;
        for (int i = 0; i < 10'000; ++i) {
            auto h = ex.spawn(hold(counted{}, &resumed));
            if (i % 2 == 0) {
                kept.push_back(std::move(h)); // half joined later, half detached
            }
        }
        REQUIRE(counted::alive.load() == 10'000);
        std::thread stopper([&] { ex.shutdown(); });
        // shutdown waits for the running task; let it finish, but only once
        // shutdown has begun: released earlier, the worker would go on to
        // run the queued tasks, as it should.
        began_shutdown(ex);
        release.store(true);
        stopper.join();
        blocker.get();
        REQUIRE(counted::alive.load() == 0);
        REQUIRE(resumed.load() == 0);
        for (auto& h : kept) {
            REQUIRE(h.is_finished());
            REQUIRE(weft_test::join_aborted(h));
        }
    }
    REQUIRE(counted::alive.load() == 0);
}

namespace {

// Both workers blocked: one by `blocker`, the other by `spawner` after it
// spawned 1,000 tasks into its 16-slot queue (the rest overflowed to the
// global queue). Nobody runs or steals them; a worker's spawns are not in
// the live-task list yet (runtime::bind), so shutdown must find them in
// the queues.
template <class Options>
void shutdown_destroys_queued_worker_spawns() {
    counted::alive.store(0);
    std::atomic<int> resumed{0};
    std::atomic<bool> release{false};
    {
        weft::executor<2, 16, Options> ex;
        std::atomic<int> started{0};
        auto blocker = ex.spawn([&release, &started] {
            started.fetch_add(1);
            while (!release.load()) {
                std::this_thread::yield();
            }
        });
        REQUIRE(weft_test::wait_until([&] { return started.load() == 1; }));
        auto spawner = ex.spawn([&]() -> weft::task<void> {
            for (int i = 0; i < 1'000; ++i) {
                weft::spawn(hold(counted{}, &resumed)).detach();
            }
            started.fetch_add(1);
            while (!release.load()) {
                std::this_thread::yield();
            }
            co_return;
        });
        REQUIRE(weft_test::wait_until([&] { return started.load() == 2; }));
        REQUIRE(counted::alive.load() == 1'000);
        REQUIRE(ex.metrics().live_tasks == 1'002);
        std::thread stopper([&] { ex.shutdown(); });
        began_shutdown(ex);
        release.store(true);
        stopper.join();
        blocker.get();
        spawner.get();
        REQUIRE(counted::alive.load() == 0);
        REQUIRE(resumed.load() == 0);
        REQUIRE(ex.metrics().live_tasks == 0);
    }
    REQUIRE(counted::alive.load() == 0);
}

} // namespace

TEST_CASE("shutdown destroys a worker's spawns queued locally and overflowed, never resumes them",
          "[shutdown]") {
    shutdown_destroys_queued_worker_spawns<weft::default_options>();
}

TEST_CASE("lifo order: shutdown destroys tasks queued in the deques and overflowed, never resumes them",
          "[shutdown]") {
    shutdown_destroys_queued_worker_spawns<lifo_options>();
}

namespace {

weft::task<void> sleep_long(counted) { co_await weft::sleep_for(std::chrono::hours(1)); }

// Pinned to worker 1, listed in worker 0's shard (spawned there), joins a
// task pinned to the same worker (listed in worker 1's shard).
weft::task<void> join_local(counted, std::atomic<int>* waiting) {
    auto h = weft::spawn_local(sleep_long(counted{}));
    waiting->fetch_add(1);
    co_await h;
}

} // namespace

TEST_CASE("shutdown destroys once a pinned task woken by the cancel of the task it joins", "[shutdown]") {
    // Worker 1 stopping cancels its pinned tasks, the joined one first (its
    // shard comes later in the sweep's chain): the cancel wakes the joiner
    // into worker 1's LIFO slot, then the joiner is cancelled too. The slot
    // still holds the finished joiner when the executor drains the queues:
    // it must only lose that reference, not be listed and destroyed again
    // (ASan: a use after free; elsewhere a double destroy).
    counted::alive.store(0);
    for (int round = 0; round < 20; ++round) {
        std::atomic<int> waiting{0};
        {
            weft::executor<2, 64> ex;
            ex.spawn_pinned(0, [&waiting]() -> weft::task<void> {
                  weft::spawn_pinned(1, join_local(counted{}, &waiting)).detach();
                  co_return;
              }).detach();
            REQUIRE(weft_test::wait_until([&] { return waiting.load() == 1; }));
            // Both frames' copies; the spawner's argument may still be
            // going away on worker 0.
            REQUIRE(weft_test::wait_until([&] { return counted::alive.load() == 2; }));
            ex.shutdown();
            REQUIRE(counted::alive.load() == 0);
            REQUIRE(ex.metrics().live_tasks == 0);
        }
        REQUIRE(counted::alive.load() == 0);
    }
}

TEST_CASE("shutdown destroys tasks suspended on a join that will never complete", "[shutdown]") {
    counted::alive.store(0);
    std::atomic<bool> release{false};
    std::atomic<int> after_join{0};
    {
        weft::executor<2, 64> ex;
        for (int i = 0; i < 100; ++i) {
            ex.spawn(join_forever(counted{}, &release, &after_join)).detach();
        }
        // Each joiner is suspended and each spinner keeps yielding.
        REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 200; }));
        ex.shutdown();
        REQUIRE(counted::alive.load() == 0);
        REQUIRE(ex.metrics().live_tasks == 0);
    }
    REQUIRE(after_join.load() == 0);
}

TEST_CASE("shutdown is idempotent and the destructor after it is harmless", "[shutdown]") {
    weft::executor<2, 64> ex;
    REQUIRE(ex.block_on([]() -> weft::task<int> { co_return 3; }()) == 3);
    ex.shutdown();
    ex.shutdown();
#if defined(__cpp_exceptions) // spawning after shutdown raises
    REQUIRE_THROWS_AS(ex.spawn([] {}), weft::error);
#endif
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("shutdown called from one of the executor's own tasks raises blocking_on_worker",
          "[shutdown][errors]") {
    weft::executor<2, 64> ex;
    auto body = [&ex]() -> weft::task<bool> {
        try {
            ex.shutdown();
        } catch (const weft::error& e) {
            co_return e.code() == weft::errc::blocking_on_worker;
        }
        co_return false;
    };
    REQUIRE(ex.block_on(body()));
}

TEST_CASE("outside threads spawning while the executor shuts down either run or get an error", "[shutdown]") {
    std::atomic<int> ran{0};
    std::atomic<int> refused{0};
    std::atomic<int> aborted{0};
    std::atomic<int> unexpected{0}; // Catch2's REQUIRE is not thread-safe: count here
    {
        weft::executor<2, 64> ex;
        std::vector<std::thread> spawners;
        for (int t = 0; t < 3; ++t) {
            spawners.emplace_back([&] {
                for (int i = 0; i < 5'000; ++i) {
                    try {
                        auto h = ex.spawn([&ran] { ran.fetch_add(1); });
                        try {
                            h.get();
                        } catch (const weft::error& e) {
                            (e.code() == weft::errc::task_aborted ? aborted : unexpected).fetch_add(1);
                        }
                    } catch (const weft::error& e) {
                        (e.code() == weft::errc::executor_shut_down ? refused : unexpected).fetch_add(1);
                    }
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ex.shutdown();
        for (auto& th : spawners) {
            th.join();
        }
    }
    // Every spawn is accounted for: it ran, was refused, or was aborted.
    REQUIRE(unexpected.load() == 0);
    REQUIRE(ran.load() + refused.load() + aborted.load() == 15'000);
}
#endif

namespace {
template <class Executor>
struct shuts_down_on_destruction {
    Executor* ex;
    explicit shuts_down_on_destruction(Executor* e) : ex(e) {}
    shuts_down_on_destruction(shuts_down_on_destruction&& o) noexcept : ex(std::exchange(o.ex, nullptr)) {}
    ~shuts_down_on_destruction() {
        if (ex != nullptr) {
            ex->shutdown(); // called by the shutdown sweep itself: must return
        }
    }
};
} // namespace

TEST_CASE("a destructor run by shutdown may call shutdown again without deadlock", "[shutdown]") {
    using executor_type = weft::executor<1, 64>;
    executor_type ex;
    std::atomic<bool> release{false};
    auto body = [](shuts_down_on_destruction<executor_type>, std::atomic<bool>* rel) -> weft::task<void> {
        while (!rel->load()) {
            co_await weft::yield_now();
        }
    };
    auto h = ex.spawn(body(shuts_down_on_destruction<executor_type>(&ex), &release));
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().workers[0].polls > 0; }));
    ex.shutdown();
    REQUIRE(h.is_finished());
}

#if defined(__cpp_exceptions) // the destructor checks what a join reports
namespace {
// Spawns from its destructor, as cleanup code sometimes does, and keeps what it got.
struct spawns_on_destruction {
    std::atomic<int>* child_destroyed;
    std::atomic<int>* outcome; // 1: got an aborted handle, 2: the child ran, 3: spawn raised
    ~spawns_on_destruction() {
        struct guard {
            std::atomic<int>* count;
            guard(std::atomic<int>* c) : count(c) {}
            guard(guard&& o) noexcept : count(std::exchange(o.count, nullptr)) {}
            ~guard() {
                if (count != nullptr) {
                    count->fetch_add(1);
                }
            }
        };
        try {
            auto h = weft::spawn([g = guard(child_destroyed)] { return 1; });
            try {
                (void)h.get();
                outcome->store(2);
            } catch (const weft::error& e) {
                outcome->store(e.code() == weft::errc::task_aborted ? 1 : 4);
            }
        } catch (...) {
            outcome->store(3);
        }
    }
};
} // namespace

TEST_CASE("a destructor run by shutdown that spawns gets an aborted handle; the child is destroyed unrun",
          "[shutdown][errors]") {
    std::atomic<int> child_destroyed{0};
    std::atomic<int> outcome{0};
    std::atomic<bool> started{false};
    {
        weft::executor<2, 64> ex;
        weft::notify never;
        auto h = ex.spawn([&]() -> weft::task<void> {
            spawns_on_destruction cleanup{&child_destroyed, &outcome};
            started.store(true);
            co_await never.notified(); // destroyed here by shutdown
        });
        REQUIRE(weft_test::wait_until([&] { return started.load(); }));
        ex.shutdown();
        REQUIRE(h.is_finished());
    }
    REQUIRE(outcome.load() == 1);
    REQUIRE(child_destroyed.load() >= 1); // the lambda's capture (moved copies included) was destroyed
}
#endif
