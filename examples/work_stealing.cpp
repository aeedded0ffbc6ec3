// Work stealing, shown: 100 tasks are spawned from one task onto one
// worker's queue; each sums i * j for j < 1000 and yields every 100
// iterations. Idle workers wake up and steal half of the busy worker's queue
// at a time. The program prints every 20th result and what each worker did.
//
//   usage: work_stealing [tasks]      (default 100)
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

constexpr std::uint32_t workers = 4;

weft::task<std::uint64_t> sum_products(std::uint64_t i) {
    std::uint64_t sum = 0;
    for (std::uint64_t j = 0; j < 1000; ++j) {
        sum += i * j;
        if (j % 100 == 99) {
            co_await weft::yield_now(); // give the worker back: others can run, thieves can steal
        }
    }
    co_return sum;
}

weft::task<std::uint64_t> run_all(std::size_t tasks) {
    std::vector<weft::join_handle<std::uint64_t>> handles;
    handles.reserve(tasks);
    for (std::size_t i = 0; i < tasks; ++i) {
        handles.push_back(weft::spawn(sum_products(i))); // all land on this worker's queue
    }
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < tasks; ++i) {
        const std::uint64_t result = co_await handles[i];
        if (i % 20 == 0) {
            std::printf("task %3llu: sum of %llu * j for j < 1000 = %llu\n",
                        static_cast<unsigned long long>(i), static_cast<unsigned long long>(i),
                        static_cast<unsigned long long>(result));
        }
        total += result;
    }
    co_return total;
}

int main(int argc, char** argv) {
    const std::size_t tasks = argc > 1 ? static_cast<std::size_t>(std::strtoul(argv[1], nullptr, 10)) : 100;
    weft::settings config;
    config.thread_name_prefix = "demo";
    weft::executor<workers, 256> ex(config);

    const std::uint64_t total = ex.block_on(run_all(tasks));
    // Sum over i < tasks of i * 499500.
    const std::uint64_t n = tasks;
    const std::uint64_t expected = n * (n - 1) / 2 * 499500;
    std::printf("total %llu (%s)\n\n", static_cast<unsigned long long>(total),
                total == expected ? "correct" : "WRONG");

    const auto m = ex.metrics();
    std::printf("worker  polls  stolen  steal-ops  lifo-hits  parks  unparks  overflows\n");
    for (std::uint32_t w = 0; w < workers; ++w) {
        const weft::worker_metrics& s = m.workers[w];
        std::printf("%6u %6llu %7llu %10llu %10llu %6llu %8llu %10llu\n", w,
                    static_cast<unsigned long long>(s.polls), static_cast<unsigned long long>(s.steals),
                    static_cast<unsigned long long>(s.steal_operations),
                    static_cast<unsigned long long>(s.lifo_hits), static_cast<unsigned long long>(s.parks),
                    static_cast<unsigned long long>(s.unparks), static_cast<unsigned long long>(s.overflows));
    }
    std::printf("spawned %llu tasks, %zu still alive, %llu scheduled from outside\n",
                static_cast<unsigned long long>(m.spawned_tasks), m.live_tasks,
                static_cast<unsigned long long>(m.remote_schedules));
    return total == expected ? 0 : 1;
}
