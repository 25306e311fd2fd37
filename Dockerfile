# aws-csi-provider: multi-stage build of the Rust Secrets Store CSI provider for AWS.
#
# NOTE: this Dockerfile cannot be built on the development machines of this project (no
# container engine there); it has not been built or run. Build it where Docker/BuildKit is
# available:
#   docker build -t aws-csi-provider:dev .
#
# Stage 1 compiles a release binary. protoc is not needed: build.rs compiles the .proto with
# the pure-Rust protox. Stage 2 is a distroless image with the binary only (no shell).

FROM rust:1-bookworm AS build
WORKDIR /src
# Cache dependencies first: copy the manifests, build a stub, then the real sources.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN mkdir -p src/bin \
    && echo 'fn main() {}' > src/bin/aws-csi-provider.rs \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --bin aws-csi-provider || true
COPY src ./src
COPY templates ./templates
RUN touch src/lib.rs src/bin/aws-csi-provider.rs \
    && cargo build --release --locked --bin aws-csi-provider \
    && strip target/release/aws-csi-provider

# Runtime: glibc + CA certificates (rustls uses the webpki roots bundled in the binary, the
# CA bundle serves any platform verifier). Runs as root because it creates its socket in the
# root-owned host directory /var/run/secrets-store-csi-providers; the DaemonSet drops all
# capabilities and mounts the root filesystem read-only.
FROM gcr.io/distroless/cc-debian12:latest
COPY --from=build /src/target/release/aws-csi-provider /usr/local/bin/aws-csi-provider
USER 0:0
ENTRYPOINT ["/usr/local/bin/aws-csi-provider"]
CMD ["--provider-volume=/var/run/secrets-store-csi-providers", "--metrics-addr=0.0.0.0:8081"]
