//! PostgreSQL binary COPY of accepted rows, ready for `COPY ... FROM STDIN (FORMAT binary)`.

/// The columns of every row, in order.
pub const COPY_COLUMNS: [&str; 6] = [
    "geographical_location_oid",
    "video_camera_oid",
    "detection_oid",
    "item_name",
    "timestamp_detected",
    "geographical_location",
];

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix milliseconds.
const PG_EPOCH_MS: i64 = 946_684_800_000;

pub struct CopyWriter {
    buf: Vec<u8>,
    rows: usize,
}

impl CopyWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        Self::reusing(Vec::with_capacity(bytes + SIGNATURE.len() + 10))
    }

    /// Writes into `buf` (cleared first), keeping its allocation.
    pub fn reusing(mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyWriter { buf, rows: 0 }
    }

    /// Appends one row; `timestamp_ms` must be validated (0..=year 9999) so it cannot overflow.
    pub fn row(
        &mut self,
        location: i64,
        camera: i64,
        detection: i64,
        item: &str,
        timestamp_ms: i64,
        name: Option<&str>,
    ) {
        let buf = &mut self.buf;
        buf.extend_from_slice(&(COPY_COLUMNS.len() as i16).to_be_bytes());
        for value in [location, camera, detection] {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&value.to_be_bytes());
        }
        text(buf, item);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&((timestamp_ms - PG_EPOCH_MS) * 1000).to_be_bytes());
        match name {
            Some(name) => text(buf, name),
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

fn text(buf: &mut Vec<u8>, value: &str) {
    // Lengths are bounded by validation (5,000 characters, 500 for names), far below i32::MAX.
    buf.extend_from_slice(&(value.len() as i32).to_be_bytes());
    buf.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_copy_is_header_and_trailer() {
        let bytes = CopyWriter::with_capacity(0).finish();
        assert_eq!(bytes.len(), 11 + 4 + 4 + 2);
        assert!(bytes.starts_with(SIGNATURE));
        assert!(bytes.ends_with(&[0xff, 0xff]));
    }

    #[test]
    fn row_layout() {
        let mut writer = CopyWriter::with_capacity(64);
        writer.row(1, 2, 3, "car", PG_EPOCH_MS + 1, None);
        let bytes = writer.finish();
        let row = &bytes[19..bytes.len() - 2];
        assert_eq!(&row[..2], &6i16.to_be_bytes());
        // three int8 columns of 4 + 8 bytes, then "car" with its length
        assert_eq!(&row[2 + 36..2 + 36 + 7], &[0, 0, 0, 3, b'c', b'a', b'r']);
        assert_eq!(&row[2 + 43..2 + 55], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        assert_eq!(&row[2 + 55..], &(-1i32).to_be_bytes());
    }
}
