//! The admin API request decoder (the bytes the admin micro service receives). A decoded
//! request must encode back into a request that decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbn::decode_request;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(data) else { return };
    let _ = req.name();
    let _ = req.is_read_only();
    let again = serde_json::to_vec(&req).expect("a request encodes");
    if again.len() <= data.len() {
        decode_request(&again).expect("a re-encoded request decodes");
    }
});
