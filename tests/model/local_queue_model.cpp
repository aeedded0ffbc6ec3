// tests/model/local_queue_model.cpp
//
// Runs the real weft::detail::local_queue (capacities 4 and 2) under Relacy, through
// the policy in relacy_policy.hpp: every head/tail access is a scheduling
// point with its named memory order, every slot is a checked variable (a read
// without a happens-before edge from its write is a data race, a read of a
// never-written slot is an uninitialised access).
//
// Scenarios (thread 0 owns queue 0; thief i owns queue i):
//   small     owner push/pop vs one thief.
//   (a)       owner pushes (one by one and with push_back_n) and pops within
//             capacity while two thieves each steal twice into their own
//             queue and pop it empty.
//   (b)       the owner pushes past capacity, so the newer half plus the new
//             task overflow (or only the new task, if a thief is busy).
//   (c)       overflow twice, with every queue's index starting just below
//             2^32 so the indices wrap mid-run (the first overflow's head
//             jump lands exactly on 0).
//   (d)       chained: thief 1 pushes into its own queue and steals from the
//             owner into it while thief 2 steals from thief 1; covers
//             steal_into's accesses to the destination's head and tail.
//   (e)       capacity 2 (the smallest ring): push, push_back_n, pop and
//             overflow of a one-task half vs two thieves.
//   (f)       capacity 2 with the indices wrapping past 2^32.
// (small and (a)-(d) use capacity 4.)
// Every scenario checks exact accounting in `after()`: each pushed id was
// obtained exactly once (popped, stolen, or handed to the overflow callback),
// plus FIFO and batch-shape checks along the way.
//
// Each scenario runs twice: under the context-bound scheduler (systematic:
// every interleaving, and every value a load may return under the C++ memory
// model, with at most `bound` preemptions) and under the random scheduler
// (deeper schedules, sampled). Full search is out of reach: Relacy estimates
// ~10^14 executions even for `small`.
//
// Usage: local_queue_model [iterations] [small-bound] [wide-bound]
//   iterations   random-scheduler iterations per scenario (default 500000)
//   small-bound  context bound for the systematic run of `small` (default 4)
//   wide-bound   context bound for the systematic runs of (a)-(f) (default 1)
// The defaults take about 1 minute with -O2 on a busy 2-core machine (load ~10). The
// deeper run `local_queue_model 1000000 5 2` takes about 4.5 CPU minutes (22 minutes
// of wall time on that machine). Exit status is
// non-zero if any run fails; Relacy prints the failing interleaving's
// history (each event names the line in local_queue.hpp that did it).
//
// Built with -DWEFT_MODEL_SEEDED_BUG, the policy weakens the tail's release
// stores (in push_back_or_overflow, push_back_n, steal_into) to relaxed; that
// build must fail (registered with WILL_FAIL).

// local_queue's own asserts are part of what the model checks, also in a
// Release build (which defines NDEBUG).
#undef NDEBUG

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <span>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include <weft/detail/local_queue.hpp>

namespace {

using weft::model::aligned_box;

constexpr int max_id = 16;
constexpr int queue_count = 3;
constexpr std::uint64_t max_operations = 5000;

// What the scenarios reached, summed over a run's iterations, so the output
// shows that each scenario exercises what it claims. Plain counters: they
// never influence the test, so Relacy's replay stays deterministic.
struct coverage {
    std::uint64_t full_overflows = 0;   // newer half + task left
    std::uint64_t single_overflows = 0; // a thief was busy: only the task left
    std::uint64_t steals = 0;           // steal_into calls that took >= 1
    std::uint64_t empty_steals = 0;     // steal_into calls that took nothing
    std::uint64_t pops = 0;
};
coverage g_coverage;

template <class Scenario>
struct queue_model : rl::test_suite<queue_model<Scenario>, Scenario::thread_count> {
    static constexpr std::uint32_t model_capacity = Scenario::capacity;
    using queue = weft::detail::local_queue<int, model_capacity, weft::model::relacy_policy>;

    aligned_box<queue> q0{Scenario::start[0]};
    aligned_box<queue> q1{Scenario::start[1]};
    aligned_box<queue> q2{Scenario::start[2]};

    // Bookkeeping in plain memory: Relacy runs all threads as fibers on one
    // OS thread, one at a time, so this never races, and it is invisible to
    // the checker (it adds no happens-before edges).
    std::array<int, max_id + 1> times_taken{};
    std::array<int, queue_count> last_popped{}; // per queue: ids pop out increasing
    int pushed = 0;                             // ids 1..pushed have been pushed

    queue& q(unsigned index) noexcept { return index == 0 ? q0.get() : index == 1 ? q1.get() : q2.get(); }

    void before() {
        // The scenarios make at most a few hundred operations; a runaway
        // loop (a bogus steal count) fails fast instead of running for hours.
        weft::model::relacy_policy::limit_operations_per_iteration(max_operations);
    }

    void thread(unsigned index) {
        if (index == 0) {
            Scenario::owner(*this);
        } else {
            Scenario::thief(*this, index);
        }
    }

    void after() {
        for (int id = 1; id <= pushed; ++id) {
            RL_ASSERT(times_taken[static_cast<std::size_t>(id)] == 1); // no loss, no duplicate
        }
        for (unsigned i = 0; i < queue_count; ++i) {
            RL_ASSERT(q(i).is_empty());
            RL_ASSERT(q(i).remaining_slots() == model_capacity); // no thief left mid-steal
        }
    }

    // --- the operations scenarios are written in ---

    void take(int id) {
        RL_ASSERT(id >= 1 && id <= pushed);
        RL_ASSERT(times_taken[static_cast<std::size_t>(id)] == 0); // a duplicate is caught where it happens
        ++times_taken[static_cast<std::size_t>(id)];
    }

    // Queue `index`'s owner: push the next id.
    void push(unsigned index = 0) {
        const int id = ++pushed;
        RL_ASSERT(id <= max_id);
        q(index).push_back_or_overflow(id, [&](std::span<int> batch) {
            RL_ASSERT(batch.size() == 1 || batch.size() == queue::overflow_half + 1);
            RL_ASSERT(batch.back() == id); // the new task leaves with the batch
            for (std::size_t i = 0; i < batch.size(); ++i) {
                // The newer half, in order (ids in a queue fed from one source increase).
                RL_ASSERT(i == 0 || Scenario::mixed_sources || batch[i - 1] < batch[i]);
                take(batch[i]);
            }
            if (batch.size() == 1) {
                ++g_coverage.single_overflows;
            } else {
                ++g_coverage.full_overflows;
            }
        });
    }

    void push_n(int n) {
        for (int i = 0; i < n; ++i) {
            push();
        }
    }

    // Owner: push `n` ids into queue 0 with one push_back_n (one tail
    // store), as many as fit without overflow; the rest one by one.
    void push_batch(int n) {
        const std::uint32_t room = q0.get().remaining_slots();
        const std::uint32_t batch = std::min(static_cast<std::uint32_t>(n), room);
        q0.get().push_back_n(batch, [&] {
            const int id = ++pushed;
            RL_ASSERT(id <= max_id);
            return id;
        });
        push_n(n - static_cast<int>(batch));
    }

    // Queue `index`'s owner: pop one. Ids leave a queue in increasing order
    // when it is fed from one source (not so for thief 1 in (d)).
    bool pop(unsigned index) {
        int out = 0;
        if (!q(index).pop(out)) {
            return false;
        }
        if (index == 0 || !Scenario::mixed_sources) {
            RL_ASSERT(out > last_popped[index]);
        }
        last_popped[index] = out;
        take(out);
        ++g_coverage.pops;
        return true;
    }

    int drain(unsigned index) {
        int popped = 0;
        while (pop(index)) {
            ++popped;
        }
        return popped;
    }

    // Thief: steal from `from` into its own queue `into`; returns the count
    // and the task handed back to run.
    std::uint32_t steal(unsigned from, unsigned into, int& out) {
        out = 0;
        const std::uint32_t n = q(from).steal_into(q(into), out);
        RL_ASSERT(n <= model_capacity / 2);
        if (n == 0) {
            ++g_coverage.empty_steals;
            return 0;
        }
        ++g_coverage.steals;
        take(out);
        return n;
    }

    // Thief whose queue nobody steals from: steal, then pop its own queue
    // empty; exactly n - 1 tasks landed there, all older than `out`.
    void steal_and_drain(unsigned from, unsigned into) {
        RL_ASSERT(q(into).is_empty());
        int out = 0;
        const std::uint32_t n = steal(from, into, out);
        if (n == 0) {
            return;
        }
        const int popped = drain(into);
        RL_ASSERT(popped == static_cast<int>(n) - 1);
        // `out` is the newest task stolen.
        RL_ASSERT(popped == 0 || Scenario::mixed_sources || last_popped[into] < out);
    }
};

// --- scenarios ---

// Smallest: one thief, no overflow. Small enough for the context-bound
// (systematic) scheduler.
struct scenario_small {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 2;
    static constexpr std::uint32_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3);
        m.pop(0);
        m.push();
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
    }
};

// (a) push/pop within capacity vs two thieves.
struct scenario_steal {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3);
        m.pop(0);
        m.push_batch(2); // push_back_n: one tail store publishes both
        m.pop(0);
        m.pop(0);
        m.push();
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (b) the owner pushes past capacity while thieves steal.
struct scenario_overflow {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(6); // 4 fill the ring; the 5th overflows unless a thief made room
        m.pop(0);
        m.push_n(2);
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (c) overflow with indices starting just below 2^32: the owner's tail wraps
// at its 4th push, so the first overflow's head jump (real -> tail) lands on
// 0; a second overflow follows after the wrap; the thieves' queues wrap on
// their first steals.
struct scenario_wrap {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0xFFFF'FFFCu, 0xFFFF'FFFFu, 0xFFFF'FFFEu};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(7); // overflows at the 5th push unless a thief made room
        m.pop(0);
        m.push_n(3); // and again at the 9th
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (d) chained: thief 1 pushes into its own queue, then steals from the owner
// into it (its ring wraps during the run) while thief 2 steals from thief 1.
// This covers steal_into's side as the *destination* owner: its acquire of
// its own head (a slot thief 2 just read may be written again only after
// thief 2's release) and its release of its own tail.
struct scenario_chain {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0, 0xFFFF'FFFFu, 0};
    static constexpr bool mixed_sources = true; // queue 1 holds its own pushes and stolen tasks
    template <class M>
    static void owner(M& m) {
        m.push_n(4);
        m.pop(0);
        m.push_n(2);
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        int out = 0;
        if (self == 1) {
            m.push(1);
            m.push(1);
            m.push(1);
            m.pop(1);
            m.steal(0, 1, out);
            m.pop(1);
            m.steal(0, 1, out);
            m.drain(1);
        } else {
            m.steal_and_drain(1, 2);
            m.steal_and_drain(1, 2);
        }
    }
};

// (e) capacity 2, the smallest ring: every third push overflows (the newer
// half is one task) unless a thief made room, and each steal takes one.
struct scenario_tiny {
    static constexpr std::uint32_t capacity = 2;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3); // the 3rd overflows unless a thief made room
        m.pop(0);
        m.push_batch(1);
        m.push_n(2);
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (f) capacity 2 with indices wrapping past 2^32 mid-run, overflow included.
struct scenario_tiny_wrap {
    static constexpr std::uint32_t capacity = 2;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t start[queue_count] = {0xFFFF'FFFEu, 0xFFFF'FFFFu, 0xFFFF'FFFFu};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(4);
        m.pop(0);
        m.push_n(2);
        m.drain(0);
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

template <class Scenario>
weft::model::run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                            unsigned context_bound) {
    g_coverage = coverage{};
    return weft::model::run_model<queue_model<Scenario>>(name, scheduler, iterations, context_bound, [] {
        std::cout << "coverage: full overflows " << g_coverage.full_overflows << ", single overflows "
                  << g_coverage.single_overflows << ", steals " << g_coverage.steals << ", empty steals "
                  << g_coverage.empty_steals << ", pops " << g_coverage.pops << std::endl;
    });
}

constexpr std::uint64_t default_iterations = 500'000;

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, default_iterations);
    const auto small_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 4));
    const auto wide_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 3, 1));
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: tail release stores weakened to relaxed; this run must fail.\n\n";
    for (const char* function : {"push_back_or_overflow", "push_back_n", "steal_into"}) {
        weft::model::relacy_policy::seed_bug(function, std::memory_order_release, std::memory_order_relaxed);
    }
#endif

    using weft::model::bounded;
    using weft::model::random;
    const weft::model::run_result results[] = {
        // Systematic: every interleaving (and every load result the memory
        // model allows) with at most `bound` preemptions.
        run<scenario_small>("small: push/pop vs 1 thief", bounded, 0, small_bound),
        run<scenario_steal>("(a) push/pop vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_overflow>("(b) overflow vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_wrap>("(c) wrap-around past 2^32", bounded, 0, wide_bound),
        run<scenario_chain>("(d) chained steal", bounded, 0, wide_bound),
        run<scenario_tiny>("(e) capacity 2 vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_tiny_wrap>("(f) capacity 2 wrap-around", bounded, 0, wide_bound),
        // Random: deeper schedules, sampled.
        run<scenario_small>("small: push/pop vs 1 thief", random, iterations, 0),
        run<scenario_steal>("(a) push/pop vs 2 thieves", random, iterations, 0),
        run<scenario_overflow>("(b) overflow vs 2 thieves", random, iterations, 0),
        run<scenario_wrap>("(c) wrap-around past 2^32", random, iterations, 0),
        run<scenario_chain>("(d) chained steal", random, iterations, 0),
        run<scenario_tiny>("(e) capacity 2 vs 2 thieves", random, iterations, 0),
        run<scenario_tiny_wrap>("(f) capacity 2 wrap-around", random, iterations, 0),
    };
    return weft::model::summarize(results);
}
