//! The persisted state file (`--state.dir/groups.json`): a crash or a full disk can leave
//! anything in it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sparewatch::state_file::parse(data);
});
