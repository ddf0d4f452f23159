#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Validate OTLP/HTTP JSON bodies against the official OpenTelemetry
protocol definitions, with tools this project did not write:

  * the .proto files of opentelemetry-proto, as shipped in the npm package
    @opentelemetry/otlp-grpc-exporter-base (build/protos/), passed as argv[1];
  * protoc (Debian protobuf-compiler) to compile them;
  * google.protobuf.json_format (Debian python3-protobuf), whose Parse()
    rejects unknown fields, wrong types and bad enum values.

The only thing done here by hand is what the OTLP specification itself
defines as its deviation from the proto3 JSON mapping: trace and span ids
are hex strings, not base64.  They are checked (exact length, lower-case
hex) and converted to base64 before parsing.

usage: test_export_otlp_check.py PROTO_DIR FILE.json...
prints "ok <spans>" and exits 0, or prints the error and exits 1.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

IDS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
HEX = re.compile(r"^[0-9a-f]*$")


def fix_ids(node, path="$"):
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if k in IDS and isinstance(v, str):
                if len(v) != IDS[k] or not HEX.match(v):
                    raise ValueError("%s.%s: not %d lower-case hex digits: %r"
                                     % (path, k, IDS[k], v))
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                fix_ids(v, path + "." + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            fix_ids(v, "%s[%d]" % (path, i))


def main():
    protos = sys.argv[1]
    files = sys.argv[2:]
    out = tempfile.mkdtemp(prefix="otlp-py-")
    srcs = []
    for root, _, names in os.walk(os.path.join(protos, "opentelemetry")):
        srcs += [os.path.relpath(os.path.join(root, n), protos)
                 for n in names if n.endswith(".proto")]
    subprocess.run(["protoc", "-I", protos, "--python_out", out] + srcs,
                   check=True)
    sys.path.insert(0, out)
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    spans = 0
    for f in files:
        with open(f) as fh:
            doc = json.load(fh)
        fix_ids(doc)
        req = trace_service_pb2.ExportTraceServiceRequest()
        try:
            json_format.ParseDict(doc, req)  # strict: unknown fields fail
        except json_format.ParseError as e:
            print("%s: %s" % (f, e))
            return 1
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if len(s.trace_id) != 16 or len(s.span_id) != 8:
                        print("%s: bad id length" % f)
                        return 1
                    spans += 1
    print("ok %d" % spans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
