// A test map with the layout of Calico's NAT frontend map cali_v4_nat_fe3 (felix/bpf/nat/maps.go: lpm_trie,
// BPF_F_NO_PREALLOC, packed 16-byte key, 20-byte value).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct __attribute__((__packed__)) calico_nat_v4_key {
	__u32 prefixlen;
	__u32 addr;
	__u16 port;
	__u8 protocol;
	__u32 saddr;
	__u8 pad;
};

struct calico_nat_v4_value {
	__u32 id;
	__u32 count;
	__u32 local;
	__u32 affinity_timeo;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct calico_nat_v4_key);
	__type(value, struct calico_nat_v4_value);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cali_v4_nat_fe3 SEC(".maps");

char _license[] SEC("license") = "GPL";
