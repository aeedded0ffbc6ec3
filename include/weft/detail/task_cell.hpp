// weft/detail/task_cell.hpp
//
// What it is for: the one block a spawned task lives in, and the state
// machine that decides who runs it, who wakes it, and who frees it.
//
// The block: promise_type::operator new allocates [ task_cell<T> | frame ]
// from the heap or from the executor's frame pool (frame_pool.hpp).
// The cell in front of the coroutine frame holds the task header (state word,
// queue links, the coroutine to resume, the join waker) and the join state
// (the task's result or exception). One allocation per spawn, and the header
// outlives the coroutine: a spawned task's co_return constructs its result
// in the cell, and when the task completes its frame is destroyed at once
// (its locals and captured arguments die promptly), while the cell stays
// until the last reference (join handle, queue, waker) goes.
//
// Only a spawned task uses its cell. A task that is only awaited inline may
// have no cell at all: clang's coroutine elision (HALO) may place its frame
// inside the parent's frame without calling operator new. A spawned task's
// handle escapes into the scheduler, which rules elision out.
//
// The state word (Tokio's task/state.rs, adapted): flag bits below, and a
// reference count in the bits above `ref_one`. References are held by:
//   - the coroutine frame, while it exists: dropped by promise operator
//     delete, except that a spawned task whose body returned drops it in
//     transition_to_complete (one read-modify-write for both), and a task
//     never spawned frees its block there directly (nobody else knows it);
//   - the join handle, while it exists;
//   - a queue or a running worker: a task is NOTIFIED (queued) or RUNNING,
//     and that state owns one reference;
//   - each registered waker (a join waker is the waiting task's reference).
// The block is freed when the count reaches zero.
//
// Transitions are CAS loops with acq_rel: each one both publishes what this
// thread wrote to the task (result, resume point) and observes what the last
// owner wrote.
//
// The transitions and reference counting are templates over the header
// type, which defaults to task_header (and is never deduced, so every caller
// uses that one instance): tests/model/task_state_model.cpp runs them under
// Relacy on a header whose state word is a Relacy atomic and whose
// join_waker_task is a checked variable.
#pragma once

#include <atomic>
#include <cassert>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "frame_pool.hpp"

namespace weft::detail {

class scheduler;

namespace task_state {
inline constexpr std::uint32_t running = 1u << 0;       // a worker is resuming it now
inline constexpr std::uint32_t notified = 1u << 1;      // it is (or must be put) in a run queue
inline constexpr std::uint32_t complete = 1u << 2;      // finished or cancelled; output is final
inline constexpr std::uint32_t join_interest = 1u << 3; // a join handle still exists
inline constexpr std::uint32_t join_waker = 1u << 4;    // header.join_waker is set and owned by the completer
inline constexpr std::uint32_t cancelled = 1u << 5;     // abort requested; the next run destroys it
inline constexpr std::uint32_t thread_waiter = 1u << 6; // a thread sleeps on this word in join_handle::get()
inline constexpr std::uint32_t ref_one = 1u << 7;
inline constexpr std::uint32_t flag_mask = ref_one - 1;
inline constexpr std::uint32_t ref_count(std::uint32_t state) noexcept { return state / ref_one; }
} // namespace task_state

enum class output_kind : std::uint8_t { none, value, exception, cancelled };

/// A weft::timeout around part of a task. While the task is suspended
/// inside the scope and `*fired` is nonzero (the timeout's timer expired),
/// the next poll resumes `handler` (the coroutine awaiting the timeout)
/// instead of the task's resume point. Scopes form a list, innermost first,
/// that only the task itself changes (while it runs).
struct cancel_scope {
    cancel_scope* outer = nullptr;
    const std::atomic<std::uint32_t>* fired = nullptr;
    std::coroutine_handle<> handler;
};

/// task_header::home of a task that any worker may run.
inline constexpr std::uint32_t no_home = ~std::uint32_t{0};

struct task_header {
    std::atomic<std::uint32_t> state{task_state::ref_one}; // one reference: the frame
    std::uint32_t block_origin = 0;                        // heap size, pool or worker cache (frame_pool.hpp)
    task_header* queue_next = nullptr;                     // global queue link
    task_header* owned_prev = nullptr;                     // live-task list links
    task_header* owned_next = nullptr;
    std::coroutine_handle<> resume_point; // the innermost suspended coroutine of this task
    // What the task waits for: resume only once (*wait_word & wait_mask) != 0.
    // Null: any wake resumes it. Set by the awaiter that suspends the task,
    // cleared by the poll that resumes it.
    const std::atomic<std::uint32_t>* wait_word = nullptr;
    std::uint32_t wait_mask = 0;
    cancel_scope* scopes = nullptr;         // innermost timeout scope the task is inside
    task_header* join_waker_task = nullptr; // the task to wake on completion (holds its reference)
    scheduler* owner = nullptr;             // set by spawn
    void (*drop_value)(task_header*) noexcept = nullptr; // destroys the typed result in place
    std::exception_ptr exception;
    output_kind output = output_kind::none;
    bool owned_bound = false;       // listed in the owner's live-task list (under its lock)
    std::uint16_t owned_shard = 0;  // which shard of that list (set by bind)
    std::uint32_t frame_offset = 0; // bytes from the block start to the coroutine frame
    std::uint32_t home = no_home;   // the worker a pinned task runs on (set by spawn)
};

/// Raw room for a T (nothing for void): constructed and destroyed by hand,
/// with the output_kind beside it saying whether it holds a value.
template <class T>
struct value_storage {
    alignas(T) unsigned char bytes[sizeof(T)];
    T* get() noexcept { return std::launder(reinterpret_cast<T*>(bytes)); }
};
template <>
struct value_storage<void> {};

/// Header plus room for a T result, constructed by a spawned task's co_return
/// and destroyed by drop_output (or moved out by a join).
template <class T>
struct task_cell : task_header {
    value_storage<T> storage;
};

/// The alignment operator new gives, which the coroutine frame keeps.
inline constexpr std::size_t frame_alignment = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

constexpr std::size_t round_up(std::size_t bytes, std::size_t alignment) noexcept {
    return (bytes + alignment - 1) / alignment * alignment;
}

/// Bytes between the start of the block and the coroutine frame: the cell,
/// rounded up to the frame's alignment.
template <class T>
inline constexpr std::size_t cell_prefix = round_up(sizeof(task_cell<T>), frame_alignment);

inline void* frame_of(task_header* header, std::size_t prefix) noexcept {
    return reinterpret_cast<unsigned char*>(header) + prefix;
}

/// The task's outermost coroutine (the one spawned). Destroying it destroys
/// every coroutine it awaits inline, innermost last.
inline std::coroutine_handle<> root_of(task_header* header) noexcept {
    return std::coroutine_handle<>::from_address(frame_of(header, header->frame_offset));
}

template <class T>
task_cell<T>* cell_of_frame(void* frame) noexcept {
    return reinterpret_cast<task_cell<T>*>(static_cast<unsigned char*>(frame) - cell_prefix<T>);
}

/// The typed destructor of a cell's result, installed by the promise.
template <class T>
void drop_value_of(task_header* header) noexcept {
    if constexpr (!std::is_void_v<T>) {
        static_cast<task_cell<T>*>(header)->storage.get()->~T();
    }
}

/// Destroys whatever output the cell holds (value or exception).
inline void drop_output(task_header* header) noexcept {
    if (header->output == output_kind::value && header->drop_value != nullptr) {
        header->drop_value(header);
    }
    header->exception = nullptr;
    header->output = output_kind::none;
}

/// A header parameter of the transitions below: task_header unless a model
/// test names another type.
template <class Header>
using header_ptr = std::type_identity_t<Header>*;

template <class Header = task_header>
inline void ref_inc(header_ptr<Header> header) noexcept {
    // Relaxed: a new reference is made from an existing one, which already
    // keeps the block alive (as std::shared_ptr's increment).
    header->state.fetch_add(task_state::ref_one, std::memory_order_relaxed);
}

/// Frees the block (to the heap or its frame pool); only called once the
/// reference count is zero.
inline void free_block(task_header* header) noexcept {
    drop_output(header);
    const std::uint32_t origin = header->block_origin;
    header->~task_header();
    free_frame(static_cast<void*>(header), origin);
}

/// Drops one reference; the last one frees the block.
template <class Header = task_header>
inline void ref_dec(header_ptr<Header> header) noexcept {
    // acq_rel: release our writes to the task before a possible free; the
    // thread that frees acquires everyone's.
    const std::uint32_t prev = header->state.fetch_sub(task_state::ref_one, std::memory_order_acq_rel);
    assert(task_state::ref_count(prev) >= 1);
    if (task_state::ref_count(prev) == 1) {
        free_block(header);
    }
}

/// What a worker must do with a task it popped from a queue.
enum class run_action { poll, cancel };

/// Queued -> running. The queue's reference becomes the running reference.
template <class Header = task_header>
inline run_action transition_to_running(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        assert((cur & task_state::notified) != 0 && (cur & task_state::running) == 0);
        const std::uint32_t next = (cur & ~task_state::notified) | task_state::running;
        if (header->state.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            return (cur & task_state::cancelled) != 0 ? run_action::cancel : run_action::poll;
        }
    }
}

/// What happens after a poll returned.
enum class idle_action { done, reschedule };

/// Running -> idle. If the task was woken while it ran (yield, budget, a
/// fast wake), it keeps the running reference and goes back to a queue;
/// if it completed, the running reference is dropped.
template <class Header = task_header>
inline idle_action transition_to_idle(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        if ((cur & task_state::complete) != 0) {
            ref_dec<Header>(header);
            return idle_action::done;
        }
        if ((cur & task_state::notified) != 0) {
            const std::uint32_t next = cur & ~task_state::running;
            if (header->state.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                                    std::memory_order_acquire)) {
                return idle_action::reschedule;
            }
            continue;
        }
        // Idle and not complete: the frame reference keeps the block alive,
        // so dropping ours in the same CAS cannot reach zero.
        const std::uint32_t next = (cur & ~task_state::running) - task_state::ref_one;
        if (header->state.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            return idle_action::done;
        }
    }
}

/// What a waker must do after marking a task notified.
enum class wake_action { none, submit };

/// Marks a task woken. Consumes the caller's reference: it either becomes
/// the queue's (submit: the caller must schedule the task) or is dropped.
template <class Header = task_header>
inline wake_action transition_to_notified(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        if ((cur & task_state::complete) != 0) {
            ref_dec<Header>(header);
            return wake_action::none;
        }
        if ((cur & (task_state::running | task_state::notified)) != 0) {
            // Queued or running: the runner polls it (again) with its own
            // reference; ours goes now (it cannot be the last: the queue or
            // the runner holds one). A CAS, not the load above and a
            // decrement: the load may return a NOTIFIED that the runner has
            // already cleared, and the runner may already have checked the
            // wait word (our store to it still in our store buffer); the CAS
            // either sees RUNNING and sets NOTIFIED, or precedes the
            // runner's transition_to_running, which then acquires the word.
            // (Found by tests/model/task_state_model.cpp.)
            const std::uint32_t next = (cur | task_state::notified) - task_state::ref_one;
            if (header->state.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                                    std::memory_order_acquire)) {
                return wake_action::none;
            }
            continue;
        }
        if (header->state.compare_exchange_weak(cur, cur | task_state::notified, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            return wake_action::submit;
        }
    }
}

/// Marks the running task (the caller) woken by itself: it goes back to a
/// queue after this poll, with the running reference.
template <class Header = task_header>
inline void self_notify(header_ptr<Header> header) noexcept {
    header->state.fetch_or(task_state::notified, std::memory_order_acq_rel);
}

/// Requests cancellation. Returns submit if the caller must schedule the
/// task (it was idle; a reference was added for the queue).
template <class Header = task_header>
inline wake_action transition_to_cancelled(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        if ((cur & (task_state::complete | task_state::cancelled)) != 0) {
            return wake_action::none;
        }
        std::uint32_t next = cur | task_state::cancelled;
        wake_action action = wake_action::none;
        if ((cur & task_state::running) != 0) {
            next |= task_state::notified; // the runner requeues it; the next run cancels
        } else if ((cur & task_state::notified) == 0) {
            next = (next | task_state::notified) + task_state::ref_one;
            action = wake_action::submit;
        }
        if (header->state.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            return action;
        }
    }
}

/// Publishes completion and returns the state just before it. After this
/// the joiner may read the output; the completer must no longer touch it
/// unless the previous state had no join interest. `drop_frame_ref`: the
/// frame's reference goes in the same step (a task whose body returned
/// keeps it through the frame's destruction for this: one locked
/// instruction fewer per task).
template <class Header = task_header>
inline std::uint32_t transition_to_complete(header_ptr<Header> header, bool drop_frame_ref = false) noexcept {
    if (drop_frame_ref) {
        // COMPLETE is clear (this is the one completion), so adding it sets
        // the bit; the caller's running reference keeps the count above 0.
        const std::uint32_t prev =
            header->state.fetch_sub(task_state::ref_one - task_state::complete, std::memory_order_acq_rel);
        assert((prev & task_state::complete) == 0 && task_state::ref_count(prev) >= 2);
        return prev;
    }
    return header->state.fetch_or(task_state::complete, std::memory_order_acq_rel);
}

/// Join handle gone. Returns true if the task had already completed, in
/// which case the handle owns the output and must dispose of it.
template <class Header = task_header>
inline bool drop_join_interest(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        if ((cur & task_state::complete) != 0) {
            return true;
        }
        if (header->state.compare_exchange_weak(cur, cur & ~task_state::join_interest,
                                                std::memory_order_acq_rel, std::memory_order_acquire)) {
            return false;
        }
    }
}

enum class join_register { registered, completed, busy };

/// Registers `waiter` (whose reference the caller made) as the join waker.
/// `completed`: the task finished first; `busy`: another waiter is already
/// registered (two tasks awaiting one handle). In both cases the caller
/// keeps its waker reference and must not suspend.
template <class Header = task_header>
inline join_register set_join_waker(header_ptr<Header> header, header_ptr<Header> waiter) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    if ((cur & task_state::complete) != 0) {
        return join_register::completed;
    }
    if ((cur & task_state::join_waker) != 0) {
        return join_register::busy;
    }
    header->join_waker_task = waiter; // ours until the bit is set
    for (;;) {
        if ((cur & task_state::complete) != 0) {
            header->join_waker_task = nullptr;
            return join_register::completed;
        }
        if (header->state.compare_exchange_weak(cur, cur | task_state::join_waker, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            return join_register::registered;
        }
    }
}

/// Takes the join waker back before completion (the waiting task is being
/// cancelled). Returns the waker, whose reference is now the caller's, or
/// null if the task completed first (the completer owns and wakes it).
template <class Header = task_header>
inline Header* unset_join_waker(header_ptr<Header> header) noexcept {
    std::uint32_t cur = header->state.load(std::memory_order_acquire);
    for (;;) {
        if ((cur & task_state::complete) != 0 || (cur & task_state::join_waker) == 0) {
            return nullptr;
        }
        if (header->state.compare_exchange_weak(cur, cur & ~task_state::join_waker, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
            Header* waiter = header->join_waker_task;
            header->join_waker_task = nullptr;
            return waiter;
        }
    }
}

} // namespace weft::detail
