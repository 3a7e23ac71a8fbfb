//! Accepted events as JSON arrays per location, for the live feed after commit.

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

use crate::event::Event;

#[derive(Default)]
pub struct LiveWriter {
    by_location: HashMap<i64, Vec<u8>, FxBuildHasher>,
}

impl LiveWriter {
    pub fn event(&mut self, event: &Event<'_>, name: Option<&str>) {
        let buf = self.by_location.entry(event.location).or_default();
        buf.push(if buf.is_empty() { b'[' } else { b',' });
        let mut ints = itoa::Buffer::new();
        buf.extend_from_slice(b"{\"geographical_location_oid\":");
        buf.extend_from_slice(ints.format(event.location).as_bytes());
        buf.extend_from_slice(b",\"video_camera_oid\":");
        buf.extend_from_slice(ints.format(event.camera).as_bytes());
        buf.extend_from_slice(b",\"detection_oid\":");
        buf.extend_from_slice(ints.format(event.detection).as_bytes());
        buf.extend_from_slice(b",\"item_name\":");
        json_string(buf, &event.item_name);
        buf.extend_from_slice(b",\"timestamp_detected\":");
        buf.extend_from_slice(ints.format(event.timestamp_ms).as_bytes());
        buf.extend_from_slice(b",\"geographical_location\":");
        match name {
            Some(name) => json_string(buf, name),
            None => buf.extend_from_slice(b"null"),
        }
        buf.push(b'}');
    }

    pub fn finish(self) -> Vec<(i64, Vec<u8>)> {
        let mut out: Vec<_> = self
            .by_location
            .into_iter()
            .map(|(location, mut buf)| {
                buf.push(b']');
                (location, buf)
            })
            .collect();
        out.sort_unstable_by_key(|(location, _)| *location);
        out
    }
}

fn json_string(buf: &mut Vec<u8>, value: &str) {
    // Writing a `&str` into a Vec cannot fail.
    serde_json::to_writer(&mut *buf, value).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn writes_valid_json_per_location() {
        let mut live = LiveWriter::default();
        for (location, detection, item) in [(2, 1, "car"), (1, 2, "a \"quoted\"\n name"), (2, 3, "bus")] {
            let event = Event { location, camera: 9, detection, item_name: Cow::Borrowed(item), timestamp_ms: 5 };
            live.event(&event, (location == 1).then_some("Old Town"));
        }
        let out = live.finish();
        assert_eq!(out.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![1, 2]);
        let first: serde_json::Value = serde_json::from_slice(&out[0].1).unwrap();
        assert_eq!(first[0]["item_name"], "a \"quoted\"\n name");
        assert_eq!(first[0]["geographical_location"], "Old Town");
        let second: serde_json::Value = serde_json::from_slice(&out[1].1).unwrap();
        assert_eq!(second.as_array().unwrap().len(), 2);
        assert!(second[0]["geographical_location"].is_null());
    }
}
