# syntax=docker/dockerfile:1
# Stage 1: static binaries (worker, enqueue, shsim, bench).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/worker ./cmd/enqueue ./cmd/shsim \
 && mkdir -p /data/out

# Stage 2: a small non-root image with the binaries and nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
# Owned by the nonroot user so a named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /data /data
USER 65532:65532
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/worker"]
