# shellcheck shell=sh
# scripts/qemu/guest-nvme-verify.sh -- runs INSIDE the test guest (busybox `sh -e`, handed over by
# `kit.sh boot` through fw_cfg). Checks one NVMe namespace with the guest's in-box Linux driver:
#   1. wait for the block device (the controller probes asynchronously; a vfio-user server may be slow)
#   2. print Identify Controller fields (vid, ssvid, sn, mn, fr, cntlid, ver) and namespace geometry
#   3. 8 MiB of random data: write with O_DIRECT, read back with O_DIRECT, cmp
#   4. 1 MiB at the last MiB of the namespace (high LBAs), then re-check region 3 (no aliasing)
#   5. fio random writes with crc32c verify (libaio, queue depth 8) on a separate region
# Prints NVMIG-QEMU-VERIFY-OK on success; NVMIG-QEMU-VERIFY-FAIL: <reason> and exit 1 otherwise.
#
# Parameters (guest kernel command line, e.g. NVMIG_QEMU_APPEND="nvmig.wait_s=30"):
#   nvmig.ns=nvme0n1       namespace block device           (default nvme0n1)
#   nvmig.verify_mib=8     size of the dd region, MiB        (default 8, range 1..)
#   nvmig.fio_mib=8        size of the fio region, MiB; 0 = skip fio   (default 8)
#   nvmig.wait_s=120       how long to wait for the device, s (default 120)
# Layout on the namespace: dd region [0, V) MiB, fio region [V, V+F) MiB, tail [size-1, size) MiB;
# the namespace must hold at least V + F + 1 MiB.

param() { # param NAME DEFAULT: value of NAME=... on the kernel command line
  # shellcheck disable=SC2013 # the command line is one line of words
  for word in $(cat /proc/cmdline); do
    case $word in "$1="*)
      echo "${word#*=}"
      return
      ;;
    esac
  done
  echo "$2"
}
fail() {
  echo "NVMIG-QEMU-VERIFY-FAIL: $*"
  exit 1
}
step() {
  read -r up _ </proc/uptime
  echo "== [${up}s] $*"
}

NS=$(param nvmig.ns nvme0n1)
CTRL=${NS%n*}
VERIFY_MIB=$(param nvmig.verify_mib 8)
FIO_MIB=$(param nvmig.fio_mib 8)
WAIT_S=$(param nvmig.wait_s 120)
DEV=/dev/$NS

step "guest kernel"
cat /proc/version
echo "PCI functions:"
for d in /sys/bus/pci/devices/*; do
  echo "  ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")"
done

step "waiting up to ${WAIT_S}s for $DEV"
tries=0
while [ ! -b "$DEV" ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt $((WAIT_S * 5)) ]; then
    ls -l /sys/class/nvme/ 2>&1 || true
    dmesg | grep -i nvme | tail -20 || true
    fail "no $DEV after ${WAIT_S}s"
  fi
  sleep 0.2
done
step "$DEV is present"
nvme list || fail "nvme list"

step "Identify Controller /dev/$CTRL"
nvme id-ctrl "/dev/$CTRL" >/tmp/id-ctrl || fail "nvme id-ctrl /dev/$CTRL"
for field in vid ssvid sn mn fr cntlid ver mdts nn oacs; do
  grep -E "^$field +:" /tmp/id-ctrl || true
done
for field in vid sn mn cntlid; do
  grep -qE "^$field +:" /tmp/id-ctrl || fail "id-ctrl has no $field field"
done

step "namespace $NS"
nvme id-ns "$DEV" | grep -E '^(nsze|ncap|nuse|nlbaf|flbas) +:' || fail "nvme id-ns $DEV"
LBA_BYTES=$(cat "/sys/block/$NS/queue/logical_block_size")
NS_MIB=$(($(cat "/sys/block/$NS/size") / 2048)) # sysfs size counts 512-byte sectors
echo "logical block ${LBA_BYTES} B, size ${NS_MIB} MiB"
[ "$NS_MIB" -ge $((VERIFY_MIB + FIO_MIB + 1)) ] ||
  fail "namespace of ${NS_MIB} MiB is smaller than the ${VERIFY_MIB}+${FIO_MIB}+1 MiB this check uses"

step "dd: write ${VERIFY_MIB} MiB of random data (O_DIRECT), read back (O_DIRECT), cmp"
dd if=/dev/urandom of=/tmp/pattern bs=1M count="$VERIFY_MIB" 2>/dev/null
dd if=/tmp/pattern of="$DEV" bs=1M count="$VERIFY_MIB" oflag=direct conv=fsync ||
  fail "dd write to $DEV"
dd if="$DEV" of=/tmp/readback bs=1M count="$VERIFY_MIB" iflag=direct || fail "dd read from $DEV"
cmp /tmp/pattern /tmp/readback || fail "read-back of [0, ${VERIFY_MIB}) MiB differs"
echo "DD-VERIFY-OK ${VERIFY_MIB} MiB"

TAIL_MIB=$((NS_MIB - 1))
step "dd: 1 MiB at MiB ${TAIL_MIB} (last MiB), then re-check the first region"
dd if=/dev/urandom of=/tmp/tail bs=1M count=1 2>/dev/null
dd if=/tmp/tail of="$DEV" bs=1M seek="$TAIL_MIB" count=1 oflag=direct conv=fsync ||
  fail "dd write at MiB $TAIL_MIB"
dd if="$DEV" of=/tmp/tail.back bs=1M skip="$TAIL_MIB" count=1 iflag=direct ||
  fail "dd read at MiB $TAIL_MIB"
cmp /tmp/tail /tmp/tail.back || fail "read-back of the last MiB differs"
dd if="$DEV" of=/tmp/readback bs=1M count="$VERIFY_MIB" iflag=direct || fail "dd re-read"
cmp /tmp/pattern /tmp/readback || fail "first region changed after the tail write"
echo "DD-TAIL-VERIFY-OK"
rm -f /tmp/pattern /tmp/readback /tmp/tail /tmp/tail.back

if [ "$FIO_MIB" -gt 0 ] && command -v fio >/dev/null; then
  engine=psync
  depth=1
  if fio --enghelp 2>/dev/null | grep -qw libaio; then
    engine=libaio
    depth=8
  fi
  step "fio: ${FIO_MIB} MiB random 4 KiB writes at MiB ${VERIFY_MIB}, ${engine} depth ${depth}, verify crc32c"
  if ! fio --name=nvmig-verify --filename="$DEV" --offset="${VERIFY_MIB}M" --size="${FIO_MIB}M" \
    --rw=randwrite --bs=4k --direct=1 --ioengine="$engine" --iodepth="$depth" \
    --verify=crc32c --do_verify=1 --verify_fatal=1 >/tmp/fio.out 2>&1; then
    cat /tmp/fio.out
    fail "fio verify"
  fi
  grep -E 'IOPS=|err=' /tmp/fio.out || true
  echo "FIO-VERIFY-OK"
else
  echo "fio skipped"
fi

step "all checks passed"
echo "NVMIG-QEMU-VERIFY-OK"
