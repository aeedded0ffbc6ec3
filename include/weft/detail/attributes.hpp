// weft/detail/attributes.hpp: the few macros weft's headers need, defined in
// one place. weft.hpp #undefs them at its end (detail/attributes_end.hpp),
// so the umbrella header and the single header leak no macro.
#pragma once

// clang 14 cannot compile a free or static coroutine that is inline or a
// template under -fsanitize=function (part of -fsanitize=undefined): "Cannot
// represent a difference across sections" (llvm/llvm-project#49689). Such
// coroutines opt out of that one check.
#if defined(__clang__)
#define WEFT_NO_SANITIZE_FUNCTION __attribute__((no_sanitize("function")))
#else
#define WEFT_NO_SANITIZE_FUNCTION
#endif
