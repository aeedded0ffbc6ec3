// weft/detail/owned_tasks.hpp
//
// What it is for: the list of every task an executor owns that has not
// finished, so shutdown can destroy the ones sitting in no queue (suspended
// on a join, later a timer or a socket) and run their destructors; and the
// live-task count for metrics.
//
// Where it comes from: Tokio's `OwnedTasks` (sharded intrusive lists).
//
// Invariants:
//   - A task is in at most one shard, and `header.owned_bound` says whether
//     it is; both change only under that shard's lock, so unbind() may be
//     called for a task already removed. `header.owned_shard` names the
//     shard; it is written once, by bind(), before the task is shared.
//   - A worker binds the tasks it spawns into a shard of its own, so the
//     bind, and the unbind when the task ends on the same worker (most do),
//     touch a cache line no other core writes. Tokio hashes every task into
//     shared shards; with 2 workers spawning fib's tasks that made the two
//     cores fight over every shard's line, and bind() took 15% of each
//     worker's time (perf). Threads that are not workers bind into
//     `SharedShards` shards picked by the task's address, so spawning
//     threads do not contend on one lock.
//   - Once closed, bind() refuses: a spawn that loses the race with shutdown
//     fails instead of leaving a task nobody will destroy.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "spinlock.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// bind()'s `owner` for a thread that is not one of the executor's workers.
inline constexpr std::uint32_t no_owner_shard = ~std::uint32_t{0};

template <std::uint32_t OwnerShards, std::uint32_t SharedShards>
class owned_tasks {
    static_assert(SharedShards >= 1 && (SharedShards & (SharedShards - 1)) == 0,
                  "live-task shards must be a power of two");
    static constexpr std::uint32_t Shards = OwnerShards + SharedShards;
    static_assert(Shards <= 0xffff, "a shard's index must fit task_header::owned_shard");

public:
    /// Adds a new task to shard `owner` (a worker's own, below OwnerShards)
    /// or, for no_owner_shard, to a shared shard. False once closed.
    bool bind(task_header* task, std::uint32_t owner) noexcept {
        const std::uint32_t index = owner < OwnerShards ? owner : OwnerShards + shared_index(task);
        task->owned_shard = static_cast<std::uint16_t>(index);
        shard& s = m_shards[index];
        lock_hold<spinlock> hold(s.lock);
        if (s.closed) {
            return false;
        }
        task->owned_prev = nullptr;
        task->owned_next = s.head;
        if (s.head != nullptr) {
            s.head->owned_prev = task;
        }
        s.head = task;
        task->owned_bound = true;
        s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return true;
    }

    /// Removes a task if it is still listed.
    void unbind(task_header* task) noexcept {
        shard& s = m_shards[task->owned_shard];
        lock_hold<spinlock> hold(s.lock);
        unlink(s, task);
    }

    /// Refuses later binds, in every shard.
    void close() noexcept {
        for (shard& s : m_shards) {
            lock_hold<spinlock> hold(s.lock);
            s.closed = true;
        }
    }

    /// Removes and returns any listed task, or null when none is left. For
    /// the shutdown sweep, once closed: no shard it has emptied fills again
    /// (bind refuses), so the next call starts at the shard it stopped at,
    /// and a sweep costs one pass over the shards, not one per task.
    task_header* pop_any() noexcept {
        for (; m_sweep_from < Shards; ++m_sweep_from) {
            shard& s = m_shards[m_sweep_from];
            lock_hold<spinlock> hold(s.lock);
            if (s.head != nullptr) {
                task_header* task = s.head;
                unlink(s, task);
                return task;
            }
        }
        return nullptr;
    }

    /// Removes every listed task for which `pred` holds and returns them as
    /// a chain through owned_next. One pass over every shard.
    template <class Pred>
    task_header* take_if(Pred pred) noexcept {
        task_header* chain = nullptr;
        for (shard& s : m_shards) {
            lock_hold<spinlock> hold(s.lock);
            for (task_header* task = s.head; task != nullptr;) {
                task_header* next = task->owned_next;
                if (pred(task)) {
                    unlink(s, task);
                    // owned_next, not queue_next: a waker may still write
                    // queue_next (pushing to a closed queue); an unlisted
                    // task's owned links are nobody else's.
                    task->owned_next = chain;
                    chain = task;
                }
                task = next;
            }
        }
        return chain;
    }

    /// Tasks bound and not yet finished (a snapshot).
    std::size_t size() const noexcept {
        std::size_t total = 0;
        for (const shard& s : m_shards) {
            total += s.count.load(std::memory_order_relaxed);
        }
        return total;
    }

private:
    struct alignas(64) shard {
        spinlock lock;
        task_header* head = nullptr;
        bool closed = false;
        std::atomic<std::size_t> count{0}; // written under the lock, read without it
    };

    static std::uint32_t shared_index(const task_header* task) noexcept {
        // Blocks are at least 16-byte aligned; mix the bits above that.
        auto bits = reinterpret_cast<std::uintptr_t>(task) >> 4;
        bits ^= bits >> 7;
        return static_cast<std::uint32_t>(bits & (SharedShards - 1));
    }

    static void unlink(shard& s, task_header* task) noexcept {
        if (!task->owned_bound) {
            return;
        }
        if (task->owned_prev != nullptr) {
            task->owned_prev->owned_next = task->owned_next;
        } else {
            s.head = task->owned_next;
        }
        if (task->owned_next != nullptr) {
            task->owned_next->owned_prev = task->owned_prev;
        }
        task->owned_prev = task->owned_next = nullptr;
        task->owned_bound = false;
        s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }

    std::array<shard, Shards> m_shards{};
    std::uint32_t m_sweep_from = 0; // pop_any's first shard not known empty (the sweeping thread's)
};

} // namespace weft::detail
