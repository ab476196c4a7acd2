#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# CI: rebuilds bpf/tidegate.bpf.o and bpf/task-print.bpf.o from their committed sources in a temporary folder and compares the
# bytes with the committed objects. Exit 0 when identical; non-zero, saying so, when they differ or
# the toolchain (clang-14, llvm-strip-14, libbpf-dev headers) is missing. Runs from any folder.
set -eu
dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
exec make --no-print-directory -C "$dir" check
