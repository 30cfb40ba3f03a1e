//! The callout pipeline past the signature check: the input (after a mode byte) is the JWT
//! payload JSON of a request, with `@AUTH@`, `@SERVER@` and `@SXKEY@` replaced by the fixture's
//! keys, signed by the server key (and sealed when the mode byte is odd) before it is handled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbn_fuzz::{fixture, NOW};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    let side = if mode & 1 == 0 { &f.plain } else { &f.sealed };
    let token = f.sign(&f.fill(side, rest));
    let out = if mode & 1 == 0 {
        side.handle(token.as_bytes(), None, NOW)
    } else {
        side.handle(&f.seal(token.as_bytes()), Some(f.server_xkey.public_key()), NOW)
    };
    // An admitted login always carries a reply.
    assert!(out.admitted.is_none() || out.reply.is_some(), "admitted without a reply");
});
