//! Resolves flags, files (teams.yaml) and environment into one settings struct.
