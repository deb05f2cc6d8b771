//! The outbox of confirmed reservations and its delivery to a webhook.
