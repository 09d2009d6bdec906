// Test program named like Cilium's socket-LB entry point (kernel name cil_sock4_conne).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return 1;
}

char _license[] SEC("license") = "GPL";
