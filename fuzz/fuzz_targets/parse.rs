//! Front matter, validation and Markdown of one statement file, as `herald check`
//! parses it (herald_e2e::fuzz::parse). Input: the path, a newline, the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| herald_e2e::fuzz::parse(data));
