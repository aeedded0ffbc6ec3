// tests/model/task_state_model.cpp
//
// The task state machine of task_cell.hpp (transition_to_running / idle /
// notified / cancelled / complete, join interest, the join waker, the
// reference count) under Relacy: the real transition functions, run on a
// model header whose state word is a Relacy atomic and whose output and
// join-waker fields are checked variables. What calls them is transcribed:
// poll_task, cancel_task, complete_task and wake from scheduler.hpp, and
// join_handle's awaiter, take(), abort() and reset() from task.hpp.
//
// The actors:
//   runner   the worker running task T: polls it whenever it is queued. T's
//            body waits for `ready` (set by the waker before its wake, as
//            every weft waker sets its word first), then returns a value.
//   waker    sets `ready` and wakes T with the reference it holds.
//   aborter  join_handle::abort() on T.
//   joiner   task J awaiting T's join handle (await_ready, await_suspend
//            registering J as the join waker, resumed by T's completion,
//            then take()); or, in (c), a thread dropping the handle.
// A modelled run queue per task (a flag and a futex) carries the submit
// of a wake to that task's runner.
//
// Properties, checked in after():
//   - T's output (a value, or "cancelled" if the abort won) is delivered to
//     the joiner exactly once, or, with the handle dropped, a value is
//     disposed of exactly once;
//   - the joiner is scheduled at most once and, once registered, resumed
//     exactly once (a missed wake leaves it blocked: a deadlock);
//   - each task's reference count reaches zero exactly once (and never
//     goes below, which ref_dec asserts).
// Scenarios: (a) join: runner, waker, joiner; (b) join + abort: runner,
// waker, aborter, joiner; (c) detach + abort: runner, waker, aborter,
// handle dropper.
//
// Usage: task_state_model [iterations] [small-bound] [wide-bound]
//   iterations   random-scheduler iterations per scenario (default 300000)
//   small-bound  context bound of the systematic run of (a) (default 2)
//   wide-bound   context bound of the systematic runs of (b), (c) (default 1)
// The defaults take about 50 s on a busy 2-core machine; `task_state_model 1000000 2 1` about
// 20 CPU seconds (2.5 minutes of wall time).
//
// Built with -DWEFT_MODEL_SEEDED_BUG, transition_to_complete's acq_rel is
// weakened to acquire, so completion no longer publishes the output; that
// build must fail (registered with WILL_FAIL).
#undef NDEBUG

#include <array>
#include <cstddef>
#include <cstdint>
#include <iostream>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include <weft/detail/task_cell.hpp>

namespace {

using policy = weft::model::relacy_policy;
namespace ts = weft::detail::task_state;
using weft::detail::idle_action;
using weft::detail::join_register;
using weft::detail::run_action;
using weft::detail::wake_action;

enum output : int { none, value, cancelled };

struct model_task {
    policy::atomic<std::uint32_t> state{0};
    weft::model::checked_link<model_task> join_waker_task;
    policy::cell<int> output{none};
    policy::atomic<std::uint32_t> queued{0}; // the modelled run queue: submitted, not yet taken
    // Bookkeeping (plain; one fiber runs at a time).
    int frees = 0;
    int values_dropped = 0;
    int schedules = 0;
};

// What task_cell.hpp's ref_dec calls on the last reference (found by ADL).
void drop_output(model_task* task) {
    if (task->output.load() == value) {
        ++task->values_dropped;
    }
    task->output.store(none);
}

void free_block(model_task* task) {
    drop_output(task);
    ++task->frees;
}

struct coverage {
    std::uint64_t values = 0;     // the joiner got T's value
    std::uint64_t cancelled = 0;  // the joiner got "cancelled"
    std::uint64_t registered = 0; // the joiner registered its waker and was woken
    std::uint64_t requeued = 0;   // T was woken while running and polled again
};
coverage g_coverage;

template <class Scenario>
struct task_model : rl::test_suite<task_model<Scenario>, Scenario::thread_count> {
    model_task t; // the joined task
    model_task j; // the joining task
    policy::atomic<std::uint32_t> ready{0};

    int delivered = 0;
    int delivered_kind = none;
    bool t_completed = false;
    bool value_made = false;

    void before() {
        policy::limit_operations_per_iteration(5000);
        // T as spawn leaves it (adopt_spawned), plus the waker's reference:
        // frame, join handle, queue, waker.
        t.state.store(4 * ts::ref_one | ts::notified | ts::join_interest, std::memory_order_relaxed);
        t.queued.store(1, std::memory_order_relaxed); // the runner holds the queue's reference
        // J is running (the joiner polls it): frame and running references.
        j.state.store(2 * ts::ref_one | ts::running, std::memory_order_relaxed);
    }

    void thread(unsigned index) { Scenario::thread(*this, index); }

    void after() {
        RL_ASSERT(t_completed);
        RL_ASSERT(t.frees == 1);
        RL_ASSERT(j.frees == 1);
        RL_ASSERT(j.schedules <= 1);
        if (Scenario::joins) {
            RL_ASSERT(delivered == 1);
            RL_ASSERT(t.values_dropped == 0);
        } else {
            RL_ASSERT(delivered == 0);
            // A value, if one was made, was disposed of exactly once.
            RL_ASSERT(t.values_dropped == (value_made ? 1 : 0));
        }
    }

    // ---- the modelled scheduler ------------------------------------------------

    void schedule(model_task& task) {
        ++task.schedules;
        RL_ASSERT(task.queued.exchange(1, std::memory_order_release) == 0); // one submit at a time
        policy::futex_wake(&task.queued, 1);
    }

    void take_from_queue(model_task& task) {
        while (task.queued.exchange(0, std::memory_order_acquire) == 0) {
            policy::futex_wait(&task.queued, 0);
        }
    }

    // scheduler.hpp's wake: consumes the caller's reference.
    void wake(model_task* task) {
        if (weft::detail::transition_to_notified<model_task>(task) == wake_action::submit) {
            schedule(*task);
        }
    }

    // scheduler.hpp's complete_task (unbind and the thread waiter left out).
    void complete_task(model_task* task, bool drop_frame_ref = false) {
        t_completed = true;
        const std::uint32_t prev = weft::detail::transition_to_complete<model_task>(task, drop_frame_ref);
        if ((prev & ts::join_interest) == 0) {
            drop_output(task);
            return;
        }
        if ((prev & ts::join_waker) != 0) {
            model_task* waiter = task->join_waker_task;
            task->join_waker_task = nullptr;
            wake(waiter);
        }
    }

    // ---- the actors --------------------------------------------------------------

    // The worker that runs T: poll_task each time T is queued.
    void runner() {
        take_from_queue(t);
        for (;;) {
            if (weft::detail::transition_to_running<model_task>(&t) == run_action::cancel) {
                // cancel_task: the frame goes (its reference with it), then completion.
                weft::detail::ref_dec<model_task>(&t);
                t.output.store(cancelled);
                complete_task(&t);
            } else if (ready.load(std::memory_order_acquire) != 0) {
                // T's body returns: result into the cell, frame destroyed,
                // complete; the frame's reference goes with the completion.
                t.output.store(value);
                value_made = true;
                complete_task(&t, true);
            } // else: not ready yet, T stays suspended
            if (weft::detail::transition_to_idle<model_task>(&t) == idle_action::reschedule) {
                ++g_coverage.requeued;
                continue;
            }
            if (t_completed) {
                return;
            }
            take_from_queue(t);
        }
    }

    void waker() {
        ready.store(1, std::memory_order_release);
        wake(&t);
    }

    // join_handle::abort.
    void aborter() {
        if (weft::detail::transition_to_cancelled<model_task>(&t) == wake_action::submit) {
            schedule(t);
        }
    }

    // join_handle::take: the output, then the guard's drop_join_interest and ref_dec.
    void take() {
        const int out = t.output.load();
        RL_ASSERT(out == value || out == cancelled);
        t.output.store(none);
        ++delivered;
        delivered_kind = out;
        ++(out == value ? g_coverage.values : g_coverage.cancelled);
        weft::detail::drop_join_interest<model_task>(&t);
        weft::detail::ref_dec<model_task>(&t);
    }

    bool is_finished() { return (t.state.load(std::memory_order_acquire) & ts::complete) != 0; }

    // J finishes: completes (nobody joins J), its frame goes, its run ends.
    void finish_joiner() {
        weft::detail::transition_to_complete<model_task>(&j);
        weft::detail::ref_dec<model_task>(&j);
        RL_ASSERT(weft::detail::transition_to_idle<model_task>(&j) == idle_action::done);
    }

    // Task J: co_await on T's join handle.
    void joiner() {
        if (is_finished()) { // await_ready
            take();
            finish_joiner();
            return;
        }
        // await_suspend
        weft::detail::ref_inc<model_task>(&j);
        switch (weft::detail::set_join_waker<model_task>(&t, &j)) {
        case join_register::completed:
            weft::detail::ref_dec<model_task>(&j);
            take();
            finish_joiner();
            return;
        case join_register::busy: RL_ASSERT(false); return;
        case join_register::registered: break;
        }
        // J's poll returns; J runs again once woken and T is complete
        // (resume_target's check of the wait word).
        for (;;) {
            if (weft::detail::transition_to_idle<model_task>(&j) == idle_action::done) {
                take_from_queue(j);
            }
            RL_ASSERT(weft::detail::transition_to_running<model_task>(&j) == run_action::poll);
            if (is_finished()) {
                break;
            }
        }
        ++g_coverage.registered;
        take(); // await_resume
        finish_joiner();
    }

    // join_handle::reset: the handle dropped without joining.
    void dropper() {
        if (weft::detail::drop_join_interest<model_task>(&t)) {
            drop_output(&t); // finished and never joined: ours to dispose of
        }
        weft::detail::ref_dec<model_task>(&t);
        // J plays no part: let its references go.
        finish_joiner();
    }
};

struct scenario_join {
    static constexpr unsigned thread_count = 3;
    static constexpr bool joins = true;
    template <class M>
    static void thread(M& m, unsigned index) {
        switch (index) {
        case 0: m.runner(); break;
        case 1: m.waker(); break;
        default: m.joiner(); break;
        }
    }
};

struct scenario_join_abort {
    static constexpr unsigned thread_count = 4;
    static constexpr bool joins = true;
    template <class M>
    static void thread(M& m, unsigned index) {
        switch (index) {
        case 0: m.runner(); break;
        case 1: m.waker(); break;
        case 2: m.aborter(); break;
        default: m.joiner(); break;
        }
    }
};

struct scenario_detach_abort {
    static constexpr unsigned thread_count = 4;
    static constexpr bool joins = false;
    template <class M>
    static void thread(M& m, unsigned index) {
        switch (index) {
        case 0: m.runner(); break;
        case 1: m.waker(); break;
        case 2: m.aborter(); break;
        default: m.dropper(); break;
        }
    }
};

template <class Scenario>
weft::model::run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                            unsigned context_bound) {
    g_coverage = coverage{};
    return weft::model::run_model<task_model<Scenario>>(name, scheduler, iterations, context_bound, [] {
        std::cout << "coverage: joined values " << g_coverage.values << ", joined cancellations "
                  << g_coverage.cancelled << ", woken joiners " << g_coverage.registered
                  << ", requeued polls " << g_coverage.requeued << std::endl;
    });
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, 300'000);
    const auto small_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 2));
    const auto wide_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 3, 1));
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: transition_to_complete does not release; this run must fail.\n\n";
    policy::seed_bug("transition_to_complete", std::memory_order_acq_rel, std::memory_order_acquire);
#endif
    using weft::model::bounded;
    using weft::model::random;
    const weft::model::run_result results[] = {
        run<scenario_join>("(a) join", bounded, 0, small_bound),
        run<scenario_join_abort>("(b) join + abort", bounded, 0, wide_bound),
        run<scenario_detach_abort>("(c) detach + abort", bounded, 0, wide_bound),
        run<scenario_join>("(a) join", random, iterations, 0),
        run<scenario_join_abort>("(b) join + abort", random, iterations, 0),
        run<scenario_detach_abort>("(c) detach + abort", random, iterations, 0),
    };
    return weft::model::summarize(results);
}
