// tests/model/relacy_policy.hpp
//
// What it is for: the atomic policy (see include/weft/detail/atomic_policy.hpp
// for the contract) that runs weft's lock-free code under Relacy, Dmitry
// Vyukov's weak-memory model checker. Relacy runs each test thread as a fiber
// under its own scheduler and keeps, for every atomic, a history of stores
// from which a load may return any value the C++ memory model allows.
//   - `atomic<T>` wraps `rl::atomic<T>`: every load, store and RMW is a
//     scheduling point and follows the memory order the code names.
//   - `cell<T>` wraps `rl::var<T>`: Relacy reports a data race when two
//     threads touch the same cell without a happens-before edge, and an
//     uninitialised access when a slot is read before any write.
//   - `spin_hint()` is a Relacy yield, so a spin loop lets the others run and
//     an endless spin is reported as a livelock instead of hanging.
//
// Why only Relacy's core headers: `<relacy/relacy.hpp>` ends with macros
// that rewrite `memory_order_acquire` into `mo_acquire, $`, and `new`,
// `delete`, `malloc`, `free`, `assert`, `errno`, and (via its stdlib
// emulation) `EINVAL`, `sched_yield`, `pthread_*`. Those would break
// `std::memory_order_acquire` in the weft headers and any standard header
// included later. The core headers below (the same list relacy.hpp includes,
// minus the pthread/windows emulation) give the checker without rewriting a
// single name, so weft's headers and the standard library can be included
// in any order. Only `$` (Relacy's debug-info macro) is defined.
//
// Debug info: instead of Relacy's `$` (which would point every event at
// this file), each operation takes a defaulted call-site argument, so a
// Relacy trace names the function and line in weft's own header that did
// the access.
//
// Seeded bugs: a model test proves it can catch a wrong memory order by
// running once with one order weakened, in the policy rather than in weft's
// code: `seed_bug("unlock", release, relaxed)` makes every operation named
// `release` in a function called `unlock` use `relaxed` instead. The model
// programs do this when built with -DWEFT_MODEL_SEEDED_BUG; those builds are
// registered with WILL_FAIL.
//
// Futex: `futex_wait(word, expected)` / `futex_wake(word, count)` are
// Relacy's own wait and wake on the atomic (what its pthread emulation does
// for futex(2)): the sleeper blocks in the checker, so a thread that sleeps
// with nobody left to wake it is reported as a deadlock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <relacy/base.hpp>
#include <relacy/context.hpp>
#include <relacy/context_base_impl.hpp>
#include <relacy/backoff.hpp>
#include <relacy/atomic_fence.hpp>
#include <relacy/atomic.hpp>
#include <relacy/var.hpp>
#include <relacy/thread_local.hpp>
#include <relacy/test_suite.hpp>
#include <relacy/dyn_thread.hpp>
// Relacy's context instantiates its mutex/condvar/semaphore/event models
// even when unused; these four define no macros (pthread.hpp and
// windows.hpp, which do, are left out).
#include <relacy/stdlib/mutex.hpp>
#include <relacy/stdlib/condition_variable.hpp>
#include <relacy/stdlib/semaphore.hpp>
#include <relacy/stdlib/event.hpp>

namespace weft::model {

namespace relacy_detail {

inline rl::memory_order to_rl(std::memory_order mo) noexcept {
    switch (mo) {
    case std::memory_order_relaxed: return rl::mo_relaxed;
    case std::memory_order_consume: return rl::mo_consume;
    case std::memory_order_acquire: return rl::mo_acquire;
    case std::memory_order_release: return rl::mo_release;
    case std::memory_order_acq_rel: return rl::mo_acq_rel;
    case std::memory_order_seq_cst: return rl::mo_seq_cst;
    }
    return rl::mo_seq_cst;
}

/// Where an operation was called from, captured by a defaulted argument as
/// std::source_location would be. (std::source_location itself is missing
/// with clang 14 on libstdc++ 12; these builtins work in g++ and clang++.)
/// The function is its plain name ("pop"; a function template's also lists
/// its arguments), which keeps trace lines far shorter than a signature.
struct call_site {
    const char* function;
    const char* file;
    unsigned line;

    constexpr call_site(const char* function_ = __builtin_FUNCTION(), const char* file_ = __builtin_FILE(),
                        unsigned line_ = __builtin_LINE()) noexcept
        : function(function_), file(file_), line(line_) {}
};

inline rl::debug_info to_rl(const call_site& where) noexcept {
    return rl::debug_info(where.function, where.file, where.line);
}

/// One weakened order: in functions named `function` (a template's name
/// may be followed by its arguments), `from` becomes `to`.
struct weakening {
    const char* function;
    std::memory_order from;
    std::memory_order to;
};

inline std::array<weakening, 8> g_weakenings{};
inline std::size_t g_weakening_count = 0;

inline bool names(const char* function, const char* name) noexcept {
    const std::size_t length = std::strlen(name);
    return std::strncmp(function, name, length) == 0 && (function[length] == '\0' || function[length] == '<');
}

/// The order an operation really uses: the named one, unless a seeded bug
/// weakens it at this call site.
inline rl::memory_order effective(std::memory_order mo, const call_site& where) noexcept {
    for (std::size_t i = 0; i < g_weakening_count; ++i) {
        const weakening& w = g_weakenings[i];
        if (w.from == mo && names(where.function, w.function)) {
            return to_rl(w.to);
        }
    }
    return to_rl(mo);
}

} // namespace relacy_detail

/// Atomic policy backed by Relacy (see the top of this file).
struct relacy_policy {
    /// Runaway guard. A wrong memory order can make lock-free code loop for
    /// ~2^32 steps (e.g. a thief that sees `tail - head` underflow claims
    /// billions of slots); Relacy would explore that one iteration for hours
    /// and, replaying it to print its history, exhaust memory. A test suite
    /// calls this in `before()` to fail any iteration that makes more than
    /// `limit` operations on policy atomics and cells (0: no limit).
    static void limit_operations_per_iteration(std::uint64_t limit) noexcept {
        s_operation_limit = limit;
        s_operations = 0;
    }

    /// Seeded bug (see the top of this file): from now on, operations named
    /// `from` in functions called `function` use `to`. Call before simulating.
    static void seed_bug(const char* function, std::memory_order from, std::memory_order to) noexcept {
        relacy_detail::g_weakenings.at(relacy_detail::g_weakening_count++) = {function, from, to};
    }

    template <class T>
    class atomic {
        using here = relacy_detail::call_site;

    public:
        // Not explicit, like std::atomic's value constructor. Relacy records
        // it as a relaxed store; the test's `before()` is followed by a
        // global fence, so every thread sees it.
        atomic(T value) : m_atomic(value) {}

        atomic(const atomic&) = delete;
        atomic& operator=(const atomic&) = delete;

        T load(std::memory_order mo, here where = {}) const {
            count_operation(where);
            return m_atomic.load(relacy_detail::effective(mo, where), relacy_detail::to_rl(where));
        }
        void store(T value, std::memory_order mo, here where = {}) {
            count_operation(where);
            m_atomic.store(value, relacy_detail::effective(mo, where), relacy_detail::to_rl(where));
        }
        T exchange(T value, std::memory_order mo, here where = {}) {
            count_operation(where);
            return m_atomic.exchange(value, relacy_detail::effective(mo, where), relacy_detail::to_rl(where));
        }
        T fetch_add(typename rl::atomic_add_type<T>::type value, std::memory_order mo, here where = {}) {
            count_operation(where);
            return m_atomic.fetch_add(value, relacy_detail::effective(mo, where),
                                      relacy_detail::to_rl(where));
        }
        T fetch_sub(typename rl::atomic_add_type<T>::type value, std::memory_order mo, here where = {}) {
            count_operation(where);
            return m_atomic.fetch_sub(value, relacy_detail::effective(mo, where),
                                      relacy_detail::to_rl(where));
        }
        T fetch_or(T value, std::memory_order mo, here where = {}) {
            count_operation(where);
            return m_atomic.fetch_or(value, relacy_detail::effective(mo, where), relacy_detail::to_rl(where));
        }
        T fetch_and(T value, std::memory_order mo, here where = {}) {
            count_operation(where);
            return m_atomic.fetch_and(value, relacy_detail::effective(mo, where),
                                      relacy_detail::to_rl(where));
        }
        // Relacy checks the success/failure pair is legal (failure no
        // stronger than success, never release) and allows spurious failure
        // of the weak form.
        bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                                   std::memory_order failure, here where = {}) {
            count_operation(where);
            return m_atomic.compare_exchange(
                rl::bool_t<true>(), expected, desired, relacy_detail::effective(success, where),
                relacy_detail::effective(failure, where), relacy_detail::to_rl(where));
        }
        bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                                     std::memory_order failure, here where = {}) {
            count_operation(where);
            return m_atomic.compare_exchange(
                rl::bool_t<false>(), expected, desired, relacy_detail::effective(success, where),
                relacy_detail::effective(failure, where), relacy_detail::to_rl(where));
        }

    private:
        friend struct relacy_policy;
        rl::atomic<T> m_atomic;
    };

    template <class T>
    class cell {
        using here = relacy_detail::call_site;

    public:
        // Left uninitialised on purpose: Relacy reports a read of a slot
        // that no thread wrote.
        cell() = default;
        // Written by the constructing thread (see atomic's constructor).
        explicit cell(T value) { m_var(RL_INFO).store(value); }

        T load(here where = {}) const {
            count_operation(where);
            return m_var(relacy_detail::to_rl(where)).load();
        }
        void store(T value, here where = {}) {
            count_operation(where);
            m_var(relacy_detail::to_rl(where)).store(value);
        }

    private:
        rl::var<T> m_var;
    };

    static void spin_hint(relacy_detail::call_site where = {}) {
        count_operation(where);
        rl::yield(1, relacy_detail::to_rl(where));
    }

    /// Sleeps while `*word == expected`, as futex(2) (see the top of this
    /// file). Never returns spuriously: a spurious return would only make
    /// weft's sleep loops go round once more.
    static void futex_wait(const atomic<std::uint32_t>* word, std::uint32_t expected,
                           relacy_detail::call_site where = {}) {
        count_operation(where);
        rl::context& c = rl::ctx();
        rl::atomic<std::uint32_t>& a = const_cast<atomic<std::uint32_t>*>(word)->m_atomic;
        c.sched();
        c.atomic_thread_fence_seq_cst();
        std::uint32_t now = 0;
        {
            // The compare and the sleep are one step, as in the kernel.
            rl::preemption_disabler disabler(c);
            now = a.load(rl::mo_relaxed, relacy_detail::to_rl(where));
        }
        if (now == expected) {
            a.wait(c, false, false, relacy_detail::to_rl(where));
        }
    }

    /// Wakes at most `count` threads sleeping in futex_wait on `word`.
    static void futex_wake(const atomic<std::uint32_t>* word, int count = 1,
                           relacy_detail::call_site where = {}) {
        count_operation(where);
        rl::context& c = rl::ctx();
        c.sched();
        c.atomic_thread_fence_seq_cst();
        const_cast<atomic<std::uint32_t>*>(word)->m_atomic.wake(c, static_cast<rl::thread_id_t>(count),
                                                                relacy_detail::to_rl(where));
    }

private:
    static void count_operation(const relacy_detail::call_site& where) {
        if (s_operation_limit != 0 && ++s_operations > s_operation_limit) {
            RL_ASSERT_IMPL(
                false, rl::test_result_livelock,
                "runaway: more operations in one iteration than limit_operations_per_iteration allows",
                relacy_detail::to_rl(where));
        }
    }

    // Reset by every iteration's before(), so a replay counts the same way.
    inline static std::uint64_t s_operation_limit = 0;
    inline static std::uint64_t s_operations = 0;
};

} // namespace weft::model
