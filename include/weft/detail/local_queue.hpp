// weft/detail/local_queue.hpp
//
// What it is for: each worker's run queue. A fixed ring of `Capacity` slots
// with one owner (the worker: push, pop) and any number of thieves (other
// workers: steal half). No allocation, no lock; the owner's push is a load
// and a store, no read-modify-write.
//
// Where it comes from: Tokio's `multi_thread/queue.rs` (packed head, steal
// half, overflow of the newer half, PR #8029) and Go's `runq`.
//
// Layout and invariants:
//   - `m_head` packs two 32-bit indices: (steal << 32) | real.
//       real  = the next slot the owner pops;
//       steal = the first slot a thief is still copying out. steal == real
//               means no thief is active. Only one thief works on a queue at
//               a time: a thief that sees steal != real gives up.
//   - `m_tail` is written only by the owner.
//   - Occupied slots are [steal, tail): slots a thief is copying out still
//     count as taken, so the owner can never overwrite a slot being read.
//   - Indices are 32-bit and wrap; all arithmetic is modulo 2^32, so ABA on
//     the head needs 2^32 operations during one preempted steal (Tokio
//     widened from 16 bits for exactly that, tokio#5041).
//
// Memory orders (what pairs with what):
//   - owner `m_tail.store(release)`  <->  thief `m_tail.load(acquire)`:
//     slot contents written before the tail store are visible to a thief
//     that claims them.
//   - thief's final head CAS (acq_rel, steal := real)  <->  owner
//     `m_head.load(acquire)` in push: the thief's reads of the slots happen
//     before the owner reuses them.
//   - pop and the steal claim race on `m_head` through CAS (acq_rel), so a
//     slot is handed out exactly once.
// The model test tests/model/local_queue_model.cpp runs this code under
// Relacy with capacities 4 and 2: push, pop, overflow and two thieves.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <span>

#include "atomic_policy.hpp"

namespace weft::detail {

template <class T, std::uint32_t Capacity, class Policy = std_policy>
class local_queue {
    static_assert(Capacity >= 2, "the local queue needs at least 2 slots");
    static_assert((Capacity & (Capacity - 1)) == 0,
                  "the local queue size must be a power of two (2, 4, ..., 256, ...)");
    static_assert(Capacity <= (1u << 24),
                  "the local queue size must be at most 2^24 slots: indices are 32-bit");

public:
    static constexpr std::uint32_t capacity = Capacity;
    /// On overflow, this many of the newest tasks (plus the new one) leave
    /// for the global queue in one batch.
    static constexpr std::uint32_t overflow_half = Capacity / 2;

    /// `start` sets the initial index, so tests can start near 2^32 and see
    /// the indices wrap within a few operations.
    explicit local_queue(std::uint32_t start = 0) noexcept : m_head(pack(start, start)), m_tail(start) {}

    local_queue(const local_queue&) = delete;
    local_queue& operator=(const local_queue&) = delete;

    /// Number of queued tasks. Exact for the owner; a snapshot for others.
    std::uint32_t len() const noexcept {
        const std::uint32_t real = unpack_real(m_head.load(std::memory_order_acquire));
        const std::uint32_t tail = m_tail.load(std::memory_order_acquire);
        return tail - real;
    }

    bool is_empty() const noexcept { return len() == 0; }

    /// Owner only: slots free for a push without overflow.
    std::uint32_t remaining_slots() const noexcept {
        const std::uint32_t steal = unpack_steal(m_head.load(std::memory_order_acquire));
        const std::uint32_t tail = m_tail.load(std::memory_order_relaxed);
        return Capacity - (tail - steal);
    }

    /// Owner only. Appends `task`. When the ring is full, hands the newer half
    /// of the ring plus `task` to `overflow(std::span<T>)` in one call (or only
    /// `task` while a thief is busy freeing room) and returns true.
    template <class Overflow>
    bool push_back_or_overflow(T task, Overflow&& overflow) {
        // Only the owner writes the tail, so its own relaxed load is exact.
        const std::uint32_t tail = m_tail.load(std::memory_order_relaxed);
        for (;;) {
            // Acquire: pairs with a thief's release of the steal head, so its
            // reads of the slots we are about to reuse are complete.
            const std::uint64_t head = m_head.load(std::memory_order_acquire);
            const std::uint32_t steal = unpack_steal(head);
            const std::uint32_t real = unpack_real(head);
            if (tail - steal < Capacity) {
                m_buffer[tail & mask].store(task);
                // Release: publishes the slot to thieves that load the tail.
                m_tail.store(tail + 1, std::memory_order_release);
                return false;
            }
            if (steal != real) {
                // Full, but a thief is copying tasks out and will free room;
                // do not wait for it: only this task leaves.
                T one[1] = {task};
                overflow(std::span<T>(one, 1));
                return true;
            }
            if (move_newer_half(task, real, tail, overflow)) {
                return true;
            }
            // A thief claimed tasks between our load and our CAS: retry.
        }
    }

    /// Owner only. Appends `n` tasks produced by `next()`; the caller has
    /// checked that `n <= remaining_slots()`. One tail store publishes all.
    template <class Next>
    void push_back_n(std::uint32_t n, Next&& next) {
        const std::uint32_t tail = m_tail.load(std::memory_order_relaxed);
        assert(n <= remaining_slots());
        for (std::uint32_t i = 0; i < n; ++i) {
            m_buffer[(tail + i) & mask].store(next());
        }
        m_tail.store(tail + n, std::memory_order_release);
    }

    /// Owner only. Takes the oldest task; false if the queue is empty.
    bool pop(T& out) noexcept {
        std::uint64_t head = m_head.load(std::memory_order_acquire);
        for (;;) {
            const std::uint32_t steal = unpack_steal(head);
            const std::uint32_t real = unpack_real(head);
            const std::uint32_t tail = m_tail.load(std::memory_order_relaxed);
            if (real == tail) {
                return false;
            }
            // With no thief active both halves advance; otherwise the steal
            // index stays where the thief left it.
            const std::uint64_t next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
            // acq_rel: we race thieves for the same slot and exactly one CAS
            // wins. The release half matters to thieves: a thief that
            // acquires this head and then loads the tail sees a tail at
            // least this far, so its `tail - real` never underflows (the
            // model test fails if it is relaxed).
            if (m_head.compare_exchange_weak(head, next, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
                out = m_buffer[real & mask].load();
                return true;
            }
        }
    }

    /// Thief. Moves half of this queue (the oldest tasks, rounded up) into
    /// `dst`, which the calling thread owns. The last task moved is returned
    /// in `out` for the caller to run at once; the others land in `dst`.
    /// Returns the number of tasks taken, 0 if there was nothing to take.
    std::uint32_t steal_into(local_queue& dst, T& out) {
        const std::uint32_t dst_tail = dst.m_tail.load(std::memory_order_relaxed);
        const std::uint32_t dst_steal = unpack_steal(dst.m_head.load(std::memory_order_acquire));
        if (dst_tail - dst_steal > Capacity / 2) {
            return 0; // our own queue is at least half full: we have work
        }
        const std::uint32_t n = claim_and_copy(dst, dst_tail);
        if (n == 0) {
            return 0;
        }
        const std::uint32_t kept = n - 1;
        out = dst.m_buffer[(dst_tail + kept) & mask].load();
        if (kept != 0) {
            dst.m_tail.store(dst_tail + kept, std::memory_order_release);
        }
        return n;
    }

private:
    static constexpr std::uint32_t mask = Capacity - 1;

    static constexpr std::uint64_t pack(std::uint32_t steal, std::uint32_t real) noexcept {
        return (std::uint64_t{steal} << 32) | real;
    }
    static constexpr std::uint32_t unpack_steal(std::uint64_t head) noexcept {
        return static_cast<std::uint32_t>(head >> 32);
    }
    static constexpr std::uint32_t unpack_real(std::uint64_t head) noexcept {
        return static_cast<std::uint32_t>(head);
    }

    // Owner, queue full (tail - real == Capacity), no thief active. Claims
    // every slot with one CAS, gives the older half straight back (it stays
    // where it is: slot tail+i is slot real+i modulo Capacity), and sends the
    // newer half plus `task` away. Tasks a worker took from the global queue
    // land in the older half, so they never bounce straight back there.
    template <class Overflow>
    bool move_newer_half(T task, std::uint32_t real, std::uint32_t tail, Overflow& overflow) {
        assert(tail - real == Capacity);
        std::uint64_t expected = pack(real, real);
        // Release/relaxed as Tokio: a failed CAS means a thief moved the head
        // and we retry the whole push; success needs no acquire because every
        // slot we read below was written by this thread.
        if (!m_head.compare_exchange_strong(expected, pack(tail, tail), std::memory_order_release,
                                            std::memory_order_relaxed)) {
            return false;
        }
        std::array<T, overflow_half + 1> batch;
        for (std::uint32_t i = 0; i < overflow_half; ++i) {
            batch[i] = m_buffer[(real + overflow_half + i) & mask].load();
        }
        batch[overflow_half] = task;
        // Re-expose the older half to pops and thieves.
        m_tail.store(tail + overflow_half, std::memory_order_release);
        overflow(std::span<T>(batch.data(), batch.size()));
        return true;
    }

    // Claims half of this queue for the calling thief by moving `real` while
    // leaving `steal` behind, copies the claimed slots into `dst` from
    // `dst_tail` on, then releases the claim by catching `steal` up.
    std::uint32_t claim_and_copy(local_queue& dst, std::uint32_t dst_tail) {
        std::uint64_t prev = m_head.load(std::memory_order_acquire);
        std::uint64_t next = 0;
        std::uint32_t n = 0;
        for (;;) {
            const std::uint32_t steal = unpack_steal(prev);
            const std::uint32_t real = unpack_real(prev);
            if (steal != real) {
                return 0; // another thief is at work on this queue
            }
            // Acquire: pairs with the owner's release of the tail, making
            // the slots up to it visible.
            const std::uint32_t tail = m_tail.load(std::memory_order_acquire);
            const std::uint32_t available = tail - real;
            n = available - available / 2;
            if (n == 0) {
                return 0;
            }
            next = pack(steal, real + n);
            if (m_head.compare_exchange_weak(prev, next, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
                break;
            }
        }
        // A stale head or tail would show as a huge `available`; the orders
        // above rule it out, and this catches any change that breaks them.
        assert(n <= Capacity / 2);
        const std::uint32_t first = unpack_steal(next);
        for (std::uint32_t i = 0; i < n; ++i) {
            dst.m_buffer[(dst_tail + i) & mask].store(m_buffer[(first + i) & mask].load());
        }
        // Release the claim: steal catches up with real (which the owner may
        // have advanced by popping meanwhile). acq_rel: our slot reads above
        // happen before the owner's next acquire load of the head.
        prev = next;
        for (;;) {
            const std::uint32_t real = unpack_real(prev);
            if (m_head.compare_exchange_weak(prev, pack(real, real), std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
                return n;
            }
        }
    }

    // Thieves hammer the head; the owner alone writes the tail: keep them on
    // separate cache lines.
    alignas(64) typename Policy::template atomic<std::uint64_t> m_head;
    alignas(64) typename Policy::template atomic<std::uint32_t> m_tail;
    alignas(64) std::array<typename Policy::template cell<T>, Capacity> m_buffer{};
};

} // namespace weft::detail
