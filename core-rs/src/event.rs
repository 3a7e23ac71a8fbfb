//! The event contract: fields, their raw decoded values, and validation into a checked event.

use std::borrow::Cow;

/// Fields of Dataset A, in the order they are validated (and reported) in.
pub const FIELDS: [&str; 5] =
    ["geographical_location_oid", "video_camera_oid", "detection_oid", "item_name", "timestamp_detected"];
pub const LOCATION: usize = 0;
pub const CAMERA: usize = 1;
pub const DETECTION: usize = 2;
pub const ITEM: usize = 3;
pub const TIMESTAMP: usize = 4;

pub const ITEM_NAME_MAX_CHARS: usize = 5000;
/// 9999-12-31T23:59:59.999Z; together with 0 the range that fits `timestamptz` without overflow.
pub const TIMESTAMP_MAX_MS: i64 = 253_402_300_799_999;

/// The index of a known field name, `None` for extra fields (accepted and ignored).
pub fn field_index(name: &[u8]) -> Option<usize> {
    // The five names differ in length, so one comparison settles it.
    // Fixed-size comparisons compile to a few word compares instead of a `memcmp` call.
    match name.len() {
        25 => (name == b"geographical_location_oid").then_some(LOCATION),
        16 => (name == b"video_camera_oid").then_some(CAMERA),
        13 => (name == b"detection_oid").then_some(DETECTION),
        9 => (name == b"item_name").then_some(ITEM),
        18 => (name == b"timestamp_detected").then_some(TIMESTAMP),
        _ => None,
    }
}

/// A decoded value before validation, as the wire gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Int(i64),
    /// Non-negative integers above `i64::MAX`.
    BigUint(u64),
    Float,
    Str(Cow<'a, str>),
    Bool,
    Null,
    /// Arrays, maps, binary: anything that cannot be one of the contract's values.
    Other(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Int(_) | Scalar::BigUint(_) => "an integer",
            Scalar::Float => "a non-integer or out-of-range number",
            Scalar::Str(_) => "a string",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Other(kind) => kind,
        }
    }
}

/// One event's known fields as decoded, plus the first field that appeared twice.
#[derive(Debug, Default)]
pub struct RawEvent<'a> {
    pub fields: [Option<Scalar<'a>>; 5],
    pub duplicate_field: Option<usize>,
}

impl<'a> RawEvent<'a> {
    pub fn set(&mut self, index: usize, value: Scalar<'a>) {
        if self.fields[index].is_some() {
            self.duplicate_field.get_or_insert(index);
        }
        self.fields[index] = Some(value);
    }
}

/// A valid event; `item_name` borrows from the payload where no unescaping was needed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub location: i64,
    pub camera: i64,
    pub detection: i64,
    pub item_name: Cow<'a, str>,
    pub timestamp_ms: i64,
}

impl<'a> Event<'a> {
    /// The event as a decoder would have produced it field by field.
    pub fn into_raw(self) -> RawEvent<'a> {
        RawEvent {
            fields: [
                Some(Scalar::Int(self.location)),
                Some(Scalar::Int(self.camera)),
                Some(Scalar::Int(self.detection)),
                Some(Scalar::Str(self.item_name)),
                Some(Scalar::Int(self.timestamp_ms)),
            ],
            duplicate_field: None,
        }
    }
}

/// Why an event (or a whole message) was rejected; `code` is stable, `detail` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub code: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(field: &'static str, code: &'static str, detail: impl Into<String>) -> Self {
        Problem { field, code, detail: detail.into() }
    }
}

fn integer_field(raw: &RawEvent<'_>, index: usize, min: i64, max: i64, rule: &str) -> Result<i64, Problem> {
    let field = FIELDS[index];
    match &raw.fields[index] {
        None => Err(Problem::new(field, "missing", "required field is missing")),
        Some(Scalar::Int(v)) if (min..=max).contains(v) => Ok(*v),
        Some(Scalar::Int(v)) => Err(Problem::new(field, "range", format!("must be {rule}, got {v}"))),
        Some(Scalar::BigUint(v)) => Err(Problem::new(field, "range", format!("must be {rule}, got {v}"))),
        Some(other) => Err(Problem::new(field, "type", format!("expected a 64-bit integer, got {}", other.kind()))),
    }
}

/// Checks `raw` against the contract; `subject_location` is the location token of the subject.
pub fn validate(raw: RawEvent<'_>, subject_location: i64) -> Result<Event<'_>, Problem> {
    if let Some(index) = raw.duplicate_field {
        return Err(Problem::new(FIELDS[index], "duplicate_field", "field appears more than once"));
    }
    let location = integer_field(&raw, LOCATION, 1, i64::MAX, "> 0")?;
    let camera = integer_field(&raw, CAMERA, 1, i64::MAX, "> 0")?;
    let detection = integer_field(&raw, DETECTION, 1, i64::MAX, "> 0")?;
    check_item_name(&raw)?;
    let timestamp_ms = integer_field(
        &raw,
        TIMESTAMP,
        0,
        TIMESTAMP_MAX_MS,
        "epoch milliseconds from 0 (1970) to 253402300799999 (9999)",
    )?;
    // Ownership of the name moves out of `raw` only once every check has passed.
    let [_, _, _, name, _] = raw.fields;
    let Some(Scalar::Str(name)) = name else { unreachable!("item_name was checked to be a string") };
    check_location(Event { location, camera, detection, item_name: name, timestamp_ms }, subject_location)
}

/// The last check of `validate`, for events a decoder has already found otherwise valid.
#[inline]
pub fn check_location(event: Event<'_>, subject_location: i64) -> Result<Event<'_>, Problem> {
    if event.location != subject_location {
        return Err(Problem::new(
            FIELDS[LOCATION],
            "location_mismatch",
            format!("is {} but the message was published for location {subject_location}", event.location),
        ));
    }
    Ok(event)
}

fn check_item_name(raw: &RawEvent<'_>) -> Result<(), Problem> {
    let field = FIELDS[ITEM];
    match &raw.fields[ITEM] {
        None => Err(Problem::new(field, "missing", "required field is missing")),
        Some(Scalar::Str(s)) => {
            if s.is_empty() {
                return Err(Problem::new(field, "range", "must be 1 to 5000 characters, got 0"));
            }
            // Byte length bounds the character count, so counting is only needed past 5000 bytes.
            if s.len() > ITEM_NAME_MAX_CHARS {
                let chars = s.chars().count();
                if chars > ITEM_NAME_MAX_CHARS {
                    return Err(Problem::new(field, "range", format!("must be 1 to 5000 characters, got {chars}")));
                }
            }
            if s.as_bytes().contains(&0) {
                // PostgreSQL text cannot hold NUL; letting it through would fail the whole batch.
                return Err(Problem::new(field, "range", "must not contain the NUL character"));
            }
            Ok(())
        }
        Some(other) => Err(Problem::new(field, "type", format!("expected a string, got {}", other.kind()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: [Option<Scalar<'static>>; 5]) -> RawEvent<'static> {
        RawEvent { fields: values, duplicate_field: None }
    }

    fn good() -> [Option<Scalar<'static>>; 5] {
        [
            Some(Scalar::Int(7)),
            Some(Scalar::Int(70)),
            Some(Scalar::Int(700)),
            Some(Scalar::Str(Cow::Borrowed("person"))),
            Some(Scalar::Int(1_700_000_000_000)),
        ]
    }

    #[test]
    fn accepts_a_valid_event() {
        let event = validate(raw(good()), 7).unwrap();
        assert_eq!(event.detection, 700);
        assert_eq!(event.item_name, "person");
    }

    #[test]
    fn reports_the_first_bad_field_in_contract_order() {
        let mut values = good();
        values[CAMERA] = Some(Scalar::Str(Cow::Borrowed("x")));
        values[DETECTION] = None;
        let problem = validate(raw(values), 7).unwrap_err();
        assert_eq!((problem.field, problem.code), ("video_camera_oid", "type"));
    }

    #[test]
    fn rejects_out_of_range_values() {
        for (index, value, code) in [
            (DETECTION, Scalar::Int(0), "range"),
            (LOCATION, Scalar::BigUint(u64::MAX), "range"),
            (TIMESTAMP, Scalar::Int(-1), "range"),
            (TIMESTAMP, Scalar::Int(TIMESTAMP_MAX_MS + 1), "range"),
            (ITEM, Scalar::Str(Cow::Borrowed("")), "range"),
            (ITEM, Scalar::Str(Cow::Borrowed("a\0b")), "range"),
            (CAMERA, Scalar::Float, "type"),
            (CAMERA, Scalar::Bool, "type"),
            (CAMERA, Scalar::Null, "type"),
        ] {
            let mut values = good();
            values[index] = Some(value);
            let problem = validate(raw(values), 7).unwrap_err();
            assert_eq!((problem.field, problem.code), (FIELDS[index], code));
        }
    }

    #[test]
    fn item_name_limit_counts_characters_not_bytes() {
        let mut values = good();
        values[ITEM] = Some(Scalar::Str(Cow::Owned("é".repeat(5000))));
        assert!(validate(raw(values), 7).is_ok());
        let mut values = good();
        values[ITEM] = Some(Scalar::Str(Cow::Owned("é".repeat(5001))));
        assert_eq!(validate(raw(values), 7).unwrap_err().code, "range");
    }

    #[test]
    fn location_must_match_subject() {
        assert_eq!(validate(raw(good()), 8).unwrap_err().code, "location_mismatch");
    }

    #[test]
    fn duplicate_field_is_rejected_first() {
        let mut event = raw(good());
        event.set(DETECTION, Scalar::Int(5));
        assert_eq!(validate(event, 7).unwrap_err().code, "duplicate_field");
    }
}
