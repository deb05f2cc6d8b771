//! Holds: all-or-nothing seats, the general-admission counter, the ticket limit, the sale
//! window, expiry without readers, release, and the worker's mirror into Postgres surviving a
//! worker killed mid-batch. The races run across two gateway instances. This module holds the
//! fixtures the hold tests share; the tests sit by concept: seats ([`seated`]), the
//! general-admission counter ([`general`]), holds sent to Redis in one call ([`batch`]), the
//! requests refused ([`refusals`]), expiry ([`expiry`]), release ([`release`]) and the event
//! sink into Postgres ([`sink`]).

mod batch;
mod expiry;
mod general;
mod refusals;
mod release;
mod seated;
mod sink;

use std::{collections::HashMap, time::Duration};

use boxoffice_domain::ids::HoldId;
use fred::prelude::*;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

use crate::helpers::*;

/// Sends `requests` (app index, buyer index, body) at once, `concurrency` in flight, and
/// returns each buyer index with the status and body it got (in completion order).
async fn race(
    apps: &[&TestApp],
    buyers: &[crate::helpers::Buyer],
    schedule: i64,
    requests: Vec<(usize, usize, Value)>,
    concurrency: usize,
) -> Vec<(usize, u16, Value)> {
    stream::iter(requests)
        .map(|(app, buyer, body)| {
            let app = apps[app];
            let (http, base, who) = (app.http.clone(), app.url(""), buyers[buyer].clone());
            async move {
                let response = post_hold(&http, &base, &who, schedule, body).await;
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                (buyer, status, body)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn holds_in_pg(pg: &sqlx::PgPool, schedule: i64) -> Vec<(uuid::Uuid, String, i32)> {
    sqlx::query_as("SELECT id, status, quantity FROM holds WHERE schedule_id = $1")
        .bind(schedule)
        .fetch_all(pg)
        .await
        .unwrap()
}
