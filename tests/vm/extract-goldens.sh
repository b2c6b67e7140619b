#!/usr/bin/env bash
# Turns the console log of capture-iw.sh into golden files, one per capture:
#
#   tests/vm/extract-goldens.sh target/vm/capture-iw.log router/mesh/tests/golden
#
# Format: `#` comment lines (provenance, and iw's output as `# iw: ...`),
# then `send` / `recv` lines each followed by the message bytes in hex. Reads
# done with MSG_PEEK (libnl peeks before it reads) are left out.
set -euo pipefail
log=$1
dir=$2
mkdir -p "$dir"
tr -d '\r' <"$log" | awk -v dir="$dir" '
  /^KERNEL / { prov = $0; next }
  /^CAPTURE / { name = $2; out = dir "/" name ".txt"; mode = "";
    print "# Captured by tests/vm/capture-iw.sh (strace hex dump of iw'"'"'s netlink socket)." > out
    print "# " prov > out; next }
  name == "" { next }
  /^END / { close(out); name = ""; next }
  /^EXIT / { print "# iw exit status: " $2 > out; next }
  /^IWOUT / { sub(/^IWOUT /, ""); print "# iw: " $0 > out; next }
  /^sendmsg\(/ { mode = "send"; print "send" > out; next }
  /^recvmsg\(/ { if ($0 ~ /MSG_PEEK/) mode = "skip"; else { mode = "recv"; print "recv" > out }; next }
  /^ \| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / {
    if (mode == "send" || mode == "recv") {
      hex = substr($0, 11, 49); gsub(/ +/, " ", hex); sub(/^ /, "", hex); sub(/ $/, "", hex)
      print hex > out
    }
  }
'
ls "$dir"
