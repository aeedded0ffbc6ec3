// timers: how late timers fire, weft against asio.
//
//   timer_many      10,000 tasks each sleep 1 ms, then count down: the time
//                   until all are done (timer_many, ms) and how late each
//                   wake-up was past its deadline (timer_many_late_p50 and
//                   _p99, us)
//   sleep_lateness  10 tasks that each sleep 1 ms 1,000 times back to back on
//                   an otherwise idle runtime: the lateness of every sleep
//                   (sleep_lateness_p50, _p99, _max, us)
//
// A timer that fires before its deadline fails the program. weft's timer
// resolution is 1 ms by default; --resolution-us 100 runs weft with 100 us.
//
// Runtimes: weft; asio (one steady_timer per task on an io_context run by
// `workers` threads).
//
//   usage: timers [--workers N] [--reps N] [--quick] [--runtime ...] [--workload ...]
//                 [--tasks N] [--chains N] [--sleeps N] [--resolution-us 1000|100]
#include <weft/weft.hpp>

#include "support/countdown.hpp"
#include "support/harness.hpp"
#include "support/peers.hpp"
#include "support/workers.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#if WEFT_BENCH_HAVE_ASIO
#include <asio/steady_timer.hpp>
#endif

namespace {

constexpr const char* family = "timers";
constexpr auto sleep_length = std::chrono::milliseconds(1);

struct settings {
    std::size_t tasks = 10'000; // timer_many
    std::size_t chains = 10;    // sleep_lateness
    std::size_t sleeps = 1'000; // per chain
};

/// Room for timer_many's 10,000 concurrent sleeps (the default is 1,024).
struct timer_options : weft::default_options {
    static constexpr std::uint32_t max_timers = 16'384;
};

struct fine_timer_options : timer_options {
    static constexpr std::uint64_t timer_resolution_ns = 100'000;
};

/// Lateness of every wake-up of one repetition, in us, by slot; a count of
/// the early ones and of sleeps that failed.
struct lateness_log {
    std::vector<double> us;
    std::atomic<std::size_t> early{0};
    std::atomic<std::size_t> failed{0};

    explicit lateness_log(std::size_t n) : us(n) {}

    void record(std::size_t slot, bench::clock::time_point deadline) {
        const auto late = bench::clock::now() - deadline;
        if (late < bench::clock::duration::zero()) {
            early.fetch_add(1, std::memory_order_relaxed);
        }
        us[slot] = std::chrono::duration<double, std::micro>(late).count();
    }

    void check(const char* runtime) const {
        if (early.load() != 0 || failed.load() != 0) {
            std::fprintf(stderr, "%s: %zu timers fired early, %zu sleeps failed\n", runtime, early.load(),
                         failed.load());
            bench::fail("timers: a timer fired before its deadline or could not be armed");
        }
    }
};

/// The results of one runtime: timer_many's time and percentiles, or
/// sleep_lateness's percentiles, one sample per repetition.
struct timer_results {
    std::vector<bench::result> rows;

    /// One row per (workload, unit) of `rows_wanted`.
    timer_results(const bench::options& opts, const char* runtime,
                  std::initializer_list<std::pair<const char*, const char*>> rows_wanted) {
        for (const auto& [workload, unit] : rows_wanted) {
            rows.push_back(bench::make_result(opts, family, workload, runtime, unit));
        }
    }
    void print() {
        for (auto& r : rows) {
            bench::print(r);
        }
    }
};

/// Runs `one_rep(log)` (which returns its total time in ms) once to warm
/// up and then --reps times, and prints timer_many's three rows.
template <class OneRep>
void timer_many(const bench::options& opts, const settings& s, const char* runtime, OneRep&& one_rep) {
    timer_results out(opts, runtime,
                      {{"timer_many", "ms"}, {"timer_many_late_p50", "us"}, {"timer_many_late_p99", "us"}});
    for (int rep = -1; rep < opts.reps(); ++rep) {
        lateness_log log(s.tasks);
        const double ms = one_rep(log);
        log.check(runtime);
        if (rep >= 0) {
            out.rows[0].samples.push_back(ms);
            out.rows[1].samples.push_back(bench::percentile(log.us, 0.50));
            out.rows[2].samples.push_back(bench::percentile(log.us, 0.99));
        }
    }
    out.print();
}

/// The same for sleep_lateness: `one_rep(log)` runs the chains.
template <class OneRep>
void sleep_lateness(const bench::options& opts, const settings& s, const char* runtime, OneRep&& one_rep) {
    timer_results out(
        opts, runtime,
        {{"sleep_lateness_p50", "us"}, {"sleep_lateness_p99", "us"}, {"sleep_lateness_max", "us"}});
    for (int rep = -1; rep < opts.reps(); ++rep) {
        lateness_log log(s.chains * s.sleeps);
        one_rep(log);
        log.check(runtime);
        if (rep >= 0) {
            out.rows[0].samples.push_back(bench::percentile(log.us, 0.50));
            out.rows[1].samples.push_back(bench::percentile(log.us, 0.99));
            out.rows[2].samples.push_back(log.us.back()); // percentile() sorted it
        }
    }
    out.print();
}

// ---- weft ---------------------------------------------------------------------

weft::task<> sleeper(lateness_log& log, bench::countdown& c, std::size_t slot) {
    const auto deadline = weft::clock::now() + sleep_length;
    if (!co_await weft::sleep_until(deadline)) {
        log.failed.fetch_add(1, std::memory_order_relaxed);
    }
    log.record(slot, deadline);
    c.hit();
}

weft::task<double> weft_timer_many(lateness_log& log, bench::countdown& c) {
    const auto start = bench::clock::now();
    c.left.store(log.us.size(), std::memory_order_relaxed);
    for (std::size_t i = 0; i < log.us.size(); ++i) {
        weft::spawn(sleeper(log, c, i)).detach();
    }
    co_await c.done.notified();
    co_return bench::ns_between(start, bench::clock::now()) / 1e6;
}

weft::task<> sleep_chain(lateness_log& log, std::size_t first, std::size_t sleeps) {
    for (std::size_t i = 0; i < sleeps; ++i) {
        const auto deadline = weft::clock::now() + sleep_length;
        if (!co_await weft::sleep_until(deadline)) {
            log.failed.fetch_add(1, std::memory_order_relaxed);
        }
        log.record(first + i, deadline);
    }
}

template <class Executor>
void run_weft(const bench::options& opts, const settings& s) {
    if (opts.wants("timer_many", "weft")) {
        Executor ex;
        bench::countdown c;
        timer_many(opts, s, "weft", [&](lateness_log& log) { return ex.block_on(weft_timer_many(log, c)); });
    }
    if (opts.wants("sleep_lateness", "weft")) {
        Executor ex;
        std::vector<weft::join_handle<void>> chains;
        sleep_lateness(opts, s, "weft", [&](lateness_log& log) {
            for (std::size_t i = 0; i < s.chains; ++i) {
                chains.push_back(ex.spawn(sleep_chain(log, i * s.sleeps, s.sleeps)));
            }
            for (auto& h : chains) {
                h.get();
            }
            chains.clear();
        });
    }
}

// ---- asio ---------------------------------------------------------------------

#if WEFT_BENCH_HAVE_ASIO
/// One asio timer re-armed `left` times, recording each lateness.
struct asio_chain {
    asio::steady_timer* timer;
    lateness_log* log;
    bench::latch* done;
    std::size_t slot;
    std::size_t left;

    void arm() {
        const auto deadline = bench::clock::now() + sleep_length;
        timer->expires_at(deadline);
        timer->async_wait([self = *this, deadline](const std::error_code& error) mutable {
            if (error) {
                self.log->failed.fetch_add(1, std::memory_order_relaxed);
            }
            self.log->record(self.slot, deadline);
            if (--self.left == 0) {
                self.done->count_down();
            } else {
                ++self.slot;
                self.arm();
            }
        });
    }
};

void run_asio(const bench::options& opts, const settings& s) {
    if (opts.wants("timer_many", "asio")) {
        bench::asio_pool pool(opts.workers());
        std::vector<asio::steady_timer> timers;
        timers.reserve(s.tasks);
        for (std::size_t i = 0; i < s.tasks; ++i) {
            timers.emplace_back(pool.context());
        }
        bench::latch done;
        timer_many(opts, s, "asio", [&](lateness_log& log) {
            const auto start = bench::clock::now();
            done.reset(static_cast<std::uint32_t>(s.tasks));
            for (std::size_t i = 0; i < s.tasks; ++i) {
                asio_chain{&timers[i], &log, &done, i, 1}.arm();
            }
            done.wait();
            return bench::ns_between(start, bench::clock::now()) / 1e6;
        });
    }
    if (opts.wants("sleep_lateness", "asio")) {
        bench::asio_pool pool(opts.workers());
        std::vector<asio::steady_timer> timers;
        for (std::size_t i = 0; i < s.chains; ++i) {
            timers.emplace_back(pool.context());
        }
        bench::latch done;
        sleep_lateness(opts, s, "asio", [&](lateness_log& log) {
            done.reset(static_cast<std::uint32_t>(s.chains));
            for (std::size_t i = 0; i < s.chains; ++i) {
                asio_chain{&timers[i], &log, &done, i * s.sleeps, s.sleeps}.arm();
            }
            done.wait();
        });
    }
}
#endif

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(
        argc, argv, {{"tasks", "10000"}, {"chains", "10"}, {"sleeps", "1000"}, {"resolution-us", "1000"}});
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft"};
#if WEFT_BENCH_HAVE_ASIO
        runtimes.push_back("asio");
#endif
        bench::print_list(family, {"timer_many", "sleep_lateness"}, runtimes);
        return 0;
    }
    settings s;
    s.tasks = static_cast<std::size_t>(std::max(1LL, opts.integer("tasks")));
    s.chains = static_cast<std::size_t>(std::max(1LL, opts.integer("chains")));
    s.sleeps = static_cast<std::size_t>(std::max(1LL, opts.integer("sleeps")));
    if (opts.quick()) {
        s.sleeps = std::min<std::size_t>(s.sleeps, 20);
    }
    if (s.tasks > timer_options::max_timers) {
        bench::fail("--tasks: more concurrent sleeps than the benchmark's executor has timers (16,384)");
    }
    if (opts.integer("resolution-us") == 100) {
        bench::with_workers<fine_timer_options>(
            opts.workers(), [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts, s); });
    } else if (opts.integer("resolution-us") == 1000) {
        bench::with_workers<timer_options>(
            opts.workers(), [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts, s); });
    } else {
        bench::fail("--resolution-us must be 1000 or 100");
    }
#if WEFT_BENCH_HAVE_ASIO
    run_asio(opts, s);
#endif
    return 0;
}
