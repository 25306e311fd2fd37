//! The steps of `up`/`down`: observe, compute an action, apply or delete.
