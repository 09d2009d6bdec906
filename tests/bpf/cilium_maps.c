// Test maps with the layout of Cilium's service maps (struct lb4_key/lb6_key -> struct lb4_service).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct lb4_key {
	__u32 address;
	__u16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 scope;
	__u8 pad[2];
};

struct lb6_key {
	__u8 address[16];
	__u16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 scope;
	__u8 pad[2];
};

struct lb_service {
	__u32 backend_id;
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags;
	__u8 flags2;
	__u16 qcount;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb_service);
	__uint(max_entries, 1024);
} cilium_lb4_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb_service);
	__uint(max_entries, 1024);
} cilium_lb6_services_v2 SEC(".maps");

char _license[] SEC("license") = "GPL";
