//! The PyO3 boundary: converts arguments and results, releases the GIL for whole batches, and
//! maps `CoreError` once to named Python exceptions.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::copy::COPY_COLUMNS;
use crate::engine::{self, Engine, Message, Options};
use crate::error::CoreError;
use crate::event::FIELDS;
use crate::locations::Locations;

create_exception!(_core, CoreArgumentError, PyValueError, "An argument to the core is invalid; the message names it.");
create_exception!(
    _core,
    UnknownBatchError,
    PyValueError,
    "commit/abort of a batch token that is not open (never issued, or already settled)."
);

fn to_py(err: CoreError) -> PyErr {
    match err {
        CoreError::UnknownBatch(_) => UnknownBatchError::new_err(err.to_string()),
        CoreError::InvalidArgument { .. } => CoreArgumentError::new_err(err.to_string()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The ingest core: one per worker; batches go through `process`, then `commit` or `abort`.
#[pyclass(frozen, module = "utopia._core")]
struct Core {
    engine: Engine,
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (horizon_ms = 3_600_000))]
    fn new(horizon_ms: i64) -> PyResult<Self> {
        Ok(Core { engine: Engine::new(horizon_ms).map_err(to_py)? })
    }

    #[getter]
    fn horizon_ms(&self) -> i64 {
        self.engine.horizon_ms()
    }

    /// Replaces Dataset B; batches already running keep the table they started with.
    fn set_locations(&self, oids: Vec<i64>, names: Vec<String>) -> PyResult<()> {
        if oids.len() != names.len() {
            return Err(to_py(CoreError::InvalidArgument {
                name: "names",
                reason: format!("has {} entries but oids has {}", names.len(), oids.len()),
            }));
        }
        self.engine.set_locations(Locations::new(oids.into_iter().zip(names)));
        Ok(())
    }

    /// Loads ids already stored, with the time each was ingested (epoch ms).
    #[pyo3(signature = (ids, seen_at_ms, now_ms = None))]
    fn warm(&self, py: Python<'_>, ids: Vec<i64>, seen_at_ms: Vec<i64>, now_ms: Option<i64>) -> PyResult<usize> {
        let now = now_ms.unwrap_or_else(self::now_ms);
        py.detach(|| self.engine.warm(&ids, &seen_at_ms, now)).map_err(to_py)
    }

    #[pyo3(signature = (payloads, subjects, content_types, *, now_ms = None, live = false))]
    fn process(
        &self,
        py: Python<'_>,
        payloads: Vec<Bound<'_, PyBytes>>,
        subjects: Vec<String>,
        content_types: Vec<Option<String>>,
        now_ms: Option<i64>,
        live: bool,
    ) -> PyResult<Batch> {
        if subjects.len() != payloads.len() || content_types.len() != payloads.len() {
            return Err(to_py(CoreError::InvalidArgument {
                name: "subjects/content_types",
                reason: format!(
                    "need one per payload: {} payloads, {} subjects, {} content types",
                    payloads.len(),
                    subjects.len(),
                    content_types.len()
                ),
            }));
        }
        let now = now_ms.unwrap_or_else(self::now_ms);
        let messages: Vec<Message<'_>> = payloads
            .iter()
            .zip(&subjects)
            .zip(&content_types)
            .map(|((payload, subject), content_type)| Message {
                payload: payload.as_bytes(),
                subject,
                content_type: content_type.as_deref(),
            })
            .collect();
        let mut output = py.detach(|| self.engine.process(&messages, now, Options { live }));
        let copy_data = PyBytes::new(py, &output.copy).unbind();
        self.engine.recycle_copy_buffer(std::mem::take(&mut output.copy));
        let rejects = output
            .rejects
            .iter()
            .map(|r| {
                let payload = payloads[r.message_index].as_bytes();
                let reject = Reject {
                    message_index: r.message_index,
                    event_index: r.event_index,
                    field: r.problem.field,
                    code: r.problem.code,
                    detail: r.problem.detail.clone(),
                    payload: PyBytes::new(py, &payload[r.span.0..r.span.1]).unbind(),
                    subject: subjects[r.message_index].clone(),
                };
                Py::new(py, reject)
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Batch { output, rejects, copy_data })
    }

    /// Marks the batch's ids as seen; call only once its rows are committed.
    #[pyo3(signature = (token, now_ms = None))]
    fn commit(&self, py: Python<'_>, token: u64, now_ms: Option<i64>) -> PyResult<usize> {
        let now = now_ms.unwrap_or_else(self::now_ms);
        py.detach(|| self.engine.commit(token, now)).map_err(to_py)
    }

    /// Forgets the batch's ids, so a redelivery of its messages is accepted again.
    fn abort(&self, py: Python<'_>, token: u64) -> PyResult<usize> {
        py.detach(|| self.engine.abort(token)).map_err(to_py)
    }

    /// (seen ids, seen-set bytes, pending ids, open batches, locations).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let s = self.engine.stats();
        PyTuple::new(py, [s.seen_ids, s.seen_bytes, s.pending_ids, s.open_batches, s.locations])
    }
}

/// (minute_ms, location, camera, item, count) columns.
type CountColumns = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<String>, Vec<u32>);

/// The result of one `Core.process` call.
#[pyclass(frozen, module = "utopia._core")]
struct Batch {
    output: engine::BatchOutput,
    rejects: Vec<Py<Reject>>,
    copy_data: Py<PyBytes>,
}

#[pymethods]
impl Batch {
    #[getter]
    fn token(&self) -> u64 {
        self.output.token
    }
    #[getter]
    fn received(&self) -> u64 {
        self.output.tally.received
    }
    #[getter]
    fn accepted(&self) -> u64 {
        self.output.tally.accepted
    }
    #[getter]
    fn duplicates(&self) -> u64 {
        self.output.tally.duplicates
    }
    #[getter]
    fn rejected(&self) -> u64 {
        self.output.tally.rejected
    }
    #[getter]
    fn unmatched(&self) -> u64 {
        self.output.tally.unmatched
    }
    /// (oldest, newest) `timestamp_detected` of the accepted events in epoch ms; None if none.
    fn timestamp_range(&self) -> Option<(i64, i64)> {
        self.output.tally.oldest_ms.zip(self.output.tally.newest_ms)
    }
    /// Binary COPY of the accepted rows, columns as `COPY_COLUMNS`.
    #[getter]
    fn copy_data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.copy_data.bind(py).clone()
    }
    #[getter]
    fn rejects<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.rejects.iter().map(|r| r.clone_ref(py)))
    }
    /// Accepted ids in row order (for the writer's conflict fallback, not the hot path).
    fn ids(&self) -> Vec<i64> {
        self.output.ids.clone()
    }
    /// (minute_ms, location, camera, item, count) columns of the accepted events.
    fn counts(&self) -> CountColumns {
        let c = &self.output.counts;
        (c.minute_ms.clone(), c.location.clone(), c.camera.clone(), c.item.clone(), c.count.clone())
    }
    /// (location, JSON array of its accepted events), when processed with `live=True`.
    fn live<'py>(&self, py: Python<'py>) -> Vec<(i64, Bound<'py, PyBytes>)> {
        self.output.live.iter().map(|(location, json)| (*location, PyBytes::new(py, json))).collect()
    }
}

/// A rejected event (or a whole message), with the reason that goes to the dead-letter stream.
#[pyclass(frozen, module = "utopia._core")]
struct Reject {
    #[pyo3(get)]
    message_index: usize,
    #[pyo3(get)]
    event_index: Option<usize>,
    #[pyo3(get)]
    field: &'static str,
    #[pyo3(get)]
    code: &'static str,
    #[pyo3(get)]
    detail: String,
    #[pyo3(get)]
    payload: Py<PyBytes>,
    #[pyo3(get)]
    subject: String,
}

#[pymethods]
impl Reject {
    /// `field: detail`, the text of the `Utopia-Reject-Reason` header.
    #[getter]
    fn reason(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
    fn __repr__(&self) -> String {
        format!(
            "Reject(message_index={}, event_index={:?}, field={:?}, code={:?}, detail={:?})",
            self.message_index, self.event_index, self.field, self.code, self.detail
        )
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_class::<Batch>()?;
    m.add_class::<Reject>()?;
    m.add("CoreArgumentError", m.py().get_type::<CoreArgumentError>())?;
    m.add("UnknownBatchError", m.py().get_type::<UnknownBatchError>())?;
    m.add("COPY_COLUMNS", PyTuple::new(m.py(), COPY_COLUMNS)?)?;
    m.add("EVENT_FIELDS", PyTuple::new(m.py(), FIELDS)?)?;
    Ok(())
}
