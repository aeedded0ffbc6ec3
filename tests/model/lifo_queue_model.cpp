// tests/model/lifo_queue_model.cpp
//
// Runs the real weft::detail::lifo_queue (the run queue of queue_order =
// lifo; capacities 4 and 2) under Relacy, through the policy in
// relacy_policy.hpp: every access to the packed word is a scheduling point
// with its named memory order, every slot is a checked variable (a read
// without a happens-before edge from its write is a data race, a read of a
// never-written slot is an uninitialised access).
//
// Scenarios (thread 0 owns queue 0; thief i owns queue i):
//   small     owner push/pop vs one thief.
//   (a)       owner pushes (one by one and with push_back_n) and pops
//             within capacity while two thieves each steal twice into their
//             own queue and pop it empty.
//   (b)       the owner pushes past capacity, so the oldest half plus the
//             new task overflow (or only the new task, if a thief is busy).
//   (c)       overflow twice with every queue's indices starting just below
//             2^16, so they wrap mid-run (downwards, as the owner pushes).
//   (d)       chained: thief 1 pushes into its own queue and steals from the
//             owner into it while thief 2 steals from thief 1; covers
//             steal_into's accesses to the destination's word and slots.
//   (e)       capacity 2 (the smallest ring): push, push_back_n, pop and
//             overflow of a one-task half vs two thieves.
//   (f)       the owner pushes two and pops to empty, three times, while
//             two thieves steal: claims race pops for the last task, and
//             the owner reuses slots right after a thief released them.
// Every scenario checks exact accounting in `after()`: each pushed id was
// obtained exactly once (popped, stolen, or handed to the overflow
// callback), plus order checks along the way: the owner pops the newest
// task left, a thief runs the oldest task it stole, overflow batches go
// oldest first.
//
// Each scenario runs under the context-bound scheduler (systematic: every
// interleaving, and every value a load may return, with at most `bound`
// preemptions) and under the random scheduler (deeper schedules, sampled).
//
// Usage: lifo_queue_model [iterations] [small-bound] [wide-bound]
//   iterations   random-scheduler iterations per scenario (default 200000)
//   small-bound  context bound for the systematic run of `small` (default 4)
//   wide-bound   context bound for the systematic runs of (a)-(f) (default 1)
// The deep run `lifo_queue_model 1000000 5 2` (10^6 random iterations per
// scenario, context bounds 5 and 2: 0.3 to 3.8 million systematic
// executions per scenario) took 62 CPU seconds, 2 minutes of wall time on
// a busy 2-core machine (load ~3), with -O2, and passed.
// Exit status is non-zero if any run fails; Relacy prints the failing
// interleaving's history (each event names the line in lifo_queue.hpp).
//
// Built with -DWEFT_MODEL_SEEDED_BUG, the policy weakens the owner's
// publishing CAS (publish_head's release) to relaxed; that build must fail
// (Relacy reports a data race on a slot a thief reads). Built with
// -DWEFT_MODEL_SEEDED_BUG_CLAIM_RELEASE, a thief's release of its claim
// (steal_into's release CAS) is relaxed; that build must fail too (the
// owner writes a slot again without the thief's read happening before). A second twin,
// built against a copy of lifo_queue.hpp whose thief does not give up while
// another thief is at work, must fail too (tests/model/CMakeLists.txt): the
// first thief's release finds t and s moved and its assert fires.

// lifo_queue's own asserts are part of what the model checks, also in a
// Release build (which defines NDEBUG).
#undef NDEBUG

#include <algorithm>
#include <array>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <span>
#include <unistd.h>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include <weft/detail/lifo_queue.hpp>

namespace {

using weft::model::aligned_box;

constexpr int max_id = 16;
constexpr int queue_count = 3;
constexpr std::uint64_t max_operations = 5000;

// What the scenarios reached, summed over a run's iterations (plain
// counters: they never influence the test, so replay stays deterministic).
struct coverage {
    std::uint64_t full_overflows = 0;   // oldest half + task left
    std::uint64_t single_overflows = 0; // a thief was busy: only the task left
    std::uint64_t steals = 0;           // steal_into calls that took >= 1
    std::uint64_t multi_steals = 0;     // ... that also moved tasks into the thief's queue
    std::uint64_t empty_steals = 0;     // steal_into calls that took nothing
    std::uint64_t pops = 0;
};
coverage g_coverage;

template <class Scenario>
struct queue_model : rl::test_suite<queue_model<Scenario>, Scenario::thread_count> {
    static constexpr std::uint32_t model_capacity = Scenario::capacity;
    using queue = weft::detail::lifo_queue<int, model_capacity, weft::model::relacy_policy>;

    aligned_box<queue> q0{Scenario::start[0]};
    aligned_box<queue> q1{Scenario::start[1]};
    aligned_box<queue> q2{Scenario::start[2]};

    // Bookkeeping in plain memory: Relacy runs all threads as fibers on one
    // OS thread, one at a time, so this never races, and it is invisible to
    // the checker (it adds no happens-before edges).
    std::array<int, max_id + 1> times_taken{};
    std::array<unsigned, max_id + 1> pushed_to{}; // which queue's owner pushed the id
    int pushed = 0;                               // ids 1..pushed have been pushed

    queue& q(unsigned index) noexcept { return index == 0 ? q0.get() : index == 1 ? q1.get() : q2.get(); }

    void before() { weft::model::relacy_policy::limit_operations_per_iteration(max_operations); }

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

    // The newest id its owner pushed to queue `index` that nobody took yet.
    // Thieves and overflow take the oldest tasks, and a thief's batch is
    // older than anything still queued; so in a queue fed by its owner
    // alone this is what a pop must return.
    int newest_untaken(unsigned index) const {
        for (int id = pushed; id >= 1; --id) {
            if (pushed_to[static_cast<std::size_t>(id)] == index &&
                times_taken[static_cast<std::size_t>(id)] == 0) {
                return id;
            }
        }
        return 0;
    }

    // Queue `index`'s owner: push the next id.
    void push(unsigned index = 0) {
        const int id = ++pushed;
        RL_ASSERT(id <= max_id);
        pushed_to[static_cast<std::size_t>(id)] = index;
        q(index).push_back_or_overflow(id, [&](std::span<int> batch) {
            RL_ASSERT(batch.size() == 1 || batch.size() == queue::overflow_half + 1);
            RL_ASSERT(batch.back() == id); // the new task leaves with the batch
            for (std::size_t i = 0; i < batch.size(); ++i) {
                // The oldest half, oldest first (ids from one source increase).
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

    // Owner: push `n` ids into queue 0 with one push_back_n (one CAS), as
    // many as fit without overflow; the rest one by one. The batch pops in
    // the order it was given, so its ids are assigned newest-first here to
    // keep "a pop returns the newest id" true.
    void push_batch(int n) {
        const std::uint32_t room = q0.get().remaining_slots();
        const auto batch = static_cast<int>(std::min(static_cast<std::uint32_t>(n), room));
        const int base = pushed;
        pushed += batch;
        RL_ASSERT(pushed <= max_id);
        int next = pushed;
        q0.get().push_back_n(static_cast<std::uint32_t>(batch), [&] {
            pushed_to[static_cast<std::size_t>(next)] = 0;
            return next--;
        });
        RL_ASSERT(next == base);
        push_n(n - batch);
    }

    // Queue `index`'s owner: pop one; in a queue fed by its owner alone it
    // is the newest task left.
    bool pop(unsigned index) {
        int out = 0;
        if (!q(index).pop(out)) {
            return false;
        }
        if (!Scenario::mixed_sources || index == 0) {
            RL_ASSERT(out == newest_untaken(index));
        }
        take(out);
        ++g_coverage.pops;
        return true;
    }

    int drain(unsigned index, int& last) {
        int popped = 0;
        int out = 0;
        while (q(index).pop(out)) {
            take(out);
            ++g_coverage.pops;
            // A stolen batch pops newest first, each newer than the task run.
            RL_ASSERT(Scenario::mixed_sources || last == 0 || out < last);
            last = out;
            ++popped;
        }
        return popped;
    }

    // Thief: steal from `from` into its own queue `into`.
    std::uint32_t steal(unsigned from, unsigned into, int& out) {
        out = 0;
        const std::uint32_t n = q(from).steal_into(q(into), out);
        RL_ASSERT(n <= model_capacity / 2);
        if (n == 0) {
            ++g_coverage.empty_steals;
            return 0;
        }
        ++g_coverage.steals;
        if (n > 1) {
            ++g_coverage.multi_steals;
        }
        take(out);
        return n;
    }

    // Thief whose queue nobody steals from: steal, then pop its own queue
    // empty; exactly n - 1 tasks landed there, all newer than `out` (the
    // oldest task of the batch is the one to run).
    void steal_and_drain(unsigned from, unsigned into) {
        RL_ASSERT(q(into).is_empty());
        int out = 0;
        const std::uint32_t n = steal(from, into, out);
        if (n == 0) {
            return;
        }
        int last = 0;
        const int popped = drain(into, last);
        RL_ASSERT(popped == static_cast<int>(n) - 1);
        RL_ASSERT(popped == 0 || Scenario::mixed_sources || last > out);
    }
};

// --- scenarios ---

struct scenario_small {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 2;
    static constexpr std::uint16_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3);
        m.pop(0);
        m.push();
        while (m.pop(0)) {
        }
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
    static constexpr std::uint16_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3);
        m.pop(0);
        m.push_batch(2); // push_back_n: one CAS publishes both
        m.pop(0);
        m.pop(0);
        m.push();
        while (m.pop(0)) {
        }
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
    static constexpr std::uint16_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(6); // 4 fill the ring; the 5th overflows unless a thief made room
        m.pop(0);
        m.push_n(2);
        while (m.pop(0)) {
        }
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (c) indices near 2^16: the owner's pushes move h down past 0 (start 2),
// the thieves' own queues wrap on their first steals (start 0 and 1).
struct scenario_wrap {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint16_t start[queue_count] = {2, 0, 1};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(7); // overflows at the 5th push unless a thief made room
        m.pop(0);
        m.push_n(3); // and again
        while (m.pop(0)) {
        }
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (d) chained: thief 1 pushes into its own queue, then steals from the owner
// into it while thief 2 steals from thief 1. Covers steal_into's side as
// the destination's owner: its acquire of its own word (a slot thief 2 just
// read may be written again only after thief 2's release) and its release
// of the stolen batch.
struct scenario_chain {
    static constexpr std::uint32_t capacity = 4;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint16_t start[queue_count] = {0, 0xFFFF, 0};
    static constexpr bool mixed_sources = true; // queue 1 holds its own pushes and stolen tasks
    template <class M>
    static void owner(M& m) {
        m.push_n(4);
        m.pop(0);
        m.push_n(2);
        while (m.pop(0)) {
        }
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        int out = 0;
        if (self == 1) {
            m.push(1);
            m.push(1);
            m.pop(1);
            m.steal(0, 1, out);
            m.pop(1);
            m.steal(0, 1, out);
            while (m.pop(1)) {
            }
        } else {
            m.steal_and_drain(1, 2);
            m.steal_and_drain(1, 2);
        }
    }
};

// (e) capacity 2, the smallest ring: every third push overflows (the oldest
// half is one task) unless a thief made room, and each steal takes one.
struct scenario_tiny {
    static constexpr std::uint32_t capacity = 2;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint16_t start[queue_count] = {1, 0, 0xFFFF};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        m.push_n(3); // the 3rd overflows unless a thief made room
        m.pop(0);
        m.push_batch(1);
        m.push_n(2);
        while (m.pop(0)) {
        }
    }
    template <class M>
    static void thief(M& m, unsigned self) {
        m.steal_and_drain(0, self);
        m.steal_and_drain(0, self);
    }
};

// (f) the owner pushes two and pops to empty, three times, against two
// thieves: a claim and a pop race for the last task, and a slot a thief
// just read is pushed into again.
struct scenario_to_empty {
    static constexpr std::uint32_t capacity = 2;
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint16_t start[queue_count] = {0, 0, 0};
    static constexpr bool mixed_sources = false;
    template <class M>
    static void owner(M& m) {
        for (int round = 0; round < 3; ++round) {
            m.push_n(2);
            while (m.pop(0)) {
            }
        }
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
                  << g_coverage.single_overflows << ", steals " << g_coverage.steals << " (moving tasks "
                  << g_coverage.multi_steals << "), empty steals " << g_coverage.empty_steals << ", pops "
                  << g_coverage.pops << std::endl;
    });
}

constexpr std::uint64_t default_iterations = 200'000;

} // namespace

int main(int argc, char** argv) {
    // A failed assert in lifo_queue.hpp (an invariant the queue checks
    // itself, e.g. in the two-thieves twin) aborts; turn that into exit
    // status 1, a failure CTest's WILL_FAIL can expect (it counts a signal
    // as a crash, never as the expected failure).
    std::signal(SIGABRT, [](int) {
        constexpr char message[] = "an assert in weft's code failed: the model FAILED\n";
        [[maybe_unused]] const auto written = ::write(2, message, sizeof(message) - 1);
        std::_Exit(1);
    });
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, default_iterations);
    const auto small_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 4));
    const auto wide_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 3, 1));
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: the owner's publishing CAS weakened to relaxed; this run must fail.\n\n";
    weft::model::relacy_policy::seed_bug("publish_head", std::memory_order_release,
                                         std::memory_order_relaxed);
#endif
#if defined(WEFT_MODEL_SEEDED_BUG_CLAIM_RELEASE)
    std::cout << "SEEDED BUG BUILD: a thief's release of its claim made relaxed; this run must fail.\n\n";
    weft::model::relacy_policy::seed_bug("steal_into", std::memory_order_release, std::memory_order_relaxed);
#endif

    using weft::model::bounded;
    using weft::model::random;
    const weft::model::run_result results[] = {
        run<scenario_small>("small: push/pop vs 1 thief", bounded, 0, small_bound),
        run<scenario_steal>("(a) push/pop vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_overflow>("(b) overflow vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_wrap>("(c) wrap-around past 2^16", bounded, 0, wide_bound),
        run<scenario_chain>("(d) chained steal", bounded, 0, wide_bound),
        run<scenario_tiny>("(e) capacity 2 vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_to_empty>("(f) pop to empty vs 2 thieves", bounded, 0, wide_bound),
        run<scenario_small>("small: push/pop vs 1 thief", random, iterations, 0),
        run<scenario_steal>("(a) push/pop vs 2 thieves", random, iterations, 0),
        run<scenario_overflow>("(b) overflow vs 2 thieves", random, iterations, 0),
        run<scenario_wrap>("(c) wrap-around past 2^16", random, iterations, 0),
        run<scenario_chain>("(d) chained steal", random, iterations, 0),
        run<scenario_tiny>("(e) capacity 2 vs 2 thieves", random, iterations, 0),
        run<scenario_to_empty>("(f) pop to empty vs 2 thieves", random, iterations, 0),
    };
    return weft::model::summarize(results);
}
