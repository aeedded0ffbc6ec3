// Every spawned task runs exactly once, however it is spawned: a million
// from inside, a million from four outside threads, deep chains, wide trees,
// and a task that never stops yielding.
#include <weft/weft.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

// One counter per task id; the check is that each ends at exactly 1.
struct tally {
    explicit tally(std::size_t n) : runs(new std::atomic<std::uint8_t>[n]), size(n) {
        for (std::size_t i = 0; i < n; ++i) {
            runs[i].store(0, std::memory_order_relaxed);
        }
    }
    void hit(std::size_t id) { runs[id].fetch_add(1, std::memory_order_relaxed); }
    std::size_t wrong() const {
        std::size_t bad = 0;
        for (std::size_t i = 0; i < size; ++i) {
            bad += runs[i].load() != 1 ? 1u : 0u;
        }
        return bad;
    }
    std::unique_ptr<std::atomic<std::uint8_t>[]> runs;
    std::size_t size;
};

weft::task<void> mark(tally* t, std::size_t id, std::atomic<std::size_t>* done) {
    t->hit(id);
    done->fetch_add(1, std::memory_order_release);
    co_return;
}

} // namespace

TEST_CASE("1,000,000 tasks spawned from inside each run exactly once", "[spawn]") {
    const std::size_t n = weft_test::scaled(1'000'000);
    tally t(n);
    std::atomic<std::size_t> done{0};
    weft::executor<4, 256> ex;
    auto spawner = [&]() -> weft::task<void> {
        for (std::size_t i = 0; i < n; ++i) {
            weft::spawn(mark(&t, i, &done)).detach();
        }
        co_return;
    };
    ex.block_on(spawner());
    REQUIRE(weft_test::wait_until([&] { return done.load(std::memory_order_acquire) == n; },
                                  std::chrono::minutes(5)));
    REQUIRE(t.wrong() == 0);
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
}

TEST_CASE("1,000,000 tasks spawned from 4 outside threads each run exactly once", "[spawn]") {
    const std::size_t per_thread = weft_test::scaled(250'000);
    const std::size_t n = 4 * per_thread;
    tally t(n);
    std::atomic<std::size_t> done{0};
    weft::executor<4, 256> ex;
    std::vector<std::thread> spawners;
    for (std::size_t s = 0; s < 4; ++s) {
        spawners.emplace_back([&, s] {
            for (std::size_t i = 0; i < per_thread; ++i) {
                ex.spawn(mark(&t, s * per_thread + i, &done)).detach();
            }
        });
    }
    for (auto& th : spawners) {
        th.join();
    }
    REQUIRE(weft_test::wait_until([&] { return done.load(std::memory_order_acquire) == n; },
                                  std::chrono::minutes(5)));
    REQUIRE(t.wrong() == 0);
    const auto m = ex.metrics();
    REQUIRE(m.remote_schedules >= n);
}

TEST_CASE("outside spawns joined with get() return every value", "[spawn]") {
    weft::executor<2, 64> ex;
    const std::size_t n = weft_test::scaled(10'000);
    std::vector<weft::join_handle<std::size_t>> handles;
    for (std::size_t i = 0; i < n; ++i) {
        handles.push_back(ex.spawn([i] { return i * 3; }));
    }
    std::size_t sum = 0;
    for (auto& h : handles) {
        sum += h.get();
    }
    REQUIRE(sum == 3 * n * (n - 1) / 2);
}

namespace {
weft::task<void> chain(std::size_t left, std::atomic<bool>* finished) {
    if (left == 0) {
        finished->store(true, std::memory_order_release);
        co_return;
    }
    weft::spawn(chain(left - 1, finished)).detach();
}

weft::task<std::uint64_t> tree(std::uint64_t lo, std::uint64_t hi) {
    if (hi - lo == 1) {
        co_return lo;
    }
    const std::uint64_t mid = lo + (hi - lo) / 2;
    auto left = weft::spawn(tree(lo, mid));
    const std::uint64_t right = co_await tree(mid, hi);
    co_return co_await left + right;
}
} // namespace

TEST_CASE("a chain of 100,000 spawns, each spawning the next, completes", "[spawn]") {
    weft::executor<2, 256> ex;
    std::atomic<bool> finished{false};
    const std::size_t depth = weft_test::scaled(100'000);
    ex.spawn(chain(depth, &finished)).detach();
    REQUIRE(weft_test::wait_until([&] { return finished.load(std::memory_order_acquire); }));
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
    REQUIRE(ex.metrics().spawned_tasks == depth + 1);
}

TEST_CASE("a fan-out/fan-in tree of 100,000 leaves sums correctly", "[spawn]") {
    weft::executor<4, 256> ex;
    const std::uint64_t n = weft_test::scaled(100'000);
    REQUIRE(ex.block_on(tree(0, n)) == n * (n - 1) / 2);
    REQUIRE(ex.metrics().live_tasks == 0);
}

TEST_CASE("a task that yields forever does not starve 1,000 others on one worker", "[spawn]") {
    weft::executor<1, 256> ex;
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> ran{0};
    auto spinner = ex.spawn([&stop]() -> weft::task<void> {
        while (!stop.load(std::memory_order_relaxed)) {
            co_await weft::yield_now();
        }
    });
    // Half from outside (global queue), half from inside (local queue).
    for (int i = 0; i < 500; ++i) {
        ex.spawn([&ran] { ran.fetch_add(1); }).detach();
    }
    auto inner = ex.spawn([&ran]() -> weft::task<void> {
        for (int i = 0; i < 500; ++i) {
            weft::spawn([&ran] { ran.fetch_add(1); }).detach();
        }
        co_return;
    });
    inner.get();
    REQUIRE(weft_test::wait_until([&] { return ran.load() == 1000; }));
    stop.store(true);
    spinner.get();
}

namespace {

struct lifo_options : weft::default_options {
    static constexpr weft::local_queue_order queue_order = weft::local_queue_order::lifo;
};

// Spawns tasks 0..n-1 from inside a task on a one-worker executor and
// returns the order they ran in.
template <class Options>
std::vector<int> run_order(int n) {
    weft::executor<1, 256, Options> ex;
    std::vector<std::atomic<int>> order(static_cast<std::size_t>(n));
    std::atomic<int> next{0};
    auto outer = ex.spawn([&]() -> weft::task<void> {
        for (int i = 0; i < n; ++i) {
            weft::spawn([&order, &next, i] {
                order[static_cast<std::size_t>(next.fetch_add(1))].store(i);
            }).detach();
        }
        co_return;
    });
    outer.get();
    REQUIRE(weft_test::wait_until([&] { return next.load() == n; }));
    std::vector<int> result;
    for (auto& slot : order) {
        result.push_back(slot.load());
    }
    return result;
}

} // namespace

TEST_CASE("queue_order: fifo runs spawns oldest first after the LIFO slot, lifo newest first", "[spawn]") {
    // fifo: the LIFO slot holds the newest spawn, the queue the others,
    // oldest first. lifo: spawns skip the slot; the deque runs the newest
    // first.
    REQUIRE(run_order<weft::default_options>(4) == std::vector<int>{3, 0, 1, 2});
    REQUIRE(run_order<lifo_options>(4) == std::vector<int>{3, 2, 1, 0});
}

TEST_CASE(
    "queue_order lifo: a spawn goes to the deque and a joiner woken by its child runs from the LIFO slot",
    "[spawn]") {
    weft::executor<1, 256, lifo_options> ex;
    std::uint32_t queued_after_spawn = 0;
    auto root = [&]() -> weft::task<int> {
        auto child = weft::spawn([] { return 7; });
        // In the slot, the spawn would be hidden from thieves.
        queued_after_spawn = ex.metrics().workers[0].local_queue_depth;
        co_return co_await child; // the child's end wakes the root into the slot
    };
    REQUIRE(ex.block_on(root()) == 7);
    REQUIRE(queued_after_spawn == 1);
    REQUIRE(ex.metrics().workers[0].lifo_hits >= 1);
}

TEST_CASE("queue_order lifo: a fan-out/fan-in tree of 100,000 leaves sums correctly", "[spawn]") {
    weft::executor<2, 256, lifo_options> ex;
    const std::uint64_t n = weft_test::scaled(100'000);
    REQUIRE(ex.block_on(tree(0, n)) == n * (n - 1) / 2);
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
}

namespace {

weft::task<std::uint64_t> fib(std::uint32_t n) {
    if (n < 2) {
        co_return n;
    }
    auto left = weft::spawn(fib(n - 1));
    const std::uint64_t right = co_await fib(n - 2);
    co_return co_await left + right;
}

} // namespace

TEST_CASE("queue_order lifo: spawn-and-join fib is right with 4-slot queues that overflow", "[spawn]") {
    // 4 slots, fewer than the recursion's depth: a worker's deque fills
    // and overflows to the global queue unless thieves keep emptying it.
    weft::executor<3, 4, lifo_options> ex;
    REQUIRE(ex.block_on(fib(20)) == 6765);
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().live_tasks == 0; }));
}

TEST_CASE("queue_order lifo: a thief takes the oldest task of a busy worker", "[spawn]") {
    // The root spawns 8 tasks into its worker's queue and then keeps that
    // worker busy until one of them ran elsewhere: the other worker has to
    // steal, and a thief runs the oldest task of what it took.
    weft::executor<2, 256, lifo_options> ex;
    constexpr int n = 8;
    std::atomic<int> first_elsewhere{-1};
    std::atomic<int> ran{0};
    auto root = [&]() -> weft::task<bool> {
        const std::thread::id home = std::this_thread::get_id();
        for (int i = 0; i < n; ++i) {
            weft::spawn([&, i, home] {
                int none = -1;
                if (std::this_thread::get_id() != home) {
                    first_elsewhere.compare_exchange_strong(none, i);
                }
                ran.fetch_add(1);
            }).detach();
        }
        co_return weft_test::wait_until([&] { return first_elsewhere.load() != -1; });
    };
    REQUIRE(ex.block_on(root()));
    REQUIRE(weft_test::wait_until([&] { return ran.load() == n; }));
    REQUIRE(first_elsewhere.load() == 0);
    std::uint64_t steals = 0;
    const auto metrics = ex.metrics();
    for (const auto& w : metrics.workers) {
        steals += w.steals;
    }
    REQUIRE(steals >= 1);
}
