// Test program named like Cilium's XDP NodePort acceleration entry point.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int cil_xdp_entry(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
