//! Probe samples from observations: latency p99, class delivery in time,
//! readiness, each bounded.

use chaos::probe::{
    readiness_ratio, DeliveryTracker, LatencyWindow, LATENCIES_PER_INTERVAL_MAX,
    MESSAGES_TRACKED_MAX,
};

#[test]
fn p99_is_the_nearest_rank_and_each_interval_starts_afresh() {
    let mut window = LatencyWindow::new();
    assert_eq!(window.take_p99(), None, "no run finished: no sample");
    for ms in (1..=100).rev() {
        window.record(ms);
    }
    assert_eq!(window.take_p99(), Some(99.0));
    assert_eq!(window.take_p99(), None);
    for ms in 1..=1000 {
        window.record(ms);
    }
    assert_eq!(window.take_p99(), Some(990.0));
    window.record(7);
    assert_eq!(window.take_p99(), Some(7.0));
}

#[test]
fn a_window_holds_at_most_its_limit() {
    let mut window = LatencyWindow::new();
    for _ in 0..LATENCIES_PER_INTERVAL_MAX {
        assert!(window.record(5));
    }
    assert!(!window.record(5));
    assert_eq!(window.overflowed(), 1);
    assert_eq!(window.take_p99(), Some(5.0));
    assert!(window.record(5), "the next interval has room again");
}

#[test]
fn a_message_counts_as_delivered_only_if_everyone_got_it_in_time() {
    let mut tracker = DeliveryTracker::new(1000);
    assert!(tracker.sent(1, 0, 3));
    assert!(tracker.sent(2, 0, 2));
    assert!(tracker.sent(3, 500, 1));
    tracker.received(1, 400);
    tracker.received(1, 1000);
    tracker.received(1, 1000);
    tracker.received(2, 10);
    tracker.received(2, 1001);
    tracker.received(99, 10);
    // At 1000 no deadline has passed yet (exactly on time still counts).
    assert_eq!(tracker.take_ratio(1000), None);
    assert_eq!(tracker.take_ratio(1001), Some(0.5));
    // Message 3 is never received: decided as not delivered.
    tracker.received(3, 1600);
    assert_eq!(tracker.take_ratio(2000), Some(0.0));
    assert_eq!(tracker.take_ratio(9000), None);
}

#[test]
fn the_tracker_holds_at_most_its_limit() {
    let mut tracker = DeliveryTracker::new(1000);
    for id in 0..MESSAGES_TRACKED_MAX as u64 {
        assert!(tracker.sent(id, 0, 0));
    }
    assert!(!tracker.sent(u64::MAX, 0, 1));
    assert!(
        !tracker.sent(0, 0, 1),
        "an id already pending is refused too"
    );
    assert_eq!(tracker.untracked(), 2);
    assert_eq!(tracker.take_ratio(1001), Some(1.0));
    assert!(tracker.sent(u64::MAX, 2000, 1), "room again once decided");
}

#[test]
fn readiness_is_a_share_of_every_process() {
    assert_eq!(readiness_ratio(3, 4), Some(0.75));
    assert_eq!(readiness_ratio(5, 4), Some(1.0));
    assert_eq!(readiness_ratio(0, 0), None);
}
