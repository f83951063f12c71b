//! cargo-fuzz entry for `wampring::fuzz_targets::cbor_decode` (the body and its invariants live
//! there, shared with the stable corpus replay in `tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wampring::fuzz_targets::cbor_decode(data));
