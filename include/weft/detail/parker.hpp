// weft/detail/parker.hpp
//
// What it is for: putting one worker thread to sleep when it has nothing to
// do, and waking exactly that worker. Each worker owns one parker: a 32-bit
// futex word, so a wake is one atomic exchange plus, only if the worker is
// really asleep, one FUTEX_WAKE.
//
// Where it comes from: Tokio's `multi_thread/park.rs` (EMPTY / PARKED /
// NOTIFIED; the reactor state PARKED_IN_REACTOR joins when the reactor
// lands) and Rust std's futex-based thread parker.
//
// Invariants:
//   - Only the owner calls park(); anyone calls unpark().
//   - An unpark() before park() is not lost: it leaves NOTIFIED behind, and
//     the next park() consumes it and returns at once (a token, not a count).
//   - unpark() swaps NOTIFIED in (release); park() consumes it with an
//     acquire CAS, so whatever the waker wrote before unpark() is visible
//     to the woken worker.
//   - The sleeper waits on the word while it holds PARKED; the waker changes
//     the word *before* FUTEX_WAKE, so the kernel's compare closes the
//     check-then-sleep window.
#pragma once

#include <atomic>
#include <cstdint>

#include "futex.hpp"

namespace weft::detail {

class parker {
public:
    /// Sleeps until unpark() is (or was already) called.
    void park() noexcept {
        std::uint32_t cur = notified;
        if (m_state.compare_exchange_strong(cur, empty, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
            return;
        }
        cur = empty;
        if (!m_state.compare_exchange_strong(cur, parked, std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
            // Notified between the two CASes: consume it.
            m_state.exchange(empty, std::memory_order_acquire);
            return;
        }
        for (;;) {
            futex_wait(&m_state, parked);
            cur = notified;
            if (m_state.compare_exchange_strong(cur, empty, std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
                return;
            }
            // Spurious return (signal, or the word was still PARKED): sleep again.
        }
    }

    /// Wakes the owner if it sleeps, or makes its next park() return at once.
    void unpark() noexcept {
        // Always swap, even if already NOTIFIED: the release makes this
        // waker's writes visible to the acquire in park().
        if (m_state.exchange(notified, std::memory_order_release) == parked) {
            futex_wake(&m_state, 1);
        }
    }

private:
    static constexpr std::uint32_t empty = 0;
    static constexpr std::uint32_t parked = 1;
    static constexpr std::uint32_t notified = 2;

    std::atomic<std::uint32_t> m_state{empty};
};

} // namespace weft::detail
