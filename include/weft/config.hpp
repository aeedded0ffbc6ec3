// weft/config.hpp: what you can tune, at compile time (Options) and at run
// time (settings), and how the thread settings are checked and turned into
// what the OS is asked for.
#pragma once

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "detail/handlers.hpp"
#include "detail/thread.hpp"
#include "error.hpp"

namespace weft {

/// One size class of the frame pool (see default_options::use_frame_pool):
/// `blocks` blocks of `block_size` bytes each.
struct frame_pool_class {
    std::size_t block_size = 0; ///< bytes per block, a multiple of 16
    std::uint32_t blocks = 0;   ///< blocks of this size
};

/// What a coroutine frame does when its class of the frame pool has no free
/// block (or it is larger than the largest class).
enum class pool_exhaustion {
    use_heap, ///< take the block from the heap, as without the pool
    fail,     ///< no frame: spawning (or awaiting) the task raises errc::capacity_exhausted
};

/// The order a worker pops its own run queue in (default_options::queue_order).
enum class local_queue_order : std::uint8_t {
    fifo, ///< oldest first (Tokio); thieves take the oldest half
    lifo, ///< newest first, thieves take the oldest half (depth-first fork-join)
};

/// The compile-time knobs of an executor, in one place. Derive from it and
/// override what you need:
///
/// ```cpp
/// struct my_options : weft::default_options {
///     static constexpr std::uint32_t budget = 64;
/// };
/// weft::executor<2, 128, my_options> ex;
/// ```
///
/// Every knob is checked by a static_assert when the executor is
/// instantiated.
struct default_options {
    /// How many tasks a worker runs between two looks at the global queue
    /// *before* its own (fairness for remote spawns; each look takes a fair
    /// share of it, not one task). Lower: remote work
    /// waits less, local work loses some cache warmth. Go and Tokio use 61
    /// for busy runtimes, Tokio's current-thread runtime 31.
    static constexpr std::uint32_t global_queue_interval = 31;

    /// How many tasks a worker runs between two maintenance passes
    /// (metrics, shutdown; the reactor's non-blocking poll). Go's and
    /// Tokio's value. Lower: I/O is seen sooner, more overhead per task.
    static constexpr std::uint32_t event_interval = 61;

    /// Operations (joins that find their result ready, later timers, I/O
    /// and channel operations) a task may complete in one run before weft's
    /// awaitables make it yield. Tokio's value; it keeps one busy task from
    /// starving the rest of its worker's queue.
    static constexpr std::uint32_t budget = 128;

    /// The LIFO slot: the task most recently woken by a worker runs next on
    /// that worker (cache-warm message passing). Disable it for strictly
    /// FIFO scheduling. With queue_order = lifo it takes wakes only, never
    /// spawns.
    static constexpr bool enable_lifo_slot = true;

    /// The order in which a worker runs the tasks of its own queue.
    /// `fifo` (the default) runs the oldest first, as Tokio: fair to tasks
    /// that wake each other and to I/O-bound tasks, which is what a server
    /// wants. `lifo` makes each worker's queue a work-stealing deque
    /// (detail/lifo_queue.hpp): the worker runs its newest spawn or wake
    /// first, and thieves take half of the *oldest* tasks. Pick it for
    /// fork-join, recursive divide and conquer (fib, tree walks, parallel
    /// sort): the recursion goes depth-first and keeps O(depth) tasks alive
    /// per worker instead of a breadth-first frontier, and a thief takes the
    /// largest pending subtree. The price is fairness: a worker that keeps
    /// spawning runs its new tasks before older ones (which wait for a
    /// thief, the global-queue interval or the overflow to the global
    /// queue). In lifo order the LIFO slot (if enabled) takes wakes only,
    /// never spawns, which stay in the deque for thieves; QueueSize must be
    /// at most 16384.
    static constexpr local_queue_order queue_order = local_queue_order::fifo;

    /// LIFO-slot runs in a row before the worker goes back to its queue, so
    /// two tasks waking each other cannot starve the queue (Tokio's 3).
    static constexpr std::uint32_t max_lifo_polls = 3;

    /// Most tasks a worker takes from the global queue in one lock hold.
    static constexpr std::uint32_t max_global_batch = 128;

    /// Timers that can be pending at once (each sleep, timeout and interval
    /// tick holds one while it waits): a fixed array of about 40 bytes per
    /// timer. When all are in use, sleeping returns errc::capacity_exhausted.
    static constexpr std::uint32_t max_timers = 1024;

    /// Timer resolution in nanoseconds: the step of the timer wheel. Timers
    /// never fire early, and usually fire at their exact deadline plus the
    /// wake-up latency (the driver keeps exact deadlines for the next step);
    /// past 64 timers due in the same step, or at the end of a 64-step lap,
    /// one may fire up to a step late. The wheel spans 2^35 steps (about a
    /// year at 1 ms, as Tokio; 40 days at 100 us); longer sleeps still work,
    /// they are re-placed when the wheel reaches them.
    static constexpr std::uint64_t timer_resolution_ns = 1'000'000;

    /// File descriptors registered with the reactor at once (async_fd, each
    /// socket): a fixed array of 64 bytes per source. When all are in use,
    /// registration returns errc::capacity_exhausted.
    static constexpr std::uint32_t max_io_sources = 256;

    /// Events taken from epoll in one poll (12 bytes each). More events wait
    /// for the next poll.
    static constexpr std::uint32_t max_io_events = 256;

    /// Driver hand-off: a worker woken by I/O or a timer, about to run what
    /// it was woken for, first wakes a parked peer (if nobody searches) so
    /// that the peer takes over the reactor. Without it, a task that blocks
    /// its worker for a long time stalls every timer and socket until
    /// another worker parks (tokio#4730). It costs one extra wake-up per
    /// I/O-driven wake-up when the executor is otherwise idle.
    static constexpr bool driver_handoff = true;

    /// Shards of the live-task list for spawns from threads that are not
    /// workers (a power of two); each worker has a shard of its own. More:
    /// less contention between outside threads spawning at once.
    static constexpr std::uint32_t live_task_shards = 16;

    /// Most threads running spawn_blocking jobs at once. They start on
    /// demand (only when no blocking thread is idle) and retire after
    /// settings::blocking_keep_alive without work, so an executor that never
    /// blocks has none. Each costs a thread stack (settings::stack_size) while
    /// it lives. Small, because these are boards, not servers (Tokio's 512
    /// surprises its users): a job that needs one more thread than this waits
    /// in the queue below.
    static constexpr std::uint32_t max_blocking_threads = 16;

    /// spawn_blocking jobs that may wait for a free blocking thread (an
    /// intrusive list: no memory beyond the jobs themselves). When it is
    /// full, spawn_blocking raises errc::capacity_exhausted instead of
    /// queueing without limit. 0: never queue (a job needs a free thread).
    static constexpr std::uint32_t blocking_queue_capacity = 1024;

    /// The frame pool: coroutine frames (every weft::task, the task header
    /// and join state of a spawned task, which share its block, a spawned
    /// callable) and oneshot states come from fixed-size blocks of one
    /// region that the executor allocates once, at construction, instead of
    /// from the heap. With it on, a program whose tasks fit the classes
    /// below allocates nothing in its steady state, and its memory is known
    /// in advance. Off by default: turning it on is this one knob.
    ///
    /// ```cpp
    /// struct pooled : weft::default_options {
    ///     static constexpr bool use_frame_pool = true;
    /// };
    /// weft::executor<2, 256, pooled> ex;
    /// ```
    ///
    /// Which frames come from the pool: those made on the executor's workers
    /// and blocking threads (tasks started by its tasks, including the inline
    /// children of co_await and the operations of sockets and timeouts), and
    /// the callables given to executor::spawn and executor::spawn_blocking
    /// from any thread. A task made by calling a coroutine function on
    /// another thread (`ex.block_on(root())`, `ex.spawn(work())` from main)
    /// gets its frame from the heap: make it there with
    /// `ex.spawn([] { return work(); })` to have it pooled. Blocks go back to
    /// the pool from any thread; a block still held when the executor is
    /// destroyed (a join handle kept after it) keeps the region alive until
    /// it comes home. Allocation and release are a lock-free pop and push
    /// (one compare-exchange each) per block.
    static constexpr bool use_frame_pool = false;

    /// Without a frame pool: how many bytes of freed frames each worker may
    /// keep for its next tasks (0: none, every frame goes back to the heap).
    /// Frames up to 1 KiB made on a worker take a block of a 32-byte step;
    /// freed on that worker the block is kept, freed on another worker it
    /// goes home to the one that made it (in batches of 16), so no block
    /// crosses threads through the heap's locks. Freed on any other thread,
    /// or with its home's cache full, a block goes to the heap. A worker
    /// keeps at most about this many bytes (a batch more per sibling), and
    /// never more blocks than its tasks had live at once plus 15 per
    /// sibling; the metric cached_frame_bytes shows what the workers keep
    /// now. Executors of more than 64 workers have no caches. With glibc's
    /// malloc this took spawn_many_local (one worker spawns 10,000 tasks
    /// that both run) from 370-550 ns per task to about 100-130 on a 2-core
    /// x86 (docs/design.md, "The workers' frame caches").
    static constexpr std::size_t frame_cache_bytes = 256 * 1024;

    /// The pool's size classes, by increasing block_size (multiples of 16).
    /// A frame takes a block of the smallest class it fits in, never of a
    /// larger one, so each class's count is a guarantee: that many frames
    /// of that size can be live at once. The region costs the sum of
    /// block_size * blocks, plus 4 bytes per block and 64 per class
    /// (512 KiB in all by default). A frame's block includes the task
    /// header (112 bytes on 64-bit targets, more for a large result) and
    /// depends on the compiler: on x86-64 with g++ 12 a task that returns
    /// at once takes 192 bytes, one that sleeps 256, and a socket read or
    /// write runs two inline frames of about 420 and 470 bytes (clang merges
    /// them into one of about 820). The metric free_frame_blocks shows how
    /// full the pool runs.
    static constexpr std::array<frame_pool_class, 4> frame_pool_classes{{
        {256, 512},
        {512, 256},
        {1024, 128},
        {4096, 32},
    }};

    /// When a frame's class has no free block (or the frame is larger than
    /// the largest class): use_heap takes it from the heap as if there were
    /// no pool (the pool then bounds nothing, but nothing fails); fail makes
    /// the task empty, and spawning or awaiting it raises
    /// errc::capacity_exhausted (load shedding with a hard memory bound;
    /// with -fno-exceptions that goes to the panic handler). A full pool
    /// with use_heap is what a steady state that allocates means: size the
    /// classes so that it does not happen.
    static constexpr pool_exhaustion on_frame_pool_exhausted = pool_exhaustion::use_heap;
};

/// A thread's scheduling policy (see sched(7)).
enum class sched_policy {
    /// Keep the policy and priority of the thread that starts it, as
    /// std::thread does.
    inherit,
    /// SCHED_OTHER: the normal time-shared policy; priority 0 (weigh such
    /// threads with nice(2), e.g. setpriority() in on_thread_start).
    other,
    /// SCHED_FIFO: real time. The thread runs until it blocks or yields, or
    /// a thread of higher priority preempts it; priority 1..99 on Linux.
    fifo,
    /// SCHED_RR: SCHED_FIFO with a time slice among threads of the same
    /// priority.
    rr,
};

/// How one kind of thread is scheduled: a policy and its static priority.
///
/// ```cpp
/// weft::settings s;
/// s.worker_scheduling = {weft::sched_policy::fifo, 50};
/// ```
struct thread_scheduling {
    /// The policy; see sched_policy.
    sched_policy policy = sched_policy::inherit;
    /// For fifo and rr: from sched_get_priority_min to sched_get_priority_max
    /// (1..99 on Linux); for other and inherit: 0. Anything else is
    /// errc::invalid_argument at construction.
    int priority = 0;
};

/// Which kind of thread a hook is called on.
enum class thread_kind {
    /// One of the executor's worker threads (runs tasks).
    worker,
    /// One of the threads that run spawn_blocking jobs.
    blocking,
};

/// What on_thread_start and on_thread_stop are told about their thread.
struct thread_info {
    /// Worker or blocking thread.
    thread_kind kind = thread_kind::worker;
    /// The worker's index (0..Workers-1), or the blocking thread's slot
    /// (the <i> of its name "<prefix>-blk-<i>"). A blocking thread that
    /// retired leaves its slot to a later thread, which gets the same index.
    std::uint32_t index = 0;
};

/// A hook called on an executor's own threads; see settings::on_thread_start.
using thread_hook = std::function<void(thread_info)>;

/// Run-time settings of an executor's threads, given to its constructor.
struct settings {
    /// Worker i is named "<prefix>-<i>", blocking thread i "<prefix>-blk-<i>"
    /// (what top -H, gdb and /proc/<pid>/task/<tid>/comm show). The OS
    /// allows 15 characters; the prefix is cut so that the index always fits.
    std::string thread_name_prefix = "weft";

    /// Stack size of each worker thread in bytes; 0 keeps the platform
    /// default (usually 8 MiB of address space). Tasks run on these stacks,
    /// but their coroutine frames live on the heap, so small stacks (64 KiB)
    /// are usually enough. Below PTHREAD_STACK_MIN is errc::invalid_argument.
    std::size_t stack_size = 0;

    /// Stack size of each blocking thread in bytes; 0: the same as
    /// stack_size. Blocking jobs run ordinary library code on these stacks,
    /// which may want more than a worker does.
    std::size_t blocking_stack_size = 0;

    /// worker_cpus[i] pins worker i to that CPU; a missing entry or -1
    /// leaves the worker to worker_cpu_set. A CPU that does not exist is
    /// errc::invalid_argument at construction.
    std::vector<int> worker_cpus;

    /// The CPUs on which the workers that worker_cpus leaves free may run
    /// (e.g. the cores kept for the application with isolcpus); empty: the
    /// CPUs of the thread that constructs the executor.
    std::vector<int> worker_cpu_set;

    /// The CPUs on which blocking threads may run; empty: the CPUs of the
    /// thread that constructs the executor. Either way a blocking thread
    /// does not inherit the pinning of the worker that happened to start it.
    std::vector<int> blocking_cpu_set;

    /// Scheduling policy and priority of the workers. The default inherits
    /// those of the thread that constructs the executor. A real-time policy
    /// (fifo, rr) needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least the
    /// priority; without either the constructor raises errc::not_permitted,
    /// saying so. A priority out of range is errc::invalid_argument.
    ///
    /// ```cpp
    /// weft::settings s;
    /// s.worker_scheduling = {weft::sched_policy::fifo, 40}; // tasks preempt the rest of the board
    /// s.worker_cpus = {2, 3};                                // on the isolated cores
    /// weft::executor<2> ex(s);                               // blocking threads stay SCHED_OTHER
    /// ```
    thread_scheduling worker_scheduling{};

    /// per_worker_scheduling[i], when present, is worker i's policy and
    /// priority instead of worker_scheduling (as worker_cpus is for CPUs):
    /// e.g. one real-time worker for a control loop beside SCHED_OTHER ones.
    /// Each entry is checked as worker_scheduling is; entries past the last
    /// worker are ignored.
    ///
    /// ```cpp
    /// weft::settings s;
    /// s.per_worker_scheduling = {{weft::sched_policy::fifo, 50}}; // worker 0 real-time
    /// s.worker_scheduling = {weft::sched_policy::other, 0};       // the others not
    /// weft::executor<2> ex(s);
    /// ```
    std::vector<thread_scheduling> per_worker_scheduling;

    /// Scheduling policy and priority of the blocking threads. SCHED_OTHER by
    /// default, whatever the workers have: blocking jobs wait on slow calls
    /// and should not compete with real-time tasks, and a blocking thread
    /// must not inherit the policy of whichever worker happened to start it.
    /// A real-time policy here is checked at construction (one short-lived
    /// thread is started with it) and raises as worker_scheduling does. (A
    /// process that runs under SCHED_IDLE without CAP_SYS_NICE may not start
    /// SCHED_OTHER threads: there, use sched_policy::inherit.)
    thread_scheduling blocking_scheduling{sched_policy::other, 0};

    /// Called on each worker and blocking thread when it starts, before it
    /// runs any task or job, with the thread's name, stack, CPUs and
    /// policy already applied; and on_thread_stop when it stops, after its
    /// last task or job. Every thread that called on_thread_start calls
    /// on_thread_stop, even when a later thread fails to start.
    ///
    /// Hooks run on the thread itself, outside any task: they may set
    /// thread-locals, name or tune the thread (nice, mlock, signal masks),
    /// register it with a watchdog or a profiler. They must not use the
    /// executor: weft::spawn and weft::spawn_blocking raise
    /// errc::no_current_executor there, and a worker's start hook may run
    /// while the constructor is still starting threads, its stop hook while
    /// shutdown waits for it. Keep them short: a worker runs no task until
    /// its start hook returns, and shutdown waits for every stop hook. They
    /// run on several threads at once, so what they share needs a lock or
    /// atomics. A hook that throws ends the process through the panic
    /// handler (errc::invalid_argument, naming the hook and the thread).
    ///
    /// ```cpp
    /// thread_local int t_core = -1;
    /// weft::settings s;
    /// s.on_thread_start = [](weft::thread_info info) {
    ///     if (info.kind == weft::thread_kind::worker) t_core = static_cast<int>(info.index);
    /// };
    /// ```
    thread_hook on_thread_start;

    /// Called on each worker and blocking thread after its last task or
    /// job; see on_thread_start.
    thread_hook on_thread_stop;

    /// How long a blocking thread (see spawn_blocking) waits for a new job
    /// before it exits; the next job that finds no idle thread starts a new
    /// one.
    std::chrono::milliseconds blocking_keep_alive{10'000};

    /// How long an explicit executor::shutdown() waits for running blocking
    /// jobs before it gives up with errc::timed_out (the executor then keeps
    /// running, accepts no blocking job, and a later shutdown() waits
    /// again). 0: wait as long as they run. The destructor always waits
    /// until they finish: it cannot free what their threads use.
    std::chrono::milliseconds blocking_shutdown_timeout{0};
};

namespace detail {

// ---- settings -> thread_spec ---------------------------------------------------
// Everything the OS can be asked about without starting a thread is checked
// here, at construction, with errc::invalid_argument and the setting's
// name; what only pthread_create can tell (permission, CPUs outside the
// process's cpuset) comes back through raise_thread_start_error. Messages
// are formatted with snprintf into a buffer rather than with std::string
// concatenation: this code runs once, and every byte of it is in every
// program (a few KiB of inlined string building otherwise).

/// A message under construction; raise() copies it out.
struct message_buffer {
    char text[640] = {};
    std::size_t used = 0;

    [[gnu::format(printf, 2, 3)]] void add(const char* format, ...) noexcept {
        if (used + 1 >= sizeof text) {
            return; // full: the message is cut
        }
        std::va_list args;
        va_start(args, format);
        const int n = std::vsnprintf(text + used, sizeof text - used, format, args);
        va_end(args);
        if (n > 0) {
            used += static_cast<std::size_t>(n);
        }
    }
};

/// Appends "0,2-3" (a CPU set as taskset and /sys print it) to `out`.
inline void describe_cpus(message_buffer& out, const cpu_set_t& cpus) noexcept {
    const char* separator = "";
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(static_cast<std::size_t>(cpu), &cpus)) {
            continue;
        }
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(static_cast<std::size_t>(last + 1), &cpus)) {
            ++last;
        }
        out.add("%s%d", separator, cpu);
        if (last > cpu) {
            out.add("-%d", last);
        }
        separator = ",";
        cpu = last;
    }
}

/// Appends "[i] (worker i)" to a message about entry `index` of a
/// per-worker setting; nothing for index -1.
inline void add_index(message_buffer& message, long index) {
    if (index >= 0) {
        message.add("[%ld] (worker %ld)", index, index);
    }
}

/// Pins `spec` to the `count` CPUs at `cpus` (none: leaves it alone);
/// raises errc::invalid_argument for a CPU this machine does not have.
/// `setting` and `index` name the setting in the message.
inline void apply_cpus(thread_spec& spec, const int* cpus, std::size_t count, const char* setting,
                       long index) {
    if (count == 0) {
        return;
    }
    const long configured = ::sysconf(_SC_NPROCESSORS_CONF);
    const int limit = configured > 0 && configured < CPU_SETSIZE ? static_cast<int>(configured) : CPU_SETSIZE;
    CPU_ZERO(&spec.cpus);
    for (std::size_t i = 0; i < count; ++i) {
        if (cpus[i] < 0 || cpus[i] >= limit) {
            message_buffer message;
            message.add("settings::%s", setting);
            add_index(message, index);
            message.add(" names CPU %d, which does not exist: this machine has CPUs 0-%d", cpus[i],
                        limit - 1);
            raise(errc::invalid_argument, message.text);
        }
        CPU_SET(static_cast<std::size_t>(cpus[i]), &spec.cpus);
    }
    spec.pinned = true;
}

/// Sets `spec`'s policy and priority; raises errc::invalid_argument for a
/// priority the policy does not take. `index` >= 0 names the entry of a
/// per-worker setting.
inline void apply_scheduling(thread_spec& spec, const thread_scheduling& sched, const char* setting,
                             long index = -1) {
    int policy = -1;
    switch (sched.policy) {
    case sched_policy::inherit: break;
    case sched_policy::other: policy = SCHED_OTHER; break;
    case sched_policy::fifo: policy = SCHED_FIFO; break;
    case sched_policy::rr: policy = SCHED_RR; break;
    default: {
        message_buffer message;
        message.add("settings::%s", setting);
        add_index(message, index);
        message.add(": unknown sched_policy %d", static_cast<int>(sched.policy));
        raise(errc::invalid_argument, message.text);
    }
    }
    const int low = policy >= 0 ? ::sched_get_priority_min(policy) : 0;
    const int high = policy >= 0 ? ::sched_get_priority_max(policy) : 0;
    if (sched.priority < low || sched.priority > high) {
        message_buffer message;
        message.add("settings::%s", setting);
        add_index(message, index);
        message.add(": priority %d is out of range for %s (%d..%d)", sched.priority, policy_name(policy), low,
                    high);
        if (policy == SCHED_OTHER || policy < 0) {
            message.add("; a priority needs sched_policy::fifo or sched_policy::rr (for SCHED_OTHER, set a "
                        "nice value in on_thread_start)");
        }
        raise(errc::invalid_argument, message.text);
    }
    spec.policy = policy;
    spec.priority = sched.priority;
}

/// How worker `index` starts.
inline thread_spec worker_thread_spec(const settings& config, std::uint32_t index) {
    thread_spec spec;
    format_thread_name(spec.name, config.thread_name_prefix.c_str(), index);
    spec.stack_size = config.stack_size;
    if (index < config.worker_cpus.size() && config.worker_cpus[index] != -1) {
        apply_cpus(spec, &config.worker_cpus[index], 1, "worker_cpus", static_cast<long>(index));
    } else {
        apply_cpus(spec, config.worker_cpu_set.data(), config.worker_cpu_set.size(), "worker_cpu_set", -1);
    }
    if (index < config.per_worker_scheduling.size()) {
        apply_scheduling(spec, config.per_worker_scheduling[index], "per_worker_scheduling",
                         static_cast<long>(index));
    } else {
        apply_scheduling(spec, config.worker_scheduling, "worker_scheduling");
    }
    return spec;
}

/// How every blocking thread starts (the pool names each). Its CPUs are
/// always explicit: blocking_cpu_set, or those of the calling thread.
inline thread_spec blocking_thread_spec(const settings& config) {
    thread_spec spec;
    spec.stack_size = config.blocking_stack_size != 0 ? config.blocking_stack_size : config.stack_size;
    apply_cpus(spec, config.blocking_cpu_set.data(), config.blocking_cpu_set.size(), "blocking_cpu_set", -1);
    if (!spec.pinned) {
        spec.pinned = current_cpus(spec.cpus);
    }
    apply_scheduling(spec, config.blocking_scheduling, "blocking_scheduling");
    return spec;
}

/// Raises the error for a thread the OS refused to start. `who` and
/// `index` name it: ("worker", 3) or ("a blocking thread", -1).
[[noreturn]] inline void raise_thread_start_error(int rc, const char* who, long long index,
                                                  const thread_spec& spec) {
    message_buffer message;
    message.add("cannot start %s", who);
    if (index >= 0) {
        message.add(" %lld", index);
    }
    message.add(": ");
    if (rc == EPERM && (spec.policy == SCHED_FIFO || spec.policy == SCHED_RR)) {
        message.add(
            "%s priority %d is not permitted. A real-time policy needs CAP_SYS_NICE (run as root, or "
            "`setcap cap_sys_nice+ep` the program) or an RLIMIT_RTPRIO of at least %d (`ulimit -r`, "
            "`rtprio` in /etc/security/limits.conf); in a container, the container needs CAP_SYS_NICE "
            "too",
            policy_name(spec.policy), spec.priority, spec.priority);
        raise(errc::not_permitted, message.text);
    }
    if (rc == EPERM) {
        message.add("the OS did not permit %s (EPERM); a process under SCHED_IDLE needs CAP_SYS_NICE or "
                    "RLIMIT_NICE to start threads under another policy (or use sched_policy::inherit)",
                    policy_name(spec.policy));
        raise(errc::not_permitted, message.text);
    }
    if (rc == EINVAL) {
        message.add("the OS refused its settings (stack_size %zu bytes, CPUs ", spec.stack_size);
        if (spec.pinned) {
            describe_cpus(message, spec.cpus);
        } else {
            message.add("inherited");
        }
        message.add(", %s priority %d): the stack may be below PTHREAD_STACK_MIN, or none of the CPUs may be "
                    "online and allowed to this process",
                    policy_name(spec.policy), spec.priority);
        raise(errc::invalid_argument, message.text);
    }
    message.add("%s (the process may be at its thread limit, RLIMIT_NPROC, or out of memory)",
                std::strerror(rc));
    raise(errc::thread_start_failed, message.text);
}

/// Calls a hook on the thread it describes; a hook that throws ends the
/// process through the panic handler.
inline void call_thread_hook(const thread_hook& hook, thread_info info, const char* hook_name) noexcept {
    if (!hook) {
        return;
    }
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    try {
        hook(info);
    } catch (...) {
        message_buffer message;
        message.add("settings::%s threw on %s %u; hooks must not throw", hook_name,
                    info.kind == thread_kind::worker ? "worker" : "blocking thread", info.index);
        panic(static_cast<int>(errc::invalid_argument), message.text);
    }
#else
    hook(info);
    (void)hook_name;
#endif
}

/// The pool's view of on_thread_start / on_thread_stop for blocking
/// threads; `config` must outlive the pool.
inline thread_hooks blocking_thread_hooks(const settings& config) noexcept {
    thread_hooks hooks;
    hooks.call = [](const void* context, bool start, std::uint32_t index) noexcept {
        const auto& s = *static_cast<const settings*>(context);
        call_thread_hook(start ? s.on_thread_start : s.on_thread_stop, {thread_kind::blocking, index},
                         start ? "on_thread_start" : "on_thread_stop");
    };
    hooks.context = &config;
    return hooks;
}

} // namespace detail

} // namespace weft
