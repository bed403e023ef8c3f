# The sink as a small static image: built with the Go toolchain, run on
# Alpine (for CA certificates, needed for TLS to R2 and S3) as a non-root
# user.
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so editing the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is what `sink version` reports: the build context has no .git to
# read a revision from, so pass it, e.g.
# docker build --build-arg VERSION=$(git describe --tags --always --dirty) .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/sink ./cmd/sink

FROM alpine:3.22
RUN apk add --no-cache ca-certificates && adduser -D -H -u 65532 evodb
COPY --from=build /out/sink /usr/local/bin/sink
USER evodb
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/sink"]
CMD ["run", "-c", "/etc/evodb/config.yaml"]
