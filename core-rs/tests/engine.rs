//! The engine end to end, without Python: dedup across batches, commit/abort, joins, rejects.

use utopia_core::{CoreError, Engine, Locations, Message, Options};

const NOW: i64 = 1_764_160_000_000;

fn event(location: i64, detection: i64) -> String {
    format!(
        r#"{{"geographical_location_oid":{location},"video_camera_oid":9,"detection_oid":{detection},"item_name":"car","timestamp_detected":{NOW}}}"#
    )
}

fn json(events: &[String]) -> Vec<u8> {
    format!("[{}]", events.join(",")).into_bytes()
}

fn message<'a>(payload: &'a [u8], subject: &'a str) -> Message<'a> {
    Message { payload, subject, content_type: None }
}

#[test]
fn duplicates_within_and_across_batches_are_dropped() {
    let engine = Engine::new(60_000).unwrap();
    let first = json(&[event(1, 1), event(1, 2), event(1, 1)]);
    let out = engine.process(&[message(&first, "utopia.detections.1")], NOW, Options::default());
    assert_eq!((out.tally.accepted, out.tally.duplicates), (2, 1));
    assert_eq!(out.ids, vec![1, 2]);
    // A second batch while the first is still open must not accept id 2 again.
    let second = json(&[event(1, 2), event(1, 3)]);
    let open = engine.process(&[message(&second, "utopia.detections.1")], NOW, Options::default());
    assert_eq!((open.tally.accepted, open.tally.duplicates), (1, 1));
    engine.commit(out.token, NOW).unwrap();
    engine.commit(open.token, NOW).unwrap();
    assert_eq!(engine.stats().seen_ids, 3);
}

#[test]
fn an_aborted_batch_is_accepted_again_on_redelivery() {
    let engine = Engine::new(60_000).unwrap();
    let payload = json(&[event(1, 7)]);
    let failed = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    assert_eq!(engine.abort(failed.token), Ok(1));
    let again = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    assert_eq!(again.tally.accepted, 1);
    assert_eq!(engine.abort(failed.token), Err(CoreError::UnknownBatch(failed.token)));
}

#[test]
fn ids_expire_after_the_horizon() {
    let engine = Engine::new(1000).unwrap();
    let payload = json(&[event(1, 7)]);
    let first = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    engine.commit(first.token, NOW).unwrap();
    let soon = engine.process(&[message(&payload, "utopia.detections.1")], NOW + 1000, Options::default());
    assert_eq!(soon.tally.duplicates, 1);
    engine.abort(soon.token).unwrap();
    let late = engine.process(&[message(&payload, "utopia.detections.1")], NOW + 1250, Options::default());
    assert_eq!(late.tally.accepted, 1);
}

#[test]
fn warm_ids_count_as_seen() {
    let engine = Engine::new(60_000).unwrap();
    assert_eq!(engine.warm(&[5, 6], &[NOW - 1000, NOW - 2000], NOW), Ok(2));
    let payload = json(&[event(1, 5), event(1, 8)]);
    let out = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    assert_eq!((out.tally.accepted, out.tally.duplicates), (1, 1));
    assert!(matches!(engine.warm(&[1], &[], NOW), Err(CoreError::InvalidArgument { name: "seen_at_ms", .. })));
}

#[test]
fn join_uses_the_table_current_at_batch_start() {
    let engine = Engine::new(60_000).unwrap();
    let payload = json(&[event(1, 1), event(1, 2)]);
    let subject = "utopia.detections.1";
    let before = engine.process(&[message(&payload, subject)], NOW, Options { live: true });
    assert_eq!(before.tally.unmatched, 2);
    engine.abort(before.token).unwrap();
    engine.set_locations(Locations::new([(1, "Old Town".to_string())]));
    let after = engine.process(&[message(&payload, subject)], NOW, Options { live: true });
    assert_eq!(after.tally.unmatched, 0);
    let live = String::from_utf8(after.live[0].1.clone()).unwrap();
    assert!(live.contains(r#""geographical_location":"Old Town""#), "{live}");
}

#[test]
fn whole_message_rejects_name_subject_content_type_and_payload() {
    let engine = Engine::new(60_000).unwrap();
    let good = json(&[event(1, 1)]);
    let messages = [
        message(&good, "utopia.detections.abc"),
        Message { payload: &good, subject: "utopia.detections.1", content_type: Some("text/plain") },
        message(b"[{", "utopia.detections.1"),
        message(&good, "utopia.detections.2"),
    ];
    let out = engine.process(&messages, NOW, Options::default());
    let problems: Vec<_> = out.rejects.iter().map(|r| (r.message_index, r.problem.field, r.problem.code)).collect();
    assert_eq!(
        problems,
        vec![
            (0, "subject", "subject"),
            (1, "content_type", "content_type"),
            (2, "payload", "decode"),
            (3, "geographical_location_oid", "location_mismatch"),
        ]
    );
    assert_eq!((out.tally.received, out.tally.rejected, out.tally.accepted), (4, 4, 0));
}

#[test]
fn a_bad_event_in_an_array_spares_its_neighbours_and_keeps_its_bytes() {
    let engine = Engine::new(60_000).unwrap();
    let payload = json(&[event(1, 1), r#"{"detection_oid":"x"}"#.to_string(), event(1, 3)]);
    let out = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    assert_eq!(out.tally.accepted, 2);
    let reject = &out.rejects[0];
    assert_eq!(reject.event_index, Some(1));
    assert_eq!(&payload[reject.span.0..reject.span.1], br#"{"detection_oid":"x"}"#);
}

#[test]
fn counts_group_by_minute_location_camera_and_item() {
    let engine = Engine::new(60_000).unwrap();
    let payload = json(&[event(1, 1), event(1, 2), event(1, 3)]);
    let out = engine.process(&[message(&payload, "utopia.detections.1")], NOW, Options::default());
    assert_eq!(out.counts.count, vec![3]);
    assert_eq!(out.counts.minute_ms, vec![NOW - NOW % 60_000]);
    assert_eq!(out.counts.item, vec!["car".to_string()]);
    assert_eq!((out.tally.oldest_ms, out.tally.newest_ms), (Some(NOW), Some(NOW)));
}

#[test]
fn only_canonical_subject_tokens_name_a_location() {
    use utopia_core::engine::subject_location;
    assert_eq!(subject_location("utopia.detections.7"), Some(7));
    assert_eq!(subject_location("utopia.detections.9223372036854775807"), Some(i64::MAX));
    // The server partitions by the token's text: "07" and "7" must not both mean location 7.
    for bad in [
        "utopia.detections.07",
        "utopia.detections.0",
        "utopia.detections.",
        "utopia.detections.x",
        "utopia.detections.9223372036854775808",
        "other.7",
    ] {
        assert_eq!(subject_location(bad), None, "{bad}");
    }
}
