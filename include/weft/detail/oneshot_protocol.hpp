// weft/detail/oneshot_protocol.hpp
//
// What it is for: the state a oneshot's sender and receiver share, and
// everything each end does to it: send, drop the sender unsent, wait for
// the value (link the receiver's node, or find the value or the close),
// abandon that wait, take the value, drop the receiver, and count the two
// ends down. sync.hpp's oneshot_state adds where the block comes from and
// how it is freed; oneshot_sender / oneshot_receiver are thin shells that
// turn the outcomes into result<T>. tests/model/oneshot_model.cpp runs this
// very code under Relacy (generic over sync_traits, see wait_list.hpp).
//
// Invariants: the value, `m_sender_done`, `m_receiver_gone` and the waiter
// list are read and written only under `m_lock`. `m_sender_done` is set
// once, by a send or by the sender going away unsent, and both fire the
// waiting receiver (if any) after setting it. Wake and retry: the value
// stays here until the woken receiver takes it, so a receiver woken and
// then destroyed held nothing, and a value nobody takes is destroyed by
// drop_receiver() (outside the lock) or with the state. `m_ends` counts
// the ends still alive: the last one to go frees the state.
//
// Where it comes from: Tokio's sync::oneshot (one allocation shared by the
// two ends; closing either end wakes the other), with weft's wait list in
// place of its atomic state word and stored waker.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <utility>

#include "spinlock.hpp"
#include "wait_list.hpp"

namespace weft::detail {

template <class T, class Traits = sync_traits>
class oneshot_protocol {
    using policy = typename Traits::policy;
    using header = typename Traits::header;

public:
    /// What one receive await owns: its node, and whether it is linked or fired.
    class waiter {
    public:
        waiter() noexcept = default;
        waiter(waiter&&) noexcept = default; // only while idle (see wait_node)
        waiter& operator=(waiter&&) = delete;

    private:
        friend class oneshot_protocol;
        basic_wait_node<Traits> m_node;
        bool m_waiting = false;
    };

    oneshot_protocol() noexcept = default;
    oneshot_protocol(const oneshot_protocol&) = delete;
    oneshot_protocol& operator=(const oneshot_protocol&) = delete;

    /// Stores the value and fires the waiting receiver. False, without
    /// touching `value`, if the receiver is gone. The sender then drops its end.
    template <class U>
    bool send(U&& value) {
        header* to_wake = nullptr;
        {
            lock_hold<basic_spinlock<policy>> hold(m_lock);
            if (m_receiver_gone.load()) {
                return false;
            }
            m_value.emplace(std::forward<U>(value));
            m_sender_done.store(true);
            to_wake = fire_receiver();
        }
        if (to_wake != nullptr) {
            wake<header>(to_wake);
        }
        return true;
    }

    /// The sender goes away unsent: fires the waiting receiver, which then
    /// finds the oneshot closed. The sender then drops its end.
    void drop_sender() noexcept {
        m_lock.lock();
        m_sender_done.store(true);
        header* to_wake = fire_receiver();
        m_lock.unlock();
        if (to_wake != nullptr) {
            wake<header>(to_wake);
        }
    }

    /// Whether the receiver is gone (a send would fail).
    bool receiver_gone() const noexcept {
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        return m_receiver_gone.load();
    }

    /// await_suspend of `self`, suspending at `awaiting`: links `w` (true:
    /// suspend until fired) unless the value is here or will never come
    /// (false: take() now).
    bool wait(waiter& w, header* self, std::coroutine_handle<> awaiting) noexcept {
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        if (m_value || m_sender_done.load()) {
            return false;
        }
        w.m_waiting = true;
        enqueue_waiter(m_waiters, w.m_node, self, awaiting);
        return true;
    }

    /// await_resume: the wait is over; take() next.
    void resumed(waiter& w) noexcept { w.m_waiting = false; }

    /// The awaiter of `w` is destroyed while it waits (its task aborted, or
    /// a timeout around it fired): a node still linked is unlinked and its
    /// reference dropped. A fired one was handed nothing: the value, if
    /// any, is still here.
    void abandon(waiter& w) noexcept {
        if (!w.m_waiting) {
            return;
        }
        w.m_waiting = false;
        m_lock.lock();
        const bool linked = w.m_node.linked;
        if (linked) {
            m_waiters.remove(w.m_node);
        }
        m_lock.unlock();
        if (linked) {
            ref_dec<header>(w.m_node.task);
        }
    }

    /// Moves the value, if one is here, into `out`. Returns whether the
    /// sender is done (sent, or gone): with `out` empty, the oneshot is
    /// closed (or its value was taken already); false: not yet.
    bool take(std::optional<T>& out) {
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        if (m_value) {
            out.emplace(std::move(*m_value));
            m_value.reset();
        }
        return m_sender_done.load();
    }

    /// The receiver goes away: later sends fail. Returns the value nobody
    /// took, for the caller to destroy outside the lock. The receiver then
    /// drops its end.
    std::optional<T> drop_receiver() noexcept {
        std::optional<T> unread;
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        m_receiver_gone.store(true);
        if (m_value) {
            unread.emplace(std::move(*m_value));
            m_value.reset();
        }
        return unread;
    }

    /// One end is done with the state; true for the last one, which frees it.
    bool release_end() noexcept {
        // acq_rel: the last end sees every write of the other before it frees.
        return m_ends.fetch_sub(1, std::memory_order_acq_rel) == 1;
    }

private:
    /// Fires the waiting receiver, if any, and returns its task to wake
    /// once unlocked. Under the lock.
    header* fire_receiver() noexcept {
        if (basic_wait_node<Traits>* receiver = m_waiters.front()) {
            return fire(m_waiters, *receiver, 1);
        }
        return nullptr;
    }

    mutable basic_spinlock<policy> m_lock;
    typename policy::template atomic<std::uint32_t> m_ends{2};
    basic_wait_list<basic_wait_node<Traits>> m_waiters; // the receiver, when it waits
    std::optional<T> m_value;
    typename policy::template cell<bool> m_sender_done{false}; // sent, or the sender went away
    typename policy::template cell<bool> m_receiver_gone{false};
};

} // namespace weft::detail
