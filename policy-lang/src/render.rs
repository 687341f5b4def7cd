//! Diagnostic renderers: human (miette), JSON, SARIF, GitHub annotations.
