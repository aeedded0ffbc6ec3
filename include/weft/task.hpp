// weft/task.hpp: coroutine tasks and the handles that join them.
//
// `weft::task<T>` is a lazy coroutine: nothing runs until it is awaited or
// spawned. `co_await child()` runs the child inline on the current worker by
// symmetric transfer: no scheduling, no allocation beyond its frame, and no
// stack growth however deep the chain. `weft::spawn(child())` makes it a
// separate, stealable task and returns a `join_handle<T>`.
//
// ```cpp
// weft::task<int> twice(int x) { co_return 2 * x; }
// weft::task<int> parent() {
//     int a = co_await twice(1);          // inline
//     auto h = weft::spawn(twice(20));    // concurrent
//     co_return a + co_await h;           // 42
// }
// ```
#pragma once

#include <cassert>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "detail/futex.hpp"
#include "detail/scheduler.hpp"
#include "detail/task_cell.hpp"
#include "error.hpp"

namespace weft {

template <class T = void>
class task;

namespace detail {

/// Moves a result out: the value, or the exception rethrown, or an error
/// if there is none (aborted, or already taken). Shared by inline awaits
/// (the promise's slot) and joins (the cell).
template <class T>
T take_result(output_kind& kind, std::exception_ptr& exception, value_storage<T>& storage) {
    switch (kind) {
    case output_kind::value:
        if constexpr (std::is_void_v<T>) {
            kind = output_kind::none;
            return;
        } else {
            // If the move throws, the value stays (kind and all) and is
            // destroyed with its slot.
            T value = std::move(*storage.get());
            storage.get()->~T();
            kind = output_kind::none;
            return value;
        }
    case output_kind::exception: {
        kind = output_kind::none;
        std::exception_ptr error = std::exchange(exception, nullptr);
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
        std::rethrow_exception(error);
#else
        panic(0, "a task's exception reached a build without exceptions");
#endif
    }
    case output_kind::cancelled:
        raise(errc::task_aborted, "the task was aborted (or destroyed by shutdown) before it finished, "
                                  "so it has no result; check is_finished() or handle errc::task_aborted");
    case output_kind::none: break;
    }
    raise(errc::invalid_handle, "the task's result was already taken");
}

/// Raises the error for a task that holds no coroutine: capacity_exhausted
/// if its frame could not be allocated, else invalid_handle with `misuse`.
[[noreturn]] inline void raise_empty_task(bool allocation_failed, const char* misuse) {
    if (allocation_failed) {
        raise(errc::capacity_exhausted,
              "no memory for a weft::task's coroutine frame: its size class of the executor's frame pool is "
              "used up (Options::frame_pool_classes; Options::on_frame_pool_exhausted is fail), or the heap "
              "is exhausted");
    }
    raise(errc::invalid_handle, misuse);
}

template <class T>
T take_output(task_header* header) {
    return take_result<T>(header->output, header->exception, static_cast<task_cell<T>*>(header)->storage);
}

template <class T>
class promise_base {
    static_assert(
        std::is_void_v<T> || std::is_nothrow_destructible_v<T>,
        "weft::task<T>: T's destructor must not throw: a result may be destroyed where no exception "
        "can go (a detached task's, one dropped at shutdown)");

public:
    promise_base() = default;
    promise_base(const promise_base&) = delete;
    promise_base& operator=(const promise_base&) = delete;
    ~promise_base() {
        if constexpr (!std::is_void_v<T>) {
            if (m_kind == output_kind::value) {
                m_storage.get()->~T();
            }
        }
    }

    // ---- allocation: one block, the cell in front of the frame --------------

    // From this thread's frame pool or the heap (frame_pool.hpp). Null when
    // there is no memory (the pool is exhausted and set to fail, or the heap
    // is): the call of the coroutine function then returns an empty task
    // (get_return_object_on_allocation_failure), which spawn and co_await
    // report as errc::capacity_exhausted.
    static void* operator new(std::size_t frame_size) noexcept {
        static_assert(
            alignof(task_cell<T>) <= frame_alignment,
            "weft::task<T> supports result types aligned to at most __STDCPP_DEFAULT_NEW_ALIGNMENT__");
        constexpr std::size_t prefix = cell_prefix<T>;
        const frame_block block = allocate_frame(prefix + frame_size);
        if (block.memory == nullptr) {
            return nullptr;
        }
        auto* cell = ::new (block.memory) task_cell<T>();
        cell->block_origin = block.origin;
        cell->frame_offset = static_cast<std::uint32_t>(prefix);
        cell->drop_value = &drop_value_of<T>;
        return frame_of(cell, prefix);
    }

    static task<T> get_return_object_on_allocation_failure() noexcept;

    // Called when the coroutine is destroyed: the frame's reference goes
    // (now, or with the completion); the block stays while a join handle,
    // queue or waker still holds one.
    static void operator delete(void* frame, std::size_t) noexcept {
        task_cell<T>* cell = cell_of_frame<T>(frame);
        if (cell->owner == nullptr) {
            // Never spawned (awaited inline, or dropped): no other thread
            // knows the block and the frame's reference is its only one, so
            // no locked instruction. Half of fib's coroutines are these.
            assert(cell->state.load(std::memory_order_relaxed) == task_state::ref_one);
            free_block(cell);
        } else if (cell->output == output_kind::none) {
            ref_dec(cell); // cancelled (cancel_task sets `cancelled` only after this)
        }                  // else the body returned its output: complete_task drops the reference
    }

    // ---- the coroutine protocol ------------------------------------------------

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct final_awaiter {
        bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
            promise_base& promise = self.promise();
            if (promise.m_continuation) {
                return transfer_to(promise.m_continuation); // inline child: back to the parent
            }
            if (task_cell<T>* cell = promise.m_cell) {
                // The output is in the cell already: destroy the frame now,
                // so the task's arguments are gone by the time it reports done.
                // The frame's reference goes with the completion, in one step
                // (operator delete sees the output and leaves it).
                self.destroy();
                complete_task(cell, true);
            }
            return std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }

    void unhandled_exception() noexcept {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
        slot_ref out = slot();
        out.exception = std::current_exception();
        out.kind = output_kind::exception;
#else
        std::terminate();
#endif
    }

    void set_continuation(std::coroutine_handle<> parent) noexcept { m_continuation = parent; }
    /// Spawned tasks write their result straight into their cell, which
    /// outlives the frame; null undoes it (a spawn that failed).
    void set_spawned(task_cell<T>* cell) noexcept { m_cell = cell; }
    T take_result() { return detail::take_result<T>(m_kind, m_exception, m_storage); }

protected:
    // Where the result goes: the cell of a spawned task, else the promise.
    struct slot_ref {
        output_kind& kind;
        std::exception_ptr& exception;
        value_storage<T>& storage;
    };
    slot_ref slot() noexcept {
        if (m_cell != nullptr) {
            return {m_cell->output, m_cell->exception, m_cell->storage};
        }
        return {m_kind, m_exception, m_storage};
    }

    std::coroutine_handle<> m_continuation;
    task_cell<T>* m_cell = nullptr; // set while spawned
    output_kind m_kind = output_kind::none;
    std::exception_ptr m_exception;
    value_storage<T> m_storage;
};

template <class T>
class promise final : public promise_base<T> {
public:
    task<T> get_return_object() noexcept;

    // Two overloads rather than a forwarding template: a `co_return` of
    // another type converts at the co_return, as a `return` would.
    void return_value(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>) {
        auto out = this->slot();
        ::new (static_cast<void*>(out.storage.bytes)) T(value);
        out.kind = output_kind::value;
    }
    void return_value(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) {
        auto out = this->slot();
        ::new (static_cast<void*>(out.storage.bytes)) T(std::move(value));
        out.kind = output_kind::value;
    }
};

template <>
class promise<void> final : public promise_base<void> {
public:
    task<void> get_return_object() noexcept;
    void return_void() noexcept { slot().kind = output_kind::value; }
};

} // namespace detail

/// A lazy coroutine producing a T (or nothing, for task<void>). Move-only;
/// destroying a task that never ran destroys its frame.
template <class T>
class [[nodiscard]] task {
    static_assert(!std::is_reference_v<T>, "weft::task<T&> is not supported: return a pointer or a value");

public:
    /// The coroutine promise (what makes a function returning task<T> a coroutine).
    using promise_type = detail::promise<T>;
    /// What the task produces.
    using value_type = T;

    task() noexcept = default;
    task(task&& other) noexcept
        : m_handle(std::exchange(other.m_handle, nullptr)),
          m_allocation_failed(std::exchange(other.m_allocation_failed, false)) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            destroy();
            m_handle = std::exchange(other.m_handle, nullptr);
            m_allocation_failed = std::exchange(other.m_allocation_failed, false);
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { destroy(); }

    /// True if this task holds a coroutine (it was not moved from or
    /// spawned, and its frame could be allocated).
    bool valid() const noexcept { return static_cast<bool>(m_handle); }

    /// True if this task is empty because no memory was left for its
    /// coroutine frame: its class of the executor's frame pool was used up
    /// with `Options::on_frame_pool_exhausted = weft::pool_exhaustion::fail`,
    /// or the heap was. Spawning or awaiting it raises
    /// errc::capacity_exhausted; the coroutine's arguments were never copied.
    ///
    /// ```cpp
    /// weft::task<> t = work();
    /// if (t.frame_allocation_failed()) { /* shed load instead of spawning */ }
    /// ```
    bool frame_allocation_failed() const noexcept { return m_allocation_failed; }

    /// Runs the task inline in the awaiting coroutine (symmetric transfer).
    auto operator co_await() && noexcept {
        struct awaiter {
            std::coroutine_handle<promise_type> child;
            bool allocation_failed;
            bool await_ready() const noexcept { return !child; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
                child.promise().set_continuation(parent);
                return detail::transfer_to(child);
            }
            T await_resume() {
                if (!child) {
                    detail::raise_empty_task(allocation_failed,
                                             "co_await on an empty weft::task (moved from or spawned)");
                }
                return child.promise().take_result();
            }
        };
        return awaiter{m_handle, m_allocation_failed};
    }

    /// For spawn: hands the coroutine over; the task becomes empty.
    std::coroutine_handle<promise_type> release() noexcept { return std::exchange(m_handle, nullptr); }
    /// Undoes release() when a spawn fails, so the frame is not leaked.
    void reclaim(std::coroutine_handle<promise_type> handle) noexcept { m_handle = handle; }

private:
    friend class detail::promise<T>;
    friend class detail::promise_base<T>;
    explicit task(std::coroutine_handle<promise_type> handle) noexcept : m_handle(handle) {}

    void destroy() noexcept {
        if (m_handle) {
            std::exchange(m_handle, nullptr).destroy();
        }
    }

    std::coroutine_handle<promise_type> m_handle;
    bool m_allocation_failed = false;
};

namespace detail {
template <class T>
task<T> promise_base<T>::get_return_object_on_allocation_failure() noexcept {
    task<T> empty;
    empty.m_allocation_failed = true;
    return empty;
}

template <class T>
task<T> promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}

/// Makes a released task's coroutine a spawned task of `owner`: the cell in
/// front of its frame (allocated by the promise's operator new; the handle
/// escapes, so no compiler may elide it) takes its result, and holds three
/// references (the frame's, the join handle's, the queue's) and NOTIFIED.
/// Before the owner sees it: once listed, a concurrent shutdown may destroy
/// the frame.
template <class T>
task_cell<T>* adopt_spawned(std::coroutine_handle<promise<T>> handle, scheduler& owner) noexcept {
    task_cell<T>* cell = cell_of_frame<T>(handle.address());
    cell->owner = &owner;
    cell->resume_point = handle;
    handle.promise().set_spawned(cell);
    // Relaxed: no other thread knows the task yet; the owner's lock (bind,
    // queue push) publishes it.
    cell->state.store(3 * task_state::ref_one | task_state::notified | task_state::join_interest,
                      std::memory_order_relaxed);
    return cell;
}

/// Undoes adopt_spawned when the owner refused the task: only the frame's
/// reference is left, and the result goes to the promise again, so the
/// caller can reclaim and destroy the task.
template <class T>
void unadopt_spawned(std::coroutine_handle<promise<T>> handle, task_cell<T>* cell) noexcept {
    cell->state.store(task_state::ref_one, std::memory_order_relaxed); // still private to this thread
    handle.promise().set_spawned(nullptr);
}
} // namespace detail

/// The handle to a spawned task: await it (`co_await h`) or wait for it from
/// a thread outside the executor (`h.get()`) to get the task's value or its
/// exception; `detach()` to let it run on its own; `abort()` to cancel it.
/// Dropping the handle detaches the task. Move-only; joining consumes it.
/// Like any object, one handle is used from one place at a time; two tasks
/// awaiting the same handle get errc::invalid_handle.
template <class T>
class [[nodiscard]] join_handle {
public:
    join_handle() noexcept = default;
    /// Takes over the join reference of `task` (for spawn: users get handles from it).
    explicit join_handle(detail::task_header* task) noexcept : m_task(task) {}
    join_handle(join_handle&& other) noexcept : m_task(std::exchange(other.m_task, nullptr)) {}
    join_handle& operator=(join_handle&& other) noexcept {
        if (this != &other) {
            reset();
            m_task = std::exchange(other.m_task, nullptr);
        }
        return *this;
    }
    join_handle(const join_handle&) = delete;
    join_handle& operator=(const join_handle&) = delete;
    ~join_handle() { reset(); }

    /// True while the handle refers to a task (not joined, detached or moved).
    bool valid() const noexcept { return m_task != nullptr; }

    /// True once the task has finished: returned, thrown, or been aborted.
    bool is_finished() const noexcept {
        // Acquire: pairs with the completer's acq_rel that set `complete`,
        // so a caller that sees true also sees the output.
        return m_task != nullptr &&
               (m_task->state.load(std::memory_order_acquire) & detail::task_state::complete) != 0;
    }

    /// Cancels the task: if it has not started it never runs; if it is
    /// suspended its coroutines are destroyed (destructors run) without
    /// resuming; if it is running it is destroyed at its next suspension.
    /// Joining an aborted task raises errc::task_aborted. No effect on a
    /// finished task.
    void abort() noexcept {
        if (m_task != nullptr && detail::transition_to_cancelled(m_task) == detail::wake_action::submit) {
            m_task->owner->schedule(m_task);
        }
    }

    /// Lets the task run on its own; an exception it throws goes to the
    /// unhandled-exception handler. The handle becomes empty.
    void detach() noexcept { reset(); }

    /// Blocks the calling thread until the task finishes; returns its value
    /// or rethrows its exception. Not on a worker thread (it would block the
    /// worker): there, `co_await` the handle instead.
    T get() {
        check_valid();
        if (detail::on_worker_thread()) {
            detail::raise(errc::blocking_on_worker,
                          "join_handle::get() would block a worker thread and stall every task queued on it: "
                          "co_await the handle instead");
        }
        std::uint32_t state =
            m_task->state.fetch_or(detail::task_state::thread_waiter, std::memory_order_acq_rel) |
            detail::task_state::thread_waiter;
        if ((state & detail::task_state::complete) == 0) {
            m_task->owner->check_not_forked(); // nothing would ever complete it in a child process
        }
        while ((state & detail::task_state::complete) == 0) {
            detail::futex_wait(&m_task->state, state);
            state = m_task->state.load(std::memory_order_acquire);
        }
        return take();
    }

    /// Awaits the task's result from inside another task.
    auto operator co_await() & noexcept { return awaiter{*this}; }
    auto operator co_await() && noexcept { return awaiter{*this}; }

private:
    struct awaiter {
        join_handle& handle;
        bool registered = false;

        awaiter(join_handle& h) noexcept : handle(h) {}
        awaiter(const awaiter&) = delete;
        awaiter& operator=(const awaiter&) = delete;
        ~awaiter() {
            // Destroyed while suspended: the awaiting task was cancelled.
            // Take the waker back so the joined task does not hold a
            // reference to it until it finishes.
            if (registered) {
                if (detail::task_header* waiter = detail::unset_join_waker(handle.m_task)) {
                    detail::ref_dec(waiter);
                }
            }
        }

        bool await_ready() {
            handle.check_valid();
            return handle.is_finished() && detail::consume_budget();
        }

        bool await_suspend(std::coroutine_handle<> awaiting) {
            detail::task_header* self = detail::t_context.current;
            if (self == nullptr) {
                detail::raise(errc::no_current_executor,
                              "a join_handle can only be awaited inside a task run by a weft executor; "
                              "outside one, call get()");
            }
            if (handle.is_finished()) {
                return detail::complete_or_yield(self, awaiting); // it finished since await_ready
            }
            detail::ref_inc(self);
            // Before the waker is published: the completer may wake us at once.
            detail::suspend_until(self, awaiting, &handle.m_task->state, detail::task_state::complete);
            switch (detail::set_join_waker(handle.m_task, self)) {
            case detail::join_register::registered: registered = true; return true;
            case detail::join_register::completed:
                // Finished meanwhile: resume at once, and leave no wait word
                // pointing into a task that take() may free.
                detail::suspend_until(self, nullptr, nullptr, 0);
                detail::ref_dec(self);
                return false;
            case detail::join_register::busy: break;
            }
            detail::suspend_until(self, nullptr, nullptr, 0);
            detail::ref_dec(self);
            detail::raise(errc::invalid_handle, "this join_handle is already being awaited by another task; "
                                                "a task can be joined once, by one awaiter");
        }

        T await_resume() {
            registered = false;
            return handle.take();
        }
    };

    void check_valid() const {
        if (m_task == nullptr) {
            detail::raise(errc::invalid_handle,
                          "this join_handle is empty: it was already joined, detached, or "
                          "moved from; a task can be joined once");
        }
    }

    // Consumes the handle: moves the output out, drops our reference.
    T take() {
        detail::task_header* task = std::exchange(m_task, nullptr);
        struct release_guard {
            detail::task_header* task;
            ~release_guard() {
                detail::drop_join_interest(task);
                detail::ref_dec(task);
            }
        } guard{task};
        return detail::take_output<T>(task);
    }

    void reset() noexcept {
        detail::task_header* task = std::exchange(m_task, nullptr);
        if (task == nullptr) {
            return;
        }
        if (detail::drop_join_interest(task)) {
            // Finished and never joined: its output is ours to dispose of,
            // and an exception in it must not vanish.
            if (task->output == detail::output_kind::exception) {
                detail::report_unhandled_exception(task->exception);
            }
            detail::drop_output(task);
        }
        detail::ref_dec(task);
    }

    detail::task_header* m_task = nullptr;
};

} // namespace weft
