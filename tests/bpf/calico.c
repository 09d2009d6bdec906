// Test programs named like Calico's eBPF dataplane (felix/bpf-gpl): the tc preamble every Calico tc/tcx
// attachment starts with, and connect-time load balancing on a cgroup. They do nothing (TC_ACT_UNSPEC, allow).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int cali_tc_preamble(struct __sk_buff *skb)
{
	return -1;
}

SEC("cgroup/connect4")
int calico_connect_v4(struct bpf_sock_addr *ctx)
{
	return 1;
}

char _license[] SEC("license") = "GPL";
