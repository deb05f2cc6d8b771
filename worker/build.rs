//! `sqlx::migrate!` embeds `migrations/` at compile time, but cargo does not know the macro
//! read those files: without this, a new migration is silently missing from an incremental
//! build (sqlx's documented workaround).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
