// tests/model/park_model.cpp
//
// The idle/park protocol under Relacy: workers that announce they park,
// re-check the queues, sleep and are notified, with the real idle_set,
// basic_parker (its futex through relacy_policy: a sleeper nobody wakes is
// a deadlock Relacy reports), local_queue and inject_queue. The worker loop
// itself lives in runtime.hpp, which is not generic over the policy; this
// file transcribes the parts of it that take part in the protocol
// (run_worker, next_task, refill_from_global, steal_work, run_task,
// schedule_local/remote, notify_parked, notify_if_work_pending, park,
// begin_shutdown) line for line, and leaves out what does not (the LIFO
// slot, pinned tasks, the budget and the defer list of tasks that yielded,
// metrics, the periodic maintenance poll).
// Keep the two in step.
//
// The driver is modelled (model_driver below): a try-lock, the published
// "sleeping" flag, and an edge-triggered eventfd (a counter the sleeper
// waits on; wake() adds an edge once per wake-up, as reactor::wake does).
// An I/O event is an edge plus a ready flag; the lock holder that sees it
// queues the event's task on its own worker, without notifying (in_driver).
//
// Properties:
//   - Every task runs exactly once, and the run ends: the worker that runs
//     the last task shuts down (closes the inject queue, sets the flag,
//     unparks everyone), so a task left queued while every worker sleeps
//     shows up as a deadlock (every thread blocked).
//   - At most one wake is in flight: notify_parked only picks a sleeper
//     while no earlier pick is still on its way (the picked worker counts
//     as searching until it has woken and found work or parked again).
//
// Scenarios (workers are threads 0..W-1):
//   (a) 2 workers, futex only   a producer thread pushes 2 tasks from outside
//                               while both workers go to sleep (no driver:
//                               both sleep on their futex).
//   (b) 2 workers + driver      the same with the driver: the first to park
//                               sleeps in it and is woken through eventfd.
//   (c) 3 workers + driver      2 tasks from outside; the first spawns a
//                               third onto its worker's queue.
//   (d) driver hand-off         an I/O event wakes task 1 onto the driver
//                               sleeper; task 1 blocks its worker until
//                               task 2 has run, and task 2 is woken by a
//                               second I/O event, which only a worker in
//                               the driver can deliver (tokio#4730).
//
// Usage: park_model [iterations] [small-bound] [handoff-bound]
//   iterations     random-scheduler iterations per scenario (default 200000)
//   small-bound    context bound of the systematic runs of (a), (b) (default 2)
//   handoff-bound  context bound of the systematic run of (d) (default 1; 2
//                  explores ~3 * 10^6 executions)
// The defaults take about 40 s on a busy 2-core machine; `park_model 1000000 2 2` about
// 80 CPU seconds (4.5 minutes of wall time).
//
// Seeded bugs (registered with WILL_FAIL):
//   WEFT_MODEL_SEEDED_BUG          the last searcher does not re-check the
//                                  queues before it sleeps (runs (a)-(c)).
//   WEFT_MODEL_SEEDED_BUG_HANDOFF  a worker woken by the driver with tasks
//                                  does not hand the driver over (runs (d)).
#undef NDEBUG

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <span>
#include <utility>

#include "relacy_policy.hpp"

#include "model_harness.hpp"
#include <weft/detail/idle.hpp>
#include <weft/detail/inject_queue.hpp>
#include <weft/detail/local_queue.hpp>
#include <weft/detail/parker.hpp>

namespace {

using policy = weft::model::relacy_policy;
using weft::model::aligned_box;

#if defined(WEFT_MODEL_SEEDED_BUG)
constexpr bool recheck_before_sleep = false;
#else
constexpr bool recheck_before_sleep = true;
#endif
#if defined(WEFT_MODEL_SEEDED_BUG_HANDOFF)
constexpr bool driver_handoff = false;
#else
constexpr bool driver_handoff = true;
#endif

constexpr int max_tasks = 4;
constexpr int max_events = 2;
constexpr std::uint64_t max_operations = 20000;

struct task {
    weft::model::checked_link<task> queue_next;
    int id = 0;
};

struct coverage {
    std::uint64_t notifies = 0;      // sleepers picked by notify_parked
    std::uint64_t futex_sleeps = 0;  // parks that ended on the futex path
    std::uint64_t driver_sleeps = 0; // parks that slept in the driver
    std::uint64_t rechecks_woke = 0; // re-checks that found work and notified
    std::uint64_t steals = 0;        // tasks a worker stole
};
coverage g_coverage;

/// The driver, modelled: what driver.hpp and reactor.hpp do around
/// epoll_wait, with the eventfd as an edge counter. `Model` delivers the
/// tasks of ready I/O events to the calling worker.
template <class Model>
class model_driver {
public:
    explicit model_driver(Model& model) : m_model(model) {}

    bool try_lock() {
        return !m_locked.load(std::memory_order_relaxed) &&
               !m_locked.exchange(true, std::memory_order_acquire);
    }
    void unlock() { m_locked.store(false, std::memory_order_release); }
    bool has_sleeper() const { return m_sleeping.load(std::memory_order_seq_cst); }

    // driver::park: publish the sleeper, epoll_wait (returns once an edge
    // came since the last poll reported one), clear it, deliver.
    void park() {
        m_sleeping.store(true, std::memory_order_seq_cst);
        for (;;) {
            const std::uint32_t edges = m_edges.load(std::memory_order_acquire);
            if (edges != m_reported.load()) {
                m_reported.store(edges);
                // reactor::poll clears the pending wake when it sees the edge.
                m_wake_pending.store(false, std::memory_order_seq_cst);
                break;
            }
            policy::futex_wait(&m_edges, edges);
        }
        m_sleeping.store(false, std::memory_order_seq_cst);
        m_model.deliver_events();
    }

    // reactor::wake: one eventfd write per wake-up.
    void wake() {
        if (!m_wake_pending.exchange(true, std::memory_order_seq_cst)) {
            edge();
        }
    }

    // A descriptor became ready (or the eventfd was written): a new edge.
    void edge() {
        m_edges.fetch_add(1, std::memory_order_release);
        policy::futex_wake(&m_edges, 1);
    }

private:
    Model& m_model;
    policy::atomic<bool> m_locked{false};
    policy::atomic<bool> m_sleeping{false};
    policy::atomic<bool> m_wake_pending{false};
    policy::atomic<std::uint32_t> m_edges{0};
    policy::cell<std::uint32_t> m_reported{0}; // the lock holder's
};

template <class Scenario>
struct park_model : rl::test_suite<park_model<Scenario>, Scenario::workers + 1> {
    static constexpr std::uint32_t workers = Scenario::workers;
    using queue_type = weft::detail::local_queue<task*, 4, policy>;
    using driver_type = model_driver<park_model>;
    using parker_type = weft::detail::basic_parker<policy, driver_type>;

    struct worker {
        aligned_box<queue_type> queue;
        parker_type park;
        std::uint32_t index = 0;
        bool searching = false;
        bool in_driver = false;
        bool left_driver = false;
    };

    std::array<worker, workers> m_workers;
    weft::detail::inject_queue<task, policy> m_inject;
    weft::detail::idle_set<workers, policy> m_idle;
    driver_type m_driver{*this};
    policy::atomic<bool> m_shutdown{false};

    // The scenario's own words (I/O readiness, a blocked task's wait).
    std::array<policy::atomic<bool>, max_events> ready{false, false};
    std::array<policy::cell<bool>, max_events> delivered{policy::cell<bool>(false),
                                                         policy::cell<bool>(false)};
    policy::atomic<std::uint32_t> signal{0};

    // Bookkeeping in plain memory (one fiber runs at a time; Relacy does
    // not see it, so it adds no happens-before edges).
    std::array<task, max_tasks + 1> tasks{};
    std::array<int, max_tasks + 1> runs{};
    int total_runs = 0;
    int wakes_in_flight = 0;

    void before() {
        policy::limit_operations_per_iteration(max_operations);
        for (std::uint32_t i = 0; i < workers; ++i) {
            m_workers[i].index = i;
        }
        for (int id = 1; id <= max_tasks; ++id) {
            tasks[static_cast<std::size_t>(id)].id = id;
        }
    }

    void thread(unsigned index) {
        if (index < workers) {
            run_worker(index);
        } else {
            Scenario::outside(*this);
        }
    }

    void after() {
        for (int id = 1; id <= Scenario::tasks; ++id) {
            RL_ASSERT(runs[static_cast<std::size_t>(id)] == 1);
        }
        RL_ASSERT(m_inject.is_empty());
        for (worker& w : m_workers) {
            RL_ASSERT(w.queue.get().is_empty());
        }
    }

    driver_type* drv() { return Scenario::with_driver ? &m_driver : nullptr; }

    // ---- runtime::run_worker and what it calls -------------------------------------

    void run_worker(std::uint32_t index) {
        worker& w = m_workers[index];
        while (!m_shutdown.load(std::memory_order_acquire)) {
            if (task* t = next_task(w)) {
                run_task(w, t);
                continue;
            }
            if (transition_to_searching(w)) {
                if (task* t = steal_work(w)) {
                    run_task(w, t);
                    continue;
                }
            }
            park(w);
        }
    }

    task* next_task(worker& w) {
        task* t = nullptr;
        if (w.queue.get().pop(t)) {
            return t;
        }
        return refill_from_global(w);
    }

    task* refill_from_global(worker& w) {
        const std::size_t len = m_inject.len();
        if (len == 0) {
            return nullptr;
        }
        const std::size_t fair = len / workers + 1;
        const std::size_t room = std::max<std::size_t>(w.queue.get().remaining_slots() / 2, 1);
        const std::size_t want = std::min(fair, room);
        std::size_t taken = 0;
        task* first = m_inject.pop_n(want, taken);
        if (first == nullptr) {
            return nullptr;
        }
        task* next = first->queue_next;
        w.queue.get().push_back_n(static_cast<std::uint32_t>(taken - 1), [&next] {
            task* t = next;
            next = t->queue_next;
            return t;
        });
        return first;
    }

    bool transition_to_searching(worker& w) {
        if (!w.searching) {
            w.searching = m_idle.transition_worker_to_searching();
        }
        return w.searching;
    }

    void transition_from_searching(worker& w) {
        if (!w.searching) {
            return;
        }
        w.searching = false;
        const bool left_driver = std::exchange(w.left_driver, false);
        if (m_idle.transition_worker_from_searching()) {
            if (left_driver && driver_handoff) {
                notify_parked();
            } else {
                notify_if_work_pending();
            }
        }
    }

    task* steal_work(worker& w) {
        for (std::uint32_t i = 1; i < workers; ++i) {
            const std::uint32_t victim = (w.index + i) % workers;
            task* t = nullptr;
            if (const std::uint32_t n = m_workers[victim].queue.get().steal_into(w.queue.get(), t)) {
                g_coverage.steals += n;
                return t;
            }
        }
        return m_inject.pop();
    }

    void run_task(worker& w, task* t) {
        transition_from_searching(w);
        RL_ASSERT(runs[static_cast<std::size_t>(t->id)] == 0);
        Scenario::run(*this, w, t->id);
        ++runs[static_cast<std::size_t>(t->id)];
        if (++total_runs == Scenario::tasks) {
            begin_shutdown();
        }
    }

    void begin_shutdown() {
        m_inject.close();
        m_shutdown.store(true, std::memory_order_release);
        for (worker& w : m_workers) {
            w.park.unpark(drv());
        }
    }

    std::uint32_t local_work(worker& w) { return w.queue.get().len(); }

    // ---- scheduling ----------------------------------------------------------------

    // A task spawned or woken on worker `w` (no LIFO slot in the model).
    void schedule_local(worker& w, int id) {
        push_local(w, &tasks[static_cast<std::size_t>(id)]);
        if (!w.in_driver && m_idle.may_notify()) {
            notify_parked();
        }
    }

    void push_local(worker& w, task* t) {
        w.queue.get().push_back_or_overflow(t, [this](std::span<task*> batch) {
            RL_ASSERT(m_inject.push_batch(batch)); // not shutting down while tasks are left
        });
    }

    void schedule_remote(int id) {
        RL_ASSERT(m_inject.push(&tasks[static_cast<std::size_t>(id)]));
        notify_parked();
    }

    // The driver's delivery: the event's task is woken on the lock holder.
    void deliver_events() {
        const auto self = static_cast<std::uint32_t>(rl::ctx().current_thread());
        RL_ASSERT(self < workers);
        worker& w = m_workers[self];
        RL_ASSERT(w.in_driver);
        for (std::size_t e = 0; e < max_events; ++e) {
            if (ready[e].load(std::memory_order_acquire) && !delivered[e].load()) {
                delivered[e].store(true);
                schedule_local(w, Scenario::task_of_event(static_cast<int>(e)));
            }
        }
    }

    // ---- parking -------------------------------------------------------------------

    void notify_parked() {
        std::uint32_t index = 0;
        if (m_idle.worker_to_notify(index)) {
            RL_ASSERT(wakes_in_flight == 0); // one wake in flight at a time
            ++wakes_in_flight;
            ++g_coverage.notifies;
            m_workers[index].park.unpark(drv());
        }
    }

    void notify_if_work_pending() {
        for (worker& w : m_workers) {
            if (!w.queue.get().is_empty()) {
                ++g_coverage.rechecks_woke;
                notify_parked();
                return;
            }
        }
        if (!m_inject.is_empty()) {
            ++g_coverage.rechecks_woke;
            notify_parked();
        }
    }

    void park(worker& w) {
        if (!w.queue.get().is_empty()) {
            return;
        }
        const bool last_searcher = m_idle.transition_worker_to_parked(w.index, w.searching);
        w.searching = false;
        if (last_searcher && recheck_before_sleep) {
            notify_if_work_pending();
        }
        bool slept_in_driver = false;
        for (;;) {
            if (m_shutdown.load(std::memory_order_acquire)) {
                return;
            }
            w.in_driver = true;
            const bool polled = w.park.park(drv());
            w.in_driver = false;
            slept_in_driver = slept_in_driver || polled;
            ++(polled ? g_coverage.driver_sleeps : g_coverage.futex_sleeps);
            if (m_idle.transition_worker_from_parked(w.index)) {
                --wakes_in_flight; // a notifier picked us
                w.searching = true;
                break;
            }
            if (polled && local_work(w) != 0) {
                if (!m_idle.remove_sleeper(w.index)) {
                    --wakes_in_flight; // a notifier picked us meanwhile
                    w.searching = true;
                }
                break;
            }
        }
        w.left_driver = w.searching && slept_in_driver;
        if (driver_handoff ? local_work(w) != 0 : local_work(w) > 1) {
            notify_parked();
        }
    }
};

// ---- scenarios ---------------------------------------------------------------------

template <std::uint32_t Workers, bool WithDriver>
struct scenario_remote {
    static constexpr std::uint32_t workers = Workers;
    static constexpr bool with_driver = WithDriver;
    static constexpr int tasks = 2;
    template <class M>
    static void outside(M& m) {
        m.schedule_remote(1);
        m.schedule_remote(2);
    }
    template <class M, class W>
    static void run(M&, W&, int) {}
    static int task_of_event(int) { return 0; }
};

struct scenario_spawn {
    static constexpr std::uint32_t workers = 3;
    static constexpr bool with_driver = true;
    static constexpr int tasks = 3;
    template <class M>
    static void outside(M& m) {
        m.schedule_remote(1);
        m.schedule_remote(2);
    }
    template <class M, class W>
    static void run(M& m, W& w, int id) {
        if (id == 1) {
            m.schedule_local(w, 3);
        }
    }
    static int task_of_event(int) { return 0; }
};

// Task 1 (woken by event 0) blocks its worker until task 2 (woken by event
// 1, which arrives after task 1 started) has run.
struct scenario_handoff {
    static constexpr std::uint32_t workers = 2;
    static constexpr bool with_driver = true;
    static constexpr int tasks = 2;
    template <class M>
    static void outside(M& m) {
        post_event(m, 0);
        while (m.signal.load(std::memory_order_acquire) == 0) {
            policy::futex_wait(&m.signal, 0);
        }
        post_event(m, 1);
    }
    template <class M>
    static void post_event(M& m, std::size_t e) {
        m.ready[e].store(true, std::memory_order_release);
        m.m_driver.edge();
    }
    template <class M, class W>
    static void run(M& m, W&, int id) {
        if (id == 1) {
            m.signal.store(1, std::memory_order_release); // started
            policy::futex_wake(&m.signal, 1);
            while (m.signal.load(std::memory_order_acquire) != 2) {
                policy::futex_wait(&m.signal, 1);
            }
        } else {
            m.signal.store(2, std::memory_order_release);
            policy::futex_wake(&m.signal, 1);
        }
    }
    static int task_of_event(int e) { return e + 1; }
};

using two_futex = scenario_remote<2, false>;
using two_driver = scenario_remote<2, true>;

template <class Scenario>
weft::model::run_result run(const char* name, rl::scheduler_type_e scheduler, std::uint64_t iterations,
                            unsigned context_bound) {
    g_coverage = coverage{};
    return weft::model::run_model<park_model<Scenario>>(name, scheduler, iterations, context_bound, [] {
        std::cout << "coverage: notifies " << g_coverage.notifies << ", futex sleeps "
                  << g_coverage.futex_sleeps << ", driver sleeps " << g_coverage.driver_sleeps
                  << ", re-checks that woke " << g_coverage.rechecks_woke << ", stolen " << g_coverage.steals
                  << std::endl;
    });
}

} // namespace

int main(int argc, char** argv) {
    const std::uint64_t iterations = weft::model::count_argument(argc, argv, 1, 200'000);
    [[maybe_unused]] const auto small_bound =
        static_cast<unsigned>(weft::model::count_argument(argc, argv, 2, 2));
    [[maybe_unused]] const auto handoff_bound =
        static_cast<unsigned>(weft::model::count_argument(argc, argv, 3, 1));
    using weft::model::bounded;
    using weft::model::random;
    std::vector<weft::model::run_result> results;
#if defined(WEFT_MODEL_SEEDED_BUG_HANDOFF)
    std::cout << "SEEDED BUG BUILD: no driver hand-off; this run must fail.\n\n";
    results.push_back(run<scenario_handoff>("(d) driver hand-off", bounded, 0, handoff_bound));
    results.push_back(run<scenario_handoff>("(d) driver hand-off", random, iterations, 0));
#else
#if defined(WEFT_MODEL_SEEDED_BUG)
    std::cout << "SEEDED BUG BUILD: no re-check before sleeping; this run must fail.\n\n";
#endif
    results.push_back(run<two_futex>("(a) 2 workers, futex only", bounded, 0, small_bound));
    results.push_back(run<two_driver>("(b) 2 workers + driver", bounded, 0, small_bound));
    results.push_back(run<two_futex>("(a) 2 workers, futex only", random, iterations, 0));
    results.push_back(run<two_driver>("(b) 2 workers + driver", random, iterations, 0));
    results.push_back(run<scenario_spawn>("(c) 3 workers + driver, spawn", random, iterations, 0));
#if !defined(WEFT_MODEL_SEEDED_BUG)
    results.push_back(run<scenario_handoff>("(d) driver hand-off", bounded, 0, handoff_bound));
    results.push_back(run<scenario_handoff>("(d) driver hand-off", random, iterations, 0));
#endif
#endif
    return weft::model::summarize(results);
}
