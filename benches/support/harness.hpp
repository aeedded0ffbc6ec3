// benches/support/harness.hpp: what every benchmark program shares.
//
// A small harness rather than Google Benchmark, because BENCHMARKS.md fixes
// what one measurement is: one warm-up, then N timed repetitions on an
// executor built once per workload and reused; a median per workload; and
// metrics that are not times (percentiles, CPU time, wake-ups, RSS, bytes).
// Google Benchmark re-enters the benchmark function per repetition and picks
// its own iteration counts, which fits none of that without contortions.
//
// Every program takes the same options:
//
//   --workers N      worker threads (default: the core count)
//   --reps N         timed repetitions after one warm-up (default 10)
//   --quick          tiny sizes, one repetition: checks that everything runs
//   --runtime A,B    only these runtimes (weft, tbb, asio, naive, floor, ...)
//   --workload A,B   only these workloads
//   --list           print the workloads and runtimes, then exit
//
// and prints one line per (workload, runtime), which benches/run collects:
//
//   result family=F workload=W runtime=R workers=N unit=U better=lower|higher
//          median=M min=A max=B reps=K [key=value ...]
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace bench {

using clock = std::chrono::steady_clock;

/// Nanoseconds between two clock readings, as a double.
inline double ns_between(clock::time_point from, clock::time_point to) {
    return std::chrono::duration<double, std::nano>(to - from).count();
}

/// The command line every program understands (see the header), plus the
/// program's own `--key value` options, declared by name with a default.
class options {
public:
    /// `own` lists the program's extra options and their defaults.
    options(int argc, char** argv, std::map<std::string, std::string> own = {}) : m_values(std::move(own)) {
        const unsigned cores = std::thread::hardware_concurrency();
        m_values.emplace("workers", std::to_string(cores == 0 ? 1 : cores));
        m_values.emplace("reps", "10");
        m_values.emplace("runtime", "");
        m_values.emplace("workload", "");
        bool reps_given = false;
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--quick") {
                m_quick = true;
                continue;
            }
            if (arg == "--list") {
                m_list = true;
                continue;
            }
            if (arg.rfind("--", 0) != 0 || m_values.count(arg.substr(2)) == 0 || i + 1 >= argc) {
                std::fprintf(stderr, "%s: unknown option or missing value: %s\noptions:", argv[0],
                             arg.c_str());
                for (const auto& [key, value] : m_values) {
                    std::fprintf(stderr, " --%s (%s)", key.c_str(), value.empty() ? "all" : value.c_str());
                }
                std::fprintf(stderr, " --quick --list\n");
                std::exit(2);
            }
            reps_given = reps_given || arg == "--reps";
            m_values[arg.substr(2)] = argv[++i];
        }
        if (m_quick && !reps_given) {
            m_values["reps"] = "1";
        }
    }

    bool quick() const { return m_quick; }
    bool list() const { return m_list; }
    unsigned workers() const { return static_cast<unsigned>(integer("workers")); }
    int reps() const { return std::max(1, static_cast<int>(integer("reps"))); }
    long long integer(const std::string& key) const { return std::atoll(m_values.at(key).c_str()); }

    /// True if `name` is in the comma-separated list `--key` (or the list is empty).
    bool allows(const std::string& key, const std::string& name) const {
        const std::string& list = m_values.at(key);
        if (list.empty()) {
            return true;
        }
        std::size_t start = 0;
        while (start <= list.size()) {
            const std::size_t end = std::min(list.find(',', start), list.size());
            if (list.compare(start, end - start, name) == 0) {
                return true;
            }
            start = end + 1;
        }
        return false;
    }

    /// True if this (workload, runtime) pair was asked for.
    bool wants(const std::string& workload, const std::string& runtime) const {
        return allows("workload", workload) && allows("runtime", runtime);
    }

private:
    std::map<std::string, std::string> m_values;
    bool m_quick = false;
    bool m_list = false;
};

/// For --list: what a program can run.
inline void print_list(const char* family, const std::vector<const char*>& workloads,
                       const std::vector<const char*>& runtimes) {
    std::printf("family %s\nworkloads", family);
    for (const char* w : workloads) {
        std::printf(" %s", w);
    }
    std::printf("\nruntimes");
    for (const char* r : runtimes) {
        std::printf(" %s", r);
    }
    std::printf("\n");
}

/// The value at quantile `q` (0..1) of `values`, which it sorts.
inline double percentile(std::vector<double>& values, double q) {
    if (values.empty()) {
        return 0.0;
    }
    std::sort(values.begin(), values.end());
    const auto at = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(at, values.size() - 1)];
}

/// One workload's figure for one runtime: a sample per timed repetition,
/// in `unit`, and extra key=value pairs for the report.
struct result {
    std::string family;
    std::string workload;
    std::string runtime;
    unsigned workers = 0;
    std::string unit;
    bool lower_is_better = true;
    std::vector<double> samples;
    std::vector<std::pair<std::string, std::string>> extras;

    void extra(const std::string& key, double value) {
        char text[64];
        std::snprintf(text, sizeof text, "%.6g", value);
        extras.emplace_back(key, text);
    }
};

/// An empty result of `family` for `workload` on `runtime`, with the
/// worker count of the command line.
inline result make_result(const options& opts, const char* family, std::string workload, std::string runtime,
                          std::string unit, bool lower_is_better = true) {
    result r;
    r.family = family;
    r.workload = std::move(workload);
    r.runtime = std::move(runtime);
    r.workers = opts.workers();
    r.unit = std::move(unit);
    r.lower_is_better = lower_is_better;
    return r;
}

/// Prints a result line (see the header); flushed, so a crash later in
/// the program keeps what was measured.
inline void print(const result& r) {
    if (r.samples.empty()) {
        return;
    }
    std::vector<double> sorted = r.samples;
    const double median = percentile(sorted, 0.5);
    std::printf("result family=%s workload=%s runtime=%s workers=%u unit=%s better=%s median=%.6g min=%.6g "
                "max=%.6g reps=%zu",
                r.family.c_str(), r.workload.c_str(), r.runtime.c_str(), r.workers, r.unit.c_str(),
                r.lower_is_better ? "lower" : "higher", median, sorted.front(), sorted.back(), sorted.size());
    for (const auto& [key, value] : r.extras) {
        std::printf(" %s=%s", key.c_str(), value.c_str());
    }
    std::printf("\n");
    std::fflush(stdout);
}

/// Runs `once()` one untimed time, then `reps` timed times; `once` returns
/// the repetition's figure itself (it knows what to divide by).
template <class Once>
std::vector<double> repeat(int reps, Once&& once) {
    (void)once(); // the warm-up
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(reps));
    for (int i = 0; i < reps; ++i) {
        samples.push_back(once());
    }
    return samples;
}

/// Times `work()` and returns nanoseconds divided by `ops`.
template <class Work>
double ns_per_op(double ops, Work&& work) {
    const auto start = clock::now();
    work();
    return ns_between(start, clock::now()) / ops;
}

/// Fails the program loudly: a benchmark that computed a wrong answer has
/// measured nothing.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "bench: FAILED: %s\n", what);
    std::fflush(stdout);
    std::exit(1);
}

/// Checks a computed answer against the expected one.
inline void check_answer(const char* workload, const char* runtime, std::uint64_t got, std::uint64_t want) {
    if (got != want) {
        char text[200];
        std::snprintf(text, sizeof text, "%s on %s computed %llu, expected %llu", workload, runtime,
                      static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
        fail(text);
    }
}

/// Tokio's STALL: a 10 us busy wait that calls yield in its loop.
inline void stall() {
    const auto until = clock::now() + std::chrono::microseconds(10);
    while (clock::now() < until) {
        std::this_thread::yield();
    }
}

/// A one-shot signal a thread outside every runtime waits for: the last
/// of `count` count_down() calls releases wait(). Reusable with reset().
class latch {
public:
    explicit latch(std::uint32_t count = 1) : m_left(count) {}
    void reset(std::uint32_t count) { m_left.store(count, std::memory_order_relaxed); }
    void count_down() {
        // acq_rel: the waiter sees everything the counters did before.
        if (m_left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            m_left.notify_all();
        }
    }
    void wait() const {
        for (std::uint32_t left; (left = m_left.load(std::memory_order_acquire)) != 0;) {
            m_left.wait(left, std::memory_order_acquire);
        }
    }

private:
    std::atomic<std::uint32_t> m_left;
};

/// Peak resident set of this process so far, in MiB (getrusage).
inline double peak_rss_mib() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

} // namespace bench
