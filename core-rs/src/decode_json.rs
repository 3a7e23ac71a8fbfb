//! JSON payloads: one event object, or an array of event objects.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{field_index, Event, RawEvent, Scalar};

/// One element of a payload: an event's decoded fields, or something that is not an event.
#[derive(Debug)]
pub enum Item<'a> {
    Event(RawEvent<'a>),
    NotObject(&'static str),
}

/// Where decoders hand each element as soon as it is decoded, so the caller can check and
/// compact it before the next one (a decoded event is much larger than a checked one).
pub trait Sink<'a> {
    fn push(&mut self, item: Item<'a>);
    /// An event the decoder has found valid in every respect but its location, which only the
    /// sink knows to check; the same as pushing its fields.
    fn push_typed(&mut self, event: Event<'a>) {
        self.push(Item::Event(event.into_raw()));
    }
    fn reserve(&mut self, _additional: usize) {}
}

impl<'a> Sink<'a> for Vec<Item<'a>> {
    fn push(&mut self, item: Item<'a>) {
        Vec::push(self, item);
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

/// Decodes a whole payload into `out`; on error nothing of this payload may be used.
pub fn decode<'a, S: Sink<'a>>(payload: &'a [u8], out: &mut S) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let result = TopSeed { out: &mut *out }.deserialize(&mut de).and_then(|()| de.end());
    result.map_err(|e| format!("undecodable JSON: {e}"))
}

/// The byte range of element `index` of a JSON array payload (the whole payload otherwise).
/// Only called for rejected events, so the second parse stays off the hot path.
pub fn element_span(payload: &[u8], index: usize) -> (usize, usize) {
    let whole = (0, payload.len());
    let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(payload) else { return whole };
    let Some(element) = elements.get(index) else { return whole };
    let raw = element.get().as_bytes();
    let start = raw.as_ptr() as usize - payload.as_ptr() as usize;
    (start, start + raw.len())
}

struct TopSeed<'o, S> {
    out: &'o mut S,
}

impl<'de, S: Sink<'de>> DeserializeSeed<'de> for TopSeed<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, S: Sink<'de>> Visitor<'de> for TopSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object or an array of event objects")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.out.push(Item::Event(event_from_map(map)?));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.out.reserve(n);
        }
        while seq.next_element_seed(ElementSeed { out: &mut *self.out })?.is_some() {}
        Ok(())
    }
}

struct ElementSeed<'o, S> {
    out: &'o mut S,
}

impl<'de, S: Sink<'de>> DeserializeSeed<'de> for ElementSeed<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        let item = de.deserialize_any(ElementVisitor)?;
        self.out.push(item);
        Ok(())
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Item<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'de>, A::Error> {
        Ok(Item::Event(event_from_map(map)?))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item::NotObject("an array"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("a string"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Item<'de>, E> {
        Ok(Item::NotObject("null"))
    }
}

fn event_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<RawEvent<'de>, A::Error> {
    let mut event = RawEvent::default();
    while let Some(key) = map.next_key_seed(KeySeed)? {
        match key {
            Some(index) => event.set(index, map.next_value_seed(ScalarSeed)?),
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(event)
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<usize>, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(field_index(key.as_bytes()))
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Scalar<'de>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::BigUint(v), Scalar::Int))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool)
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_ok(payload: &[u8]) -> Vec<Item<'_>> {
        let mut out = Vec::new();
        decode(payload, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_object_and_array() {
        let one = br#"{"detection_oid": 5, "item_name": "car", "extra": {"a": [1, 2]}}"#;
        let items = decode_ok(one);
        let Item::Event(event) = &items[0] else { panic!("not an event") };
        assert_eq!(event.fields[2], Some(Scalar::Int(5)));
        assert_eq!(event.fields[3], Some(Scalar::Str(Cow::Borrowed("car"))));
        let many = br#"[{"detection_oid": 1}, 3, {"detection_oid": 18446744073709551615}]"#;
        let items = decode_ok(many);
        assert_eq!(items.len(), 3);
        assert!(matches!(items[1], Item::NotObject("a number")));
        let Item::Event(event) = &items[2] else { panic!("not an event") };
        assert_eq!(event.fields[2], Some(Scalar::BigUint(u64::MAX)));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let items = decode_ok(br#"{"item_name": "a\"b\u00e9"}"#);
        let Item::Event(event) = &items[0] else { panic!("not an event") };
        assert_eq!(event.fields[3], Some(Scalar::Str(Cow::Owned("a\"bé".into()))));
    }

    #[test]
    fn broken_or_wrong_top_level_is_an_error() {
        for payload in [&b"{\"a\": "[..], b"42", b"\"x\"", b"[1,", b"{} {}", b"\xff", b""] {
            let mut out = Vec::new();
            assert!(decode(payload, &mut out).is_err(), "{payload:?}");
        }
    }

    #[test]
    fn element_span_finds_the_raw_element() {
        let payload = br#"[ {"a":1} , {"b": [2]} ]"#;
        let (start, end) = element_span(payload, 1);
        assert_eq!(&payload[start..end], br#"{"b": [2]}"#);
        assert_eq!(element_span(br#"{"a":1}"#, 0), (0, 7));
    }
}
