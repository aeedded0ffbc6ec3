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

// GCC 12 emits the body of every inline coroutine (its actor and destroy
// functions, and all they call) in each translation unit that includes it,
// used or not, unless optimizing; and a coroutine template instantiated from
// an inline function is such a coroutine too. For the socket and descriptor
// operations that was most of the object code of a file that only includes
// weft.hpp, and about 0.5 s of its -O0 compile. Prefixed with this macro,
// such a member becomes a function template with a defaulted parameter:
// called as before, compiled only where it is called.
#define WEFT_COMPILED_ON_USE template <class = void>
