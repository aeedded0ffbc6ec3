// weft/detail/attributes_end.hpp: #undefs what detail/attributes.hpp
// defines. Included last by weft.hpp; no include guard on purpose.
#undef WEFT_NO_SANITIZE_FUNCTION
#undef WEFT_COMPILED_ON_USE
