//! Times `Engine::process` + `commit` without Python: `cargo run --release --example hotpath`.
//! The figures that count come from `make bench`; this is for profiling the Rust side alone.
//! `PAYLOADS=file` replays messages dumped from the Python benchmark (records of u32 payload
//! length, u16 subject length, subject, payload, little-endian), JSON if `JSON` is set.

use std::time::Instant;

use utopia_core::{Engine, Message, Options};

fn msgpack_event(out: &mut Vec<u8>, location: i64, camera: i64, detection: i64, item: &str, ts: i64) {
    out.push(0x85);
    for (key, value) in
        [("geographical_location_oid", location), ("video_camera_oid", camera), ("detection_oid", detection)]
    {
        out.push(0xa0 | key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        out.push(0xd3);
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.push(0xa9);
    out.extend_from_slice(b"item_name");
    out.push(0xa0 | item.len() as u8);
    out.extend_from_slice(item.as_bytes());
    out.push(0xb2);
    out.extend_from_slice(b"timestamp_detected");
    out.push(0xd3);
    out.extend_from_slice(&ts.to_be_bytes());
}

/// Messages from a `PAYLOADS` file and the number of events in them (500 per message).
fn load(path: &std::ffi::OsStr) -> (Vec<Vec<u8>>, Vec<String>, i64) {
    let data = std::fs::read(path).expect("a readable PAYLOADS file");
    let (mut payloads, mut subjects) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let subject_len = usize::from(u16::from_le_bytes([data[at + 4], data[at + 5]]));
        at += 6;
        subjects.push(String::from_utf8(data[at..at + subject_len].to_vec()).unwrap());
        at += subject_len;
        payloads.push(data[at..at + len].to_vec());
        at += len;
    }
    let events = payloads.len() as i64 * 500;
    (payloads, subjects, events)
}

/// `IDS=random|cameras` reshapes the sequential ids: scrambled, or 64 interleaved sequences.
fn shape(id: i64) -> i64 {
    match std::env::var("IDS").as_deref() {
        Ok("random") => (id.wrapping_mul(0x5851_f42d_4c95_7f2d) & (i64::MAX >> 1)) | 1,
        Ok("cameras") => ((id % 64) << 40) | (id / 64),
        _ => id,
    }
}

fn main() {
    if let Some(path) = std::env::var_os("PAYLOADS") {
        let (payloads, subjects, events) = load(&path);
        let content_type = if std::env::var_os("JSON").is_some() { None } else { Some("application/msgpack") };
        run(&payloads, &subjects, events, content_type);
        return;
    }
    let events: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let items = ["person", "car", "bicycle", "bus", "truck", "dog"];
    let mut payloads = Vec::new();
    let mut subjects = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut id = 0;
    for message in 0..events / 500 {
        let location = (message % 30) + 1;
        let mut payload = vec![0xdc, 0x01, 0xf4];
        for _ in 0..500 {
            let detection = if next() % 20 == 0 && id > 10 {
                id - (next() % 10) as i64
            } else {
                id += 1;
                id
            };
            let detection = shape(detection);
            let item = items[(next() % items.len() as u64) as usize];
            msgpack_event(
                &mut payload,
                location,
                location * 100 + (next() % 8) as i64,
                detection,
                item,
                1_764_160_000_000 + message,
            );
        }
        payloads.push(payload);
        subjects.push(format!("utopia.detections.{location}"));
    }
    run(&payloads, &subjects, events, Some("application/msgpack"));
}

fn run(payloads: &[Vec<u8>], subjects: &[String], events: i64, content_type: Option<&str>) {
    for _ in 0..5 {
        let engine = Engine::new(3_600_000).unwrap();
        if std::env::var_os("COLD").is_none() {
            // A worker in steady state: the previous generation holds as many ids as this run adds.
            let old: Vec<i64> = (0..events).map(|i| i + 1_000_000_000_000).collect();
            engine.warm(&old, &vec![1_764_160_000_000 - 1_200_000; old.len()], 1_764_160_000_000).unwrap();
        }
        let start = Instant::now();
        let mut accepted = 0;
        for (chunk, subject_chunk) in payloads.chunks(20).zip(subjects.chunks(20)) {
            let messages: Vec<Message<'_>> = chunk
                .iter()
                .zip(subject_chunk)
                .map(|(p, s)| Message { payload: p, subject: s, content_type })
                .collect();
            let mut out = engine.process(&messages, 1_764_160_000_000, Options::default());
            accepted += out.tally.accepted;
            engine.recycle_copy_buffer(std::mem::take(&mut out.copy));
            engine.commit(out.token, 1_764_160_000_000).unwrap();
        }
        let seconds = start.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // an event count far below 2^52
        let rate = events as f64 / seconds / 1e6;
        println!("{rate:.2} M events/s ({accepted} accepted)");
    }
}
