// weft/detail/wait_list.hpp
//
// What it is for: the queue of tasks waiting in a sync primitive (semaphore,
// notify, channel, ...), with no allocation per wait. Each waiting awaiter
// owns a `wait_node` (it lives in the awaiting coroutine's frame); the
// primitive links it into a FIFO `wait_list` under its own spinlock.
//
// The wake protocol (the same as timers' and io_waiter's):
//   - A waiter makes a reference to its task (ref_inc), fills the node and
//     links it under the primitive's lock, then suspends with
//     suspend_until(task, coroutine, &node.fired, mask).
//   - A waker, under the same lock, unlinks the node, hands over whatever it
//     hands over (in the primitive's own fields, or in the awaiter that owns
//     the node), copies `node.task`, and stores `node.fired` with release
//     (pairs with resume_target's acquire). From then on it never touches
//     the node: the awaiting frame may be destroyed at any time. After
//     unlocking it calls wake(task), which consumes the reference.
//   - A waiter that is destroyed before it is woken (its task was aborted,
//     or a weft::timeout around it fired) takes the lock and, if its node is
//     still linked, unlinks it and drops the reference itself. If it is no
//     longer linked it was fired: whatever was handed over is its to give
//     back (the waker still owns the reference and will wake the task; the
//     task then finds its real wait word unset and stays put).
//
// Invariants: `prev`, `next`, `linked` and `ticket` are only read or
// written under the owning primitive's lock. `fired` is written once per
// wait, under the lock, after the node was unlinked. `task` is written by
// the waiter before it links the node and read by the waker under the lock.
//
// Where it comes from: Tokio's batch_semaphore and Notify (an intrusive
// list of waiters inside the awaiting futures, guarded by the primitive's
// mutex; wakes delivered in batches of 32 with the lock dropped in between).
#pragma once

#include <array>
#include <atomic>
#include <coroutine>
#include <cassert>
#include <cstddef>
#include <cstdint>

#include "scheduler.hpp"
#include "spinlock.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// One waiting task, owned by the awaiter that waits (in its coroutine
/// frame). Movable only while unlinked, so an awaiter can be handed to
/// weft::timeout before it is awaited; a move gives a fresh node.
struct wait_node {
    wait_node() noexcept = default;
    wait_node([[maybe_unused]] wait_node&& other) noexcept { assert(!other.linked); }
    wait_node(const wait_node&) = delete;
    wait_node& operator=(const wait_node&) = delete;
    wait_node& operator=(wait_node&&) = delete;

    wait_node* prev = nullptr;
    wait_node* next = nullptr;
    task_header* task = nullptr;         // holds a reference while linked or fired
    std::uint64_t ticket = 0;            // arrival order: wake_all wakes only earlier arrivals
    std::atomic<std::uint32_t> fired{0}; // 0 while waiting; the primitive's reason once woken
    bool linked = false;
};

/// FIFO of wait nodes; every member is used under the owner's lock.
class wait_list {
public:
    bool empty() const noexcept { return m_head == nullptr; }
    /// Nodes linked now.
    std::size_t size() const noexcept { return m_size; }
    wait_node* front() const noexcept { return m_head; }
    /// The ticket the next pushed node gets.
    std::uint64_t next_ticket() const noexcept { return m_next_ticket; }

    void push_back(wait_node& node) noexcept {
        assert(!node.linked);
        node.ticket = m_next_ticket++;
        node.prev = m_tail;
        node.next = nullptr;
        if (m_tail != nullptr) {
            m_tail->next = &node;
        } else {
            m_head = &node;
        }
        m_tail = &node;
        node.linked = true;
        ++m_size;
    }

    void remove(wait_node& node) noexcept {
        assert(node.linked);
        if (node.prev != nullptr) {
            node.prev->next = node.next;
        } else {
            m_head = node.next;
        }
        if (node.next != nullptr) {
            node.next->prev = node.prev;
        } else {
            m_tail = node.prev;
        }
        node.prev = node.next = nullptr;
        node.linked = false;
        --m_size;
    }

private:
    wait_node* m_head = nullptr;
    wait_node* m_tail = nullptr;
    std::size_t m_size = 0;
    std::uint64_t m_next_ticket = 0;
};

/// Links `node` for the task `self` (making the waiter's reference) and
/// suspends `self` at `awaiting` until the node is fired. Under the lock.
inline void enqueue_waiter(wait_list& list, wait_node& node, task_header* self,
                           std::coroutine_handle<> awaiting) noexcept {
    ref_inc(self); // the waiter's reference, consumed by wake() or by the waiter's own cancel
    node.task = self;
    node.fired.store(0, std::memory_order_relaxed); // nobody else sees the node yet
    suspend_until(self, awaiting, &node.fired, ~std::uint32_t{0});
    list.push_back(node);
}

/// Unlinks `node` and marks it fired with `reason` (nonzero). Under the
/// lock. Returns the task to wake(), with its reference, once unlocked.
inline task_header* fire(wait_list& list, wait_node& node, std::uint32_t reason) noexcept {
    list.remove(node);
    task_header* task = node.task;
    // Release: pairs with resume_target's acquire; what the waker handed
    // over before this store travels with it. The node is not touched again.
    node.fired.store(reason, std::memory_order_release);
    return task;
}

/// Called with `lock` held; returns with it released. `next()` runs under
/// the lock and returns a task to wake (already fired) or null when there
/// is nothing more to do. Wakes are delivered in batches of 32 with the
/// lock dropped in between, so a long list never holds the lock for long.
template <class Lock, class Next>
void fire_while(Lock& lock, Next next) noexcept {
    for (;;) {
        std::array<task_header*, 32> batch;
        std::size_t count = 0;
        bool more = true;
        while (count < batch.size()) {
            task_header* task = next();
            if (task == nullptr) {
                more = false;
                break;
            }
            batch[count++] = task;
        }
        lock.unlock();
        for (std::size_t i = 0; i < count; ++i) {
            wake(batch[i]);
        }
        if (!more) {
            return;
        }
        lock.lock();
    }
}

/// Fires every node that was linked before `limit` (a next_ticket() taken
/// earlier, under the lock) with `reason`; later arrivals stay. Called with
/// `lock` held; returns with it released.
template <class Lock>
void fire_before(Lock& lock, wait_list& list, std::uint64_t limit, std::uint32_t reason) noexcept {
    fire_while(lock, [&]() noexcept -> task_header* {
        wait_node* node = list.front();
        if (node == nullptr || node->ticket >= limit) {
            return nullptr;
        }
        return fire(list, *node, reason);
    });
}

/// Fires every node linked before this call with `reason`; later arrivals
/// (which may link while the lock is dropped between batches) stay. Called
/// with `lock` held; returns with it released.
template <class Lock>
void fire_all(Lock& lock, wait_list& list, std::uint32_t reason) noexcept {
    fire_before(lock, list, list.next_ticket(), reason);
}

} // namespace weft::detail
