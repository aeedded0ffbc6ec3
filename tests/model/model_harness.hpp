// tests/model/model_harness.hpp
//
// What it is for: what every model program shares: running one Relacy test
// suite under a scheduler and timing it, the command-line counts, the
// summary table, and placing over-aligned objects in Relacy's test object.
// Include after relacy_policy.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

namespace weft::model {

/// Relacy places the test object in ::malloc'd memory (16-byte aligned), but
/// weft's structures align fields to 64 bytes; place one by hand.
template <class T>
class aligned_box {
public:
    template <class... Args>
    explicit aligned_box(Args&&... args) {
        void* at = m_raw;
        std::size_t space = sizeof(m_raw);
        at = std::align(alignof(T), sizeof(T), at, space);
        m_object = ::new (at) T(std::forward<Args>(args)...);
    }
    ~aligned_box() { m_object->~T(); }
    aligned_box(const aligned_box&) = delete;
    aligned_box& operator=(const aligned_box&) = delete;

    T& get() noexcept { return *m_object; }

private:
    unsigned char m_raw[sizeof(T) + alignof(T)];
    T* m_object;
};

/// A node's intrusive link (`queue_next`) that the checker sees: assignments
/// and reads go through a Relacy variable, so a link read without a
/// happens-before edge from its write is a data race.
template <class Node>
class checked_link {
public:
    checked_link& operator=(Node* next) {
        m_var(RL_INFO).store(next);
        return *this;
    }
    operator Node*() const { return m_var(RL_INFO).load(); }

private:
    rl::var<Node*> m_var;
};

struct run_result {
    const char* name;
    const char* scheduler;
    bool passed;
    double seconds;
    std::uint64_t iterations;
};

/// Runs `Suite` under `scheduler`: the random one for `iterations`
/// iterations, or a systematic one (context-bound: every interleaving and
/// every load result the memory model allows, with at most `context_bound`
/// preemptions). `report` prints what the run covered.
template <class Suite, class Report>
run_result run_model(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                     unsigned context_bound, Report&& report) {
    rl::test_params params;
    params.search_type = scheduler;
    params.iteration_count = iterations; // only the random scheduler uses it
    params.context_bound = context_bound;
    params.execution_depth_limit = 10000;

    std::cout << "=== " << name << " (" << rl::format(scheduler) << ")" << std::endl;
    const auto begin = std::chrono::steady_clock::now();
    const bool passed = rl::simulate<Suite>(params);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    report();
    if (!passed && params.test_result == rl::test_result_success) {
        // Relacy replays a failing iteration to print its history; if the
        // replay passes, the test is not deterministic (its own RL_VERIFY
        // says so only in builds with RL_DO_ASSERT, which cost ~30% speed).
        std::cout << "the failing iteration passed on replay: the test is not deterministic\n";
    }
    std::cout << (passed ? "PASSED" : "FAILED") << " in " << seconds << " s" << std::endl << std::endl;
    return {name, rl::format(scheduler), passed, seconds, params.stop_iteration};
}

template <class Suite>
run_result run_model(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                     unsigned context_bound) {
    return run_model<Suite>(name, scheduler, iterations, context_bound, [] {});
}

inline constexpr auto bounded = rl::fair_context_bound_scheduler_type;
inline constexpr auto random = rl::random_scheduler_type;

/// argv[index] as a positive count, or `fallback` if absent; exits with
/// status 2 on anything else.
inline std::uint64_t count_argument(int argc, char** argv, int index, std::uint64_t fallback) {
    if (index >= argc) {
        return fallback;
    }
    const char* text = argv[index];
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value == 0) {
        std::cerr << argv[0] << ": expected a positive number, got '" << text << "'\n";
        std::exit(2);
    }
    return value;
}

/// Prints the summary table; the exit status: 0 if every run passed.
inline int summarize(std::span<const run_result> results) {
    bool all_passed = true;
    std::cout << "summary:\n";
    for (const run_result& r : results) {
        std::printf("  %-4s %-34s %-24s %10llu iterations %7.2f s\n", r.passed ? "ok" : "FAIL", r.name,
                    r.scheduler, static_cast<unsigned long long>(r.iterations), r.seconds);
        all_passed = all_passed && r.passed;
    }
    return all_passed ? 0 : 1;
}

} // namespace weft::model
