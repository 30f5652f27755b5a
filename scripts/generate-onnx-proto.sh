#!/usr/bin/env bash
# Regenerates Sources/FunnelONNX/onnx.pb.swift from proto/onnx.proto (ONNX's own
# onnx/onnx.proto, copied from the onnx 1.23.2 wheel; Apache-2.0) with protoc and swift-protobuf
# 1.39.0's protoc-gen-swift. The generated file is committed, so builds and CI never run this.
#   apt-get install protobuf-compiler
#   git clone https://github.com/apple/swift-protobuf -b 1.39.0 /tmp/swpb
#   (cd /tmp/swpb && swift build -c release --product protoc-gen-swift)
#   scripts/generate-onnx-proto.sh /tmp/swpb/.build/release/protoc-gen-swift
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=${1:?path to protoc-gen-swift}
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
  --swift_out=Sources/FunnelONNX -I proto proto/onnx.proto
