// benches/support/workers.hpp: --workers N for an executor whose worker
// count is a template argument. The switch lives here, once: a program calls
// with_workers<Options>(n, fn) and fn receives the executor type.
#pragma once

#include <weft/weft.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace bench {

/// The worker counts the benchmarks are compiled for. Each one is another
/// instantiation of every weft workload, so the list stays short.
inline constexpr const char* supported_workers = "1, 2, 4 or 8";

/// Calls `fn(weft::executor<N, 256, Options>*)` (a null pointer that only
/// carries the type) for N = `workers`; exits with a message for a count it
/// was not compiled for.
template <class Options = weft::default_options, class Fn>
void with_workers(unsigned workers, Fn&& fn) {
    switch (workers) {
    case 1: fn(static_cast<weft::executor<1, 256, Options>*>(nullptr)); return;
    case 2: fn(static_cast<weft::executor<2, 256, Options>*>(nullptr)); return;
    case 4: fn(static_cast<weft::executor<4, 256, Options>*>(nullptr)); return;
    case 8: fn(static_cast<weft::executor<8, 256, Options>*>(nullptr)); return;
    default:
        std::fprintf(stderr, "--workers %u: weft's benchmarks are compiled for %s workers\n", workers,
                     supported_workers);
        std::exit(2);
    }
}

/// The executor type a with_workers callback receives.
template <class Tag>
using executor_of = std::remove_pointer_t<Tag>;

} // namespace bench
