// spawn_many_remote_idle (Tokio's benches/rt_multi_threaded.rs, same
// constants): from a thread outside the executor, spawn 10,000 empty tasks,
// keep the join handles, then wait for all of them. One warm-up, then
// `--reps` timed repetitions (default 25) on one executor; prints the median
// and the spread in ns per task.
//
//   usage: spawn_many_remote_idle [--workers 1|2|4] [--reps N]
//
// The full suite (every workload, with peers) is issue #6; this program is
// the first figure, run by benches/run.
#include <weft/weft.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr std::size_t tasks_per_rep = 10'000;

template <std::uint32_t Workers>
int run(int reps) {
    weft::executor<Workers, 256> ex;
    std::vector<weft::join_handle<void>> handles;
    handles.reserve(tasks_per_rep);
    std::vector<double> ns_per_task;
    for (int rep = -1; rep < reps; ++rep) { // rep -1 is the warm-up
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < tasks_per_rep; ++i) {
            handles.push_back(ex.spawn([] {}));
        }
        for (auto& h : handles) {
            h.get();
        }
        const auto stop = std::chrono::steady_clock::now();
        handles.clear();
        if (rep >= 0) {
            ns_per_task.push_back(std::chrono::duration<double, std::nano>(stop - start).count() /
                                  tasks_per_rep);
        }
    }
    std::sort(ns_per_task.begin(), ns_per_task.end());
    const double median = ns_per_task[ns_per_task.size() / 2];
    std::printf("spawn_many_remote_idle workers=%u reps=%d: median %.0f ns/task (min %.0f, max %.0f)\n",
                Workers, reps, median, ns_per_task.front(), ns_per_task.back());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    int workers = 2;
    int reps = 25;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--workers") == 0) {
            workers = std::atoi(argv[i + 1]);
        } else if (std::strcmp(argv[i], "--reps") == 0) {
            reps = std::max(1, std::atoi(argv[i + 1]));
        }
    }
    switch (workers) {
    case 1: return run<1>(reps);
    case 2: return run<2>(reps);
    case 4: return run<4>(reps);
    default: std::fprintf(stderr, "--workers must be 1, 2 or 4\n"); return 2;
    }
}
