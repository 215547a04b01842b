#!/bin/sh
# Start-up guard of evse-agent releases: systemd runs it before every start (ExecStartPre).
#
#   release-guard.sh RELEASES_DIR
#
# RELEASES_DIR/trial names a release that was switched to but has not proved healthy yet
# (agent/maintenance/releases.py describes the files). state=pending: the release is about to
# start for the first time; the guard marks it booting. state=booting: it started before and
# died, hung (watchdog) or was killed without committing, so the guard switches `current` back
# to the previous release and leaves report=InstallationFailed for it to tell the CSMS.
# Every write is a rename, so a power cut in here leaves the old or the new state.
# Always exits 0: a guard that cannot decide must not keep the charger from starting.
set -u
dir=${1:?usage: release-guard.sh RELEASES_DIR}
trial=$dir/trial
say() { echo "evse-agent-guard: $*"; }

[ -f "$trial" ] || exit 0
field() { sed -n "s/^$1=//p" "$trial" | head -n 1; }
previous=$(field previous)
release=$(field release)
state=$(field state)

replace() {  # replace FILE with the text on stdin
    cat >"$1.guard" && mv -f "$1.guard" "$1"
}

if [ "$state" = pending ]; then
    printf 'previous=%s\nrelease=%s\nstate=booting\n' "$previous" "$release" | replace "$trial"
    say "starting release $release on trial (previous: $previous)"
    exit 0
fi

if [ -n "$previous" ] && [ -f "$dir/$previous/.installed" ]; then
    ln -sfn "$previous" "$dir/.current.guard" && mv -Tf "$dir/.current.guard" "$dir/current"
    printf 'status=InstallationFailed\n' | replace "$dir/report"
    say "release $release did not come up healthy: back to $previous"
else
    say "release $release did not come up healthy, and $previous is gone: keeping it"
fi
rm -f "$trial"
exit 0
