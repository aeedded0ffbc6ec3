// weft/result.hpp: the value of an operation that can fail at run time.
//
// Expected failures (I/O errors, timeouts, closed descriptors, exhausted
// capacity) are values, not exceptions: `weft::result<T>` holds either a T
// or a std::error_code. An errno from the OS arrives as
// std::error_code(errno, std::generic_category()), which compares equal to
// std::errc values; weft's own conditions compare equal to weft::errc.
//
// ```cpp
// weft::result<std::size_t> n = co_await stream.read(buffer);
// if (!n) {
//     if (n.error() == std::errc::connection_reset) { /* ... */ }
//     co_return;
// }
// consume(buffer.first(*n));
// ```
#pragma once

#include <cerrno>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

#include "error.hpp"

namespace weft {

/// A T or the std::error_code saying why there is none. Works with
/// -fno-exceptions: value() on an error goes to the panic handler.
template <class T>
class result {
    static_assert(!std::is_reference_v<T>, "weft::result<T&> is not supported: hold a pointer");

public:
    /// The type of the value.
    using value_type = T;

    /// A result holding `value` (copied or moved in).
    result(const T& value) noexcept(std::is_nothrow_copy_constructible_v<T>) : m_ok(true) {
        ::new (static_cast<void*>(&m_value)) T(value);
    }
    result(T&& value) noexcept(std::is_nothrow_move_constructible_v<T>) : m_ok(true) {
        ::new (static_cast<void*>(&m_value)) T(std::move(value));
    }
    /// A result holding an error. (A result<std::error_code> holds an
    /// error_code value; its errors come from errc only.)
    result(std::error_code error) noexcept requires(!std::is_same_v<T, std::error_code>)
        : m_ok(false), m_error(error) {}
    result(errc error) noexcept : m_ok(false), m_error(make_error_code(error)) {}

    result(const result& other) noexcept(std::is_nothrow_copy_constructible_v<T>)
        : m_ok(other.m_ok), m_error(other.m_error) {
        if (m_ok) {
            ::new (static_cast<void*>(&m_value)) T(other.m_value);
        }
    }
    result(result&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
        : m_ok(other.m_ok), m_error(other.m_error) {
        if (m_ok) {
            ::new (static_cast<void*>(&m_value)) T(std::move(other.m_value));
        }
    }
    result& operator=(result other) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &other) {
            reset();
            m_ok = other.m_ok;
            m_error = other.m_error;
            if (m_ok) {
                ::new (static_cast<void*>(&m_value)) T(std::move(other.m_value));
            }
        }
        return *this;
    }
    ~result() { reset(); }

    /// True if it holds a value, false if it holds an error.
    bool has_value() const noexcept { return m_ok; }
    explicit operator bool() const noexcept { return m_ok; }

    /// The error; a default (zero) error_code when there is a value.
    std::error_code error() const noexcept { return m_error; }

    /// The value. On an error this is a programming error: it raises a
    /// weft::error carrying the error's message (or panics without exceptions).
    T& value() & {
        check();
        return m_value;
    }
    const T& value() const& {
        check();
        return m_value;
    }
    T&& value() && {
        check();
        return std::move(m_value);
    }
    T& operator*() & noexcept { return m_value; }
    const T& operator*() const& noexcept { return m_value; }
    T&& operator*() && noexcept { return std::move(m_value); }
    T* operator->() noexcept { return &m_value; }
    const T* operator->() const noexcept { return &m_value; }

    /// The value, or `fallback` on an error.
    template <class U>
    T value_or(U&& fallback) const& {
        return m_ok ? m_value : static_cast<T>(std::forward<U>(fallback));
    }

private:
    void reset() noexcept {
        if (m_ok) {
            m_value.~T();
            m_ok = false;
        }
    }
    void check() const {
        if (!m_ok) {
            detail::raise_error_code(m_error);
        }
    }

    bool m_ok;
    std::error_code m_error;
    union {
        T m_value;
    };
};

/// Success, or the error saying why not.
template <>
class result<void> {
public:
    /// There is no value: only success or an error.
    using value_type = void;

    /// Success.
    result() noexcept = default;
    /// An error.
    result(std::error_code error) noexcept : m_error(error) {}
    result(errc error) noexcept : m_error(make_error_code(error)) {}

    /// True on success.
    bool has_value() const noexcept { return !m_error; }
    explicit operator bool() const noexcept { return !m_error; }
    /// The error; a default (zero) error_code on success.
    std::error_code error() const noexcept { return m_error; }
    /// Raises a weft::error (or panics) if this holds an error.
    void value() const {
        if (m_error) {
            detail::raise_error_code(m_error);
        }
    }

private:
    std::error_code m_error;
};

namespace detail {
/// The error of the last failed system call, as a result.
inline std::error_code last_error() noexcept { return {errno, std::generic_category()}; }
} // namespace detail

} // namespace weft
