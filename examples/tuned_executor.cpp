// An executor tuned at compile time (Options: derive from
// weft::default_options, override a few knobs) and at run time
// (weft::settings: thread names, stack size), running three kinds of work
// at once: one CPU-bound fib(base + i) per worker, twice as many I/O-like
// tasks that sleep 100 ms, and one blocking call (a 1 s sleep of the
// thread) on a blocking thread, where it stalls no worker. Prints each
// result, where it ran and how long it took.
//
//   ./tuned_executor [base]      (default 30: fib(30) .. fib(33))
#include <weft/weft.hpp>

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// A small board: few timers, no sockets, at most 2 blocking threads.
struct tuned_options : weft::default_options {
    static constexpr std::uint32_t max_timers = 64;
    static constexpr std::uint32_t max_io_sources = 8;
    static constexpr std::uint32_t max_blocking_threads = 2;
};

constexpr std::uint32_t workers = 4;
using executor = weft::executor<workers, 64, tuned_options>; // 64-slot local queues

std::string thread_name() {
    char name[16] = "?";
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    return name;
}

long long ms_since(weft::clock::time_point start) {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(weft::clock::now() - start).count());
}

std::uint64_t fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

// CPU-bound: holds its worker until done, so keep such tasks short (or
// give them to spawn_blocking when they are not).
weft::task<> compute(unsigned n) {
    const auto start = weft::clock::now();
    const std::uint64_t value = fib(n);
    std::printf("fib(%u) = %llu on %s in %lld ms\n", n, static_cast<unsigned long long>(value),
                thread_name().c_str(), ms_since(start));
    co_return;
}

// I/O-like: waits without holding a thread.
weft::task<> wait_for_io(int id) {
    const auto start = weft::clock::now();
    (void)co_await weft::sleep_for(100ms);
    std::printf("io %d: waited 100 ms, woke on %s after %lld ms\n", id, thread_name().c_str(),
                ms_since(start));
}

weft::task<> run(unsigned base) {
    std::vector<weft::join_handle<void>> handles;
    for (unsigned i = 0; i < workers; ++i) {
        handles.push_back(weft::spawn(compute(base + i)));
    }
    for (int i = 0; i < 2 * static_cast<int>(workers); ++i) {
        handles.push_back(weft::spawn(wait_for_io(i)));
    }
    auto blocking = weft::spawn_blocking([] {
        const auto start = weft::clock::now();
        std::this_thread::sleep_for(1s); // a blocking call: a driver's ioctl, a file read...
        std::printf("blocking job: slept 1 s on %s in %lld ms\n", thread_name().c_str(), ms_since(start));
    });
    for (auto& handle : handles) {
        co_await handle;
    }
    co_await blocking;
}

} // namespace

int main(int argc, char** argv) {
    const auto base = static_cast<unsigned>(argc > 1 ? std::atoi(argv[1]) : 30);
    weft::settings config;
    config.thread_name_prefix = "tuned"; // workers "tuned-0".., blocking threads "tuned-blk-0"..
    config.stack_size = 256 * 1024;      // coroutine frames live on the heap: small stacks do
    const auto start = weft::clock::now();
    executor ex(config);
    ex.block_on(run(base));
    std::printf("all joined after %lld ms\n", ms_since(start));
    return 0;
}
