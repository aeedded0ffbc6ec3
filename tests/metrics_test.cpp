// Metrics count what the scheduler did. One-worker executors make every
// count below deterministic.
#include <weft/weft.hpp>

#include <atomic>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {
weft::task<int> leaf(int x) { co_return x; }
} // namespace

TEST_CASE("polls count every task run, and live tasks drop to zero", "[metrics]") {
    weft::executor<1, 64> ex;
    auto body = []() -> weft::task<int> {
        std::vector<weft::join_handle<int>> hs;
        for (int i = 0; i < 10; ++i) {
            hs.push_back(weft::spawn(leaf(i)));
        }
        int sum = 0;
        for (auto& h : hs) {
            sum += co_await h;
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(body()) == 45);
    const auto m = ex.metrics();
    REQUIRE(m.spawned_tasks == 11);
    REQUIRE(m.live_tasks == 0);
    REQUIRE(m.global_queue_depth == 0);
    REQUIRE(m.workers[0].local_queue_depth == 0);
    // Each leaf ran once; the parent ran at least once more than it started.
    REQUIRE(m.workers[0].polls >= 11);
    REQUIRE(m.remote_schedules == 1); // block_on's own spawn
}

TEST_CASE("spawned and live tasks count spawns from workers and from other threads alike", "[metrics]") {
    // Workers bind their spawns into shards of their own, other threads
    // into shared ones: both must be counted, listed and unlisted.
    weft::executor<2, 64> ex;
    weft::notify go;
    auto child = [&go]() -> weft::task<void> { co_await go.notified(); };
    auto parent = [&]() -> weft::task<void> {
        auto a = weft::spawn(child());
        auto b = weft::spawn(child());
        co_await a;
        co_await b;
    };
    std::vector<weft::join_handle<void>> parents;
    for (int i = 0; i < 4; ++i) {
        parents.push_back(ex.spawn(parent()));
    }
    REQUIRE(weft_test::wait_until([&] { return go.waiting() == 8; }));
    auto m = ex.metrics();
    REQUIRE(m.spawned_tasks == 12); // 4 from this thread, 8 from the workers
    REQUIRE(m.live_tasks == 12);
    go.notify_all();
    for (auto& h : parents) {
        h.get();
    }
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
    REQUIRE(ex.metrics().spawned_tasks == 12);
}

TEST_CASE("spawning past a full local queue overflows to the global queue", "[metrics]") {
    weft::executor<1, 4> ex; // 4 slots: the 6th spawn in a row cannot fit
    auto body = []() -> weft::task<void> {
        for (int i = 0; i < 100; ++i) {
            weft::spawn(leaf(i)).detach();
        }
        co_return;
    };
    ex.block_on(body());
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
    const auto m = ex.metrics();
    REQUIRE(m.workers[0].overflows > 0);
    REQUIRE(m.workers[0].local_schedules >= 100);
}

TEST_CASE("a task woken by another on the same worker runs from the LIFO slot", "[metrics]") {
    weft::executor<1, 64> ex;
    auto body = []() -> weft::task<int> {
        int sum = 0;
        for (int i = 0; i < 50; ++i) {
            sum += co_await weft::spawn(leaf(1)); // spawn fills the slot, the join runs it next
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(body()) == 50);
    REQUIRE(ex.metrics().workers[0].lifo_hits >= 50);
}

TEST_CASE("a task that joins many finished tasks is made to yield by its budget", "[metrics]") {
    weft::executor<1, 256> ex;
    auto body = []() -> weft::task<int> {
        std::vector<weft::join_handle<int>> hs;
        for (int i = 0; i < 300; ++i) {
            hs.push_back(weft::spawn(leaf(1)));
        }
        for (auto& h : hs) { // let them all finish
            while (!h.is_finished()) {
                co_await weft::yield_now();
            }
        }
        int sum = 0;
        for (auto& h : hs) {
            sum += co_await h; // each ready join spends one unit of budget
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(body()) == 300);
    REQUIRE(ex.metrics().workers[0].budget_forced_yields >= 2);
}

TEST_CASE("idle workers are counted as parked", "[metrics]") {
    weft::executor<2, 64> ex;
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().parked_workers == 2; }));
    REQUIRE(ex.metrics().searching_workers == 0);
    REQUIRE(ex.metrics().total(&weft::worker_metrics::parks) >= 2);
}

TEST_CASE("a worker with no work steals from a busy one", "[metrics]") {
    weft::executor<2, 256> ex;
    std::atomic<bool> release{false};
    std::atomic<int> ran{0};
    // Worker A's task spawns 200 tasks into A's own queue and then spins, so
    // the only way they run is by worker B stealing them. The last one sits
    // in A's LIFO slot, which is not stealable (as in Tokio): it runs once
    // A's task returns.
    auto body = [&]() -> weft::task<void> {
        for (int i = 0; i < 200; ++i) {
            weft::spawn([&ran] { ran.fetch_add(1); }).detach();
        }
        while (!release.load()) {
        }
        co_return;
    };
    auto h = ex.spawn(body());
    REQUIRE(weft_test::wait_until([&] { return ran.load() == 199; }));
    CHECK(ran.load() == 199);
    release.store(true);
    h.get();
    REQUIRE(weft_test::wait_until([&] { return ran.load() == 200; }));
    const auto m = ex.metrics();
    REQUIRE(m.total(&weft::worker_metrics::steals) > 0);
    REQUIRE(m.total(&weft::worker_metrics::steal_operations) > 0);
}

TEST_CASE("each task run is a turn of its worker's loop, counted in ticks", "[metrics]") {
    weft::executor<1, 64> ex;
    const std::uint64_t before = ex.metrics().workers[0].ticks;
    ex.block_on([]() -> weft::task<void> {
        for (int i = 0; i < 100; ++i) {
            co_await weft::yield_now(); // back to the loop each time
        }
    }());
    REQUIRE(ex.metrics().workers[0].ticks >= before + 100);
}

namespace {
// Both workers of a 2-worker executor asleep: one on its futex, one in the driver.
template <class Ex>
bool both_parked(const Ex& ex) {
    const auto m = ex.metrics();
    const weft::worker_state a = m.workers[0].state;
    const weft::worker_state b = m.workers[1].state;
    return (a == weft::worker_state::parked && b == weft::worker_state::parked_in_driver) ||
           (a == weft::worker_state::parked_in_driver && b == weft::worker_state::parked);
}
} // namespace

TEST_CASE("idle workers show as parked, one of them in the driver", "[metrics]") {
    weft::executor<2, 64> ex;
    REQUIRE(weft_test::wait_until([&] { return both_parked(ex); }));
}

TEST_CASE("a worker held by one task shows as running with frozen ticks; a wake-up for it as notified",
          "[metrics]") {
    weft::executor<2, 64> ex;
    // Asleep first: a wake-up sent to a worker still starting up would stay
    // pending (notified) while it runs the holder.
    REQUIRE(weft_test::wait_until([&] { return both_parked(ex); }));
    std::atomic<bool> holding{false};
    std::atomic<bool> release{false};
    auto holder = ex.spawn_pinned(0, [&] {
        holding.store(true);
        while (!release.load()) {
        }
    });
    REQUIRE(weft_test::wait_until([&] { return holding.load(); }));
    const auto first = ex.metrics();
    const auto second = ex.metrics();
    CHECK(first.workers[0].state == weft::worker_state::running);
    CHECK(first.workers[0].ticks == second.workers[0].ticks); // its loop cannot turn under the task
    // A task pinned to worker 0 and spawned from here unparks worker 0, which
    // cannot consume the wake-up while the holder runs.
    auto pinned = ex.spawn_pinned(0, [] { return weft::current_worker(); });
    CHECK(ex.metrics().workers[0].state == weft::worker_state::notified);
    release.store(true);
    holder.get();
    REQUIRE(pinned.get() == 0u);
}
