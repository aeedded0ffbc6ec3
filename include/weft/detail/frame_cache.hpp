// weft/detail/frame_cache.hpp
//
// What it is for: the memory of coroutine frames made on a worker, without
// the heap's cross-thread cost (Options::frame_cache_bytes). Each worker
// keeps the blocks its tasks freed, by size class, and its next frames
// reuse them. A block freed on another worker of the same executor goes
// back to the worker that allocated it, not to the heap.
//
// Why: a task is usually made on one worker and freed on another (a thief
// ran it, or the worker that completed it dropped the last reference).
// glibc's malloc frees a block into the arena it came from, under that
// arena's lock, while its owner allocates from it under the same lock: in
// spawn_many_local (one worker spawns 10,000 tasks, both run them) the two
// cores fought over that lock for 3/4 of the time per task (perf: _int_free,
// __lll_lock_wait_private and futex calls; 370-550 ns per task with glibc,
// 80-100 ns with tcmalloc preloaded).
//
// The pieces:
//   - classes: blocks of 32-byte steps up to 1 KiB, the same for every
//     executor, so any cache may keep any cached block of a class. Larger
//     frames come from the heap as before.
//   - origin: a cached block records (task_header::block_origin, 32 bits)
//     the flag `cached_origin`, its class, the index of the worker that
//     allocated it and the executor's group (a number per executor).
//   - per worker, owner only: a free list per class (linked through the free
//     blocks) and the bytes they hold, at most `limit` (beyond it, a freed
//     block goes to the heap).
//   - per worker, shared: `m_returned`, the blocks sibling workers sent home,
//     a lock-free stack that senders push onto (compare-exchange) and its
//     owner takes whole (exchange), so no ABA can arise. The owner takes it
//     when a class it allocates from is empty. A sender that finds the
//     home's free lists and stack at `limit` gives the batch to the heap.
//   - per worker, owner only: an outbox per sibling, where blocks to send
//     home wait until `batch` of them go with one compare-exchange. A worker
//     flushes its outboxes before it parks and when it stops.
//
// Invariants:
//   - A block is in at most one place: a task, a free list, an outbox or a
//     returned stack; a free block's first bytes hold a `link`.
//   - Caches are used only by their worker's thread (t_frame_cache), while
//     the executor runs; free_frame on any other thread (main, a blocking
//     thread) gives a cached block to the heap, as does the executor when
//     its workers have stopped (release_all).
//   - What a worker keeps is bounded twice: by `limit` (its free lists and
//     returned stack; a batch more per sender, from stale reads), and by its
//     peak of live blocks plus batch - 1 per sibling: it allocates from the
//     heap only with its free list of that class and its returned stack
//     empty, so every block it made then is in use or in an outbox.
//   - Under AddressSanitizer a cached block is poisoned while it is free, so
//     a use after free still reports.
//
// Memory orders: a sender's compare-exchange (release) publishes the links
// it wrote into the blocks; the owner's exchange (acquire) reads them. The
// blocks' previous contents were handed to the freeing thread by the task's
// reference count (acq_rel) before the free.
//
// Where it comes from: oneTBB's small object pool (a per-thread free list
// and a public list that other threads return blocks to) and mimalloc's
// thread-free lists; the batches are tcmalloc's transfer batches in small.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_DETAIL_ASAN 1
#endif
#endif
#if defined(WEFT_DETAIL_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace weft::detail {

/// A block's origin (see frame_pool.hpp) when it came from a frame cache.
inline constexpr std::uint32_t cached_origin = 0x4000'0000u;

class frame_cache;

/// The worker's cache on a worker thread; null on every other thread.
constinit inline thread_local frame_cache* t_frame_cache = nullptr;

/// Numbers executors' cache groups (wraps: see frame_cache::free).
constinit inline std::atomic<std::uint32_t> g_frame_cache_groups{0};

/// A block for a frame, and where it came from (frame_pool.hpp).
struct frame_block {
    void* memory = nullptr; // null: none (the pool is exhausted and fails, or the heap is)
    std::uint32_t origin = 0;
};

/// Gives a block of `size` bytes from the plain ::operator new back.
inline void delete_heap_block(void* memory, [[maybe_unused]] std::size_t size) noexcept {
    // g++ -O3 inlines promise_base::operator new (which allocates the whole
    // block and returns the frame inside it) and then takes this delete of
    // the block's start for a mismatch. It is the block ::operator new
    // returned; the warning is a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#if defined(__cpp_sized_deallocation)
    ::operator delete(memory, size);
#else
    ::operator delete(memory); // clang without -fsized-deallocation
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}

class frame_cache {
public:
    static constexpr std::size_t class_step = 32;
    static constexpr std::uint32_t class_count = 32;
    /// The largest block a cache holds; larger frames use the heap.
    static constexpr std::size_t largest_block = class_step * class_count;
    /// Blocks sent home with one compare-exchange.
    static constexpr std::uint32_t batch = 16;
    /// The most workers an executor with frame caches has: the origin has 8
    /// bits for the home index, and each worker has an outbox per sibling.
    static constexpr std::uint32_t max_workers = 64;

    /// What a free block holds.
    struct link {
        link* next;
        std::uint32_t size_class;
    };

    /// Blocks waiting to go home to one sibling (owner only).
    struct outbox {
        link* head = nullptr;
        link* tail = nullptr;
        std::uint32_t count = 0;
        std::uint32_t bytes = 0;
    };

    frame_cache() noexcept = default;
    frame_cache(const frame_cache&) = delete;
    frame_cache& operator=(const frame_cache&) = delete;

    /// Before the workers start: this is cache `index` of `count` siblings
    /// (`siblings[i]`), with one outbox per sibling in `outboxes`, keeping
    /// at most `limit` bytes of free blocks.
    void attach(frame_cache* siblings, outbox* outboxes, std::uint32_t count, std::uint32_t index,
                std::uint32_t group, std::size_t limit) noexcept {
        m_siblings = siblings;
        m_outboxes = outboxes;
        m_sibling_count = count;
        m_index = index;
        m_group = group & group_mask;
        m_limit = limit;
    }

    static constexpr std::uint32_t class_of(std::size_t bytes) noexcept {
        return bytes == 0 ? 0 : static_cast<std::uint32_t>((bytes - 1) / class_step);
    }
    static constexpr std::size_t block_size(std::uint32_t size_class) noexcept {
        return (size_class + 1) * class_step;
    }
    static constexpr std::size_t block_size_of(std::uint32_t origin) noexcept {
        return block_size(origin & class_mask);
    }

    /// A block of at least `bytes` (at most largest_block), and its origin;
    /// null memory if the heap refuses. Owner only.
    frame_block allocate(std::size_t bytes) noexcept {
        const std::uint32_t size_class = class_of(bytes);
        const std::uint32_t origin =
            cached_origin | (m_group << group_shift) | ((m_index & home_mask) << home_shift) | size_class;
        link* block = m_free[size_class];
        // Relaxed: only a hint that the stack is worth taking; the exchange
        // in take_returned acquires what it takes.
        if (block == nullptr && m_returned.load(std::memory_order_relaxed) != nullptr) {
            take_returned();
            block = m_free[size_class];
        }
        if (block == nullptr) {
            return {::operator new(block_size(size_class), std::nothrow), origin};
        }
        reveal(block, sizeof(link));
        m_free[size_class] = block->next;
        set_bytes(m_bytes - block_size(size_class));
        reveal(block, block_size(size_class));
        return {block, origin};
    }

    /// Takes back a block with a cached origin, freed on this cache's
    /// thread: home to its sibling, into a free list, or to the heap.
    void free(void* memory, std::uint32_t origin) noexcept {
        const std::uint32_t size_class = origin & class_mask;
        const std::uint32_t home = (origin >> home_shift) & home_mask;
        // A group number is reused after 2^15 executors: a block of a dead
        // executor may then look like a sibling's. Harmless: any cache may
        // keep any block of a class.
        if (((origin >> group_shift) & group_mask) == m_group && home != m_index && home < m_sibling_count) {
            send_home(home, ::new (memory) link{nullptr, size_class});
            return;
        }
        keep(memory, size_class);
    }

    /// Sends every waiting block home (before parking, when stopping), so
    /// none waits while its worker allocates from the heap. Owner only.
    void flush() noexcept {
        for (std::uint32_t i = 0; i < m_sibling_count; ++i) {
            if (m_outboxes[i].count != 0) {
                post(i);
            }
        }
    }

    /// Gives every block this cache holds to the heap, its returned stack
    /// and outboxes included. After its worker stopped (the thread was
    /// joined) and before the siblings' memory goes.
    void release_all() noexcept {
        for (std::uint32_t c = 0; c < class_count; ++c) {
            release_chain(std::exchange(m_free[c], nullptr));
        }
        release_chain(m_returned.exchange(nullptr, std::memory_order_acquire));
        m_returned_bytes.store(0, std::memory_order_relaxed); // no sender is left (after the joins)
        for (std::uint32_t i = 0; i < m_sibling_count; ++i) {
            release_chain(std::exchange(m_outboxes[i].head, nullptr));
            m_outboxes[i] = outbox{};
        }
        set_bytes(0);
    }

    /// Bytes this cache holds now, in its free lists and on its returned
    /// stack (a snapshot from any thread).
    /// Relaxed loads: a metric and post's limit check, both allowed to be
    /// stale by a batch.
    std::size_t cached_bytes() const noexcept {
        return m_bytes_seen.load(std::memory_order_relaxed) +
               m_returned_bytes.load(std::memory_order_relaxed);
    }

private:
    static constexpr std::uint32_t class_mask = class_count - 1; // 5 bits
    static constexpr std::uint32_t home_shift = 5;
    static constexpr std::uint32_t home_mask = 0xFF; // 8 bits
    static_assert(max_workers <= home_mask + 1, "a worker's index must fit the origin's home field");
    static constexpr std::uint32_t group_shift = 13;
    static constexpr std::uint32_t group_mask = 0x7FFF; // 15 bits, below cached_origin
    static_assert((group_mask << group_shift) < cached_origin, "the origin's fields overlap its flag");
    static_assert((class_count & class_mask) == 0, "class_count must be a power of two");

    void keep(void* memory, std::uint32_t size_class) noexcept {
        const std::size_t size = block_size(size_class);
        if (m_bytes + size > m_limit) {
            delete_heap_block(memory, size);
            return;
        }
        m_free[size_class] = ::new (memory) link{m_free[size_class], size_class};
        hide(memory, size);
        set_bytes(m_bytes + size);
    }

    void send_home(std::uint32_t home, link* block) noexcept {
        outbox& out = m_outboxes[home];
        block->next = out.head;
        if (out.head == nullptr) {
            out.tail = block;
        }
        out.head = block;
        out.bytes += static_cast<std::uint32_t>(block_size(block->size_class));
        hide(block, block_size(block->size_class));
        if (++out.count == batch) {
            post(home);
        }
    }

    void post(std::uint32_t home) noexcept {
        outbox& out = m_outboxes[home];
        frame_cache& to = m_siblings[home];
        // The home keeps no more than its limit: returned or kept, beyond
        // it the batch goes to the heap from here. Stale reads only move
        // the bound by a batch per sender.
        if (to.cached_bytes() + out.bytes > to.m_limit) {
            release_chain(out.head);
            out = outbox{};
            return;
        }
        // Counted before the push and uncounted after the take, so the
        // count never falls below what the stack holds.
        to.m_returned_bytes.fetch_add(out.bytes, std::memory_order_relaxed);
        // Relaxed here and on a failed exchange: only a guess at the top;
        // the successful exchange below is the release.
        link* top = to.m_returned.load(std::memory_order_relaxed);
        // The tail's link stays unpoisoned: once pushed, the owner may
        // already be reading it.
        reveal(out.tail, sizeof(link));
        do {
            out.tail->next = top;
            // Release: the links written into the batch (see the header).
        } while (!to.m_returned.compare_exchange_weak(top, out.head, std::memory_order_release,
                                                      std::memory_order_relaxed));
        out = outbox{};
    }

    // Sorts what the siblings sent home into the free lists.
    void take_returned() noexcept {
        // Acquire: pairs with the senders' release (post).
        link* block = m_returned.exchange(nullptr, std::memory_order_acquire);
        std::size_t taken = 0;
        while (block != nullptr) {
            reveal(block, sizeof(link));
            link* next = block->next;
            const std::uint32_t size_class = block->size_class;
            taken += block_size(size_class);
            reveal(block, block_size(size_class));
            keep(block, size_class);
            block = next;
        }
        m_returned_bytes.fetch_sub(taken, std::memory_order_relaxed); // a count: orders nothing
    }

    static void release_chain(link* block) noexcept {
        while (block != nullptr) {
            reveal(block, sizeof(link));
            link* next = block->next;
            const std::size_t size = block_size(block->size_class);
            reveal(block, size);
            delete_heap_block(block, size);
            block = next;
        }
    }

    void set_bytes(std::size_t bytes) noexcept {
        m_bytes = bytes;
        m_bytes_seen.store(bytes, std::memory_order_relaxed); // a metric: orders nothing
    }

    // A free block is poisoned for AddressSanitizer, as the heap's are.
    static void hide([[maybe_unused]] void* block, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(WEFT_DETAIL_ASAN)
        ASAN_POISON_MEMORY_REGION(block, bytes);
#endif
    }
    static void reveal([[maybe_unused]] void* block, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(WEFT_DETAIL_ASAN)
        ASAN_UNPOISON_MEMORY_REGION(block, bytes);
#endif
    }

    // Owner only.
    link* m_free[class_count] = {};
    std::size_t m_bytes = 0;
    std::size_t m_limit = 0;
    outbox* m_outboxes = nullptr;
    frame_cache* m_siblings = nullptr;
    std::uint32_t m_sibling_count = 0;
    std::uint32_t m_index = 0;
    std::uint32_t m_group = 0;
    std::atomic<std::size_t> m_bytes_seen{0};
    // Written by the siblings: a line of its own.
    alignas(64) std::atomic<link*> m_returned{nullptr};
    std::atomic<std::size_t> m_returned_bytes{0}; // at least what m_returned holds
};

} // namespace weft::detail

#undef WEFT_DETAIL_ASAN
