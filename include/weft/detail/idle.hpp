// weft/detail/idle.hpp
//
// What it is for: deciding who searches for work and who sleeps, so that
// new work always finds a worker (no lost wake-up) and a burst of work wakes
// workers one at a time (no thundering herd).
//
// Where it comes from: Tokio's `multi_thread/idle.rs`, itself Go's
// `nmspinning` protocol (proc.go).
//
// The state word packs two counts: (unparked << 16) | searching.
//   - At most half the workers search at once (a "sloppy" cap, as Tokio's).
//   - A producer wakes a sleeper only if nobody is searching and somebody
//     sleeps; the woken worker starts out searching, so while it searches no
//     other wake is sent: one wake in flight at a time.
//   - The last searcher to stop searching, because it found work, wakes one
//     more (parallelism ramps up one worker at a time); because it is going
//     to park, it re-checks every queue first (notify_if_work_pending).
//
// Memory orders: every access to the state word is seq_cst, and producers
// read it with an RMW (fetch_add(0)), never a plain load. The handshake is a
// store-buffering pattern: the producer publishes a task then reads the
// word; the parker writes the word then reads the queues. With RMWs on both
// sides, one of the two RMWs reads the other's write and synchronizes with
// it, so either the producer sees the parker gone or the parker sees the
// task. A plain load would let x86's store buffer (and ARM) reorder it
// before the queue write, losing the wake (tokio PR #4383).
//
// The sleeper list is a fixed array used as a stack, guarded by a spinlock;
// `unparked` changes only under that lock, so the list and the count agree.
//
// tests/model/park_model.cpp runs this code under Relacy with the parker,
// the queues and the worker loop's park path (2 and 3 workers).
#pragma once

#include <array>
#include <cstdint>

#include "atomic_policy.hpp"
#include "spinlock.hpp"

namespace weft::detail {

template <std::uint32_t Workers, class Policy = std_policy>
class idle_set {
    static_assert(Workers >= 1 && Workers < (1u << 15), "the idle set packs worker counts in 16 bits");

public:
    idle_set() noexcept : m_state(Workers << unpark_shift) {}

    /// A worker with no local work asks to search. Refused when half the
    /// workers already search: they will find the work first.
    bool transition_worker_to_searching() noexcept {
        const std::uint32_t state = m_state.load(std::memory_order_seq_cst);
        if (2 * searching(state) >= Workers) {
            return false;
        }
        m_state.fetch_add(1, std::memory_order_seq_cst);
        return true;
    }

    /// A searcher found work. True if it was the last searcher: the caller
    /// must then wake another worker (if one is needed) to keep searching.
    bool transition_worker_from_searching() noexcept {
        const std::uint32_t prev = m_state.fetch_sub(1, std::memory_order_seq_cst);
        return searching(prev) == 1;
    }

    /// A worker goes to sleep. True if it was the last searcher: the caller
    /// must then re-check every queue before it really sleeps.
    bool transition_worker_to_parked(std::uint32_t worker, bool is_searching) noexcept {
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        const std::uint32_t dec = (1u << unpark_shift) | (is_searching ? 1u : 0u);
        const std::uint32_t prev = m_state.fetch_sub(dec, std::memory_order_seq_cst);
        m_sleepers[m_num_sleepers++] = worker;
        return is_searching && searching(prev) == 1;
    }

    /// A parked worker woke up. True if a notifier took it off the sleeper
    /// list (it is now searching); false if the wake was spurious or came
    /// from shutdown (it is still listed as sleeping).
    bool transition_worker_from_parked(std::uint32_t worker) noexcept {
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        for (std::uint32_t i = 0; i < m_num_sleepers; ++i) {
            if (m_sleepers[i] == worker) {
                return false;
            }
        }
        return true;
    }

    /// A parked worker found work of its own without being notified (the
    /// driver woke tasks onto it). True if it took itself off the sleeper
    /// list (it counts as unparked, not searching); false if a notifier
    /// picked it meanwhile (it counts as searching).
    bool remove_sleeper(std::uint32_t worker) noexcept {
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        for (std::uint32_t i = 0; i < m_num_sleepers; ++i) {
            if (m_sleepers[i] == worker) {
                m_sleepers[i] = m_sleepers[--m_num_sleepers];
                m_state.fetch_add(1u << unpark_shift, std::memory_order_seq_cst);
                return true;
            }
        }
        return false;
    }

    /// Which sleeper to wake for new work, if any should be: picks one,
    /// counts it unparked and searching, and returns true with its index.
    bool worker_to_notify(std::uint32_t& worker) noexcept {
        if (!notify_should_wakeup()) {
            return false;
        }
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        if (!notify_should_wakeup() || m_num_sleepers == 0) {
            return false;
        }
        worker = m_sleepers[--m_num_sleepers];
        m_state.fetch_add(1u | (1u << unpark_shift), std::memory_order_seq_cst);
        return true;
    }

    /// A hint for a worker pushing onto its own queue: could
    /// worker_to_notify() pick somebody? (Nobody searches and somebody
    /// sleeps.) A plain load, not the handshake: it may be stale, so only a
    /// caller that runs the work itself if nobody comes may skip on it.
    bool may_notify() const noexcept {
        const std::uint32_t state = m_state.load(std::memory_order_relaxed);
        return searching(state) == 0 && unparked(state) < Workers;
    }

    std::uint32_t num_searching() const noexcept {
        return searching(m_state.load(std::memory_order_seq_cst));
    }
    std::uint32_t num_unparked() const noexcept { return unparked(m_state.load(std::memory_order_seq_cst)); }

private:
    static constexpr std::uint32_t unpark_shift = 16;
    static constexpr std::uint32_t searching_mask = (1u << unpark_shift) - 1;

    static constexpr std::uint32_t searching(std::uint32_t state) noexcept { return state & searching_mask; }
    static constexpr std::uint32_t unparked(std::uint32_t state) noexcept { return state >> unpark_shift; }

    bool notify_should_wakeup() noexcept {
        // An RMW, not a load: see the header comment.
        const std::uint32_t state = m_state.fetch_add(0, std::memory_order_seq_cst);
        return searching(state) == 0 && unparked(state) < Workers;
    }

    typename Policy::template atomic<std::uint32_t> m_state;
    basic_spinlock<Policy> m_lock;
    std::array<std::uint32_t, Workers> m_sleepers{};
    std::uint32_t m_num_sleepers = 0;
};

} // namespace weft::detail
