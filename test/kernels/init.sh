#!/bin/sh
# /init of the kernel-matrix VM (busybox): load every object, replay the packet
# vectors through the object this kernel loads, print one line per result, power off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t bpf bpf /sys/fs/bpf
echo "KERNEL $(cat /proc/sys/kernel/osrelease)"
for o in /objects/*.bpf.o; do
  n=$(basename "$o" .bpf.o)
  if bpftool prog loadall "$o" "/sys/fs/bpf/$n" pinmaps "/sys/fs/bpf/${n}_maps" >/tmp/load 2>&1; then
    echo "LOAD $n ok"
  else
    echo "LOAD $n failed: $(grep -m1 'libbpf: ' /tmp/load | sed 's/^libbpf: //')"
  fi
done
obj=$(cat /vectors/object)
if [ -e "/sys/fs/bpf/$obj/from_pod" ]; then
  # One bpftool per entry: `bpftool batch` cannot read its file on this console-only VM (EAGAIN).
  failed=""
  while read -r line; do bpftool $line >/tmp/update 2>&1 || failed="$(tail -1 /tmp/update)"; done < /vectors/batch
  if [ -z "$failed" ]; then echo "MAPS ok"; else echo "MAPS failed: $failed"; fi
  while read -r i prog name; do
    ret=$(bpftool prog run pinned "/sys/fs/bpf/$obj/$prog" data_in "/vectors/$i.pkt" data_out "/tmp/$i.out" ctx_in /vectors/ctx 2>&1 | sed -n 's/.*Return value: \([0-9]*\).*/\1/p')
    echo "CASE $i $name ret=$ret out=$(od -An -v -tx1 "/tmp/$i.out" | tr -d ' \n')"
  done < /vectors/cases
fi
echo "DONE"
poweroff -f
