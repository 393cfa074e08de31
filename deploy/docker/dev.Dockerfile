# Tilt only: wraps a binary that the Tiltfile compiled on the host
# (bin/tilt/<service>, CGO_ENABLED=0 GOOS=linux), so a code change costs a
# go build and one COPY layer instead of a full image build.
FROM gcr.io/distroless/static-debian12:nonroot
ARG SERVICE
COPY bin/tilt/${SERVICE} /usr/local/bin/service
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
