// weft/detail/notify_protocol.hpp
//
// What it is for: the shared state of weft::notify and everything its
// operations do to it, apart from the coroutine plumbing: the stored permit,
// the list of waiters, notify_one / notify_all, a wait that takes the permit
// or links its node, and an abandoned wait that passes on a notify_one it
// was handed. sync.hpp's notify is a thin shell around it (it finds the
// current task and spends budget), and tests/model/notify_model.cpp runs
// this very code under Relacy (generic over sync_traits, see wait_list.hpp).
//
// Invariants: `m_permit` and the waiter list are read and written only
// under `m_lock`. The permit is set only while the list is empty (a
// notify_one with a waiter fires the oldest one instead), so there is at
// most one stored notification. A node fired with `fired_one` carries one
// notification: if its awaiter is destroyed before it resumes, it calls
// notify_one() again, which wakes the next waiter or stores the permit.
// A node fired with `fired_all` carries nothing. A wait that took the
// permit and is destroyed before it resumes (a forced yield, then an abort
// or a timeout) also gives it back through notify_one(). The wake itself
// follows wait_list.hpp.
//
// Where it comes from: Tokio's sync::Notify (a permit that a notify_one
// stores when nobody waits, waiters in an intrusive list, and a dropped
// Notified future that received notify_one forwards it).
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "spinlock.hpp"
#include "wait_list.hpp"

namespace weft::detail {

template <class Traits = sync_traits>
class notify_protocol {
    using policy = typename Traits::policy;
    using header = typename Traits::header;

public:
    /// What one notified() await owns: its node and how far it got.
    class waiter {
    public:
        waiter() noexcept = default;
        waiter(waiter&&) noexcept = default; // only while idle (see wait_node)
        waiter& operator=(waiter&&) = delete;

    private:
        friend class notify_protocol;
        enum class stage : std::uint8_t { idle, waiting, consumed };
        basic_wait_node<Traits> m_node;
        stage m_stage = stage::idle;
    };

    notify_protocol() noexcept = default;
    notify_protocol(const notify_protocol&) = delete;
    notify_protocol& operator=(const notify_protocol&) = delete;

    /// await_suspend of `self`, suspending at `awaiting`: takes the stored
    /// permit (false: do not suspend) or links `w` (true: suspend until fired).
    bool wait(waiter& w, header* self, std::coroutine_handle<> awaiting) noexcept {
        m_lock.lock();
        if (m_permit.load()) {
            m_permit.store(false);
            m_lock.unlock();
            w.m_stage = waiter::stage::consumed;
            return false;
        }
        w.m_stage = waiter::stage::waiting;
        enqueue_waiter(m_waiters, w.m_node, self, awaiting);
        m_lock.unlock();
        return true;
    }

    /// await_resume: the wait is over and `w` holds nothing any more.
    void resumed(waiter& w) noexcept { w.m_stage = waiter::stage::idle; }

    /// The awaiter of `w` is destroyed (its task aborted, or a timeout
    /// around it fired). A node still linked is unlinked and its reference
    /// dropped; a notify_one it was handed, or the permit it took, is
    /// passed on.
    void abandon(waiter& w) noexcept {
        if (w.m_stage == waiter::stage::consumed) {
            notify_one(); // took the permit, then aborted: pass it on
        } else if (w.m_stage == waiter::stage::waiting) {
            m_lock.lock();
            const bool linked = w.m_node.linked;
            std::uint32_t reason = 0;
            if (linked) {
                m_waiters.remove(w.m_node);
            } else {
                reason = w.m_node.fired.load(std::memory_order_relaxed); // written under the lock
            }
            m_lock.unlock();
            if (linked) {
                ref_dec<header>(w.m_node.task);
            } else if (reason == fired_one) {
                notify_one(); // handed a notify_one we will not use: pass it on
            }
        }
        w.m_stage = waiter::stage::idle;
    }

    /// Fires the oldest waiter, or stores the permit if nobody waits.
    void notify_one() noexcept {
        m_lock.lock();
        if (basic_wait_node<Traits>* head = m_waiters.front()) {
            header* task = fire(m_waiters, *head, fired_one);
            m_lock.unlock();
            wake<header>(task);
            return;
        }
        m_permit.store(true);
        m_lock.unlock();
    }

    /// Fires every waiter linked now; stores no permit.
    void notify_all() noexcept {
        m_lock.lock();
        fire_all(m_lock, m_waiters, fired_all);
    }

    /// Waiters linked now (a snapshot).
    std::size_t waiting() const noexcept {
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        return m_waiters.size();
    }

    /// Whether a permit is stored (a snapshot).
    bool has_permit() const noexcept {
        lock_hold<basic_spinlock<policy>> hold(m_lock);
        return m_permit.load();
    }

private:
    static constexpr std::uint32_t fired_one = 1;
    static constexpr std::uint32_t fired_all = 2;

    mutable basic_spinlock<policy> m_lock;
    basic_wait_list<basic_wait_node<Traits>> m_waiters;
    typename policy::template cell<bool> m_permit{false};
};

} // namespace weft::detail
