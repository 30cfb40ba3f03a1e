//! JWT decode + verify for every claim type, `peek` and `decode_any`; what decodes is validated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbn::claims::{
    decode, decode_any, peek, AccountClaims, ActivationClaims, AuthorizationRequestClaims,
    AuthorizationResponseClaims, ClaimBody, GenericClaims, OperatorClaims, UserClaims,
};
use pbn_fuzz::NOW;

fn check<T: ClaimBody>(token: &str) {
    if let Ok(c) = decode::<T>(token) {
        drop(c.validate(NOW));
    }
}

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    drop(peek(&token));
    drop(decode_any(&token));
    check::<OperatorClaims>(&token);
    check::<AccountClaims>(&token);
    check::<UserClaims>(&token);
    check::<ActivationClaims>(&token);
    check::<AuthorizationRequestClaims>(&token);
    check::<AuthorizationResponseClaims>(&token);
    check::<GenericClaims>(&token);
});
