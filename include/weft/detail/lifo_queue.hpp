// weft/detail/lifo_queue.hpp
//
// What it is for: each worker's run queue when Options::queue_order is
// `lifo` (fork-join). The owner pushes and pops at one end (newest first),
// so recursion goes depth-first and a worker keeps O(depth) tasks alive;
// thieves take half from the other end (oldest first): in fork-join the
// oldest task is the largest subtree, so one steal gives the thief work for
// a long time, and the owner's hot end is left alone.
//
// Where it comes from: the work-stealing deque of Arora, Blumofe and Plaxton
// and Chase-Lev (owner LIFO at the bottom, thieves FIFO at the top), as in
// oneTBB and Rayon; the packed index word, steal-half and the one-thief-at-
// a-time claim follow weft's local_queue.hpp (Tokio's queue.rs, Go's runq).
//
// Layout: a ring of `Capacity` slots and one 64-bit atomic word packing three
// 16-bit wrapping indices, h | t << 16 | s << 32:
//   - [h, t) are the queued tasks; h is the newest, t - 1 the oldest.
//   - [t, s) are slots one thief is copying out (s == t: no steal going on).
//   - [h, s) are all the slots in use; the owner's room is
//     Capacity - (s - h).
// Who writes what:
//   - Only the owner writes slots and moves h: push writes slot h - 1, then
//     moves h down; pop moves h up, then reads the slot.
//   - Only thieves move t and s, and only down: a thief claims [t - n, t) by
//     moving t down (allowed only while s == t), copies the slots out, then
//     releases them by moving s down to t. While s != t no other thief
//     starts, so the releasing thief is the only one changing t and s.
// Every change of the word is a CAS of the whole word, so each task is
// handed out exactly once: a pop and a claim of the same slot race on the
// same word and one of them fails and retries.
//
// Why the owner's push cannot clobber a slot being read: the owner writes
// slot h - 1 only when room > 0, i.e. when h - 1 lies outside [h, s) modulo
// Capacity. Thieves only ever shrink [h, s) (t and s move down), so the slot
// stays outside it until the owner's CAS publishes it; a failed CAS is
// retried with the same h and the slot stays valid.
//
// Memory orders (what pairs with what):
//   - owner's CAS that moves h down (release) <-> thief's claim CAS
//     (acquire): the slots written before the push are visible to the thief
//     that claims them. Every write of the word is a read-modify-write, so
//     a claim that reads a later value (after pops, other claims) is still
//     in the push's release sequence.
//   - thief's release CAS (s := t, release) <-> the owner's acquire loads
//     of the word that compute its room (push, overflow, push_back_n, and
//     steal_into on the thief's own queue): the thief's reads of the slots
//     happen before the owner writes them again.
//   - pop is relaxed: the owner reads only slots it wrote itself, and the
//     CAS alone decides between it and a thief.
// Why ABA is harmless: a thief reads nothing but the word before its claim
// and reads the slots only after its claim CAS succeeded. The CAS compares
// the whole word, so if the word went round (16-bit indices wrap after
// 65,536 operations) to the very value the thief loaded, the state is that
// value: [t - n, t) holds queued tasks now, and the acquire of the CAS makes
// their current contents visible.
//
// The model test tests/model/lifo_queue_model.cpp runs this code under
// Relacy with capacities 2 and 4: push, pop, overflow and two thieves.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <span>

#include "atomic_policy.hpp"

namespace weft::detail {

template <class T, std::uint32_t Capacity, class Policy = std_policy>
class lifo_queue {
    static_assert(Capacity >= 2, "the local queue needs at least 2 slots");
    static_assert((Capacity & (Capacity - 1)) == 0,
                  "the local queue size must be a power of two (2, 4, ..., 256, ...)");
    static_assert(Capacity <= (1u << 14),
                  "the lifo local queue size must be at most 16384 slots: its indices are 16-bit");

public:
    static constexpr std::uint32_t capacity = Capacity;
    /// On overflow, this many of the oldest tasks (plus the new one) leave
    /// for the global queue in one batch.
    static constexpr std::uint32_t overflow_half = Capacity / 2;

    /// `start` sets the initial index, so tests can start near 2^16 and see
    /// the indices wrap within a few operations.
    explicit lifo_queue(std::uint16_t start = 0) noexcept : m_word(pack({start, start, start})) {}

    lifo_queue(const lifo_queue&) = delete;
    lifo_queue& operator=(const lifo_queue&) = delete;

    /// Number of queued tasks. Exact for the owner; a snapshot for others.
    std::uint32_t len() const noexcept {
        const indices at = unpack(m_word.load(std::memory_order_acquire));
        return distance(at.t, at.h);
    }

    bool is_empty() const noexcept { return len() == 0; }

    /// Owner only: slots free for a push without overflow.
    std::uint32_t remaining_slots() const noexcept {
        // Acquire: see push_back_or_overflow.
        const indices at = unpack(m_word.load(std::memory_order_acquire));
        return Capacity - distance(at.s, at.h);
    }

    /// Owner only. Pushes `task` at the newest end, where the next pop takes
    /// it. When the ring is full, hands the oldest half of the ring plus
    /// `task` to `overflow(std::span<T>)` in one call, oldest first (or only
    /// `task` while a thief is busy freeing room) and returns true.
    /// ("back" keeps local_queue's name: the end the owner pushes to.)
    template <class Overflow>
    bool push_back_or_overflow(T task, Overflow&& overflow) {
        // Acquire, here and on a failed CAS below: pairs with a thief's
        // release of its claim, so its reads of the slots we may reuse are
        // complete.
        std::uint64_t word = m_word.load(std::memory_order_acquire);
        for (;;) {
            const indices at = unpack(word);
            if (distance(at.s, at.h) < Capacity) {
                m_buffer[(at.h - 1) & mask].store(task);
                publish_head(word, at.h - 1);
                return false;
            }
            if (at.s != at.t) {
                // Full, but a thief is copying tasks out and will free room;
                // do not wait for it: only this task leaves.
                T one[1] = {task};
                overflow(std::span<T>(one, 1));
                return true;
            }
            // Full and no thief: take the oldest half back from the thieves'
            // end (t and s move down together, as a thief's claim and
            // release in one step). We read only our own slots; acquire on
            // failure as for the load above (and on success only because a
            // CAS's failure order may not be stronger than its success).
            const std::uint32_t first = at.t - overflow_half;
            if (m_word.compare_exchange_weak(word, pack({at.h, first, first}), std::memory_order_acquire,
                                             std::memory_order_acquire)) {
                std::array<T, overflow_half + 1> batch;
                for (std::uint32_t i = 0; i < overflow_half; ++i) {
                    batch[i] = m_buffer[(at.t - 1 - i) & mask].load(); // oldest first
                }
                batch[overflow_half] = task;
                overflow(std::span<T>(batch.data(), batch.size()));
                return true;
            }
            // A thief claimed tasks between our load and our CAS: retry.
        }
    }

    /// Owner only. Pushes `n` tasks produced by `next()` at the newest end
    /// as one batch (one CAS); the owner pops them in the order `next()`
    /// gave them. The caller has checked that `n <= remaining_slots()`.
    template <class Next>
    void push_back_n(std::uint32_t n, Next&& next) {
        if (n == 0) {
            return;
        }
        std::uint64_t word = m_word.load(std::memory_order_acquire); // as in push_back_or_overflow
        const indices at = unpack(word);
        assert(n <= Capacity - distance(at.s, at.h));
        for (std::uint32_t i = 0; i < n; ++i) {
            m_buffer[(at.h - n + i) & mask].store(next());
        }
        publish_head(word, at.h - n);
    }

    /// Owner only. Takes the newest task; false if the queue is empty.
    bool pop(T& out) noexcept {
        // Relaxed: the owner reads only slots it wrote; the CAS decides
        // between this pop and a thief's claim of the same slot.
        std::uint64_t word = m_word.load(std::memory_order_relaxed);
        for (;;) {
            const indices at = unpack(word);
            if (at.h == at.t) {
                return false;
            }
            if (m_word.compare_exchange_weak(word, pack({at.h + 1, at.t, at.s}), std::memory_order_relaxed,
                                             std::memory_order_relaxed)) {
                out = m_buffer[at.h & mask].load();
                return true;
            }
        }
    }

    /// Thief. Takes half of this queue (the oldest tasks, rounded up). The
    /// oldest of them is returned in `out` for the caller to run at once;
    /// the others go to `dst`, which the calling thread owns, at its newest
    /// end and in the order they had here. Returns the number of tasks
    /// taken, 0 if there was nothing to take or another thief is at work.
    std::uint32_t steal_into(lifo_queue& dst, T& out) {
        // Acquire: a slot of our own queue that a thief read is free again
        // only after its release (as in push_back_or_overflow).
        std::uint64_t dst_word = dst.m_word.load(std::memory_order_acquire);
        const indices mine = unpack(dst_word);
        if (distance(mine.s, mine.h) > Capacity / 2) {
            return 0; // our own queue is over half full: we have work
        }
        std::uint64_t word = m_word.load(std::memory_order_relaxed);
        std::uint32_t n = 0;
        indices at{};
        for (;;) {
            at = unpack(word);
            if (at.s != at.t) {
                return 0; // another thief is at work on this queue
            }
            const std::uint32_t available = distance(at.t, at.h);
            n = available - available / 2;
            if (n == 0) {
                return 0;
            }
            // Acquire: pairs with the owner's release of the pushes that
            // wrote the claimed slots. Relaxed on failure: nothing is read
            // before the claim succeeds.
            if (m_word.compare_exchange_weak(word, pack({at.h, at.t - n, at.t}), std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
                break;
            }
        }
        // n <= Capacity / 2 and our queue had room for at least that many.
        assert(n <= Capacity / 2);
        const std::uint32_t first = at.t - n;
        out = m_buffer[(at.t - 1) & mask].load();
        const std::uint32_t kept = n - 1;
        if (kept != 0) {
            for (std::uint32_t i = 0; i < kept; ++i) {
                dst.m_buffer[(mine.h - kept + i) & mask].store(m_buffer[(first + i) & mask].load());
            }
            dst.publish_head(dst_word, mine.h - kept);
        }
        // Release the claim: s catches up with t. Only this thief changes t
        // and s until then; the owner may move h meanwhile. Release: our
        // reads of the slots above happen before the owner reuses them.
        word = m_word.load(std::memory_order_relaxed);
        for (;;) {
            const indices now = unpack(word);
            assert(distance(now.t, first) == 0 && distance(now.s, at.t) == 0);
            if (m_word.compare_exchange_weak(word, pack({now.h, now.t, now.t}), std::memory_order_release,
                                             std::memory_order_relaxed)) {
                return n;
            }
        }
    }

private:
    static constexpr std::uint32_t mask = Capacity - 1;
    static constexpr std::uint32_t index_mask = 0xFFFF;

    struct indices {
        std::uint32_t h; // newest queued task (owner's end)
        std::uint32_t t; // one past the oldest queued task (thieves' end)
        std::uint32_t s; // one past the last slot a thief is copying out
    };

    static constexpr std::uint64_t pack(indices at) noexcept {
        return std::uint64_t{at.h & index_mask} | (std::uint64_t{at.t & index_mask} << 16) |
               (std::uint64_t{at.s & index_mask} << 32);
    }
    static constexpr indices unpack(std::uint64_t word) noexcept {
        return {static_cast<std::uint32_t>(word) & index_mask,
                static_cast<std::uint32_t>(word >> 16) & index_mask,
                static_cast<std::uint32_t>(word >> 32) & index_mask};
    }
    // `to - from` modulo 2^16.
    static constexpr std::uint32_t distance(std::uint32_t to, std::uint32_t from) noexcept {
        return (to - from) & index_mask;
    }

    // Owner: sets h to `head` (below the current h, slots written), keeping
    // whatever t and s thieves have set. `word` is a recent value of the
    // word. Release: publishes the slots to the thief whose claim reads this
    // value or a later one. Relaxed on failure: the retry decides nothing,
    // thieves only shrink [h, s), and h is ours.
    void publish_head(std::uint64_t word, std::uint32_t head) noexcept {
        for (;;) {
            const indices at = unpack(word);
            if (m_word.compare_exchange_weak(word, pack({head, at.t, at.s}), std::memory_order_release,
                                             std::memory_order_relaxed)) {
                return;
            }
        }
    }

    // Thieves hammer the word; keep the slots on other cache lines.
    alignas(64) typename Policy::template atomic<std::uint64_t> m_word;
    alignas(64) std::array<typename Policy::template cell<T>, Capacity> m_buffer{};
};

} // namespace weft::detail
