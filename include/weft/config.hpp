// weft/config.hpp: what you can tune, at compile time (Options) and at run
// time (settings).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace weft {

/// One size class of the frame pool (see default_options::use_frame_pool):
/// `blocks` blocks of `block_size` bytes each.
struct frame_pool_class {
    std::size_t block_size = 0; // bytes, a multiple of 16
    std::uint32_t blocks = 0;
};

/// What a coroutine frame does when its class of the frame pool has no free
/// block (or it is larger than the largest class).
enum class pool_exhaustion {
    use_heap, ///< take the block from the heap, as without the pool
    fail,     ///< no frame: spawning (or awaiting) the task raises errc::capacity_exhausted
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
    /// *before* its own (fairness for remote spawns). Lower: remote work
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
    /// FIFO scheduling.
    static constexpr bool enable_lifo_slot = true;

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

    /// Shards of the live-task list (a power of two). More: less contention
    /// between threads spawning at once, a few more bytes.
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

/// Run-time settings of an executor's threads, given to its constructor.
struct settings {
    /// Worker i is named "<prefix>-<i>" (what top -H, gdb and
    /// /proc/<pid>/task/<tid>/comm show). The OS allows 15 characters; the
    /// prefix is cut so that the index always fits.
    std::string thread_name_prefix = "weft";

    /// Stack size of each worker thread in bytes; 0 keeps the platform
    /// default (usually 8 MiB of address space). Tasks run on these stacks,
    /// but their coroutine frames live on the heap, so small stacks (64 KiB)
    /// are usually enough.
    std::size_t stack_size = 0;

    /// worker_cpus[i] pins worker i to that CPU; a missing entry or -1
    /// leaves the worker free. A CPU that does not exist is an error at
    /// construction (errc::invalid_argument).
    std::vector<int> worker_cpus;

    /// How long a blocking thread (see spawn_blocking) waits for a new job
    /// before it exits; the next job that finds no idle thread starts a new
    /// one. Blocking threads are named "<prefix>-blk-<i>", have stack_size
    /// and no CPU pinning.
    std::chrono::milliseconds blocking_keep_alive{10'000};

    /// How long an explicit executor::shutdown() waits for running blocking
    /// jobs before it gives up with errc::timed_out (the executor then keeps
    /// running, accepts no blocking job, and a later shutdown() waits
    /// again). 0: wait as long as they run. The destructor always waits
    /// until they finish: it cannot free what their threads use.
    std::chrono::milliseconds blocking_shutdown_timeout{0};
};

} // namespace weft
