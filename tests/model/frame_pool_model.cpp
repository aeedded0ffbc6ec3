// tests/model/frame_pool_model.cpp
//
// Runs the real weft::detail::index_stack (the free list of one frame-pool
// size class) under Relacy, through the policy in relacy_policy.hpp: every
// access to the head and the links is a scheduling point with its named
// memory order.
//
// Each block is a checked variable that its holder writes and reads back.
// So the model proves two things at once: no block is ever held by two
// threads (their writes would race), and a pop sees everything the block's
// previous holder wrote before its push (otherwise the new holder's write
// races with the old one's).
//
// Scenarios:
//   (a) three threads, two blocks: each takes a block, uses it, gives it
//       back, twice; pops find the stack empty in some interleavings.
//   (b) ABA: thread 0 takes two blocks and gives back the first one before
//       the second, so the top returns with a different link below it, while
//       thread 1 pops (a pop that read the old top and link must fail).
//   (c) counts while others push (retire()'s situation): the blocks start
//       out taken; two threads give them back while a third counts twice.
//       Each count is at most the number of blocks, and the second is never
//       below the first (the stack only grows).
// after() checks that every block is home and counted exactly once.
//
// Usage: frame_pool_model [iterations] [bound]
//   iterations   random-scheduler iterations per scenario (default 300000)
//   bound        context bound of the systematic runs (default 2; 3 takes
//                about a minute more)
// About 10 s with the defaults on a busy 2-core machine. Exit status is
// non-zero if any run fails. Without the pop tag, (a) and (b) fail at once
// (the twin frame_pool_model_seeded_bug_aba, tests/model/CMakeLists.txt,
// builds against a copy of the headers without it and must fail); with
// pop's acquires weakened to relaxed (checked by hand), Relacy reports a
// data race on a block.

// index_stack's own asserts are part of what the model checks.
#undef NDEBUG

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "relacy_policy.hpp"

#include "model_harness.hpp" // after relacy_policy.hpp
#include <weft/detail/frame_pool.hpp>

namespace {

using policy = weft::model::relacy_policy;
using stack = weft::detail::index_stack<policy>;
constexpr std::uint32_t none = stack::none;
constexpr std::uint32_t max_blocks = 3;

template <class Scenario>
struct stack_model : rl::test_suite<stack_model<Scenario>, Scenario::thread_count> {
    stack::link links[max_blocks] = {0, 0, 0};
    weft::model::aligned_box<stack> free{links, Scenario::blocks};
    policy::cell<int> block[max_blocks];

    // Plain bookkeeping (Relacy runs the threads one at a time as fibers).
    std::array<int, max_blocks> held{}; // how many threads hold each block now

    void before() {
        policy::limit_operations_per_iteration(2000);
        held = {};
        Scenario::setup(*this);
    }

    void thread(unsigned index) { Scenario::run(*this, index); }

    void after() {
        RL_ASSERT(free.get().count(max_blocks + 1) == Scenario::blocks);
        std::array<int, max_blocks> seen{};
        for (std::uint32_t i = 0; i < Scenario::blocks; ++i) {
            const std::uint32_t b = free.get().pop();
            RL_ASSERT(b < Scenario::blocks);
            RL_ASSERT(++seen[b] == 1);
        }
        RL_ASSERT(free.get().pop() == none);
    }

    // --- the operations scenarios are written in ---

    // Takes a block and writes the holder into it; `none` if the stack is empty.
    std::uint32_t take(unsigned self) {
        const std::uint32_t b = free.get().pop();
        if (b == none) {
            return none;
        }
        RL_ASSERT(b < Scenario::blocks);
        RL_ASSERT(++held[b] == 1);
        block[b].store(static_cast<int>(self));
        return b;
    }

    void give_back(std::uint32_t b, unsigned self) {
        RL_ASSERT(block[b].load() == static_cast<int>(self));
        --held[b];
        free.get().push(b);
    }

    void use_once(unsigned self) {
        const std::uint32_t b = take(self);
        if (b != none) {
            give_back(b, self);
        }
    }
};

// Every block starts free unless a scenario's setup takes some.
struct all_free {
    template <class M>
    static void setup(M&) {}
};

struct scenario_contended : all_free {
    static constexpr unsigned thread_count = 3;
    static constexpr std::uint32_t blocks = 2;
    template <class M>
    static void run(M& m, unsigned self) {
        m.use_once(self);
        m.use_once(self);
    }
};

struct scenario_aba : all_free {
    static constexpr unsigned thread_count = 2;
    static constexpr std::uint32_t blocks = 3;
    template <class M>
    static void run(M& m, unsigned self) {
        if (self == 0) {
            const std::uint32_t a = m.take(self);
            const std::uint32_t b = m.take(self);
            if (a != none) {
                m.give_back(a, self); // a is on top again, over a different link
            }
            if (b != none) {
                m.give_back(b, self);
            }
        } else {
            m.use_once(self);
            m.use_once(self);
        }
    }
};

struct scenario_count {
    static constexpr unsigned thread_count = 3;
    static constexpr unsigned setup_holder = 9;
    static constexpr std::uint32_t blocks = 3;
    template <class M>
    static void setup(M& m) {
        for (std::uint32_t i = 0; i < blocks; ++i) {
            RL_ASSERT(m.take(setup_holder) == i);
        }
    }
    template <class M>
    static void run(M& m, unsigned self) {
        if (self == 0) {
            const std::uint32_t first = m.free.get().count(max_blocks + 1);
            const std::uint32_t second = m.free.get().count(max_blocks + 1);
            RL_ASSERT(first <= second && second <= blocks);
        } else if (self == 1) {
            m.give_back(0, setup_holder);
            m.give_back(2, setup_holder);
        } else {
            m.give_back(1, setup_holder);
        }
    }
};

struct run_result {
    const char* name;
    const char* scheduler;
    bool passed;
    double seconds;
};

template <class Scenario>
run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations, unsigned bound) {
    rl::test_params params;
    params.search_type = scheduler;
    params.iteration_count = iterations;
    params.context_bound = bound;
    params.execution_depth_limit = 10000;
    std::cout << "=== " << name << " (" << rl::format(scheduler) << ")" << std::endl;
    const auto begin = std::chrono::steady_clock::now();
    const bool passed = rl::simulate<stack_model<Scenario>>(params);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    std::cout << (passed ? "PASSED" : "FAILED") << " in " << seconds << " s" << std::endl << std::endl;
    return {name, rl::format(scheduler), passed, seconds};
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, 300'000);
    const auto bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 2));
    constexpr auto bounded = rl::fair_context_bound_scheduler_type;
    constexpr auto random = rl::random_scheduler_type;
    const run_result results[] = {
        run<scenario_contended>("(a) 3 threads, 2 blocks", bounded, 0, bound),
        run<scenario_aba>("(b) ABA: top back, new link", bounded, 0, bound),
        run<scenario_count>("(c) count during pushes", bounded, 0, bound),
        run<scenario_contended>("(a) 3 threads, 2 blocks", random, iterations, 0),
        run<scenario_aba>("(b) ABA: top back, new link", random, iterations, 0),
        run<scenario_count>("(c) count during pushes", random, iterations, 0),
    };
    bool all_passed = true;
    std::cout << "summary:\n";
    for (const run_result& r : results) {
        std::printf("  %-4s %-30s %-24s %7.2f s\n", r.passed ? "ok" : "FAIL", r.name, r.scheduler, r.seconds);
        all_passed = all_passed && r.passed;
    }
    return all_passed ? 0 : 1;
}
