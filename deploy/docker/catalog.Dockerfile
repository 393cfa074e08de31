# accessbus catalog: a static binary on distroless. Build from the repository root:
#   docker build -f deploy/docker/catalog.Dockerfile -t accessbus/catalog .
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
ENV CGO_ENABLED=0 GOWORK=off
WORKDIR /src/services/catalog
# Module downloads get their own layer, rebuilt only when a go.mod/go.sum changes.
COPY libs/go.* /src/libs/
COPY services/catalog/go.* ./
RUN go mod download
COPY libs /src/libs
COPY services/catalog ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/catalog ./cmd/catalog

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/catalog /usr/local/bin/catalog
EXPOSE 8080
# distroless "nonroot", numeric so that runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/catalog"]
