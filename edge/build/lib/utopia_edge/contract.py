"""The external contract of ../shared/ARCHITECTURE.md as constants, in one place."""

from typing import Final

EVENT_FIELDS: Final = (
    "geographical_location_oid",
    "video_camera_oid",
    "detection_oid",
    "item_name",
    "timestamp_detected",
)
ITEM_NAME_MAX_CHARS: Final = 5000
LOCATION_NAME_MAX_CHARS: Final = 500
# Timestamps are epoch milliseconds; anything outside year 1970..9999 cannot be a camera reading
# and would not fit PostgreSQL's timestamptz arithmetic without overflow.
TIMESTAMP_MIN_MS: Final = 0
TIMESTAMP_MAX_MS: Final = 253_402_300_799_999

DETECTIONS_SUBJECT_PREFIX: Final = "utopia.detections."
DETECTIONS_SUBJECTS: Final = "utopia.detections.>"
DETECTIONS_STREAM: Final = "DETECTIONS"
DLQ_STREAM: Final = "DETECTIONS_DLQ"
DLQ_SUBJECT: Final = "utopia.dlq.detections"
LIVE_SUBJECT_PREFIX: Final = "utopia.live."

CONTENT_TYPE_JSON: Final = "application/json"
CONTENT_TYPE_MSGPACK: Final = "application/msgpack"

HEADER_MSG_ID: Final = "Nats-Msg-Id"
HEADER_CONTENT_TYPE: Final = "Content-Type"
HEADER_REJECT_REASON: Final = "Utopia-Reject-Reason"
HEADER_SOURCE_SUBJECT: Final = "Utopia-Source-Subject"
HEADER_SOURCE_SEQ: Final = "Utopia-Source-Seq"


def detections_subject(geographical_location_oid: int) -> str:
    """The subject an event of this location is published on."""
    return f"{DETECTIONS_SUBJECT_PREFIX}{geographical_location_oid}"


# The id fields are int64 in every store downstream (PostgreSQL bigint, Arrow int64).
INT64_MAX: Final = 2**63 - 1
