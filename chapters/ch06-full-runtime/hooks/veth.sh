#!/bin/sh
# A createRuntime hook that gives a container a network: a veth pair (two
# virtual interfaces joined like a cable) with one end, eth0, in the
# container's network namespace and the other in the network namespace NS
# (a named one, as `ip netns add` makes), and an address on each end.
#
#   "hooks": {"createRuntime": [{"path": "/path/to/veth.sh",
#       "args": ["veth.sh", "NS", "10.200.0.1/24", "10.200.0.2/24"]}]}
#
# The container's state JSON arrives on stdin; its pid finds the namespace.
# This is what a CNI plugin does for Kubernetes, in five commands.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
ns=$1 outside=$2 inside=$3
pid=$(jq -r .pid)
host_end="veth-cfs$pid"
ip link add "$host_end" netns "$ns" type veth peer name eth0 netns "$pid"
ip -n "$ns" addr add "$outside" dev "$host_end"
ip -n "$ns" link set "$host_end" up
nsenter --target "$pid" --net ip addr add "$inside" dev eth0
nsenter --target "$pid" --net ip link set eth0 up
nsenter --target "$pid" --net ip link set lo up
