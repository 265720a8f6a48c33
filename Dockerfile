# syntax=docker/dockerfile:1
#
# Lightport, the container image.
#
#   docker build -t lightport:0.1.0 .
#   docker run --rm -p 8080:8080 -e ANTHROPIC_API_KEY=sk-ant-... lightport:0.1.0
#
# The built-in mappings are compiled into the binary (build.rs), so the image needs no files
# beside it. Your own mappings: mount a directory and point LIGHTPORT_MAPPINGS at it
# (/etc/lightport/mappings exists, empty, for that); the gateway config file goes at
# /etc/lightport/lightport.yaml with LIGHTPORT_CONFIG=/etc/lightport/lightport.yaml.
# docs/deploy.md has the rest. tests/deploy.rs runs the binary with this file's runtime
# ENTRYPOINT, CMD, ENV and HEALTHCHECK: keep them in exec (JSON) form.

# ---- build -------------------------------------------------------------------------------
# Debian 12 (bookworm) on purpose: the runtime below is distroless/cc-debian12, and a binary
# linked against a newer glibc than the runtime's would not start. Cargo.lock needs
# rustc >= 1.91; this is the toolchain CI builds and tests with.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# .dockerignore keeps the context to Cargo.*, build.rs, src/, mappings/ and benches/.
COPY . .
# Cache mounts keep the crates.io download and the target dir between builds (BuildKit).
# The binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin lightport \
 && install -D -m 0755 target/release/lightport /out/usr/local/bin/lightport \
 && install -d -m 0755 /out/etc/lightport/mappings

# ---- runtime -----------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and nothing else (no shell, no package manager). The release
# binary (~18 MB) needs libc, libm and libgcc_s, all three here.
# TLS roots: reqwest is built with `rustls-tls`, which in reqwest 0.12 means webpki-roots
# (Mozilla's root store compiled into the binary; Cargo.lock has webpki-roots and no
# rustls-native-certs), so the binary never reads the system CA store. The image's own
# /etc/ssl/certs is therefore unused, and mounting a private CA there has no effect.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="lightport" \
      org.opencontainers.image.description="An LLM gateway: OpenAI's API in front, any provider behind" \
      org.opencontainers.image.licenses="Apache-2.0"
# Owned by root and read-only for the gateway's user: config is input, never written.
COPY --from=build /out/ /
# distroless's "nonroot" user, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The binary's own default is 127.0.0.1:8080 (safe on a laptop); in a container it must
# listen on every interface to be reachable through a published port or a Service.
ENV LIGHTPORT_LISTEN=0.0.0.0:8080
EXPOSE 8080
# No curl in distroless: the binary checks itself (GET /health on LIGHTPORT_LISTEN's port).
# Kubernetes ignores HEALTHCHECK and uses the probes in examples/kubernetes/ instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/lightport", "health"]
ENTRYPOINT ["/usr/local/bin/lightport"]
CMD ["serve"]
