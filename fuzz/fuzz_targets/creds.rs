//! Creds file parsing; a parsed seed is turned into a key pair.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(creds) = pbn::claims::parse_creds(&text) {
        drop(creds.key_pair());
    }
});
