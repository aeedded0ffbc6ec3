// weft/detail/inject_queue.hpp
//
// What it is for: the global (inject) queue. Tasks spawned or woken from
// outside a worker land here, and so does the overflow of a full local
// queue; idle workers take batches from it.
//
// Where it comes from: Tokio's `scheduler/inject` (intrusive list, atomic
// length) and Go's global runq (batch on both sides).
//
// Invariants:
//   - An intrusive singly-linked FIFO threaded through `Node::queue_next`:
//     no allocation and no capacity limit. `m_head`, `m_tail` and `m_closed`
//     are touched only under `m_lock` (policy cells, so the model test
//     tests/model/inject_queue_model.cpp checks exactly that).
//   - `m_len` is written only under the lock (release) and read without it
//     (acquire), so "is it empty?" costs no lock; a reader may see a value
//     that is already stale, which callers tolerate (they re-check under the
//     lock or via the idle protocol's seq_cst handshake).
//   - Once closed (shutdown), pushes fail and the caller keeps the nodes.
#pragma once

#include <cstddef>
#include <span>

#include "atomic_policy.hpp"
#include "spinlock.hpp"

namespace weft::detail {

template <class Node, class Policy = std_policy>
class inject_queue {
public:
    std::size_t len() const noexcept { return m_len.load(std::memory_order_acquire); }
    bool is_empty() const noexcept { return len() == 0; }

    /// Appends one node. False if the queue is closed (the node is not taken).
    bool push(Node* node) noexcept {
        node->queue_next = nullptr;
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        if (m_closed.load()) {
            return false;
        }
        link(node, node, 1);
        return true;
    }

    /// Appends a batch in one lock hold; the links are made before locking.
    /// False if the queue is closed (no node is taken).
    bool push_batch(std::span<Node*> nodes) noexcept {
        if (nodes.empty()) {
            return true;
        }
        for (std::size_t i = 0; i + 1 < nodes.size(); ++i) {
            nodes[i]->queue_next = nodes[i + 1];
        }
        nodes.back()->queue_next = nullptr;
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        if (m_closed.load()) {
            return false;
        }
        link(nodes.front(), nodes.back(), nodes.size());
        return true;
    }

    /// Takes the oldest node, or null.
    Node* pop() noexcept {
        if (is_empty()) {
            return nullptr;
        }
        std::size_t taken = 0;
        return pop_n(1, taken);
    }

    /// Takes up to `max` of the oldest nodes in one lock hold. Returns the
    /// first; the rest follow through `queue_next`, `taken` in all. The
    /// caller owns the detached chain and may walk it without the lock.
    Node* pop_n(std::size_t max, std::size_t& taken) noexcept {
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        const std::size_t len = m_len.load(std::memory_order_relaxed);
        taken = max < len ? max : len;
        if (taken == 0) {
            return nullptr;
        }
        Node* first = m_head.load();
        Node* last = first;
        for (std::size_t i = 1; i < taken; ++i) {
            last = last->queue_next;
        }
        Node* rest = last->queue_next;
        m_head.store(rest);
        if (rest == nullptr) {
            m_tail.store(nullptr);
        }
        last->queue_next = nullptr;
        m_len.store(len - taken, std::memory_order_release);
        return first;
    }

    /// Refuses all later pushes. Nodes already queued stay for pop().
    void close() noexcept {
        lock_hold<basic_spinlock<Policy>> hold(m_lock);
        m_closed.store(true);
    }

private:
    // Under the lock.
    void link(Node* first, Node* last, std::size_t count) noexcept {
        if (Node* tail = m_tail.load(); tail == nullptr) {
            m_head.store(first);
        } else {
            tail->queue_next = first;
        }
        m_tail.store(last);
        // Release: a worker that sees the new length and then locks finds
        // the nodes; the lock itself orders the links.
        m_len.store(m_len.load(std::memory_order_relaxed) + count, std::memory_order_release);
    }

    basic_spinlock<Policy> m_lock;
    typename Policy::template cell<Node*> m_head{nullptr};
    typename Policy::template cell<Node*> m_tail{nullptr};
    typename Policy::template cell<bool> m_closed{false};
    typename Policy::template atomic<std::size_t> m_len{0};
};

} // namespace weft::detail
