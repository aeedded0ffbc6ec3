// weft/executor.hpp: the work-stealing executor, spawning, and yielding.
//
// ```cpp
// weft::task<int> child(int x) { co_await weft::yield_now(); co_return 2 * x; }
//
// weft::task<int> root() {
//     auto h = weft::spawn(child(21)); // runs on any worker
//     co_return co_await h;            // 42
// }
//
// int main() {
//     weft::executor<4, 256> ex;       // 4 workers, 256-slot local queues
//     return ex.block_on(root()) == 42 ? 0 : 1;
// }
// ```
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <pthread.h>

#include "blocking.hpp"
#include "config.hpp"
#include "detail/blocking_pool.hpp"
#include "detail/runtime.hpp"
#include "detail/scheduler.hpp"
#include "detail/thread.hpp"
#include "error.hpp"
#include "metrics.hpp"
#include "task.hpp"

namespace weft {

namespace detail {

/// The stored copy of a callable given to spawn, as the task calls it.
template <class F>
using stored_callable = std::decay_t<F>&;

/// What spawn accepts besides a task: something callable with no
/// arguments, returning a value, nothing, or a task.
template <class F>
concept spawnable_callable = std::invocable<stored_callable<F>> && !is_task<std::decay_t<F>>::value;

/// Binds a task to `sched` and queues it; pinned to worker `home` unless
/// that is no_home. On failure the task keeps its coroutine (destroyed with
/// it) and the error is raised.
template <class T>
join_handle<T> spawn_on(scheduler& sched, task<T>&& work, std::uint32_t home = no_home) {
    if (home != no_home && home >= sched.pinnable_workers()) {
        raise(errc::invalid_argument, "spawn_pinned: there is no worker with that index (it must be below "
                                      "the executor's worker count)");
    }
    auto handle = work.release();
    if (!handle) {
        raise(errc::invalid_handle, "spawn of an empty weft::task (moved from or already spawned)");
    }
    task_cell<T>* cell = adopt_spawned(handle, sched);
    cell->home = home;
    if (!sched.bind(cell)) {
        unadopt_spawned(handle, cell);
        work.reclaim(handle);
        raise(errc::executor_shut_down,
              "cannot spawn: the executor is shutting down or shut down, and will run no new task");
    }
    join_handle<T> joiner(cell); // the join reference is already counted
    sched.schedule(cell);
    return joiner;
}

/// Wraps a plain callable in a task whose frame holds the callable: still
/// one allocation.
template <class F>
auto callable_task(F fn) -> task<std::invoke_result_t<F&>> {
    co_return fn();
}

/// A callable returning a task: the callable must outlive the task it
/// starts (a lambda's captures live in the lambda), so it is kept in an
/// outer frame.
template <class F>
auto callable_coroutine(F fn) -> typename std::invoke_result_t<F&> {
    co_return co_await fn();
}

template <class F>
auto as_task(F&& fn) {
    using result = std::invoke_result_t<std::decay_t<F>&>;
    if constexpr (is_task<result>::value) {
        return callable_coroutine(std::decay_t<F>(std::forward<F>(fn)));
    } else {
        return callable_task(std::decay_t<F>(std::forward<F>(fn)));
    }
}

inline scheduler& current_scheduler() {
    if (t_context.sched != nullptr) {
        return *t_context.sched;
    }
    if (t_blocking.spawn_target != nullptr) {
        return *t_blocking.spawn_target; // a blocking job: its executor
    }
    raise(errc::no_current_executor,
          "weft::spawn was called outside any executor: call it from a task running on a weft executor, or "
          "use executor::spawn / executor::block_on from other threads");
}

/// The worker the calling code runs on, for spawn_local.
inline std::uint32_t current_worker_or_raise() {
    if (t_context.sched == nullptr) {
        raise(errc::no_current_executor,
              "weft::spawn_local was called outside a weft worker: call it from a task (a blocking job is "
              "not on a worker), or use weft::spawn_pinned / executor::spawn_pinned with a worker index");
    }
    return t_context.worker_index;
}

} // namespace detail

/// The index of the worker the calling code runs on (0 to Workers - 1), or
/// nothing outside every executor's workers (other threads, blocking jobs).
/// A task that is not pinned may run on another worker after each
/// suspension.
inline std::optional<std::uint32_t> current_worker() noexcept {
    if (detail::t_context.sched == nullptr) {
        return std::nullopt;
    }
    return detail::t_context.worker_index;
}

/// Spawns a task on the executor running the calling task. Works from any
/// code running on a weft worker or in a blocking job (see
/// spawn_blocking), without the executor's template arguments. From other
/// threads use executor::spawn.
template <class T>
join_handle<T> spawn(task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work));
}

/// Spawns a plain callable (or one returning a weft::task) as a task.
template <detail::spawnable_callable F>
auto spawn(F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)));
}

/// Spawns a task pinned to worker `worker` of the executor running the
/// calling code: only that worker runs it, nobody steals it, and every task
/// it starts with spawn_local is pinned there too. The home for
/// thread-affine state (a handle that must stay on one thread, a
/// thread-local cache): Tokio's LocalSet. The price: a pinned task waits
/// while its worker is busy, even if others are idle. Raises
/// errc::invalid_argument if there is no such worker, and whatever spawn
/// raises.
///
/// ```cpp
/// auto h = weft::spawn_pinned(0, [] { return weft::current_worker(); }); // always 0
/// ```
template <class T>
join_handle<T> spawn_pinned(std::uint32_t worker, task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work), worker);
}

/// Spawns a plain callable (or one returning a weft::task) pinned to a worker.
template <detail::spawnable_callable F>
auto spawn_pinned(std::uint32_t worker, F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)), worker);
}

/// Spawns a task pinned to the worker the caller runs on (see
/// spawn_pinned). From a pinned task, that is its own worker: the task and
/// everything it spawns this way share one thread, and so may share state
/// without locks. From a task that is not pinned it is whichever worker
/// runs the caller now. Raises errc::no_current_executor outside a worker
/// (another thread, a blocking job), and whatever spawn raises.
template <class T>
join_handle<T> spawn_local(task<T>&& work) {
    return detail::spawn_on(detail::current_scheduler(), std::move(work), detail::current_worker_or_raise());
}

/// Spawns a plain callable (or one returning a weft::task) on the caller's worker.
template <detail::spawnable_callable F>
auto spawn_local(F&& fn) {
    return detail::spawn_on(detail::current_scheduler(), detail::as_task(std::forward<F>(fn)),
                            detail::current_worker_or_raise());
}

/// Suspends the calling task and puts it at the back of its worker's local
/// queue, so every task queued there runs before it resumes.
///
/// ```cpp
/// weft::task<> spin() { for (;;) co_await weft::yield_now(); }
/// ```
[[nodiscard]] inline auto yield_now() noexcept {
    struct awaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> self) const {
            detail::task_header* task = detail::t_context.current;
            if (task == nullptr) {
                detail::raise(errc::no_current_executor,
                              "weft::yield_now() was awaited outside a task run by a weft executor");
            }
            detail::suspend_until(task, self, nullptr, 0);
            detail::self_notify(task);
        }
        void await_resume() const noexcept {}
    };
    return awaiter{};
}

/// A work-stealing executor with `Workers` worker threads, each with a local
/// queue of `QueueSize` slots (a power of two). Everything on the
/// scheduling path is a fixed-size array sized here, at compile time.
/// The destructor shuts the executor down (see shutdown()).
template <std::uint32_t Workers, std::uint32_t QueueSize = 256, class Options = default_options>
class executor {
    static_assert(Workers >= 1, "an executor needs at least one worker thread (Workers >= 1)");
    static_assert(Workers <= 4096, "Workers must be at most 4096");
    static_assert(QueueSize >= 2, "the local queue size must be at least 2");
    static_assert((QueueSize & (QueueSize - 1)) == 0,
                  "the local queue size must be a power of two (2, 4, ..., 256)");
    static_assert(QueueSize <= (1u << 16), "the local queue size must be at most 65536");
    static_assert(Options::global_queue_interval >= 1, "Options::global_queue_interval must be at least 1");
    static_assert(Options::event_interval >= 1, "Options::event_interval must be at least 1");
    static_assert(Options::budget >= 1, "Options::budget must be at least 1");
    static_assert(Options::max_lifo_polls >= 1, "Options::max_lifo_polls must be at least 1");
    static_assert(Options::max_global_batch >= 1, "Options::max_global_batch must be at least 1");
    static_assert(Options::live_task_shards >= 1 &&
                      (Options::live_task_shards & (Options::live_task_shards - 1)) == 0,
                  "Options::live_task_shards must be a power of two");
    static_assert(Options::max_blocking_threads >= 1,
                  "Options::max_blocking_threads must be at least 1 (spawn_blocking needs a thread)");
    static_assert(Options::max_blocking_threads <= 4096,
                  "Options::max_blocking_threads must be at most 4096");

public:
    static constexpr std::uint32_t worker_count = Workers;
    static constexpr std::uint32_t queue_size = QueueSize;

    /// Starts the worker threads. Raises errc::invalid_argument for a
    /// setting the OS refuses (a CPU that does not exist, a stack below the
    /// minimum), errc::thread_start_failed if a thread cannot start; no
    /// thread is left running then.
    explicit executor(settings config = {})
        : m_settings(std::move(config)),
          m_blocking(m_blocking_slots,
                     detail::blocking_pool::config{m_settings.thread_name_prefix.c_str(),
                                                   m_settings.stack_size, m_settings.blocking_keep_alive,
                                                   Options::blocking_queue_capacity, &m_runtime}) {
        if (const int err = m_runtime.io_driver().error(); err != 0) {
            // Without epoll a parked worker could not sleep in the driver,
            // and without its eventfd it could never be woken there.
            std::string message =
                "cannot create the executor's I/O driver (epoll_create1 or eventfd failed: ";
            message += std::strerror(err);
            message += "); the process may be out of file descriptors";
            detail::raise(errc::capacity_exhausted, message.c_str());
        }
        for (std::uint32_t i = 0; i < Workers; ++i) {
            detail::thread_spec spec;
            detail::format_thread_name(spec.name, m_settings.thread_name_prefix.c_str(), i);
            spec.stack_size = m_settings.stack_size;
            spec.cpu = i < m_settings.worker_cpus.size() ? m_settings.worker_cpus[i] : -1;
            m_starts[i] = {this, i};
            const int rc = detail::start_thread(m_threads[i], spec, &thread_main, &m_starts[i]);
            if (rc != 0) {
                stop_threads();
                m_runtime.finish_shutdown();
                raise_start_error(rc, i, spec);
            }
            ++m_started;
        }
    }

    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;

    ~executor() {
        if (detail::t_context.sched == &m_runtime) {
            detail::panic(static_cast<int>(errc::blocking_on_worker),
                          "an executor was destroyed by one of its own tasks: destroy it from outside");
        }
        if (detail::t_blocking.pool == &m_blocking) {
            detail::panic(static_cast<int>(errc::blocking_on_worker),
                          "an executor was destroyed by one of its own blocking jobs, and would wait for "
                          "itself: destroy it from outside");
        }
        shutdown_impl(false);
    }

    /// Spawns a task from any thread: from one of this executor's workers it
    /// goes to that worker's queue, from anywhere else to the global queue.
    template <class T>
    join_handle<T> spawn(task<T>&& work) {
        return detail::spawn_on(m_runtime, std::move(work));
    }

    /// Spawns a plain callable (or one returning a weft::task).
    template <detail::spawnable_callable F>
    auto spawn(F&& fn) {
        return detail::spawn_on(m_runtime, detail::as_task(std::forward<F>(fn)));
    }

    /// Spawns a task pinned to worker `worker`, from any thread; see
    /// weft::spawn_pinned.
    template <class T>
    join_handle<T> spawn_pinned(std::uint32_t worker, task<T>&& work) {
        return detail::spawn_on(m_runtime, std::move(work), worker);
    }

    /// Spawns a plain callable (or one returning a weft::task) pinned to a worker.
    template <detail::spawnable_callable F>
    auto spawn_pinned(std::uint32_t worker, F&& fn) {
        return detail::spawn_on(m_runtime, detail::as_task(std::forward<F>(fn)), worker);
    }

    /// Runs `fn()` on one of this executor's blocking threads, from any
    /// thread; see weft::spawn_blocking (the same, for code running on the
    /// executor) for what it raises and how abort() behaves.
    ///
    /// ```cpp
    /// weft::executor<2> ex;
    /// auto h = ex.spawn_blocking([] { return std::ifstream("/proc/uptime").good(); });
    /// bool ok = h.get();
    /// ```
    template <detail::blocking_callable F>
    auto spawn_blocking(F&& fn) {
        return detail::spawn_blocking_on(m_blocking, std::forward<F>(fn));
    }

    /// Runs `work` on the executor and blocks the calling thread until it
    /// finishes; returns its value or rethrows its exception. Call it from a
    /// thread outside every weft executor's workers (a blocking job may call
    /// it): on a worker it raises errc::nested_runtime (there, co_await the
    /// task or spawn it).
    template <class T>
    T block_on(task<T>&& work) {
        if (detail::on_worker_thread()) {
            detail::raise(
                errc::nested_runtime,
                "cannot start a runtime from within a runtime: this thread is already driving weft "
                "tasks, and block_on would block it; co_await the task, or weft::spawn it, instead");
        }
        return spawn(std::move(work)).get();
    }

    /// Stops the executor, in two steps.
    ///
    /// 1. Blocking jobs: no new one is accepted (spawn_blocking raises
    ///    errc::executor_shut_down), the queued ones are destroyed without
    ///    running (their destructors run; joining one raises
    ///    errc::task_aborted), and the running ones are waited for. The
    ///    workers still run meanwhile, so what a blocking job spawns, wakes
    ///    or block_on's still happens, and tasks awaiting a job get its
    ///    result. With settings::blocking_shutdown_timeout > 0, if jobs
    ///    still run when it passes, shutdown() raises errc::timed_out and
    ///    stops there: the executor keeps running its tasks, accepts no
    ///    blocking job, and a later shutdown() (or the destructor) waits again.
    /// 2. Tasks: no new task is accepted (spawn raises
    ///    errc::executor_shut_down), the workers finish the task each is
    ///    running and exit, and every task that has not finished is destroyed
    ///    without being resumed (its destructors run; joining it raises
    ///    errc::task_aborted).
    ///
    /// Joins every thread. Idempotent; the destructor calls it (and waits
    /// for blocking jobs however long they run, printing a warning to stderr
    /// once blocking_shutdown_timeout has passed). Raises
    /// errc::blocking_on_worker from one of this executor's own workers or
    /// blocking jobs.
    ///
    /// ```cpp
    /// weft::settings s;
    /// s.blocking_shutdown_timeout = std::chrono::seconds(2);
    /// weft::executor<2> ex(s);
    /// try { ex.shutdown(); } catch (const weft::error& e) { /* a blocking job is stuck */ }
    /// ```
    void shutdown() {
        if (detail::t_context.sched == &m_runtime) {
            detail::raise(
                errc::blocking_on_worker,
                "executor::shutdown() was called by one of the executor's own tasks, and would wait for "
                "itself: call it from outside the executor");
        }
        if (detail::t_blocking.pool == &m_blocking) {
            detail::raise(errc::blocking_on_worker,
                          "executor::shutdown() was called by one of the executor's own blocking jobs, and "
                          "would wait for itself: call it from outside the executor");
        }
        if (!shutdown_impl(true)) {
            detail::raise(errc::timed_out,
                          "executor::shutdown(): blocking jobs were still running when "
                          "settings::blocking_shutdown_timeout passed; the executor still runs its tasks and "
                          "accepts no blocking job; call shutdown() again to keep waiting");
        }
    }

    /// A snapshot of the executor's counters (see weft/metrics.hpp).
    executor_metrics<Workers> metrics() const noexcept {
        executor_metrics<Workers> out;
        for (std::uint32_t i = 0; i < Workers; ++i) {
            const detail::worker_counters& c = m_runtime.counters(i);
            worker_metrics& w = out.workers[i];
            w.polls = c.polls.get();
            w.steals = c.steals.get();
            w.steal_operations = c.steal_operations.get();
            w.overflows = c.overflows.get();
            w.parks = c.parks.get();
            w.unparks = c.unparks.get();
            w.lifo_hits = c.lifo_hits.get();
            w.budget_forced_yields = c.budget_forced_yields.get();
            w.local_schedules = c.local_schedules.get();
            w.local_queue_depth = m_runtime.local_queue_depth(i);
            w.pinned_queue_depth = m_runtime.pinned_queue_depth(i);
            w.ticks = c.ticks.get();
            w.state = state_of(m_runtime.park_state(i));
        }
        out.global_queue_depth = m_runtime.global_queue_depth();
        out.live_tasks = m_runtime.live_tasks();
        out.spawned_tasks = m_runtime.spawned_tasks();
        out.remote_schedules = m_runtime.remote_schedules();
        out.parked_workers = m_runtime.parked_workers();
        out.searching_workers = m_runtime.searching_workers();
        const detail::driver& drv = m_runtime.io_driver();
        out.armed_timers = drv.armed_timers();
        out.io_sources = drv.registered_sources();
        out.driver_polls = drv.polls();
        out.blocking_threads = m_blocking.threads();
        out.idle_blocking_threads = m_blocking.idle_threads();
        out.blocking_queue_depth = m_blocking.queue_depth();
        return out;
    }

    /// The settings the executor was started with.
    const weft::settings& config() const noexcept { return m_settings; }

    /// The OS thread of worker `index` (to read its name, affinity, ...).
    pthread_t native_handle(std::uint32_t index) const noexcept { return m_threads[index]; }

private:
    struct start_args {
        executor* self = nullptr;
        std::uint32_t index = 0;
    };

    static worker_state state_of(detail::parker::observed observed) noexcept {
        switch (observed) {
        case detail::parker::observed::parked: return worker_state::parked;
        case detail::parker::observed::parked_in_driver: return worker_state::parked_in_driver;
        case detail::parker::observed::notified: return worker_state::notified;
        case detail::parker::observed::awake: break;
        }
        return worker_state::running;
    }

    static void* thread_main(void* arg) {
        auto* start = static_cast<start_args*>(arg);
        detail::t_blocking.pool = &start->self->m_blocking; // where weft::spawn_blocking goes
        start->self->m_runtime.run_worker(start->index);
        detail::t_blocking = {};
        return nullptr;
    }

    void stop_threads() noexcept {
        m_runtime.begin_shutdown();
        for (std::uint32_t i = 0; i < m_started; ++i) {
            ::pthread_join(m_threads[i], nullptr);
        }
        m_started = 0;
    }

    // Blocking jobs first, while the workers still run: a job may spawn
    // tasks, wake the task awaiting it, or block_on the executor, and all of
    // that must still work until the last job returns. False if the
    // blocking timeout passed (`bounded`) with jobs still running.
    bool shutdown_impl(bool bounded) noexcept {
        if (detail::t_context.shutting_down == this) {
            return true; // a destructor run by this very shutdown asked again
        }
        // A mutex, not a spinlock: a second caller may wait here for as long
        // as the blocking jobs run.
        std::lock_guard<std::mutex> hold(m_shutdown_lock);
        if (m_shut_down) {
            return true;
        }
        detail::t_context.shutting_down = this;
        if (!m_blocking.shutdown(m_settings.blocking_shutdown_timeout, bounded ? nullptr : &warn_slow_jobs)) {
            detail::t_context.shutting_down = nullptr;
            return false;
        }
        stop_threads();
        m_runtime.finish_shutdown();
        detail::t_context.shutting_down = nullptr;
        m_shut_down = true;
        return true;
    }

    static void warn_slow_jobs(std::size_t running) noexcept {
        std::fprintf(stderr,
                     "weft: warning: the executor's destructor is still waiting for %zu blocking job(s) "
                     "after settings::blocking_shutdown_timeout; it cannot free the executor before they "
                     "return\n",
                     running);
        std::fflush(stderr);
    }

    [[noreturn]] void raise_start_error(int rc, std::uint32_t index, const detail::thread_spec& spec) {
        std::string message = "cannot start worker " + std::to_string(index) + ": ";
        if (rc == EINVAL) {
            message += "the OS refused its settings (stack_size " + std::to_string(spec.stack_size) +
                       " bytes, cpu " + std::to_string(spec.cpu) +
                       "): the stack may be below PTHREAD_STACK_MIN or the CPU may not exist";
            detail::raise(errc::invalid_argument, message.c_str());
        }
        message += std::strerror(rc);
        detail::raise(errc::thread_start_failed, message.c_str());
    }

    detail::runtime<Workers, QueueSize, Options> m_runtime;
    weft::settings m_settings;
    std::array<pthread_t, Workers> m_threads{};
    std::array<start_args, Workers> m_starts{};
    std::uint32_t m_started = 0;
    std::array<detail::blocking_pool::slot, Options::max_blocking_threads> m_blocking_slots{};
    detail::blocking_pool m_blocking; // after m_settings and m_runtime, which it uses
    std::mutex m_shutdown_lock;
    bool m_shut_down = false;
};

} // namespace weft
