"""Ingest: JetStream -> Rust core -> database, acknowledged only after commit."""
