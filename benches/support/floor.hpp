// benches/support/floor.hpp: the floor no executor can beat. A bare lazy
// coroutine (`floor_task<T>`) with symmetric transfer and nothing else: no
// scheduler, no queue, no atomics, no join state. Its frame comes from the
// global operator new, as weft's does.
//
// spawn_floor creates N of them, resumes each to completion and destroys
// it, on one thread; the fork-join floor runs the same recursion as the
// executors with every child awaited inline. What an executor adds on top
// of that is its cost.
#pragma once

#include <coroutine>
#include <exception>
#include <utility>

namespace bench {

template <class T>
class floor_task;

namespace detail {

// As weft does (detail/scheduler.hpp): clang makes symmetric transfer a tail
// call at every optimisation level; g++ only as an optimisation, so a g++
// Debug build would nest every transfer on the stack. With g++ the next
// coroutine is parked here and run() resumes it, at the same cost as weft.
#if defined(__clang__)
inline constexpr bool floor_trampoline = false;
#else
inline constexpr bool floor_trampoline = true;
#endif
inline thread_local std::coroutine_handle<> t_floor_next;

inline std::coroutine_handle<> floor_transfer(std::coroutine_handle<> next) noexcept {
    if constexpr (floor_trampoline) {
        t_floor_next = next;
        return std::noop_coroutine();
    }
    return next;
}

template <class T>
struct floor_promise_base {
    std::coroutine_handle<> continuation;

    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
        struct to_parent {
            bool await_ready() noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept {
                return next ? floor_transfer(next) : std::noop_coroutine();
            }
            void await_resume() noexcept {}
            std::coroutine_handle<> next;
        };
        return to_parent{continuation};
    }
    void unhandled_exception() noexcept { std::terminate(); }
};

template <class T>
struct floor_promise : floor_promise_base<T> {
    T value{};
    floor_task<T> get_return_object() noexcept;
    void return_value(T v) noexcept { value = std::move(v); }
    T take() noexcept { return std::move(value); }
};

template <>
struct floor_promise<void> : floor_promise_base<void> {
    floor_task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() noexcept {}
};

} // namespace detail

/// A lazy coroutine: `co_await` runs it inline; run() resumes a top-level
/// one to completion on the calling thread.
template <class T = void>
class [[nodiscard]] floor_task {
public:
    using promise_type = detail::floor_promise<T>;

    floor_task() noexcept = default;
    explicit floor_task(std::coroutine_handle<promise_type> h) noexcept : m_handle(h) {}
    floor_task(floor_task&& other) noexcept : m_handle(std::exchange(other.m_handle, nullptr)) {}
    floor_task& operator=(floor_task&& other) noexcept {
        std::swap(m_handle, other.m_handle);
        return *this;
    }
    ~floor_task() {
        if (m_handle) {
            m_handle.destroy();
        }
    }

    /// Resumes the coroutine; it runs to its end (it never suspends on
    /// anything but inline children).
    T run() {
        m_handle.resume();
        if constexpr (detail::floor_trampoline) {
            while (detail::t_floor_next) {
                std::exchange(detail::t_floor_next, nullptr).resume();
            }
        }
        return m_handle.promise().take();
    }

    auto operator co_await() && noexcept {
        struct awaiter {
            std::coroutine_handle<promise_type> child;
            bool await_ready() const noexcept { return false; }
            std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
                child.promise().continuation = parent;
                return detail::floor_transfer(child);
            }
            T await_resume() noexcept { return child.promise().take(); }
        };
        return awaiter{m_handle};
    }

private:
    std::coroutine_handle<promise_type> m_handle;
};

namespace detail {
template <class T>
floor_task<T> floor_promise<T>::get_return_object() noexcept {
    return floor_task<T>(std::coroutine_handle<floor_promise<T>>::from_promise(*this));
}
inline floor_task<void> floor_promise<void>::get_return_object() noexcept {
    return floor_task<void>(std::coroutine_handle<floor_promise<void>>::from_promise(*this));
}
} // namespace detail

} // namespace bench
