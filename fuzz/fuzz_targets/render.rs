//! `herald check`, then, when it accepts the statement, every channel (PDF, feeds,
//! site, mail): no channel may fail on what check accepted
//! (herald_e2e::fuzz::render). Input: the path, a newline, the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // One worker: coverage and stack depth do not depend on scheduling.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    },
    |data: &[u8]| {
        let _ = herald_e2e::fuzz::render(data);
    }
);
