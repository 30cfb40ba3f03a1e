//! `Pipeline::handle` on arbitrary bytes. The first byte picks the way in:
//! 0 plain request to the store without xkey; 1 bytes as a sealed box with the server's xkey in
//! the header; 2 bytes sealed by the harness (so the plaintext JWT is fuzzed past the box);
//! 3 header text up to the first newline, then the payload, to the store with an xkey.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbn_fuzz::{fixture, NOW};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    let xkey = Some(f.server_xkey.public_key());
    match mode % 4 {
        0 => drop(f.plain.handle(rest, None, NOW)),
        1 => drop(f.sealed.handle(rest, xkey, NOW)),
        2 => drop(f.sealed.handle(&f.seal(rest), xkey, NOW)),
        _ => {
            let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let header = std::str::from_utf8(&rest[..cut]).ok();
            let payload = rest.get(cut + 1..).unwrap_or_default();
            drop(f.sealed.handle(payload, header, NOW));
        }
    }
});
