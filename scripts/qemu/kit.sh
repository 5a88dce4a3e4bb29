#!/usr/bin/env bash
# scripts/qemu/kit.sh -- a cached test guest for nvmig: QEMU 11 (TCG) in a Debian 13 chroot
# booting a Debian cloud kernel with a busybox initramfs (nvme-cli, fio).
#
# Why a chroot: QEMU's vfio-user client (`-device vfio-user-pci`) first shipped in QEMU 10.1.
# Debian 12 has 7.2 (10.0 in bookworm-backports); trixie-backports has QEMU 11, which needs
# glibc >= 2.38. So QEMU runs inside a debootstrapped trixie tree. No KVM: our machines (nested PVM)
# cannot run a normal guest kernel under KVM, so the guest runs under TCG (userspace after ~6-9 s).
#
# Usage (root; Debian host; only Debian packages are downloaded; guest has no network):
#   kit.sh setup                     build the cache once (1-3 min); later runs return at once
#   kit.sh boot SCRIPT [-- QEMU-ARGS...]
#                                    boot the guest, run SCRIPT in it (busybox `sh -e`), power off;
#                                    exit status = the script's (see "boot exit status")
#   kit.sh selftest                  setup check + boot guest-nvme-verify.sh against QEMU's own
#                                    emulated NVMe device (proves kit + guest script without nvmig)
#   kit.sh status                    print cache state, versions and disk use
#   kit.sh umount                    undo bind mounts left under the chroot by a killed run
#   kit.sh clean                     umount, then delete the cache directory
#
# Environment (all optional):
#   NVMIG_QEMU_CACHE    cache directory             default /var/cache/nvmig-qemu
#   NVMIG_QEMU_MIRROR   Debian mirror URL           default http://deb.debian.org/debian
#   NVMIG_QEMU_SHARE    host directory bind-mounted at /run/nvmig inside the chroot during `boot`
#                       default /run/nvmig (created if missing), so paths match on both sides
#   NVMIG_QEMU_TIMEOUT  seconds before QEMU is killed   default 300
#   NVMIG_QEMU_MEM      guest RAM (memfd, share=on)     default 512M
#   NVMIG_QEMU_APPEND   extra guest kernel command line words (e.g. nvmig.wait_s=30)
#   NVMIG_QEMU_LOG      also copy the serial log of `boot` to this host file
#   NVMIG_QEMU_INTERACTIVE=1   `boot` gives a busybox shell on the console instead of the script
#   NVMIG_QEMU_NO_UNSHARE=1    mount in the host namespace even where unshare -m works
#
# Sockets and files for QEMU: QEMU runs inside the chroot, so any path given to it (a vfio-user
# server socket, a disk image) must be visible there. During `boot` the host directory
# $NVMIG_QEMU_SHARE is bind-mounted at /run/nvmig inside the chroot: put the server socket in that
# host directory and name it /run/nvmig/<file> in the QEMU arguments.
#
# Guest RAM is a shared memfd (`memory-backend-memfd,share=on`), so QEMU's vfio-user DMA_MAP
# messages carry a file descriptor for guest RAM and a server can map it.
#
# Boot exit status: 0 when QEMU exited cleanly and the guest printed GUEST-RC=0; the guest
# script's status when it failed (GUEST-RC=<n>); 124 when the timeout hit; 125 when the guest
# never reported a GUEST-RC line (panic, driver hang, QEMU start error).
#
# Mounts: `setup` and `boot` re-run themselves in a private mount namespace (unshare -m), so
# their bind mounts (proc, sys, dev, the share directory) vanish when they exit, even on SIGKILL.
# Where unshare is not allowed, the mounts are made in the host namespace and undone by an EXIT
# trap; `kit.sh umount` undoes them after a SIGKILL.
#
# Cache layout ($NVMIG_QEMU_CACHE):
#   rootfs/              the trixie chroot (QEMU, nvme-cli, fio, busybox-static)
#   rootfs/kit/kernel/   vmlinuz, config, qemu_fw_cfg.ko   (chroot path /kit/kernel)
#   rootfs/kit/initramfs.cpio                               (chroot path /kit/initramfs.cpio)
#   rootfs/kit/run/      per-boot scratch (guest script, serial log), removed after each boot
#   stamps/<phase>       version of each finished setup phase; ready = all phases done
set -euo pipefail

# ---------------------------------------------------------------- configuration
# Bump a phase's number when what it produces changes: that phase and all later ones rerun.
PHASES=(rootfs packages kernel initramfs)
declare -A PHASE_VERSION=([rootfs]=1 [packages]=1 [kernel]=1 [initramfs]=2)
SUITE=trixie
KERNEL_META=linux-image-cloud-amd64 # cloud kernel: NVMe core + PCI driver built in (=y)

CACHE=${NVMIG_QEMU_CACHE:-/var/cache/nvmig-qemu}
ROOT=$CACHE/rootfs
MIRROR=${NVMIG_QEMU_MIRROR:-http://deb.debian.org/debian}
SHARE_HOST=${NVMIG_QEMU_SHARE:-/run/nvmig}
SHARE_GUESTSIDE=/run/nvmig # fixed path inside the chroot
TIMEOUT_S=${NVMIG_QEMU_TIMEOUT:-300}
MEM=${NVMIG_QEMU_MEM:-512M}
MARKER=.nvmig-qemu-cache # only a directory holding this file is ever deleted by `clean`
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")

say() { printf '[kit %(%T)T] %s\n' -1 "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

recipe_id() {
  local p out="suite=$SUITE kernel=$KERNEL_META"
  for p in "${PHASES[@]}"; do out+=" $p=${PHASE_VERSION[$p]}"; done
  echo "$out"
}
is_ready() { [ -f "$CACHE/stamps/ready" ] && [ "$(cat "$CACHE/stamps/ready")" = "$(recipe_id)" ]; }

# Run a command inside the chroot with a clean environment.
in_root() {
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

check_cache_path() {
  case $CACHE in
  /*) ;;
  *) die "NVMIG_QEMU_CACHE must be an absolute path (got '$CACHE')" ;;
  esac
  case $CACHE in
  / | /usr | /var | /var/cache | /tmp | /home | /root | *[[:space:]]* | *..*)
    die "refusing NVMIG_QEMU_CACHE='$CACHE' (too broad or contains spaces/..)"
    ;;
  esac
}

# ---------------------------------------------------------------- mounts
# Mount points we created, most recent last; undone in reverse order by undo_mounts (EXIT trap).
MOUNTED=()
bind_mount() { # bind_mount HOST-DIR TARGET-DIR
  mkdir -p "$2"
  # a symlink inside the chroot (e.g. an absolute /run link) must not send the mount to the host
  case $(readlink -f "$2") in
  "$(readlink -f "$ROOT")"/*) ;;
  *) die "mount target $2 resolves outside the chroot" ;;
  esac
  mount --bind "$1" "$2"
  MOUNTED+=("$2")
  # out of any shared peer group: nothing mounted below it may propagate back to the host's tree
  mount --make-private "$2"
}
undo_mounts() {
  local i m
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    m=${MOUNTED[$i]}
    if mountpoint -q "$m"; then
      umount "$m" 2>/dev/null || umount -l "$m" || say "WARNING: could not unmount $m"
    fi
  done
  MOUNTED=()
}
# Mount points under the chroot in this mount namespace, deepest first.
mounts_under_root() {
  awk -v r="$(readlink -m "$ROOT")" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    awk '{ print gsub("/", "/"), $0 }' | sort -rn | cut -d' ' -f2-
}
umount_all_under_root() {
  local m
  for m in $(mounts_under_root); do
    umount "$m" 2>/dev/null || umount -l "$m" || say "WARNING: could not unmount $m"
  done
}
system_mounts() { # proc, sys, dev: needed by apt/dpkg (setup) and QEMU (boot)
  local d
  for d in proc sys dev; do bind_mount "/$d" "$ROOT/$d"; done
}

# Re-run this script in a private mount namespace (same pid: unshare execs) so that every mount
# made below disappears with the process. Falls back to the host namespace + EXIT trap.
PRIVATE_NS=${_NVMIG_KIT_PRIVATE_NS:-0}
enter_private_ns() {
  if [ "$PRIVATE_NS" = 1 ]; then return; fi
  if [ "${NVMIG_QEMU_NO_UNSHARE:-0}" != 1 ] && unshare --mount --propagation private true 2>/dev/null; then
    export _NVMIG_KIT_PRIVATE_NS=1
    exec unshare --mount --propagation private -- "$BASH" "$SELF" "$@"
  fi
  say "no private mount namespace (unshare -m refused or NVMIG_QEMU_NO_UNSHARE=1): mounting in the host namespace (undone on exit; 'umount' after a kill)"
}

# Lock: setup/clean/umount exclusive; boots share it (each boot has its own namespace) unless
# they run in the host namespace, where the /run/nvmig bind mount would collide.
take_lock() { # take_lock -x|-s
  mkdir -p "$CACHE"
  touch "$CACHE/$MARKER"
  exec 9>"$CACHE/.lock"
  if ! flock -n "$1" 9; then
    say "waiting for the cache lock ($CACHE/.lock)"
    flock "$1" 9
  fi
}

on_exit() {
  local rc=$?
  trap - EXIT
  if [ -n "${QEMU_PID:-}" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill -TERM "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  if [ -n "${TAIL_PID:-}" ]; then kill "$TAIL_PID" 2>/dev/null || true; fi
  undo_mounts
  if [ -n "${BOOT_DIR:-}" ] && [ -d "$BOOT_DIR" ]; then rm -rf --one-file-system "$BOOT_DIR"; fi
  exit "$rc"
}
install_traps() {
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

# ---------------------------------------------------------------- setup phases
phase_rootfs() {
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host (apt-get)"
    apt-get install -y -q --no-install-recommends debootstrap ||
      { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }
  fi
  if [ -e "$ROOT" ]; then
    say "removing an unfinished chroot"
    umount_all_under_root
    [ -z "$(mounts_under_root)" ] || die "mounts remain under $ROOT"
    rm -rf --one-file-system "$ROOT"
  fi
  say "debootstrap --variant=minbase $SUITE (35-90 s)"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    {
      tail -20 "$CACHE/debootstrap.log" >&2
      die "debootstrap failed (log: $CACHE/debootstrap.log)"
    }
  # no daemon may start inside the chroot while packages are installed
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
}

phase_packages() {
  echo "deb $MIRROR $SUITE-backports main" >"$ROOT/etc/apt/sources.list.d/nvmig-backports.list"
  say "apt: qemu-system-x86 from $SUITE-backports, busybox-static nvme-cli fio cpio xz-utils (20-60 s)"
  in_root apt-get update -q >/dev/null
  in_root apt-get install -y -q --no-install-recommends -t "$SUITE-backports" qemu-system-x86 >/dev/null
  in_root apt-get install -y -q --no-install-recommends busybox-static nvme-cli fio cpio xz-utils >/dev/null
  in_root apt-get clean
  mkdir -p "$ROOT$SHARE_GUESTSIDE" "$ROOT/kit"
  local version
  version=$(in_root qemu-system-x86_64 --version | head -1)
  say "$version; $(in_root nvme version | head -1); $(in_root fio --version)"
  # vfio-user-pci first shipped in QEMU 10.1
  in_root qemu-system-x86_64 -device help | grep -q '"vfio-user-pci"' ||
    die "this QEMU has no vfio-user-pci device ($version)"
}

# Package lists are dropped at the end of setup (trim_apt); fetch them again when a phase needs them.
ensure_apt_lists() {
  if ! ls "$ROOT"/var/lib/apt/lists/*_Packages >/dev/null 2>&1; then in_root apt-get update -q >/dev/null; fi
}
# Drop what only apt needs (~190 MB: package lists and caches); a rebuilt phase fetches them again.
trim_apt() {
  in_root apt-get clean
  rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin
}

phase_kernel() {
  local pkg
  ensure_apt_lists
  pkg=$(in_root apt-cache depends "$KERNEL_META" | awk '/Depends: linux-image-/ { print $2; exit }')
  [ -n "$pkg" ] || die "cannot resolve $KERNEL_META"
  say "kernel: $pkg (download and unpack only; no initramfs-tools)"
  # shellcheck disable=SC2016 # expanded inside the chroot
  in_root bash -euc '
    rm -rf /kit/kernel /kit/kernel.tmp && mkdir -p /kit/kernel.tmp/deb /kit/kernel.tmp/x
    chown _apt /kit/kernel.tmp/deb 2>/dev/null || true # lets apt download without its root warning
    cd /kit/kernel.tmp/deb && apt-get download -q "$1"
    dpkg-deb -x /kit/kernel.tmp/deb/*.deb /kit/kernel.tmp/x
    mkdir -p /kit/kernel.new
    cp /kit/kernel.tmp/x/boot/vmlinuz-* /kit/kernel.new/vmlinuz
    cp /kit/kernel.tmp/x/boot/config-* /kit/kernel.new/config
    basename /kit/kernel.tmp/x/boot/vmlinuz-* | sed "s/^vmlinuz-//" > /kit/kernel.new/release
    # fw_cfg sysfs driver: module in the cloud kernel; busybox insmod needs it uncompressed
    if ! grep -q "^CONFIG_FW_CFG_SYSFS=y" /kit/kernel.new/config; then
      m=$(find /kit/kernel.tmp/x -name "qemu_fw_cfg.ko*" | head -1)
      [ -n "$m" ] || { echo "qemu_fw_cfg module missing" >&2; exit 1; }
      case $m in *.xz) xz -dc "$m" ;; *.zst) echo "zstd module unsupported" >&2; exit 1 ;; *) cat "$m" ;; esac \
        > /kit/kernel.new/qemu_fw_cfg.ko
    fi
    rm -rf /kit/kernel.tmp
    mv /kit/kernel.new /kit/kernel
  ' _ "$pkg"
  local c
  for c in CONFIG_NVME_CORE CONFIG_BLK_DEV_NVME CONFIG_PCI_MSI; do
    grep -q "^$c=y" "$ROOT/kit/kernel/config" || die "kernel $pkg lacks $c=y (nvme must be built in)"
  done
}

phase_initramfs() {
  say "initramfs: static busybox + nvme-cli + fio with their libraries, uncompressed newc cpio"
  in_root bash -eu -s <<'BUILD'
S=/kit/initramfs.d
rm -rf "$S" && mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,etc,root}
cp /usr/bin/busybox "$S/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
  # "busybox" itself is in the list: linking it would replace the binary by a self-loop
  [ "$applet" = busybox ] || ln -s busybox "$S/bin/$applet"
done
add_binary() { # copy a dynamic binary and every library ldd resolves for it (same paths)
  local lib
  install -D -m 0755 "$1" "$S$1"
  if ldd "$1" | grep -q 'not found'; then echo "unresolved library for $1" >&2; exit 1; fi
  for lib in $(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    # cp -L keeps the mode: the dynamic loader must stay executable
    if [ ! -e "$S$lib" ]; then mkdir -p "$S$(dirname "$lib")" && cp -L "$lib" "$S$lib"; fi
  done
}
add_binary /usr/sbin/nvme
add_binary /usr/bin/fio
if [ -f /kit/kernel/qemu_fw_cfg.ko ]; then cp /kit/kernel/qemu_fw_cfg.ko "$S/lib/qemu_fw_cfg.ko"; fi
cat > "$S/init" <<'INIT'
#!/bin/sh
# nvmig test guest: run the script QEMU hands over in fw_cfg "opt/guest-script", report, power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
read -r up _ < /proc/uptime
echo "nvmig-init: userspace at ${up}s, kernel $(uname -r)"
[ -f /lib/qemu_fw_cfg.ko ] && insmod /lib/qemu_fw_cfg.ko
blob=/sys/firmware/qemu_fw_cfg/by_name/opt/guest-script/raw
if grep -qw nvmig.shell /proc/cmdline; then
  echo "nvmig-init: interactive shell; leave with 'poweroff -f'"
  setsid cttyhack sh
elif [ -r "$blob" ]; then
  cat "$blob" > /tmp/guest-script.sh
  echo "nvmig-init: guest script start"
  sh -e /tmp/guest-script.sh
  rc=$?
  read -r up _ < /proc/uptime
  echo "nvmig-init: guest script end at ${up}s"
  echo "GUEST-RC=$rc"
else
  echo "nvmig-init: no fw_cfg opt/guest-script"
  echo "GUEST-RC=127"
fi
sync
poweroff -f
INIT
chmod 0755 "$S/init"
# uncompressed: decompressing under TCG costs more than reading the bigger file
(cd "$S" && find . -print0 | cpio --null -o -H newc --quiet) > /kit/initramfs.cpio.tmp
mv /kit/initramfs.cpio.tmp /kit/initramfs.cpio
rm -rf "$S"
BUILD
  say "initramfs: $(du -h "$ROOT/kit/initramfs.cpio" | cut -f1)"
}

do_setup() {
  check_cache_path
  if is_ready; then
    say "cached: $CACHE ($(recipe_id))"
    return 0
  fi
  enter_private_ns setup
  install_traps
  take_lock -x
  if is_ready; then # another run finished it while we waited for the lock
    say "cached: $CACHE"
    return 0
  fi
  mkdir -p "$CACHE/stamps"
  rm -f "$CACHE/stamps/ready"
  local t_all p t redo=0 want
  t_all=$(now)
  for p in "${PHASES[@]}"; do
    want=${PHASE_VERSION[$p]}
    if [ "$redo" = 0 ] && [ -f "$CACHE/stamps/$p" ] && [ "$(cat "$CACHE/stamps/$p")" = "$want" ]; then
      continue
    fi
    redo=1
    rm -f "$CACHE/stamps/$p"
    if [ "$p" != rootfs ] && [ ${#MOUNTED[@]} = 0 ]; then
      system_mounts
      # a private pty instance, so apt/dpkg can log (not needed by QEMU)
      if mount -t devpts -o newinstance,ptmxmode=0666 devpts "$ROOT/dev/pts" 2>/dev/null; then
        MOUNTED+=("$ROOT/dev/pts")
      fi
    fi
    t=$(now)
    "phase_$p"
    echo "$want" >"$CACHE/stamps/$p"
    say "phase $p done in $(since "$t") s"
  done
  trim_apt
  undo_mounts
  recipe_id >"$CACHE/stamps/ready"
  say "setup done in $(since "$t_all") s; cache $(du -sh --one-file-system "$CACHE" | cut -f1) at $CACHE"
}

# ---------------------------------------------------------------- boot
do_boot() {
  local script=${1:-}
  [ -n "$script" ] || die "usage: kit.sh boot SCRIPT [-- QEMU-ARGS...]"
  shift
  if [ "${1:-}" = "--" ]; then shift; fi
  [ -f "$script" ] || die "no such guest script: $script"
  check_cache_path
  is_ready || die "cache not ready at $CACHE: run 'kit.sh setup' first"
  script=$(readlink -f "$script")
  case $TIMEOUT_S in '' | *[!0-9]*) die "NVMIG_QEMU_TIMEOUT must be whole seconds" ;; esac
  enter_private_ns boot "$script" -- "$@"
  install_traps
  if [ "$PRIVATE_NS" = 1 ]; then take_lock -s; else take_lock -x; fi

  mkdir -p "$ROOT/kit/run"
  BOOT_DIR=$(mktemp -d "$ROOT/kit/run/boot.XXXXXX")
  local inside=${BOOT_DIR#"$ROOT"} log=$BOOT_DIR/serial.log
  cp "$script" "$BOOT_DIR/guest-script.sh"
  system_mounts
  mkdir -p "$SHARE_HOST"
  bind_mount "$SHARE_HOST" "$ROOT$SHARE_GUESTSIDE"

  local append="console=ttyS0 quiet panic=-1 mitigations=off nvme_core.multipath=N"
  if [ "${NVMIG_QEMU_INTERACTIVE:-0}" = 1 ]; then append+=" nvmig.shell"; fi
  append+=" ${NVMIG_QEMU_APPEND:-}"
  local qemu=(
    qemu-system-x86_64 -name nvmig-test-guest
    -machine "q35,accel=tcg,memory-backend=mem"
    -object "memory-backend-memfd,id=mem,size=$MEM,share=on" -m "$MEM" -smp 1
    -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot
    -kernel /kit/kernel/vmlinuz -initrd /kit/initramfs.cpio -append "$append"
    -fw_cfg "name=opt/guest-script,file=$inside/guest-script.sh"
    "$@"
  )
  say "boot: $(basename "$script") ($SHARE_HOST -> $SHARE_GUESTSIDE; timeout ${TIMEOUT_S}s)"
  local t0 rc=0
  t0=$(now)
  if [ "${NVMIG_QEMU_INTERACTIVE:-0}" = 1 ]; then
    timeout --foreground "$TIMEOUT_S" chroot "$ROOT" "${qemu[@]}" || rc=$?
    say "qemu exit $rc after $(since "$t0") s"
    return "$rc"
  fi
  # QEMU in the background (so a signal to us is handled at once), serial log streamed to stdout
  timeout --kill-after=10 "$TIMEOUT_S" chroot "$ROOT" "${qemu[@]}" </dev/null >"$log" 2>&1 &
  QEMU_PID=$!
  tail -s 0.2 --pid="$QEMU_PID" -n +1 -f "$log" &
  TAIL_PID=$!
  wait "$QEMU_PID" || rc=$? # `wait` (unlike a foreground command) lets a trapped signal in at once
  QEMU_PID=
  wait "$TAIL_PID" || true
  TAIL_PID=
  local wall guest_rc
  wall=$(since "$t0")
  if [ -n "${NVMIG_QEMU_LOG:-}" ]; then cp "$log" "$NVMIG_QEMU_LOG"; fi
  guest_rc=$(tr -d '\r' <"$log" | sed -n 's/^GUEST-RC=\([0-9][0-9]*\)$/\1/p' | tail -1)
  say "qemu exit $rc after $wall s; GUEST-RC=${guest_rc:-none}"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    say "FAIL: timeout after ${TIMEOUT_S}s"
    return 124
  fi
  if [ -z "$guest_rc" ]; then
    say "FAIL: the guest never reported GUEST-RC"
    return 125
  fi
  if [ "$guest_rc" != 0 ]; then return "$guest_rc"; fi
  return "$rc"
}

# ---------------------------------------------------------------- self-test (QEMU's own NVMe)
do_selftest() {
  local verify=$HERE/guest-nvme-verify.sh
  [ -f "$verify" ] || die "missing $verify"
  "$BASH" "$SELF" setup
  local dir rc=0 t0
  dir=$(mktemp -d /tmp/nvmig-qemu-selftest.XXXXXX)
  truncate -s 64M "$dir/disk.img"
  t0=$(now)
  NVMIG_QEMU_SHARE=$dir NVMIG_QEMU_LOG=$dir/serial.log "$BASH" "$SELF" boot "$verify" -- \
    -drive file=$SHARE_GUESTSIDE/disk.img,if=none,id=nvm0,format=raw,cache=none \
    -device nvme,serial=nvmig-selftest,drive=nvm0 || rc=$?
  if [ "$rc" = 0 ] && ! tr -d '\r' <"$dir/serial.log" | grep -qx 'NVMIG-QEMU-VERIFY-OK'; then
    say "FAIL: no NVMIG-QEMU-VERIFY-OK line"
    rc=1
  fi
  rm -rf --one-file-system "$dir"
  if [ "$rc" = 0 ]; then say "selftest PASS in $(since "$t0") s"; else say "selftest FAIL ($rc)"; fi
  return "$rc"
}

do_status() {
  check_cache_path
  if is_ready; then echo "ready: $(cat "$CACHE/stamps/ready")"; else echo "not ready: $CACHE"; fi
  if [ -x "$ROOT/usr/bin/qemu-system-x86_64" ] && is_ready; then
    echo "qemu: $(chroot "$ROOT" qemu-system-x86_64 --version | head -1)"
    echo "kernel: $(cat "$ROOT/kit/kernel/release")"
  fi
  if [ -d "$CACHE" ]; then echo "disk: $(du -sh --one-file-system "$CACHE" | cut -f1)"; fi
  echo "mounts under the chroot: $(mounts_under_root | wc -l)"
}

do_umount() {
  check_cache_path
  [ -d "$ROOT" ] || return 0
  umount_all_under_root
  [ -z "$(mounts_under_root)" ] || die "still mounted: $(mounts_under_root | tr '\n' ' ')"
}

do_clean() {
  check_cache_path
  [ -d "$CACHE" ] || return 0
  [ -f "$CACHE/$MARKER" ] || die "$CACHE has no $MARKER file; not deleting it"
  take_lock -x
  do_umount
  rm -rf --one-file-system "$CACHE"
  say "removed $CACHE"
}

# ---------------------------------------------------------------- main
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and bind mounts need it)"
cmd=${1:-}
if [ $# -gt 0 ]; then shift; fi
case $cmd in
setup) do_setup ;;
boot) do_boot "$@" ;;
selftest) do_selftest ;;
status) do_status ;;
umount) do_umount ;;
clean) do_clean ;;
*)
  sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'
  exit 2
  ;;
esac
