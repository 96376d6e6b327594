//! The persisted store (`--state.dir/groups.json`, every format version): a crash or a full
//! disk can leave anything in it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sparewatch::store::format::parse_versioned(data);
});
