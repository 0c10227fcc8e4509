#!/bin/sh
# PID 1 of the uffd-harness guest. Every line it prints starts with "uffd-harness:" so the
# host can tell its progress from kernel messages on the serial console.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /etc/uffd-harness.conf

say() { echo "uffd-harness: $*" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
say "init started"

# The console channel: a shell on the second serial port (ttyS1), whose other end is a
# socket in the harness's private work dir. The harness drives it when SSH cannot come up
# (or when asked to). Raw mode passes bytes unchanged with no line length limit. A pipe
# feeds the shell, so it is not interactive (no prompt, no line editing), and its own
# complaints land in the kernel log. The feeder is dd, which writes each read as it gets
# it: busybox cat splices, and a splice from a tty holds input back until more arrives.
if stty -F /dev/ttyS1 raw -echo 2>/dev/null; then
  (dd if=/dev/ttyS1 bs=4096 2>/dev/null | sh >/dev/ttyS1 2>/dev/kmsg) &
else
  say "WARNING: no console channel: /dev/ttyS1 is not a serial port"
fi

# A hugetlbfs mount per page size the kernel supports: /mnt/huge-2048kB, /mnt/huge-1048576kB.
for d in /sys/kernel/mm/hugepages/hugepages-*; do
  [ -d "$d" ] || continue
  size=${d##*/hugepages-}
  mkdir -p "/mnt/huge-$size"
  mount -t hugetlbfs -o "pagesize=${size%kB}K" none "/mnt/huge-$size" \
    || say "WARNING: cannot mount hugetlbfs for $size"
done

# Modules in dependency order; the list marks which ones the guest cannot do without.
while read -r kind path; do
  [ -n "$path" ] || continue
  insmod "/lib/modules/$path" 2>/tmp/insmod.err || {
    say "module $path failed to load ($kind): $(cat /tmp/insmod.err)"
  }
done < /etc/modules.order

# Swap, for the uffd-wp swap workloads: zram when the kernel has it, else the virtio-blk
# disk the host attaches for a kernel without zram (uffd_harness.swap=disk on the command
# line; its virtio serial is uffd-swap, and no other disk is ever touched). One
# "swap: ..." line says which; a WARNING line says what failed.
swap_disk() {  # the vdX that is the harness's swap disk; waits up to 2 s for its driver
  tries=0
  while [ $tries -lt 20 ]; do
    for s in /sys/block/vd*/serial; do
      [ -e "$s" ] && [ "$(cat "$s")" = uffd-swap ] && { s=${s%/serial}; echo "${s##*/}"; return 0; }
    done
    sleep 0.1
    tries=$((tries + 1))
  done
  return 1
}
if [ ! -e /proc/swaps ]; then
  say "swap: none (kernel built without CONFIG_SWAP)"
elif [ "$SWAP_MB" -gt 0 ]; then
  swap=
  if [ -e /sys/block/zram0/disksize ]; then
    echo "${SWAP_MB}M" > /sys/block/zram0/disksize \
      && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 \
      && swap="zram ${SWAP_MB} MiB" \
      || say "WARNING: swap: zram setup failed"
  fi
  case " $(cat /proc/cmdline) " in *" uffd_harness.swap=disk "*) want_disk=1 ;; *) want_disk= ;; esac
  if [ -z "$swap" ] && [ -n "$want_disk" ]; then
    if ! dev=$(swap_disk); then
      say "WARNING: swap: no virtio-blk disk with serial uffd-swap after 2 s: the kernel" \
          "lacks the virtio-blk driver (CONFIG_VIRTIO_BLK, or its module)"
    elif mkswap "/dev/$dev" >/dev/null && swapon "/dev/$dev"; then
      swap="virtio-blk disk /dev/$dev $(($(cat "/sys/block/$dev/size") / 2048)) MiB"
    else
      say "WARNING: swap: mkswap or swapon on /dev/$dev failed"
    fi
  fi
  if [ -n "$swap" ]; then
    say "swap: $swap on"
  else
    disk="no swap disk attached"
    [ -z "$want_disk" ] || disk="the swap disk failed"
    say "swap: none (no usable zram device, and $disk)"
  fi
else
  say "swap: none (the image asks for none: swap_mb 0)"
fi

ifconfig lo 127.0.0.1 up
tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 50 ]; do
  sleep 0.1
  tries=$((tries + 1))
done
# READY ends the boot; "READY without SSH: <why>" tells the harness to use the console
# channel, or to stop with <why> when it was told to use SSH only.
nossh=
if [ ! -e /sys/class/net/eth0 ]; then
  nossh="no network device: no eth0 after 5 s; the kernel lacks the virtio-net driver \
(CONFIG_VIRTIO_NET and CONFIG_VIRTIO_PCI, or their modules)"
else
  # QEMU's user-mode network: fixed addresses, no DHCP round trip needed.
  ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up
  route add default gw 10.0.2.2
  # -E: dropbear's own errors (a refused channel, a lost session) land in the console log.
  dropbear -E -s -r /etc/dropbear/host_key -p 22 -P /tmp/dropbear.pid 2>/dev/console
  tries=0
  # 0016 is port 22 and 0A is LISTEN in /proc/net/tcp.
  until grep -q ':0016 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
    [ $tries -lt 100 ] || { nossh="dropbear did not start listening on port 22"; break; }
    sleep 0.05
    tries=$((tries + 1))
  done
fi
if [ -n "$nossh" ]; then
  say "READY without SSH: $nossh"
else
  say "READY"
fi

# busybox init reaps orphans (finished SSH sessions) and handles reboot -f.
exec /bin/busybox init
