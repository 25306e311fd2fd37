//! clap definitions of the `bootstrap` command line (definitions only, no logic).
