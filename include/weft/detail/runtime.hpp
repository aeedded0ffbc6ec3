// weft/detail/runtime.hpp
//
// What it is for: the scheduler proper. It ties the mechanisms of the other
// detail headers into the worker loop: per-worker local queue and LIFO slot,
// the global inject queue, the idle set and one parker per worker, and the
// live-task list. The public `weft::executor` owns one runtime and the
// threads that run `run_worker`.
//
// Where it comes from: Tokio's `multi_thread/worker.rs` (Context::run,
// run_task, steal_work, park) with Go's scheduler behind it.
//
// The worker loop, per tick:
//   1. every `event_interval` ticks: maintenance: a non-blocking poll of the
//      driver (I/O and timers), if nobody else holds it;
//   2. every `global_queue_interval` ticks: a fair share of the global
//      queue first (one to run, the rest to the back of the local queue),
//      so remote work cannot starve behind local work;
//   3. otherwise: LIFO slot, local queue and pinned queue (on alternate
//      ticks, the pinned queue first), then a batch from the global queue;
//   4. none: search (if fewer than half the workers do) by stealing half of
//      a victim's queue, victims visited from a random start;
//   5. still none: if tasks yielded here (the defer list), queue them again
//      and go on; else park (announce, re-check, sleep; see idle.hpp). The
//      first worker to park sleeps inside the driver (epoll_wait until the
//      next timer), the others on their futex (see parker.hpp).
// A worker woken by the driver with tasks to run was not notified: it takes
// itself off the sleeper list and, before running them, wakes a parked peer
// (driver hand-off), so that a task blocking this thread cannot stall I/O
// and timers for everyone (tokio#4730). While the driver delivers wakes,
// local scheduling does not notify anyone; one notification follows.
// Pinned tasks (spawn_pinned, spawn_local) never enter the local queue or
// the global queue, so nobody can steal them: their worker's pinned queue
// (pinned_queue.hpp) holds them, its LIFO slot may too. Scheduled from
// another thread, a pinned task goes to its worker's inbox and that worker
// alone is unparked; a parked worker that finds its inbox filled takes
// itself off the sleeper list, as for the driver's wakes.
// A task that yields (yield_now, or its budget ran out) is deferred, as in
// Tokio: it waits in the worker's defer list, not its queue, until step 5
// or the next maintenance tick; so a task yielding in a loop cannot keep
// the local queue non-empty and the global queue's batch refill (step 3)
// from ever running.
// Running a task: a budget of `Options::budget` operations; afterwards the
// LIFO slot runs within the same budget, at most `max_lifo_polls` times in
// a row, so a ping-pong pair cannot starve the queue.
//
// Fork-join (Options::queue_order = lifo): each worker's queue is the
// lifo_queue deque: spawns and wakes run newest first on their worker and
// thieves take the oldest half. The LIFO slot takes wakes only (a child's
// end waking its joiner runs it next without two CASes of the deque's
// word); spawns go to the deque, where thieves can take them.
// Ownership: each worker's fields marked "owner only" are touched by its own
// thread, and after the threads are joined by the thread running shutdown
// (pthread_join orders the two).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <type_traits>

#include "driver.hpp"
#include "frame_cache.hpp"
#include "idle.hpp"
#include "inject_queue.hpp"
#include "lifo_queue.hpp"
#include "local_queue.hpp"
#include "owned_tasks.hpp"
#include "parker.hpp"
#include "pinned_queue.hpp"
#include "scheduler.hpp"
#include "task_cell.hpp"

namespace weft::detail {

/// Per-worker counters, written by the worker alone.
struct worker_counters {
    relaxed_counter polls;                // tasks polled (resumed or cancelled)
    relaxed_counter steals;               // tasks this worker stole
    relaxed_counter steal_operations;     // successful steal attempts
    relaxed_counter overflows;            // local queue overflows to the global queue
    relaxed_counter parks;                // times the worker went to sleep
    relaxed_counter unparks;              // times it woke up to search
    relaxed_counter lifo_hits;            // tasks run from the LIFO slot
    relaxed_counter budget_forced_yields; // tasks forced to yield by the budget
    relaxed_counter deferred;             // yields deferred (yield_now and budget)
    relaxed_counter local_schedules;      // tasks scheduled on this worker's queues
    relaxed_counter ticks;                // turns of the worker loop (the loop's tick)
    relaxed_counter spawned;              // tasks spawned from this worker
    relaxed_counter completed;            // tasks that finished or were cancelled here
};

template <std::uint32_t Workers, std::uint32_t QueueSize, class Options>
class runtime final : public scheduler {
public:
    // Spelled through decltype: weft::local_queue_order lives in config.hpp,
    // a public header this detail header does not include.
    static constexpr bool lifo_order = Options::queue_order == decltype(Options::queue_order)::lifo;
    /// Each worker's run queue: FIFO for its owner (Tokio's ring), or, in
    /// lifo order, a deque the owner pops newest first while thieves take
    /// the oldest half (lifo_queue.hpp). Both have the same interface.
    using queue_type = std::conditional_t<lifo_order, lifo_queue<task_header*, QueueSize>,
                                          local_queue<task_header*, QueueSize>>;

    /// Whether workers keep their tasks' freed frames (frame_cache.hpp): a
    /// frame pool, when there is one, serves them instead, and an executor
    /// of more than frame_cache::max_workers workers has no caches (each
    /// worker has an outbox per sibling).
    static constexpr bool cache_frames =
        Options::frame_cache_bytes > 0 && !Options::use_frame_pool && Workers <= frame_cache::max_workers;

    runtime() noexcept
        : m_driver(m_driver_storage.nodes, m_driver_storage.timers, m_driver_storage.sources,
                   m_driver_storage.events, std::chrono::nanoseconds(Options::timer_resolution_ns),
                   QueueSize + (Options::enable_lifo_slot ? 1 : 0)) {
        if constexpr (cache_frames) {
            // Relaxed: any number will do, as long as executors alive at
            // once mostly differ (see frame_cache::free).
            const std::uint32_t group = g_frame_cache_groups.fetch_add(1, std::memory_order_relaxed);
            for (std::uint32_t i = 0; i < Workers; ++i) {
                m_frame_caches[i].attach(m_frame_caches.data(), m_outboxes[i].boxes.data(), Workers, i, group,
                                         Options::frame_cache_bytes);
            }
        }
    }
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // ---- scheduler interface ------------------------------------------------

    bool bind(task_header* task) noexcept override {
        // The counts are statistics: they order nothing. A worker counts in
        // its own line; one shared counter cost both cores a miss per spawn.
        if (t_context.sched == this) {
            if (task->home == no_home) {
                // Into this worker's queue, unlisted: listed when it first
                // waits in no queue (poll), or when a closed queue would
                // drop it (push_local, finish_shutdown). Most tasks never
                // wait (a fork-join leaf): they never touch the list.
                // Acquire: pairs with begin_shutdown's release.
                if (m_shutdown.load(std::memory_order_acquire)) {
                    return false;
                }
            } else if (!m_owned.bind(task, t_context.worker_index)) {
                return false; // pinned: listed at once, where cancel_pinned looks
            }
            static_cast<worker*>(t_context.worker)->counters.spawned.add();
            return true;
        }
        if (!m_owned.bind(task, no_owner_shard)) {
            return false;
        }
        m_remote_spawned.fetch_add(1, std::memory_order_relaxed);
        return true;
    }

    void unbind(task_header* task) noexcept override {
        if (t_context.sched == this) {
            static_cast<worker*>(t_context.worker)->counters.completed.add();
        } else {
            m_remote_completed.fetch_add(1, std::memory_order_relaxed);
        }
        // Unsynchronized read: a task is listed only by a thread that holds
        // it (its runner, or one that took it from a queue), and the task's
        // state orders that before this run.
        if (task->owned_bound) {
            m_owned.unbind(task);
        }
    }

    void schedule(task_header* task) noexcept override { schedule_from_anywhere(task, false); }

    void schedule_spawned(task_header* task) noexcept override { schedule_from_anywhere(task, lifo_order); }

    std::uint32_t pinnable_workers() const noexcept override { return Workers; }

    // ---- threads ---------------------------------------------------------------

    /// The body of worker thread `index`; returns after shutdown.
    void run_worker(std::uint32_t index) noexcept {
        worker& w = m_workers[index];
        w.index = index;
        w.rng = 0x9E3779B9u * (index + 1);
        t_context.sched = this;
        t_context.worker = &w;
        t_context.worker_index = index;
        t_context.drv = &m_driver;
        t_context.forced_yields = &w.counters.budget_forced_yields;
        if constexpr (cache_frames) {
            t_frame_cache = &m_frame_caches[index];
        }
        while (!m_shutdown.load(std::memory_order_acquire)) {
            // Kept in the counter, not a plain field, so that metrics can
            // tell a worker that loops from one that is stuck or asleep.
            const std::uint64_t tick = w.counters.ticks.add();
            if (tick % Options::event_interval == 0) {
                maintenance(w);
            }
            if (task_header* task = next_task(w, tick)) {
                run_task(w, task);
                continue;
            }
            if (transition_to_searching(w)) {
                if (task_header* task = steal_work(w)) {
                    run_task(w, task);
                    continue;
                }
            }
            park(w);
        }
        cancel_pinned(w);
        if constexpr (cache_frames) {
            m_frame_caches[index].flush();
            t_frame_cache = nullptr;
        }
        t_context = thread_context{};
    }

    /// Stops accepting work and wakes every worker so it leaves its loop.
    void begin_shutdown() noexcept {
        m_owned.close();
        m_inject.close();
        for (worker& w : m_workers) {
            w.pinned.close();
        }
        // Release, and the unpark below: a worker that wakes or loops sees
        // the flag (acquire) together with the closed queues.
        m_shutdown.store(true, std::memory_order_release);
        for (worker& w : m_workers) {
            w.park.unpark(&m_driver);
        }
    }

    /// After every worker thread has been joined: destroy every task that
    /// never finished. Tasks sitting in queues lose their queue reference;
    /// then each live task's coroutines are destroyed (their destructors
    /// run) and it completes as cancelled, waking whoever joins it.
    void finish_shutdown() noexcept {
        // A queued task may be unlisted (see bind): listed first, so that
        // the sweep below finds it once its queue's reference is gone.
        const auto drop_queued = [this](task_header* task) noexcept {
            list_for_sweep(no_owner_shard, task);
            ref_dec(task);
        };
        for (worker& w : m_workers) {
            if (w.lifo != nullptr) {
                drop_queued(std::exchange(w.lifo, nullptr));
            }
            task_header* task = nullptr;
            while (w.queue.pop(task)) {
                drop_queued(task);
            }
            while ((task = w.pinned.pop()) != nullptr) {
                ref_dec(task);
            }
        }
        while (task_header* task = m_inject.pop()) {
            drop_queued(task);
        }
        while (task_header* task = m_owned.pop_any()) {
            cancel_unqueued(task); // nothing runs it any more
        }
        // The workers are gone: their caches' blocks go to the heap (blocks
        // still in use go there when freed, from whatever thread).
        for (frame_cache& cache : m_frame_caches) {
            cache.release_all();
        }
    }

    // ---- metrics -----------------------------------------------------------------

    const worker_counters& counters(std::uint32_t index) const noexcept { return m_workers[index].counters; }
    std::uint32_t local_queue_depth(std::uint32_t index) const noexcept {
        return m_workers[index].queue.len();
    }
    std::size_t pinned_queue_depth(std::uint32_t index) const noexcept {
        return m_workers[index].pinned.len();
    }
    parker::observed park_state(std::uint32_t index) const noexcept {
        return m_workers[index].park.observe();
    }
    std::size_t global_queue_depth() const noexcept { return m_inject.len(); }
    std::size_t live_tasks() const noexcept {
        // Completions first: each was counted after its spawn, so the
        // difference is not negative (but for relaxed reads seen out of
        // order, which the clamp absorbs).
        std::uint64_t completed = m_remote_completed.load(std::memory_order_relaxed);
        for (const worker& w : m_workers) {
            completed += w.counters.completed.get();
        }
        const std::uint64_t spawned = spawned_tasks();
        return spawned > completed ? static_cast<std::size_t>(spawned - completed) : 0;
    }
    std::size_t cached_frame_bytes() const noexcept {
        std::size_t total = 0;
        for (const frame_cache& cache : m_frame_caches) {
            total += cache.cached_bytes();
        }
        return total;
    }
    std::uint32_t parked_workers() const noexcept { return Workers - m_idle.num_unparked(); }
    std::uint32_t searching_workers() const noexcept { return m_idle.num_searching(); }
    std::uint64_t spawned_tasks() const noexcept {
        std::uint64_t total = m_remote_spawned.load(std::memory_order_relaxed);
        for (const worker& w : m_workers) {
            total += w.counters.spawned.get();
        }
        return total;
    }
    std::uint64_t remote_schedules() const noexcept {
        return m_remote_schedules.load(std::memory_order_relaxed);
    }
    const driver& io_driver() const noexcept { return m_driver; }
    driver& io_driver() noexcept { return m_driver; }

private:
    struct alignas(64) worker {
        queue_type queue;
        pinned_queue<task_header> pinned; // tasks only this worker runs
        parker park;
        worker_counters counters;
        // Owner only.
        task_header* lifo = nullptr;          // the task most recently woken here; runs next
        task_header* deferred_head = nullptr; // tasks that yielded, oldest first, linked by queue_next
        task_header* deferred_tail = nullptr;
        std::uint32_t index = 0;
        std::uint32_t rng = 1;
        bool searching = false;
        bool lifo_enabled = true;
        bool in_driver = false;   // delivering the driver's wakes: schedule without notifying
        bool left_driver = false; // notified out of the driver: the driver needs a new sleeper
    };

    // ---- shutdown ----------------------------------------------------------------

    // A worker leaving for shutdown destroys the tasks pinned to it here, on
    // its own thread, so their destructors see the thread-affine state they
    // were pinned for. Nobody else runs them, and their inbox is closed (a
    // late wake only drops its reference); the queues' references go first,
    // as in finish_shutdown, which deals with everything else.
    void cancel_pinned(worker& w) noexcept {
        requeue_deferred(w);
        if (w.lifo != nullptr && w.lifo->home != no_home) {
            ref_dec(std::exchange(w.lifo, nullptr));
        }
        while (task_header* task = w.pinned.pop()) {
            ref_dec(task);
        }
        const std::uint32_t index = w.index;
        task_header* task = m_owned.take_if([index](task_header* t) noexcept { return t->home == index; });
        t_context.shutting_down = this; // a destructor that spawns gets an aborted handle
        while (task != nullptr) {
            task_header* next = std::exchange(task->owned_next, nullptr);
            cancel_unqueued(task);
            task = next;
        }
    }

    // Lists a task spawned on a worker and not listed yet (see bind), on
    // shard `shard`. The caller holds the task: it runs it, or took it from
    // a queue. Closed or not: the sweep runs after every worker stopped.
    void list_unlisted(std::uint32_t shard, task_header* task) noexcept {
        if (!task->owned_bound) {
            m_owned.adopt(task, shard);
        }
    }

    // list_unlisted for a queued task whose queue drops it (shutdown), so
    // the sweep finds it; unless it finished: a queue may still hold one
    // that cancel_pinned destroyed after a destructor woke it (a pinned
    // task whose joiner was cancelled first), and the sweep must not
    // destroy it again. The poll path needs no such check: it runs the task.
    void list_for_sweep(std::uint32_t shard, task_header* task) noexcept {
        // Acquire: pairs with the completion's release, whoever completed it.
        if ((task->state.load(std::memory_order_acquire) & task_state::complete) == 0) {
            list_unlisted(shard, task);
        }
    }

    // Destroys a task that no queue holds and nobody runs: takes the running
    // reference, cancels, and drops it again.
    static void cancel_unqueued(task_header* task) noexcept {
        task->state.fetch_or(task_state::running | task_state::cancelled, std::memory_order_acq_rel);
        ref_inc(task);
        cancel_task(task);
        transition_to_idle(task);
    }

    // ---- finding work ------------------------------------------------------------

    task_header* next_task(worker& w, std::uint64_t tick) noexcept {
        if (tick % Options::global_queue_interval == 0) {
            // A fair share, not one task (Tokio and Go take one): behind
            // tasks that keep respawning (or waking) each other, one task
            // per interval drains a burst of remote spawns at one per
            // interval's worth of their polls.
            if (task_header* task = refill_from_global(w)) {
                return task;
            }
        }
        if (w.lifo != nullptr) {
            return std::exchange(w.lifo, nullptr);
        }
        // Pinned and stealable tasks take turns, so that a busy worker
        // starves neither: tasks that yield in a loop on one side still
        // leave every other tick to the other.
        task_header* task = nullptr;
        if ((tick & 1u) == 0) {
            if ((task = w.pinned.pop()) != nullptr || w.queue.pop(task)) {
                return task;
            }
        } else if (w.queue.pop(task) || (task = w.pinned.pop()) != nullptr) {
            return task;
        }
        return refill_from_global(w);
    }

    // Takes a fair share of the global queue: what this worker would get if
    // all workers split it, but never filling the local queue past half
    // (one task, if it is already half full). Taken with an empty local
    // queue, that is half the ring; at the interval, behind local work,
    // it keeps a worker whose queue is busy with spawns (fork-join) from
    // pulling in batch after batch of the oldest overflowed tasks, which
    // it would push straight back to the global queue: fib(34) took 2.4
    // times as long, and twice the memory, when the interval took up to
    // half the free slots.
    task_header* refill_from_global(worker& w) noexcept {
        const std::size_t len = m_inject.len();
        if (len == 0) {
            return nullptr;
        }
        const std::size_t fair = len / Workers + 1;
        const std::uint32_t half = QueueSize / 2;
        const std::uint32_t queued = w.queue.len();
        // remaining_slots() also counts slots a thief is still copying out.
        const std::size_t below_half = queued < half ? half - queued : 0;
        const std::size_t room =
            std::max<std::size_t>(std::min<std::size_t>(below_half, w.queue.remaining_slots() / 2), 1);
        const std::size_t want = std::min({fair, room, std::size_t{Options::max_global_batch}});
        std::size_t taken = 0;
        task_header* first = m_inject.pop_n(want, taken);
        if (first == nullptr) {
            return nullptr;
        }
        task_header* next = first->queue_next;
        w.queue.push_back_n(static_cast<std::uint32_t>(taken - 1), [&next]() noexcept {
            task_header* task = next;
            next = task->queue_next;
            return task;
        });
        return first;
    }

    bool transition_to_searching(worker& w) noexcept {
        if (!w.searching) {
            w.searching = m_idle.transition_worker_to_searching();
        }
        return w.searching;
    }

    void transition_from_searching(worker& w) noexcept {
        if (!w.searching) {
            return;
        }
        w.searching = false;
        const bool left_driver = std::exchange(w.left_driver, false);
        if (m_idle.transition_worker_from_searching()) {
            // The last searcher found work. If it was notified out of the
            // driver, a peer must take the driver over before this task
            // can block the thread (the hand-off, see the header). Else
            // there may be more work: wake one more if there is any in a
            // queue (Tokio and Go wake one unconditionally). Work that was
            // published while we searched woke nobody, and it is in a
            // queue: the same argument as the parking re-check
            // (notify_if_work_pending). Without the check, a single task
            // spawned on an idle executor woke a second worker before it
            // ran: wake latency 13.7 µs at the median against 3.7 µs.
            if (left_driver && Options::driver_handoff) {
                notify_parked();
            } else {
                notify_if_work_pending();
            }
        }
    }

    task_header* steal_work(worker& w) noexcept {
        const std::uint32_t start = next_random(w) % Workers;
        for (std::uint32_t i = 0; i < Workers; ++i) {
            const std::uint32_t victim = (start + i) % Workers;
            if (victim == w.index) {
                continue;
            }
            task_header* task = nullptr;
            if (const std::uint32_t n = m_workers[victim].queue.steal_into(w.queue, task)) {
                w.counters.steals.add(n);
                w.counters.steal_operations.add();
                return task;
            }
        }
        return m_inject.pop();
    }

    static std::uint32_t next_random(worker& w) noexcept {
        // xorshift32: victims need spreading, not statistics.
        std::uint32_t x = w.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        w.rng = x;
        return x;
    }

    // ---- running -------------------------------------------------------------------

    void run_task(worker& w, task_header* task) noexcept {
        transition_from_searching(w);
        t_context.budget = Options::budget;
        poll(w, task);
        for (std::uint32_t lifo_polls = 0; w.lifo != nullptr;) {
            task_header* next = std::exchange(w.lifo, nullptr);
            // The chain used up the budget: the woken task waits its turn.
            // Once shutdown has begun (acquire: pairs with begin_shutdown's
            // release), it is queued, not run: the sweep destroys it.
            if (t_context.budget == 0 || m_shutdown.load(std::memory_order_acquire)) {
                push_local(w, next);
                break;
            }
            if (++lifo_polls >= Options::max_lifo_polls) {
                w.lifo_enabled = false; // later wakes go to the back of the queue
            }
            w.counters.lifo_hits.add();
            poll(w, next);
        }
        w.lifo_enabled = true;
    }

    void poll(worker& w, task_header* task) noexcept {
        w.counters.polls.add();
        t_context.yielded = false;
        // A task about to wait in no queue joins the live-task list now,
        // so that shutdown finds it (see bind).
        const auto list_if_unlisted = [this, &w](task_header* t) noexcept { list_unlisted(w.index, t); };
        if (poll_task(task, list_if_unlisted) == idle_action::reschedule) {
            if (std::exchange(t_context.yielded, false)) {
                defer(w, task);
            } else {
                schedule_local(w, task, true);
            }
        }
    }

    // A task that yielded, with its queue reference (it is NOTIFIED): to
    // the back of the defer list. Owner only, like the LIFO slot; nobody
    // can steal it from there.
    static void defer(worker& w, task_header* task) noexcept {
        w.counters.deferred.add();
        task->queue_next = nullptr;
        if (w.deferred_tail == nullptr) {
            w.deferred_head = task;
        } else {
            w.deferred_tail->queue_next = task;
        }
        w.deferred_tail = task;
    }

    // Moves the defer list to the queues, oldest first. Returns how many
    // of them anyone could steal.
    std::uint32_t requeue_deferred(worker& w) noexcept {
        std::uint32_t stealable = 0;
        task_header* task = std::exchange(w.deferred_head, nullptr);
        w.deferred_tail = nullptr;
        while (task != nullptr) {
            // Read before the push: a thief may run and free it at once.
            task_header* next = task->queue_next;
            stealable += task->home == no_home ? 1u : 0u;
            push_local(w, task);
            task = next;
        }
        return stealable;
    }

    // Requeues the defer list and, if that gives a peer something to steal
    // (more than the one task this worker runs next), wakes one.
    void wake_deferred(worker& w) noexcept {
        if (requeue_deferred(w) > 1) {
            notify_parked();
        }
    }

    // Shutdown is noticed by the loop condition; here the driver is polled
    // without blocking, unless nobody uses it or another worker holds it.
    void poll_driver(worker& w) noexcept {
        if (!m_driver.has_interest() || !m_driver.try_lock()) {
            return;
        }
        w.in_driver = true;
        m_driver.poll_now(w.queue.remaining_slots() +
                          (Options::enable_lifo_slot && w.lifo == nullptr ? 1u : 0u));
        w.in_driver = false;
        m_driver.unlock();
        if (local_work(w) > 1) {
            notify_parked(); // the poll queued more than this worker will run next
        }
    }

    // Every event_interval ticks: the driver's poll, then the tasks that
    // yielded since the last time (as Tokio's park_yield), so a worker that
    // always has other work still resumes them.
    void maintenance(worker& w) noexcept {
        poll_driver(w);
        if (w.deferred_head != nullptr) {
            wake_deferred(w);
        }
    }

    std::uint32_t local_work(const worker& w) const noexcept {
        return w.queue.len() + (w.lifo != nullptr ? 1u : 0u);
    }

    // ---- scheduling ----------------------------------------------------------------

    // Where schedule() and schedule_spawned() send a task: its own worker's
    // inbox if it is pinned elsewhere, this worker's queues, or the global
    // queue from a thread that is not a worker. `spawned_in_lifo_order`:
    // skip the LIFO slot. In lifo order the deque already runs the newest
    // task next, and a spawn in the slot would be hidden from thieves; a
    // wake still takes the slot (a child's end waking its joiner: two CASes
    // of the deque's word fewer per join).
    void schedule_from_anywhere(task_header* task, bool spawned_in_lifo_order) noexcept {
        const bool on_worker = t_context.sched == this;
        if (task->home != no_home && !(on_worker && t_context.worker_index == task->home)) {
            schedule_pinned_remote(task);
        } else if (on_worker) {
            schedule_local(*static_cast<worker*>(t_context.worker), task, spawned_in_lifo_order);
        } else {
            schedule_remote(task);
        }
    }

    // A task woken or spawned on worker `w`. With `to_queue` it goes to
    // the queue: a wake while the task itself runs (Tokio's is_yield; a
    // real yield went to the defer list instead) to the back, in fifo
    // order, or a spawn in lifo order. Anything else takes the LIFO slot
    // and pushes the previous occupant to the queue. In lifo order the
    // queue has no back: every task goes to the newest end of the deque.
    void schedule_local(worker& w, task_header* task, bool to_queue) noexcept {
        w.counters.local_schedules.add();
        if (!to_queue && Options::enable_lifo_slot && w.lifo_enabled) {
            task_header* prev = std::exchange(w.lifo, task);
            if (prev == nullptr) {
                return; // filling an empty slot wakes nobody: the ping-pong fast path
            }
            task = prev;
        }
        // Read before the push: once queued, a thief may run the task to
        // its end and free it before the next line here. A pinned task is
        // no work for anyone else.
        const bool stealable = task->home == no_home;
        push_local(w, task);
        // notify_parked asks the idle set with a read-modify-write, which
        // drains the store buffer: on every spawn that cost fork-join a
        // quarter of its time (fib(34) on 1 worker: 1.27 s against 0.96 s).
        // A plain load first skips it while nobody sleeps or somebody
        // searches. The load may be stale, but this worker is awake and
        // runs its own queue, so a missed wake only delays parallelism
        // until its next push, never strands a task; remote pushes (which
        // could) still always ask.
        if (!w.in_driver && stealable && m_idle.may_notify()) {
            notify_parked();
        }
    }

    void push_local(worker& w, task_header* task) noexcept {
        if (task->home != no_home) {
            w.pinned.push_local(task); // this worker is its home: schedule() sent it here
            return;
        }
        if (w.queue.push_back_or_overflow(task, [this, &w](std::span<task_header*> batch) noexcept {
                if (!m_inject.push_batch(batch)) {
                    for (task_header* t : batch) {
                        list_for_sweep(w.index, t);
                        ref_dec(t); // shutting down: the sweep cancels them
                    }
                }
            })) {
            w.counters.overflows.add();
        }
    }

    void schedule_remote(task_header* task) noexcept {
        m_remote_schedules.fetch_add(1, std::memory_order_relaxed); // a statistic: orders nothing
        if (!m_inject.push(task)) {
            ref_dec(task); // shutting down: the sweep cancels it
            return;
        }
        notify_parked();
    }

    // A pinned task scheduled away from its worker: into that worker's
    // inbox, and wake that worker (whatever it is doing: a running worker
    // just finds its token set at its next park).
    void schedule_pinned_remote(task_header* task) noexcept {
        worker& home = m_workers[task->home];
        if (!home.pinned.push_remote(task)) {
            ref_dec(task); // shutting down: the sweep cancels it
            return;
        }
        home.park.unpark(&m_driver);
    }

    // ---- parking -------------------------------------------------------------------

    void notify_parked() noexcept {
        std::uint32_t index = 0;
        if (m_idle.worker_to_notify(index)) {
            m_workers[index].park.unpark(&m_driver);
        }
    }

    // Before sleeping the last searcher looks at every queue once more: work
    // published while it was announcing itself parked must wake someone.
    void notify_if_work_pending() noexcept {
        for (worker& w : m_workers) {
            if (!w.queue.is_empty()) {
                notify_parked();
                return;
            }
        }
        if (!m_inject.is_empty()) {
            notify_parked();
        }
    }

    void park(worker& w) noexcept {
        if (w.lifo != nullptr || !w.queue.is_empty() || !w.pinned.is_empty()) {
            return; // work arrived (a steal landed extra tasks here, a pinned task came)
        }
        if (w.deferred_head != nullptr) {
            // Nothing else to run: the tasks that yielded go on, as work
            // this worker found (it stops searching).
            transition_from_searching(w);
            wake_deferred(w);
            return;
        }
        if constexpr (cache_frames) {
            // Siblings' blocks go home before this worker sleeps (wakes the
            // driver delivers while it sleeps may leave a few behind).
            m_frame_caches[w.index].flush();
        }
        const bool last_searcher = m_idle.transition_worker_to_parked(w.index, w.searching);
        w.searching = false;
        if (last_searcher) {
            notify_if_work_pending();
        }
        w.counters.parks.add();
        bool slept_in_driver = false; // in any round: then the driver needs a new sleeper
        for (;;) {
            if (m_shutdown.load(std::memory_order_acquire)) {
                return;
            }
            w.in_driver = true;
            const bool polled = w.park.park(&m_driver);
            w.in_driver = false;
            slept_in_driver = slept_in_driver || polled;
            if (m_idle.transition_worker_from_parked(w.index)) {
                w.searching = true; // a notifier picked us
                break;
            }
            if ((polled && local_work(w) != 0) || !w.pinned.is_empty()) {
                // The driver woke tasks onto this worker, or a task pinned
                // here was woken (by the driver, or by another thread that
                // then unparked us).
                if (!m_idle.remove_sleeper(w.index)) {
                    w.searching = true; // a notifier picked us meanwhile
                }
                break;
            }
            // Spurious, or the driver woke nothing here: sleep again.
        }
        w.counters.unparks.add();
        w.left_driver = w.searching && slept_in_driver;
        // Hand the driver over (see the header) before running anything
        // here, pinned tasks included; without the hand-off, share a burst.
        // Woken on its futex for pinned work, the worker leaves the driver's
        // sleeper where it is: nobody else can run that work.
        if (Options::driver_handoff ? local_work(w) != 0 || (slept_in_driver && !w.pinned.is_empty())
                                    : local_work(w) > 1) {
            notify_parked();
        }
    }

    driver_storage<Options::max_timers, Options::max_io_sources, Options::max_io_events> m_driver_storage;
    driver m_driver;
    std::array<worker, Workers> m_workers;
    inject_queue<task_header> m_inject;
    idle_set<Workers> m_idle;
    owned_tasks<Workers, Options::live_task_shards> m_owned;
    std::atomic<bool> m_shutdown{false};
    // Each worker's frame cache, and the outboxes it sends siblings' blocks
    // home in (owner only). Empty arrays unless cache_frames.
    struct alignas(64) outbox_row {
        std::array<frame_cache::outbox, Workers> boxes{};
    };
    std::array<frame_cache, cache_frames ? Workers : 0> m_frame_caches;
    std::array<outbox_row, cache_frames ? Workers : 0> m_outboxes;
    // Written by threads that are not workers: apart from m_shutdown, which
    // every worker reads each tick.
    alignas(64) std::atomic<std::uint64_t> m_remote_spawned{0}; // spawns from outside the workers
    std::atomic<std::uint64_t> m_remote_schedules{0};
    std::atomic<std::uint64_t> m_remote_completed{0}; // tasks finished or cancelled outside the workers
};

} // namespace weft::detail
