// A spawn allocates exactly one block: the coroutine frame with the task
// header and the join state in front of it. Counted through a replaced
// global operator new.
#include <weft/weft.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

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

} // namespace

TEST_CASE("spawning and joining a task allocates exactly one block", "[allocation]") {
    weft::executor<2, 256> ex;
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
    weft::executor<1, 256> ex;
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
