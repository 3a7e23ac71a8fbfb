//! MessagePack payloads: one event map, or an array of event maps.
//!
//! A small hand-written reader rather than a serde layer: it hands back byte spans of every
//! array element (the dead-letter stream gets the rejected event itself), never allocates from
//! a length it has not yet seen bytes for, and bounds nesting so hostile input cannot exhaust
//! the stack.

use std::borrow::Cow;

use crate::decode_json::{Item, Sink};
use crate::event::{field_index, RawEvent, Scalar};

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
                out.push(Item::Event(self.event(n)?));
                spans.push((0, self.buf.len()));
            }
            Head::Array(n) => {
                // Each element takes at least one byte: a bigger count is a lie, caught on read.
                out.reserve(n.min(self.buf.len() - self.pos));
                for _ in 0..n {
                    let start = self.pos;
                    let item = match self.head()? {
                        Head::Map(fields) => Item::Event(self.event(fields)?),
                        other => {
                            let kind = kind(&other);
                            self.skip_body(other, 1)?;
                            Item::NotObject(kind)
                        }
                    };
                    out.push(item);
                    spans.push((start, self.pos));
                }
            }
            _ => return Err(Fault { what: "expected a map or an array of maps at the top level", at: 0 }),
        }
        Ok(())
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

    #[test]
    fn deep_nesting_is_bounded() {
        let mut payload = vec![0x81, 0xa1, b'x'];
        payload.extend(std::iter::repeat_n(0x91, 100_000));
        payload.push(0xc0);
        let (mut out, mut spans) = (Vec::new(), Vec::new());
        assert!(decode(&payload, &mut out, &mut spans).unwrap_err().contains("nesting"));
    }
}
