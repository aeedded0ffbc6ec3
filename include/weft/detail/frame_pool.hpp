// weft/detail/frame_pool.hpp
//
// What it is for: memory for coroutine frames that does not come from the
// heap, so that a program in its steady state allocates nothing
// (Options::use_frame_pool). An executor that enables it allocates one block
// when it is constructed and cuts it into size classes of fixed-size blocks.
// A frame (with the task cell in front of it) takes a block of the smallest
// class it fits in, and gives it back when the task is freed, from whatever
// thread that happens on.
//
// The pieces, top to bottom:
//   - index_stack: the free blocks of one class, as a lock-free LIFO of block
//     indices (Treiber's stack). Its links live in a side array, not in the
//     free blocks: a pop that lost a race may still read the link of a block
//     that another thread has just taken and is writing a task into. The
//     head packs the top index with a tag that every pop increments, so a
//     stale pop cannot succeed once its top was popped and pushed back (ABA).
//     Pushes leave the tag alone: the top can only come back by a pop.
//   - frame_pool: the one block (the pool's header, one index_stack per
//     class, the links, the blocks), allocate and deallocate.
//   - the registry: a fixed table of the pools alive in the process. A block
//     records where it came from in 32 bits (task_header::block_origin): a
//     heap block's size, `pooled_origin` and its pool's index here, or
//     `cached_origin` and its worker cache's fields (frame_cache.hpp).
//   - t_frame_pool: which pool the frames made on this thread come from (the
//     executor's, on its workers and blocking threads; null: the worker's
//     frame cache if the thread has one, else the heap).
//     executor::spawn of a callable sets it for the frame it makes.
//
// Lifetime: an executor owns its pool, but a block may outlive the executor
// (a join handle kept after it, a task made on a worker and never run).
// retire() frees the pool at once if every block is home; otherwise the
// pool stays listed as an orphan and the free that brings its last block
// home frees it. The handshake: a free pushes its block (seq_cst) and then
// reads the registry's orphan bits (seq_cst); retire() sets its pool's bit
// (seq_cst) and then counts the free blocks (seq_cst loads of the heads). In
// the single total order of seq_cst operations, either the free's read comes
// after the bit was set (it checks, under the registry lock), or its push
// comes before retire()'s count (which sees that block home). So the last
// block home is never missed, and the pool is freed once, under the lock.
//
// Where it comes from: Treiber's stack (IBM, 1986) with the counted head
// that IBM's System/370 manuals describe; index links as in Vyukov's bounded
// pools. Per-thread caches (tcmalloc) were left out: blocks parked in a
// worker's cache would make "N blocks per class" mean less than N for
// everyone else, and predictability is the point of the pool. The price is
// two locked instructions per block where glibc's per-thread cache has none
// (docs/design.md has the figures).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <span>

#include "atomic_policy.hpp"
#include "frame_cache.hpp"

namespace weft::detail {

/// The free indices among [0, count), as a lock-free stack (see the top of
/// this file). The caller owns the link storage: `count` atomics.
template <class Policy = std_policy>
class index_stack {
public:
    using link = typename Policy::template atomic<std::uint32_t>;
    static constexpr std::uint32_t none = 0xFFFF'FFFFu;

    /// Holds every index of [0, count), 0 on top. Not thread-safe: the
    /// stack is published to other threads afterwards.
    index_stack(link* links, std::uint32_t count) noexcept
        : m_head(pack(0, count > 0 ? 0 : none)), m_links(links) {
        for (std::uint32_t i = 0; i < count; ++i) {
            m_links[i].store(i + 1 < count ? i + 1 : none, std::memory_order_relaxed);
        }
    }
    index_stack(const index_stack&) = delete;
    index_stack& operator=(const index_stack&) = delete;

    /// Takes a free index, or returns `none`.
    std::uint32_t pop() noexcept {
        // Acquire (here and on success): pairs with the push that freed the
        // top, so its link and everything the block's last user wrote are
        // visible before we hand the block out.
        std::uint64_t head = m_head.load(std::memory_order_acquire);
        for (;;) {
            const std::uint32_t top = index_of(head);
            if (top == none) {
                return none;
            }
            // Relaxed: written before the push that made `top` the top, which
            // the acquire above saw. A newer value means `top` was popped
            // meanwhile, and then the tag makes the exchange fail.
            const std::uint32_t next = m_links[top].load(std::memory_order_relaxed);
            if (m_head.compare_exchange_weak(head, pack(tag_of(head) + 1, next), std::memory_order_acquire,
                                             std::memory_order_acquire)) {
                return top;
            }
        }
    }

    /// Gives `index` back; it must have been popped.
    void push(std::uint32_t index) noexcept {
        std::uint64_t head = m_head.load(std::memory_order_relaxed);
        for (;;) {
            m_links[index].store(index_of(head), std::memory_order_relaxed);
            // Release: publishes the link and the block's contents to the
            // next pop. Seq_cst: the frame pool's orphan handshake orders
            // this push before the free's read of the orphan count.
            if (m_head.compare_exchange_weak(head, pack(tag_of(head), index), std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
                return;
            }
        }
    }

    /// The free indices, counted by walking the stack (at most `limit`
    /// steps). Exact while no pop runs (pushes may); otherwise a snapshot.
    std::uint32_t count(std::uint32_t limit) const noexcept {
        std::uint32_t n = 0;
        // Seq_cst: the other half of the orphan handshake (see push). The
        // links below the top were written before the pushes that this load
        // (transitively) synchronizes with.
        std::uint32_t at = index_of(m_head.load(std::memory_order_seq_cst));
        while (at != none && n < limit) {
            ++n;
            at = m_links[at].load(std::memory_order_relaxed);
        }
        return n;
    }

private:
    static constexpr std::uint64_t pack(std::uint32_t tag, std::uint32_t index) noexcept {
        return (static_cast<std::uint64_t>(tag) << 32) | index;
    }
    static constexpr std::uint32_t index_of(std::uint64_t head) noexcept {
        return static_cast<std::uint32_t>(head);
    }
    static constexpr std::uint32_t tag_of(std::uint64_t head) noexcept {
        return static_cast<std::uint32_t>(head >> 32);
    }

    // Its own cache line: every allocation and free of the class writes it.
    alignas(64) typename Policy::template atomic<std::uint64_t> m_head;
    link* const m_links;
};

/// One size class as the executor asks for it.
struct frame_class_spec {
    std::size_t block_size = 0; // bytes, a multiple of 16
    std::uint32_t blocks = 0;
};

/// What a block records about where it came from (see the top of this
/// file): a heap block's size, this flag and its pool's registry index, or
/// cached_origin and the fields of frame_cache.hpp.
inline constexpr std::uint32_t pooled_origin = 0x8000'0000u;

/// Pools alive (or orphaned) in the process at once.
inline constexpr std::uint32_t max_frame_pools = 64;

class frame_pool;

/// The pools of the process, so that a block's 32-bit origin finds its pool.
struct frame_pool_registry {
    std::mutex lock; // claims and releases of slots, orphan checks
    std::atomic<frame_pool*> pools[max_frame_pools] = {};
    std::atomic<std::uint64_t> orphans{0}; // bit i: pools[i] was retired with blocks still out
};

static_assert(max_frame_pools <= 64, "one orphan bit per registry slot");

constinit inline frame_pool_registry g_frame_pools{};

/// Frames made on this thread come from this pool; null: from the heap.
constinit inline thread_local frame_pool* t_frame_pool = nullptr;

/// The fixed-capacity pool of one executor: one block, allocated once.
class frame_pool {
public:
    /// Allocates the pool (one block) and lists it. Null if the heap
    /// refuses the block or max_frame_pools pools exist already.
    /// `classes` must be sorted by block_size, each a multiple of 16.
    static frame_pool* create(std::span<const frame_class_spec> classes, bool fail_when_exhausted) noexcept {
        std::size_t at = round_up(sizeof(frame_pool), cache_line);
        const std::size_t classes_at = at;
        at += classes.size() * sizeof(size_class);
        const std::size_t links_at = at;
        for (const frame_class_spec& spec : classes) {
            at += spec.blocks * sizeof(index_stack<>::link);
        }
        at = round_up(at, cache_line);
        const std::size_t blocks_at = at;
        for (const frame_class_spec& spec : classes) {
            at = round_up(at + spec.block_size * spec.blocks, cache_line);
        }
        void* memory = ::operator new (at, std::align_val_t{cache_line}, std::nothrow);
        if (memory == nullptr) {
            return nullptr;
        }
        auto* bytes = static_cast<unsigned char*>(memory);
        auto* pool = ::new (memory) frame_pool(fail_when_exhausted);
        pool->m_classes = reinterpret_cast<size_class*>(bytes + classes_at);
        pool->m_class_count = static_cast<std::uint32_t>(classes.size());
        auto* links = reinterpret_cast<index_stack<>::link*>(bytes + links_at);
        unsigned char* blocks = bytes + blocks_at;
        for (std::size_t i = 0; i < classes.size(); ++i) {
            const frame_class_spec& spec = classes[i];
            for (std::uint32_t b = 0; b < spec.blocks; ++b) {
                ::new (static_cast<void*>(links + b)) index_stack<>::link(0);
            }
            ::new (static_cast<void*>(pool->m_classes + i)) size_class(links, spec, blocks);
            links += spec.blocks;
            blocks += round_up(spec.block_size * spec.blocks, cache_line);
        }
        std::lock_guard<std::mutex> hold(g_frame_pools.lock);
        for (std::uint32_t slot = 0; slot < max_frame_pools; ++slot) {
            if (g_frame_pools.pools[slot].load(std::memory_order_relaxed) == nullptr) {
                pool->m_slot = slot;
                // Relaxed: the executor publishes the pool to its threads
                // (they start after this), and every block's holder got it
                // from one of them.
                g_frame_pools.pools[slot].store(pool, std::memory_order_relaxed);
                return pool;
            }
        }
        destroy(pool);
        return nullptr;
    }

    /// The executor is gone: frees the pool now if every block is home,
    /// else when the last one comes home (see the top of this file).
    static void retire(frame_pool* pool) noexcept {
        std::lock_guard<std::mutex> hold(g_frame_pools.lock);
        g_frame_pools.orphans.fetch_or(orphan_bit(pool->m_slot), std::memory_order_seq_cst);
        if (pool->all_free()) {
            release_locked(pool);
        }
    }

    /// A block of the smallest class that holds `bytes`, or null if that
    /// class has no free block or `bytes` exceeds the largest class.
    void* allocate(std::size_t bytes) noexcept {
        for (std::uint32_t i = 0; i < m_class_count; ++i) {
            size_class& c = m_classes[i];
            if (bytes <= c.block_size) {
                const std::uint32_t index = c.free.pop();
                return index == index_stack<>::none ? nullptr : c.base + index * c.block_size;
            }
        }
        return nullptr;
    }

    /// Gives back a block that allocate() returned.
    void deallocate(void* block) noexcept {
        const auto at = reinterpret_cast<std::uintptr_t>(block);
        for (std::uint32_t i = 0; i < m_class_count; ++i) {
            size_class& c = m_classes[i];
            const auto base = reinterpret_cast<std::uintptr_t>(c.base);
            if (at >= base && at < base + c.blocks * c.block_size) {
                c.free.push(static_cast<std::uint32_t>((at - base) / c.block_size));
                return;
            }
        }
    }

    /// Whether an allocation the pool cannot serve fails (true) or goes to
    /// the heap (false).
    bool fails_when_exhausted() const noexcept { return m_fail_when_exhausted; }

    /// This pool's index in the registry, for a block's origin.
    std::uint32_t slot() const noexcept { return m_slot; }

    /// Free blocks of all classes (a snapshot while the pool is in use).
    std::uint64_t free_blocks() const noexcept {
        std::uint64_t n = 0;
        for (std::uint32_t i = 0; i < m_class_count; ++i) {
            n += m_classes[i].free.count(m_classes[i].blocks);
        }
        return n;
    }

    /// The orphan bit of registry slot `slot`.
    static constexpr std::uint64_t orphan_bit(std::uint32_t slot) noexcept {
        return std::uint64_t{1} << slot;
    }

    /// Frees the orphaned pool in registry slot `slot` if its blocks are
    /// all home. Called after a free into it saw its orphan bit.
    static void release_orphan(std::uint32_t slot) noexcept {
        std::lock_guard<std::mutex> hold(g_frame_pools.lock);
        frame_pool* pool = g_frame_pools.pools[slot].load(std::memory_order_relaxed);
        if (pool != nullptr &&
            (g_frame_pools.orphans.load(std::memory_order_relaxed) & orphan_bit(slot)) != 0 &&
            pool->all_free()) {
            release_locked(pool);
        }
    }

private:
    static constexpr std::size_t cache_line = 64;

    static constexpr std::size_t round_up(std::size_t bytes, std::size_t alignment) noexcept {
        return (bytes + alignment - 1) / alignment * alignment;
    }

    struct size_class {
        size_class(index_stack<>::link* links, const frame_class_spec& spec, unsigned char* first) noexcept
            : free(links, spec.blocks), base(first), block_size(spec.block_size), blocks(spec.blocks) {}
        index_stack<> free;
        unsigned char* const base;
        const std::size_t block_size;
        const std::uint32_t blocks;
    };

    explicit frame_pool(bool fail_when_exhausted) noexcept : m_fail_when_exhausted(fail_when_exhausted) {}

    bool all_free() const noexcept {
        for (std::uint32_t i = 0; i < m_class_count; ++i) {
            if (m_classes[i].free.count(m_classes[i].blocks) != m_classes[i].blocks) {
                return false;
            }
        }
        return true;
    }

    // Under the registry lock, with every block home.
    static void release_locked(frame_pool* pool) noexcept {
        g_frame_pools.pools[pool->m_slot].store(nullptr, std::memory_order_relaxed);
        g_frame_pools.orphans.fetch_and(~orphan_bit(pool->m_slot), std::memory_order_relaxed);
        destroy(pool);
    }

    static void destroy(frame_pool* pool) noexcept {
        // The links, heads and blocks are trivially destructible.
        pool->~frame_pool();
        ::operator delete (static_cast<void*>(pool), std::align_val_t{cache_line});
    }

    size_class* m_classes = nullptr;
    std::uint32_t m_class_count = 0;
    std::uint32_t m_slot = 0;
    const bool m_fail_when_exhausted;
};

/// A block of `bytes` from the heap (the default new alignment), or none.
inline frame_block allocate_from_heap(std::size_t bytes) noexcept {
    if (bytes >= cached_origin) {
        return {}; // its size would not fit the origin
    }
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
    // The plain operator new, as before there was a pool: libstdc++'s nothrow
    // form wraps it in a call of its own. Its bad_alloc becomes a null
    // block here; nothing else throws.
    try {
        return {::operator new(bytes), static_cast<std::uint32_t>(bytes)};
    } catch (const std::bad_alloc&) {
        return {};
    }
#else
    return {::operator new(bytes, std::nothrow), static_cast<std::uint32_t>(bytes)};
#endif
}

/// The pool's half of allocate_frame. Out of line here and in free_frame:
/// every coroutine allocates, so the pool's code is kept out of them, and
/// a build without a pool runs the instructions it ran before the pool.
[[gnu::noinline]] inline frame_block allocate_from_pool(frame_pool& pool, std::size_t bytes) noexcept {
    if (void* block = pool.allocate(bytes)) {
        return {block, pooled_origin | pool.slot()};
    }
    if (pool.fails_when_exhausted()) {
        return {};
    }
    return allocate_from_heap(bytes);
}

/// A block of `bytes` (16-byte aligned) from this thread's pool; without
/// one, from its worker's frame cache (frames up to 1 KiB on a worker); else
/// from the heap, as when the pool cannot serve it and falls back. Never
/// throws.
inline frame_block allocate_frame(std::size_t bytes) noexcept {
    if (frame_pool* pool = t_frame_pool) {
        return allocate_from_pool(*pool, bytes);
    }
    if (frame_cache* cache = t_frame_cache; cache != nullptr && bytes <= frame_cache::largest_block) {
        return cache->allocate(bytes);
    }
    return allocate_from_heap(bytes);
}

/// Gives back a pooled block (see free_frame).
[[gnu::noinline]] inline void free_to_pool(void* memory, std::uint32_t origin) noexcept {
    const std::uint32_t slot = origin & ~pooled_origin;
    // Relaxed: the block's holder learned of the pool (through the thread
    // that allocated the block) after the slot was written.
    g_frame_pools.pools[slot].load(std::memory_order_relaxed)->deallocate(memory);
    // Seq_cst: the orphan handshake (see the top of this file).
    if ((g_frame_pools.orphans.load(std::memory_order_seq_cst) & frame_pool::orphan_bit(slot)) != 0) {
        frame_pool::release_orphan(slot);
    }
}

/// Gives back a block from allocate_frame.
inline void free_frame(void* memory, std::uint32_t origin) noexcept {
    if ((origin & pooled_origin) != 0) {
        free_to_pool(memory, origin);
        return;
    }
    if ((origin & cached_origin) != 0) {
        if (frame_cache* cache = t_frame_cache) {
            cache->free(memory, origin);
        } else {
            delete_heap_block(memory, frame_cache::block_size_of(origin));
        }
        return;
    }
    delete_heap_block(memory, origin);
}

/// Makes frames on this thread come from `pool` (null: the heap) while it
/// lives, then restores what was there.
class frame_pool_scope {
public:
    explicit frame_pool_scope(frame_pool* pool) noexcept : m_outer(t_frame_pool) { t_frame_pool = pool; }
    ~frame_pool_scope() { t_frame_pool = m_outer; }
    frame_pool_scope(const frame_pool_scope&) = delete;
    frame_pool_scope& operator=(const frame_pool_scope&) = delete;

private:
    frame_pool* m_outer;
};

/// Owns an executor's pool: retires it on destruction.
class frame_pool_owner {
public:
    explicit frame_pool_owner(frame_pool* pool) noexcept : m_pool(pool) {}
    ~frame_pool_owner() {
        if (m_pool != nullptr) {
            frame_pool::retire(m_pool);
        }
    }
    frame_pool_owner(const frame_pool_owner&) = delete;
    frame_pool_owner& operator=(const frame_pool_owner&) = delete;

    frame_pool* get() const noexcept { return m_pool; }

private:
    frame_pool* m_pool;
};

} // namespace weft::detail
