// weft/detail/blocking_pool.hpp
//
// What it is for: the threads that run spawn_blocking jobs, so that a call
// which blocks its thread (a driver's ioctl, a file read, a library with no
// async API) never blocks a worker.
//
// Where it comes from: Tokio's `blocking/pool.rs`: one mutex and one
// condition variable for the whole pool, threads started on demand (only
// when no idle thread is left and the cap is not reached), retired after an
// idle keep-alive, the count of idle threads lowered by the *notifier* so
// that one wake-up is claimed by exactly one job, and each exiting thread
// joining the one that exited before it (at most one thread is ever left
// unjoined, and shutdown joins it). Unlike Tokio, the threads are a fixed
// array of `Options::max_blocking_threads` slots and the queue is bounded.
//
// A job is an ordinary spawned task (one block, the cell in front of the
// frame, so join_handle works unchanged) whose `owner` is this pool. Its
// coroutine never suspends: one poll runs the callable to the end. So a job
// is always either in the queue or held by the thread running it, and
// shutdown finds every job without a live-task list.
//
// A blocking thread is not a worker: t_context.sched stays null there, so
// join_handle::get() and executor::block_on work in a job (as in Tokio).
// t_blocking says where weft::spawn (the executor's runtime) and
// weft::spawn_blocking (this pool) go from such a thread; workers set
// t_blocking.pool too.
//
// Invariants (all fields below the mutex are written only under it):
//   - m_threads counts live threads (starting, running a job, or idle);
//     at most slots.size(). A slot is `live` from its start until its thread
//     leaves the loop; its index is in the thread's name.
//   - m_idle counts idle threads that no job has claimed yet; a job that
//     finds m_idle > 0 takes one (m_idle - 1, m_notify + 1) and signals.
//     An idle thread leaves its wait only by taking one m_notify, or at
//     shutdown, or when its keep-alive passes with no m_notify for it.
//   - m_queued counts the jobs in the FIFO. Jobs already promised a thread
//     (m_notify + m_starting) do not count against the capacity.
//   - Once m_closed, no job is accepted and no thread is started; a thread
//     that sees it exits instead of taking the next job, and shutdown
//     cancels what is left in the queue.
//   - The metric mirrors (atomics) are written under the mutex and read
//     without it.
//
// Threads: each starts from the pool's thread_spec (stack, CPUs, policy,
// all explicit by default, so that a thread started by a pinned real-time
// worker does not inherit that worker's CPU and policy), names itself, and
// calls the start hook before it takes a job and the stop hook after its
// last one, outside the lock. A stop hook may still run when the slot has
// been given to a new thread; the pool itself outlives it (shutdown joins
// every thread, see above).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>

#include <pthread.h>

#include "frame_pool.hpp"
#include "scheduler.hpp"
#include "task_cell.hpp"
#include "thread.hpp"

namespace weft::detail {

class blocking_pool;

/// What a thread knows about its executor besides t_context.
struct blocking_context {
    scheduler* spawn_target = nullptr; // on a blocking thread: where weft::spawn goes
    blocking_pool* pool = nullptr;     // on a worker or blocking thread: where weft::spawn_blocking goes
};

constinit inline thread_local blocking_context t_blocking{};

/// What became of a job offered to the pool.
enum class blocking_submit { accepted, shut_down, full, thread_start_failed };

class blocking_pool final : public scheduler {
public:
    /// One possible thread; the executor holds a fixed array of them.
    struct slot {
        pthread_t thread{};
        blocking_pool* pool = nullptr;
        std::uint32_t index = 0;
        bool live = false;
        char name[16] = {}; // written when the thread starts, read by it
    };

    struct config {
        const char* name_prefix = "weft";
        thread_spec thread;   // stack, CPUs and policy of every thread; the name is the pool's
        thread_hooks hooks{}; // called with the slot's index
        std::chrono::milliseconds keep_alive{10'000};
        std::size_t queue_capacity = 1024;
        scheduler* spawn_target = nullptr; // the executor's runtime
        frame_pool* frames = nullptr;      // the executor's frame pool, if any
    };

    blocking_pool(std::span<slot> slots, const config& cfg) noexcept
        : m_slots(slots), m_spec(cfg.thread), m_hooks(cfg.hooks),
          m_keep_alive(cfg.keep_alive.count() > 0 ? cfg.keep_alive : std::chrono::milliseconds(0)),
          m_queue_capacity(cfg.queue_capacity), m_spawn_target(cfg.spawn_target), m_frames(cfg.frames) {
        for (std::size_t i = 0; i < m_slots.size(); ++i) {
            m_slots[i].pool = this;
            m_slots[i].index = static_cast<std::uint32_t>(i);
        }
        // "<prefix>-blk" cut so that "-<largest index>" still fits in 15.
        unsigned digits = 1;
        for (std::size_t n = m_slots.size() - 1; n >= 10; n /= 10) {
            ++digits;
        }
        const std::size_t room = 15 - 4 - 1 - digits; // "-blk", "-", the index
        std::size_t len = std::strlen(cfg.name_prefix);
        if (len > room) {
            len = room;
        }
        std::memcpy(m_name_prefix, cfg.name_prefix, len);
        std::memcpy(m_name_prefix + len, "-blk", 5);
    }

    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    ~blocking_pool() {
        if (forked()) {
            // A child process: the threads to join, and the ones waiting on
            // the condition variables, do not exist here (fork.hpp).
            m_wake.abandon();
            m_exited.abandon();
            return;
        }
        shutdown(std::chrono::milliseconds(0), nullptr);
    }

    // ---- scheduler interface ------------------------------------------------
    // Jobs come in through submit(), which binds and queues under one lock
    // (so that the capacity check and the push cannot be split). bind() and
    // schedule() serve the generic paths (a wake, an abort of an idle task),
    // which a job that never suspends does not take; they ignore the bound.

    bool bind(task_header* /*task*/) noexcept override {
        std::lock_guard<std::mutex> hold(m_mutex);
        return !m_closed;
    }

    void schedule(task_header* task) noexcept override {
        std::lock_guard<std::mutex> hold(m_mutex);
        push(task);
        if (!m_closed) {
            int rc = 0;
            (void)claim_thread(rc); // if none can start, a running thread takes it later
        }
    }

    void unbind(task_header* /*task*/) noexcept override {} // no live-task list (see the top)

    std::uint32_t pinnable_workers() const noexcept override { return 0; } // jobs are never pinned

    // ---- jobs ----------------------------------------------------------------------

    /// Queues a job that was just created (notified, holding its queue
    /// reference). Anything but `accepted` leaves the job untouched: the
    /// caller still owns it. `error` receives the errno of a failed start.
    blocking_submit submit(task_header* task, int& error) noexcept {
        std::lock_guard<std::mutex> hold(m_mutex);
        if (m_closed) {
            return blocking_submit::shut_down;
        }
        switch (claim_thread(error)) {
        case claim::claimed: push(task); return blocking_submit::accepted;
        case claim::start_failed:
            if (m_threads == 0) {
                return blocking_submit::thread_start_failed; // nobody would ever run it
            }
            break;
        case claim::none: break;
        }
        if (waiting() >= m_queue_capacity) {
            return blocking_submit::full;
        }
        push(task);
        return blocking_submit::accepted;
    }

    /// Stops the pool: refuses new jobs, cancels the queued ones (their
    /// destructors run on this thread; joiners get errc::task_aborted), waits
    /// for the running ones and joins every thread. `limit` > 0 bounds the
    /// wait: false if jobs still run then (the pool stays closed; call again
    /// to keep waiting). `on_slow`, if given, is called once when `limit`
    /// passes and the wait goes on regardless (limit > 0, on_slow set).
    bool shutdown(std::chrono::milliseconds limit, void (*on_slow)(std::size_t running)) noexcept {
        task_header* queued = nullptr;
        {
            std::lock_guard<std::mutex> hold(m_mutex);
            m_closed = true;
            queued = take_queue();
            m_wake->notify_all(); // idle threads exit
        }
        cancel_all(queued);
        std::unique_lock<std::mutex> hold(m_mutex);
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (m_threads != 0) {
            if (limit.count() <= 0) {
                m_exited->wait(hold);
            } else if (m_exited->wait_until(hold, deadline) == std::cv_status::timeout && m_threads != 0) {
                if (on_slow == nullptr) {
                    return false;
                }
                on_slow(m_threads);
                limit = std::chrono::milliseconds(0);
            }
        }
        // Every thread has left its loop; the last one to exit is the only
        // one not joined yet (each exiting thread joined its predecessor).
        if (m_has_last_exited) {
            m_has_last_exited = false;
            const pthread_t last = m_last_exited;
            hold.unlock();
            ::pthread_join(last, nullptr);
            hold.lock();
        }
        // A generic schedule() may have queued a job after the first sweep.
        queued = take_queue();
        hold.unlock();
        cancel_all(queued);
        return true;
    }

    // ---- metrics -------------------------------------------------------------------

    std::uint32_t threads() const noexcept { return m_threads_metric.load(std::memory_order_relaxed); }
    std::uint32_t idle_threads() const noexcept { return m_idle_metric.load(std::memory_order_relaxed); }
    std::size_t queue_depth() const noexcept { return m_queued_metric.load(std::memory_order_relaxed); }

    /// How each thread starts (without its name).
    const thread_spec& thread_settings() const noexcept { return m_spec; }

private:
    enum class claim { claimed, none, start_failed };

    // Under the lock. Promises a thread to the job about to be pushed: an
    // idle one (woken), else a new one if the cap allows.
    claim claim_thread(int& error) noexcept {
        if (m_idle > 0) {
            --m_idle;
            ++m_notify;
            m_wake->notify_one();
            publish();
            return claim::claimed;
        }
        if (m_threads >= m_slots.size()) {
            return claim::none;
        }
        slot* free = nullptr;
        for (slot& s : m_slots) {
            if (!s.live) {
                free = &s;
                break;
            }
        }
        thread_spec spec = m_spec;
        format_thread_name(spec.name, m_name_prefix, free->index);
        std::memcpy(free->name, spec.name, sizeof spec.name);
        // The new thread waits for this lock before it touches the pool.
        error = start_thread(free->thread, spec, &thread_main, free);
        if (error != 0) {
            return claim::start_failed;
        }
        free->live = true;
        ++m_threads;
        ++m_starting;
        publish();
        return claim::claimed;
    }

    // Under the lock: jobs in the queue that no promised thread will take.
    std::size_t waiting() const noexcept {
        const std::size_t promised = m_notify + m_starting;
        return m_queued > promised ? m_queued - promised : 0;
    }

    void push(task_header* task) noexcept {
        task->queue_next = nullptr;
        if (m_tail != nullptr) {
            m_tail->queue_next = task;
        } else {
            m_head = task;
        }
        m_tail = task;
        ++m_queued;
        publish();
    }

    task_header* pop() noexcept {
        task_header* task = m_head;
        if (task != nullptr) {
            m_head = task->queue_next;
            if (m_head == nullptr) {
                m_tail = nullptr;
            }
            task->queue_next = nullptr;
            --m_queued;
            publish();
        }
        return task;
    }

    task_header* take_queue() noexcept {
        task_header* list = m_head;
        m_head = m_tail = nullptr;
        m_queued = 0;
        publish();
        return list;
    }

    void publish() noexcept {
        m_threads_metric.store(m_threads, std::memory_order_relaxed);
        m_idle_metric.store(m_idle, std::memory_order_relaxed);
        m_queued_metric.store(m_queued, std::memory_order_relaxed);
    }

    // Destroys queued jobs without running them: the queue's reference
    // becomes the running one, the job completes as cancelled.
    static void cancel_all(task_header* list) noexcept {
        while (list != nullptr) {
            task_header* task = list;
            list = task->queue_next;
            task->queue_next = nullptr;
            task->state.fetch_or(task_state::cancelled, std::memory_order_acq_rel);
            run_job(task);
        }
    }

    // Polls a job as a worker polls a task. A job completes in one poll.
    static void run_job(task_header* task) noexcept {
        if (poll_task(task) == idle_action::reschedule) {
            task->owner->schedule(task); // not a job of ours after all: a generic task
        }
    }

    static void* thread_main(void* arg) {
        auto* s = static_cast<slot*>(arg);
        s->pool->run(*s);
        return nullptr;
    }

    void run(slot& self) noexcept {
        const std::uint32_t index = self.index;
        const thread_hooks hooks = m_hooks;
        name_this_thread(self.name);
        hooks.start(index);
        t_blocking = {m_spawn_target, this};
        t_frame_pool = m_frames; // frames made by jobs
        std::unique_lock<std::mutex> hold(m_mutex);
        --m_starting;
        for (;;) {
            if (m_closed) {
                break; // queued jobs are shutdown's to cancel
            }
            if (task_header* task = pop()) {
                hold.unlock();
                run_job(task);
                hold.lock();
                continue;
            }
            if (!wait_for_job(hold)) {
                break;
            }
        }
        --m_threads;
        self.live = false; // the slot may take a new thread now
        publish();
        // Join the previous leaver (it has left the pool already) and leave
        // our own handle for the next one, or for shutdown.
        const bool join_previous = m_has_last_exited;
        const pthread_t previous = m_last_exited;
        m_last_exited = ::pthread_self();
        m_has_last_exited = true;
        m_exited->notify_all(); // under the lock: shutdown cannot free the pool before we let go
        hold.unlock();
        // From here on nothing of the pool is touched: shutdown may free it
        // once it has joined this thread.
        t_blocking = {};
        hooks.stop(index);
        t_frame_pool = nullptr;
        if (join_previous) {
            ::pthread_join(previous, nullptr);
        }
    }

    // Idle: true when a job claimed this thread, false when the thread
    // should exit (keep-alive passed, or shutdown).
    bool wait_for_job(std::unique_lock<std::mutex>& hold) noexcept {
        ++m_idle;
        publish();
        const auto deadline = std::chrono::steady_clock::now() + m_keep_alive;
        for (;;) {
            const bool timed_out = m_wake->wait_until(hold, deadline) == std::cv_status::timeout;
            if (m_notify > 0) {
                --m_notify; // the notifier already took us off m_idle
                return true;
            }
            if (m_closed || timed_out) {
                --m_idle;
                publish();
                return false;
            }
        }
    }

    std::span<slot> m_slots;
    const thread_spec m_spec; // name left empty
    const thread_hooks m_hooks;
    const std::chrono::milliseconds m_keep_alive;
    const std::size_t m_queue_capacity;
    scheduler* const m_spawn_target;
    frame_pool* const m_frames;
    char m_name_prefix[16] = {};

    std::mutex m_mutex;
    abandonable<std::condition_variable> m_wake;   // idle threads wait here for a job
    abandonable<std::condition_variable> m_exited; // shutdown waits here for the threads
    task_header* m_head = nullptr;                 // the FIFO of jobs, linked through queue_next
    task_header* m_tail = nullptr;
    std::size_t m_queued = 0;
    std::uint32_t m_threads = 0;
    std::uint32_t m_idle = 0;
    std::uint32_t m_notify = 0;
    std::uint32_t m_starting = 0;
    bool m_closed = false;
    bool m_has_last_exited = false;
    pthread_t m_last_exited{};

    std::atomic<std::uint32_t> m_threads_metric{0};
    std::atomic<std::uint32_t> m_idle_metric{0};
    std::atomic<std::size_t> m_queued_metric{0};
};

} // namespace weft::detail
