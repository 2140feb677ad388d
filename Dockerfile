# vsl-milter as a small static image running as non-root.
#   docker build -t vsl-milter .
#   docker run -p 127.0.0.1:10030:10030 -v $PWD/rules:/etc/vsl-milter vsl-milter
# The image's default configuration listens on 0.0.0.0:10030 inside the
# container (publish it on loopback only, as above) with metrics on :9464.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vsl-milter ./cmd/vsl-milter \
 && mkdir -p /out/etc/vsl-milter /out/var/mail/vsl \
 && cp deploy/container/vsmtp.toml deploy/container/main.vsl /out/etc/vsl-milter/

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vsl-milter /usr/local/bin/vsl-milter
COPY --from=build --chown=nonroot:nonroot /out/etc/vsl-milter /etc/vsl-milter
COPY --from=build --chown=nonroot:nonroot /out/var/mail/vsl /var/mail/vsl
USER nonroot:nonroot
EXPOSE 10030 9464
ENTRYPOINT ["/usr/local/bin/vsl-milter"]
CMD ["serve", "-c", "/etc/vsl-milter/vsmtp.toml"]
