//! MessagePack payloads: one event map, or an array of event maps.
//!
//! A small hand-written reader rather than a serde layer: it hands back byte spans of every
//! array element (the dead-letter stream gets the rejected event itself), never allocates from
//! a length it has not yet seen bytes for, and bounds nesting so hostile input cannot exhaust
//! the stack.

use std::borrow::Cow;

use crate::decode_json::{Item, Sink};
use crate::event::{field_index, Event, RawEvent, Scalar, ITEM, TIMESTAMP_MAX_MS};

const MAX_DEPTH: usize = 64;

/// Decodes a whole payload into `out` (and the byte span of each item into `spans`); on error
/// nothing of this payload may be used.
pub fn decode<'a, S: Sink<'a>>(payload: &'a [u8], out: &mut S, spans: &mut Vec<(usize, usize)>) -> Result<(), String> {
    let mut reader = Reader { buf: payload, pos: 0 };
    reader.top(out, spans).map_err(|Fault { what, at }| format!("undecodable MessagePack: {what} at byte {at}"))?;
    if reader.pos != payload.len() {
        return Err(format!("undecodable MessagePack: trailing bytes after the value at byte {}", reader.pos));
    }
    Ok(())
}

/// What went wrong and where; small and `Copy` so the happy path pays nothing for it.
#[derive(Clone, Copy)]
struct Fault {
    what: &'static str,
    at: usize,
}

type Read<T> = Result<T, Fault>;

#[derive(Clone, Copy)]
enum Head {
    Int(i64),
    Uint(u64),
    Float,
    Nil,
    Bool,
    Str(usize),
    Bin(usize),
    Ext(usize),
    Array(usize),
    Map(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(Fault { what: "unexpected end of data", at: self.buf.len() });
        };
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn uint(&mut self, width: usize) -> Read<u64> {
        let bytes = self.take(width)?;
        Ok(match width {
            1 => u64::from(bytes[0]),
            2 => u64::from(u16::from_be_bytes([bytes[0], bytes[1]])),
            4 => u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            _ => bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        })
    }

    fn sint(&mut self, width: usize) -> Read<i64> {
        let raw = self.uint(width)?;
        let shift = 64 - 8 * width as u32;
        Ok(((raw << shift) as i64) >> shift)
    }

    fn len(&mut self, width: usize) -> Read<usize> {
        Ok(self.uint(width)? as usize)
    }

    #[inline]
    fn head(&mut self) -> Read<Head> {
        let at = self.pos;
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Head::Int(i64::from(marker)),
            0x80..=0x8f => Head::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Head::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Head::Str(usize::from(marker & 0x1f)),
            0xc0 => Head::Nil,
            0xc2 | 0xc3 => Head::Bool,
            0xc4 => Head::Bin(self.len(1)?),
            0xc5 => Head::Bin(self.len(2)?),
            0xc6 => Head::Bin(self.len(4)?),
            0xc7 => Head::Ext(self.len(1)? + 1),
            0xc8 => Head::Ext(self.len(2)? + 1),
            0xc9 => Head::Ext(self.len(4)? + 1),
            0xca => {
                self.take(4)?;
                Head::Float
            }
            0xcb => {
                self.take(8)?;
                Head::Float
            }
            0xcc => Head::Uint(self.uint(1)?),
            0xcd => Head::Uint(self.uint(2)?),
            0xce => Head::Uint(self.uint(4)?),
            0xcf => Head::Uint(self.uint(8)?),
            0xd0 => Head::Int(self.sint(1)?),
            0xd1 => Head::Int(self.sint(2)?),
            0xd2 => Head::Int(self.sint(4)?),
            0xd3 => Head::Int(self.sint(8)?),
            0xd4 => Head::Ext(2),
            0xd5 => Head::Ext(3),
            0xd6 => Head::Ext(5),
            0xd7 => Head::Ext(9),
            0xd8 => Head::Ext(17),
            0xd9 => Head::Str(self.len(1)?),
            0xda => Head::Str(self.len(2)?),
            0xdb => Head::Str(self.len(4)?),
            0xdc => Head::Array(self.len(2)?),
            0xdd => Head::Array(self.len(4)?),
            0xde => Head::Map(self.len(2)?),
            0xdf => Head::Map(self.len(4)?),
            0xe0..=0xff => Head::Int(i64::from(marker as i8)),
            0xc1 => return Err(Fault { what: "reserved marker 0xc1", at }),
        })
    }

    /// Skips the body of a value whose head was read.
    fn skip_body(&mut self, head: Head, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return Err(Fault { what: "nesting deeper than 64 levels", at: self.pos });
        }
        match head {
            Head::Int(_) | Head::Uint(_) | Head::Float | Head::Nil | Head::Bool => {}
            Head::Str(n) | Head::Bin(n) | Head::Ext(n) => {
                self.take(n)?;
            }
            Head::Array(n) => {
                for _ in 0..n {
                    let inner = self.head()?;
                    self.skip_body(inner, depth + 1)?;
                }
            }
            Head::Map(n) => {
                for _ in 0..n.saturating_mul(2) {
                    let inner = self.head()?;
                    self.skip_body(inner, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn top<S: Sink<'a>>(&mut self, out: &mut S, spans: &mut Vec<(usize, usize)>) -> Read<()> {
        match self.head()? {
            Head::Map(n) => {
                self.map(n, out)?;
                spans.push((0, self.buf.len()));
            }
            Head::Array(n) => {
                // Each element takes at least one byte: a bigger count is a lie, caught on read.
                out.reserve(n.min(self.buf.len() - self.pos));
                for _ in 0..n {
                    let start = self.pos;
                    match self.head()? {
                        Head::Map(fields) => self.map(fields, out)?,
                        other => {
                            let kind = kind(&other);
                            self.skip_body(other, 1)?;
                            out.push(Item::NotObject(kind));
                        }
                    }
                    spans.push((start, self.pos));
                }
            }
            _ => return Err(Fault { what: "expected a map or an array of maps at the top level", at: 0 }),
        }
        Ok(())
    }

    /// An event map whose head was read: the common shape straight to a checked event, anything
    /// else through the general path that reports what is wrong with it.
    #[inline]
    fn map<S: Sink<'a>>(&mut self, fields: usize, out: &mut S) -> Read<()> {
        let start = self.pos;
        if let Some(event) = self.typed_event(fields) {
            out.push_typed(event);
        } else {
            self.pos = start;
            out.push(Item::Event(self.event(fields)?));
        }
        Ok(())
    }

    /// The shape edge agents send: exactly the five fields under fixstr keys, each once, with
    /// in-range integers and a short, non-empty item name; `None` (at any position) for anything
    /// else, which `event` and `validate` then handle in full.
    #[inline]
    fn typed_event(&mut self, fields: usize) -> Option<Event<'a>> {
        if fields != 5 {
            return None;
        }
        let mut ints = [0i64; 5];
        let mut item = "";
        let mut found = 0u8;
        for _ in 0..5 {
            let marker = *self.buf.get(self.pos)?;
            if marker & 0xe0 != 0xa0 {
                return None;
            }
            let key_end = self.pos + 1 + usize::from(marker & 0x1f);
            let index = field_index(self.buf.get(self.pos + 1..key_end)?)?;
            self.pos = key_end;
            if found & (1 << index) != 0 {
                return None;
            }
            found |= 1 << index;
            if index == ITEM {
                item = self.short_name()?;
            } else {
                ints[index] = self.typed_int()?;
            }
        }
        let [location, camera, detection, _, timestamp_ms] = ints;
        // `typed_int` only gives values >= 0; ids must be > 0.
        if location == 0 || camera == 0 || detection == 0 || timestamp_ms > TIMESTAMP_MAX_MS {
            return None;
        }
        Some(Event { location, camera, detection, item_name: Cow::Borrowed(item), timestamp_ms })
    }

    /// A non-negative integer that fits `i64`, in any MessagePack integer encoding.
    #[inline]
    fn typed_int(&mut self) -> Option<i64> {
        let marker = *self.buf.get(self.pos)?;
        let width = match marker {
            0x00..=0x7f => {
                self.pos += 1;
                return Some(i64::from(marker));
            }
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 => 4,
            0xcf | 0xd3 => 8,
            _ => return None,
        };
        let bytes = self.buf.get(self.pos + 1..self.pos + 1 + width)?;
        let mut be = [0u8; 8];
        be[8 - width..].copy_from_slice(bytes);
        let raw = u64::from_be_bytes(be);
        // Signed encodings are negative exactly when their top bit is set.
        if raw >> (8 * width - 1) != 0 && (marker >= 0xd0 || width == 8) {
            return None;
        }
        self.pos += 1 + width;
        Some(raw as i64)
    }

    /// A fixstr or str8 item name: 1 to 255 bytes of UTF-8 without NUL, so within the limit.
    #[inline]
    fn short_name(&mut self) -> Option<&'a str> {
        let marker = *self.buf.get(self.pos)?;
        let (len, at) = match marker {
            0xa0..=0xbf => (usize::from(marker & 0x1f), self.pos + 1),
            0xd9 => (usize::from(*self.buf.get(self.pos + 1)?), self.pos + 2),
            _ => return None,
        };
        let bytes = self.buf.get(at..at + len)?;
        if bytes.is_empty() || bytes.contains(&0) {
            return None;
        }
        let name = std::str::from_utf8(bytes).ok()?;
        self.pos = at + len;
        Some(name)
    }

    #[inline]
    fn event(&mut self, fields: usize) -> Read<RawEvent<'a>> {
        let mut event = RawEvent::default();
        for _ in 0..fields {
            let key = match self.head()? {
                Head::Str(n) => field_index(self.take(n)?),
                other => {
                    self.skip_body(other, 2)?;
                    None
                }
            };
            let head = self.head()?;
            match key {
                Some(index) => {
                    let value = self.scalar(head)?;
                    event.set(index, value);
                }
                None => self.skip_body(head, 2)?,
            }
        }
        Ok(event)
    }

    #[inline]
    fn scalar(&mut self, head: Head) -> Read<Scalar<'a>> {
        Ok(match head {
            Head::Int(v) => Scalar::Int(v),
            Head::Uint(v) => i64::try_from(v).map_or(Scalar::BigUint(v), Scalar::Int),
            Head::Float => Scalar::Float,
            Head::Nil => Scalar::Null,
            Head::Bool => Scalar::Bool,
            Head::Str(n) => match std::str::from_utf8(self.take(n)?) {
                Ok(s) => Scalar::Str(Cow::Borrowed(s)),
                Err(_) => Scalar::Other("a string that is not valid UTF-8"),
            },
            other => {
                let kind = kind(&other);
                self.skip_body(other, 2)?;
                Scalar::Other(kind)
            }
        })
    }
}

fn kind(head: &Head) -> &'static str {
    match head {
        Head::Int(_) | Head::Uint(_) => "an integer",
        Head::Float => "a float",
        Head::Nil => "nil",
        Head::Bool => "a boolean",
        Head::Str(_) => "a string",
        Head::Bin(_) => "binary data",
        Head::Ext(_) => "an extension value",
        Head::Array(_) => "an array",
        Head::Map(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_ok(payload: &[u8]) -> (Vec<Item<'_>>, Vec<(usize, usize)>) {
        let (mut out, mut spans) = (Vec::new(), Vec::new());
        decode(payload, &mut out, &mut spans).unwrap();
        (out, spans)
    }

    #[test]
    fn decodes_an_array_of_maps_with_spans() {
        // [{"detection_oid": 300, "item_name": "car", "x": [nil]}, 5]
        let mut payload = vec![0x92, 0x83, 0xad];
        payload.extend_from_slice(b"detection_oid");
        payload.extend_from_slice(&[0xcd, 0x01, 0x2c, 0xa9]);
        payload.extend_from_slice(b"item_name");
        payload.extend_from_slice(&[0xa3]);
        payload.extend_from_slice(b"car");
        payload.extend_from_slice(&[0xa1, b'x', 0x91, 0xc0, 0x05]);
        let (items, spans) = decode_ok(&payload);
        let Item::Event(event) = &items[0] else { panic!("not an event") };
        assert_eq!(event.fields[2], Some(Scalar::Int(300)));
        assert_eq!(event.fields[3], Some(Scalar::Str(Cow::Borrowed("car"))));
        assert!(matches!(items[1], Item::NotObject("an integer")));
        assert_eq!(spans, vec![(1, payload.len() - 1), (payload.len() - 1, payload.len())]);
    }

    #[test]
    fn integers_of_every_width() {
        for (bytes, expected) in [
            (vec![0xd0, 0xff], Scalar::Int(-1)),
            (vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Scalar::Int(i64::MIN)),
            (vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Scalar::BigUint(u64::MAX)),
            (vec![0xe0], Scalar::Int(-32)),
            (vec![0xca, 0, 0, 0, 0], Scalar::Float),
            (vec![0xc4, 1, 0], Scalar::Other("binary data")),
        ] {
            let mut payload = vec![0x81, 0xad];
            payload.extend_from_slice(b"detection_oid");
            payload.extend_from_slice(&bytes);
            let (items, _) = decode_ok(&payload);
            let Item::Event(event) = &items[0] else { panic!("not an event") };
            assert_eq!(event.fields[2], Some(expected));
        }
    }

    #[test]
    fn truncated_lying_and_trailing_input_is_an_error() {
        for payload in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0x81, 0xa1][..],
            &[0x05][..],
            &[0x80, 0x80][..],
            &[0xc1][..],
            &[][..],
        ] {
            let (mut out, mut spans) = (Vec::new(), Vec::new());
            assert!(decode(payload, &mut out, &mut spans).is_err(), "{payload:?}");
        }
    }

    /// One event map of the given fields, each value given as raw MessagePack.
    fn event_map(keys: [&str; 5], values: [&[u8]; 5]) -> Vec<u8> {
        let mut payload = vec![0x85];
        for (name, value) in keys.iter().zip(values) {
            payload.push(0xa0 | name.len() as u8);
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(value);
        }
        payload
    }

    #[test]
    fn the_typed_path_agrees_with_the_general_one() {
        use crate::event::{check_location, validate, FIELDS};
        let good: [&[u8]; 5] = [&[0x07], &[0xcd, 0x01, 0x2c], &[0xce, 0, 1, 0, 0], &[0xa3, b'c', b'a', b'r'], &[0x10]];
        let mut cases = vec![event_map(FIELDS, good)];
        for (index, value) in [
            (0, &[0x00][..]),
            (0, &[0xd0, 0xff]),
            (0, &[0xd0, 0x05]),
            (1, &[0xd1, 0x80, 0x00]),
            (1, &[0xd2, 0x00, 0x00, 0x01, 0x00]),
            (2, &[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            (2, &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (2, &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (2, &[0xcc, 0xff]),
            (2, &[0xe0]),
            (2, &[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]),
            (3, &[0xa0]),
            (3, &[0xa2, b'a', 0]),
            (3, &[0xa1, 0xff]),
            (3, &[0xd9, 0x02, 0xc3, 0xa9]),
            (3, &[0xc4, 0x01, b'a']),
            (4, &[0xcf, 0, 0, 0xe6, 0x77, 0x0b, 0x53, 0xe4, 0x00]),
            (4, &[0xcf, 0, 0, 0xe6, 0x77, 0x0b, 0x53, 0xe3, 0xff]),
            (4, &[0xc0]),
        ] {
            let mut values = good;
            values[index] = value;
            cases.push(event_map(FIELDS, values));
        }
        let mut keys = FIELDS;
        keys[1] = "detection_oid";
        cases.push(event_map(keys, good));
        keys[1] = "video_camera_ox";
        cases.push(event_map(keys, good));
        let mut typed_count = 0;
        for payload in &cases {
            let mut reader = Reader { buf: payload, pos: 1 };
            let typed = reader.typed_event(5);
            let mut reader = Reader { buf: payload, pos: 1 };
            let general = validate(reader.event(5).ok().unwrap(), 7);
            match typed {
                Some(event) => {
                    typed_count += 1;
                    assert_eq!(check_location(event, 7), general, "{payload:x?}");
                }
                None => assert!(general.is_err(), "{payload:x?}: {general:?}"),
            }
        }
        assert_eq!(typed_count, 8);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut payload = vec![0x81, 0xa1, b'x'];
        payload.extend(std::iter::repeat_n(0x91, 100_000));
        payload.push(0xc0);
        let (mut out, mut spans) = (Vec::new(), Vec::new());
        assert!(decode(&payload, &mut out, &mut spans).unwrap_err().contains("nesting"));
    }
}
