#!/usr/bin/env bash
# Install, upgrade or remove evse-agent as a systemd service on Raspberry Pi OS (Bookworm).
#
#   sudo ./install/install.sh                 install or upgrade, enable the service, and start it
#                                             once check-config passes (the starter config's
#                                             placeholders fail it until they are edited)
#   sudo ./install/install.sh --uninstall     remove the service and the program; keep config and state
#   sudo ./install/install.sh --purge         remove config, state, logs and the user as well
#
# Options:
#   --prefix DIR            where the program goes (default /opt/evse-agent): each release is a
#                           venv in DIR/releases/VERSION-TIME, DIR/releases/current the one run
#   --root DIR              install into DIR as if it were /: no user, group or systemctl changes
#                           on this machine, those steps are only printed (used by the tests)
#   --no-start              install and enable, but do not start or restart the service
#   --no-hardware-extras    do not pip-install lgpio (gpiozero's GPIO backend on a Pi)
#   --python PYTHON         interpreter for the virtual environment (default python3, >= 3.11)
#   --system-site-packages  let the venv see the system's packages (e.g. Debian's python3-lgpio)
#   --pip-args "ARGS"       extra arguments for installing the agent (also $EVSE_AGENT_PIP_ARGS),
#                           e.g. "--no-deps --no-build-isolation --no-index" for an offline test
#
# Upgrading is running it again from a newer checkout: config and state are kept, the new
# release goes beside the old ones and `current` switches to it (the layout UpdateFirmware uses,
# agent/maintenance/releases.py and docs/updates.md). The source is the checkout this script
# lives in. Exit status: 0 done, 1 failed, 2 usage.
set -euo pipefail

readonly NAME=evse-agent
readonly HARDWARE_GROUPS="gpio spi dialout"

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/evse-agent
root=
start=yes
hardware_extras=yes
python=python3
site_packages=
pip_args=${EVSE_AGENT_PIP_ARGS:-}
action=install
stage=
missing_groups=
present_groups=

say() { printf '%s: %s\n' "$NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit "${1:-2}"; }

# Run a command that changes this machine's users or services; with --root only print it.
host() {
    if [ -n "$root" ]; then
        say "would run:$(printf ' %q' "$@")"
    else
        "$@"
    fi
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift ;;
            --root) [ $# -ge 2 ] || usage; root=$2; shift ;;
            --python) [ $# -ge 2 ] || usage; python=$2; shift ;;
            --pip-args) [ $# -ge 2 ] || usage; pip_args=$2; shift ;;
            --no-start) start=no ;;
            --no-hardware-extras) hardware_extras=no ;;
            --system-site-packages) site_packages=--system-site-packages ;;
            --uninstall) [ "$action" = purge ] || action=uninstall ;;
            --purge) action=purge ;;
            -h|--help) usage 0 ;;
            *) warn "unknown option: $1"; usage ;;
        esac
        shift
    done
    case $prefix in
        /?*) ;;
        *) die "--prefix must be an absolute path other than /: $prefix" ;;
    esac
    if [ -n "$root" ]; then
        mkdir -p "$root"
        root=$(cd "$root" && pwd)
        [ "$root" != / ] || root=
    fi
    if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
        die "run as root (sudo $0), or give --root DIR to install into a directory"
    fi
}

set_paths() {
    releases=$root$prefix/releases
    venv=  # the new release, named in install_program
    old_venv=$root$prefix/venv  # the layout before releases/
    guard=$root$prefix/bin/$NAME-guard
    docdir=$root$prefix/share/doc
    confdir=$root/etc/$NAME
    config=$confdir/config.toml
    statedir=$root/var/lib/$NAME
    logdir=$root/var/log/$NAME
    unit=$root/etc/systemd/system/$NAME.service
    link=$root/usr/local/bin/$NAME
    dropin=$unit.d/10-groups.conf
}

# --- install ---------------------------------------------------------------------------------

create_user() {
    local group present=
    for group in $HARDWARE_GROUPS; do
        if getent group "$group" >/dev/null; then
            present="$present,$group"
        elif [ -n "$root" ]; then
            say "would run: groupadd --system $group"
            present="$present,$group"
        else
            warn "group $group does not exist (not Raspberry Pi OS?): the service runs without it"
            missing_groups="$missing_groups $group"
        fi
    done
    present=${present#,}
    present_groups=${present//,/ }
    if getent passwd "$NAME" >/dev/null && [ -z "$root" ]; then
        say "user $NAME exists"
    else
        host useradd --system --user-group --home-dir "/var/lib/$NAME" --no-create-home \
            --shell /usr/sbin/nologin --comment "evse-agent charge controller" "$NAME"
    fi
    if [ -n "$present" ]; then
        host usermod --append --groups "$present" "$NAME"
    fi
}

ensure_python() {
    command -v "$python" >/dev/null || die "$python not found: apt install python3"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "evse-agent needs Python >= 3.11; $python is $("$python" -V 2>&1)"
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        [ -z "$root" ] || die "$python cannot create virtual environments (python3-venv)"
        say "installing python3-venv"
        apt-get install -y python3-venv
    fi
}

install_program() {
    local version release
    version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/agent/__init__.py")
    [ -n "$version" ] || die "no __version__ in $repo/agent/__init__.py"
    release=$version-$(date -u +%Y%m%dT%H%M%S)
    local base=$release n=1
    while [ -e "$releases/$release" ]; do release=$base-$n; n=$((n + 1)); done
    mkdir -p "$releases"
    # Built in place (a venv cannot move); it counts as installed once .installed exists.
    venv=$releases/$release
    say "release $release: $venv"
    # shellcheck disable=SC2086 # $site_packages is empty or one option
    "$python" -m venv $site_packages "$venv"
    # Build from a copy: pip builds in the source tree, and the checkout may belong to the
    # user who ran sudo.
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
        --exclude=./state --exclude=./examples/state --exclude='*.egg-info' --exclude='__pycache__' --exclude='.*_cache' \
        -cf - . | tar -C "$stage" -xf -
    say "installing the agent from $repo"
    # shellcheck disable=SC2086 # the extra pip arguments are meant to split into words
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        $pip_args "$stage"
    rm -rf "$stage"
    trap - EXIT
    if [ "$hardware_extras" = yes ] && is_raspberry_pi; then
        say "installing lgpio, the Pi's GPIO backend"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'lgpio>=0.2' \
            || warn "lgpio did not install: apt install python3-lgpio, then rerun with --system-site-packages"
    fi
    # Complete: mark it, then switch `current` in one rename (as an update does).
    sync
    printf 'requirement=%s\n' "$NAME==$version" >"$venv/.installed"
    ln -sfn "$release" "$releases/.current.new"
    mv -Tf "$releases/.current.new" "$releases/current"
    rm -f "$releases/trial"  # a new install is not an update on trial
    rm -rf "$old_venv"
    mkdir -p "$(dirname "$guard")"
    install -m 0755 "$repo/install/release-guard.sh" "$guard"
    # The service installs updates here (ReadWritePaths= in the unit).
    host chown -R "$NAME:$NAME" "$releases"
    mkdir -p "$docdir"
    install -m 0644 "$repo/docs/deployment.md" "$repo/docs/operations.md" \
        "$repo/docs/updates.md" "$docdir/"
    # On PATH for "sudo evse-agent status"; a file of the same name that is not ours stays.
    mkdir -p "$(dirname "$link")"
    if [ ! -e "$link" ] || [ -L "$link" ]; then
        ln -sfn "$prefix/releases/current/bin/$NAME" "$link"
    else
        warn "$link exists and is not a link; leaving it"
    fi
}

is_raspberry_pi() {
    [ -z "$root" ] && grep -qs 'Raspberry Pi' /proc/device-tree/model
}

place_config() {
    mkdir -p "$confdir"
    if [ -e "$config" ]; then
        say "keeping the existing configuration $config"
        return
    fi
    say "placing a starter configuration in $config"
    install -m 0640 "$repo/examples/raspberry-pi.toml" "$config"
    # The file holds the CSMS password: readable by root and the service only.
    host chgrp "$NAME" "$config"
}

place_directories() {
    mkdir -p "$statedir" "$logdir"
    chmod 0750 "$statedir" "$logdir"
    host chown "$NAME:$NAME" "$statedir" "$logdir"
}

place_unit() {
    mkdir -p "$(dirname "$unit")"
    sed "s#/opt/evse-agent#$prefix#g" "$repo/systemd/$NAME.service" >"$unit.tmp"
    chmod 0644 "$unit.tmp"
    mv "$unit.tmp" "$unit"
    say "service unit: $unit"
    place_groups_dropin
}

# systemd refuses to start a unit whose SupplementaryGroups= names a group that does not exist:
# list only the present ones in a drop-in (which a later install removes again).
place_groups_dropin() {
    if [ -z "$missing_groups" ]; then
        rm -f "$dropin"
        rmdir "$(dirname "$dropin")" 2>/dev/null || true
        return
    fi
    mkdir -p "$(dirname "$dropin")"
    printf '# Written by install.sh: groups%s do not exist here.\n[Service]\nSupplementaryGroups=\nSupplementaryGroups=%s\n' \
        "$missing_groups" "$present_groups" >"$dropin"
    say "drop-in without the missing groups: $dropin"
}

check_config() {
    if "$venv/bin/$NAME" check-config "$config"; then
        return 0
    fi
    warn "the configuration has problems (above): fix them before the service can run"
    return 1
}

enable_service() {
    local config_ok=$1
    host systemctl daemon-reload
    host systemctl enable "$NAME"
    if [ "$start" = no ]; then
        say "not starting the service (--no-start)"
    elif [ "$config_ok" = no ]; then
        say "not starting the service until the configuration is valid"
    else
        # restart: an upgrade must run the new code; start when it was not running.
        host systemctl restart "$NAME"
    fi
}

next_steps() {
    cat <<EOF

Next:
  1. Edit $root/etc/$NAME/config.toml: charger.id, csms.url and csms.password from your CSMS,
     the RS-485 port, GPIO pins and meter model of this charger.
     Every key: $prefix/releases/current/bin/$NAME config-reference
  2. Check it:    sudo $prefix/releases/current/bin/$NAME check-config /etc/$NAME/config.toml
  3. Start it:    sudo systemctl restart $NAME   (enabled now; started only once step 2 passes)
  4. Watch it:    systemctl status $NAME   and   journalctl -u $NAME -f
EOF
}

install_all() {
    local config_ok=yes
    ensure_python
    create_user
    install_program
    place_config
    place_directories
    place_unit
    check_config || config_ok=no
    enable_service "$config_ok"
    next_steps
}

# --- uninstall -------------------------------------------------------------------------------

uninstall_all() {
    if [ -e "$unit" ]; then
        host systemctl disable --now "$NAME"
        rm -f "$unit" "$dropin"
        rmdir "$unit.d" 2>/dev/null || true
        host systemctl daemon-reload
    fi
    # Remove only what this script made: never the whole prefix, which the user chose.
    rm -rf "$releases" "$old_venv" "$docdir" "$guard"
    rmdir "$(dirname "$guard")" 2>/dev/null || true
    if [ -L "$link" ]; then rm -f "$link"; fi
    rmdir "$root$prefix/share" "$root$prefix" 2>/dev/null || true
    say "removed the service and $prefix"
    if [ "$action" != purge ]; then
        say "kept $root/etc/$NAME (configuration) and $root/var/lib/$NAME (state); --purge removes them"
        return
    fi
    rm -rf "$confdir" "$statedir" "$logdir"
    if [ -n "$root" ] || getent passwd "$NAME" >/dev/null; then
        host userdel "$NAME"
    fi
    say "purged the configuration, state, logs and the user $NAME"
}

main() {
    parse_args "$@"
    set_paths
    case $action in
        install) install_all ;;
        uninstall|purge) uninstall_all ;;
    esac
}

main "$@"
