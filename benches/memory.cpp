// memory: heap bytes and allocations per spawned task, counted in malloc
// (this program replaces the malloc family with counting wrappers).
//
//   bytes_per_task   10,000 empty tasks spawned from outside and joined:
//                    heap bytes allocated per task (allocs_per_task is the
//                    number of blocks, as an extra)
//
// Runtimes: weft (a plain callable, as ex.spawn([] {})); weft_coroutine (a
// task<> coroutine function spawned); naive (a std::function in a deque);
// asio (asio::post; asio recycles handler memory per thread, and this
// counts what reaches malloc); floor (bare coroutine frames). TBB is left
// out: it allocates its tasks from its own scalable allocator (tbbmalloc,
// mmap-backed), not malloc, so this count would be zero and meaningless.
//
// weft has no frame pool yet, so the "with the frame pool enabled" figure
// that the benchmark brief asks for does not exist.
//
//   usage: memory [--workers N] [--reps N] [--quick] [--runtime ...]
#include <weft/weft.hpp>

#include "support/floor.hpp"
#include "support/harness.hpp"
#include "support/peers.hpp"
#include "support/workers.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <vector>

// The malloc family, counted and passed on to glibc's own allocator. Below
// operator new (libstdc++'s calls malloc), so it sees every runtime's
// allocations, including those that bypass operator new (asio's handler
// memory comes from aligned_alloc).
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* block, std::size_t size);
void* __libc_memalign(std::size_t align, std::size_t size);
void __libc_free(void* block);
}

namespace {

std::atomic<std::uint64_t> g_bytes{0};
std::atomic<std::uint64_t> g_blocks{0};

void count(std::size_t size) {
    g_bytes.fetch_add(size, std::memory_order_relaxed);
    g_blocks.fetch_add(1, std::memory_order_relaxed);
}

} // namespace

extern "C" {
void* malloc(std::size_t size) {
    count(size);
    return __libc_malloc(size);
}
void* calloc(std::size_t count_, std::size_t size) {
    count(count_ * size);
    return __libc_calloc(count_, size);
}
void* realloc(void* block, std::size_t size) {
    count(size);
    return __libc_realloc(block, size);
}
void* aligned_alloc(std::size_t align, std::size_t size) {
    count(size);
    return __libc_memalign(align, size);
}
void* memalign(std::size_t align, std::size_t size) {
    count(size);
    return __libc_memalign(align, size);
}
int posix_memalign(void** out, std::size_t align, std::size_t size) {
    count(size);
    *out = __libc_memalign(align, size);
    return *out != nullptr ? 0 : ENOMEM;
}
void free(void* block) { __libc_free(block); }
}

namespace {

constexpr const char* family = "memory";
constexpr std::size_t task_count = 10'000;

/// Counts what `spawn_all()` allocates, once to warm up and then --reps
/// times, and prints bytes per task (allocations per task as an extra).
template <class SpawnAll>
void measure(const bench::options& opts, const char* runtime, SpawnAll&& spawn_all) {
    bench::result r = bench::make_result(opts, family, "bytes_per_task", runtime, "bytes");
    std::vector<double> blocks;
    r.samples = bench::repeat(opts.reps(), [&] {
        const std::uint64_t bytes_before = g_bytes.load();
        const std::uint64_t blocks_before = g_blocks.load();
        spawn_all();
        blocks.push_back(static_cast<double>(g_blocks.load() - blocks_before) / task_count);
        return static_cast<double>(g_bytes.load() - bytes_before) / task_count;
    });
    r.extra("allocs_per_task", bench::percentile(blocks, 0.5));
    bench::print(r);
}

weft::task<> empty_task() { co_return; }
bench::floor_task<> empty_floor_task() { co_return; }

template <class Executor>
void run_weft(const bench::options& opts) {
    std::vector<weft::join_handle<void>> handles;
    handles.reserve(task_count);
    const auto join_all = [&] {
        for (auto& h : handles) {
            h.get();
        }
        handles.clear();
    };
    if (opts.wants("bytes_per_task", "weft")) {
        Executor ex;
        measure(opts, "weft", [&] {
            for (std::size_t i = 0; i < task_count; ++i) {
                handles.push_back(ex.spawn([] {}));
            }
            join_all();
        });
    }
    if (opts.wants("bytes_per_task", "weft_coroutine")) {
        Executor ex;
        measure(opts, "weft_coroutine", [&] {
            for (std::size_t i = 0; i < task_count; ++i) {
                handles.push_back(ex.spawn(empty_task()));
            }
            join_all();
        });
    }
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(argc, argv);
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft", "weft_coroutine"};
        for (const char* name : bench::pool_names()) {
            if (std::string_view(name) != "tbb") {
                runtimes.push_back(name);
            }
        }
        runtimes.push_back("floor");
        bench::print_list(family, {"bytes_per_task"}, runtimes);
        return 0;
    }
    bench::with_workers(opts.workers(), [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts); });

    bench::for_each_pool(opts, "bytes_per_task", [&](auto& pool) {
        if (std::string_view(pool.name) == "tbb") {
            return; // see the header
        }
        bench::latch done;
        measure(opts, pool.name, [&] {
            done.reset(task_count);
            for (std::size_t i = 0; i < task_count; ++i) {
                pool.post([&done] { done.count_down(); });
            }
            done.wait();
        });
    });

    if (opts.wants("bytes_per_task", "floor")) {
        std::vector<bench::floor_task<>> tasks;
        tasks.reserve(task_count);
        measure(opts, "floor", [&] {
            for (std::size_t i = 0; i < task_count; ++i) {
                tasks.push_back(empty_floor_task());
            }
            for (auto& t : tasks) {
                t.run();
            }
            tasks.clear();
        });
    }
    return 0;
}
