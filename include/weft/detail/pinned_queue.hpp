// weft/detail/pinned_queue.hpp
//
// What it is for: the tasks pinned to one worker (spawn_pinned,
// spawn_local), which only that worker runs and nobody steals. Two halves:
//   - an owner-only FIFO for the tasks the worker schedules itself (a yield,
//     a wake from a task running there): no lock, no RMW;
//   - an inbox (an inject_queue) for the tasks spawned or woken by any other
//     thread. Whenever the owner takes a task, it first moves the whole
//     inbox to the back of its FIFO, so neither half starves the other.
//
// Where it comes from: Tokio's LocalSet (a local queue plus a shared one
// for remote wakes), flattened into the worker loop instead of being a
// future the worker polls.
//
// Invariants:
//   - push_local(), pop() and is_empty() are called by the owner only (and
//     by the thread running shutdown after the owner was joined).
//   - push_remote() is called by anyone, who then unparks the owner: the
//     inbox's lock orders the push before the owner's next look, and the
//     parker's token makes a push that the owner missed before sleeping end
//     that sleep (see parker.hpp).
//   - Once closed (shutdown), push_remote() fails and the caller keeps the
//     task; push_local() never fails (the shutdown sweep drains it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "atomic_policy.hpp"
#include "inject_queue.hpp"

namespace weft::detail {

template <class Node, class Policy = std_policy>
class pinned_queue {
public:
    /// Appends a task the owner scheduled itself.
    void push_local(Node* node) noexcept {
        node->queue_next = nullptr;
        append(node, node, 1);
    }

    /// Appends a task from another thread. False if the queue is closed
    /// (the node is not taken). The caller must unpark the owner.
    bool push_remote(Node* node) noexcept { return m_inbox.push(node); }

    /// Takes the oldest task, or null. Owner only.
    Node* pop() noexcept {
        if (!m_inbox.is_empty()) {
            std::size_t taken = 0;
            if (Node* first = m_inbox.pop_n(~std::size_t{0}, taken)) {
                Node* last = first;
                while (last->queue_next != nullptr) {
                    last = last->queue_next;
                }
                append(first, last, static_cast<std::uint32_t>(taken));
            }
        }
        Node* node = m_head;
        if (node == nullptr) {
            return nullptr;
        }
        m_head = node->queue_next;
        if (m_head == nullptr) {
            m_tail = nullptr;
        }
        node->queue_next = nullptr;
        m_local_len.store(m_local_len.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        return node;
    }

    /// Whether nothing is queued. Owner only.
    bool is_empty() const noexcept { return m_head == nullptr && m_inbox.is_empty(); }

    /// Tasks queued now; from another thread, a value that was true at some
    /// instant (for metrics).
    std::size_t len() const noexcept { return m_local_len.load(std::memory_order_relaxed) + m_inbox.len(); }

    /// Refuses later remote pushes. Queued tasks stay for pop().
    void close() noexcept { m_inbox.close(); }

private:
    void append(Node* first, Node* last, std::uint32_t count) noexcept {
        if (m_tail == nullptr) {
            m_head = first;
        } else {
            m_tail->queue_next = first;
        }
        m_tail = last;
        // Relaxed, single writer: a statistic for other threads.
        m_local_len.store(m_local_len.load(std::memory_order_relaxed) + count, std::memory_order_relaxed);
    }

    // Owner only.
    Node* m_head = nullptr;
    Node* m_tail = nullptr;
    typename Policy::template atomic<std::uint32_t> m_local_len{0};
    inject_queue<Node, Policy> m_inbox;
};

} // namespace weft::detail
