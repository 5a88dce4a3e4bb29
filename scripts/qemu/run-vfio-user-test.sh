#!/usr/bin/env bash
# scripts/qemu/run-vfio-user-test.sh -- `npm run test:qemu`: unmodified QEMU 11 against an nvmig VF.
#
#   this script                 nvmig host (daemon)               kit.sh boot (chroot, QEMU 11, TCG)
#     | kit.sh setup (cached)         |                                    |
#     | write host.json ─────────────►| start, create <share>/vfio-user/vf1.sock
#     | wait for the VF socket ◄──────|                                    |
#     | kit.sh boot guest-nvme-verify.sh -device vfio-user-pci,/run/nvmig/vfio-user/vf1.sock ─►|
#     |                               |◄──── vfio-user (VERSION, DMA_MAP + memfd, regions, IRQs)
#     |                               |       Linux nvme driver binds; dd + cmp; fio verify
#     |◄──────────── serial log: NVMIG-QEMU-VERIFY-OK, GUEST-RC=0, QEMU powers off ─────────|
#     | SIGTERM ─────────────────────►| exits                              |
#
# Steps: (a) build/reuse the guest kit, (b) start `node bin/nvmig.mjs host --config FILE` in the
# background and wait for its VF socket, (c) boot QEMU with
# `-device {"driver":"vfio-user-pci","socket":{"path":"/run/nvmig/vfio-user/<vf socket>",...}}`,
# (d) require NVMIG-QEMU-VERIFY-OK and GUEST-RC=0 in the serial log, (e) stop the daemon with
# SIGTERM. Exit status 0 only when every step passed; otherwise the log tails are printed.
#
# Root: the kit (debootstrap, chroot, bind mounts) needs root. Run as root, or as a user with
# password-less sudo: then only kit.sh runs through `sudo -n` and the daemon runs as the user.
#
# What this assumes about the daemon (the host config format is not final):
#   - `nvmig host --config FILE` runs in the foreground until SIGTERM, then exits 0 (143 accepted);
#   - FILE is the JSON written below: socketDir, namespaces[{nsid, backend, lbaBytes, sizeBytes}],
#     vfs (number of VFs), onlineVfs[{vfn, ioQueuePairs}];
#   - it creates one listening vfio-user UNIX socket per exported function in socketDir; the VF's
#     is named vf1.sock (NVMIG_VF_SOCKET overrides; when unset, the only socket whose name contains
#     "vf" is accepted as well); the socket exists only once the server is listening;
#   - the VF is online with namespace 1 attached when the socket appears, so the guest's in-box
#     driver finds /dev/nvme0n1 without any PF-side action from the guest.
#
# Environment (all optional):
#   NVMIG_VF_SOCKET           VF socket file name in socketDir      default vf1.sock
#   NVMIG_HOST_CMD            daemon command, `--config FILE` is appended
#                             default "node bin/nvmig.mjs host" (run from the repository root)
#   NVMIG_HOST_START_TIMEOUT  seconds to wait for the VF socket     default 60
#   NVMIG_VFU_MSG_TIMEOUT_MS  QEMU's wait for each vfio-user reply (x-msg-timeout)
#                             default 15000 (QEMU's own default is 5000; CI machines can be loaded)
#   NVMIG_QEMU_KEEP=1         keep the work directory (config, logs) and print its path
#   NVMIG_QEMU_*              passed on to kit.sh (cache dir, timeout, mirror, append, ...)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KIT=$HERE/kit.sh
GUEST_SCRIPT=$HERE/guest-nvme-verify.sh
VF_SOCKET=${NVMIG_VF_SOCKET:-vf1.sock}
HOST_CMD=${NVMIG_HOST_CMD:-node bin/nvmig.mjs host}
START_TIMEOUT_S=${NVMIG_HOST_START_TIMEOUT:-60}
MSG_TIMEOUT_MS=${NVMIG_VFU_MSG_TIMEOUT_MS:-15000}
SHARE_GUESTSIDE=/run/nvmig # where kit.sh bind-mounts NVMIG_QEMU_SHARE inside the chroot

say() { printf '[test:qemu %(%T)T] %s\n' -1 "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

WORK=
DAEMON_PID=
show_tail() { # show_tail FILE TITLE
  if [ -s "$1" ]; then
    echo "----- $2 (last 40 lines of $1)" >&2
    tail -40 "$1" | tr -d '\r' >&2
  fi
}
fail() {
  say "FAIL: $*"
  show_tail "$WORK/host.log" "nvmig host log"
  show_tail "$WORK/serial.log" "guest serial log"
  exit 1
}
stop_daemon() { # SIGTERM, 10 s grace, then SIGKILL; sets DAEMON_RC
  DAEMON_RC=
  [ -n "$DAEMON_PID" ] || return 0
  if kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true

    for _ in $(seq 50); do
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
      say "daemon ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
  fi
  DAEMON_RC=0
  wait "$DAEMON_PID" 2>/dev/null || DAEMON_RC=$?
  DAEMON_PID=
}
on_exit() {
  local rc=$?
  trap - EXIT
  stop_daemon
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${NVMIG_QEMU_KEEP:-0}" = 1 ]; then
      say "work directory kept: $WORK"
    else
      rm -rf --one-file-system "$WORK"
    fi
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kit.sh as root: directly, or through password-less sudo with the NVMIG_QEMU_* settings
kit() {
  local vars=() v
  for v in $(compgen -v NVMIG_QEMU_); do vars+=("$v=${!v}"); done
  if [ "$(id -u)" = 0 ]; then
    env "${vars[@]}" bash "$KIT" "$@"
  elif sudo -n true 2>/dev/null; then
    sudo -n env "${vars[@]}" bash "$KIT" "$@"
  else
    fail "kit.sh needs root: run as root or with password-less sudo"
  fi
}

T_ALL=$(now)

# ---- (a) the guest kit: built once, then cached
t=$(now)
kit setup || fail "kit.sh setup"
T_SETUP=$(since "$t")

# ---- (b) the host daemon, one namespace, one VF online, sockets in the shared directory
WORK=$(mktemp -d /tmp/nvmig-qemu-e2e.XXXXXX)
chmod 0755 "$WORK"
SHARE=$WORK/share
SOCKET_DIR=$SHARE/vfio-user
mkdir -p "$SOCKET_DIR"
cat >"$WORK/host.json" <<EOF
{
  "socketDir": "$SOCKET_DIR",
  "namespaces": [{ "nsid": 1, "backend": "memory", "lbaBytes": 512, "sizeBytes": 67108864 }],
  "vfs": 1,
  "onlineVfs": [{ "vfn": 1, "ioQueuePairs": 4 }]
}
EOF
say "starting: $HOST_CMD --config $WORK/host.json"
t=$(now)
# shellcheck disable=SC2086 # HOST_CMD is a command line on purpose
(cd "$REPO" && exec $HOST_CMD --config "$WORK/host.json") >"$WORK/host.log" 2>&1 &
DAEMON_PID=$!

find_vf_socket() { # prints the socket file name once it exists
  if [ -S "$SOCKET_DIR/$VF_SOCKET" ]; then
    echo "$VF_SOCKET"
    return 0
  fi
  [ -z "${NVMIG_VF_SOCKET:-}" ] || return 1
  local found=() f
  for f in "$SOCKET_DIR"/*[vV][fF]*; do [ -S "$f" ] && found+=("${f##*/}"); done
  [ ${#found[@]} = 1 ] || return 1
  echo "${found[0]}"
}
deadline=$(($(date +%s) + START_TIMEOUT_S))
while ! sock=$(find_vf_socket); do
  kill -0 "$DAEMON_PID" 2>/dev/null || {
    stop_daemon
    fail "nvmig host exited (status $DAEMON_RC) before creating $SOCKET_DIR/$VF_SOCKET"
  }
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "socket directory holds: $(find "$SOCKET_DIR" -mindepth 1 -printf '%f (%y) ' | head -c 400)"
    fail "no VF socket $SOCKET_DIR/$VF_SOCKET after ${START_TIMEOUT_S}s"
  fi
  sleep 0.2
done
sleep 0.5 # the file appears at bind(); leave the server a moment to reach listen()
T_DAEMON=$(since "$t")
say "VF socket: $SOCKET_DIR/$sock (in the chroot: $SHARE_GUESTSIDE/vfio-user/$sock) after ${T_DAEMON}s"

# ---- (c) QEMU 11 with vfio-user-pci; the guest runs guest-nvme-verify.sh
device=$(printf '{"driver":"vfio-user-pci","id":"nvmig-vf1","x-msg-timeout":%d,"socket":{"path":"%s","type":"unix"}}' \
  "$MSG_TIMEOUT_MS" "$SHARE_GUESTSIDE/vfio-user/$sock")
t=$(now)
boot_rc=0
NVMIG_QEMU_SHARE=$SHARE NVMIG_QEMU_LOG=$WORK/serial.log kit boot "$GUEST_SCRIPT" -- -device "$device" ||
  boot_rc=$?
T_BOOT=$(since "$t")

# ---- (d) verdict from the serial log
[ -f "$WORK/serial.log" ] || fail "no serial log (kit.sh boot status $boot_rc)"
tr -d '\r' <"$WORK/serial.log" | grep -qx 'NVMIG-QEMU-VERIFY-OK' ||
  fail "guest did not print NVMIG-QEMU-VERIFY-OK (kit.sh boot status $boot_rc)"
tr -d '\r' <"$WORK/serial.log" | grep -qx 'GUEST-RC=0' || fail "guest script status is not 0"
[ "$boot_rc" = 0 ] || fail "kit.sh boot status $boot_rc"
kill -0 "$DAEMON_PID" 2>/dev/null || fail "nvmig host died during the guest run"

# ---- (e) stop the daemon
stop_daemon
case $DAEMON_RC in
0 | 143) ;;
*) fail "nvmig host exited with status $DAEMON_RC after SIGTERM" ;;
esac
say "PASS: setup ${T_SETUP}s, daemon start ${T_DAEMON}s, QEMU boot+verify ${T_BOOT}s, total $(since "$T_ALL")s"
