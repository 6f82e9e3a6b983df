# shellcheck shell=bash
# What the scripts share, sourced at their top (after `set -euo pipefail`, or
# `set -uo pipefail` in doctor and reset):
#
#   # shellcheck source=scripts/lib.sh
#   source "$(dirname "$(readlink -f "$0")")/lib.sh"
#
# It sets PATH and defines step, die, usage and put_olds; it runs nothing else.

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

# put_olds BUILD_DIR: the put_old directories pivot_root attempts left in
# BUILD_DIR or in a rootfs directly beneath it (chapters 3 to 6 make an empty
# .oldroot-XXXXXX and remove it once the old root is unmounted, so one stays
# only when a runtime is killed in between), one a line. Only empty ones,
# not mounted on: one with files in it is not a put_old of the project's, and
# is named on stderr and left.
put_olds() {
    local old
    for old in "$1"/.oldroot-* "$1"/*/.oldroot-*; do
        if [ ! -d "$old" ] || mountpoint -q "$old"; then continue; fi
        if [ -n "$(ls -A "$old" 2>/dev/null)" ]; then
            echo "$prog: leaving $old: it is not empty, so not a put_old directory of the project's; look inside before removing it" >&2
        else
            echo "$old"
        fi
    done
}
