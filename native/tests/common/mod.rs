//! What the bounded fuzz tests share: how long to run and from which seed.

/// `INFERD_FUZZ_SECONDS` (default 2, so that `cargo test` stays quick) and `INFERD_FUZZ_SEED`
/// (default 0, so that a failure can be replayed).
pub fn fuzz_settings() -> (u64, u64) {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    (
        number("INFERD_FUZZ_SECONDS", 2),
        number("INFERD_FUZZ_SEED", 0),
    )
}
