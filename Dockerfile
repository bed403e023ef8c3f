# The sink as a small static image: built with the Go toolchain, run on a
# distroless base as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so editing the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sink ./cmd/sink

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sink /usr/local/bin/sink
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/sink"]
CMD ["run", "-c", "/etc/evodb/config.yaml"]
