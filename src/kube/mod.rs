//! Kubernetes client construction, server-side apply of rendered documents, and waits.
