// weft/detail/owned_tasks.hpp
//
// What it is for: the list of the tasks an executor owns that have not
// finished and may sit in no queue (suspended on a join, a timer or a
// socket), so shutdown can destroy them and run their destructors.
//
// Where it comes from: Tokio's `OwnedTasks` (sharded intrusive lists).
// Unlike Tokio, a task spawned on a worker is listed late (runtime::bind):
// only when it first waits in no queue, or when a queue that shutdown
// closed would drop it. Until then a queue or a worker holds it, and
// shutdown finds it there. A fork-join leaf never waits, so it never
// touches the list: bind and unbind took 18% of skynet's time (perf).
//
// Invariants:
//   - A task is in at most one shard, and `header.owned_bound` says whether
//     it is; both change under that shard's lock, so unbind() may be
//     called for a task already removed. `header.owned_shard` names the
//     shard, written when the task is listed. A task is listed by a thread
//     that holds it (the spawner, the worker running it, a worker or the
//     sweep that took it from a queue), never while another thread could
//     list or unlist it, so that thread may read owned_bound unlocked.
//   - A worker binds the tasks it spawns into a shard of its own, so the
//     bind, and the unbind when the task ends on the same worker (most do),
//     touch a cache line no other core writes. Tokio hashes every task into
//     shared shards; with 2 workers spawning fib's tasks that made the two
//     cores fight over every shard's line, and bind() took 15% of each
//     worker's time (perf). Threads that are not workers bind into
//     `SharedShards` shards picked by the task's address, so spawning
//     threads do not contend on one lock.
//   - Once closed, bind() refuses: a spawn that loses the race with shutdown
//     fails instead of leaving a task nobody will destroy. adopt() does not:
//     it lists what workers hold, and the sweep runs after they stopped.
#pragma once

#include <array>
#include <cassert>
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
        shard& s = shard_for(task, owner);
        lock_hold<spinlock> hold(s.lock);
        if (s.closed) {
            return false;
        }
        link(s, task);
        return true;
    }

    /// Adds a task that a worker holds (it runs it, or took it from a queue
    /// that would drop it), closed or not: the shutdown sweep must find it,
    /// and it runs after every worker has stopped.
    void adopt(task_header* task, std::uint32_t owner) noexcept {
        assert((task->state.load(std::memory_order_relaxed) & task_state::complete) == 0);
        shard& s = shard_for(task, owner);
        lock_hold<spinlock> hold(s.lock);
        link(s, task);
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

private:
    struct alignas(64) shard {
        spinlock lock;
        task_header* head = nullptr;
        bool closed = false;
    };

    static std::uint32_t shared_index(const task_header* task) noexcept {
        // Blocks are at least 16-byte aligned; mix the bits above that.
        auto bits = reinterpret_cast<std::uintptr_t>(task) >> 4;
        bits ^= bits >> 7;
        return static_cast<std::uint32_t>(bits & (SharedShards - 1));
    }

    shard& shard_for(task_header* task, std::uint32_t owner) noexcept {
        const std::uint32_t index = owner < OwnerShards ? owner : OwnerShards + shared_index(task);
        task->owned_shard = static_cast<std::uint16_t>(index);
        return m_shards[index];
    }

    static void link(shard& s, task_header* task) noexcept {
        task->owned_prev = nullptr;
        task->owned_next = s.head;
        if (s.head != nullptr) {
            s.head->owned_prev = task;
        }
        s.head = task;
        task->owned_bound = true;
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
    }

    std::array<shard, Shards> m_shards{};
    std::uint32_t m_sweep_from = 0; // pop_any's first shard not known empty (the sweeping thread's)
};

} // namespace weft::detail
