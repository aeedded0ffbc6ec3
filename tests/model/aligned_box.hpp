// tests/model/aligned_box.hpp
//
// Relacy places the test object in ::malloc'd memory (16-byte aligned), but
// weft's lock-free structures align their hot fields to 64 bytes; a model
// test places each one by hand in an aligned_box.
#pragma once

#include <cstddef>
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

} // namespace weft::model
