# The surge binary in a small image, for the Indexed Job of
# deploy/sharded-test.yaml:
#
#   docker build -t surge:0.1.0 .
#
# Shipped scenarios and fixtures go in /opt/surge; a scenario mounted at
# /opt/surge/scenario/ finds its feeders in /opt/surge/fixtures (its default
# `fixtures = "../fixtures"`). Runs as nobody.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin surge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/surge /usr/local/bin/surge
COPY scenarios /opt/surge/scenarios
COPY fixtures /opt/surge/fixtures
WORKDIR /opt/surge
USER 65534:65534
ENTRYPOINT ["surge"]
