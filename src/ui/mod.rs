//! All user-facing output: printer, progress, tables and JSON.
