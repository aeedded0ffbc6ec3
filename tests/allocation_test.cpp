// A spawn allocates exactly one block: the coroutine frame with the task
// header and the join state in front of it; with the workers' frame caches
// (the default) a steady stream of spawns reuses blocks and allocates next
// to nothing; a wait allocates nothing. Counted through a replaced global
// operator new.
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstdlib>
#include <new>
#include <optional>

#include "support/catch.hpp"

namespace {
std::atomic<std::uint64_t> g_allocations{0};
}

void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
#if defined(__cpp_exceptions)
    throw std::bad_alloc();
#else
    std::abort();
#endif
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
    return ::operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

weft::task<int> leaf(int x) { co_return x; }

// Every frame from the heap: what one spawn costs.
struct no_frame_cache : weft::default_options {
    static constexpr std::size_t frame_cache_bytes = 0;
};

// Spawns and joins `n` leaves in turn, after as many to warm up; returns
// the allocations of the second half.
weft::task<std::uint64_t> spawn_join_allocations(std::uint64_t n) {
    int sum = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        sum += co_await weft::spawn(leaf(1));
    }
    const std::uint64_t before = g_allocations.load();
    for (std::uint64_t i = 0; i < n; ++i) {
        sum += co_await weft::spawn(leaf(1));
    }
    const std::uint64_t after = g_allocations.load();
    co_return sum == static_cast<int>(2 * n) ? after - before : ~std::uint64_t{0};
}

} // namespace

TEST_CASE("with the frame cache, a worker that spawns and joins in a loop allocates nothing",
          "[allocation]") {
    weft::executor<1, 256> ex;
    REQUIRE(ex.block_on(spawn_join_allocations(1000)) == 0);
}

TEST_CASE("with the frame cache on two workers, blocks go home: a spawn loop allocates a bounded few",
          "[allocation]") {
    // A worker allocates only with its free list and its returned stack
    // empty, when every block it made is in use or in a sibling's outbox
    // (at most batch - 1 there): here one leaf and the root's join, so each
    // worker makes at most a few blocks more than batch, however long the
    // loop runs. 10,000 spawns must not cost more than 4 batches in all.
    weft::executor<2, 256> ex;
    const std::uint64_t allocations = ex.block_on(spawn_join_allocations(10'000));
    REQUIRE(allocations <= 4 * weft::detail::frame_cache::batch);
}

TEST_CASE("spawning and joining a task allocates exactly one block", "[allocation]") {
    weft::executor<2, 256, no_frame_cache> ex;
    constexpr std::uint64_t n = 1000;
    auto body = []() -> weft::task<std::uint64_t> {
        const std::uint64_t before = g_allocations.load();
        int sum = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            sum += co_await weft::spawn(leaf(1));
        }
        const std::uint64_t after = g_allocations.load();
        co_return sum == static_cast<int>(n) ? after - before : 0;
    };
    REQUIRE(ex.block_on(body()) == n);
}

TEST_CASE("spawning a plain callable allocates exactly one block", "[allocation]") {
    weft::executor<1, 256, no_frame_cache> ex;
    constexpr std::uint64_t n = 1000;
    auto body = []() -> weft::task<std::uint64_t> {
        const std::uint64_t before = g_allocations.load();
        int sum = 0;
        for (std::uint64_t i = 0; i < n; ++i) {
            sum += co_await weft::spawn([] { return 1; });
        }
        const std::uint64_t after = g_allocations.load();
        co_return sum == static_cast<int>(n) ? after - before : 0;
    };
    REQUIRE(ex.block_on(body()) == n);
}

TEST_CASE("the scheduler itself allocates nothing: a yield loop allocates zero blocks", "[allocation]") {
    weft::executor<2, 256> ex;
    auto body = []() -> weft::task<std::uint64_t> {
        const std::uint64_t before = g_allocations.load();
        for (int i = 0; i < 10'000; ++i) {
            co_await weft::yield_now();
        }
        co_return g_allocations.load() - before;
    };
    REQUIRE(ex.block_on(body()) == 0);
}

// ---- waits allocate nothing ----------------------------------------------------------------
//
// A waiting task's node lives in its awaiter, so a wait that really
// suspends allocates nothing. One worker: a task spawned to wait runs until
// it is parked before the spawner runs again. Spawning allocates, so each
// test counts only across the wait itself, in the waiting task, and takes
// the last of three rounds (the first warm up).

namespace {

constexpr std::uint64_t not_counted = ~std::uint64_t{0};

// Counts the allocations across `co_await wait()`, which must suspend.
template <class Wait>
weft::task<> counted_wait(Wait& wait, std::atomic<bool>& parked, std::uint64_t& counted) {
    parked.store(true); // one worker: nothing else runs until this task is parked
    const std::uint64_t before = g_allocations.load();
    (void)co_await wait();
    counted = g_allocations.load() - before;
}

// Each round: `arrange()` makes the wait suspend (what it returns is held
// until the release), a task waits, and `release(held)` (an awaitable) lets
// it go. Returns the allocations counted across the last round's wait.
template <class Arrange, class Wait, class Release>
std::uint64_t allocations_across_a_wait(Arrange arrange, Wait wait, Release release) {
    weft::executor<1, 256> ex;
    return ex.block_on([&]() -> weft::task<std::uint64_t> {
        std::uint64_t counted = not_counted;
        for (int round = 0; round < 3; ++round) {
            counted = not_counted;
            std::atomic<bool> parked{false};
            auto held = arrange();
            auto waiter = weft::spawn(counted_wait(wait, parked, counted));
            while (!parked.load()) {
                co_await weft::yield_now();
            }
            (void)co_await release(held);
            co_await std::move(waiter);
        }
        co_return counted;
    }());
}

struct nothing_held {};
auto hold_nothing = [] { return nothing_held{}; };

} // namespace

TEST_CASE("a semaphore acquire that waits allocates nothing", "[allocation]") {
    weft::semaphore sem(1);
    const std::uint64_t counted =
        allocations_across_a_wait([&] { return sem.try_acquire(); }, [&] { return sem.acquire(); },
                                  [](weft::semaphore::permit& held) {
                                      held.release(); // handed to the waiter
                                      return std::suspend_never{};
                                  });
    REQUIRE(counted == 0);
}

TEST_CASE("a mutex lock that waits allocates nothing", "[allocation]") {
    weft::mutex m;
    const std::uint64_t counted =
        allocations_across_a_wait([&] { return m.try_lock(); }, [&] { return m.lock(); },
                                  [](weft::mutex::guard& held) {
                                      held.unlock();
                                      return std::suspend_never{};
                                  });
    REQUIRE(counted == 0);
}

TEST_CASE("a notify wait allocates nothing", "[allocation]") {
    weft::notify n;
    const std::uint64_t counted = allocations_across_a_wait(
        hold_nothing, [&] { return n.notified(); },
        [&](nothing_held&) {
            n.notify_one();
            return std::suspend_never{};
        });
    REQUIRE(counted == 0);
}

TEST_CASE("a watch wait allocates nothing", "[allocation]") {
    weft::watch<int> w(0);
    auto rx = w.subscribe();
    int value = 0;
    const std::uint64_t counted = allocations_across_a_wait(
        hold_nothing, [&] { return rx.changed(); },
        [&](nothing_held&) {
            w.send(++value);
            return std::suspend_never{};
        });
    REQUIRE(counted == 0);
}

TEST_CASE("a barrier wait allocates nothing", "[allocation]") {
    weft::barrier b(2);
    const std::uint64_t counted = allocations_across_a_wait(
        hold_nothing, [&] { return b.arrive_and_wait(); },
        [&](nothing_held&) { return b.arrive_and_wait(); }); // the last arrival: does not wait
    REQUIRE(counted == 0);
}

TEST_CASE("a channel recv that waits allocates nothing", "[allocation]") {
    weft::channel<int, 1> ch;
    const std::uint64_t counted = allocations_across_a_wait(
        hold_nothing, [&] { return ch.recv(); },
        [&](nothing_held&) {
            (void)ch.try_send(1);
            return std::suspend_never{};
        });
    REQUIRE(counted == 0);
}

TEST_CASE("a once_cell caller that waits for the initializer allocates nothing", "[allocation]") {
    // The initializer runs in the body's task: it lets a second caller park
    // on the cell, then returns. Only that caller's wait is counted.
    weft::executor<1, 256> ex;
    std::array<weft::once_cell<int>, 3> cells;
    const std::uint64_t counted = ex.block_on([&]() -> weft::task<std::uint64_t> {
        std::uint64_t counted = not_counted;
        for (weft::once_cell<int>& cell : cells) {
            counted = not_counted;
            std::atomic<bool> parked{false};
            auto wait = [&] { return cell.get_or_init([]() -> weft::task<int> { co_return 2; }); };
            std::optional<weft::join_handle<void>> waiter;
            const int value = co_await cell.get_or_init([&]() -> weft::task<int> {
                waiter.emplace(weft::spawn(counted_wait(wait, parked, counted)));
                while (!parked.load()) {
                    co_await weft::yield_now();
                }
                co_return 1; // published: wakes the waiter
            });
            co_await std::move(*waiter);
            if (value != 1) {
                co_return not_counted;
            }
        }
        co_return counted;
    }());
    REQUIRE(counted == 0);
    for (weft::once_cell<int>& cell : cells) {
        REQUIRE(*cell.get() == 1);
    }
}
