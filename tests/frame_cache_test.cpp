// The workers' frame caches (Options::frame_cache_bytes, detail/
// frame_cache.hpp): a freed block is reused by the next frame of its class,
// a block freed by a sibling goes home in batches, nothing beyond the limit
// is kept, and every block goes back to the heap in the end (the ASan build
// checks that nothing leaks, and poisons free blocks so that a use after
// free still reports). tests/allocation_test.cpp counts the heap
// allocations this saves.
#include <weft/weft.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using weft::detail::frame_cache;

constexpr std::size_t roomy = 64 * 1024;

/// Two caches of one executor, as a runtime attaches them.
struct siblings {
    std::array<frame_cache, 2> caches;
    std::array<std::array<frame_cache::outbox, 2>, 2> outboxes{};

    explicit siblings(std::size_t limit, std::uint32_t group = 7) {
        for (std::uint32_t i = 0; i < 2; ++i) {
            caches[i].attach(caches.data(), outboxes[i].data(), 2, i, group, limit);
        }
    }
    ~siblings() {
        for (frame_cache& c : caches) {
            c.release_all();
        }
    }
};

void* take(frame_cache& cache, std::size_t bytes, std::uint32_t& origin) {
    const weft::detail::frame_block block = cache.allocate(bytes);
    REQUIRE(block.memory != nullptr);
    origin = block.origin;
    return block.memory;
}

} // namespace

TEST_CASE("a block freed on its worker is the next one its class hands out", "[frame_cache]") {
    siblings s(roomy);
    frame_cache& cache = s.caches[0];
    std::uint32_t origin = 0;
    void* first = take(cache, 200, origin);
    REQUIRE((origin & weft::detail::cached_origin) != 0);
    REQUIRE(frame_cache::block_size_of(origin) == 224); // 200 rounded up to a 32-byte step
    cache.free(first, origin);
    REQUIRE(cache.cached_bytes() == 224);

    std::uint32_t again = 0;
    REQUIRE(take(cache, 193, again) == first); // same class: 193..224 bytes
    REQUIRE(again == origin);
    REQUIRE(cache.cached_bytes() == 0);

    std::uint32_t other = 0;
    void* bigger = take(cache, 225, other); // the next class: not that block
    REQUIRE(frame_cache::block_size_of(other) == 256);
    cache.free(first, origin);
    cache.free(bigger, other);
    REQUIRE(cache.cached_bytes() == 224 + 256);
}

TEST_CASE("a cache keeps no more than its limit and gives the rest to the heap", "[frame_cache]") {
    siblings s(3 * 256);
    frame_cache& cache = s.caches[0];
    std::vector<void*> blocks;
    std::uint32_t origin = 0;
    for (int i = 0; i < 5; ++i) {
        blocks.push_back(take(cache, 256, origin));
    }
    for (void* block : blocks) {
        cache.free(block, origin);
    }
    REQUIRE(cache.cached_bytes() == 3 * 256);
}

TEST_CASE("a block freed on a sibling goes home in batches and is reused there", "[frame_cache]") {
    siblings s(roomy);
    frame_cache& home = s.caches[0];
    frame_cache& away = s.caches[1];
    std::vector<void*> blocks;
    std::uint32_t origin = 0;
    for (std::uint32_t i = 0; i < frame_cache::batch; ++i) {
        blocks.push_back(take(home, 100, origin));
    }
    // All but one: they wait in the sibling's outbox, neither cache has them.
    for (std::uint32_t i = 0; i + 1 < frame_cache::batch; ++i) {
        away.free(blocks[i], origin);
    }
    REQUIRE(away.cached_bytes() == 0);
    REQUIRE(home.cached_bytes() == 0);
    std::uint32_t fresh_origin = 0;
    void* fresh = take(home, 100, fresh_origin);
    for (void* block : blocks) {
        REQUIRE(fresh != block);
    }
    // The last one fills the batch: it goes home at once, and home's next
    // allocation of the class takes the batch.
    away.free(blocks.back(), origin);
    std::uint32_t reused_origin = 0;
    void* reused = take(home, 100, reused_origin);
    REQUIRE(std::find(blocks.begin(), blocks.end(), reused) != blocks.end());
    REQUIRE(home.cached_bytes() == (frame_cache::batch - 1) * frame_cache::block_size_of(origin));
    home.free(reused, reused_origin);
    home.free(fresh, fresh_origin);
}

TEST_CASE("a home at its limit takes no more: the sender gives the batch to the heap", "[frame_cache]") {
    constexpr std::size_t block = 128;
    siblings s(frame_cache::batch * block); // room for one batch
    frame_cache& home = s.caches[0];
    frame_cache& away = s.caches[1];
    std::vector<void*> blocks;
    std::uint32_t origin = 0;
    for (std::uint32_t i = 0; i < 3 * frame_cache::batch; ++i) {
        blocks.push_back(take(home, block, origin));
    }
    // Three batches sent home while home allocates nothing: it keeps one.
    for (void* b : blocks) {
        away.free(b, origin);
    }
    REQUIRE(home.cached_bytes() == frame_cache::batch * block);
    REQUIRE(away.cached_bytes() == 0);
}

TEST_CASE("flush sends a partial batch home", "[frame_cache]") {
    siblings s(roomy);
    std::uint32_t origin = 0;
    void* block = take(s.caches[0], 64, origin);
    s.caches[1].free(block, origin);
    s.caches[1].flush();
    std::uint32_t again = 0;
    REQUIRE(take(s.caches[0], 64, again) == block);
    s.caches[0].free(block, again);
}

TEST_CASE("a block of another executor's cache is kept where it is freed", "[frame_cache]") {
    siblings mine(roomy, 1);
    siblings theirs(roomy, 2);
    std::uint32_t origin = 0;
    void* block = take(theirs.caches[0], 300, origin);
    mine.caches[1].free(block, origin);
    REQUIRE(mine.caches[1].cached_bytes() == frame_cache::block_size_of(origin));
    std::uint32_t again = 0;
    REQUIRE(take(mine.caches[1], 300, again) == block);
    mine.caches[1].free(block, again);
}

TEST_CASE("two threads trading blocks never get one block twice", "[frame_cache]") {
    siblings s(roomy);
    constexpr int rounds = 20'000;
    std::mutex lock;
    std::vector<std::pair<void*, std::uint32_t>> mailbox[2];
    std::atomic<int> done{0};
    std::atomic<bool> broken{false};
    auto run = [&](std::uint32_t me) {
        frame_cache& cache = s.caches[me];
        std::vector<std::pair<void*, std::uint32_t>> held;
        for (int i = 0; i < rounds; ++i) {
            const auto [block, origin] = cache.allocate(64 + static_cast<std::size_t>(i % 3) * 64);
            if (block == nullptr) {
                broken = true;
                break;
            }
            // Stamp it: a block handed out twice shows another stamp.
            auto* stamp = static_cast<std::uint64_t*>(block);
            *stamp = (std::uint64_t{me} << 32) | static_cast<std::uint32_t>(i);
            std::lock_guard<std::mutex> hold(lock);
            mailbox[1 - me].emplace_back(block, origin);
            held.swap(mailbox[me]);
            for (auto& [b, o] : held) {
                if ((*static_cast<std::uint64_t*>(b) >> 32) != 1 - me) {
                    broken = true;
                }
            }
            for (auto& [b, o] : held) {
                cache.free(b, o);
            }
            held.clear();
        }
        cache.flush();
        done.fetch_add(1);
    };
    std::thread a(run, 0);
    std::thread b(run, 1);
    a.join();
    b.join();
    for (auto& box : mailbox) {
        for (auto& [block, origin] : box) {
            s.caches[0].free(block, origin);
        }
    }
    REQUIRE_FALSE(broken.load());
    REQUIRE(done.load() == 2);
}

namespace {

struct no_cache : weft::default_options {
    static constexpr std::size_t frame_cache_bytes = 0;
};

weft::task<int> leaf(int x) { co_return x; }

template <class Executor>
std::size_t cached_after_work(Executor& ex) {
    const int sum = ex.block_on([]() -> weft::task<int> {
        int total = 0;
        for (int i = 0; i < 1000; ++i) {
            total += co_await weft::spawn(leaf(1));
        }
        co_return total;
    }());
    REQUIRE(sum == 1000);
    return ex.metrics().cached_frame_bytes;
}

} // namespace

// An outbox per sibling and 8 bits of origin for the home: no caches for
// executors of more than frame_cache::max_workers workers.
static_assert(weft::detail::runtime<frame_cache::max_workers, 64, weft::default_options>::cache_frames);
static_assert(!weft::detail::runtime<frame_cache::max_workers + 1, 64, weft::default_options>::cache_frames);

TEST_CASE("the workers keep freed frames up to Options::frame_cache_bytes, and none without it",
          "[frame_cache]") {
    weft::executor<2, 256> ex;
    const std::size_t cached = cached_after_work(ex);
    REQUIRE(cached > 0);
    REQUIRE(cached <= 2 * weft::default_options::frame_cache_bytes);

    weft::executor<2, 256, no_cache> plain;
    REQUIRE(cached_after_work(plain) == 0);
}
