// tests/model/model_task.hpp
//
// What it is for: a task that waits on a weft sync primitive, for the
// models of the wait protocols (detail/wait_list.hpp and the protocols
// built on it). The header is a model one (its state word a Relacy atomic);
// what is done to it is weft's own code: ref_inc / ref_dec and the
// transitions of task_cell.hpp, suspend_until / resume_target / wake of
// scheduler.hpp. What is transcribed is the worker around it: one Relacy
// thread runs one task, and a poll of it is poll_task's path (to running,
// resume_target, back to idle), with a modelled run queue (a flag and a
// futex, as in task_state_model.cpp) between a wake's submit and the poll.
// A wake nobody delivers leaves the thread asleep in the futex: Relacy
// reports a deadlock.
//
// Include after relacy_policy.hpp.
#pragma once

#include <coroutine>
#include <cstdint>

#include <weft/detail/scheduler.hpp>
#include <weft/detail/task_cell.hpp>

namespace weft::model {

struct model_task;

using policy_atomic_word = relacy_policy::atomic<std::uint32_t>;

/// The executor of model tasks: what wake() submits through (task->owner).
struct model_executor {
    void schedule(model_task* task);
};

struct model_task {
    policy_atomic_word state{0};
    // What suspend_until sets and resume_target reads (only the task's own
    // thread touches them, as only the polling worker does).
    std::coroutine_handle<> resume_point;
    const policy_atomic_word* wait_word = nullptr;
    std::uint32_t wait_mask = 0;
    detail::cancel_scope* scopes = nullptr; // no timeout scopes in the models
    model_executor* owner = nullptr;
    policy_atomic_word queued{0}; // the modelled run queue: submitted, not yet taken
    // Bookkeeping (plain; one fiber runs at a time).
    int frees = 0;
    int schedules = 0;
    int stale_polls = 0;

    /// The task as its worker polls it: frame and running references, plus
    /// `extra` references that other actors hold (a stale waker's).
    void start(model_executor& executor, std::uint32_t extra) {
        state.store((2 + extra) * detail::task_state::ref_one | detail::task_state::running,
                    std::memory_order_relaxed);
        queued.store(0, std::memory_order_relaxed);
        owner = &executor;
        resume_point = nullptr;
        wait_word = nullptr;
        wait_mask = 0;
        frees = schedules = stale_polls = 0;
    }

    /// The awaiter returned true (suspend): the poll ends, and the worker
    /// polls the task each time it is queued, until a poll resumes it.
    void suspend() {
        for (;;) {
            if (detail::transition_to_idle<model_task>(this) == detail::idle_action::done) {
                while (queued.exchange(0, std::memory_order_acquire) == 0) {
                    relacy_policy::futex_wait(&queued, 0);
                }
            }
            RL_ASSERT(detail::transition_to_running<model_task>(this) == detail::run_action::poll);
            if (detail::resume_target<model_task>(this)) {
                return;
            }
            ++stale_polls; // woken, but what it waits for has not happened
        }
    }

    /// The task's body returns: it completes, its frame goes, its poll ends.
    void finish() {
        detail::transition_to_complete<model_task>(this);
        detail::ref_dec<model_task>(this);
        RL_ASSERT(detail::transition_to_idle<model_task>(this) == detail::idle_action::done);
    }
};

inline void model_executor::schedule(model_task* task) {
    ++task->schedules;
    RL_ASSERT(task->queued.exchange(1, std::memory_order_release) == 0); // one submit at a time
    relacy_policy::futex_wake(&task->queued, 1);
}

/// What task_cell.hpp's ref_dec calls on the last reference (found by ADL).
inline void free_block(model_task* task) { ++task->frees; }

/// The wait protocols' traits for model tasks.
struct model_sync_traits {
    using policy = relacy_policy;
    using header = model_task;
};

/// What an awaiter passes as the coroutine to resume (never resumed here).
inline std::coroutine_handle<> awaiting_coroutine() noexcept { return std::noop_coroutine(); }

} // namespace weft::model
