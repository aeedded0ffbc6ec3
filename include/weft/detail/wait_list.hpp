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
// Generic over `sync_traits` (the atomic policy of `fired` and of the
// primitive's lock, and the task header type), defaulting to the production
// one, so that tests/model/ runs this code and the protocols built on it
// (detail/notify_protocol.hpp, detail/oneshot_protocol.hpp) under Relacy.
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
#include <type_traits>

#include "atomic_policy.hpp"
#include "scheduler.hpp"
#include "spinlock.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// What the wait protocol is generic over: the atomic policy (the `fired`
/// word, the primitive's spinlock, its other shared words) and the task
/// header. Production code uses this one; a model test names its own.
struct sync_traits {
    using policy = std_policy;
    using header = task_header;
};

/// One waiting task, owned by the awaiter that waits (in its coroutine
/// frame). Movable only while unlinked, so an awaiter can be handed to
/// weft::timeout before it is awaited; a move gives a fresh node.
template <class Traits = sync_traits>
struct basic_wait_node {
    using traits = Traits;
    using header = typename Traits::header;

    basic_wait_node() noexcept = default;
    basic_wait_node([[maybe_unused]] basic_wait_node&& other) noexcept { assert(!other.linked); }
    basic_wait_node(const basic_wait_node&) = delete;
    basic_wait_node& operator=(const basic_wait_node&) = delete;
    basic_wait_node& operator=(basic_wait_node&&) = delete;

    basic_wait_node* prev = nullptr;
    basic_wait_node* next = nullptr;
    header* task = nullptr;   // holds a reference while linked or fired
    std::uint64_t ticket = 0; // arrival order: wake_all wakes only earlier arrivals
    // 0 while waiting; the primitive's reason once woken.
    typename Traits::policy::template atomic<std::uint32_t> fired{0};
    bool linked = false;
};
using wait_node = basic_wait_node<>;

/// FIFO of wait nodes; every member is used under the owner's lock.
template <class Node = wait_node>
class basic_wait_list {
public:
    bool empty() const noexcept { return m_head == nullptr; }
    /// Nodes linked now.
    std::size_t size() const noexcept { return m_size; }
    Node* front() const noexcept { return m_head; }
    /// The ticket the next pushed node gets.
    std::uint64_t next_ticket() const noexcept { return m_next_ticket; }

    void push_back(Node& node) noexcept {
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

    void remove(Node& node) noexcept {
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
    Node* m_head = nullptr;
    Node* m_tail = nullptr;
    std::size_t m_size = 0;
    std::uint64_t m_next_ticket = 0;
};
using wait_list = basic_wait_list<>;

/// Links `node` for the task `self` (making the waiter's reference) and
/// suspends `self` at `awaiting` until the node is fired. Under the lock.
template <class Node>
void enqueue_waiter(basic_wait_list<Node>& list, std::type_identity_t<Node>& node,
                    typename Node::header* self, std::coroutine_handle<> awaiting) noexcept {
    using header = typename Node::header;
    ref_inc<header>(self); // the waiter's reference, consumed by wake() or by the waiter's own cancel
    node.task = self;
    node.fired.store(0, std::memory_order_relaxed); // nobody else sees the node yet
    suspend_until<header>(self, awaiting, &node.fired, ~std::uint32_t{0});
    list.push_back(node);
}

/// Unlinks `node` and marks it fired with `reason` (nonzero). Under the
/// lock. Returns the task to wake(), with its reference, once unlocked.
template <class Node>
typename Node::header* fire(basic_wait_list<Node>& list, std::type_identity_t<Node>& node,
                            std::uint32_t reason) noexcept {
    list.remove(node);
    typename Node::header* task = node.task;
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
    using header = std::remove_pointer_t<std::invoke_result_t<Next&>>;
    for (;;) {
        std::array<header*, 32> batch;
        std::size_t count = 0;
        bool more = true;
        while (count < batch.size()) {
            header* task = next();
            if (task == nullptr) {
                more = false;
                break;
            }
            batch[count++] = task;
        }
        lock.unlock();
        for (std::size_t i = 0; i < count; ++i) {
            wake<header>(batch[i]);
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
template <class Lock, class Node>
void fire_before(Lock& lock, basic_wait_list<Node>& list, std::uint64_t limit,
                 std::uint32_t reason) noexcept {
    fire_while(lock, [&]() noexcept -> typename Node::header* {
        Node* node = list.front();
        if (node == nullptr || node->ticket >= limit) {
            return nullptr;
        }
        return fire(list, *node, reason);
    });
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
template <class Lock, class Node>
void fire_all(Lock& lock, basic_wait_list<Node>& list, std::uint32_t reason) noexcept {
    fire_before(lock, list, list.next_ticket(), reason);
}

} // namespace weft::detail
