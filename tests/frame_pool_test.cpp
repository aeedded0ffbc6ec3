// The frame pool (Options::use_frame_pool): frames come from a fixed
// region, go back to it from any thread, and an exhausted class either
// falls back to the heap or makes spawn (and everything else that needs a
// frame) raise errc::capacity_exhausted, as Options says. Nothing leaks:
// the ASan build checks the heap, free_frame_blocks the pool.
// (tests/zero_heap_test.cpp counts heap allocations with the pool on.)
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <system_error>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t tiny_blocks = 4;

// Four blocks of 1 KiB: every frame in this file fits one.
struct tiny_pool : weft::default_options {
    static constexpr bool use_frame_pool = true;
    static constexpr std::array<weft::frame_pool_class, 1> frame_pool_classes{{{1024, tiny_blocks}}};
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::fail;
};

struct tiny_pool_heap : tiny_pool {
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::use_heap;
};

// One class too small for big_frame() below.
struct small_blocks : weft::default_options {
    static constexpr bool use_frame_pool = true;
    static constexpr std::array<weft::frame_pool_class, 1> frame_pool_classes{{{512, 8}}};
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::fail;
};

struct small_blocks_heap : small_blocks {
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::use_heap;
};

struct two_classes : weft::default_options {
    static constexpr bool use_frame_pool = true;
    static constexpr std::array<weft::frame_pool_class, 2> frame_pool_classes{{{256, 128}, {1024, 128}}};
    static constexpr auto on_frame_pool_exhausted = weft::pool_exhaustion::fail;
};

// The coroutines below are never inlined, so clang cannot place their
// frames inside their callers' (coroutine elision) and every call
// allocates, as these tests count.

/// Waits until the gate opens (one release lets everybody through: each
/// waiter's permit goes back when it leaves).
[[gnu::noinline]] weft::task<int> gated(weft::semaphore* gate) {
    auto pass = co_await gate->acquire();
    co_return 1;
}

[[gnu::noinline]] weft::task<int> leaf(int x) { co_return x; }

/// A frame of more than 2 KiB: the buffer lives across a suspension.
[[gnu::noinline, maybe_unused]] weft::task<int> big_frame() {
    volatile unsigned char buffer[2048] = {};
    buffer[7] = 7;
    co_await weft::yield_now();
    co_return buffer[7];
}

#if defined(__cpp_exceptions)
using weft_test::raised;
#endif

template <class Executor>
bool pool_is_full(Executor& ex, std::uint64_t blocks) {
    // The last reference to a finished task may be dropped by its worker
    // just after its joiner returned: wait for it.
    return weft_test::wait_until([&] { return ex.metrics().free_frame_blocks == blocks; });
}

} // namespace

TEST_CASE("spawned tasks take their blocks from the pool and give them back", "[frame_pool]") {
    weft::executor<2, 64, tiny_pool> ex;
    REQUIRE(ex.metrics().free_frame_blocks == tiny_blocks);
    weft::semaphore gate(0);
    auto body = [&]() -> weft::task<std::uint64_t> {
        std::vector<weft::join_handle<int>> held;
        for (std::uint32_t i = 0; i < 3; ++i) {
            held.push_back(weft::spawn(gated(&gate)));
        }
        const std::uint64_t free_while_held = ex.metrics().free_frame_blocks;
        gate.release(1);
        int sum = 0;
        for (auto& h : held) {
            sum += co_await h;
        }
        co_return sum == 3 ? free_while_held : 999;
    };
    // body() is made on this thread, not a worker: its frame is the heap's.
    REQUIRE(ex.block_on(body()) == tiny_blocks - 3);
    REQUIRE(pool_is_full(ex, tiny_blocks));
}

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("with on_frame_pool_exhausted = fail, everything that needs a frame raises capacity_exhausted",
          "[frame_pool]") {
    weft::executor<2, 64, tiny_pool> ex;
    weft::semaphore gate(0);
    std::atomic<int> wrong{0};
    auto expect_exhausted = [&](std::error_code code) {
        if (code != weft::errc::capacity_exhausted) {
            wrong.fetch_add(1);
        }
    };
    auto body = [&]() -> weft::task<int> {
        std::vector<weft::join_handle<int>> held;
        for (std::uint32_t i = 0; i < tiny_blocks; ++i) {
            held.push_back(weft::spawn(gated(&gate)));
        }
        // The pool is empty now.
        weft::task<int> no_frame = leaf(1);
        if (no_frame.valid() || !no_frame.frame_allocation_failed()) {
            wrong.fetch_add(1);
        }
        expect_exhausted(raised([&] { (void)weft::spawn(leaf(2)); }));
        expect_exhausted(raised([&] { (void)weft::spawn([] { return 3; }); }));
        expect_exhausted(raised([&] { (void)weft::spawn_blocking([] { return 4; }); }));
        expect_exhausted(raised([&] { (void)weft::make_oneshot<int>(); }));
        try {
            (void)co_await leaf(5);
            wrong.fetch_add(1);
        } catch (const weft::error& e) {
            expect_exhausted(e.code());
        }
        try {
            (void)co_await weft::timeout(1s, leaf(6));
            wrong.fetch_add(1);
        } catch (const weft::error& e) {
            expect_exhausted(e.code());
        }
        // Moved from: still an allocation failure, not a misuse.
        weft::task<int> moved = std::move(no_frame);
        expect_exhausted(raised([&] { (void)weft::spawn(std::move(moved)); }));
        // An empty task that never had a frame problem is still invalid_handle.
        if (raised([&] { (void)weft::spawn(std::move(no_frame)); }) != weft::errc::invalid_handle) {
            wrong.fetch_add(1);
        }

        gate.release(1);
        int sum = 0;
        for (auto& h : held) {
            sum += co_await h;
        }
        // The blocks come back (a finished task's worker may drop its
        // last reference just after the join returned: wait for that), and
        // the pool serves again, many times over.
        for (int round = 0; round < 100; ++round) {
            while (ex.metrics().free_frame_blocks != tiny_blocks) {
                co_await weft::yield_now();
            }
            std::array<weft::join_handle<int>, tiny_blocks> again;
            for (auto& h : again) {
                h = weft::spawn(leaf(1));
            }
            for (auto& h : again) {
                sum += co_await h;
            }
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(body()) == static_cast<int>(tiny_blocks + 100 * tiny_blocks));
    REQUIRE(wrong.load() == 0);
    REQUIRE(pool_is_full(ex, tiny_blocks));
}
#endif

TEST_CASE("with on_frame_pool_exhausted = use_heap, an exhausted pool falls back to the heap",
          "[frame_pool]") {
    weft::executor<2, 64, tiny_pool_heap> ex;
    weft::semaphore gate(0);
    auto body = [&]() -> weft::task<int> {
        std::vector<weft::join_handle<int>> held;
        for (std::uint32_t i = 0; i < 4 * tiny_blocks; ++i) {
            held.push_back(weft::spawn(gated(&gate)));
        }
        auto [tx, rx] = weft::make_oneshot<int>();
        (void)tx.send(10);
        int sum = *co_await rx + co_await leaf(100) + *co_await weft::timeout(1s, leaf(1000));
        gate.release(1);
        for (auto& h : held) {
            sum += co_await h;
        }
        co_return sum;
    };
    REQUIRE(ex.block_on(body()) == static_cast<int>(1110 + 4 * tiny_blocks));
    REQUIRE(pool_is_full(ex, tiny_blocks));
}

TEST_CASE("with use_heap, a frame larger than the largest class runs from the heap", "[frame_pool]") {
    weft::executor<1, 64, small_blocks_heap> ex;
    auto body = []() -> weft::task<int> { co_return co_await weft::spawn(big_frame()); };
    REQUIRE(ex.block_on(body()) == 7);
    REQUIRE(pool_is_full(ex, 8));
}

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("a frame larger than the largest class is served like an exhausted pool", "[frame_pool]") {
    weft::executor<1, 64, small_blocks> ex;
    auto body = []() -> weft::task<bool> {
        co_return raised([] { (void)weft::spawn(big_frame()); }) == weft::errc::capacity_exhausted;
    };
    REQUIRE(ex.block_on(body()));
    REQUIRE(pool_is_full(ex, 8));
}
#endif

TEST_CASE("executor::spawn of a callable from outside takes its frame from that executor's pool and gives "
          "it back",
          "[frame_pool]") {
    weft::executor<2, 64, tiny_pool> ex;
    weft::semaphore gate(0);
    std::atomic<bool> waiting{false};
    auto waits = [&gate, &waiting]() -> weft::task<int> {
        waiting.store(true);
        auto pass = co_await gate.acquire();
        co_return 1;
    };
    REQUIRE(ex.metrics().free_frame_blocks == tiny_blocks);
    weft::join_handle<int> held = ex.spawn(waits);
    REQUIRE(weft_test::wait_until([&] { return waiting.load(); }));
    // Spawned from this thread, which is not one of the executor's: the
    // callable's frame came from the pool all the same.
    REQUIRE(ex.metrics().free_frame_blocks < tiny_blocks);
    gate.release(1);
    REQUIRE(held.get() == 1);
    REQUIRE(pool_is_full(ex, tiny_blocks));
}

#if defined(__cpp_exceptions) // checks what a throw reports
TEST_CASE("executor::spawn of a callable takes its frame from that executor's pool, from any thread",
          "[frame_pool]") {
    weft::executor<2, 64, tiny_pool> ex;
    weft::semaphore gate(0);
    std::atomic<std::size_t> waiting{0};
    // A callable returning a task: one or two blocks (the callable's frame,
    // and the frame of the task it starts on the worker, unless clang's
    // coroutine elision places that one inside the first).
    auto waits = [&gate, &waiting]() -> weft::task<int> {
        waiting.fetch_add(1);
        auto pass = co_await gate.acquire();
        co_return 1;
    };
    REQUIRE(ex.spawn([] { return 1; }).get() == 1);
    REQUIRE(pool_is_full(ex, tiny_blocks));
    // Fill the pool from this thread, one waiting task at a time (so that
    // the task a callable starts has its block before the next spawn).
    std::vector<weft::join_handle<int>> held;
    std::error_code full;
    while (!full && held.size() <= tiny_blocks) {
        full = raised([&] { held.push_back(ex.spawn(waits)); });
        REQUIRE(weft_test::wait_until([&] { return waiting.load() == held.size(); }));
    }
    REQUIRE(full == weft::errc::capacity_exhausted);
    REQUIRE(held.size() >= tiny_blocks / 2);
    REQUIRE(held.size() <= tiny_blocks);
    // One or two blocks each, four blocks: none is left, so a plain
    // callable's frame cannot be had either.
    REQUIRE(ex.metrics().free_frame_blocks == 0);
    REQUIRE(raised([&] { (void)ex.spawn([] { return 2; }); }) == weft::errc::capacity_exhausted);

    // An executor without a pool does not borrow its caller's: from a task
    // of `ex` (whose pool is empty), `plain` still spawns. The task is made
    // here, so its frame is the heap's.
    weft::executor<1, 64> plain;
    auto on_ex = [](weft::executor<1, 64>& other) -> weft::task<int> {
        co_return co_await other.spawn([] { return 5; });
    };
    REQUIRE(ex.spawn(on_ex(plain)).get() == 5);

    gate.release(1);
    std::size_t sum = 0;
    for (auto& h : held) {
        sum += static_cast<std::size_t>(h.get());
    }
    REQUIRE(sum == held.size());
    REQUIRE(pool_is_full(ex, tiny_blocks));
}
#endif

TEST_CASE("blocks freed on other threads than they were taken on all come home", "[frame_pool]") {
    weft::executor<2, 64, two_classes> ex;
    const std::uint64_t rounds = weft_test::scaled(2000);
    std::atomic<std::uint64_t> sum{0};
    std::vector<std::thread> spawners;
    for (int t = 0; t < 4; ++t) {
        spawners.emplace_back([&] {
            for (std::uint64_t r = 0; r < rounds; ++r) {
                // Taken here (callables) or on a worker (the inner spawns);
                // freed here (get) or on a worker, whichever drops last.
                std::array<weft::join_handle<int>, 4> batch;
                for (auto& h : batch) {
                    h = ex.spawn([]() -> weft::task<int> { co_return co_await weft::spawn(leaf(1)); });
                }
                for (auto& h : batch) {
                    sum.fetch_add(static_cast<std::uint64_t>(h.get()));
                }
            }
        });
    }
    for (auto& t : spawners) {
        t.join();
    }
    REQUIRE(sum.load() == 4 * 4 * rounds);
    REQUIRE(pool_is_full(ex, 256));
}

TEST_CASE("shutdown with tasks still waiting gives every block back", "[frame_pool]") {
    weft::semaphore gate(0);
    {
        weft::executor<2, 64, tiny_pool> ex;
        auto body = [&]() -> weft::task<void> {
            for (std::uint32_t i = 0; i < tiny_blocks; ++i) {
                weft::spawn(gated(&gate)).detach();
            }
            co_return;
        };
        ex.block_on(body());
        REQUIRE(ex.metrics().free_frame_blocks == 0);
    } // destroyed with four tasks waiting: ASan would report a lost block
    REQUIRE(weft::detail::g_frame_pools.orphans.load() == 0);
}

TEST_CASE("a join handle that outlives its executor keeps the pool until it is dropped", "[frame_pool]") {
    weft::join_handle<int> kept;
    {
        weft::executor<1, 64, tiny_pool> ex;
        kept = ex.spawn([] { return 7; });
        REQUIRE(weft_test::wait_until([&] { return kept.is_finished(); }));
    }
    // The executor is gone; its pool is an orphan holding one block.
    REQUIRE(weft::detail::g_frame_pools.orphans.load() != 0);
    REQUIRE(kept.get() == 7); // the last block comes home: the pool is freed
    REQUIRE(weft::detail::g_frame_pools.orphans.load() == 0);
    for (const auto& slot : weft::detail::g_frame_pools.pools) {
        REQUIRE(slot.load() == nullptr);
    }
}

TEST_CASE("the frame pool's knobs are checked and documented defaults hold", "[frame_pool]") {
    REQUIRE_FALSE(weft::default_options::use_frame_pool);
    REQUIRE(weft::default_options::on_frame_pool_exhausted == weft::pool_exhaustion::use_heap);
    REQUIRE(weft::detail::valid_frame_pool_classes(weft::default_options::frame_pool_classes));
    constexpr std::array<weft::frame_pool_class, 2> unsorted{{{512, 1}, {256, 1}}};
    constexpr std::array<weft::frame_pool_class, 1> unaligned{{{100, 1}}};
    constexpr std::array<weft::frame_pool_class, 1> empty_class{{{256, 0}}};
    REQUIRE_FALSE(weft::detail::valid_frame_pool_classes(unsorted));
    REQUIRE_FALSE(weft::detail::valid_frame_pool_classes(unaligned));
    REQUIRE_FALSE(weft::detail::valid_frame_pool_classes(empty_class));
    constexpr std::array<weft::frame_pool_class, 1> too_big{
        {{std::size_t{1} << (sizeof(std::size_t) * 8 - 4), 0x7FFF'FFFFu}}};
    REQUIRE_FALSE(weft::detail::valid_frame_pool_classes(too_big));
    weft::executor<1, 64> no_pool;
    REQUIRE(no_pool.metrics().free_frame_blocks == 0);
}
