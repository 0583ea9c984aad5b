#!/bin/bash
# SRS with its console log passed through redact.sed (next to this script):
# `run-redacted.sh -c conf/srs.conf`; SRS_BIN names the binary (default
# ./objs/srs, as in the ossrs/srs image). `exec` keeps SRS the process that
# receives signals; sed ends when SRS closes its output.
exec "${SRS_BIN:-./objs/srs}" "$@" > >(exec sed -u -E -f "$(dirname "$0")/redact.sed") 2>&1
