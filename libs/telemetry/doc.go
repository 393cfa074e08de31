// Package telemetry is the observability base shared by every accessbus
// service: OpenTelemetry tracing and metrics (Setup), structured JSON logging
// that carries trace ids (NewLogger), and redaction that keeps secrets such as
// Okta API tokens out of logs, traces and error messages (Secret, RedactString).
//
// Nothing here touches process-wide state: Setup builds providers, a
// Prometheus registry and a metrics handler that belong to the returned
// Telemetry value only, so several values can coexist in one process (the
// all-in-one `accessbus dev` command, tests). A main that wants the otel
// globals set calls (*Telemetry).InstallGlobal explicitly.
package telemetry
