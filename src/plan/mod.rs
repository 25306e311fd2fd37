//! Steps, the dependency-graph executor and the run report.
