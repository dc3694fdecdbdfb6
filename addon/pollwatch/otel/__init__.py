"""OpenTelemetry: each job as a trace for any OTel viewer, and worker logs and spans in OTLP/JSON
read as worker events. The protocol comes from `opentelemetry-proto`; nothing here is hand-written
wire format."""
