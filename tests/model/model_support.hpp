// tests/model/model_support.hpp
//
// What the model test programs share:
//   - aligned_box: Relacy places the test object in ::malloc'd memory
//     (16-byte aligned), but weft's lock-free structures align their hot
//     fields to 64 bytes; a model test places each one by hand.
//   - parse_count: the numbers on a model program's command line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <new>
#include <utility>

namespace weft::model {

template <class T>
class aligned_box {
public:
    template <class... Args>
    explicit aligned_box(Args&&... args) {
        void* at = m_raw;
        std::size_t space = sizeof(m_raw);
        at = std::align(alignof(T), sizeof(T), at, space);
        m_object = ::new (at) T(std::forward<Args>(args)...);
    }
    ~aligned_box() { m_object->~T(); }
    aligned_box(const aligned_box&) = delete;
    aligned_box& operator=(const aligned_box&) = delete;

    T& get() noexcept { return *m_object; }

private:
    unsigned char m_raw[sizeof(T) + alignof(T)];
    T* m_object;
};

/// A positive number from the command line, or `fallback` if `text` is
/// null; anything else ends `program` with status 2.
inline std::uint64_t parse_count(const char* program, const char* text, std::uint64_t fallback) {
    if (text == nullptr) {
        return fallback;
    }
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || value == 0) {
        std::cerr << program << ": expected a positive number, got '" << text << "'\n";
        std::exit(2);
    }
    return value;
}

} // namespace weft::model
