// tests/model/notify_model.cpp
//
// weft::notify under Relacy: the real protocol (detail/notify_protocol.hpp:
// the permit, notify_one, notify_all, a wait that takes the permit or links
// its node, an abandoned wait that passes its notification on) over the real
// wait list, spinlock, wake and resume_target, on model tasks
// (model_task.hpp). What sync.hpp's notified_awaiter adds around the
// protocol (finding the current task, spending budget) is left out; its
// three calls are made as it makes them: wait() in await_suspend,
// resumed() in await_resume, abandon() in the destructor.
//
// The actors: waiting tasks, each run by its own Relacy thread (a worker
// polling that task), and a notifier thread.
//
// Scenarios and properties (each task's reference count reaches zero
// exactly once, no permit is left over and no node stays linked, in all):
//   (a) notify_one vs a wait      one waiter, one notify_one: the waiter
//                                 completes whether the notification came
//                                 first (the permit is stored and taken) or
//                                 second (the waiter is fired and woken).
//   (b) notify_one wakes one      two waiters linked, notify_one: exactly
//                                 one resumes and the other stays linked;
//                                 a second notify_one wakes it.
//   (c) notify_all wakes all      two waiters linked, notify_all: both
//                                 resume; nothing is stored.
//   (d) abandoned waiter          waiter 1 is destroyed (aborted, or a
//                                 timeout fired) right after it waits,
//                                 while one notify_one runs; waiter 2 must
//                                 still get that notification (passed on,
//                                 or stored as the permit), or it sleeps
//                                 forever: a deadlock.
//   (e) stale wake                (a) plus a thread that wakes the waiter
//                                 with a reference of its own (a wake left
//                                 over from an earlier wait): the waiter
//                                 resumes only once it was really notified.
// A lost wake-up leaves a waiter asleep with nobody to wake it, which
// Relacy reports as a deadlock.
//
// Usage: notify_model [iterations] [small-bound] [wide-bound]
//   iterations   random-scheduler iterations per scenario (default 200000)
//   small-bound  context bound of the systematic run of (a) (default 6)
//   wide-bound   context bound of the systematic runs of (b) - (e) (default 2)
// The defaults take about 14 s on a busy 2-core machine; `notify_model 1000000 6 2` (the deep
// run) about 25 CPU seconds.
//
// Built with -DWEFT_MODEL_SEEDED_BUG, the spinlock's lock() takes it with
// a relaxed exchange instead of acquire, so a waiter that takes the lock
// after a notify_one does not see the permit it stored; that build must
// fail (registered with WILL_FAIL).
#undef NDEBUG

#include <array>
#include <cstdint>
#include <iostream>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include "model_task.hpp"
#include <weft/detail/notify_protocol.hpp>

namespace {

using policy = weft::model::relacy_policy;
using weft::model::model_task;
using notify_type = weft::detail::notify_protocol<weft::model::model_sync_traits>;

struct coverage {
    std::uint64_t permits_taken = 0; // waits that took the stored permit
    std::uint64_t woken = 0;         // waits that linked and were woken
    std::uint64_t stale_polls = 0;   // polls of a waiter that resumed nothing
};
coverage g_coverage;

/// Sleeps until `word` is at least `count` (a handshake between actors).
void wait_for(policy::atomic<std::uint32_t>& word, std::uint32_t count) {
    for (;;) {
        const std::uint32_t now = word.load(std::memory_order_acquire);
        if (now >= count) {
            return;
        }
        policy::futex_wait(&word, now);
    }
}

void count_up(policy::atomic<std::uint32_t>& word) {
    word.fetch_add(1, std::memory_order_release);
    policy::futex_wake(&word, 2);
}

template <class Scenario>
struct notify_model
    : rl::test_suite<notify_model<Scenario>, Scenario::waiters + (Scenario::stale_wake ? 1 : 0) + 1> {
    notify_type notify;
    weft::model::model_executor executor;
    std::array<model_task, Scenario::waiters> tasks;
    policy::atomic<std::uint32_t> linked{0};  // waiters whose node is linked
    policy::atomic<std::uint32_t> resumed{0}; // waiters whose wait is over

    void before() {
        policy::limit_operations_per_iteration(5000);
        for (model_task& task : tasks) {
            task.start(executor, Scenario::stale_wake ? 1 : 0);
        }
    }

    void thread(unsigned index) {
        if (index < Scenario::waiters) {
            waiter(index, Scenario::first_abandons && index == 0);
        } else if (Scenario::stale_wake && index == Scenario::waiters) {
            stale_waker();
        } else {
            Scenario::notifier(*this);
        }
    }

    void after() {
        for (model_task& task : tasks) {
            RL_ASSERT(task.frees == 1);
            g_coverage.stale_polls += static_cast<std::uint64_t>(task.stale_polls);
        }
        RL_ASSERT(!notify.has_permit());
        RL_ASSERT(notify.waiting() == 0);
    }

    // Task `index`: `co_await notify.notified()`. With `abandon`, its
    // awaiter is destroyed right after await_suspend, without waiting.
    void waiter(unsigned index, bool abandon) {
        model_task& task = tasks[index];
        {
            notify_type::waiter awaiter;
            if (notify.wait(awaiter, &task, weft::model::awaiting_coroutine())) {
                count_up(linked);
                if (!abandon) {
                    task.suspend();
                    notify.resumed(awaiter);
                    ++g_coverage.woken;
                }
            } else if (!abandon) {
                notify.resumed(awaiter);
                ++g_coverage.permits_taken;
            }
            notify.abandon(awaiter); // the awaiter's destructor
        }
        count_up(resumed);
        task.finish();
    }

    // Wakes waiter 0 with a reference of its own, as the waker of an
    // earlier, abandoned wait would.
    void stale_waker() { weft::detail::wake<model_task>(&tasks[0]); }
};

// A scenario names its waiters (threads 0 .. waiters-1; with
// `first_abandons`, waiter 0 abandons its wait), whether a stale waker
// runs (the next thread), and what the notifier (the last thread) does.
struct scenario_notify_one {
    static constexpr unsigned waiters = 1;
    static constexpr bool first_abandons = false;
    static constexpr bool stale_wake = false;
    template <class M>
    static void notifier(M& m) {
        m.notify.notify_one();
    }
};

struct scenario_wakes_one : scenario_notify_one {
    static constexpr unsigned waiters = 2;
    template <class M>
    static void notifier(M& m) {
        wait_for(m.linked, 2);
        m.notify.notify_one();
        wait_for(m.resumed, 1);
        RL_ASSERT(m.notify.waiting() == 1); // the other one still waits
        m.notify.notify_one();
    }
};

struct scenario_notify_all : scenario_notify_one {
    static constexpr unsigned waiters = 2;
    template <class M>
    static void notifier(M& m) {
        wait_for(m.linked, 2);
        m.notify.notify_all();
    }
};

struct scenario_abandon : scenario_notify_one {
    static constexpr unsigned waiters = 2;
    static constexpr bool first_abandons = true;
};

struct scenario_stale_wake : scenario_notify_one {
    static constexpr bool stale_wake = true;
};

template <class Scenario>
weft::model::run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                            unsigned context_bound) {
    g_coverage = coverage{};
    return weft::model::run_model<notify_model<Scenario>>(name, scheduler, iterations, context_bound, [] {
        std::cout << "coverage: permits taken " << g_coverage.permits_taken << ", waiters woken "
                  << g_coverage.woken << ", stale polls " << g_coverage.stale_polls << std::endl;
    });
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, 200'000);
    const auto small_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 6));
    const auto wide_bound = static_cast<unsigned>(weft::model::count_argument(argc, argv, 3, 2));
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: the spinlock's lock() does not acquire; this run must fail.\n\n";
    policy::seed_bug("lock", std::memory_order_acquire, std::memory_order_relaxed);
#endif
    using weft::model::bounded;
    using weft::model::random;
    const weft::model::run_result results[] = {
        run<scenario_notify_one>("(a) notify_one vs a wait", bounded, 0, small_bound),
        run<scenario_wakes_one>("(b) notify_one wakes one", bounded, 0, wide_bound),
        run<scenario_notify_all>("(c) notify_all wakes all", bounded, 0, wide_bound),
        run<scenario_abandon>("(d) abandoned waiter", bounded, 0, wide_bound),
        run<scenario_stale_wake>("(e) stale wake", bounded, 0, wide_bound),
        run<scenario_notify_one>("(a) notify_one vs a wait", random, iterations, 0),
        run<scenario_wakes_one>("(b) notify_one wakes one", random, iterations, 0),
        run<scenario_notify_all>("(c) notify_all wakes all", random, iterations, 0),
        run<scenario_abandon>("(d) abandoned waiter", random, iterations, 0),
        run<scenario_stale_wake>("(e) stale wake", random, iterations, 0),
    };
    return weft::model::summarize(results);
}
