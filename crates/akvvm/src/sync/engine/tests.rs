//! The engine's retry and polling delays.

use super::*;

#[test]
fn retry_delays_grow_up_to_the_cap() {
    let options = EngineOptions {
        initial_retry_delay: Duration::from_secs(2),
        max_retry_delay: Duration::from_secs(300),
        chain_validation: false,
    };
    for (failures, ceiling) in [(1, 2), (2, 4), (3, 8), (9, 300), (100, 300)] {
        let d = options.retry_delay(failures);
        let ceiling = Duration::from_secs(ceiling);
        assert!(d >= ceiling / 2 && d <= ceiling, "{failures}: {d:?}");
    }
}

#[test]
fn polling_jitter_stays_within_ten_percent() {
    for _ in 0..100 {
        let d = jittered_interval(Duration::from_secs(100));
        assert!(
            d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
            "{d:?}"
        );
    }
}
