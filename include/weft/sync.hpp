// weft/sync.hpp: tasks waiting on each other without blocking a worker.
//
// ```cpp
// weft::semaphore slots(4);                  // at most 4 uploads at once
// weft::channel<frame, 8> frames;            // 8 frames in flight, no allocation
//
// weft::task<> uploader() {
//     while (auto f = co_await frames.recv()) { // errc::closed once closed and drained
//         auto permit = co_await slots.acquire();
//         co_await upload(*f);
//     }                                         // permit released here
// }
// ```
//
// What every primitive here guarantees:
//   - No allocation per wait. A waiting task's node lives in its awaiter
//     (in the awaiting coroutine's frame) and is linked into a list inside
//     the primitive, under the primitive's spinlock (detail/wait_list.hpp).
//     make_oneshot allocates its one shared block; once_cell::get_or_init
//     allocates only in the caller that initialises (the task its
//     initializer returns): a waiter suspends at a wake point whose frame
//     lives in its awaiter (detail::wake_point).
//   - Cancellation safety. When a waiting task is aborted, or a
//     weft::timeout around the wait fires, the awaiter's destructor takes
//     its node out; if it had already been handed something (a permit, a
//     lock, a notification, the right to the next item) it gives it back or
//     passes it on, so nothing is lost. Per primitive:
//       semaphore, mutex: permits are handed to the waiter (FIFO); an
//         abandoned waiter releases them again, waking the next.
//       notify: a notify_one handed to an abandoned waiter is passed on (to
//         the next waiter, or stored as the permit).
//       oneshot, watch, barrier, once_cell: wake and retry; values stay in
//         the primitive until the woken task takes them, so an abandoned
//         waiter holds nothing.
//       channel: wake with a reservation; the value stays in the ring and a
//         woken receiver holds only the right to take one (a woken sender,
//         the right to one slot). An abandoned waiter passes its right on.
//   - Await only inside tasks run by a weft executor (else
//     errc::no_current_executor); the try_ operations and the senders'
//     non-async operations work from any thread.
//   - An operation that completes without suspending spends one unit of the
//     task's budget; when the budget is spent the task yields first.
//   - A primitive must outlive every task waiting on it (oneshot's ends
//     share their state and have no such rule).
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "detail/attributes.hpp"
#include "detail/frame_pool.hpp"
#include "detail/notify_protocol.hpp"
#include "detail/oneshot_protocol.hpp"
#include "detail/scheduler.hpp"
#include "detail/spinlock.hpp"
#include "detail/task_cell.hpp"
#include "detail/wait_list.hpp"
#include "error.hpp"
#include "result.hpp"
#include "task.hpp"

namespace weft {

namespace detail {

/// The task about to wait; raises errc::no_current_executor outside one.
inline task_header* sync_current_task() {
    task_header* self = t_context.current;
    if (self == nullptr) {
        raise(errc::no_current_executor,
              "a weft sync primitive (semaphore, mutex, notify, channel, ...) was awaited outside a task run "
              "by a weft executor; from other threads use its try_ operations");
    }
    return self;
}

/// What a try_ operation returns when it would have to wait.
inline std::error_code would_block() noexcept {
    return std::make_error_code(std::errc::resource_unavailable_try_again);
}

/// A coroutine that does one thing each time it is resumed: it asks its
/// owner (an awaiter) what to run next, and transfers there. A waiting task
/// suspends at it instead of at its awaiting coroutine when a wake may have
/// to do more than resume that coroutine (once_cell: wait again, or start
/// the initializer, after the one running gave up). Its frame lives in a
/// room inside the owner, so a wait allocates nothing; only a compiler whose
/// frame for it outgrows the room would use the heap. The owner destroys it.
class wake_point {
public:
    /// What the owner answers on each resume: the coroutine to continue
    /// with (a noop one to stay suspended). Runs in the waiting task.
    using step_fn = std::coroutine_handle<> (*)(void* owner) noexcept;

    /// Room for the frame, inside the owner (g++ 12 and clang 14 need well
    /// under this; allocation_test checks that no wait allocates).
    struct room {
        alignas(__STDCPP_DEFAULT_NEW_ALIGNMENT__) unsigned char bytes[160];
    };

    struct promise_type {
        static void* operator new(std::size_t size, room& where, void*, step_fn) noexcept {
            return size <= sizeof(where.bytes) ? static_cast<void*>(where.bytes)
                                               : ::operator new(size, std::nothrow);
        }
        static void operator delete(void* frame, std::size_t size) noexcept {
            if (size > sizeof(room::bytes)) {
                ::operator delete(frame);
            }
        }
        static wake_point get_return_object_on_allocation_failure() noexcept { return wake_point(); }
        wake_point get_return_object() noexcept {
            return wake_point(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; } // never reached
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); } // step_fn is noexcept
    };

    /// An empty wake point (none made yet).
    wake_point() noexcept = default;

    /// A suspended wake point in `where` for `owner`; empty if its frame
    /// could not be allocated.
    static wake_point make(room& where, void* owner, step_fn step) { return run(where, owner, step); }

    /// The handle to suspend at (null if empty).
    std::coroutine_handle<> handle() const noexcept { return m_handle; }

private:
    struct step_awaiter {
        void* owner;
        step_fn step;
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<>) const noexcept { return step(owner); }
        void await_resume() const noexcept {}
    };

    explicit wake_point(std::coroutine_handle<> handle) noexcept : m_handle(handle) {}

    WEFT_NO_SANITIZE_FUNCTION static wake_point run(room&, void* owner, step_fn step) {
        for (;;) {
            co_await step_awaiter{owner, step};
        }
    }

    std::coroutine_handle<> m_handle;
};

} // namespace detail

// ---- semaphore ----------------------------------------------------------------

/// A counting semaphore with FIFO fairness: waiters are served in order of
/// arrival, and a waiter for n permits at the head blocks later, smaller
/// requests (no starvation of big requests). Permits are handed to the
/// waiter; an abandoned waiter gives them back.
///
/// ```cpp
/// weft::semaphore sem(2);
/// weft::task<> worker() {
///     weft::semaphore::permit p = co_await sem.acquire(); // released when p dies
///     co_await do_work();
/// }
/// ```
class semaphore {
    struct waiter : detail::wait_node {
        std::size_t wanted = 0;
    };

public:
    /// Permits held by their owner; released (given back) on destruction.
    ///
    /// ```cpp
    /// if (auto p = sem.try_acquire()) { /* holding one permit */ }
    /// ```
    class permit {
    public:
        /// An empty permit (holds nothing).
        permit() noexcept = default;
        permit(permit&& other) noexcept
            : m_sem(std::exchange(other.m_sem, nullptr)), m_count(std::exchange(other.m_count, 0)) {}
        permit& operator=(permit&& other) noexcept {
            if (this != &other) {
                release();
                m_sem = std::exchange(other.m_sem, nullptr);
                m_count = std::exchange(other.m_count, 0);
            }
            return *this;
        }
        permit(const permit&) = delete;
        permit& operator=(const permit&) = delete;
        ~permit() { release(); }

        /// True if it holds permits (try_acquire succeeded).
        explicit operator bool() const noexcept { return m_sem != nullptr; }
        /// How many permits it holds.
        std::size_t count() const noexcept { return m_count; }
        /// Gives the permits back now (`p.release();`).
        void release() noexcept {
            if (m_sem != nullptr) {
                std::exchange(m_sem, nullptr)->release(std::exchange(m_count, 0));
            }
        }
        /// Keeps the permits out of the semaphore for good (`p.forget();`).
        void forget() noexcept {
            m_sem = nullptr;
            m_count = 0;
        }

    private:
        friend class semaphore;
        permit(semaphore* sem, std::size_t count) noexcept : m_sem(sem), m_count(count) {}

        semaphore* m_sem = nullptr;
        std::size_t m_count = 0;
    };

    /// What acquire() returns; `co_await` it for a permit. Movable until
    /// awaited (so it can go into weft::timeout).
    class [[nodiscard]] acquire_awaiter {
    public:
        /// Made by semaphore::acquire().
        acquire_awaiter(semaphore& sem, std::size_t count) noexcept : m_sem(&sem) { m_node.wanted = count; }
        acquire_awaiter(acquire_awaiter&&) noexcept = default;
        acquire_awaiter& operator=(acquire_awaiter&&) = delete;
        ~acquire_awaiter() {
            if (m_state == state::acquired) {
                m_sem->release(m_node.wanted); // acquired, then aborted during a forced yield
            } else if (m_state == state::waiting) {
                m_sem->m_lock.lock();
                const bool linked = m_node.linked;
                if (linked) {
                    m_sem->m_waiters.remove(m_node);
                } else {
                    m_sem->m_available += m_node.wanted; // handed over, never taken: give back
                }
                // We may have been the head blocking smaller requests.
                m_sem->dispatch_locked();
                if (linked) {
                    detail::ref_dec(m_node.task); // never fired: the reference is ours
                }
            }
        }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            m_sem->m_lock.lock();
            if (m_sem->m_waiters.empty() && m_sem->m_available >= m_node.wanted) {
                m_sem->m_available -= m_node.wanted;
                m_sem->m_lock.unlock();
                m_state = state::acquired;
                return detail::complete_or_yield(self, awaiting);
            }
            m_state = state::waiting;
            detail::enqueue_waiter(m_sem->m_waiters, m_node, self, awaiting);
            m_sem->m_lock.unlock();
            return true;
        }

        /// Resumed only once the permits are ours (acquired, or handed over).
        permit await_resume() noexcept {
            m_state = state::idle;
            return permit(m_sem, m_node.wanted);
        }

    private:
        enum class state : std::uint8_t { idle, waiting, acquired };
        semaphore* m_sem;
        waiter m_node;
        state m_state = state::idle;
    };

    /// A semaphore holding `permits` permits.
    ///
    /// ```cpp
    /// weft::semaphore uart_slots(1);
    /// ```
    explicit semaphore(std::size_t permits) noexcept : m_available(permits) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;

    /// Waits (FIFO) until `count` permits are available and takes them.
    ///
    /// ```cpp
    /// auto p = co_await sem.acquire(2);
    /// auto q = co_await weft::timeout(std::chrono::seconds(1), sem.acquire()); // result<permit>
    /// ```
    [[nodiscard]] acquire_awaiter acquire(std::size_t count = 1) noexcept { return {*this, count}; }

    /// Takes `count` permits if they are available and nobody waits before
    /// us; else an empty permit. Any thread.
    ///
    /// ```cpp
    /// if (auto p = sem.try_acquire()) { /* ... */ }
    /// ```
    [[nodiscard]] permit try_acquire(std::size_t count = 1) noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        if (!m_waiters.empty() || m_available < count) {
            return {};
        }
        m_available -= count;
        return {this, count};
    }

    /// Adds `count` permits (permits released by their owner come back this
    /// way too) and hands them to waiters in order. Any thread.
    ///
    /// ```cpp
    /// sem.release(3); // three more slots
    /// ```
    void release(std::size_t count) noexcept {
        m_lock.lock();
        m_available += count;
        dispatch_locked();
    }

    /// Permits available now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t free_slots = sem.available();
    /// ```
    std::size_t available() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_available;
    }

    /// Tasks waiting in acquire() now (a snapshot, for metrics and tests).
    ///
    /// ```cpp
    /// std::size_t queued = sem.waiting();
    /// ```
    std::size_t waiting() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_waiters.size();
    }

private:
    // With the lock held: hands permits to waiters from the head while the
    // head's request fits. Returns with the lock released.
    void dispatch_locked() noexcept {
        detail::fire_while(m_lock, [this]() noexcept -> detail::task_header* {
            auto* head = static_cast<waiter*>(m_waiters.front());
            if (head == nullptr || head->wanted > m_available) {
                return nullptr;
            }
            m_available -= head->wanted;
            return detail::fire(m_waiters, *head, 1);
        });
    }

    mutable detail::spinlock m_lock;
    detail::wait_list m_waiters;
    std::size_t m_available;
};

// ---- mutex ----------------------------------------------------------------------

/// An async mutex: lock() suspends the task (not the thread) until the
/// mutex is free, FIFO. Unlocking hands the lock straight to the next
/// waiter, so a task that unlocks and relocks at once cannot barge. An
/// abandoned waiter that was handed the lock unlocks it again.
///
/// ```cpp
/// weft::mutex m;
/// std::uint64_t counter = 0;
/// weft::task<> bump() {
///     auto guard = co_await m.lock();
///     ++counter;
/// } // unlocked here
/// ```
class mutex {
public:
    /// Holds the lock; unlocks on destruction. Empty if try_lock failed.
    ///
    /// ```cpp
    /// weft::mutex::guard g = co_await m.lock();
    /// g.unlock(); // early
    /// ```
    class guard {
    public:
        guard() noexcept = default;
        /// True if it holds the lock (try_lock succeeded).
        explicit operator bool() const noexcept { return static_cast<bool>(m_permit); }
        /// Unlocks now.
        void unlock() noexcept { m_permit.release(); }

    private:
        friend class mutex;
        explicit guard(semaphore::permit permit) noexcept : m_permit(std::move(permit)) {}
        semaphore::permit m_permit;
    };

    /// What lock() returns; `co_await` it for a guard.
    class [[nodiscard]] lock_awaiter {
    public:
        /// Made by mutex::lock().
        explicit lock_awaiter(semaphore::acquire_awaiter inner) noexcept : m_inner(std::move(inner)) {}
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> awaiting) { return m_inner.await_suspend(awaiting); }
        guard await_resume() noexcept { return guard(m_inner.await_resume()); }

    private:
        semaphore::acquire_awaiter m_inner;
    };

    /// An unlocked mutex.
    ///
    /// ```cpp
    /// weft::mutex m;
    /// ```
    mutex() noexcept = default;

    /// Waits for the lock.
    ///
    /// ```cpp
    /// auto g = co_await m.lock();
    /// ```
    [[nodiscard]] lock_awaiter lock() noexcept { return lock_awaiter(m_sem.acquire(1)); }

    /// Takes the lock if it is free and nobody waits; else an empty guard.
    ///
    /// ```cpp
    /// if (auto g = m.try_lock()) { /* ... */ }
    /// ```
    [[nodiscard]] guard try_lock() noexcept { return guard(m_sem.try_acquire(1)); }

    /// True while someone holds the lock (a snapshot).
    ///
    /// ```cpp
    /// bool busy = m.is_locked();
    /// ```
    bool is_locked() const noexcept { return m_sem.available() == 0; }

    /// Tasks waiting in lock() now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t queued = m.waiting();
    /// ```
    std::size_t waiting() const noexcept { return m_sem.waiting(); }

private:
    semaphore m_sem{1};
};

// ---- notify ----------------------------------------------------------------------

/// Wakes tasks waiting for an event. notify_one() wakes the oldest waiter,
/// or, if nobody waits, stores one permit so the next notified() completes
/// at once: a notification sent before the wait is not lost (at most one is
/// stored). notify_all() wakes every task waiting now and stores nothing.
///
/// ```cpp
/// weft::notify ready;
/// weft::task<> consumer() { co_await ready.notified(); /* ... */ }
/// void producer() { ready.notify_one(); } // any thread
/// ```
class notify {
public:
    /// What notified() returns; `co_await` it. Movable until awaited.
    class [[nodiscard]] notified_awaiter {
    public:
        /// Made by notify::notified().
        explicit notified_awaiter(notify& owner) noexcept : m_owner(&owner) {}
        notified_awaiter(notified_awaiter&&) noexcept = default;
        notified_awaiter& operator=(notified_awaiter&&) = delete;
        ~notified_awaiter() { m_owner->m_protocol.abandon(m_waiter); }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            if (m_owner->m_protocol.wait(m_waiter, self, awaiting)) {
                return true;
            }
            return detail::complete_or_yield(self, awaiting);
        }

        void await_resume() noexcept { m_owner->m_protocol.resumed(m_waiter); }

    private:
        notify* m_owner;
        detail::notify_protocol<>::waiter m_waiter;
    };

    /// No waiter, no stored permit.
    ///
    /// ```cpp
    /// weft::notify data_ready;
    /// ```
    notify() noexcept = default;
    notify(const notify&) = delete;
    notify& operator=(const notify&) = delete;

    /// Waits for a notification (or takes the stored permit).
    ///
    /// ```cpp
    /// co_await n.notified();
    /// auto r = co_await weft::timeout(std::chrono::milliseconds(50), n.notified()); // result<void>
    /// ```
    [[nodiscard]] notified_awaiter notified() noexcept { return notified_awaiter(*this); }

    /// Wakes the oldest waiter, or stores the permit if nobody waits. Any thread.
    ///
    /// ```cpp
    /// n.notify_one();
    /// ```
    void notify_one() noexcept { m_protocol.notify_one(); }

    /// Wakes every task waiting now; stores no permit. Any thread.
    ///
    /// ```cpp
    /// n.notify_all();
    /// ```
    void notify_all() noexcept { m_protocol.notify_all(); }

    /// The same as notify_all() (Tokio's name).
    ///
    /// ```cpp
    /// n.notify_waiters();
    /// ```
    void notify_waiters() noexcept { notify_all(); }

    /// Tasks waiting in notified() now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t sleepers = n.waiting();
    /// ```
    std::size_t waiting() const noexcept { return m_protocol.waiting(); }

private:
    detail::notify_protocol<> m_protocol; // the permit, the waiters and what is done to them
};

// ---- oneshot ----------------------------------------------------------------------

namespace detail {
/// The block a oneshot's two ends share (what they do to it is in
/// oneshot_protocol.hpp); freed by the last one. It comes from the frame
/// pool like a coroutine frame (frame_pool.hpp), unless T is over-aligned.
template <class T>
struct oneshot_state : oneshot_protocol<T> {
    static constexpr bool pooled = alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;

    std::uint32_t origin = 0; // where the block came from (allocate_frame), if `pooled`

    static oneshot_state* make() {
        if constexpr (pooled) {
            const frame_block block = allocate_frame(sizeof(oneshot_state));
            if (block.memory == nullptr) {
                raise(
                    errc::capacity_exhausted,
                    "make_oneshot: no memory for the oneshot's state: its size class of the executor's frame "
                    "pool is used up (Options::frame_pool_classes; Options::on_frame_pool_exhausted is "
                    "fail), "
                    "or the heap is exhausted");
            }
            auto* state = ::new (block.memory) oneshot_state();
            state->origin = block.origin;
            return state;
        } else {
            return new oneshot_state();
        }
    }

    void drop_end() noexcept {
        if (this->release_end()) {
            if constexpr (pooled) {
                const std::uint32_t from = origin;
                this->~oneshot_state();
                free_frame(this, from);
            } else {
                delete this;
            }
        }
    }
};
} // namespace detail

template <class T>
class oneshot_sender;
template <class T>
class oneshot_receiver;

/// Makes a channel for one value: a sender and a receiver sharing one
/// allocated block (the only allocation; waiting allocates nothing). On an
/// executor's thread with a frame pool, the block comes from the pool; if
/// the pool is used up and set to fail, raises errc::capacity_exhausted.
///
/// ```cpp
/// auto [tx, rx] = weft::make_oneshot<int>();
/// weft::spawn([tx = std::move(tx)]() mutable { tx.send(42); });
/// weft::result<int> v = co_await rx; // 42, or errc::closed if tx died unsent
/// ```
template <class T>
std::pair<oneshot_sender<T>, oneshot_receiver<T>> make_oneshot() {
    detail::oneshot_state<T>* state = detail::oneshot_state<T>::make();
    return {oneshot_sender<T>(state), oneshot_receiver<T>(state)};
}

/// The sending end of a oneshot. Move-only; dropping it unsent wakes the
/// receiver with errc::closed.
///
/// ```cpp
/// if (!tx.send(7)) { /* the receiver is gone */ }
/// ```
template <class T>
class oneshot_sender {
public:
    oneshot_sender() noexcept = default;
    oneshot_sender(oneshot_sender&& other) noexcept : m_state(std::exchange(other.m_state, nullptr)) {}
    oneshot_sender& operator=(oneshot_sender&& other) noexcept {
        if (this != &other) {
            reset();
            m_state = std::exchange(other.m_state, nullptr);
        }
        return *this;
    }
    oneshot_sender(const oneshot_sender&) = delete;
    oneshot_sender& operator=(const oneshot_sender&) = delete;
    ~oneshot_sender() { reset(); }

    /// Sends the value and wakes the receiver; the sender is spent. Returns
    /// errc::closed, without moving from `value`, if the receiver is gone or
    /// this sender already sent. Any thread.
    ///
    /// ```cpp
    /// std::string s = "done";
    /// if (!tx.send(std::move(s))) { /* s is intact */ }
    /// ```
    template <class U = T>
    result<void> send(U&& value) {
        if (m_state == nullptr) {
            return errc::closed;
        }
        if (!m_state->send(std::forward<U>(value))) {
            return errc::closed;
        }
        std::exchange(m_state, nullptr)->drop_end();
        return {};
    }

    /// True if a send would fail (the receiver is gone, or this sender is spent).
    ///
    /// ```cpp
    /// if (tx.is_closed()) { /* nobody listens any more */ }
    /// ```
    bool is_closed() const noexcept { return m_state == nullptr || m_state->receiver_gone(); }

private:
    friend std::pair<oneshot_sender<T>, oneshot_receiver<T>> make_oneshot<T>();
    explicit oneshot_sender(detail::oneshot_state<T>* state) noexcept : m_state(state) {}

    void reset() noexcept {
        detail::oneshot_state<T>* state = std::exchange(m_state, nullptr);
        if (state == nullptr) {
            return;
        }
        state->drop_sender();
        state->drop_end();
    }

    detail::oneshot_state<T>* m_state = nullptr;
};

/// The receiving end of a oneshot: `co_await rx` (or rx.recv()) gives the
/// value once; errc::closed if the sender went away unsent, or the value was
/// already taken. Wake and retry: the value stays in the shared block until
/// the woken receiver takes it, so a receive cut short by a timeout can be
/// awaited again. One task awaits it at a time. Move-only.
///
/// ```cpp
/// auto v = co_await weft::timeout(std::chrono::seconds(1), rx.recv());
/// ```
template <class T>
class oneshot_receiver {
public:
    /// What recv() returns; `co_await` it for a result<T>.
    class [[nodiscard]] recv_awaiter {
    public:
        /// Made by oneshot_receiver::recv().
        explicit recv_awaiter(oneshot_receiver& owner) noexcept : m_owner(&owner) {}
        recv_awaiter(recv_awaiter&&) noexcept = default;
        recv_awaiter& operator=(recv_awaiter&&) = delete;
        ~recv_awaiter() {
            if (m_owner->m_state != nullptr) {
                m_owner->m_state->abandon(m_waiter);
            }
        }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            detail::oneshot_state<T>* shared = m_owner->m_state;
            if (shared != nullptr && shared->wait(m_waiter, self, awaiting)) {
                return true;
            }
            return detail::complete_or_yield(self, awaiting);
        }

        result<T> await_resume() {
            if (m_owner->m_state != nullptr) {
                m_owner->m_state->resumed(m_waiter);
            }
            return m_owner->take();
        }

    private:
        oneshot_receiver* m_owner;
        typename detail::oneshot_protocol<T>::waiter m_waiter;
    };

    oneshot_receiver() noexcept = default;
    oneshot_receiver(oneshot_receiver&& other) noexcept : m_state(std::exchange(other.m_state, nullptr)) {}
    oneshot_receiver& operator=(oneshot_receiver&& other) noexcept {
        if (this != &other) {
            reset();
            m_state = std::exchange(other.m_state, nullptr);
        }
        return *this;
    }
    oneshot_receiver(const oneshot_receiver&) = delete;
    oneshot_receiver& operator=(const oneshot_receiver&) = delete;
    ~oneshot_receiver() { reset(); }

    /// Waits for the value.
    ///
    /// ```cpp
    /// weft::result<int> v = co_await rx.recv();
    /// ```
    [[nodiscard]] recv_awaiter recv() noexcept { return recv_awaiter(*this); }
    /// `co_await rx` is `co_await rx.recv()`.
    ///
    /// ```cpp
    /// weft::result<int> v = co_await rx;
    /// ```
    [[nodiscard]] recv_awaiter operator co_await() noexcept { return recv_awaiter(*this); }

    /// The value if it was sent; errc::closed if it never will be (or was
    /// taken); std::errc::resource_unavailable_try_again if not yet. Any thread.
    ///
    /// ```cpp
    /// if (auto v = rx.try_recv()) { use(*v); }
    /// ```
    result<T> try_recv() { return take(); }

private:
    friend std::pair<oneshot_sender<T>, oneshot_receiver<T>> make_oneshot<T>();
    explicit oneshot_receiver(detail::oneshot_state<T>* state) noexcept : m_state(state) {}

    result<T> take() {
        if (m_state == nullptr) {
            return errc::closed;
        }
        std::optional<T> out;
        const bool done = m_state->take(out);
        if (out) {
            return std::move(*out);
        }
        if (done) {
            return errc::closed;
        }
        return detail::would_block();
    }

    void reset() noexcept {
        detail::oneshot_state<T>* state = std::exchange(m_state, nullptr);
        if (state == nullptr) {
            return;
        }
        [[maybe_unused]] const std::optional<T> unread = state->drop_receiver(); // destroyed unlocked
        state->drop_end();
    }

    detail::oneshot_state<T>* m_state = nullptr;
};

// ---- channel -------------------------------------------------------------------------

/// A bounded multi-producer multi-consumer FIFO channel holding at most
/// `Capacity` values in a ring inside the object (no allocation). send()
/// waits while it is full, recv() while it is empty; both sides are served
/// in order of arrival. close() ends it: later sends fail with errc::closed
/// (the value is dropped: use try_send to keep it), receivers first drain
/// what is left, then get errc::closed. T must be nothrow-movable.
///
/// Wake with a reservation: a value that arrives for a waiting receiver
/// stays in the ring, and the receiver is woken holding the right to take
/// one value (a sender woken for room holds the right to one slot). A
/// waiter cut short (aborted, timed out) passes its right to the next
/// waiter, so no value or slot is lost.
///
/// ```cpp
/// weft::channel<int, 4> ch;
/// weft::task<> producer() { for (int i = 0; i < 10; ++i) co_await ch.send(i); ch.close(); }
/// weft::task<> consumer() { while (auto v = co_await ch.recv()) use(*v); }
/// ```
template <class T, std::size_t Capacity>
class channel {
    static_assert(Capacity >= 1, "a weft::channel needs a capacity of at least 1");
    static_assert(
        std::is_nothrow_move_constructible_v<T>,
        "weft::channel<T, N> moves values under its spinlock: T must be nothrow move-constructible");

public:
    /// What send() returns; `co_await` it for a result<void>. Owns the value
    /// until it is sent. Movable until awaited.
    class [[nodiscard]] send_awaiter {
    public:
        /// Made by channel::send().
        send_awaiter(channel& owner, T&& value) noexcept : m_owner(&owner), m_value(std::move(value)) {}
        send_awaiter(send_awaiter&&) noexcept = default;
        send_awaiter& operator=(send_awaiter&&) = delete;
        ~send_awaiter() {
            if (m_state == state::waiting) {
                m_owner->m_lock.lock();
                if (m_node.linked) {
                    m_owner->m_senders.remove(m_node);
                    m_owner->m_lock.unlock();
                    detail::ref_dec(m_node.task);
                } else if (m_node.fired.load(std::memory_order_relaxed) == fired_granted) {
                    --m_owner->m_slots_granted; // pass the slot on
                    m_owner->dispatch_locked();
                } else {
                    m_owner->m_lock.unlock();
                }
            }
        }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            channel& ch = *m_owner;
            ch.m_lock.lock();
            if (ch.m_closed) {
                ch.m_lock.unlock();
                m_error = make_error_code(errc::closed);
                return detail::complete_or_yield(self, awaiting);
            }
            const bool room = ch.m_senders.empty() && ch.m_count + ch.m_slots_granted < Capacity;
            if (room && detail::consume_budget()) {
                ch.push_locked(std::move(*m_value));
                m_value.reset();
                ch.dispatch_locked(); // hands the value's right to a waiting receiver
                return false;
            }
            m_state = state::waiting;
            detail::enqueue_waiter(ch.m_senders, m_node, self, awaiting);
            if (room) {
                // Room, but the budget is spent: yield *before* the value
                // goes in. A sent value cannot be taken back, so pushing and
                // then yielding would let a timeout that fires during the
                // yield report timed_out for a value that was delivered.
                // Queued as a waiter, this send is granted the free slot at
                // once; that grant's wake is the yield, and await_resume
                // sends (a timeout or abort passes the slot on instead).
                detail::count_forced_yield();
                ch.dispatch_locked();
                return true;
            }
            ch.m_lock.unlock();
            return true;
        }

        result<void> await_resume() {
            if (m_state != state::waiting) {
                return m_error;
            }
            m_state = state::idle;
            channel& ch = *m_owner;
            ch.m_lock.lock();
            const bool granted = m_node.fired.load(std::memory_order_relaxed) == fired_granted;
            if (granted) {
                --ch.m_slots_granted;
            }
            if (!granted || ch.m_closed) {
                ch.m_lock.unlock(); // closed: no sender may use the slot now
                return errc::closed;
            }
            ch.push_locked(std::move(*m_value));
            m_value.reset();
            ch.dispatch_locked();
            return {};
        }

    private:
        enum class state : std::uint8_t { idle, waiting };
        channel* m_owner;
        std::optional<T> m_value;
        detail::wait_node m_node;
        state m_state = state::idle;
        std::error_code m_error;
    };

    /// What recv() returns; `co_await` it for a result<T>. Movable until awaited.
    class [[nodiscard]] recv_awaiter {
    public:
        /// Made by channel::recv().
        explicit recv_awaiter(channel& owner) noexcept : m_owner(&owner) {}
        recv_awaiter(recv_awaiter&&) noexcept = default;
        recv_awaiter& operator=(recv_awaiter&&) = delete;
        ~recv_awaiter() {
            if (m_state == state::granted) {
                m_owner->m_lock.lock();
                --m_owner->m_items_granted; // reserved, then aborted during a forced yield
                m_owner->dispatch_locked();
            } else if (m_state == state::waiting) {
                m_owner->m_lock.lock();
                if (m_node.linked) {
                    m_owner->m_receivers.remove(m_node);
                    m_owner->m_lock.unlock();
                    detail::ref_dec(m_node.task);
                } else if (m_node.fired.load(std::memory_order_relaxed) == fired_granted) {
                    --m_owner->m_items_granted; // pass the value on
                    m_owner->dispatch_locked();
                } else {
                    m_owner->m_lock.unlock();
                }
            }
        }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            channel& ch = *m_owner;
            ch.m_lock.lock();
            if (ch.m_receivers.empty() && ch.m_count > ch.m_items_granted) {
                ++ch.m_items_granted; // ours; taken in await_resume
                ch.m_lock.unlock();
                m_state = state::granted;
                return detail::complete_or_yield(self, awaiting);
            }
            if (ch.m_closed) {
                ch.m_lock.unlock();
                m_state = state::closed;
                return detail::complete_or_yield(self, awaiting);
            }
            m_state = state::waiting;
            detail::enqueue_waiter(ch.m_receivers, m_node, self, awaiting);
            ch.m_lock.unlock();
            return true;
        }

        result<T> await_resume() {
            const bool granted =
                m_state == state::granted ||
                (m_state == state::waiting && m_node.fired.load(std::memory_order_acquire) == fired_granted);
            m_state = state::idle;
            if (!granted) {
                return errc::closed;
            }
            channel& ch = *m_owner;
            ch.m_lock.lock();
            --ch.m_items_granted;
            T value = ch.pop_locked();
            ch.dispatch_locked(); // a slot came free: a waiting sender may go
            return value;
        }

    private:
        enum class state : std::uint8_t { idle, waiting, granted, closed };
        channel* m_owner;
        detail::wait_node m_node;
        state m_state = state::idle;
    };

    /// An empty, open channel.
    ///
    /// ```cpp
    /// weft::channel<std::uint32_t, 16> samples;
    /// ```
    channel() noexcept = default;
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel() {
        while (m_count > 0) {
            (void)pop_locked();
        }
    }

    /// Sends `value`, waiting while the channel is full. errc::closed if the
    /// channel is (or gets) closed before the value went in; the value is
    /// then dropped.
    ///
    /// ```cpp
    /// if (!co_await ch.send(std::move(msg))) { /* closed */ }
    /// ```
    [[nodiscard]] send_awaiter send(T value) noexcept { return send_awaiter(*this, std::move(value)); }

    /// Receives the oldest value, waiting while the channel is empty;
    /// errc::closed once it is closed and drained.
    ///
    /// ```cpp
    /// while (auto v = co_await ch.recv()) { use(*v); }
    /// ```
    [[nodiscard]] recv_awaiter recv() noexcept { return recv_awaiter(*this); }

    /// Sends without waiting. errc::closed if closed,
    /// std::errc::resource_unavailable_try_again if full. An rvalue T is
    /// moved from only on success; an lvalue is copied (first, outside the
    /// lock), and anything else is converted to a T first. Any thread.
    ///
    /// ```cpp
    /// std::string msg = "hello";
    /// if (!ch.try_send(std::move(msg))) { /* full or closed: msg is intact */ }
    /// ```
    template <class U = T>
    result<void> try_send(U&& value) {
        if constexpr (std::is_same_v<std::remove_cvref_t<U>, T> && !std::is_lvalue_reference_v<U> &&
                      !std::is_const_v<std::remove_reference_t<U>>) {
            m_lock.lock();
            if (m_closed) {
                m_lock.unlock();
                return errc::closed;
            }
            if (!m_senders.empty() || m_count + m_slots_granted >= Capacity) {
                m_lock.unlock();
                return detail::would_block();
            }
            push_locked(std::move(value)); // nothrow (static_assert above)
            dispatch_locked();
            return {};
        } else {
            return try_send(T(std::forward<U>(value)));
        }
    }

    /// Receives without waiting. errc::closed if closed and drained,
    /// std::errc::resource_unavailable_try_again if empty. Any thread.
    ///
    /// ```cpp
    /// if (auto v = ch.try_recv()) { use(*v); }
    /// ```
    result<T> try_recv() {
        m_lock.lock();
        if (m_count > m_items_granted) {
            T value = pop_locked();
            dispatch_locked();
            return value;
        }
        const bool closed = m_closed;
        m_lock.unlock();
        if (closed) {
            return errc::closed;
        }
        return detail::would_block();
    }

    /// Closes the channel: waiting senders fail with errc::closed, waiting
    /// receivers wake and drain what is left, then get errc::closed.
    /// Idempotent. Any thread.
    ///
    /// ```cpp
    /// ch.close();
    /// ```
    void close() noexcept {
        m_lock.lock();
        if (m_closed) {
            m_lock.unlock();
            return;
        }
        m_closed = true;
        const std::uint64_t receivers_limit = m_receivers.next_ticket();
        const std::uint64_t senders_limit = m_senders.next_ticket();
        detail::fire_while(m_lock, [&]() noexcept -> detail::task_header* {
            if (detail::wait_node* r = m_receivers.front(); r != nullptr && r->ticket < receivers_limit) {
                return detail::fire(m_receivers, *r, fired_closed);
            }
            if (detail::wait_node* s = m_senders.front(); s != nullptr && s->ticket < senders_limit) {
                return detail::fire(m_senders, *s, fired_closed);
            }
            return nullptr;
        });
    }

    /// True once close() was called.
    ///
    /// ```cpp
    /// if (ch.is_closed()) { /* ... */ }
    /// ```
    bool is_closed() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_closed;
    }

    /// Values in the ring now (a snapshot, including those already promised
    /// to woken receivers).
    ///
    /// ```cpp
    /// std::size_t queued = ch.size();
    /// ```
    std::size_t size() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_count;
    }

    /// The fixed capacity.
    ///
    /// ```cpp
    /// static_assert(weft::channel<int, 4>::capacity() == 4);
    /// ```
    static constexpr std::size_t capacity() noexcept { return Capacity; }

    /// Tasks waiting in recv() now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t idle_consumers = ch.waiting_receivers();
    /// ```
    std::size_t waiting_receivers() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_receivers.size();
    }

    /// Tasks waiting in send() now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t blocked_producers = ch.waiting_senders();
    /// ```
    std::size_t waiting_senders() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_senders.size();
    }

private:
    static constexpr std::uint32_t fired_granted = 1;
    static constexpr std::uint32_t fired_closed = 2;

    // Under the lock.
    void push_locked(T&& value) noexcept {
        ::new (static_cast<void*>(m_slots[(m_head + m_count) % Capacity].bytes)) T(std::move(value));
        ++m_count;
    }
    T pop_locked() noexcept {
        T* slot = m_slots[m_head].get();
        T value(std::move(*slot));
        slot->~T();
        m_head = (m_head + 1) % Capacity;
        --m_count;
        return value;
    }

    // With the lock held: grants values nobody has claimed to waiting
    // receivers, and free slots to waiting senders, oldest first. Returns
    // with the lock released.
    void dispatch_locked() noexcept {
        detail::fire_while(m_lock, [this]() noexcept -> detail::task_header* {
            if (detail::wait_node* r = m_receivers.front(); r != nullptr && m_count > m_items_granted) {
                ++m_items_granted;
                return detail::fire(m_receivers, *r, fired_granted);
            }
            if (detail::wait_node* s = m_senders.front();
                s != nullptr && !m_closed && m_count + m_slots_granted < Capacity) {
                ++m_slots_granted;
                return detail::fire(m_senders, *s, fired_granted);
            }
            return nullptr;
        });
    }

    mutable detail::spinlock m_lock;
    detail::wait_list m_receivers;
    detail::wait_list m_senders;
    std::size_t m_head = 0;
    std::size_t m_count = 0;
    std::size_t m_items_granted = 0; // values promised to receivers that have not taken them yet
    std::size_t m_slots_granted = 0; // free slots promised to senders that have not filled them yet
    bool m_closed = false;
    detail::value_storage<T> m_slots[Capacity];
};

// ---- watch ------------------------------------------------------------------------------

/// The latest value of something, and a way to wait until it changes.
/// send() replaces the value and wakes every receiver waiting in changed();
/// receivers see the latest value only (intermediate ones may be skipped).
/// Wake and retry: each receiver remembers the version it saw, so a
/// changed() cut short loses nothing. Values are copied out under a
/// spinlock: keep T cheap to copy.
///
/// ```cpp
/// weft::watch<int> level(0);
/// weft::task<> follower() {
///     auto rx = level.subscribe();
///     while (co_await rx.changed()) { apply(rx.borrow()); }
/// }
/// level.send(3); // any thread
/// ```
template <class T>
class watch {
public:
    /// One follower's view: the version it last saw.
    ///
    /// ```cpp
    /// auto rx = w.subscribe();
    /// ```
    class receiver {
    public:
        /// What changed() returns; `co_await` it for a result<void>.
        class [[nodiscard]] changed_awaiter {
        public:
            /// Made by receiver::changed().
            explicit changed_awaiter(receiver& owner) noexcept : m_owner(&owner) {}
            changed_awaiter(changed_awaiter&&) noexcept = default;
            changed_awaiter& operator=(changed_awaiter&&) = delete;
            ~changed_awaiter() {
                if (m_waiting) {
                    watch& w = *m_owner->m_watch;
                    w.m_lock.lock();
                    const bool linked = m_node.linked;
                    if (linked) {
                        w.m_waiters.remove(m_node);
                    }
                    w.m_lock.unlock();
                    if (linked) {
                        detail::ref_dec(m_node.task);
                    }
                }
            }

            bool await_ready() const noexcept { return false; }

            bool await_suspend(std::coroutine_handle<> awaiting) {
                detail::task_header* self = detail::sync_current_task();
                watch& w = *m_owner->m_watch;
                w.m_lock.lock();
                if (w.m_version != m_owner->m_seen || w.m_closed) {
                    w.m_lock.unlock();
                    return detail::complete_or_yield(self, awaiting);
                }
                m_waiting = true;
                detail::enqueue_waiter(w.m_waiters, m_node, self, awaiting);
                w.m_lock.unlock();
                return true;
            }

            result<void> await_resume() noexcept {
                m_waiting = false;
                watch& w = *m_owner->m_watch;
                detail::lock_hold<detail::spinlock> hold(w.m_lock);
                if (w.m_version != m_owner->m_seen) {
                    m_owner->m_seen = w.m_version;
                    return {};
                }
                return errc::closed;
            }

        private:
            receiver* m_owner;
            detail::wait_node m_node;
            bool m_waiting = false;
        };

        /// Waits until the value changes from the version last seen, and
        /// marks the newest version seen; errc::closed once the watch is
        /// closed and nothing new is left.
        ///
        /// ```cpp
        /// if (co_await rx.changed()) { auto v = rx.borrow(); }
        /// ```
        [[nodiscard]] changed_awaiter changed() noexcept { return changed_awaiter(*this); }

        /// A copy of the latest value.
        ///
        /// ```cpp
        /// int v = rx.borrow();
        /// ```
        T borrow() const { return m_watch->borrow(); }

        /// A copy of the latest value, marking it seen.
        ///
        /// ```cpp
        /// int v = rx.borrow_and_update();
        /// ```
        T borrow_and_update() {
            detail::lock_hold<detail::spinlock> hold(m_watch->m_lock);
            m_seen = m_watch->m_version;
            return m_watch->m_value;
        }

        /// True if the value changed since it was last seen.
        ///
        /// ```cpp
        /// if (rx.has_changed()) { /* ... */ }
        /// ```
        bool has_changed() const noexcept {
            detail::lock_hold<detail::spinlock> hold(m_watch->m_lock);
            return m_watch->m_version != m_seen;
        }

    private:
        friend class watch;
        receiver(watch& w, std::uint64_t seen) noexcept : m_watch(&w), m_seen(seen) {}
        watch* m_watch;
        std::uint64_t m_seen;
    };

    /// A watch holding `initial`.
    ///
    /// ```cpp
    /// weft::watch<int> temperature(20);
    /// ```
    explicit watch(T initial = T()) : m_value(std::move(initial)) {}
    watch(const watch&) = delete;
    watch& operator=(const watch&) = delete;

    /// A receiver that has seen the current value.
    ///
    /// ```cpp
    /// auto rx = w.subscribe();
    /// ```
    [[nodiscard]] receiver subscribe() noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return receiver(*this, m_version);
    }

    /// Replaces the value and wakes every waiting receiver. Any thread.
    ///
    /// ```cpp
    /// w.send(42);
    /// ```
    void send(T value) {
        std::uint64_t waiting_before = 0;
        {
            detail::lock_hold<detail::spinlock> hold(m_lock); // released even if the swap throws
            using std::swap;
            swap(m_value, value); // the old value dies outside the lock
            ++m_version;
            waiting_before = m_waiters.next_ticket();
        }
        m_lock.lock();
        // Only those that waited before the new version: a receiver that
        // has seen it since (and waits for the next one) must stay.
        detail::fire_before(m_lock, m_waiters, waiting_before, 1);
    }

    /// A copy of the latest value. Any thread.
    ///
    /// ```cpp
    /// int now = w.borrow();
    /// ```
    T borrow() const {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_value;
    }

    /// How many times send() was called.
    ///
    /// ```cpp
    /// std::uint64_t v = w.version();
    /// ```
    std::uint64_t version() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_version;
    }

    /// Closes the watch: receivers' changed() returns errc::closed once they
    /// have seen the last value. Any thread.
    ///
    /// ```cpp
    /// w.close();
    /// ```
    void close() noexcept {
        m_lock.lock();
        m_closed = true;
        detail::fire_all(m_lock, m_waiters, 2);
    }

private:
    mutable detail::spinlock m_lock;
    detail::wait_list m_waiters;
    T m_value;
    std::uint64_t m_version = 0;
    bool m_closed = false;
};

// ---- barrier -----------------------------------------------------------------------------

/// Makes `participants` tasks meet: each arrive_and_wait() waits until all
/// of them have arrived, then all go on, and the barrier is ready for the
/// next generation. Exactly one of each generation (the last to arrive) is
/// told it is the leader. A waiter cut short (aborted, timed out) while the
/// generation still waits for others withdraws its arrival: the generation
/// then waits for another arrival. Once its generation is released, a
/// waiter counts as arrived even if a timeout around it fires before it
/// resumes (it then reports errc::timed_out); the leader never waits.
///
/// ```cpp
/// weft::barrier sync(3);
/// weft::task<> phase_worker() {
///     for (int phase = 0; phase < 10; ++phase) {
///         compute(phase);
///         if ((co_await sync.arrive_and_wait()).is_leader()) { publish(phase); }
///     }
/// }
/// ```
class barrier {
public:
    /// What arrive_and_wait() gives back.
    ///
    /// ```cpp
    /// bool leader = (co_await b.arrive_and_wait()).is_leader();
    /// ```
    class wait_result {
    public:
        /// True for exactly one participant per generation.
        bool is_leader() const noexcept { return m_leader; }

    private:
        friend class barrier;
        explicit wait_result(bool leader) noexcept : m_leader(leader) {}
        bool m_leader;
    };

    /// What arrive_and_wait() returns; `co_await` it. Movable until awaited.
    class [[nodiscard]] arrive_awaiter {
    public:
        /// Made by barrier::arrive_and_wait().
        explicit arrive_awaiter(barrier& owner) noexcept : m_owner(&owner) {}
        arrive_awaiter(arrive_awaiter&&) noexcept = default;
        arrive_awaiter& operator=(arrive_awaiter&&) = delete;
        ~arrive_awaiter() {
            if (m_waiting) {
                m_owner->m_lock.lock();
                const bool linked = m_node.linked;
                if (linked) {
                    m_owner->m_waiters.remove(m_node);
                    --m_owner->m_arrived; // withdraw; a released generation keeps us counted
                }
                m_owner->m_lock.unlock();
                if (linked) {
                    detail::ref_dec(m_node.task);
                }
            }
        }

        bool await_ready() const noexcept { return false; }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            barrier& b = *m_owner;
            b.m_lock.lock();
            if (++b.m_arrived == b.m_participants) {
                b.m_arrived = 0;
                ++b.m_generation;
                m_leader = true;
                detail::fire_all(b.m_lock, b.m_waiters, 1); // this generation's waiters only
                // No budget yield here: the generation is released with this
                // task as its leader, and a timeout firing during a yield
                // would report timed_out for an arrival that counted.
                (void)detail::consume_budget();
                return false;
            }
            m_waiting = true;
            detail::enqueue_waiter(b.m_waiters, m_node, self, awaiting);
            b.m_lock.unlock();
            return true;
        }

        wait_result await_resume() noexcept {
            m_waiting = false;
            return wait_result(m_leader);
        }

    private:
        barrier* m_owner;
        detail::wait_node m_node;
        bool m_waiting = false;
        bool m_leader = false;
    };

    /// A barrier for `participants` tasks (at least 1, else errc::invalid_argument).
    ///
    /// ```cpp
    /// weft::barrier b(4);
    /// ```
    explicit barrier(std::size_t participants) : m_participants(participants) {
        if (participants == 0) {
            detail::raise(errc::invalid_argument, "a weft::barrier needs at least one participant");
        }
    }
    barrier(const barrier&) = delete;
    barrier& operator=(const barrier&) = delete;

    /// Arrives and waits for the rest of this generation.
    ///
    /// ```cpp
    /// co_await b.arrive_and_wait();
    /// ```
    [[nodiscard]] arrive_awaiter arrive_and_wait() noexcept { return arrive_awaiter(*this); }

    /// Generations completed so far (a snapshot).
    ///
    /// ```cpp
    /// std::uint64_t g = b.generation();
    /// ```
    std::uint64_t generation() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_generation;
    }

    /// Tasks of the current generation waiting now (a snapshot).
    ///
    /// ```cpp
    /// std::size_t here = b.waiting();
    /// ```
    std::size_t waiting() const noexcept {
        detail::lock_hold<detail::spinlock> hold(m_lock);
        return m_waiters.size();
    }

private:
    mutable detail::spinlock m_lock;
    detail::wait_list m_waiters;
    std::size_t m_participants;
    std::size_t m_arrived = 0;
    std::uint64_t m_generation = 0;
};

// ---- once_cell ---------------------------------------------------------------------------

/// A value initialised once, by async code, on first use. get_or_init(f)
/// returns the value, running `f()` (which returns a weft::task<T>) if
/// nobody has yet: exactly one initializer runs at a time, concurrent
/// callers wait for it. If the initializer throws, or is cancelled (its
/// task aborted, a timeout around it fired), the cell stays empty, the
/// exception reaches its caller, and the waiters wake and retry: one of them
/// runs its own initializer. Once set the value never changes. Waiting
/// allocates nothing (the waiter's node and the point it suspends at live in
/// its awaiter); only the caller that initialises allocates, for the task
/// `f()` returns.
///
/// ```cpp
/// weft::once_cell<client> shared;
/// weft::task<client> connect();
/// weft::task<> handler() {
///     client& c = co_await shared.get_or_init([] { return connect(); });
///     co_await c.request();
/// }
/// ```
template <class T>
class once_cell {
    enum class phase : std::uint8_t { empty, running, ready };

    // Puts a claimed cell back to empty unless dismissed (the initializer
    // threw, or publishing its value did).
    struct abandon_guard {
        once_cell* cell;
        ~abandon_guard() {
            if (cell != nullptr) {
                cell->abandon();
            }
        }
    };

public:
    /// What get_or_init() returns; `co_await` it for a T&. Movable until awaited.
    ///
    /// How it waits: a caller that finds the cell being initialised links its
    /// node and suspends at its wake point (detail::wake_point, in the
    /// awaiter). Every wake re-reads the phase (wake and retry): ready, it
    /// resumes the awaiting coroutine; empty again (the initializer gave up),
    /// it claims the cell and starts its own initializer, which resumes the
    /// awaiting coroutine when done; still running, it waits again.
    template <class F>
    class [[nodiscard]] init_awaiter {
        static_assert(std::is_same_v<std::invoke_result_t<F&>, task<T>>,
                      "once_cell<T>::get_or_init(f): f() must return a weft::task<T>");

    public:
        /// Made by once_cell::get_or_init().
        init_awaiter(once_cell& cell, F init) : m_cell(&cell), m_init(std::move(init)) {}
        /// Only before it is awaited (weft::timeout takes it so): nothing
        /// but the cell and the initializer is in use yet.
        init_awaiter(init_awaiter&& other) noexcept(std::is_nothrow_move_constructible_v<F>)
            : m_cell(other.m_cell), m_init(std::move(other.m_init)) {}
        init_awaiter& operator=(init_awaiter&&) = delete;
        ~init_awaiter() {
            if (m_state == state::waiting) {
                m_cell->m_lock.lock();
                const bool linked = m_node.linked;
                if (linked) {
                    m_cell->m_waiters.remove(m_node);
                }
                m_cell->m_lock.unlock();
                if (linked) {
                    detail::ref_dec(m_node.task); // never fired: the reference is ours
                }
            } else if (m_state == state::claimed || m_state == state::initialising) {
                // Aborted, or timed out, while initialising (or in the yield
                // just after claiming): the initializer's frame goes first.
                { task<T> dying = std::move(m_task); }
                m_cell->abandon();
            }
            if (m_wake.handle()) {
                m_wake.handle().destroy();
            }
        }

        bool await_ready() const noexcept {
            return detail::t_context.current != nullptr && m_cell->initialized() && detail::consume_budget();
        }

        std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::sync_current_task();
            if (m_cell->initialized()) {
                return detail::continue_or_yield(self, awaiting);
            }
            m_wake = detail::wake_point::make(m_room, this, &init_awaiter::on_wake);
            if (!m_wake.handle()) {
                detail::raise(errc::capacity_exhausted,
                              "once_cell::get_or_init: no memory for its wake point");
            }
            m_awaiting = awaiting;
            return advance(self, true);
        }

        T& await_resume() {
            switch (std::exchange(m_state, state::idle)) {
            case state::initialising: {
                abandon_guard guard{m_cell};
                T value = std::move(m_task).operator co_await().await_resume(); // the initializer's exception
                T* out = m_cell->publish(std::move(value));
                guard.cell = nullptr;
                return *out;
            }
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
            case state::failed: std::rethrow_exception(std::exchange(m_error, nullptr));
#endif
            default: return *m_cell->m_storage.get(); // ready
            }
        }

    private:
        enum class state : std::uint8_t { idle, waiting, ready, claimed, initialising, failed };

        static std::coroutine_handle<> on_wake(void* owner) noexcept {
            return static_cast<init_awaiter*>(owner)->advance(detail::t_context.current, false);
        }

        // Reads the phase and goes on: the first time from await_suspend,
        // then from the wake point on every wake. What it returns is where
        // the task continues (a noop coroutine: it stays suspended).
        std::coroutine_handle<> advance(detail::task_header* self, bool first) noexcept {
            once_cell& cell = *m_cell;
            if (m_state != state::claimed) { // claimed: back from the yield below
                cell.m_lock.lock();
                switch (cell.m_phase) {
                case phase::ready:
                    cell.m_lock.unlock();
                    m_state = state::ready;
                    return first ? detail::continue_or_yield(self, m_awaiting)
                                 : detail::transfer_to(m_awaiting);
                case phase::running:
                    m_state = state::waiting;
                    detail::enqueue_waiter(cell.m_waiters, m_node, self, m_wake.handle());
                    cell.m_lock.unlock();
                    return std::noop_coroutine();
                case phase::empty:
                    cell.m_phase = phase::running;
                    cell.m_lock.unlock();
                    m_state = state::claimed;
                    if (first && !detail::consume_budget()) {
                        detail::forced_yield(self, m_wake.handle()); // an abort now abandons the claim
                        return std::noop_coroutine();
                    }
                    break;
                }
            }
            return start_init();
        }

        // This caller holds the claim: runs init() and continues in its
        // task, which resumes the awaiting coroutine when it is done.
        std::coroutine_handle<> start_init() noexcept {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
            try {
                m_task = m_init();
            } catch (...) {
                m_error = std::current_exception();
                m_state = state::failed;
                m_cell->abandon();
                return detail::transfer_to(m_awaiting);
            }
#else
            m_task = m_init();
#endif
            m_state = state::initialising;
            if (!m_task.valid()) { // no memory for its frame: await_resume raises
                return detail::transfer_to(m_awaiting);
            }
            return std::move(m_task).operator co_await().await_suspend(m_awaiting);
        }

        once_cell* m_cell;
        F m_init;
        task<T> m_task; // the initializer, while this caller runs it
        std::coroutine_handle<> m_awaiting;
        detail::wait_node m_node;
        detail::wake_point m_wake;
        detail::wake_point::room m_room;
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
        std::exception_ptr m_error; // init() threw before returning its task
#endif
        state m_state = state::idle;
    };

    /// An empty cell.
    ///
    /// ```cpp
    /// weft::once_cell<int> answer;
    /// ```
    once_cell() noexcept = default;
    once_cell(const once_cell&) = delete;
    once_cell& operator=(const once_cell&) = delete;
    ~once_cell() {
        if (m_ready.load(std::memory_order_acquire)) {
            m_storage.get()->~T();
        }
    }

    /// The value, initialising it with `init()` (a callable returning a
    /// weft::task<T>) if nobody has; see the class comment.
    ///
    /// ```cpp
    /// config& c = co_await cell.get_or_init([] { return load_config(); });
    /// ```
    template <class F>
    [[nodiscard]] init_awaiter<F> get_or_init(F init) {
        return init_awaiter<F>(*this, std::move(init));
    }

    /// True once the value is set.
    ///
    /// ```cpp
    /// if (cell.initialized()) { /* ... */ }
    /// ```
    bool initialized() const noexcept {
        // Acquire: pairs with publish()'s release, so the value is visible.
        return m_ready.load(std::memory_order_acquire);
    }

    /// The value, or null if it is not set yet. Any thread.
    ///
    /// ```cpp
    /// if (T* v = cell.get()) { use(*v); }
    /// ```
    T* get() noexcept { return initialized() ? m_storage.get() : nullptr; }

private:
    // The claimer stores the value (nobody else touches the storage while
    // the phase is `running`), then flips the phase and wakes the waiters.
    T* publish(T&& value) {
        T* out = ::new (static_cast<void*>(m_storage.bytes)) T(std::move(value));
        m_lock.lock();
        m_phase = phase::ready;
        // Release: pairs with initialized()'s acquire; the value travels with it.
        m_ready.store(true, std::memory_order_release);
        detail::fire_all(m_lock, m_waiters, 1);
        return out;
    }

    // The initializer failed or was cancelled: empty again, waiters retry.
    void abandon() noexcept {
        m_lock.lock();
        m_phase = phase::empty;
        detail::fire_all(m_lock, m_waiters, 1);
    }

    detail::spinlock m_lock;
    detail::wait_list m_waiters;
    phase m_phase = phase::empty;
    std::atomic<bool> m_ready{false};
    detail::value_storage<T> m_storage;
};

} // namespace weft
