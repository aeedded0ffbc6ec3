// weft/detail/atomic_policy.hpp
//
// What it is for: every lock-free structure in weft (the local queue, the
// inject queue, the idle set, the parker) is written once, generic over an
// *atomic policy*. Production code uses `std_policy` (std::atomic and plain
// memory); the model tests in tests/model/ plug in a policy backed by
// Relacy's atomics and checked variables, so the very same code is explored
// under a weak-memory model checker (Tokio does the same with loom,
// moodycamel with Relacy).
//
// The contract a policy fulfils:
//   - `atomic<T>`: constructible from a T; `load(mo)`, `store(v, mo)`,
//     `exchange(v, mo)`, `fetch_add(v, mo)`, `fetch_sub(v, mo)`,
//     `fetch_or(v, mo)`, `fetch_and(v, mo)`, `compare_exchange_weak(e, d,
//     success, failure)`, `compare_exchange_strong(e, d, success, failure)`.
//     Code written against a policy always names its memory order and never
//     uses the implicit operators, so a model checker sees every access.
//   - `cell<T>`: memory that is *not* atomic, with `load()` and `store(v)`,
//     default-constructible (unwritten) or constructible from a T. Under a
//     model checker a cell reports a data race if two threads touch it
//     without a happens-before edge; in production it is a plain T.
//   - `spin_hint()`: what a spinning thread does between attempts (the CPU's
//     pause/yield hint in production, a scheduler yield under a model
//     checker, which must see every spin loop make progress).
//   - `futex_wait(const atomic<uint32_t>*, expected)` and `futex_wake(const
//     atomic<uint32_t>*, count)`: sleep while the word holds `expected`, and
//     wake sleepers (futex(2) in production; the checker's own blocking wait
//     under a model checker, which then reports a sleeper nobody wakes).
#pragma once

#include <atomic>
#include <cstdint>

#include "futex.hpp"

namespace weft::detail {

// 64-bit atomics. The local queue's packed head, the reactor's readiness
// words and the metrics counters are std::atomic<std::uint64_t>, also on
// 32-bit targets. Every 64-bit ARM and x86 CPU has them lock-free, and so
// has 32-bit ARM from armv7-a on (and armv6k in ARM state): ldrexd/strexd.
// There weft requires it, so that a build for an older ISA fails here
// instead of silently taking libatomic's locks on the scheduling path.
// 32-bit CPUs without 64-bit atomic instructions (MIPS32, PowerPC 32) are
// not checked: libatomic's address-hashed locks stand in, correct but
// slower, and the build links -latomic (CMakeLists.txt detects when).
#if defined(__aarch64__) || defined(__x86_64__) || defined(__arm__)
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "weft needs lock-free 64-bit atomics on ARM: build for armv7-a or later, or for armv6k in "
              "ARM state (Raspberry Pi 1 and Zero: -march=armv6kz -marm), so that the compiler emits "
              "ldrexd/strexd");
#endif

/// Plain, non-atomic storage with the cell interface. Who may touch it when
/// is the enclosing structure's invariant, checked by the model tests.
template <class T>
class plain_cell {
public:
    plain_cell() noexcept = default;
    explicit plain_cell(T value) noexcept : m_value(value) {}

    T load() const noexcept { return m_value; }
    void store(T value) noexcept { m_value = value; }

private:
    T m_value{};
};

/// Tell the CPU that this thread is spinning: it saves power and frees the
/// pipeline for the sibling hyper-thread. x86: `pause` (tens of cycles).
/// arm64: `isb`, as Rust's spin_loop hint does: `yield` is a no-op on many
/// Cortex-A and Neoverse cores, while `isb` waits for the pipeline to drain,
/// a delay of the same order as `pause`. 32-bit ARM: `yield`.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("isb sy" ::: "memory");
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
    asm volatile("yield" ::: "memory");
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

/// The production policy: std::atomic and plain memory.
struct std_policy {
    template <class T>
    using atomic = std::atomic<T>;
    template <class T>
    using cell = plain_cell<T>;
    static void spin_hint() noexcept { cpu_relax(); }
    static void futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected) noexcept {
        detail::futex_wait(word, expected);
    }
    static void futex_wake(const std::atomic<std::uint32_t>* word, int count) noexcept {
        detail::futex_wake(word, count);
    }
};

} // namespace weft::detail
