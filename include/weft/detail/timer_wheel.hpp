// weft/detail/timer_wheel.hpp
//
// What it is for: the timer driver's store of armed deadlines. Arming,
// disarming and re-arming are O(1); the driver asks when it next has work
// (O(levels)) and advances the wheel to the current time, which fires what is
// due in deadline order. Not thread-safe: the driver holds its lock around
// every call. No allocation: the nodes live in a span the caller provides,
// linked by 32-bit indices, and a free list threads through the unused ones.
// Times are unsigned 64-bit ticks; the driver picks the tick (1 ms or 100 us
// of steady_clock) and converts.
//
// Where it comes from: Varghese & Lauck, "Hashed and Hierarchical Timing
// Wheels" (SOSP 1987, scheme 7). Tokio's time driver (`runtime/time/wheel`)
// has the same shape: 6 levels of 64 slots, one `occupied` bitmap per level,
// the next slot found by rotating the bitmap to the current slot and counting
// trailing zeros.
//
// Layout:
//   - Level L has 64 slots of 64^L ticks each; 64 slots make the level's lap,
//     64^(L+1) ticks. Slot k of level L holds entries whose placement tick p
//     has digit k at level L: (p >> 6L) & 63 == k. Each slot is a doubly
//     linked FIFO of node indices (head and tail arrays below), and bit k of
//     `m_occupied[L]` is set exactly when slot k is not empty.
//   - An entry is filed under its placement tick p, not always its deadline
//     w: p = w when w - elapsed < max_distance; a further entry uses the first
//     point of its grid w, w - D, w - 2D, ... (D = max_distance) at or after
//     elapsed. Reaching a placement that is not the deadline re-places the
//     entry further along the same grid, so nothing fires early.
//   - The level is level_for(elapsed, p): the 6-bit digit of the highest bit
//     in which elapsed and p differ (at least level 0, at most the top).
//   - A node's `m_list` is its slot (level * 64 + slot) while armed,
//     `not_armed` while allocated but not armed, `in_free_list` while free.
//
// Invariants (between calls, and at every step of poll):
//   1. Window. An entry at level L >= 1 has its placement in elapsed's
//      level-L lap, in a slot after elapsed's own; an entry at level 0 has it
//      in elapsed's 64-tick lap, at or after elapsed. (The top level is the
//      exception that wraps: a placement up to max_distance ahead may lie in
//      the next top lap, in a slot before elapsed's own; see max_distance.)
//   2. Levels are ordered in time. Every entry below level L lies in
//      elapsed's level-(L-1) lap, which is elapsed's own level-L slot; every
//      level-L slot that holds something starts after that slot ends. So an
//      entry at level L is never earlier than any entry at a lower level, and
//      the earliest slot of the lowest occupied level is the next thing to do:
//      next_deadline() looks at one bitmap per level and stops at the first
//      one that is not empty.
//   3. Elapsed may jump. poll moves elapsed to the start of the next occupied
//      slot, or straight to `now` when that start is later. No occupied slot
//      starts in between, so the jump leaves invariant 1 true for every entry:
//      an entry's level only has to change when elapsed reaches the start of
//      its slot, and there poll cascades it (re-places it relative to the new
//      elapsed, which moves it to a lower level, since it now lies within one
//      slot span of elapsed).
//   4. Order. Entries fire from the level-0 slot at elapsed, so in
//      non-decreasing deadline order. Equal deadlines fire in arm order: slots
//      are FIFOs, a cascade re-appends a slot's entries in list order, and an
//      entry armed later with the same deadline never sits at a higher level
//      than one armed earlier (for a fixed placement the level only falls as
//      elapsed grows; far entries with the same deadline share one grid).
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace weft::detail {

class timer_wheel;

/// One timer's bookkeeping in a timer_wheel: its deadline and its links.
/// Opaque: users provide the storage (a std::array or std::vector of them)
/// and refer to nodes by index.
struct wheel_node {
private:
    friend class timer_wheel;

    std::uint64_t m_when = 0; // the deadline last passed to arm
    std::uint32_t m_prev = 0; // previous node in its slot, or npos
    std::uint32_t m_next = 0; // next node in its slot or in the free list, or npos
    std::uint16_t m_list = 0; // its slot while armed, else not_armed or in_free_list
};

/// A hierarchical hashed timer wheel over caller-provided nodes.
///
///     std::array<weft::detail::wheel_node, 64> nodes;
///     weft::detail::timer_wheel wheel(nodes);
///     const std::uint32_t id = wheel.allocate();
///     wheel.arm(id, 250);             // due at tick 250
///     wheel.poll(300, 32, [](std::uint32_t due) { /* wake the timer `due` */ });
class timer_wheel {
public:
    static constexpr std::uint32_t npos = 0xFFFFFFFFu;
    static constexpr unsigned levels = 6;
    static constexpr unsigned slots_per_level = 64;
    /// A deadline less than this many ticks after elapsed() is placed directly.
    /// Further deadlines are not an error: they are placed at a stop on the way
    /// and re-placed when that stop is reached (see the header), so they never
    /// fire early.
    ///
    /// Why 2^35, half a lap of the top level: a placement at most this far
    /// ahead that wraps into the next top lap lands at least 32 top-level
    /// slots behind elapsed's own, in a slot that holds nothing from the
    /// current lap, so rotating the bitmap from elapsed's slot finds its start
    /// unambiguously. Any value up to a lap minus one top-level slot would do.
    /// At 1 ms a tick 2^35 ticks are 398 days, at 100 us 40 days: re-placing
    /// is rare. The cost: a poll that moves time by J ticks stops at each far
    /// entry about J / max_distance times (plus its cascades), which only a
    /// test clock jumping years ahead would notice.
    static constexpr std::uint64_t max_distance = std::uint64_t{1} << 35;

    /// Every node starts free; elapsed() starts at 0. At most 2^32 - 2 nodes.
    explicit timer_wheel(std::span<wheel_node> nodes) noexcept : m_nodes(nodes) {
        assert(nodes.size() < npos && "node ids are 32-bit and npos is reserved");
        m_head.fill(npos);
        m_tail.fill(npos);
        const std::uint32_t count = capacity();
        for (std::uint32_t id = 0; id < count; ++id) {
            m_nodes[id].m_next = id + 1 < count ? id + 1 : npos;
            m_nodes[id].m_list = in_free_list;
        }
        m_free = count > 0 ? 0 : npos;
    }

    timer_wheel(const timer_wheel&) = delete;
    timer_wheel& operator=(const timer_wheel&) = delete;

    std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(m_nodes.size()); }

    /// Entries currently armed.
    std::uint32_t armed_count() const noexcept { return m_armed; }

    /// A free node's id, not armed, or npos when every node is in use.
    std::uint32_t allocate() noexcept {
        const std::uint32_t id = m_free;
        if (id == npos) {
            return npos;
        }
        wheel_node& node = m_nodes[id];
        m_free = node.m_next;
        node.m_when = 0;
        node.m_list = not_armed;
        return id;
    }

    /// Returns `id` to the free list, disarming it first if it is armed.
    void release(std::uint32_t id) noexcept {
        assert(is_allocated(id));
        disarm(id);
        wheel_node& node = m_nodes[id];
        node.m_list = in_free_list;
        node.m_next = m_free;
        m_free = id;
    }

    /// Arms `id` to expire at tick `when`. Returns false, and leaves it
    /// disarmed, if when <= elapsed(): the deadline is already due and the
    /// caller fires it itself. Re-arming an armed id moves it (and counts as a
    /// new arm for the order of equal deadlines).
    bool arm(std::uint32_t id, std::uint64_t when) noexcept {
        assert(is_allocated(id));
        disarm(id);
        m_nodes[id].m_when = when;
        if (when <= m_elapsed) {
            return false;
        }
        place(id, m_elapsed);
        ++m_armed;
        return true;
    }

    /// Disarms `id`; true if it was armed.
    bool disarm(std::uint32_t id) noexcept {
        assert(is_allocated(id));
        if (!is_armed(id)) {
            return false;
        }
        unlink(id);
        m_nodes[id].m_list = not_armed;
        --m_armed;
        return true;
    }

    bool is_armed(std::uint32_t id) const noexcept {
        assert(id < capacity());
        return m_nodes[id].m_list < list_count;
    }

    /// The `when` last passed to arm (also once it fired or was disarmed).
    std::uint64_t deadline(std::uint32_t id) const noexcept {
        assert(id < capacity());
        return m_nodes[id].m_when;
    }

    /// The wheel's current time: where the last poll got to.
    std::uint64_t elapsed() const noexcept { return m_elapsed; }

    /// The earliest tick at which poll() has something to do (an entry to fire,
    /// a slot to cascade, or a far entry to re-place), or UINT64_MAX when
    /// nothing is armed. Never later than the earliest armed deadline, may be
    /// earlier; never earlier than elapsed(). O(levels), by invariant 2.
    std::uint64_t next_deadline() const noexcept {
        const std::optional<expiration> next = next_expiration();
        return next ? next->start : UINT64_MAX;
    }

    /// Advances the wheel to `now`: calls fire(id) for each armed entry whose
    /// deadline is <= now, disarming it just before the call, in
    /// non-decreasing deadline order, and entries with equal deadlines in the
    /// order they were armed. Cascades higher levels down on the way.
    ///
    /// Stops before the (limit + 1)-th call: returns true if it finished
    /// (nothing with deadline <= now is still armed; elapsed() is then
    /// max(elapsed(), now)), false if it stopped at the limit, with elapsed()
    /// at the deadline of the next entry to fire. The caller then drops its
    /// lock, does its work, and calls poll again: nothing is lost or
    /// reordered, and entries it arms meanwhile (all later than elapsed())
    /// take their place in the order. `fire` may not call into the wheel. A
    /// `now` below elapsed() does nothing and returns true.
    template <class Fire>
    bool poll(std::uint64_t now, std::size_t limit, Fire&& fire) noexcept(noexcept(fire(std::uint32_t{0}))) {
        if (now < m_elapsed) {
            return true;
        }
        std::size_t fired = 0;
        for (;;) {
            const std::optional<expiration> next = next_expiration();
            if (!next || next->start > now) {
                m_elapsed = now; // safe by invariant 3: nothing starts before `now`
                return true;
            }
            m_elapsed = next->start;
            const std::uint16_t list = next->list;
            if (list >= slots_per_level) {
                cascade(list);
                continue;
            }
            // Level 0: every entry here has its placement at elapsed. One at a
            // time, so that stopping at the limit leaves the rest in order.
            while (m_head[list] != npos) {
                const std::uint32_t id = m_head[list];
                wheel_node& node = m_nodes[id];
                if (node.m_when > m_elapsed) {
                    // A far entry's stop on the way: on to its next grid point.
                    unlink(id);
                    place(id, m_elapsed + 1);
                    continue;
                }
                if (fired == limit) {
                    return false;
                }
                unlink(id);
                node.m_list = not_armed;
                --m_armed;
                ++fired;
                fire(id);
            }
        }
    }

    /// Looks into the slot next_deadline() names, if it is a level-0 slot
    /// (its entries are all due at that tick; not a cascade point): offers
    /// its first `scan` entries due exactly then to take(id), in arm order,
    /// and disarms those for which take returns true (the caller fires them
    /// before their tick: it knows their exact deadlines, the wheel only
    /// their ticks). Returns how many it took; 0 if the next slot is not on
    /// level 0. Lets a driver sleep until, and fire at, an exact deadline
    /// inside a tick. `take` may not call into the wheel.
    template <class Take>
    std::size_t take_from_next(std::size_t scan, Take&& take) noexcept(noexcept(take(std::uint32_t{0}))) {
        const std::optional<expiration> next = next_expiration();
        if (!next || next->list >= slots_per_level) {
            return 0;
        }
        std::size_t taken = 0;
        for (std::uint32_t id = m_head[next->list]; id != npos && scan > 0; --scan) {
            wheel_node& node = m_nodes[id];
            const std::uint32_t following = node.m_next;
            if (node.m_when == next->start && take(id)) { // not a far entry's stop
                unlink(id);
                node.m_list = not_armed;
                --m_armed;
                ++taken;
            }
            id = following;
        }
        return taken;
    }

private:
    static constexpr unsigned bits_per_level = 6;
    static constexpr std::uint64_t slot_mask = slots_per_level - 1;
    static constexpr std::uint16_t list_count = levels * slots_per_level;
    static constexpr std::uint16_t not_armed = 0xFFFF;
    static constexpr std::uint16_t in_free_list = 0xFFFE;

    static_assert(slots_per_level == (1u << bits_per_level), "a level's digit is 6 bits of the tick");
    static_assert(levels * bits_per_level < 64, "the levels must fit in a 64-bit tick");
    static_assert((max_distance & (max_distance - 1)) == 0,
                  "max_distance must be a power of two: grid points are found with a mask");
    static_assert(max_distance <= (std::uint64_t{1} << (levels * bits_per_level)) -
                                      (std::uint64_t{1} << ((levels - 1) * bits_per_level)),
                  "max_distance must stay a top-level slot short of a full top lap, so a wrapped "
                  "placement never shares elapsed's own top-level slot");

    // The next slot poll has to deal with and the tick at which it starts.
    struct expiration {
        std::uint64_t start;
        std::uint16_t list;
    };

    bool is_allocated(std::uint32_t id) const noexcept {
        return id < capacity() && m_nodes[id].m_list != in_free_list;
    }

    static unsigned level_for(std::uint64_t elapsed, std::uint64_t placement) noexcept {
        // `| slot_mask`: a placement in elapsed's own 64-tick lap is level 0.
        const std::uint64_t differing = (elapsed ^ placement) | slot_mask;
        const auto highest_bit = static_cast<unsigned>(63 - std::countl_zero(differing));
        const unsigned level = highest_bit / bits_per_level;
        // Beyond the top lap only when wrapping into the next one: see max_distance.
        return level < levels ? level : levels - 1;
    }

    // The first point of the grid when, when - D, when - 2D, ... that is at or
    // after `from`. Entries with the same deadline share the grid, so they
    // meet in the same slots and keep their arm order (invariant 4).
    static std::uint64_t placement(std::uint64_t when, std::uint64_t from) noexcept {
        assert(when >= from);
        return when - ((when - from) & ~(max_distance - 1));
    }

    // Files armed entry `id` under its placement for elapsed, searching its
    // grid from `from` (elapsed, or elapsed + 1 to move past a stop).
    void place(std::uint32_t id, std::uint64_t from) noexcept {
        const std::uint64_t at = placement(m_nodes[id].m_when, from);
        assert(at >= m_elapsed && at - m_elapsed <= max_distance);
        const unsigned level = level_for(m_elapsed, at);
        const auto slot = static_cast<unsigned>((at >> (level * bits_per_level)) & slot_mask);
        push_back(static_cast<std::uint16_t>(level * slots_per_level + slot), id);
    }

    // Re-places every entry of a level >= 1 slot that elapsed has just
    // reached. Each lands at a lower level (it lies within one slot span of
    // elapsed now), so the loop never meets its own entries again.
    void cascade(std::uint16_t list) noexcept {
        while (m_head[list] != npos) {
            const std::uint32_t id = m_head[list];
            unlink(id);
            place(id, m_elapsed);
            assert(m_nodes[id].m_list != list);
        }
    }

    // The first occupied slot of the lowest occupied level (invariant 2).
    std::optional<expiration> next_expiration() const noexcept {
        for (unsigned level = 0; level < levels; ++level) {
            const std::uint64_t occupied = m_occupied[level];
            if (occupied == 0) {
                continue;
            }
            const unsigned shift = level * bits_per_level;
            const auto current = static_cast<int>((m_elapsed >> shift) & slot_mask);
            // Slots ahead of elapsed's own, counting from it and wrapping.
            const auto ahead = static_cast<unsigned>(std::countr_zero(std::rotr(occupied, current)));
            // Only level 0 may hold entries in elapsed's own slot (invariant 1).
            assert(level == 0 || ahead != 0);
            const std::uint64_t slot_span = std::uint64_t{1} << shift;
            const std::uint64_t start = (m_elapsed & ~(slot_span - 1)) + ahead * slot_span;
            const auto slot = (static_cast<unsigned>(current) + ahead) & slot_mask;
            return expiration{start, static_cast<std::uint16_t>(level * slots_per_level + slot)};
        }
        return std::nullopt;
    }

    void push_back(std::uint16_t list, std::uint32_t id) noexcept {
        wheel_node& node = m_nodes[id];
        const std::uint32_t tail = m_tail[list];
        node.m_list = list;
        node.m_prev = tail;
        node.m_next = npos;
        if (tail == npos) {
            m_head[list] = id;
            m_occupied[list / slots_per_level] |= std::uint64_t{1} << (list % slots_per_level);
        } else {
            m_nodes[tail].m_next = id;
        }
        m_tail[list] = id;
    }

    // O(1). Leaves the node's own `m_list` for the caller to set.
    void unlink(std::uint32_t id) noexcept {
        const wheel_node& node = m_nodes[id];
        const std::uint16_t list = node.m_list;
        assert(list < list_count);
        if (node.m_prev == npos) {
            m_head[list] = node.m_next;
        } else {
            m_nodes[node.m_prev].m_next = node.m_next;
        }
        if (node.m_next == npos) {
            m_tail[list] = node.m_prev;
        } else {
            m_nodes[node.m_next].m_prev = node.m_prev;
        }
        if (m_head[list] == npos) {
            m_occupied[list / slots_per_level] &= ~(std::uint64_t{1} << (list % slots_per_level));
        }
    }

    std::span<wheel_node> m_nodes;
    std::uint64_t m_elapsed = 0;
    std::uint32_t m_free = npos; // head of the free list, linked through m_next
    std::uint32_t m_armed = 0;
    std::array<std::uint64_t, levels> m_occupied{}; // bit k of [L]: slot k of level L is not empty
    std::array<std::uint32_t, list_count> m_head{}; // first node of each slot, or npos
    std::array<std::uint32_t, list_count> m_tail{}; // last node of each slot, or npos
};

} // namespace weft::detail
