// Test programs named and sectioned like LoxiLB's datapath (loxilb-io/loxilb-ebpf kernel/llb_kern_entry.c,
// v0.9.8.4-16, commit 6b83b070): the tc entry LoxiLB attaches (section tc_packet_hook0, function
// tc_packet_func_fast, which the kernel stores as tc_packet_func_) and the XDP entry (section xdp_packet_hook,
// function xdp_packet_func). They do nothing (TC_ACT_UNSPEC, XDP_PASS). Attached with tc and ip as
// loxilb_libdp.c attaches them: clsact ingress, handle 1, priority 1; generic (SKB) XDP.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc_packet_hook0")
int tc_packet_func_fast(struct __sk_buff *skb)
{
	return -1;
}

SEC("xdp_packet_hook")
int xdp_packet_func(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
