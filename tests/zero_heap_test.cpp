// No heap in steady state: with the frame pool on, once warmed up, spawning
// and joining 100,000 tasks that sleep, pass values through a channel and a
// oneshot, and read and write a TCP connection over loopback allocates
// nothing at all. Counted through a replaced global operator new (every
// form), so this file is a test executable of its own; the counts are
// taken inside the tasks around the measured region only, never around a
// Catch2 assertion (which allocates).
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {
std::atomic<std::uint64_t> g_allocations{0};

void* counted_malloc(std::size_t size) noexcept {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}

void* counted_aligned(std::size_t size, std::align_val_t alignment) noexcept {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    const auto align = static_cast<std::size_t>(alignment);
    return std::aligned_alloc(align, (size + align - 1) / align * align);
}

void* or_throw(void* p) {
    if (p == nullptr) {
#if defined(__cpp_exceptions)
        throw std::bad_alloc();
#else
        std::abort();
#endif
    }
    return p;
}
} // namespace

void* operator new(std::size_t size) { return or_throw(counted_malloc(size)); }
void* operator new[](std::size_t size) { return or_throw(counted_malloc(size)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new(std::size_t size, std::align_val_t a) { return or_throw(counted_aligned(size, a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return or_throw(counted_aligned(size, a)); }
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted_aligned(size, a);
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted_aligned(size, a);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

// Classes with room for every frame below under g++ and clang at any
// optimisation level, sanitizers included (a socket operation's frames
// reach about 820 bytes under clang with ASan).
// Every frame from the heap.
struct no_frame_cache : weft::default_options {
    static constexpr std::size_t frame_cache_bytes = 0;
};

struct pooled : weft::default_options {
    static constexpr bool use_frame_pool = true;
    static constexpr std::array<weft::frame_pool_class, 4> frame_pool_classes{{
        {256, 1024},
        {512, 1024},
        {1024, 256},
        {2048, 64},
    }};
};

// One batch: `per_batch` tasks of four kinds, plus a writer and a reader
// on the socket pair, all joined before the next batch.
constexpr std::size_t per_batch = 64;

struct workload {
    weft::channel<int, 4> channel;
    weft::tcp_stream* client = nullptr;
    weft::tcp_stream* server = nullptr;
    std::atomic<std::uint64_t> failures{0};
};

// (Each co_await result goes to a local first: g++ 12 miscompiles
// `if (co_await x) co_return y;`, a co_await in the condition of an if whose
// branch co_returns; the task never finishes, or dies on ud2.)
weft::task<int> sleeper(int i) {
    const weft::result<void> slept = co_await weft::sleep_for(50us);
    co_return slept ? i : -1'000'000;
}

weft::task<int> producer(workload* w, int i) {
    const weft::result<void> sent = co_await w->channel.send(int{i});
    if (!sent) {
        w->failures.fetch_add(1, std::memory_order_relaxed);
    }
    co_return 0;
}

weft::task<int> consumer(workload* w) {
    auto value = co_await w->channel.recv();
    co_return value ? *value : -1'000'000;
}

weft::task<int> with_oneshot(int i) {
    auto [tx, rx] = weft::make_oneshot<int>();
    auto sender = weft::spawn([tx = std::move(tx), i]() mutable { return tx.send(int{i}) ? 0 : 1; });
    auto got = co_await rx;
    const int send_failed = co_await sender;
    co_return got&& send_failed == 0 ? *got : -1'000'000;
}

weft::task<int> socket_writer(workload* w, int i) {
    std::array<std::byte, 32> out{};
    out.fill(static_cast<std::byte>(i));
    auto sent = co_await w->client->write_all(out);
    co_return sent ? 0 : 1;
}

weft::task<int> socket_reader(workload* w, int i) {
    std::array<std::byte, 32> in{};
    auto got = co_await weft::timeout(30s, w->server->read_exact(in));
    co_return got&&* got&& in[31] == static_cast<std::byte>(i) ? 0 : 1;
}

/// Runs `batches` batches; returns the sum of what the tasks returned,
/// which says whether every one did its job.
weft::task<std::int64_t> run_batches(workload* w, std::uint64_t batches) {
    std::array<weft::join_handle<int>, per_batch + 2> handles;
    std::int64_t sum = 0;
    for (std::uint64_t b = 0; b < batches; ++b) {
        for (std::size_t i = 0; i < per_batch; ++i) {
            const int id = static_cast<int>(i);
            switch (i % 4) {
            case 0: handles[i] = weft::spawn(sleeper(id)); break;
            case 1: handles[i] = weft::spawn(producer(w, id)); break;
            case 2: handles[i] = weft::spawn(consumer(w)); break;
            default: handles[i] = weft::spawn(with_oneshot(id)); break;
            }
        }
        handles[per_batch] = weft::spawn(socket_reader(w, static_cast<int>(b % 128)));
        handles[per_batch + 1] = weft::spawn(socket_writer(w, static_cast<int>(b % 128)));
        for (auto& h : handles) {
            sum += co_await h;
        }
    }
    co_return sum;
}

/// What one batch's tasks add up to.
constexpr std::int64_t batch_sum() {
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < per_batch; ++i) {
        // sleepers and oneshots return i; producer 4k+1 sends 4k+1, which
        // consumer 4k+2 (or another consumer) receives.
        sum += i % 4 == 0 || i % 4 == 3 ? static_cast<std::int64_t>(i) : 0;
        sum += i % 4 == 1 ? static_cast<std::int64_t>(i) : 0;
    }
    return sum;
}

struct measured {
    std::uint64_t allocations = 0;
    std::uint64_t tasks = 0;
    bool correct = false;
    std::uint64_t failures = 0;
};

/// Sets up a connected pair over loopback, warms up, then counts the
/// allocations of `tasks` tasks' worth of batches.
template <class Executor>
measured measure(Executor& ex, std::uint64_t tasks) {
    auto root = [](std::uint64_t wanted) -> weft::task<measured> {
        workload w;
        auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_loopback(0));
        auto where =
            listener ? listener->local_address() : weft::result<weft::socket_address>(weft::errc::closed);
        if (!where) {
            co_return measured{};
        }
        auto client = co_await weft::tcp_stream::connect(*where);
        auto server = co_await listener->accept();
        if (!client || !server) {
            co_return measured{};
        }
        w.client = &*client;
        w.server = &*server;

        const std::uint64_t batches = (wanted + per_batch + 1) / (per_batch + 2);
        const std::int64_t warm = co_await run_batches(&w, 8); // first uses: thread-locals, slabs, the pool
        const std::uint64_t before = g_allocations.load(std::memory_order_relaxed);
        const std::int64_t sum = co_await run_batches(&w, batches);
        const std::uint64_t after = g_allocations.load(std::memory_order_relaxed);
        measured out;
        out.allocations = after - before;
        out.tasks = batches * (per_batch + 2) + batches * (per_batch / 4); // with the oneshots' senders
        out.correct = warm == 8 * batch_sum() && sum == static_cast<std::int64_t>(batches) * batch_sum();
        out.failures = w.failures.load();
        co_return out;
    };
    return ex.block_on(root(tasks));
}

} // namespace

TEST_CASE("with the frame pool, 100,000 tasks using timers, channels and sockets allocate nothing",
          "[zero_heap]") {
    weft::executor<2, 256, pooled> ex;
    const measured m = measure(ex, weft_test::scaled(100'000));
    REQUIRE(m.correct);
    REQUIRE(m.failures == 0);
    REQUIRE(m.tasks >= weft_test::scaled(100'000));
    REQUIRE(m.allocations == 0);
    // Every block came home.
    const std::uint64_t blocks = 1024 + 1024 + 256 + 64;
    REQUIRE(weft_test::wait_until([&] { return ex.metrics().free_frame_blocks == blocks; }));
}

TEST_CASE("without the frame pool or the frame cache the same work allocates: the counter sees it",
          "[zero_heap]") {
    weft::executor<2, 256, no_frame_cache> ex;
    const measured m = measure(ex, weft_test::scaled(2'000));
    REQUIRE(m.correct);
    REQUIRE(m.allocations >= m.tasks); // at least one frame per task
}
