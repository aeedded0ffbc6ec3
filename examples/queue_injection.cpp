// Spawning from outside the executor: main() is not a worker, so what it
// spawns with executor::spawn goes to the global injection queue, from which
// the workers take tasks in batches (and look at it every 31 tasks even when
// busy, so injected work is never starved). Phase 1 injects 1,000 very short
// tasks; phase 2 injects 10 long ones that each sleep 1 ms 100 times. After
// each phase the program prints what the executor counted.
//
//   ./queue_injection
#include <weft/weft.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t workers = 2;
using executor = weft::executor<workers>;

void print_metrics(const char* phase, const weft::executor_metrics<workers>& m) {
    std::printf("%s metrics: spawned_tasks %llu, remote_schedules %llu, live_tasks %zu, armed_timers %u\n",
                phase, static_cast<unsigned long long>(m.spawned_tasks),
                static_cast<unsigned long long>(m.remote_schedules), m.live_tasks, m.armed_timers);
    for (std::uint32_t w = 0; w < workers; ++w) {
        std::printf("  worker %u: polls %llu, steals %llu, parks %llu, unparks %llu\n", w,
                    static_cast<unsigned long long>(m.workers[w].polls),
                    static_cast<unsigned long long>(m.workers[w].steals),
                    static_cast<unsigned long long>(m.workers[w].parks),
                    static_cast<unsigned long long>(m.workers[w].unparks));
    }
}

// Phase 1: 1,000 tasks that each do almost nothing. Returns how many ran.
int short_tasks(executor& ex) {
    std::atomic<int> completed{0};
    std::vector<weft::join_handle<void>> handles;
    for (int i = 0; i < 1000; ++i) {
        handles.push_back(ex.spawn([&completed] { completed.fetch_add(1, std::memory_order_relaxed); }));
    }
    for (auto& handle : handles) {
        handle.get(); // main() may block: it is not a worker
    }
    std::printf("phase 1: spawned %zu short tasks from main, %d completed\n", handles.size(),
                completed.load());
    return completed.load();
}

// Phase 2: 10 tasks that each sleep 1 ms 100 times.
weft::task<int> long_task() {
    int sleeps = 0;
    for (int i = 0; i < 100; ++i) {
        if (co_await weft::sleep_for(1ms)) {
            ++sleeps;
        }
    }
    co_return sleeps;
}

// Returns how many sleeps completed.
int long_tasks(executor& ex) {
    const auto start = weft::clock::now();
    std::vector<weft::join_handle<int>> handles;
    for (int i = 0; i < 10; ++i) {
        handles.push_back(ex.spawn(long_task()));
    }
    int completed = 0;
    int sleeps = 0;
    for (auto& handle : handles) {
        sleeps += handle.get();
        ++completed;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(weft::clock::now() - start);
    std::printf("phase 2: spawned %zu long tasks from main, %d completed, %d sleeps of 1 ms in %lld ms\n",
                handles.size(), completed, sleeps, static_cast<long long>(elapsed.count()));
    return sleeps;
}

} // namespace

int main() {
    executor ex;
    const int short_done = short_tasks(ex);
    print_metrics("phase 1", ex.metrics());
    const int sleeps = long_tasks(ex);
    print_metrics("phase 2", ex.metrics());
    return short_done == 1000 && sleeps == 10 * 100 ? 0 : 1;
}
