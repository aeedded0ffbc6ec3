// latency: how fast a sleeping runtime wakes, and what it costs asleep.
//
//   wake_latency  every worker parked; a thread outside spawns one task that
//                 records when it starts; 10,000 samples 100 us apart.
//                 Reported as wake_latency_p50 and wake_latency_p99 (ns),
//                 each the median over the repetitions of that percentile.
//                 The floor (runtime `futex`) is two plain threads
//                 ping-ponging through a futex: the cost of one cross-thread
//                 wake-up, which no runtime can beat.
//   idle_cpu      a runtime with nothing to do for 2 s: the CPU time its
//                 threads use (user + sys, getrusage; idle_cpu_ms) and their
//                 voluntary context switches (idle_wakeups), the measuring
//                 thread's own taken out.
//
// Runtimes: weft, naive, tbb, asio; futex (wake_latency only).
//
//   usage: latency [--workers N] [--reps N] [--quick] [--runtime ...] [--workload ...]
//                  [--samples N] [--gap-us N] [--idle-ms N] [--idle-reps N]
#include <weft/weft.hpp>

#include "support/harness.hpp"
#include "support/peers.hpp"
#include "support/workers.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

constexpr const char* family = "latency";

struct settings {
    std::size_t samples = 10'000;
    std::chrono::microseconds gap{100};
    std::chrono::milliseconds idle{2'000};
    int idle_reps = 3;
};

// ---- wake_latency -------------------------------------------------------------

/// Runs `one_sample()` (which returns a latency in ns) `samples` times with
/// the gap before each, per repetition, and prints the medians of p50 and p99.
template <class Sample>
void wake_latency(const bench::options& opts, const settings& s, const char* runtime, Sample&& one_sample) {
    auto p50 = bench::make_result(opts, family, "wake_latency_p50", runtime, "ns");
    auto p99 = bench::make_result(opts, family, "wake_latency_p99", runtime, "ns");
    std::vector<double> latencies(s.samples);
    const auto one_rep = [&] {
        for (auto& latency : latencies) {
            std::this_thread::sleep_for(s.gap);
            latency = one_sample();
        }
        return 0.0;
    };
    one_rep(); // the warm-up
    for (int rep = 0; rep < opts.reps(); ++rep) {
        one_rep();
        p50.samples.push_back(bench::percentile(latencies, 0.50));
        p99.samples.push_back(bench::percentile(latencies, 0.99));
    }
    bench::print(p50);
    bench::print(p99);
}

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t value) {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, value, nullptr, nullptr, 0);
}

/// Waits until `word` holds `want`, sleeping in the kernel.
void futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t want) {
    for (std::uint32_t seen; (seen = word.load(std::memory_order_acquire)) != want;) {
        futex(word, FUTEX_WAIT_PRIVATE, seen);
    }
}

/// The floor: thread A stamps the time and wakes B through a futex; B
/// notes when it runs and wakes A back (the pong, not measured).
void futex_ping_pong(const bench::options& opts, const settings& s) {
    std::atomic<std::uint32_t> ping{0};
    std::atomic<std::uint32_t> pong{0};
    std::atomic<std::int64_t> sent_at{0};
    std::atomic<std::int64_t> latency{0};
    std::atomic<bool> stop{false};
    std::thread partner([&] {
        for (std::uint32_t round = 1;; ++round) {
            futex_wait_for(ping, round);
            const std::int64_t now = bench::clock::now().time_since_epoch().count();
            if (stop.load(std::memory_order_relaxed)) {
                return;
            }
            latency.store(now - sent_at.load(std::memory_order_relaxed), std::memory_order_relaxed);
            pong.store(round, std::memory_order_release);
            futex(pong, FUTEX_WAKE_PRIVATE, 1);
        }
    });
    std::uint32_t round = 0;
    wake_latency(opts, s, "futex", [&] {
        ++round;
        sent_at.store(bench::clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        ping.store(round, std::memory_order_release);
        futex(ping, FUTEX_WAKE_PRIVATE, 1);
        futex_wait_for(pong, round);
        return static_cast<double>(latency.load(std::memory_order_relaxed));
    });
    stop.store(true, std::memory_order_relaxed);
    ping.store(round + 1, std::memory_order_release);
    futex(ping, FUTEX_WAKE_PRIVATE, 1);
    partner.join();
}

// ---- idle_cpu -----------------------------------------------------------------

struct usage {
    double cpu_ms = 0;
    double wakeups = 0;

    static usage of(int who) {
        rusage r{};
        ::getrusage(who, &r);
        const auto ms = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
        };
        return {ms(r.ru_utime) + ms(r.ru_stime), static_cast<double>(r.ru_nvcsw)};
    }
};

/// Sleeps through the idle period `reps` times and prints what the
/// process's other threads (the runtime's) used meanwhile.
void idle_cpu(const bench::options& opts, const settings& s, const char* runtime) {
    auto cpu = bench::make_result(opts, family, "idle_cpu_ms", runtime, "ms");
    auto wakeups = bench::make_result(opts, family, "idle_wakeups", runtime, "switches");
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // let every worker park
    for (int rep = 0; rep < s.idle_reps; ++rep) {
        const usage process_before = usage::of(RUSAGE_SELF);
        const usage self_before = usage::of(RUSAGE_THREAD);
        std::this_thread::sleep_for(s.idle);
        const usage self_after = usage::of(RUSAGE_THREAD);
        const usage process_after = usage::of(RUSAGE_SELF);
        cpu.samples.push_back((process_after.cpu_ms - process_before.cpu_ms) -
                              (self_after.cpu_ms - self_before.cpu_ms));
        wakeups.samples.push_back((process_after.wakeups - process_before.wakeups) -
                                  (self_after.wakeups - self_before.wakeups));
    }
    cpu.extra("idle_ms", static_cast<double>(s.idle.count()));
    wakeups.extra("idle_ms", static_cast<double>(s.idle.count()));
    bench::print(cpu);
    bench::print(wakeups);
}

// ---- per runtime --------------------------------------------------------------

template <class Executor>
void run_weft(const bench::options& opts, const settings& s) {
    if (opts.wants("wake_latency", "weft")) {
        Executor ex;
        bench::clock::time_point started;
        wake_latency(opts, s, "weft", [&] {
            const auto sent = bench::clock::now();
            ex.spawn([&started] { started = bench::clock::now(); }).get();
            return bench::ns_between(sent, started);
        });
    }
    if (opts.wants("idle_cpu", "weft")) {
        Executor ex;
        ex.spawn([] {}).get(); // every worker has run
        idle_cpu(opts, s, "weft");
    }
}

void run_pools(const bench::options& opts, const settings& s) {
    bench::for_each_pool(opts, "wake_latency", [&](auto& pool) {
        bench::clock::time_point started;
        bench::latch done;
        wake_latency(opts, s, pool.name, [&] {
            done.reset(1);
            const auto sent = bench::clock::now();
            pool.spawn([&] {
                started = bench::clock::now();
                done.count_down();
            });
            done.wait();
            return bench::ns_between(sent, started);
        });
    });
    bench::for_each_pool(opts, "idle_cpu", [&](auto& pool) {
        bench::latch ran(opts.workers());
        for (unsigned i = 0; i < opts.workers(); ++i) {
            pool.post([&ran] { ran.count_down(); });
        }
        ran.wait();
        idle_cpu(opts, s, pool.name);
    });
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(
        argc, argv, {{"samples", "10000"}, {"gap-us", "100"}, {"idle-ms", "2000"}, {"idle-reps", "3"}});
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft"};
        for (const char* name : bench::pool_names()) {
            runtimes.push_back(name);
        }
        runtimes.push_back("futex");
        bench::print_list(family, {"wake_latency", "idle_cpu"}, runtimes);
        return 0;
    }
    settings s;
    s.samples = static_cast<std::size_t>(std::max(1LL, opts.integer("samples")));
    s.gap = std::chrono::microseconds(opts.integer("gap-us"));
    s.idle = std::chrono::milliseconds(opts.integer("idle-ms"));
    s.idle_reps = static_cast<int>(std::max(1LL, opts.integer("idle-reps")));
    if (opts.quick()) {
        s.samples = std::min<std::size_t>(s.samples, 200);
        s.idle = std::min(s.idle, std::chrono::milliseconds(200));
        s.idle_reps = 1;
    }
    bench::with_workers(opts.workers(),
                        [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts, s); });
    run_pools(opts, s);
    if (opts.wants("wake_latency", "futex")) {
        futex_ping_pong(opts, s);
    }
    return 0;
}
