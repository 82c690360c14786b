# syntax=docker/dockerfile:1
#
# pgrotate: a static binary in a distroless, non-root image.
#
#   docker build -t pgrotate .
#   docker run --rm \
#     -v "$PWD/pgrotate.yaml:/etc/pgrotate/pgrotate.yaml:ro" \
#     -v "$PWD/credentials/bookstore:/var/run/secrets/bookstore:ro" \
#     -p 6432:6432 -p 9187:9187 pgrotate
#
# Mount points (no VOLUME instruction: it would only create an empty
# anonymous volume on every run; both are meant to be mounted by you):
#   /etc/pgrotate/pgrotate.yaml   the config (a ConfigMap in Kubernetes)
#   /var/run/secrets/<database>   the executing role's credential, as the
#                                 config's credentials.path names it. Mount a
#                                 directory, never a single file: a file bind
#                                 mount or a Kubernetes subPath mount keeps the
#                                 old file when it is replaced, so a rotation
#                                 would never be seen.
# pgrotate writes nothing to disk: run it with a read-only root file system.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The same build as the README's, static (CGO_ENABLED=0) so that it runs on
# distroless/static, without build paths or debug symbols.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/pgrotate ./cmd/pgrotate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pgrotate /pgrotate
# The image's nonroot user, numeric so that Kubernetes can verify
# runAsNonRoot without looking the name up.
USER 65532:65532
# 6432: PostgreSQL clients (listen). 9187: admin HTTP (admin_listen).
EXPOSE 6432 9187
# No HEALTHCHECK: distroless has no shell and no curl, and pgrotate has no
# health-check subcommand yet. Orchestrators probe the admin port over HTTP
# instead: Kubernetes liveness on /healthz and readiness on /readyz, port 9187
# (admin_listen must then listen on the pod's address, not 127.0.0.1).
ENTRYPOINT ["/pgrotate"]
CMD ["serve", "-config", "/etc/pgrotate/pgrotate.yaml"]
