// A task's life: spawned, run by a worker, suspended at each co_await
// (its worker runs other tasks meanwhile), resumed when its timer fires,
// perhaps on another worker, and joined when it finishes. 10 tasks each do
// 5 iterations of a 10 ms sleep and print which worker thread runs them;
// the sleeps overlap, so the whole run takes about 50 ms, not 500.
//
//   ./task_lifecycle
#include <weft/weft.hpp>

#include <pthread.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int tasks = 10;
constexpr int iterations = 5;

// The OS name of the calling thread: workers are "<prefix>-<index>".
std::string thread_name() {
    char name[16] = "?";
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    return name;
}

weft::task<int> lifecycle(int id) {
    int done = 0;
    for (int i = 0; i < iterations; ++i) {
        std::printf("task %d: iteration %d on %s\n", id, i, thread_name().c_str());
        if (!co_await weft::sleep_for(10ms)) { // suspended here; no thread waits
            break;                             // no free timer (Options::max_timers)
        }
        ++done;
    }
    co_return done;
}

weft::task<int> run_all() {
    std::vector<weft::join_handle<int>> handles;
    for (int id = 0; id < tasks; ++id) {
        handles.push_back(weft::spawn(lifecycle(id))); // queued; runs as soon as a worker is free
    }
    int total = 0;
    for (auto& handle : handles) {
        total += co_await handle; // waits until that task has finished
    }
    co_return total;
}

} // namespace

int main() {
    weft::executor<2> ex; // workers "weft-0" and "weft-1"
    const auto start = weft::clock::now();
    const int total = ex.block_on(run_all());
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(weft::clock::now() - start);
    std::printf("total iterations: %d\n", total);
    std::printf("elapsed: %lld ms (%d tasks x %d sleeps of 10 ms, overlapping)\n",
                static_cast<long long>(elapsed.count()), tasks, iterations);
    return total == tasks * iterations ? 0 : 1;
}
