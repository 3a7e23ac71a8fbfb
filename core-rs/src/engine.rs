//! One batch of NATS messages in, everything the writer and the live views need out.

use std::borrow::Cow;
use std::collections::HashMap as StdHashMap;
use std::sync::{Mutex, PoisonError};

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

use crate::copy::CopyWriter;
use crate::decode_json::{self, Item, Sink};
use crate::decode_msgpack;
use crate::dedup::SeenSet;
use crate::error::CoreError;
use crate::event::{check_location, validate, Event, Problem};
use crate::live::LiveWriter;
use crate::locations::{LocationTable, Locations};

pub const SUBJECT_PREFIX: &str = "utopia.detections.";

/// One NATS message as the consumer received it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub payload: &'a [u8],
    pub subject: &'a str,
    /// The `Content-Type` header; `None` means JSON.
    pub content_type: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub message_index: usize,
    /// `None` when the whole message was rejected (bad subject, content type or payload).
    pub event_index: Option<usize>,
    pub problem: Problem,
    /// The bytes of the rejected event within the message payload (all of it for a message).
    pub span: (usize, usize),
}

/// Accepted events per (minute, location, camera, item), columnar.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub minute_ms: Vec<i64>,
    pub location: Vec<i64>,
    pub camera: Vec<i64>,
    pub item: Vec<String>,
    pub count: Vec<u32>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events seen in the batch; a message rejected whole counts as one.
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Accepted events whose location is not in Dataset B (yet).
    pub unmatched: u64,
    /// Oldest and newest `timestamp_detected` of the accepted events (epoch ms), for freshness.
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

#[derive(Debug)]
pub struct BatchOutput {
    pub token: u64,
    pub tally: Tally,
    /// Binary COPY of the accepted rows (`copy::COPY_COLUMNS`).
    pub copy: Vec<u8>,
    pub rejects: Vec<Reject>,
    pub counts: Counts,
    /// Accepted ids in row order.
    pub ids: Vec<i64>,
    /// JSON array of the accepted events per location, when asked for.
    pub live: Vec<(i64, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub live: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub seen_ids: usize,
    pub seen_bytes: usize,
    pub pending_ids: usize,
    pub open_batches: usize,
    pub locations: usize,
}

struct OpenBatch {
    ids: Vec<i64>,
    arrival_ms: i64,
}

struct DedupState {
    seen: SeenSet,
    spare_copy_buffers: Vec<Vec<u8>>,
    open: StdHashMap<u64, OpenBatch>,
    next_token: u64,
}

pub struct Engine {
    state: Mutex<DedupState>,
    locations: LocationTable,
}

type CountMap<'a> = HashMap<(i64, i64, i64, Cow<'a, str>), u32, FxBuildHasher>;

impl Engine {
    pub fn new(horizon_ms: i64) -> Result<Self, CoreError> {
        if horizon_ms <= 0 {
            return Err(CoreError::InvalidArgument {
                name: "horizon_ms",
                reason: format!("must be > 0, got {horizon_ms}"),
            });
        }
        Ok(Engine {
            state: Mutex::new(DedupState {
                seen: SeenSet::new(horizon_ms),
                spare_copy_buffers: Vec::new(),
                open: StdHashMap::new(),
                next_token: 1,
            }),
            locations: LocationTable::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DedupState> {
        // The state stays consistent between statements, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn horizon_ms(&self) -> i64 {
        self.state().seen.horizon_ms()
    }

    pub fn set_locations(&self, locations: Locations) {
        self.locations.replace(locations);
    }

    pub fn stats(&self) -> Stats {
        let state = self.state();
        Stats {
            seen_ids: state.seen.len(),
            seen_bytes: state.seen.allocated_bytes(),
            pending_ids: state.open.values().map(|b| b.ids.len()).sum(),
            open_batches: state.open.len(),
            locations: self.locations.snapshot().len(),
        }
    }

    /// Loads ids the database already holds, each with the time it was ingested.
    pub fn warm(&self, ids: &[i64], seen_at_ms: &[i64], now_ms: i64) -> Result<usize, CoreError> {
        if ids.len() != seen_at_ms.len() {
            return Err(CoreError::InvalidArgument {
                name: "seen_at_ms",
                reason: format!("has {} entries but ids has {}", seen_at_ms.len(), ids.len()),
            });
        }
        let mut state = self.state();
        let before = state.seen.len();
        for (&id, &at) in ids.iter().zip(seen_at_ms) {
            if id > 0 {
                state.seen.insert_at(id as u64, at, now_ms);
            }
        }
        state.seen.expire(now_ms);
        Ok(state.seen.len().saturating_sub(before))
    }

    /// Gives a batch's COPY buffer back once the caller has copied it out, for the next batch.
    pub fn recycle_copy_buffer(&self, buffer: Vec<u8>) {
        let mut state = self.state();
        if state.spare_copy_buffers.len() < 2 {
            state.spare_copy_buffers.push(buffer);
        }
    }

    /// Keeps the batch's accepted ids as seen; call once its rows are committed.
    pub fn commit(&self, token: u64, now_ms: i64) -> Result<usize, CoreError> {
        let mut state = self.state();
        // The ids went into the seen-set when the batch accepted them; committing keeps them.
        let batch = state.open.remove(&token).ok_or(CoreError::UnknownBatch(token))?;
        state.seen.expire(now_ms);
        Ok(batch.ids.len())
    }

    /// Forgets the batch's ids so that a redelivery is accepted again.
    pub fn abort(&self, token: u64) -> Result<usize, CoreError> {
        let mut state = self.state();
        let batch = state.open.remove(&token).ok_or(CoreError::UnknownBatch(token))?;
        for &id in &batch.ids {
            state.seen.remove(id as u64, batch.arrival_ms);
        }
        Ok(batch.ids.len())
    }

    pub fn process(&self, messages: &[Message<'_>], now_ms: i64, options: Options) -> BatchOutput {
        let locations = self.locations.snapshot();
        let mut state = self.state();
        // Expiry is decided at processing time, so a long pause between commits cannot keep
        // an id alive past its generation.
        state.seen.expire(now_ms);
        // Accepted ids are recorded as seen at once, so a copy later in this batch or in another
        // open batch is a duplicate; `abort` takes them out again.
        let slot = state.seen.slot(now_ms, now_ms).expect("the generation of `now` is alive");
        let payload_bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        // A recycled buffer is still in cache; a fresh one costs a miss for every row written.
        let mut copy_buffer = state.spare_copy_buffers.pop().unwrap_or_default();
        copy_buffer.reserve(payload_bytes);
        let mut run = Run {
            seen: &mut state.seen,
            slot,
            locations: &locations,
            copy: CopyWriter::reusing(copy_buffer),
            tally: Tally::default(),
            rejects: Vec::new(),
            counts: CountMap::default(),
            ids: Vec::new(),
            live: options.live.then(LiveWriter::default),
        };
        let mut checked = Checked {
            subject_location: 0,
            received: 0,
            events: Vec::new(),
            problems: Vec::new(),
            seen_before: Vec::new(),
        };
        let mut spans = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            checked.clear();
            spans.clear();
            run.message(index, message, &mut checked, &mut spans);
        }
        let Run { tally, rejects, counts, ids, copy, live, .. } = run;
        let token = state.next_token;
        state.next_token += 1;
        state.open.insert(token, OpenBatch { ids: ids.clone(), arrival_ms: now_ms });
        BatchOutput {
            token,
            tally,
            copy: copy.finish(),
            rejects,
            counts: columns(counts),
            ids,
            live: live.map(LiveWriter::finish).unwrap_or_default(),
        }
    }
}

/// Checks each event as the decoder produces it, keeping the compact result: a message is only
/// used once all of it has decoded, and a decoded event is several times larger than a checked one.
/// Valid events and problems are kept apart: they go to different outputs, so only the order
/// within each matters, and the hot loop over valid events stays free of the rare `Problem`.
struct Checked<'a> {
    subject_location: i64,
    /// Elements of the message so far, valid or not.
    received: usize,
    events: Vec<Event<'a>>,
    /// Rejected elements with their index in the message, in message order.
    problems: Vec<(usize, Problem)>,
    seen_before: Vec<bool>,
}

impl<'a> Checked<'a> {
    fn clear(&mut self) {
        self.received = 0;
        self.events.clear();
        self.problems.clear();
    }

    #[inline]
    fn keep(&mut self, outcome: Result<Event<'a>, Problem>) {
        match outcome {
            Ok(event) => self.events.push(event),
            Err(problem) => self.problems.push((self.received, problem)),
        }
        self.received += 1;
    }
}

impl<'a> Sink<'a> for Checked<'a> {
    fn push(&mut self, item: Item<'a>) {
        let outcome = match item {
            Item::Event(raw) => validate(raw, self.subject_location),
            Item::NotObject(kind) => {
                Err(Problem::new("payload", "not_object", format!("an event must be an object, got {kind}")))
            }
        };
        self.keep(outcome);
    }
    #[inline]
    fn push_typed(&mut self, event: Event<'a>) {
        let outcome = check_location(event, self.subject_location);
        self.keep(outcome);
    }
    fn reserve(&mut self, additional: usize) {
        self.events.reserve(additional);
    }
}

struct Run<'r, 'a> {
    seen: &'r mut SeenSet,
    slot: usize,
    locations: &'r Locations,
    copy: CopyWriter,
    tally: Tally,
    rejects: Vec<Reject>,
    counts: CountMap<'a>,
    ids: Vec<i64>,
    live: Option<LiveWriter>,
}

impl<'r, 'a> Run<'r, 'a> {
    fn reject_message(&mut self, index: usize, message: &Message<'_>, problem: Problem) {
        self.tally.received += 1;
        self.tally.rejected += 1;
        self.rejects.push(Reject {
            message_index: index,
            event_index: None,
            problem,
            span: (0, message.payload.len()),
        });
    }

    fn message(
        &mut self,
        index: usize,
        message: &Message<'a>,
        checked: &mut Checked<'a>,
        spans: &mut Vec<(usize, usize)>,
    ) {
        let Some(subject_location) = subject_location(message.subject) else {
            let detail = format!("expected {SUBJECT_PREFIX}<geographical_location_oid>, got {:?}", message.subject);
            return self.reject_message(index, message, Problem::new("subject", "subject", detail));
        };
        checked.subject_location = subject_location;
        let decoded = match message.content_type.map(str::trim) {
            None | Some("" | "application/json") => decode_json::decode(message.payload, checked),
            Some("application/msgpack" | "application/x-msgpack") => {
                decode_msgpack::decode(message.payload, checked, spans)
            }
            Some(other) => {
                let detail = format!("unsupported Content-Type {other:?}; use application/json or application/msgpack");
                return self.reject_message(index, message, Problem::new("content_type", "content_type", detail));
            }
        };
        if let Err(detail) = decoded {
            return self.reject_message(index, message, Problem::new("payload", "decode", detail));
        }
        self.tally.received += checked.received as u64;
        for (event_index, problem) in checked.problems.drain(..) {
            let span = spans
                .get(event_index)
                .copied()
                .unwrap_or_else(|| decode_json::element_span(message.payload, event_index));
            self.tally.rejected += 1;
            self.rejects.push(Reject { message_index: index, event_index: Some(event_index), problem, span });
        }
        if checked.events.is_empty() {
            return;
        }
        // Every valid event of a message has the subject's location, so one join serves them all.
        let name = self.locations.get(subject_location);
        // Look every id up before touching anything else: the lookups are independent, so the
        // CPU overlaps their cache misses (a large seen-set misses on nearly every id), and the
        // lines are warm again for the inserts below.
        let seen_before = &mut checked.seen_before;
        seen_before.clear();
        seen_before.extend(checked.events.iter().map(|event| self.seen.contains(event.detection as u64)));
        for (event, &seen_before) in checked.events.drain(..).zip(checked.seen_before.iter()) {
            self.event(event, seen_before, name);
        }
    }

    #[inline]
    fn event(&mut self, event: Event<'a>, seen_before: bool, name: Option<&'r str>) {
        // `insert` catches a copy earlier in this same message.
        if seen_before || !self.seen.insert(event.detection as u64, self.slot) {
            self.tally.duplicates += 1;
            return;
        }
        if name.is_none() {
            self.tally.unmatched += 1;
        }
        self.tally.accepted += 1;
        let ts = event.timestamp_ms;
        self.tally.oldest_ms = Some(self.tally.oldest_ms.map_or(ts, |old| old.min(ts)));
        self.tally.newest_ms = Some(self.tally.newest_ms.map_or(ts, |new| new.max(ts)));
        self.ids.push(event.detection);
        self.copy.row(event.location, event.camera, event.detection, &event.item_name, event.timestamp_ms, name);
        if let Some(live) = &mut self.live {
            live.event(&event, name);
        }
        let minute_ms = event.timestamp_ms - event.timestamp_ms.rem_euclid(60_000);
        match self.counts.entry((minute_ms, event.location, event.camera, event.item_name)) {
            hashbrown::hash_map::Entry::Occupied(mut e) => *e.get_mut() += 1,
            hashbrown::hash_map::Entry::Vacant(e) => {
                e.insert(1);
            }
        }
    }
}

fn columns(counts: CountMap<'_>) -> Counts {
    let mut out = Counts::default();
    let mut entries: Vec<_> = counts.into_iter().collect();
    // A stable order keeps rollup upserts from deadlocking against each other.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for ((minute_ms, location, camera, item), count) in entries {
        out.minute_ms.push(minute_ms);
        out.location.push(location);
        out.camera.push(camera);
        out.item.push(item.into_owned());
        out.count.push(count);
    }
    out
}

/// The location token of `utopia.detections.<oid>`, if the subject has that form.
///
/// Only the canonical spelling counts: the server partitions by the token's text, so `007` and
/// `7` would be one location filed in two partitions.
pub fn subject_location(subject: &str) -> Option<i64> {
    let token = subject.strip_prefix(SUBJECT_PREFIX)?;
    if token.is_empty() || token.starts_with('0') || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse::<i64>().ok().filter(|&oid| oid > 0)
}
