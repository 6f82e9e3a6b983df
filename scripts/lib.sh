# shellcheck shell=bash
# What the scripts share, sourced at their top (after `set -euo pipefail`, or
# `set -uo pipefail` in doctor and reset):
#
#   # shellcheck source=scripts/lib.sh
#   source "$(dirname "$(readlink -f "$0")")/lib.sh"
#
# It sets PATH and defines step, die and usage; it runs nothing else.

# Rust's tools (cargo, rustup, mdbook) as scripts/provision installs them:
# for root, under ~/.cargo/bin, which sudo's PATH does not hold.
export PATH="$HOME/.cargo/bin:$PATH"

# The script's name, for messages: "lab: ...".
prog=${0##*/}

# step TEXT...: a heading for the next part of a long run; step_started is
# when it began (in $SECONDS), for scripts that say how long a step took.
step() {
    printf '\n==> %s\n' "$*"
    # shellcheck disable=SC2034 # read by the scripts that time their steps
    step_started=$SECONDS
}

# die MESSAGE...: "<script>: MESSAGE" on stderr, then exit with $die_status:
# 1 unless the script sets it (lab exits 2 on every refusal).
die() {
    echo "$prog: $*" >&2
    exit "${die_status:-1}"
}

# usage: the script's opening comment, from line 2 to the last line before
# the code, without the "# ". usage_lines FIRST LAST: lines FIRST to LAST.
usage() {
    usage_lines 2 "$(($(sed -n '2,$ { /^#/!{ =; q; } }' "$0") - 1))"
}
usage_lines() {
    sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//'
}
