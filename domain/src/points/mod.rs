//! Points: balances and the ledger.
//!
//! Owns invariant 4 ("money is exact"): every change is a ledger row written in the same
//! transaction as the balance update, the database refuses a negative balance, and a charge
//! retried with the same `Idempotency-Key` is applied once and answered with the same body.

pub mod pg;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// An amount of points: a positive integer no larger than one charge may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Points(i64);

impl Points {
    /// The contract's ceiling for one charge.
    pub const MAX_CHARGE: i64 = 1_000_000;

    /// Validates the `amount` of a charge as the JSON value the client sent, so that `1.5`,
    /// `"10"`, `-3` and `1e12` are all refused the same way.
    pub fn parse_charge(raw: &serde_json::Value) -> Result<Self> {
        let invalid = Error::InvalidAmount {
            max: Self::MAX_CHARGE,
        };
        let value = raw.as_i64().ok_or(invalid)?;
        if value <= 0 || value > Self::MAX_CHARGE {
            return Err(Error::InvalidAmount {
                max: Self::MAX_CHARGE,
            });
        }
        Ok(Self(value))
    }

    /// Wraps an amount read from storage.
    pub fn from_stored(value: i64) -> Self {
        Self(value)
    }

    /// The raw amount.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A client-chosen key that makes a request safe to retry: 1 to 200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key.
    pub const MAX_LEN: usize = 200;

    /// Validates a header value.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::InvalidInput(format!(
                "Idempotency-Key must be 1 to {} visible ASCII characters",
                Self::MAX_LEN
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fingerprint of a request body, stored with its idempotency key so that reusing a key for
/// a different request is refused rather than answered with the wrong response.
pub fn request_fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// A user's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub user_id: i64,
    pub balance: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn charges_must_be_positive_integers_up_to_the_ceiling() {
        assert_eq!(Points::parse_charge(&json!(1)).unwrap().get(), 1);
        assert_eq!(
            Points::parse_charge(&json!(1_000_000)).unwrap().get(),
            1_000_000
        );
        for bad in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("10"),
            json!(null),
            json!(1_000_001),
            json!(1e12),
        ] {
            assert!(
                matches!(Points::parse_charge(&bad), Err(Error::InvalidAmount { .. })),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_integer_in_range_is_accepted_and_any_other_refused(n in any::<i64>()) {
            let ok = Points::parse_charge(&json!(n)).is_ok();
            prop_assert_eq!(ok, (1..=Points::MAX_CHARGE).contains(&n));
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(201)).is_err());
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(
            request_fingerprint(&["ab", "c"]),
            request_fingerprint(&["a", "bc"])
        );
    }
}
