// fork_join: the fork-join workloads of the cross-runtime C++ suite
// (tzcnt/runtime-benchmarks), same sizes, weft against oneTBB.
//
//   fib       fib(39) with no serial cutoff: fib(n-1) spawned, fib(n-2)
//             inline, then the join; 102,334,154 spawns; answer 63,245,986
//   skynet    depth 8: 10 children per node, 9 spawned and the 10th
//             inline; 111,111,111 nodes; answer 4,999,999,950,000,000
//   nqueens   N = 14: a child per legal column, the board copied into each,
//             the last child inline; 27,358,553 nodes; answer 365,596
//
// Every answer is checked. One warm-up, then --reps timed runs, in ms; and
// the process's peak RSS after them (<workload>_peak_rss, getrusage: a
// process-wide high-water mark, so benches/run runs each workload and
// runtime in a process of its own).
//
// Runtimes: weft (the calling thread waits in block_on; `workers` workers
// compute), weft_lifo (the same with Options::queue_order = lifo: each
// worker runs its newest task first), tbb (task_group recursion, as
// runtime-benchmarks writes it, in a task_arena of `workers` threads, the
// calling thread being one of them),
// floor (the same recursion as bare coroutines awaited inline on one
// thread: what creating the frames costs without any scheduler).
//
//   usage: fork_join [--workers N] [--reps N] [--quick] [--runtime ...] [--workload ...]
//                    [--fib N] [--skynet-depth D] [--nqueens N]
#include <weft/weft.hpp>

#include "support/floor.hpp"
#include "support/harness.hpp"
#include "support/workers.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#if WEFT_BENCH_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace {

constexpr const char* family = "fork_join";
constexpr int max_queens = 14;
using board = std::array<char, max_queens>;

struct sizes {
    int fib = 39;
    int skynet_depth = 8;
    int queens = 14;
};

// ---- answers ----------------------------------------------------------------

std::uint64_t fib_answer(int n) {
    std::uint64_t a = 0;
    std::uint64_t b = 1;
    for (int i = 0; i < n; ++i) {
        b = a + b;
        a = b - a;
    }
    return a;
}

std::uint64_t pow10(int e) {
    std::uint64_t p = 1;
    while (e-- > 0) {
        p *= 10;
    }
    return p;
}

/// skynet sums every leaf number 0 .. 10^depth - 1.
std::uint64_t skynet_answer(int depth) {
    const std::uint64_t leaves = pow10(depth);
    return leaves * (leaves - 1) / 2;
}

std::uint64_t queens_answer(int n) {
    static constexpr std::array<std::uint64_t, max_queens + 1> solutions{
        1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596};
    return solutions[static_cast<std::size_t>(n)];
}

/// True if a queen at (row, col) is attacked by none in rows 0 .. row-1.
bool queen_fits(const board& b, int row, int col) {
    for (int r = 0; r < row; ++r) {
        const int other = b[static_cast<std::size_t>(r)];
        if (other == col || std::abs(other - col) == row - r) {
            return false;
        }
    }
    return true;
}

board with_queen(board b, int row, int col) {
    b[static_cast<std::size_t>(row)] = static_cast<char>(col);
    return b;
}

// ---- weft ---------------------------------------------------------------------

weft::task<std::uint64_t> weft_fib(int n) {
    if (n < 2) {
        co_return static_cast<std::uint64_t>(n);
    }
    auto spawned = weft::spawn(weft_fib(n - 1));
    const std::uint64_t inline_part = co_await weft_fib(n - 2);
    co_return inline_part + co_await spawned;
}

weft::task<std::uint64_t> weft_skynet(std::uint64_t base, int depth, int max_depth) {
    if (depth == max_depth) {
        co_return base;
    }
    const std::uint64_t step = pow10(max_depth - depth - 1);
    std::array<weft::join_handle<std::uint64_t>, 9> children;
    for (std::uint64_t i = 0; i < 9; ++i) {
        children[i] = weft::spawn(weft_skynet(base + i * step, depth + 1, max_depth));
    }
    std::uint64_t sum = co_await weft_skynet(base + 9 * step, depth + 1, max_depth);
    for (auto& child : children) {
        sum += co_await child;
    }
    co_return sum;
}

weft::task<std::uint64_t> weft_queens(int n, int row, board b) {
    if (row == n) {
        co_return 1;
    }
    std::array<weft::join_handle<std::uint64_t>, max_queens> children;
    std::size_t spawned = 0;
    int last = -1; // the last legal column runs inline
    for (int col = 0; col < n; ++col) {
        if (queen_fits(b, row, col)) {
            if (last >= 0) {
                children[spawned++] = weft::spawn(weft_queens(n, row + 1, with_queen(b, row, last)));
            }
            last = col;
        }
    }
    if (last < 0) {
        co_return 0;
    }
    std::uint64_t sum = co_await weft_queens(n, row + 1, with_queen(b, row, last));
    for (std::size_t i = 0; i < spawned; ++i) {
        sum += co_await children[i];
    }
    co_return sum;
}

// ---- floor: the same recursions, every child inline -------------------------

bench::floor_task<std::uint64_t> floor_fib(int n) {
    if (n < 2) {
        co_return static_cast<std::uint64_t>(n);
    }
    const std::uint64_t a = co_await floor_fib(n - 1);
    co_return a + co_await floor_fib(n - 2);
}

bench::floor_task<std::uint64_t> floor_skynet(std::uint64_t base, int depth, int max_depth) {
    if (depth == max_depth) {
        co_return base;
    }
    const std::uint64_t step = pow10(max_depth - depth - 1);
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < 10; ++i) {
        sum += co_await floor_skynet(base + i * step, depth + 1, max_depth);
    }
    co_return sum;
}

bench::floor_task<std::uint64_t> floor_queens(int n, int row, board b) {
    if (row == n) {
        co_return 1;
    }
    std::uint64_t sum = 0;
    for (int col = 0; col < n; ++col) {
        if (queen_fits(b, row, col)) {
            sum += co_await floor_queens(n, row + 1, with_queen(b, row, col));
        }
    }
    co_return sum;
}

// ---- tbb ----------------------------------------------------------------------

#if WEFT_BENCH_HAVE_TBB
std::uint64_t tbb_fib(int n) {
    if (n < 2) {
        return static_cast<std::uint64_t>(n);
    }
    std::uint64_t spawned_part = 0;
    tbb::task_group group;
    group.run([&] { spawned_part = tbb_fib(n - 1); });
    const std::uint64_t inline_part = tbb_fib(n - 2);
    group.wait();
    return spawned_part + inline_part;
}

std::uint64_t tbb_skynet(std::uint64_t base, int depth, int max_depth) {
    if (depth == max_depth) {
        return base;
    }
    const std::uint64_t step = pow10(max_depth - depth - 1);
    std::array<std::uint64_t, 9> parts{};
    tbb::task_group group;
    for (std::uint64_t i = 0; i < 9; ++i) {
        group.run([&parts, i, base, step, depth, max_depth] {
            parts[i] = tbb_skynet(base + i * step, depth + 1, max_depth);
        });
    }
    std::uint64_t sum = tbb_skynet(base + 9 * step, depth + 1, max_depth);
    group.wait();
    for (std::uint64_t part : parts) {
        sum += part;
    }
    return sum;
}

std::uint64_t tbb_queens(int n, int row, const board& b) {
    if (row == n) {
        return 1;
    }
    std::array<std::uint64_t, max_queens> parts{};
    std::size_t spawned = 0;
    int last = -1;
    tbb::task_group group;
    for (int col = 0; col < n; ++col) {
        if (queen_fits(b, row, col)) {
            if (last >= 0) {
                group.run([&parts, slot = spawned++, n, row, child = with_queen(b, row, last)] {
                    parts[slot] = tbb_queens(n, row + 1, child);
                });
            }
            last = col;
        }
    }
    std::uint64_t sum = last < 0 ? 0 : tbb_queens(n, row + 1, with_queen(b, row, last));
    group.wait();
    for (std::size_t i = 0; i < spawned; ++i) {
        sum += parts[i];
    }
    return sum;
}
#endif

// ---- the driver -----------------------------------------------------------------

struct workload {
    const char* name;
    std::uint64_t answer;
};

/// Times `compute()` (which returns the answer) over the repetitions and
/// prints the result.
template <class Compute>
void measure(const bench::options& opts, const workload& w, const char* runtime, Compute&& compute) {
    bench::result r = bench::make_result(opts, family, w.name, runtime, "ms");
    if (std::string_view(runtime) == "floor") {
        r.workers = 1;
    }
    r.samples = bench::repeat(opts.reps(), [&] {
        const auto start = bench::clock::now();
        const std::uint64_t got = compute();
        const double ms = bench::ns_between(start, bench::clock::now()) / 1e6;
        bench::check_answer(w.name, runtime, got, w.answer);
        return ms;
    });
    bench::print(r);

    bench::result rss = r;
    rss.workload = std::string(w.name) + "_peak_rss";
    rss.unit = "MiB";
    rss.samples = {bench::peak_rss_mib()};
    bench::print(rss);
}

// weft with its queue popped newest first (depth-first fork-join).
struct lifo_options : weft::default_options {
    static constexpr weft::local_queue_order queue_order = weft::local_queue_order::lifo;
};

void run(const bench::options& opts, const sizes& size) {
    const workload fib{"fib", fib_answer(size.fib)};
    const workload skynet{"skynet", skynet_answer(size.skynet_depth)};
    const workload queens{"nqueens", queens_answer(size.queens)};

    const auto weft_runs = [&](const char* runtime) {
        return [&, runtime](auto tag) {
            using executor = bench::executor_of<decltype(tag)>;
            if (opts.wants(fib.name, runtime)) {
                executor ex;
                measure(opts, fib, runtime, [&] { return ex.block_on(weft_fib(size.fib)); });
            }
            if (opts.wants(skynet.name, runtime)) {
                executor ex;
                measure(opts, skynet, runtime,
                        [&] { return ex.block_on(weft_skynet(0, 0, size.skynet_depth)); });
            }
            if (opts.wants(queens.name, runtime)) {
                executor ex;
                measure(opts, queens, runtime,
                        [&] { return ex.block_on(weft_queens(size.queens, 0, board{})); });
            }
        };
    };
    bench::with_workers(opts.workers(), weft_runs("weft"));
    bench::with_workers<lifo_options>(opts.workers(), weft_runs("weft_lifo"));

#if WEFT_BENCH_HAVE_TBB
    {
        const int threads = static_cast<int>(opts.workers());
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                                  static_cast<std::size_t>(threads));
        tbb::task_arena arena(threads);
        const auto in_arena = [&](auto fn) {
            std::uint64_t answer = 0;
            arena.execute([&] { answer = fn(); });
            return answer;
        };
        if (opts.wants(fib.name, "tbb")) {
            measure(opts, fib, "tbb", [&] { return in_arena([&] { return tbb_fib(size.fib); }); });
        }
        if (opts.wants(skynet.name, "tbb")) {
            measure(opts, skynet, "tbb",
                    [&] { return in_arena([&] { return tbb_skynet(0, 0, size.skynet_depth); }); });
        }
        if (opts.wants(queens.name, "tbb")) {
            measure(opts, queens, "tbb",
                    [&] { return in_arena([&] { return tbb_queens(size.queens, 0, board{}); }); });
        }
    }
#endif

    if (opts.wants(fib.name, "floor")) {
        measure(opts, fib, "floor", [&] { return floor_fib(size.fib).run(); });
    }
    if (opts.wants(skynet.name, "floor")) {
        measure(opts, skynet, "floor", [&] { return floor_skynet(0, 0, size.skynet_depth).run(); });
    }
    if (opts.wants(queens.name, "floor")) {
        measure(opts, queens, "floor", [&] { return floor_queens(size.queens, 0, board{}).run(); });
    }
}

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(argc, argv, {{"fib", "0"}, {"skynet-depth", "0"}, {"nqueens", "0"}});
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft", "weft_lifo"};
#if WEFT_BENCH_HAVE_TBB
        runtimes.push_back("tbb");
#endif
        runtimes.push_back("floor");
        bench::print_list(family, {"fib", "skynet", "nqueens"}, runtimes);
        return 0;
    }
    sizes size;
    if (opts.quick()) {
        size = {24, 5, 9};
    }
    if (opts.integer("fib") > 0) {
        size.fib = static_cast<int>(opts.integer("fib"));
    }
    if (opts.integer("skynet-depth") > 0) {
        size.skynet_depth = static_cast<int>(opts.integer("skynet-depth"));
    }
    if (opts.integer("nqueens") > 0) {
        size.queens = static_cast<int>(std::min<long long>(opts.integer("nqueens"), max_queens));
    }
    run(opts, size);
    return 0;
}
