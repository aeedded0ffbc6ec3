// weft/version.hpp: which weft this is. CMake reads the project's version
// from the three numbers below, so they are the one place it is written.
#pragma once

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/// The version as one number, MAJOR * 10000 + MINOR * 100 + PATCH, for `#if`.
#define WEFT_VERSION (WEFT_VERSION_MAJOR * 10000 + WEFT_VERSION_MINOR * 100 + WEFT_VERSION_PATCH)

namespace weft {

/// The version of the weft headers a program was compiled with.
struct version_info {
    int major;        ///< WEFT_VERSION_MAJOR
    int minor;        ///< WEFT_VERSION_MINOR
    int patch;        ///< WEFT_VERSION_PATCH
    const char* text; ///< "MAJOR.MINOR.PATCH"
};

namespace detail {
#define WEFT_DETAIL_STR2(x) #x
#define WEFT_DETAIL_STR(x) WEFT_DETAIL_STR2(x)
// clang-format off
inline constexpr char version_text[] =
    WEFT_DETAIL_STR(WEFT_VERSION_MAJOR) "." WEFT_DETAIL_STR(WEFT_VERSION_MINOR) "." WEFT_DETAIL_STR(WEFT_VERSION_PATCH);
// clang-format on
#undef WEFT_DETAIL_STR
#undef WEFT_DETAIL_STR2
} // namespace detail

/// The version of the weft headers this program was compiled with.
///
/// ```cpp
/// std::printf("weft %s\n", weft::version().text);
/// ```
constexpr version_info version() noexcept {
    return {WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR, WEFT_VERSION_PATCH, detail::version_text};
}

} // namespace weft
