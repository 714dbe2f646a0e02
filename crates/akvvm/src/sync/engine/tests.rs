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
    let waits: Vec<Duration> = (0..1000)
        .map(|_| jittered_interval(Duration::from_secs(100)))
        .collect();
    for d in &waits {
        assert!(
            *d >= Duration::from_secs(90) && *d <= Duration::from_secs(110),
            "{d:?}"
        );
    }
    // And there is jitter: spread over the whole band, both sides of the interval (a uniform
    // draw misses either outer quarter of the band in 1,000 tries with odds of 0.75^1000).
    let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
    assert!(
        *min < Duration::from_secs(95),
        "no wait below 95 s: {min:?}"
    );
    assert!(
        *max > Duration::from_secs(105),
        "no wait above 105 s: {max:?}"
    );
}
