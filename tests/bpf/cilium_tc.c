// Test program named like Cilium's native-device ingress program (BPF NodePort), for tc clsact.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int cil_from_netdev(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char _license[] SEC("license") = "GPL";
