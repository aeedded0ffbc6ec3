// weft/detail/scheduler.hpp
//
// What it is for: the small, non-template surface between tasks and the
// executor that runs them, so that awaitables and free functions
// (weft::spawn, yield_now, join) work without knowing the executor's
// template arguments (as tokio::spawn finds its runtime through a
// thread-local).
//
//   - `scheduler`: what a task needs from its executor (bind it, wake it,
//     forget it). One virtual call per operation.
//   - `thread_context`: the thread-local that says which executor this
//     thread works for (if it is a worker), which task it is polling, and
//     how much of that task's budget is left.
//   - wake() and complete_task(): the task-side halves of scheduling and of
//     finishing, built on the state machine in task_cell.hpp.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <utility>

#include "fork.hpp"
#include "futex.hpp"
#include "handlers.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// A counter with a single writer: increments are a load and a store (no
/// RMW), and other threads read it for metrics.
class relaxed_counter {
public:
    /// Adds `n`; returns the new value.
    std::uint64_t add(std::uint64_t n = 1) noexcept {
        const std::uint64_t value = m_value.load(std::memory_order_relaxed) + n;
        m_value.store(value, std::memory_order_relaxed);
        return value;
    }
    std::uint64_t get() const noexcept { return m_value.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> m_value{0};
};

class driver;

class scheduler {
public:
    /// Takes a new task as owned (listed now, or when it first waits in no
    /// queue). False once the executor is shutting down.
    virtual bool bind(task_header* task) noexcept = 0;
    /// Queues a task that was just spawned or woken (it is notified and
    /// holds its queue reference): on one of this scheduler's own workers
    /// into that worker's LIFO slot, from anywhere else into the global queue;
    /// a pinned task (home set) only ever to its own worker.
    virtual void schedule(task_header* task) noexcept = 0;
    /// schedule() for a task just spawned: the same, except that in lifo
    /// order a worker puts it where thieves can take it, not in its slot.
    virtual void schedule_spawned(task_header* task) noexcept { schedule(task); }
    /// Forgets a finished (or cancelled) task.
    virtual void unbind(task_header* task) noexcept = 0;
    /// Workers a task can be pinned to (task_header::home is an index below
    /// this); 0 where tasks cannot be pinned.
    virtual std::uint32_t pinnable_workers() const noexcept = 0;

    /// Raises errc::used_after_fork in a child process forked after this
    /// scheduler was created (see fork.hpp).
    void check_not_forked() const { m_fork.check(); }
    bool forked() const noexcept { return m_fork.forked(); }

protected:
    ~scheduler() = default;

private:
    fork_guard m_fork;
};

struct thread_context {
    scheduler* sched = nullptr;               // set on worker threads only
    void* worker = nullptr;                   // that scheduler's state for this worker
    std::uint32_t worker_index = 0;           // and its index
    task_header* current = nullptr;           // the task being polled, if any
    std::uint32_t budget = 0;                 // operations left before a forced yield
    relaxed_counter* forced_yields = nullptr; // the worker's metric
    std::coroutine_handle<> next;             // trampoline: the coroutine to resume next
    const scheduler* shutting_down = nullptr; // the scheduler whose shutdown this thread runs
    driver* drv = nullptr;                    // that scheduler's I/O and timer driver
    bool yielded = false;                     // the task being polled yielded (see yield_task)
};

// constinit: no dynamic initialisation, so access needs no TLS wrapper call.
constinit inline thread_local thread_context t_context{};

inline bool on_worker_thread() noexcept { return t_context.sched != nullptr; }

// Symmetric transfer (await_suspend returning the next coroutine) must be a
// tail call, or a chain of a million inline awaits grows the stack by a
// million frames. clang guarantees the tail call at every optimisation
// level. g++ makes it only as a sibling-call optimisation (-O2 and up, and
// not under AddressSanitizer), which no macro reveals, so g++ builds use a
// trampoline instead: the awaiter parks the next coroutine in the thread
// context and returns, and the worker's poll loop resumes it.
#if defined(__clang__)
inline constexpr bool use_trampoline = false;
#else
inline constexpr bool use_trampoline = true;
#endif

/// What an await_suspend returns to continue with `next`.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> next) noexcept {
    if constexpr (use_trampoline) {
        if (t_context.current != nullptr) { // inside a worker's poll: it drains `next`
            t_context.next = next;
            return std::noop_coroutine();
        }
    }
    return next;
}

/// Resumes a task's coroutine and, with the trampoline, every coroutine it
/// transfers to, until the task suspends.
inline void resume_task(std::coroutine_handle<> coroutine) {
    coroutine.resume();
    if constexpr (use_trampoline) {
        while (t_context.next) {
            std::exchange(t_context.next, nullptr).resume();
        }
    }
}

/// Suspends `task` at `coroutine` until `(*word & mask) != 0`. Wakes are
/// not exact: a waker may fire after its awaiter is gone (a timeout won the
/// race), and its wake then reaches whatever the task waits on next. So
/// every waker sets its word before it wakes the task, and a poll resumes a
/// task only if the word it waits on says so (resume_target).
///
/// suspend_until, resume_target and wake are templates over the header type
/// (as the transitions of task_cell.hpp), so that tests/model/ runs them
/// with the wait protocols of detail/wait_list.hpp; every caller here uses
/// task_header.
template <class Header = task_header>
inline void suspend_until(header_ptr<Header> task, std::coroutine_handle<> coroutine,
                          decltype(Header::wait_word) word, std::uint32_t mask) noexcept {
    task->resume_point = coroutine;
    task->wait_word = word;
    task->wait_mask = mask;
}

/// What a poll of `task` (which it just made RUNNING) resumes: the handler
/// of the outermost expired timeout scope the task is inside, else its
/// resume point if what it waits for happened, else nothing (a stale wake:
/// the task stays suspended until its real waker comes).
template <class Header = task_header>
inline std::coroutine_handle<> resume_target(header_ptr<Header> task) noexcept {
    cancel_scope* expired = nullptr;
    for (cancel_scope* scope = task->scopes; scope != nullptr; scope = scope->outer) {
        // Acquire: pairs with the timer's release store before its wake.
        if (scope->fired->load(std::memory_order_acquire) != 0) {
            expired = scope;
        }
    }
    if (expired != nullptr) {
        // The coroutines inside the scope are about to be destroyed: forget
        // where the task was suspended, so a late wake resumes nothing.
        task->wait_word = nullptr;
        task->resume_point = nullptr;
        return expired->handler;
    }
    // Acquire: pairs with the waker's release store before its wake (the
    // wake's RMW and transition_to_running order it too, but a coalesced
    // wake may have been consumed by an earlier poll).
    if (task->wait_word != nullptr &&
        (task->wait_word->load(std::memory_order_acquire) & task->wait_mask) == 0) {
        return {};
    }
    task->wait_word = nullptr;
    // Taken: a wake that arrives after this resume (and outlives its
    // awaiter) finds nothing to resume until the task suspends again.
    return std::exchange(task->resume_point, nullptr);
}

/// Spends one unit of the current task's budget. False when it is used up:
/// the caller must yield (suspend, self-notify) even if it could proceed,
/// so one task cannot monopolise its worker.
inline bool consume_budget() noexcept {
    if (t_context.current == nullptr) {
        return true; // not inside a weft task: no budget applies
    }
    if (t_context.budget == 0) {
        return false;
    }
    --t_context.budget;
    return true;
}

/// Counts a yield the budget forced (the worker's metric).
inline void count_forced_yield() noexcept {
    if (t_context.forced_yields != nullptr) {
        t_context.forced_yields->add();
    }
}

/// The running task (the caller) suspends at `coroutine` and is woken by
/// itself, marked as a yield: its worker defers it (Tokio's defer list)
/// until it has nothing else to run, or until its next maintenance tick,
/// so that a task yielding in a loop does not keep the local queue
/// non-empty and the global queue behind it.
inline void yield_task(task_header* task, std::coroutine_handle<> coroutine) noexcept {
    suspend_until(task, coroutine, nullptr, 0);
    self_notify(task);
    t_context.yielded = true;
}

/// An operation is ready but the current task's budget is spent: the task
/// suspends at `coroutine` and yields (yield_task).
///
/// A timeout that expires during this yield (or an abort) destroys the
/// awaiter before it resumes, and weft::timeout then reports timed_out: an
/// awaiter whose operation already took effect must undo it in its
/// destructor (give the permit back, pass the notification on), or, where
/// it cannot be undone (a value sent), yield before it takes effect.
inline void forced_yield(task_header* task, std::coroutine_handle<> coroutine) noexcept {
    count_forced_yield();
    yield_task(task, coroutine);
}

/// An awaiter that can complete without suspending: spends one unit of
/// budget and returns false (resume at once) or, with the budget spent,
/// yields and returns true (the await_suspend result either way).
inline bool complete_or_yield(task_header* self, std::coroutine_handle<> awaiting) noexcept {
    if (consume_budget()) {
        return false;
    }
    forced_yield(self, awaiting);
    return true;
}

/// complete_or_yield for an await_suspend that returns a coroutine: the
/// awaiting one (through transfer_to, so g++ builds do not nest a resume)
/// or, with the budget spent, none.
inline std::coroutine_handle<> continue_or_yield(task_header* self,
                                                 std::coroutine_handle<> awaiting) noexcept {
    return complete_or_yield(self, awaiting) ? std::noop_coroutine() : transfer_to(awaiting);
}

/// Wakes a task, consuming the caller's reference to it.
template <class Header = task_header>
inline void wake(header_ptr<Header> task) noexcept {
    if (transition_to_notified<Header>(task) == wake_action::submit) {
        task->owner->schedule(task);
    }
}

/// A spawned task finished (its frame is already destroyed) or was
/// cancelled. Publishes the output to the joiner, or disposes of it if
/// nobody will ever join. `drop_frame_ref`: see transition_to_complete.
inline void complete_task(task_header* task, bool drop_frame_ref = false) noexcept {
    task->owner->unbind(task);
    const std::uint32_t prev = transition_to_complete(task, drop_frame_ref);
    if ((prev & task_state::join_interest) == 0) {
        // Nobody can observe the output: an exception must not vanish.
        if (task->output == output_kind::exception) {
            report_unhandled_exception(task->exception);
        }
        drop_output(task);
        return;
    }
    if ((prev & task_state::join_waker) != 0) {
        // Set before COMPLETE and never touched by the joiner since.
        task_header* waiter = task->join_waker_task;
        task->join_waker_task = nullptr;
        wake(waiter);
    }
    if ((prev & task_state::thread_waiter) != 0) {
        futex_wake_all(&task->state);
    }
}

/// Destroys a task's coroutines without resuming them (abort, shutdown),
/// then completes it as cancelled. The caller holds the running reference.
inline void cancel_task(task_header* task) noexcept {
    task_header* const outer = t_context.current;
    t_context.current = task; // destructors that spawn or wake see their task
    root_of(task).destroy();
    t_context.current = outer;
    // After the destroy: promise operator delete drops the frame's
    // reference itself only while the output is still none.
    task->output = output_kind::cancelled;
    complete_task(task);
}

/// Runs a task the caller took from a queue (it holds the queue's
/// reference): destroys it if it was cancelled, else resumes what it waits
/// for (nothing, if the wake was stale). Returns whether it must be queued
/// again (it was woken while it ran). `before_idle(task)` runs when the
/// task may be about to wait in no queue (it neither finished nor was
/// woken while it ran), before anyone else can wake it.
template <class BeforeIdle>
inline idle_action poll_task(task_header* task, BeforeIdle&& before_idle) noexcept {
    if (transition_to_running(task) == run_action::cancel) {
        cancel_task(task);
    } else if (const std::coroutine_handle<> target = resume_target(task)) {
        task_header* const outer = t_context.current;
        t_context.current = task;
        resume_task(target);
        t_context.current = outer;
    }
    // Relaxed: COMPLETE is set by the runner alone (this thread); a wake
    // that lands after this load only makes the call unnecessary.
    if ((task->state.load(std::memory_order_relaxed) & (task_state::complete | task_state::notified)) == 0) {
        before_idle(task);
    }
    return transition_to_idle(task);
}

inline idle_action poll_task(task_header* task) noexcept {
    return poll_task(task, [](task_header*) noexcept {});
}

} // namespace weft::detail
