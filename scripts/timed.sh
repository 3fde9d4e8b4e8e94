#!/usr/bin/env bash
# Usage: timed.sh NAME COMMAND [ARG...]: runs COMMAND, then prints its wall time and the CPU time it and the
# processes it waited for used, under NAME; exits with COMMAND's status. A process of its own, so that the CPU time
# is the command's alone, not that of a stage run beside it by the same shell.
name=$1
shift
TIMEFORMAT="==> $name: %0R s wall, %0U+%0S CPU-s (user+system)"
time "$@"
