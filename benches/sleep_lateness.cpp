// sleep_lateness: how late `co_await weft::sleep_for(1ms)` returns. Runs
// `--tasks` tasks (default 10) that each sleep 1 ms `--sleeps` times
// (default 1,000) back to back: 10,000 sleeps in all, on an otherwise idle
// executor. Prints the median, p90, p99 and max lateness (time past the
// requested deadline; never negative: timers do not fire early).
//
//   usage: sleep_lateness [--workers 1|2|4] [--tasks N] [--sleeps N] [--resolution-us 1000|100]
//
// Lateness is usually the wake-up latency (the driver wakes at the exact
// deadline), at worst one resolution step more. The full timer workloads,
// with peers, are issue #6.
#include <weft/weft.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace {

struct fine_timers : weft::default_options {
    static constexpr std::uint64_t timer_resolution_ns = 100'000;
};

template <std::uint32_t Workers, class Options>
int run(std::size_t tasks, std::size_t sleeps, const char* label) {
    weft::executor<Workers, 256, Options> ex;
    std::vector<double> lateness_us;
    std::mutex lock;
    std::vector<weft::join_handle<void>> handles;
    std::size_t early = 0;
    for (std::size_t t = 0; t < tasks; ++t) {
        handles.push_back(ex.spawn([&]() -> weft::task<> {
            std::vector<double> mine;
            mine.reserve(sleeps);
            std::size_t mine_early = 0;
            for (std::size_t i = 0; i < sleeps; ++i) {
                const auto deadline = weft::clock::now() + std::chrono::milliseconds(1);
                co_await weft::sleep_until(deadline);
                const auto late = weft::clock::now() - deadline;
                mine_early += late < weft::clock::duration::zero() ? 1u : 0u;
                mine.push_back(std::chrono::duration<double, std::micro>(late).count());
            }
            std::lock_guard<std::mutex> hold(lock);
            lateness_us.insert(lateness_us.end(), mine.begin(), mine.end());
            early += mine_early;
        }));
    }
    for (auto& h : handles) {
        h.get();
    }
    std::sort(lateness_us.begin(), lateness_us.end());
    const auto at = [&](double q) {
        return lateness_us[static_cast<std::size_t>(q * static_cast<double>(lateness_us.size() - 1))];
    };
    std::printf(
        "sleep_lateness workers=%u resolution=%s sleeps=%zu: median %.0f us, p90 %.0f us, p99 %.0f us, "
        "max %.0f us, early %zu\n",
        Workers, label, lateness_us.size(), at(0.5), at(0.9), at(0.99), lateness_us.back(), early);
    return early == 0 ? 0 : 1;
}

template <std::uint32_t Workers>
int run_with(std::size_t tasks, std::size_t sleeps, int resolution_us) {
    if (resolution_us == 100) {
        return run<Workers, fine_timers>(tasks, sleeps, "100us");
    }
    return run<Workers, weft::default_options>(tasks, sleeps, "1ms");
}

} // namespace

int main(int argc, char** argv) {
    int workers = 2;
    std::size_t tasks = 10;
    std::size_t sleeps = 1000;
    int resolution_us = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--workers") == 0) {
            workers = std::atoi(argv[i + 1]);
        } else if (std::strcmp(argv[i], "--tasks") == 0) {
            tasks = std::max<std::size_t>(1, std::strtoull(argv[i + 1], nullptr, 10));
        } else if (std::strcmp(argv[i], "--sleeps") == 0) {
            sleeps = std::max<std::size_t>(1, std::strtoull(argv[i + 1], nullptr, 10));
        } else if (std::strcmp(argv[i], "--resolution-us") == 0) {
            resolution_us = std::atoi(argv[i + 1]);
        }
    }
    switch (workers) {
    case 1: return run_with<1>(tasks, sleeps, resolution_us);
    case 2: return run_with<2>(tasks, sleeps, resolution_us);
    case 4: return run_with<4>(tasks, sleeps, resolution_us);
    default: std::fprintf(stderr, "--workers must be 1, 2 or 4\n"); return 2;
    }
}
